//! `dlq list | show | groups | replay | edit | purge`: the operator's view
//! of the dead-letter store (contract sections 6 and 13).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Digest;
use sqlx::PgPool;
use time::OffsetDateTime;

use super::CliError;
use crate::amqp::{self, Names, REPLAYED_HEADER};
use crate::config::Settings;
use crate::domain::event::format_time;
use crate::domain::policy::ORIGINAL_USER_HEADER;
use crate::store::journal::{self, DeadLetterFilter, DeadLetterRow};
use crate::store::replays::{self, Claim, Operator};

/// Parses `7d`, `24h`, `30m`, `90s` (anything humantime accepts).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 7d, 24h or 30m: {e}"))
}

fn ago(d: Duration) -> OffsetDateTime {
    OffsetDateTime::now_utc() - d
}

fn row_json(r: &DeadLetterRow) -> Value {
    json!({
        "id": r.id,
        "tenant": r.tenant_id,
        "command_id": r.command_id,
        "type": r.command_type,
        "code": r.code,
        "message": r.message,
        "count": r.failure_count,
        "first_failed_at": format_time(r.first_failed_at),
        "last_failed_at": format_time(r.last_failed_at),
        "replayed_at": r.replayed_at.map(format_time),
        "replay_count": r.replay_count,
        "pending": r.pending,
        "routing_key": r.routing_key,
        "user_id": r.user_id,
        "body_len": r.body_len,
        "body_sha256": r.body_sha256,
        "truncated": r.truncated(),
        "group": r.group_id,
        "resolved_at": r.resolved_at.map(format_time),
    })
}

