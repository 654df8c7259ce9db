//! Contract section 14, the console: an operator logs in, reads dead
//! letters masked, reveals one (recorded), replays a canary, previews and
//! releases a held change, cancels a schedule; in a real browser (headless
//! Chromium over WebDriver), and over plain HTTP for what a browser would
//! not let a page do (wrong tokens, forged origins, missing form tokens).

use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use lifecycle_worker::config::Settings;
use lifecycle_worker::domain::policy::GuardrailOverride;
use secrecy::SecretString;
use serde_json::{json, Value};

use crate::helpers::{eventually, free_port, http_request, http_request_on, TestEnv, DEADLINE};

const TOKEN: &str = "console-token-for-tests-0123456789";
const SCRIPT: &str = "<script>document.title='pwned'</script>";

fn with_console(port: u16) -> impl FnOnce(&mut Settings) {
    move |s: &mut Settings| {
        s.http.console_listen = Some(format!("127.0.0.1:{port}"));
        s.http.console_token = Some(SecretString::from(TOKEN));
        // acme holds every destructive change: something for the guardrail page.
        s.tenants.entry("acme".into()).or_default().guardrail = Some(GuardrailOverride {
            max_changes: Some(0),
            ..Default::default()
        });
    }
}

/// Waits until the console answers on `port`.
async fn console_up(port: u16) {
    eventually("the console listens", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
}

/// What the operator will find: dead letters of three kinds, a held
/// change and a scheduled one.
struct Seeded {
    /// A `not_found` that applies once its contact exists.
    missing: i64,
    missing_group: String,
    /// A refused upsert carrying an address.
    personal: i64,
    /// A refused upsert whose body and message hold a script tag.
    script: i64,
}

async fn seed(env: &TestEnv) -> Seeded {
    let r = env
        .send(&env.command(
            "globex",
            "contact.deactivate",
            1,
            json!({"contact_id": "c-late"}),
        ))
        .await;
    assert_eq!(r["outcome"], "rejected", "{r}");
    let personal = env.command(
        "globex",
        "contact.upsert",
        2,
        json!({"contact_id": "c-pii", "email": "ana.secret@example.com", "nickname": "Ani"}),
    );
    assert_eq!(env.send(&personal).await["outcome"], "rejected");
    let mut payload = json!({"contact_id": "c-x"});
    payload[SCRIPT] = json!(SCRIPT);
    let script = env.command("globex", "contact.upsert", 3, payload);
    assert_eq!(env.send(&script).await["outcome"], "rejected");
    // The contact the first one missed, so its replay applies.
    let up = env.command(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-late", "first_name": "Late"}),
    );
    let r = env.send(&up).await;
    assert_eq!(r["outcome"], "applied", "{r}");
    // A held deactivation and a scheduled one.
    let up = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-held", "first_name": "Held"}),
    );
    assert_eq!(env.send(&up).await["outcome"], "applied");
    let held = env.command(
        "acme",
        "contact.deactivate",
        5,
        json!({"contact_id": "c-held"}),
    );
    assert_eq!(env.send(&held).await["outcome"], "held");
    let mut later = env.command(
        "globex",
        "contact.deactivate",
        6,
        json!({"contact_id": "c-late"}),
    );
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    later["effective_at"] = json!(lifecycle_worker::domain::event::format_time(
        tomorrow.replace_nanosecond(0).unwrap()
    ));
    assert_eq!(env.send(&later).await["outcome"], "scheduled");

    let rows = env.dead_letters().await;
    let find = |id: &Value| {
        rows.iter()
            .find(|r| r.command_id.as_deref() == id.as_str())
            .expect("dead letter stored")
    };
    let missing = rows
        .iter()
        .find(|r| r.code == "not_found")
        .expect("not_found dead letter");
    Seeded {
        missing: missing.id,
        missing_group: missing.group_id.clone().expect("grouped"),
        personal: find(&personal["command_id"]).id,
        script: find(&script["command_id"]).id,
    }
}

// ------------------------------------------------------------------ browser

