//! Replaying and editing dead letters (contract sections 6 and 13): the
//! rules both the CLI (`dlq replay`, `dlq edit`) and the console follow,
//! with the same claims and history records. Callers print or render the
//! report; nothing here writes to a terminal.

use crate::store::dead_letters;
use crate::store::dead_letters::DeadLetterFilter;
use crate::store::dead_letters::DeadLetterRow;
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Digest;
use sqlx::PgPool;
use time::OffsetDateTime;

use crate::amqp::{self, Names, REPLAYED_HEADER};
use crate::config::Settings;
use crate::domain::policy::ORIGINAL_USER_HEADER;
use crate::store::replays::{self, Claim, Operator};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    NotFound(String),
    /// The rules refuse it, or part of it was not done (CLI exit 1).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
}

/// What a selector names: the rows that can be replayed, and those whose
/// body was cut (only its first bytes kept), which cannot.
pub struct Selected {
    pub rows: Vec<DeadLetterRow>,
    pub cut: Vec<DeadLetterRow>,
}

/// The rows `filter` names, split by whether they can be replayed. Naming
/// a cut row by id, or only cut rows, is refused outright.
pub async fn select(pool: &PgPool, filter: &DeadLetterFilter) -> Result<Selected, ReplayError> {
    let rows = dead_letters::find_dead_letters(pool, filter).await?;
    // Only part of a cut body was kept: replaying it would send another message.
    let (rows, cut): (Vec<DeadLetterRow>, Vec<DeadLetterRow>) =
        rows.into_iter().partition(|r| !r.truncated());
    if !cut.is_empty() && (!filter.ids.is_empty() || rows.is_empty()) {
        let ids: Vec<String> = cut.iter().map(|r| r.id.to_string()).collect();
        return Err(ReplayError::Refused(format!(
            "dead letter(s) {} cannot be replayed: only the first bytes of their oversize body were kept",
            ids.join(", ")
        )));
    }
    Ok(Selected { rows, cut })
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
) -> Result<DeadLetterFilter, ReplayError> {
    if ids.is_empty() && !all && code.is_none() && tenant.is_none() && group.is_none() {
        return Err(ReplayError::Failed(
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

/// One row's fate as a replay goes along.
pub enum Progress<'a> {
    Replayed(&'a DeadLetterRow),
    /// A replay of it is in flight (claimed, no outcome yet).
    Skipped(&'a DeadLetterRow),
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub replayed: usize,
    /// Of those, the canary's (applied before the rest were published).
    pub canary: Option<usize>,
    /// Rows left alone because a replay of them is in flight.
    pub in_flight: usize,
    /// Rows with a cut body, skipped.
    pub cut: usize,
}

impl Report {
    /// Why not every row named was replayed, if so: the CLI's exit 1.
    pub fn shortfall(&self) -> Option<String> {
        if self.in_flight > 0 {
            return Some(format!(
                "{} dead letter(s) not replayed: a replay of them is still in flight (run again once it has an outcome)",
                self.in_flight
            ));
        }
        (self.cut > 0).then(|| {
            format!(
                "{} dead letter(s) with a cut body were skipped: they cannot be replayed",
                self.cut
            )
        })
    }
}

/// The longest a canary may wait for its outcomes: a day is far beyond any
/// worker's backlog, and a longer wait would overflow the clock.
pub const MAX_CANARY_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);

/// Replays the selected rows: with `canary` (N, timeout), N of them first,
/// waiting for their outcomes and stopping (`Refused`) if one fails again.
pub async fn replay(
    settings: &Settings,
    pool: &PgPool,
    selected: Selected,
    who: &Operator,
    canary: Option<(usize, Duration)>,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<Report, ReplayError> {
    let mut report = Report {
        cut: selected.cut.len(),
        ..Report::default()
    };
    if let Some((_, timeout)) = canary.filter(|(_, t)| *t > MAX_CANARY_TIMEOUT) {
        return Err(ReplayError::Refused(format!(
            "a canary waits at most {}, not {}; nothing published",
            humantime::format_duration(MAX_CANARY_TIMEOUT),
            humantime::format_duration(timeout)
        )));
    }
    let mut rest: &[DeadLetterRow] = &selected.rows;
    if let Some((n, timeout)) = canary {
        let (first, after) = rest.split_at(n.min(rest.len()));
        let (claims, skipped) = publish_rows(settings, pool, first, who, progress).await?;
        report.in_flight += skipped;
        wait_for_canary(pool, &claims, timeout).await?;
        report.canary = Some(claims.len());
        report.replayed += claims.len();
        rest = after;
    }
    let (claims, skipped) = publish_rows(settings, pool, rest, who, progress).await?;
    report.replayed += claims.len();
    report.in_flight += skipped;
    Ok(report)
}

/// Waits until every canary replay has an outcome; any but an applied one
/// stops the replay.
async fn wait_for_canary(
    pool: &PgPool,
    claims: &[Claim],
    timeout: Duration,
) -> Result<(), ReplayError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let results = replays::results(pool, claims).await?;
        if let Some((c, r)) = claims
            .iter()
            .zip(&results)
            .find_map(|(c, r)| r.as_deref().filter(|r| !applied(r)).map(|r| (c, r)))
        {
            // As its template: this message reaches the console's audit
            // records; the row's history keeps the whole result.
            return Err(ReplayError::Refused(format!(
                "canary: dead letter {} {}; stopped before replaying the rest",
                c.dead_letter_id,
                crate::domain::failure::template(r)
            )));
        }
        if results.iter().all(Option::is_some) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let waiting = results.iter().filter(|r| r.is_none()).count();
            return Err(ReplayError::Refused(format!(
                "canary: {waiting} replay(s) had no outcome within {}; stopped before replaying the rest (is a worker running?)",
                humantime::format_duration(timeout)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a replay's recorded result means it was applied.
fn applied(result: &str) -> bool {
    !(result.starts_with("failed again") || result.starts_with("not published"))
}

/// Who replays or edits: the replaying AMQP user (which must be granted
/// `replay` when producer authorisation is on) and the person, as `person`.
pub fn operator(settings: &Settings, person: String) -> Result<Operator, ReplayError> {
    // The user the replay connects as: the first node's, as `amqp::connect`
    // tries that first (every node of a cluster shares its users).
    let first = settings.amqp.nodes()[0];
    let user = url::Url::parse(first.expose_secret())
        .map(|u| u.username().to_owned())
        .unwrap_or_default();
    let user = if user.is_empty() {
        "guest".to_owned()
    } else {
        user
    };
    if !settings.producers().may_replay(Some(&user)) {
        return Err(ReplayError::Failed(format!(
            "AMQP user `{user}` may not replay: producer authorisation is on and [producers.{user}] does not grant `replay = true`"
        )));
    }
    Ok(Operator {
        amqp_user: user,
        os_user: person,
    })
}

/// One dead letter by id.
pub async fn find(pool: &PgPool, id: i64) -> Result<DeadLetterRow, ReplayError> {
    let filter = DeadLetterFilter {
        ids: vec![id],
        ..DeadLetterFilter::default()
    };
    dead_letters::find_dead_letters(pool, &filter)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ReplayError::NotFound(format!("no dead letter {id}")))
}

/// Whether a dead letter's body can be edited at all.
pub fn editable(row: &DeadLetterRow) -> Result<(), ReplayError> {
    if row.truncated() {
        return Err(ReplayError::Refused(format!(
            "dead letter {} kept only the first bytes of its body: there is nothing whole to edit",
            row.id
        )));
    }
    Ok(())
}

/// `dlq edit`: the corrected body must be JSON and pass admission as the
/// original producer; then it replaces the stored one (recorded in the
/// row's history) and is replayed. Keeps the original `command_id` unless
/// `new_id`. Returns the report of the replay.
pub async fn edit(
    settings: &Settings,
    pool: &PgPool,
    row: &DeadLetterRow,
    text: &[u8],
    new_id: bool,
    who: &Operator,
) -> Result<Report, ReplayError> {
    editable(row)?;
    let mut body: Value = serde_json::from_slice(text).map_err(|e| {
        ReplayError::Refused(format!("the new body is not JSON ({e}); nothing published"))
    })?;
    if !body.is_object() {
        return Err(ReplayError::Refused(
            "the new body is not a JSON object; nothing published".into(),
        ));
    }
    let original_id = serde_json::from_slice::<Value>(&row.body)
        .ok()
        .and_then(|v| v.get("command_id").cloned())
        .or_else(|| row.command_id.clone().map(Value::String));
    if new_id {
        body["command_id"] = json!(uuid::Uuid::new_v4().to_string());
    } else if let Some(original) = original_id {
        body["command_id"] = original;
    }
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ReplayError::Failed(format!("encoding the new body: {e}")))?;
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
        // Sent with the stored headers, which storing cut to the limit.
        headers_depth: 0,
    };
    if let Err(f) = crate::domain::admission::admit(
        &arrival,
        &settings.limits,
        &settings.producers(),
        OffsetDateTime::now_utc(),
    ) {
        return Err(ReplayError::Refused(format!(
            "the new body is refused ({}): {}; nothing published",
            f.rejection.code, f.rejection.message
        )));
    }
    let sha = hex::encode(sha2::Sha256::digest(&bytes));
    replays::edit(
        pool,
        row.id,
        &row.body,
        &bytes,
        &dead_letters::fingerprint(&routing_key, &sha),
        &sha,
        &routing_key,
        who,
    )
    .await?;
    let edited = vec![find(pool, row.id).await?];
    let (claims, in_flight) = publish_rows(settings, pool, &edited, who, &mut |_| {}).await?;
    if in_flight > 0 {
        return Err(ReplayError::Refused(format!(
            "dead letter {} was edited but not replayed: a replay of it is still in flight",
            row.id
        )));
    }
    Ok(Report {
        replayed: claims.len(),
        ..Report::default()
    })
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

/// Claims rows and republishes the claimed ones with confirms, each marked
/// published once confirmed. Returns the claims published and how many
/// rows were left alone because a replay of them is in flight.
async fn publish_rows(
    settings: &Settings,
    pool: &PgPool,
    rows: &[DeadLetterRow],
    who: &Operator,
    progress: &mut (dyn FnMut(Progress<'_>) + Send),
) -> Result<(Vec<Claim>, usize), ReplayError> {
    if rows.is_empty() {
        return Ok((vec![], 0));
    }
    let names = Names::new(&settings.amqp.prefix);
    let conn = amqp::connect(&settings.amqp, "dlq-replay").await?;
    let ch = amqp::confirm_channel(&conn).await?;
    let mut done = Vec::with_capacity(rows.len());
    let mut skipped = 0;
    for r in rows {
        // Claimed one at a time, just before publishing: a replay killed
        // mid-way leaves at most one row claimed and unpublished.
        let Some(c) = replays::claim(pool, &[r.id], who).await?.pop() else {
            skipped += 1;
            progress(Progress::Skipped(r));
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
            let _ = conn.close(200, "failed".into()).await;
            return Err(ReplayError::Failed(format!(
                "dead letter {} was {why}; {} replayed before it",
                r.id,
                done.len()
            )));
        }
        // Marked only after the confirm; the claim keeps a second replay
        // from publishing it again while its outcome is awaited.
        replays::published(pool, r.id).await?;
        done.push(c);
        progress(Progress::Replayed(r));
    }
    let _ = conn.close(200, "done".into()).await;
    Ok((done, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replay_connects_as_the_user_of_the_nodes_it_connects_to() {
        let mut s = Settings::default();
        assert_eq!(operator(&s, "ana".into()).unwrap().amqp_user, "guest");
        s.amqp.urls = vec![
            secrecy::SecretString::from("amqp://ops:pw@rabbit-1:5672/%2f"),
            secrecy::SecretString::from("amqp://ops:pw@rabbit-2:5672/%2f"),
        ];
        let who = operator(&s, "ana".into()).unwrap();
        assert_eq!(
            (who.amqp_user.as_str(), who.os_user.as_str()),
            ("ops", "ana")
        );
    }
}