/// Control characters from messages never reach the terminal raw: they are
/// written as `\u001b` and so on (JSON's own escape, so JSON output stays
/// valid; serde_json leaves DEL and the C1 controls as they are).
pub fn escape_controls(s: &str, keep_newlines: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() && !(keep_newlines && c == '\n') {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn cut(s: &str, max: usize) -> String {
    let s = &escape_controls(s, false);
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

pub async fn list(
    pool: &PgPool,
    tenant: Option<String>,
    code: Option<String>,
    since: Option<Duration>,
    as_json: bool,
) -> anyhow::Result<()> {
    let filter = DeadLetterFilter {
        tenant,
        code,
        since: since.map(ago),
        ..DeadLetterFilter::default()
    };
    let rows = journal::find_dead_letters(pool, &filter).await?;
    let mut out = std::io::stdout().lock();
    if as_json {
        let all: Vec<Value> = rows.iter().map(row_json).collect();
        writeln!(
            out,
            "{}",
            escape_controls(&serde_json::to_string_pretty(&all)?, true)
        )?;
        return Ok(());
    }
    writeln!(
        out,
        "{:>6}  {:<20}  {:>5}  {:<18}  {:<12}  {:<22}  {:<24}  {:<8}  MESSAGE",
        "ID", "LAST FAILED", "COUNT", "CODE", "TENANT", "TYPE", "COMMAND ID", "REPLAYED"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:>6}  {:<20}  {:>5}  {:<18}  {:<12}  {:<22}  {:<24}  {:<8}  {}",
            r.id,
            format_time(
                r.last_failed_at
                    .replace_nanosecond(0)
                    .unwrap_or(r.last_failed_at)
            ),
            r.failure_count,
            r.code,
            cut(r.tenant_id.as_deref().unwrap_or("-"), 12),
            cut(r.command_type.as_deref().unwrap_or("-"), 22),
            cut(r.command_id.as_deref().unwrap_or("-"), 24),
            match (r.replayed_at.is_some(), r.pending) {
                (false, _) => "no",
                (true, false) => "yes",
                (true, true) => "failed",
            },
            cut(&r.message, 80),
        )?;
    }
    writeln!(out, "{} dead letter(s)", rows.len())?;
    Ok(())
}

/// The body for a human: pretty JSON, else the escaped text, else hex.
pub fn render_body(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    match std::str::from_utf8(body) {
        Ok(text) => format!("(not JSON) {}", text.escape_debug()),
        Err(_) => {
            let mut hex = String::from("(not UTF-8; hex)\n");
            for chunk in body.chunks(16) {
                let line: Vec<String> = chunk.iter().map(|b| format!("{b:02x}")).collect();
                hex.push_str(&line.join(" "));
                hex.push('\n');
            }
            hex
        }
    }
}

/// A body as JSON output shows it: the JSON itself, else its text.
fn body_value(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
}

pub async fn show(pool: &PgPool, id: i64, as_json: bool) -> anyhow::Result<()> {
    let filter = DeadLetterFilter {
        ids: vec![id],
        ..DeadLetterFilter::default()
    };
    let Some(r) = journal::find_dead_letters(pool, &filter)
        .await?
        .into_iter()
        .next()
    else {
        return Err(CliError::NotFound(format!("no dead letter {id}")).into());
    };
    let history: Vec<Value> = replays::history(pool, id)
        .await?
        .iter()
        .map(|h| {
            json!({"at": format_time(h.at), "action": h.action, "replay": h.replay,
                   "amqp_user": h.amqp_user, "os_user": h.os_user, "result": h.result,
                   "old_body": h.old_body.as_deref().map(body_value),
                   "new_body": h.new_body.as_deref().map(body_value)})
        })
        .collect();
    let mut meta = row_json(&r);
    meta["exchange"] = json!(r.exchange);
    meta["properties"] = r.properties.clone();
    meta["body_bytes"] = json!(r.body.len());
    if as_json {
        meta["body"] = body_value(&r.body);
        meta["history"] = Value::Array(history);
        println!(
            "{}",
            escape_controls(&serde_json::to_string_pretty(&meta)?, true)
        );
        return Ok(());
    }
    println!(
        "{}",
        escape_controls(&serde_json::to_string_pretty(&meta)?, true)
    );
    if r.truncated() {
        println!(
            "--- body (first {} of {} bytes; too large to keep whole) ---",
            r.body.len(),
            r.body_len
        );
    } else {
        println!("--- body ---");
    }
    println!("{}", escape_controls(&render_body(&r.body), true));
    if !history.is_empty() {
        println!("--- history ---");
        for h in &history {
            let replay = h["replay"]
                .as_i64()
                .map(|n| format!(" #{n}"))
                .unwrap_or_default();
            println!(
                "{}  {}{replay}  by {} ({})  {}",
                h["at"].as_str().unwrap_or(""),
                h["action"].as_str().unwrap_or(""),
                h["amqp_user"].as_str().unwrap_or("-"),
                h["os_user"].as_str().unwrap_or("-"),
                escape_controls(h["result"].as_str().unwrap_or("(no outcome yet)"), false)
            );
        }
    }
    Ok(())
}

pub async fn groups(pool: &PgPool, tenant: Option<String>, as_json: bool) -> anyhow::Result<()> {
    let groups = replays::groups(pool, tenant.as_deref()).await?;
    if as_json {
        println!(
            "{}",
            escape_controls(&serde_json::to_string_pretty(&groups)?, true)
        );
        return Ok(());
    }
    println!(
        "{:<12}  {:>6}  {:<18}  {:<24}  {:<20}  TEMPLATE",
        "GROUP", "COUNT", "CODE", "TYPE", "LAST FAILED"
    );
    for g in &groups {
        println!(
            "{:<12}  {:>6}  {:<18}  {:<24}  {:<20}  {}",
            g.group,
            g.count,
            g.code,
            cut(g.command_type.as_deref().unwrap_or("-"), 24),
            format_time(
                g.last_failed_at
                    .replace_nanosecond(0)
                    .unwrap_or(g.last_failed_at)
            ),
            cut(&g.template, 80)
        );
    }
    println!("{} group(s)", groups.len());
    Ok(())
}

/// Headers the broker adds when it dead-letters or redelivers; a replay is a
/// fresh message, so they are not carried over.
fn broker_header(name: &str) -> bool {
    name == "x-death"
        || name == "x-delivery-count"
        || name.starts_with("x-first-death-")
        || name.starts_with("x-last-death-")
}

/// Rebuilds the original properties, adds `x-replayed`, sets `user_id` to
/// the replaying connection's user (RabbitMQ refuses any other, and the
/// worker believes replay headers only from a user granted `replay`), and
/// names the original producer in [`ORIGINAL_USER_HEADER`]: the worker
/// authorises the replay as that producer.
pub fn replay_properties(
    stored: &Value,
    replay_count: i32,
    replaying_user: &str,
    original_user: Option<&str>,
) -> BasicProperties {
    let mut headers = FieldTable::default();
    if let Some(Value::Object(h)) = stored.get("headers") {
        for (k, v) in h
            .iter()
            .filter(|(k, _)| !broker_header(k) && k.as_str() != ORIGINAL_USER_HEADER)
        {
            headers.insert(k.as_str().into(), amqp::json_to_amqp(v));
        }
    }
    if let Some(original) = original_user {
        headers.insert(
            ORIGINAL_USER_HEADER.into(),
            AMQPValue::LongString(LongString::from(original)),
        );
    }
    headers.insert(
        REPLAYED_HEADER.into(),
        AMQPValue::LongLongInt(i64::from(replay_count) + 1),
    );
    amqp::properties_from_json(stored)
        .with_user_id(replaying_user.into())
        .with_headers(headers)
}

/// Rows a replay selector names: explicit ids (whatever their state), or
/// the pending rows (not replayed since they last failed) of all / a code /
/// a tenant.
pub fn replay_filter(
    ids: Vec<i64>,
    all: bool,
    code: Option<String>,
    tenant: Option<String>,
    group: Option<String>,
) -> Result<DeadLetterFilter, CliError> {
    if ids.is_empty() && !all && code.is_none() && tenant.is_none() && group.is_none() {
        return Err(CliError::Failed(
            "name what to replay: IDs, --all, --code C, --tenant T or --group G".into(),
        ));
    }
    // A selector takes the rows that failed before the replay started: the
    // ones failing during it are not swept in.
    let before = ids.is_empty().then(OffsetDateTime::now_utc);
    Ok(DeadLetterFilter {
        pending_only: ids.is_empty(),
        ids,
        code,
        tenant,
        group,
        before,
        ..DeadLetterFilter::default()
    })
}

/// Replays the rows `filter` names: with `canary` (N, timeout), N of them
/// first, waiting for their outcomes and stopping if one fails again.
/// Exit status: 0 when every row named was replayed; 1 (a `Refused`) when
/// some were not (a canary failed, a replay of them is still in flight, a
/// cut body); 2 for anything else.
pub async fn replay(
    settings: &Settings,
    pool: &PgPool,
    filter: DeadLetterFilter,
    dry_run: bool,
    canary: Option<(usize, Duration)>,
) -> anyhow::Result<()> {
    let rows = journal::find_dead_letters(pool, &filter).await?;
    if rows.is_empty() {
        println!("nothing to replay");
        return Ok(());
    }
    // Only part of a cut body was kept: replaying it would send another message.
    let (rows, cut): (Vec<DeadLetterRow>, Vec<DeadLetterRow>) =
        rows.into_iter().partition(|r| !r.truncated());
    if !cut.is_empty() && (!filter.ids.is_empty() || rows.is_empty()) {
        let ids: Vec<String> = cut.iter().map(|r| r.id.to_string()).collect();
        return Err(CliError::Refused(format!(
            "dead letter(s) {} cannot be replayed: only the first bytes of their oversize body were kept",
            ids.join(", ")
        ))
        .into());
    }
    if dry_run {
        for r in &rows {
            println!(
                "would replay {} ({} {} {}) with key {}",
                r.id,
                r.tenant_id.as_deref().unwrap_or("-"),
                r.command_type.as_deref().unwrap_or("-"),
                r.command_id.as_deref().unwrap_or("-"),
                r.routing_key
            );
        }
        println!("dry run: {} dead letter(s) would be replayed", rows.len());
        return Ok(());
    }
    let who = operator(settings)?;
    let mut rest: &[DeadLetterRow] = &rows;
    let mut replayed = 0;
    let mut in_flight = 0;
    if let Some((n, timeout)) = canary {
        let (first, after) = rows.split_at(n.min(rows.len()));
        let (claims, skipped) = publish_rows(settings, pool, first, &who).await?;
        in_flight += skipped;
        wait_for_canary(pool, &claims, timeout).await?;
        println!(
            "canary: {} dead letter(s) replayed and applied",
            claims.len()
        );
        replayed += claims.len();
        rest = after;
    }
    let (claims, skipped) = publish_rows(settings, pool, rest, &who).await?;
    replayed += claims.len();
    in_flight += skipped;
    println!("{replayed} dead letter(s) replayed");
    if in_flight > 0 {
        return Err(CliError::Refused(format!(
            "{in_flight} dead letter(s) not replayed: a replay of them is still in flight (run again once it has an outcome)"
        ))
        .into());
    }
    match cut.len() {
        0 => Ok(()),
        n => Err(CliError::Refused(format!(
            "{n} dead letter(s) with a cut body were skipped: they cannot be replayed"
        ))
        .into()),
    }
}

/// Waits until every canary replay has an outcome; any but an applied one
/// stops the replay.
async fn wait_for_canary(pool: &PgPool, claims: &[Claim], timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let results = replays::results(pool, claims).await?;
        if let Some((c, r)) = claims
            .iter()
            .zip(&results)
            .find_map(|(c, r)| r.as_deref().filter(|r| !applied(r)).map(|r| (c, r)))
        {
            return Err(CliError::Refused(format!(
                "canary: dead letter {} {}; stopped before replaying the rest",
                c.dead_letter_id,
                escape_controls(r, false)
            ))
            .into());
        }
        if results.iter().all(Option::is_some) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let waiting = results.iter().filter(|r| r.is_none()).count();
            return Err(CliError::Refused(format!(
                "canary: {waiting} replay(s) had no outcome within {}; stopped before replaying the rest (is a worker running?)",
                humantime::format_duration(timeout)
            ))
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a replay's recorded result means it was applied.
fn applied(result: &str) -> bool {
    !(result.starts_with("failed again") || result.starts_with("not published"))
}

/// Who is replaying or editing: the replaying AMQP user (checked) and the
/// operating-system user.
fn operator(settings: &Settings) -> Result<Operator, CliError> {
    let os_user = ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|u| !u.is_empty()))
        .unwrap_or_else(|| "unknown".to_owned());
    Ok(Operator {
        amqp_user: replaying_user(settings)?,
        os_user,
    })
}

/// `dlq edit`: the corrected body must decode and pass admission as the
/// original producer; then it replaces the stored one and is replayed.
pub async fn edit(
    settings: &Settings,
    pool: &PgPool,
    id: i64,
    file: Option<std::path::PathBuf>,
    new_id: bool,
) -> anyhow::Result<()> {
    let filter = DeadLetterFilter {
        ids: vec![id],
        ..DeadLetterFilter::default()
    };
    let Some(row) = journal::find_dead_letters(pool, &filter)
        .await?
        .into_iter()
        .next()
    else {
        return Err(CliError::NotFound(format!("no dead letter {id}")).into());
    };
    if row.truncated() {
        return Err(CliError::Refused(format!(
            "dead letter {id} kept only the first bytes of its body: there is nothing whole to edit"
        ))
        .into());
    }
    let text = match file {
        Some(path) => std::fs::read(&path)
            .map_err(|e| CliError::Failed(format!("reading {}: {e}", path.display())))?,
        None if std::io::stdin().is_terminal() => edit_in_editor(&row.body)?,
        None => {
            return Err(CliError::Failed(
                "give the corrected body with --file F (or run on a terminal to use $EDITOR)"
                    .into(),
            )
            .into())
        }
    };
    let mut body: Value = serde_json::from_slice(&text).map_err(|e| {
        CliError::Refused(format!("the new body is not JSON ({e}); nothing published"))
    })?;
    let original_id = serde_json::from_slice::<Value>(&row.body)
        .ok()
        .and_then(|v| v.get("command_id").cloned())
        .or_else(|| row.command_id.clone().map(Value::String));
    if new_id {
        body["command_id"] = json!(uuid::Uuid::new_v4().to_string());
    } else if let Some(original) = original_id {
        body["command_id"] = original;
    }
    let bytes = serde_json::to_vec(&body)?;
    let routing_key = match (body["tenant"].as_str(), body["type"].as_str()) {
        (Some(t), Some(k)) => format!("{t}.{k}"),
        _ => row.routing_key.clone(),
    };
    let arrival = crate::domain::admission::Arrival {
        body: &bytes,
        body_len: bytes.len(),
        routing_key: &routing_key,
        user_id: row.user_id.as_deref(),
        replayed: false,
        original_user: None,
    };
    if let Err(f) = crate::domain::admission::admit(
        &arrival,
        &settings.limits,
        &settings.producers(),
        OffsetDateTime::now_utc(),
    ) {
        return Err(CliError::Refused(format!(
            "the new body is refused ({}): {}; nothing published",
            f.rejection.code, f.rejection.message
        ))
        .into());
    }
    let who = operator(settings)?;
    let sha = crate::intake::hex(&sha2::Sha256::digest(&bytes));
    replays::edit(
        pool,
        id,
        &row.body,
        &bytes,
        &journal::fingerprint(&routing_key, &sha),
        &sha,
        &routing_key,
        &who,
    )
    .await?;
    let edited = journal::find_dead_letters(pool, &filter).await?;
    let (claims, in_flight) = publish_rows(settings, pool, &edited, &who).await?;
    if in_flight > 0 {
        return Err(CliError::Refused(format!(
            "dead letter {id} was edited but not replayed: a replay of it is still in flight"
        ))
        .into());
    }
    println!(
        "dead letter {id} edited and replayed ({} published)",
        claims.len()
    );
    Ok(())
}

/// Opens the body, pretty-printed, in `$EDITOR` (or `vi`); returns the text saved.
fn edit_in_editor(body: &[u8]) -> Result<Vec<u8>, CliError> {
    let path = std::env::temp_dir().join(format!("dlq-edit-{}.json", uuid::Uuid::new_v4()));
    let pretty = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec_pretty(&v).ok())
        .unwrap_or_else(|| body.to_vec());
    std::fs::write(&path, pretty)
        .map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
    let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".to_owned());
    let status = std::process::Command::new(&editor)
        .arg(&path)
        .status()
        .map_err(|e| CliError::Failed(format!("starting {editor}: {e}")))?;
    let text = std::fs::read(&path)
        .map_err(|e| CliError::Failed(format!("reading {}: {e}", path.display())));
    let _ = std::fs::remove_file(&path);
    if !status.success() {
        return Err(CliError::Failed(format!(
            "{editor} exited with {status}; nothing changed"
        )));
    }
    text
}

