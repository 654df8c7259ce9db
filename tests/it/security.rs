//! Producer authorisation with a real RabbitMQ user and the AMQP `user_id`
//! property (which RabbitMQ checks against the connection's user).

use crate::helpers::TestEnv;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lifecycle_worker::amqp;
use lifecycle_worker::domain::policy::ProducerGrant;
use secrecy::SecretString;
use serde_json::json;

/// A RabbitMQ user that exists for the duration of a test.
struct BrokerUser {
    name: String,
}

async fn rabbitmqctl(args: &[&str]) {
    let out = tokio::process::Command::new("rabbitmqctl")
        .args(args)
        .output()
        .await
        .expect("rabbitmqctl runs");
    assert!(
        out.status.success(),
        "rabbitmqctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl BrokerUser {
    async fn create(name: &str, password: &str) -> BrokerUser {
        rabbitmqctl(&["-q", "add_user", name, password]).await;
        rabbitmqctl(&["-q", "set_permissions", "-p", "/", name, ".*", ".*", ".*"]).await;
        BrokerUser {
            name: name.to_owned(),
        }
    }
}

impl Drop for BrokerUser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "delete_user", &self.name])
            .output();
    }
}

#[tokio::test]
async fn producers_may_send_only_what_they_are_granted() {
    let name = format!("ats-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let user = BrokerUser::create(&name, "secret").await;
    let env = TestEnv::start_with(|s| {
        s.producers.insert(
            name.clone(),
            ProducerGrant {
                tenants: vec!["acme".into()],
                commands: vec!["contact.*".into(), "employer.*".into()],
                replay: false,
            },
        );
    })
    .await;

    let mut producer_settings = env.settings.amqp.clone();
    producer_settings.url = SecretString::from(format!("amqp://{name}:secret@127.0.0.1:5672/%2f"));
    let conn = amqp::connect(&producer_settings, "test-producer")
        .await
        .unwrap();
    let ch = amqp::confirm_channel(&conn).await.unwrap();

    let send_as = |cmd: serde_json::Value, user_id: Option<String>| {
        let ch = ch.clone();
        let env = &env;
        async move {
            let correlation = cmd["command_id"].as_str().unwrap().to_owned();
            let mut props = amqp::json_properties()
                .with_reply_to(env_reply_queue(env).into())
                .with_correlation_id(correlation.as_str().into());
            if let Some(u) = user_id {
                props = props.with_user_id(u.into());
            }
            let body = serde_json::to_vec(&cmd).unwrap();
            env.publish_on(&ch, &crate::helpers::routing_key_of(&cmd), &body, props)
                .await;
            env.reply(&correlation).await
        }
    };

    let allowed = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    assert_eq!(
        send_as(allowed, Some(name.clone())).await["outcome"],
        "applied"
    );

    let wrong_type = env.command(
        "acme",
        "user.upsert",
        0,
        json!({"user_id": "u-1", "email": "a@example.com"}),
    );
    let r = send_as(wrong_type, Some(name.clone())).await;
    assert_eq!(r["error"]["code"], "forbidden");

    let wrong_tenant = env.command(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    assert_eq!(
        send_as(wrong_tenant, Some(name.clone())).await["error"]["code"],
        "forbidden"
    );

    let anonymous = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-1"}),
    );
    assert_eq!(send_as(anonymous, None).await["error"]["code"], "forbidden");

    // The guest connection cannot claim to be the producer: RabbitMQ
    // refuses a user_id that is not the connection's own user.
    let forged = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-1"}),
    );
    let refused = env
        .ch
        .basic_publish(
            env.names.commands.as_str().into(),
            "acme.contact.deactivate".into(),
            Default::default(),
            &serde_json::to_vec(&forged).unwrap(),
            amqp::json_properties().with_user_id(name.as_str().into()),
        )
        .await;
    let confirmed = match refused {
        Ok(confirm) => confirm.await.map(|c| c.is_ack()).unwrap_or(false),
        Err(_) => false,
    };
    assert!(!confirmed, "the broker must refuse a forged user_id");

    let c = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(c["active"], true, "no refused command had an effect");
    assert_eq!(env.dead_letters().await.len(), 3);
    let _ = conn.close(200, "done".into()).await;
    drop(user);
    env.finish().await;
}

fn env_reply_queue(env: &TestEnv) -> String {
    env.reply_queue_name().to_owned()
}