/// ChromeDriver in its own process group, with the Chromium it starts;
/// both are killed on drop, whatever the test did.
struct Driver {
    child: std::process::Child,
    port: u16,
    profile: std::path::PathBuf,
}

impl Driver {
    async fn start() -> Driver {
        let installed = tokio::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/scripts/ensure-chromium.sh"
            ))
            .status()
            .await
            .expect("scripts/ensure-chromium.sh runs");
        assert!(
            installed.success(),
            "Chromium and ChromeDriver could not be installed"
        );
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let child = std::process::Command::new("/usr/bin/chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("lw-chromium-{port}"));
        let driver = Driver {
            child,
            port,
            profile,
        };
        eventually("chromedriver listens", || async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .ok()
        })
        .await;
        driver
    }

    async fn browser(&self) -> Client {
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-quic", "--no-first-run", "--disable-background-networking",
                         "--disable-component-update", "--disable-sync", "--window-size=1366,900",
                         format!("--user-data-dir={}", self.profile.display())]
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a browser session")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The element `css`, once it exists.
async fn element(b: &Client, css: &str) -> fantoccini::elements::Element {
    match b
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            let url = b.current_url().await.map(|u| u.to_string());
            let page = b.source().await.unwrap_or_default();
            panic!("no `{css}` on {url:?}: {e}\n{page}")
        }
    }
}

async fn text_of(b: &Client, css: &str) -> String {
    element(b, css).await.text().await.expect("element text")
}

/// Clicks what leads to another page and waits until the browser left
/// this one (its root element gone), so the next lookup reads the new page.
async fn click(b: &Client, css: &str) {
    let old = b.find(Locator::Css("html")).await.expect("a page");
    element(b, css).await.click().await.expect("click");
    left(&old).await;
}

/// Waits until `old`, a page's root element, is gone.
async fn left(old: &fantoccini::elements::Element) {
    eventually("the next page", || async move {
        old.tag_name().await.is_err().then_some(())
    })
    .await;
}

async fn fill(b: &Client, css: &str, value: &str) {
    let field = b.find(Locator::Css(css)).await.expect("field");
    field.clear().await.expect("clear");
    field.send_keys(value).await.expect("type");
}

/// Tabs through the page until the link `text` has the focus, then follows
/// it with Enter.
async fn keyboard_to(b: &Client, text: &str) {
    use fantoccini::key::Key;
    for _ in 0..60 {
        let focused = b.active_element().await.expect("a focused element");
        if focused.text().await.unwrap_or_default() == text {
            let old = b.find(Locator::Css("html")).await.expect("a page");
            focused
                .send_keys(&Key::Enter.to_string())
                .await
                .expect("Enter");
            let old = &old;
            eventually("the page the link leads to", || async move {
                old.tag_name().await.is_err().then_some(())
            })
            .await;
            return;
        }
        focused.send_keys(&Key::Tab.to_string()).await.expect("Tab");
    }
    panic!("`{text}` cannot be reached with Tab");
}

/// With `CONSOLE_SCREENSHOTS=dir`, the page as it looks now, for docs/console.md.
async fn screenshot(b: &Client, name: &str) {
    if let Ok(dir) = std::env::var("CONSOLE_SCREENSHOTS") {
        let png = b.screenshot().await.expect("screenshot");
        std::fs::write(
            std::path::Path::new(&dir).join(format!("console-{name}.png")),
            png,
        )
        .expect("screenshot written");
    }
}