/// The AMQP user a replay connects as, which must be granted `replay`
/// when producer authorisation is on.
fn replaying_user(settings: &Settings) -> Result<String, CliError> {
    let user = url::Url::parse(settings.amqp.url.expose_secret())
        .map(|u| u.username().to_owned())
        .unwrap_or_default();
    let user = if user.is_empty() {
        "guest".to_owned()
    } else {
        user
    };
    if !settings.producers().may_replay(Some(&user)) {
        return Err(CliError::Failed(format!(
            "AMQP user `{user}` may not replay: producer authorisation is on and [producers.{user}] does not grant `replay = true`"
        )));
    }
    Ok(user)
}

/// Claims rows and republishes the claimed ones with confirms, each marked
/// published once confirmed. Returns the claims published and how many
/// rows were left alone because a replay of them is in flight.
async fn publish_rows(
    settings: &Settings,
    pool: &PgPool,
    rows: &[DeadLetterRow],
    who: &Operator,
) -> anyhow::Result<(Vec<Claim>, usize)> {
    if rows.is_empty() {
        return Ok((vec![], 0));
    }
    let names = Names::new(&settings.amqp.prefix);
    let conn = amqp::connect(&settings.amqp, "dlq-replay").await?;
    let ch = amqp::confirm_channel(&conn).await?;
    // A progress bar only when the list would not fit on a screen.
    let bar = (rows.len() > 20 && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(rows.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut done = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for r in rows {
        // Claimed one at a time, just before publishing: a replay killed
        // mid-way leaves at most one row claimed and unpublished.
        let Some(c) = replays::claim(pool, &[r.id], who).await?.pop() else {
            skipped += 1;
            println!("skipped {}: a replay of it is still in flight", r.id);
            continue;
        };
        let props = replay_properties(
            &r.properties,
            r.replay_count,
            &who.amqp_user,
            r.user_id.as_deref(),
        );
        let confirm = ch
            .basic_publish(
                names.commands.as_str().into(),
                r.routing_key.as_str().into(),
                // Mandatory: a message that no queue takes comes back as an error.
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &r.body,
                props,
            )
            .await?
            .await?;
        if !confirm.is_ack() || confirm.take_message().is_some() {
            let why = format!(
                "not accepted by the broker (no queue for key `{}`?)",
                r.routing_key
            );
            replays::not_published(pool, c, &why).await?;
            return Err(CliError::Failed(format!(
                "dead letter {} was {why}; {} replayed before it",
                r.id,
                done.len()
            ))
            .into());
        }
        // Marked only after the confirm; the claim keeps a second replay
        // from publishing it again while its outcome is awaited.
        replays::published(pool, r.id).await?;
        done.push(c);
        match &bar {
            Some(b) => b.inc(1),
            None => println!("replayed {} with key {}", r.id, r.routing_key),
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    let _ = conn.close(200, "done".into()).await;
    Ok((done, skipped))
}

pub async fn purge(
    pool: &PgPool,
    ids: Vec<i64>,
    code: Option<String>,
    older_than: Option<Duration>,
    yes: bool,
) -> anyhow::Result<()> {
    if ids.is_empty() && code.is_none() && older_than.is_none() {
        return Err(CliError::Failed(
            "name what to purge: IDs, --code C or --older-than DURATION".into(),
        )
        .into());
    }
    let filter = DeadLetterFilter {
        ids,
        code,
        before: older_than.map(ago),
        ..DeadLetterFilter::default()
    };
    let rows = journal::find_dead_letters(pool, &filter).await?;
    if rows.is_empty() {
        println!("nothing to purge");
        return Ok(());
    }
    if !yes {
        if !std::io::stdin().is_terminal() {
            return Err(CliError::Failed(format!(
                "{} dead letter(s) match; add --yes to delete them",
                rows.len()
            ))
            .into());
        }
        eprint!("delete {} dead letter(s)? [y/N] ", rows.len());
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            println!("nothing purged");
            return Ok(());
        }
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
    let n = journal::purge_dead_letters(pool, &ids).await?;
    println!("{n} dead letter(s) purged");
    Ok(())
}
