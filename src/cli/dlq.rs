//! `dlq list | show | replay | purge`: the operator's view of the dead-letter
//! store (contract section 6).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::CliError;
use crate::amqp::{self, Names, REPLAYED_HEADER};
use crate::config::Settings;
use crate::domain::event::format_time;
use crate::domain::policy::ORIGINAL_USER_HEADER;
use crate::store::journal::{self, DeadLetterFilter, DeadLetterRow};

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

pub async fn show(pool: &PgPool, id: i64) -> anyhow::Result<()> {
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
    let mut meta = row_json(&r);
    meta["exchange"] = json!(r.exchange);
    meta["properties"] = r.properties.clone();
    meta["body_bytes"] = json!(r.body.len());
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
) -> Result<DeadLetterFilter, CliError> {
    if ids.is_empty() && !all && code.is_none() && tenant.is_none() {
        return Err(CliError::Failed(
            "name what to replay: IDs, --all, --code C or --tenant T".into(),
        ));
    }
    Ok(DeadLetterFilter {
        pending_only: ids.is_empty(),
        ids,
        code,
        tenant,
        ..DeadLetterFilter::default()
    })
}

pub async fn replay(
    settings: &Settings,
    pool: &PgPool,
    filter: DeadLetterFilter,
    dry_run: bool,
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
    let user = replaying_user(settings)?;
    let replayed = publish_rows(settings, pool, &rows, &user).await?;
    println!("{replayed} dead letter(s) replayed");
    match cut.len() {
        0 => Ok(()),
        n => Err(CliError::Refused(format!(
            "{n} dead letter(s) with a cut body were skipped: they cannot be replayed"
        ))
        .into()),
    }
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

/// Republishes rows with confirms, marking each replayed once confirmed;
/// returns how many were.
async fn publish_rows(
    settings: &Settings,
    pool: &PgPool,
    rows: &[DeadLetterRow],
    user: &str,
) -> anyhow::Result<usize> {
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
    let mut replayed = 0usize;
    for r in rows {
        let props = replay_properties(&r.properties, r.replay_count, user, r.user_id.as_deref());
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
            return Err(CliError::Failed(format!(
                "dead letter {} was not accepted by the broker (no queue for key `{}`?); {replayed} replayed before it",
                r.id, r.routing_key
            ))
            .into());
        }
        // Marked only after the confirm: an interrupted replay re-sends at
        // most the row in flight, and the inbox makes that a duplicate.
        journal::mark_replayed(pool, r.id).await?;
        replayed += 1;
        match &bar {
            Some(b) => b.inc(1),
            None => println!("replayed {} with key {}", r.id, r.routing_key),
        }
    }
    if let Some(b) = bar {
        b.finish();
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(replayed)
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