/// A page on another origin whose form posts to the console: what a
/// malicious site would try against a logged-in operator.
async fn attacker_page(console: u16) -> u16 {
    let port = free_port();
    let page = format!(
        "<!doctype html><title>win a prize</title>\
         <form method=post action=\"http://127.0.0.1:{console}/guard/acme/discard\">\
         <input type=hidden name=holds value=all><button id=go>Claim</button></form>"
    );
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || async move { axum::response::Html(page) }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("attacker port");
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

#[tokio::test]
async fn an_operator_works_through_the_console_in_a_browser() {
    let port = free_port();
    let env = TestEnv::start_with(with_console(port)).await;
    let seeded = seed(&env).await;
    console_up(port).await;
    let driver = Driver::start().await;
    let b = driver.browser().await;
    let base = format!("http://127.0.0.1:{port}");

    // Nothing without logging in; a wrong token is refused.
    b.goto(&format!("{base}/dead-letters")).await.unwrap();
    assert!(b.current_url().await.unwrap().path().ends_with("/login"));
    screenshot(&b, "login").await;
    fill(&b, "input[name=name]", "ana-ops").await;
    fill(&b, "input[name=token]", "not-the-token").await;
    click(&b, "button[type=submit]").await;
    assert_eq!(text_of(&b, "#login-error").await, "Wrong token.");
    fill(&b, "input[name=name]", "ana-ops").await;
    fill(&b, "input[name=token]", TOKEN).await;
    click(&b, "button[type=submit]").await;
    assert_eq!(b.current_url().await.unwrap().path(), "/");
    // The health panel: ready once the worker's probes have run.
    let b_ref = &b;
    eventually("the health panel says ready", || async move {
        b_ref.refresh().await.ok()?;
        let health = text_of(b_ref, "#health").await;
        health.starts_with("Readiness\nready").then_some(())
    })
    .await;
    assert!(text_of(&b, "#health").await.contains("Outbox backlog"));
    screenshot(&b, "overview").await;

    // A forged cross-site form changes nothing, although the browser is
    // logged in.
    let attacker = attacker_page(port).await;
    b.goto(&format!("http://127.0.0.1:{attacker}/"))
        .await
        .unwrap();
    click(&b, "#go").await;
    let refused = text_of(&b, "body").await;
    assert!(refused.contains("cross-origin"), "{refused}");
    let held: i64 = sqlx::query_scalar("SELECT count(*) FROM held_commands")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(held, 1, "the held change is still held");

    // Groups, a group's rows, a canary replay that applies.
    b.goto(&format!("{base}/dead-letters")).await.unwrap();
    screenshot(&b, "dead-letter-groups").await;
    click(
        &b,
        &format!("a[href='/dead-letters/groups/{}']", seeded.missing_group),
    )
    .await;
    let rows = text_of(&b, "#dead-letters").await;
    assert!(
        rows.contains("c-late") || rows.contains(&seeded.missing.to_string()),
        "{rows}"
    );
    click(&b, "#canary-replay").await;
    let outcome = text_of(&b, "#outcome").await;
    assert!(
        outcome.contains("Canary: 1 dead letter(s) replayed and applied"),
        "{outcome}"
    );
    let contact = env.contact_show("globex", "c-late").await.expect("contact");
    assert_eq!(
        contact["active"], false,
        "the replayed deactivation applied: {contact}"
    );

    // A body is masked until revealed, and the reveal is recorded.
    b.goto(&format!("{base}/dead-letters/{}", seeded.personal))
        .await
        .unwrap();
    let masked = text_of(&b, "#body").await;
    assert!(!masked.contains("ana.secret"), "{masked}");
    assert!(masked.contains("\"email\": \"•••\""), "{masked}");
    assert!(masked.contains("c-pii"), "ids stay visible: {masked}");
    screenshot(&b, "dead-letter-masked").await;
    click(&b, "#reveal").await;
    assert!(text_of(&b, "#body")
        .await
        .contains("ana.secret@example.com"));
    let reveals: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM console_audit WHERE action = 'reveal' AND actor = 'console:ana-ops' \
         AND target = $1",
    )
    .bind(format!("dead_letter {}", seeded.personal))
    .fetch_one(&env.pool)
    .await
    .unwrap();
    assert_eq!(reveals, 1);

    // A script in a body and in a message is text, and does not run.
    b.goto(&format!("{base}/dead-letters/{}", seeded.script))
        .await
        .unwrap();
    click(&b, "#reveal").await;
    let message = text_of(&b, "#message").await;
    assert!(message.contains(SCRIPT), "{message}");
    assert!(text_of(&b, "#body").await.contains(SCRIPT));
    assert_eq!(
        b.title().await.unwrap(),
        format!("Dead letter {} · lifecycle-worker", seeded.script)
    );

    // The held change: preview (nothing changes), then release. The
    // preview is reached with the keyboard alone.
    b.goto(&format!("{base}/guard")).await.unwrap();
    screenshot(&b, "guardrail").await;
    keyboard_to(&b, "Preview release").await;
    let preview = text_of(&b, "#preview").await;
    assert!(
        preview.contains("c-held") && preview.contains("applied"),
        "{preview}"
    );
    let contact = env.contact_show("acme", "c-held").await.expect("contact");
    assert_eq!(contact["active"], true, "a preview changes nothing");
    screenshot(&b, "release-preview").await;
    click(&b, "#release").await;
    assert!(text_of(&b, "#outcome")
        .await
        .contains("1 held command(s) released"));
    let contact = env.contact_show("acme", "c-held").await.expect("contact");
    assert_eq!(contact["active"], false);

    // The scheduled change: cancelled.
    b.goto(&format!("{base}/schedule")).await.unwrap();
    assert!(text_of(&b, "#scheduled").await.contains("c-late"));
    screenshot(&b, "schedule").await;
    click(&b, "#scheduled button").await;
    let outcome = text_of(&b, "#outcome").await;
    assert!(outcome.contains("cancelled"), "{outcome}");
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM scheduled_commands")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(left, 0);

    // Every action is in the audit, by the name given at login.
    b.goto(&format!("{base}/audit")).await.unwrap();
    let audit = text_of(&b, "#audit").await;
    for action in ["login", "canary replay", "reveal", "release", "cancel"] {
        assert!(audit.contains(action), "{action} missing from {audit}");
    }
    assert!(audit.contains("console:ana-ops"));
    screenshot(&b, "audit").await;
    b.close().await.unwrap();
    drop(driver);
    env.finish().await;
}