#[tokio::test]
async fn a_replay_is_authorised_as_its_original_producer() {
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let (narrow, operator) = (format!("narrow{suffix}"), format!("operator{suffix}"));
    let _narrow_user = BrokerUser::create(&narrow, "secret").await;
    let _operator_user = BrokerUser::create(&operator, "secret").await;
    let grant = |tenants: &[&str]| ProducerGrant {
        tenants: tenants.iter().map(|t| t.to_string()).collect(),
        commands: vec!["contact.*".into()],
        replay: false,
    };
    // The operator may send anything itself: its replays still act as the
    // original producer, never with these grants.
    let replayer = ProducerGrant {
        tenants: vec!["*".into()],
        commands: vec!["*".into()],
        replay: true,
    };
    let mut env = TestEnv::start_with(|s| {
        s.producers.insert(narrow.clone(), grant(&["acme"]));
        s.producers.insert(operator.clone(), replayer.clone());
    })
    .await;
    let url = |user: &str| format!("amqp://{user}:secret@127.0.0.1:5672/%2f");
    let connect_as = |user: String| {
        let mut settings = env.settings.amqp.clone();
        settings.url = SecretString::from(url(&user));
        async move {
            let conn = amqp::connect(&settings, "test-producer").await.unwrap();
            let ch = amqp::confirm_channel(&conn).await.unwrap();
            (conn, ch)
        }
    };
    let (narrow_conn, narrow_ch) = connect_as(narrow.clone()).await;
    let (operator_conn, operator_ch) = connect_as(operator.clone()).await;
    let send = |ch: &lapin::Channel, user: &str, cmd: &serde_json::Value, headers: FieldTable| {
        let (ch, env, user) = (ch.clone(), &env, user.to_owned());
        let cmd = cmd.clone();
        async move {
            let correlation = uuid::Uuid::new_v4().to_string();
            let props = amqp::json_properties()
                .with_reply_to(env.reply_queue_name().into())
                .with_correlation_id(correlation.as_str().into())
                .with_user_id(user.as_str().into())
                .with_headers(headers);
            let body = serde_json::to_vec(&cmd).unwrap();
            env.publish_on(&ch, &crate::helpers::routing_key_of(&cmd), &body, props)
                .await;
            env.reply(&correlation).await
        }
    };
    let globex = env.command(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "a@example.com"}),
    );
    let r = send(&narrow_ch, &narrow, &globex, FieldTable::default()).await;
    assert_eq!(r["error"]["code"], "forbidden");

    // A producer posing as a replay by the operator is still itself.
    let mut posing = FieldTable::default();
    posing.insert("x-replayed".into(), AMQPValue::LongLongInt(1));
    posing.insert(
        "x-original-user-id".into(),
        AMQPValue::LongString(LongString::from(operator.as_str())),
    );
    let other = env.command(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-2", "email": "b@example.com"}),
    );
    assert_eq!(
        send(&narrow_ch, &narrow, &other, posing).await["error"]["code"],
        "forbidden"
    );
    // A message without a user_id was never authorised as anyone.
    let anonymous = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-3", "email": "c@example.com"}),
    );
    let r = env
        .send_raw(
            "acme.contact.upsert",
            &serde_json::to_vec(&anonymous).unwrap(),
            amqp::json_properties(),
        )
        .await;
    assert_eq!(r["error"]["code"], "forbidden");
    // The operator's own commands use its own grants.
    let own = env.command(
        "globex",
        "contact.upsert",
        0,
        json!({"contact_id": "c-9", "email": "o@example.com"}),
    );
    assert_eq!(
        send(&operator_ch, &operator, &own, FieldTable::default()).await["outcome"],
        "applied"
    );

    let rows = env.dead_letters().await;
    assert_eq!(rows.len(), 3);
    let first = rows
        .iter()
        .find(|r| r.command_id.as_deref() == globex["command_id"].as_str())
        .unwrap();
    assert_eq!(first.user_id.as_deref(), Some(narrow.as_str()));
    let (_, shown, _) = env.cli_text(&["dlq", "show", &first.id.to_string()]).await;
    assert!(
        shown.contains(&format!("\"user_id\": \"{narrow}\"")),
        "{shown}"
    );

    // Only a user granted `replay` may replay.
    let as_user = |user: &str| {
        vec![
            ("LIFECYCLE__AMQP__URL".to_owned(), url(user)),
            (
                format!("LIFECYCLE__PRODUCERS__{}__REPLAY", operator.to_uppercase()),
                "true".to_owned(),
            ),
        ]
    };
    let replay_all = |user: String| {
        let env = &env;
        let vars = as_user(&user);
        async move {
            let vars: Vec<(&str, &str)> =
                vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let out = env.cli_with(&["dlq", "replay", "--all"], &vars).await;
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, stderr) = replay_all(narrow.clone()).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("may not replay"), "{stderr}");

    // The operator's replay stays forbidden: its grants never widen the producer's.
    let (code, stderr) = replay_all(operator.clone()).await;
    assert_eq!(code, Some(0), "{stderr}");
    let correlation = globex["command_id"].as_str().unwrap();
    let _ = correlation;
    let still = crate::helpers::eventually("the replays failed again", || {
        let pool = env.pool.clone();
        async move {
            let n: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM dead_letters WHERE failure_count = 2 AND code = 'forbidden'",
            )
            .fetch_one(&pool)
            .await
            .ok()?;
            (n == 3).then_some(n)
        }
    })
    .await;
    assert_eq!(still, 3);
    assert!(env.contact_show("globex", "c-1").await.is_none());
    assert!(env.contact_show("globex", "c-2").await.is_none());
    assert!(env.contact_show("acme", "c-3").await.is_none());

    // Once the producer is granted the tenant, the same replay applies.
    env.stop_worker().await;
    env.settings
        .producers
        .insert(narrow.clone(), grant(&["acme", "globex"]));
    env.start_worker();
    let first_id = first.id.to_string();
    let vars = as_user(&operator);
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let out = env.cli_with(&["dlq", "replay", &first_id], &vars).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let contact = crate::helpers::eventually("the replayed upsert applied", || async {
        env.contact_show("globex", "c-1").await
    })
    .await;
    assert_eq!(contact["email"], "a@example.com");
    let _ = narrow_conn.close(200, "done".into()).await;
    let _ = operator_conn.close(200, "done".into()).await;
    env.finish().await;
}