// ------------------------------------------------------------------ HTTP

#[tokio::test]
async fn the_console_refuses_what_it_must() {
    let port = free_port();
    let env = TestEnv::start_with(with_console(port)).await;
    console_up(port).await;
    let bearer = format!("Bearer {TOKEN}");

    // No credentials: to the login page; a wrong bearer token: 401.
    let r = http_request(port, "GET", "/", &[], None).await;
    assert_eq!((r.status, r.header("location")), (303, Some("/login")));
    let r = http_request(port, "GET", "/", &[("Authorization", "Bearer nope")], None).await;
    assert_eq!(r.status, 401);
    let r = http_request(
        port,
        "POST",
        "/schedule/cancel",
        &[],
        Some("tenant=a&command_id=b"),
    )
    .await;
    assert_eq!(r.status, 401);

    // Every page forbids script and framing.
    let r = http_request(
        port,
        "GET",
        "/dead-letters",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").expect("CSP");
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(!r.body.contains("<script"), "no script on any page");
    let r = http_request(port, "GET", "/login", &[], None).await;
    assert!(r.header("content-security-policy").is_some());

    // A request from another origin changes nothing, even with the token.
    let r = http_request(
        port,
        "POST",
        "/guard/acme/discard",
        &[
            ("Authorization", &bearer),
            ("Origin", "http://evil.example"),
        ],
        Some("holds=all"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A session cookie: HttpOnly and SameSite=Strict; Secure behind TLS.
    let r = http_request(
        port,
        "POST",
        "/login",
        &[("X-Forwarded-Proto", "https")],
        Some(&format!("name=ops&token={TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 303);
    let cookie = r.header("set-cookie").expect("cookie").to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    let r = http_request(
        port,
        "POST",
        "/login",
        &[],
        Some(&format!("name=ops&token={TOKEN}")),
    )
    .await;
    let cookie = r.header("set-cookie").expect("cookie").to_owned();
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session = cookie.split(';').next().unwrap().to_owned();
    let r = http_request(port, "GET", "/guard", &[("Cookie", &session)], None).await;
    assert_eq!(r.status, 200);
    // With the session but without the form's token: refused.
    let r = http_request(
        port,
        "POST",
        "/guard/acme/discard",
        &[("Cookie", &session)],
        Some("holds=all"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = http_request(
        port,
        "POST",
        "/guard/acme/discard",
        &[("Cookie", &session)],
        Some("holds=all&csrf=0000"),
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Failed logins are limited per address: after five (the wrong bearer
    // token above was one), even the right token waits.
    for _ in 1..lifecycle_worker::console::MAX_FAILURES {
        let r = http_request(port, "POST", "/login", &[], Some("name=x&token=wrong")).await;
        assert_eq!(r.status, 401);
    }
    let r = http_request(
        port,
        "POST",
        "/login",
        &[],
        Some(&format!("name=x&token={TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 429);
    let r = http_request(port, "GET", "/", &[("Authorization", &bearer)], None).await;
    assert_eq!(r.status, 429, "the bearer token is limited with the logins");
    // In the audit as counts: the wrong tokens (the bearer's included) and
    // the two refusals.
    let pool = &env.pool;
    eventually("the failures in the audit", || async move {
        let counts: Vec<(String, i64)> = sqlx::query_as(
            "SELECT result, sum(count)::bigint FROM console_audit \
             WHERE action = 'failed login' GROUP BY 1 ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let max = lifecycle_worker::console::MAX_FAILURES as i64;
        (counts
            == [
                ("refused: rate limited".into(), 2),
                ("wrong token".into(), max),
            ])
        .then_some(())
    })
    .await;
    env.finish().await;
}

#[tokio::test]
async fn without_a_token_the_console_does_not_start() {
    let env = TestEnv::prepare_with(|_| {}).await;
    let mut settings = env.settings.clone();
    settings.http.console_listen = Some(format!("127.0.0.1:{}", free_port()));
    let ran = tokio::time::timeout(
        Duration::from_secs(30),
        lifecycle_worker::app::run(settings, std::future::pending(), |_| {}),
    )
    .await
    .expect("refused at once");
    let e = format!("{:#}", ran.expect_err("no console without a token"));
    assert!(e.contains("http.console_token"), "{e}");
    env.finish().await;
}

/// Issue 25, item 8: attributes whose names end in `_id` are the
/// producer's data, not ids; with the free text of a replay's result they
/// stay masked on every page until a reveal.
#[tokio::test]
async fn no_page_shows_attribute_values_until_revealed() {
    const NATIONAL: &str = "AB123456C";
    const PASSPORT: &str = "P9876543";
    let port = free_port();
    let env = TestEnv::start_with(with_console(port)).await;
    let attributes = json!({"national_id": NATIONAL, "passport_id": PASSPORT});
    // A refused upsert (an unknown field) carrying both: a dead letter.
    let refused = env.command(
        "globex",
        "contact.upsert",
        1,
        json!({"contact_id": "c-id", "nickname": "x", "attributes": attributes}),
    );
    assert_eq!(env.send(&refused).await["outcome"], "rejected");
    let row = env
        .dead_letters()
        .await
        .into_iter()
        .find(|r| r.command_id.as_deref() == refused["command_id"].as_str())
        .expect("dead letter stored");
    // A replay whose result quotes them, as a rejection message may.
    sqlx::query(
        "INSERT INTO dead_letter_history (dead_letter_id, action, replay, amqp_user, os_user, result) \
         VALUES ($1, 'replay', 1, 'guest', 'console:ops', $2)",
    )
    .bind(row.id)
    .bind(format!(
        "failed again: invalid_command: national_id `{NATIONAL}` and passport_id \"{PASSPORT}\""
    ))
    .execute(&env.pool)
    .await
    .unwrap();
    // A held change and a scheduled one carrying them too.
    let up = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-held", "first_name": "Held", "attributes": attributes}),
    );
    assert_eq!(env.send(&up).await["outcome"], "applied");
    let held = env.command(
        "acme",
        "contact.deactivate",
        2,
        json!({"contact_id": "c-held", "reason": format!("passport {PASSPORT}")}),
    );
    assert_eq!(env.send(&held).await["outcome"], "held");
    let mut later = env.command(
        "globex",
        "contact.set_attributes",
        3,
        json!({"contact_id": "c-id", "attributes": attributes}),
    );
    let tomorrow = time::OffsetDateTime::now_utc() + time::Duration::days(1);
    later["effective_at"] = json!(lifecycle_worker::domain::event::format_time(
        tomorrow.replace_nanosecond(0).unwrap()
    ));
    assert_eq!(env.send(&later).await["outcome"], "scheduled");
    console_up(port).await;

    let bearer = format!("Bearer {TOKEN}");
    let auth = [("Authorization", bearer.as_str())];
    let group = row.group_id.clone().expect("grouped");
    let pages = [
        "/".to_owned(),
        "/dead-letters".to_owned(),
        format!("/dead-letters/groups/{group}"),
        format!("/dead-letters/{}", row.id),
        "/guard".to_owned(),
        "/guard/acme/preview?holds=all".to_owned(),
        "/schedule".to_owned(),
        "/audit".to_owned(),
    ];
    for path in &pages {
        let r = http_request(port, "GET", path, &auth, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        for raw in [NATIONAL, PASSPORT] {
            assert!(!r.body.contains(raw), "{raw} on {path}:\n{}", r.body);
        }
    }
    let detail = http_request(
        port,
        "GET",
        &format!("/dead-letters/{}", row.id),
        &auth,
        None,
    )
    .await;
    assert!(
        detail
            .body
            .contains("&quot;national_id&quot;: &quot;•••&quot;"),
        "{}",
        detail.body
    );
    assert!(detail.body.contains("c-id"), "ids stay visible");
    assert!(detail.body.contains("failed again: invalid_command"));

    // Revealed (and recorded), both show, in the body and in the history.
    let r = http_request(
        port,
        "POST",
        &format!("/dead-letters/{}/reveal", row.id),
        &auth,
        Some(""),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let history = r.body.split("id=\"history\"").nth(1).expect("a history");
    for raw in [NATIONAL, PASSPORT] {
        assert!(r.body.contains(raw), "{raw} revealed");
        assert!(history.contains(raw), "{raw} in the revealed history");
    }
    env.finish().await;
}

/// A connection to the console on 127.0.0.1 from another loopback address.
async fn connect_from(source: [u8; 4], port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .expect("a loopback source address");
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("the console answers")
}

/// Issue 25, item 2: behind a trusted proxy (here 127.0.0.2) each client is
/// limited by the address the proxy forwards, so one bad client does not
/// lock out every operator; a forwarded address from a peer that is not a
/// trusted proxy is ignored.
#[tokio::test]
async fn failed_logins_are_limited_per_client_behind_a_trusted_proxy() {
    let port = free_port();
    let env = TestEnv::start_with(|s| {
        with_console(port)(s);
        s.http.console_trusted_proxies = vec!["127.0.0.2/32".into(), "10.0.0.0/8".into()];
    })
    .await;
    console_up(port).await;
    const PROXY: [u8; 4] = [127, 0, 0, 2];
    let login = |xff: &'static str, token: &'static str| async move {
        let body = format!("name=x&token={token}");
        let stream = connect_from(PROXY, port).await;
        // The client's own (forged) entry, then what the proxies appended.
        let headers = [("X-Forwarded-For", xff)];
        http_request_on(stream, port, "POST", "/login", &headers, Some(&body))
            .await
            .status
    };
    for _ in 0..lifecycle_worker::console::MAX_FAILURES {
        assert_eq!(
            login("198.51.100.9, 203.0.113.1, 10.1.2.3", "wrong").await,
            401
        );
    }
    assert_eq!(
        login("203.0.113.1, 10.1.2.3", TOKEN).await,
        429,
        "the bad client is limited"
    );
    // Another client behind the same proxies, whatever it forges.
    assert_eq!(
        login("203.0.113.1, 203.0.113.2, 10.1.2.3", TOKEN).await,
        303
    );
    assert_eq!(login("203.0.113.2", "wrong").await, 401);
    let pool = &env.pool;
    eventually("failed logins audited by client address", || async move {
        let remotes: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT remote FROM console_audit WHERE remote IS NOT NULL ORDER BY 1",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        (remotes == ["203.0.113.1", "203.0.113.2"]).then_some(())
    })
    .await;

    // From 127.0.0.1, not a trusted proxy, a forwarded address means
    // nothing: every attempt counts against 127.0.0.1.
    for i in 0..lifecycle_worker::console::MAX_FAILURES {
        let xff = format!("192.0.2.{i}");
        let r = http_request(
            port,
            "POST",
            "/login",
            &[("X-Forwarded-For", &xff)],
            Some("name=x&token=wrong"),
        )
        .await;
        assert_eq!(r.status, 401);
    }
    let r = http_request(
        port,
        "POST",
        "/login",
        &[("X-Forwarded-For", "192.0.2.200")],
        Some(&format!("name=x&token={TOKEN}")),
    )
    .await;
    assert_eq!(r.status, 429, "limited as 127.0.0.1");
    env.finish().await;
}

/// Issue 25, item 2: failed logins are counted in the audit, one row per
/// client address, minute and kind (wrong token, refused while limited),
/// so an unauthenticated client cannot grow the table per request.
#[tokio::test]
async fn failed_logins_are_audited_as_counts_not_rows() {
    let port = free_port();
    let env = TestEnv::start_with(with_console(port)).await;
    console_up(port).await;
    const ATTEMPTS: i64 = 500;
    for i in 0..ATTEMPTS {
        let status = if i % 2 == 0 {
            http_request(port, "POST", "/login", &[], Some("name=x&token=wrong"))
                .await
                .status
        } else {
            let wrong = [("Authorization", "Bearer wrong")];
            http_request(port, "GET", "/", &wrong, None).await.status
        };
        let limited = i >= lifecycle_worker::console::MAX_FAILURES as i64;
        assert_eq!(status, if limited { 429 } else { 401 }, "attempt {i}");
    }
    let pool = &env.pool;
    let rows: Vec<(String, String, i64)> = eventually("the failures counted", || async move {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT remote, result, sum(count)::bigint FROM console_audit \
             WHERE action = 'failed login' GROUP BY 1, 2 ORDER BY 2 DESC",
        )
        .fetch_all(pool)
        .await
        .unwrap();
        let total: i64 = rows.iter().map(|r| r.2).sum();
        (total == ATTEMPTS).then_some(rows)
    })
    .await;
    let wrong = lifecycle_worker::console::MAX_FAILURES as i64;
    assert_eq!(
        rows,
        [
            ("127.0.0.1".into(), "wrong token".into(), wrong),
            (
                "127.0.0.1".into(),
                "refused: rate limited".into(),
                ATTEMPTS - wrong
            ),
        ]
    );
    // One row per kind and minute: two, or four if the attempts straddled
    // a minute.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM console_audit")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert!(stored <= 4, "{stored} audit rows for {ATTEMPTS} attempts");
    // The audit page shows the counts (to an operator elsewhere).
    let bearer = format!("Bearer {TOKEN}");
    let stream = connect_from([127, 0, 0, 3], port).await;
    let page = http_request_on(
        stream,
        port,
        "GET",
        "/audit",
        &[("Authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains(&format!("<td class=\"num\">{}</td>", ATTEMPTS - wrong)),
        "{}",
        page.body
    );
    env.finish().await;
}

/// The rows of a table on a page (`<tr>` in its `<tbody>`).
fn table_rows(page: &str, id: &str) -> usize {
    page.split(&format!("<table id=\"{id}\""))
        .nth(1)
        .and_then(|t| t.split("<tbody>").nth(1))
        .and_then(|t| t.split("</tbody>").next())
        .map_or(0, |body| body.matches("<tr>").count())
}

/// The `href` of the page's "next page" link, if any.
fn next_link(page: &str) -> Option<String> {
    let (before, _) = page.split_once("rel=\"next\"")?;
    let href = before.rsplit("href=\"").next()?;
    Some(href.split('"').next()?.replace("&amp;", "&"))
}

/// Issue 25, item 2: every list in the console is a page (a LIMIT in every
/// query that lists) with a link to the next; a release preview of "all"
/// dry-runs one page, not everything in one long transaction.
#[tokio::test]
async fn held_commands_dead_letters_and_groups_come_a_page_at_a_time() {
    const PAGE: usize = 50;
    let port = free_port();
    let env = TestEnv::start_with(with_console(port)).await;
    // One more held command than a page (acme holds every destructive change).
    let contacts: Vec<Value> = (0..=PAGE)
        .map(|i| {
            env.command(
                "acme",
                "contact.upsert",
                0,
                json!({"contact_id": format!("c-{i}"), "first_name": "Held"}),
            )
        })
        .collect();
    env.publish_all(&contacts).await;
    let pool = &env.pool;
    eventually("the contacts exist", || async move {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM contacts")
            .fetch_one(pool)
            .await
            .unwrap();
        (n == PAGE as i64 + 1).then_some(())
    })
    .await;
    let held: Vec<Value> = (0..=PAGE)
        .map(|i| {
            env.command(
                "acme",
                "contact.deactivate",
                1,
                json!({"contact_id": format!("c-{i}")}),
            )
        })
        .collect();
    env.publish_all(&held).await;
    // One more failure group than a page, and a group of more than a page.
    sqlx::query(
        "INSERT INTO dead_letters (fingerprint, body, body_len, body_sha256, properties, exchange, \
         routing_key, tenant_id, code, message, template, group_id) \
         SELECT 'fp-' || i, '\\x7b7d', 2, repeat('0', 64), '{}', 'x', 'acme.contact.upsert', 'acme', \
         'invalid_command', 'cause ' || g, 'cause ' || g, 'group-' || lpad(g::text, 3, '0') \
         FROM generate_series(1, $1) i, LATERAL (SELECT CASE WHEN i <= $2 THEN 0 ELSE i END AS g) grp",
    )
    .bind(2 * PAGE as i32 + 1)
    .bind(PAGE as i32 + 1)
    .execute(&env.pool)
    .await
    .unwrap();
    eventually("all held", || async move {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM held_commands")
            .fetch_one(pool)
            .await
            .unwrap();
        (n == PAGE as i64 + 1).then_some(())
    })
    .await;
    console_up(port).await;
    let bearer = format!("Bearer {TOKEN}");
    let get = |path: String| {
        let bearer = bearer.clone();
        async move {
            let r = http_request(port, "GET", &path, &[("Authorization", &bearer)], None).await;
            assert_eq!(r.status, 200, "{path}: {}", r.body);
            r.body
        }
    };

    for (first, table) in [
        ("/guard".to_owned(), "held"),
        ("/dead-letters".to_owned(), "groups"),
        ("/dead-letters/groups/group-000".to_owned(), "dead-letters"),
    ] {
        let page = get(first.clone()).await;
        assert_eq!(table_rows(&page, table), PAGE, "{first}");
        let next = next_link(&page).unwrap_or_else(|| panic!("{first}: no next page\n{page}"));
        let page = get(next.clone()).await;
        assert_eq!(table_rows(&page, table), 1, "{next}");
        assert_eq!(next_link(&page), None, "{next}: the last page");
    }
    // The guardrail still counts every held command of the tenant.
    let guard = get("/guard".to_owned()).await;
    assert!(guard.contains(&format!("<td>{}", PAGE + 1)), "{guard}");

    // Previewing the release of all: the first page, saying so.
    let preview = get("/guard/acme/preview?holds=all".to_owned()).await;
    assert_eq!(table_rows(&preview, "preview"), PAGE);
    assert!(
        preview.contains(&format!("the first {PAGE} of {}", PAGE + 1)),
        "{preview}"
    );
    env.finish().await;
}