/// Issue 25, item 3: with producer authorisation off, a producer's forged
/// replay markers put no other producer's name on its dead letter; a CLI
/// replay records the process's real user, whatever `USER` claims.
#[tokio::test]
async fn identities_in_records_cannot_be_claimed() {
    let env = TestEnv::start().await;
    let missing = env.command(
        "acme",
        "contact.deactivate",
        0,
        json!({"contact_id": "c-none"}),
    );
    let mut forged = FieldTable::default();
    forged.insert("x-replayed".into(), AMQPValue::LongLongInt(1));
    forged.insert(
        "x-original-user-id".into(),
        AMQPValue::LongString(LongString::from("boss")),
    );
    let props = amqp::json_properties()
        .with_user_id("guest".into())
        .with_headers(forged);
    let r = env
        .send_raw(
            &crate::helpers::routing_key_of(&missing),
            &serde_json::to_vec(&missing).unwrap(),
            props,
        )
        .await;
    assert_eq!(r["error"]["code"], "not_found", "{r}");
    let rows = env.dead_letters().await;
    assert_eq!(rows.len(), 1);
    assert_ne!(
        rows[0].user_id.as_deref(),
        Some("boss"),
        "forged producer stored"
    );

    let id = rows[0].id.to_string();
    let out = env
        .cli_with(
            &["dlq", "replay", &id],
            &[("USER", "mallory"), ("LOGNAME", "mallory")],
        )
        .await;
    assert!(
        out.status.code().is_some(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let who: Vec<String> = sqlx::query_scalar("SELECT os_user FROM lifecycle.dead_letter_history")
        .fetch_all(&env.pool)
        .await
        .unwrap();
    assert_eq!(who, vec![lifecycle_worker::cli::whoami::os_user()]);
    assert_ne!(who[0], "mallory");
    env.finish().await;
}

/// Issue 25, item 7: a configuration file with a syntax error on a line
/// holding a password is reported without that line, and a digit-only
/// console token from the environment is the token, leading zeros and all.
#[tokio::test]
async fn configuration_errors_quote_no_secret_and_secrets_stay_verbatim() {
    let dir = std::env::temp_dir().join(format!("lw-broken-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let broken = dir.join("broken.toml");
    std::fs::write(
        &broken,
        "[database]\nurl = \"postgres://postgres:S3cretPassw0rd@db.internal:5432/lifecycle\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_lifecycle-worker"))
        .args(["--config", broken.to_str().unwrap(), "check"])
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("line 2"), "{stderr}");
    assert!(!stderr.contains("S3cretPassw0rd"), "{stderr}");
    std::fs::remove_dir_all(&dir).unwrap();

    let env = crate::helpers::TestEnv::prepare_with(|_| {}).await;
    let port = crate::helpers::free_port();
    let listen = format!("127.0.0.1:{port}");
    let token = "0012345678901234567890123456";
    let _worker = crate::helpers::spawn_worker_with(
        &env,
        "127.0.0.1:0",
        &[
            ("LIFECYCLE__HTTP__CONSOLE_LISTEN", listen.as_str()),
            ("LIFECYCLE__HTTP__CONSOLE_TOKEN", token),
        ],
        std::process::Stdio::null(),
    );
    let bearer = format!("Bearer {token}");
    let status = crate::helpers::eventually("the console answers", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        let r = crate::helpers::http_request(port, "GET", "/", &[("Authorization", &bearer)], None)
            .await;
        Some(r.status)
    })
    .await;
    assert_eq!(status, 200, "the console accepts its own digit-only token");
    env.finish().await;
}

/// Issue 25, item 9: a canary's wait is capped and a longer one is refused
/// before anything is published (it once overflowed the clock and panicked
/// after publishing); a long `--older-than` is no panic either.
#[tokio::test]
async fn an_overlong_canary_wait_is_refused_before_publishing() {
    let env = TestEnv::start().await;
    let missing = env.command(
        "acme",
        "contact.deactivate",
        0,
        json!({"contact_id": "c-none"}),
    );
    assert_eq!(env.send(&missing).await["error"]["code"], "not_found");
    let id = env.dead_letters().await[0].id;
    let out = env
        .cli(&[
            "dlq",
            "replay",
            &id.to_string(),
            "--canary",
            "1",
            "--canary-timeout",
            "100000000years",
        ])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("at most"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // The library refuses it too, whoever calls it (the console does).
    let selected = lifecycle_worker::replay::select(
        &env.pool,
        &lifecycle_worker::store::dead_letters::DeadLetterFilter {
            ids: vec![id],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let who = lifecycle_worker::replay::operator(&env.settings, "ana".into()).unwrap();
    let refused = lifecycle_worker::replay::replay(
        &env.settings,
        &env.pool,
        selected,
        &who,
        Some((1, std::time::Duration::from_secs(u64::MAX / 4))),
        &mut |_| {},
    )
    .await;
    assert!(
        matches!(refused, Err(lifecycle_worker::replay::ReplayError::Refused(ref m)) if m.contains("nothing published")),
        "{refused:?}"
    );
    let history: i64 = sqlx::query_scalar("SELECT count(*) FROM lifecycle.dead_letter_history")
        .fetch_one(&env.pool)
        .await
        .unwrap();
    assert_eq!(history, 0, "nothing was replayed");

    let out = env
        .cli(&["dlq", "purge", "--older-than", "100000000years", "--yes"])
        .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    env.finish().await;
}

/// Issue 25, item 9: routing keys holding quotes and other characters do
/// not make each refusal a failure group of its own.
#[tokio::test]
async fn odd_routing_keys_form_one_failure_group() {
    let env = TestEnv::start().await;
    let cmd = env.command(
        "acme",
        "contact.deactivate",
        0,
        json!({"contact_id": "c-1"}),
    );
    let body = serde_json::to_vec(&cmd).unwrap();
    for key in [
        "acme.contact.x`1`first",
        "acme.contact.x`2` second",
        "acme.contact.\"3\"third",
        "acme.contact.x\u{1b}[31m`4",
    ] {
        let r = env.send_raw(key, &body, amqp::json_properties()).await;
        assert_eq!(r["error"]["code"], "invalid_command", "{r}");
    }
    let out = env.cli(&["dlq", "groups", "--json"]).await;
    let groups: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let groups = groups.as_array().unwrap();
    assert_eq!(groups.len(), 1, "{groups:?}");
    assert_eq!(groups[0]["count"], 4);

    // The listing is bounded, and says when there is more.
    let missing = env.command(
        "acme",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-none"}),
    );
    assert_eq!(env.send(&missing).await["error"]["code"], "not_found");
    let out = env.cli(&["dlq", "groups", "--limit", "1", "--json"]).await;
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown.as_array().unwrap().len(), 1, "{shown}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("there are more"));
    env.finish().await;
}
