//! `dlq list | show | groups | replay | edit | purge`: the operator's view
//! of the dead-letter store (contract sections 6 and 13).

use crate::store::dead_letters;
use crate::store::dead_letters::DeadLetterFilter;
use crate::store::dead_letters::DeadLetterRow;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sqlx::PgPool;
use time::OffsetDateTime;

use super::CliError;
use crate::body;
use crate::config::Settings;
use crate::domain::event::format_time;
use crate::replay::{self, Progress, ReplayError};
use crate::store::replays;

/// Parses `7d`, `24h`, `30m`, `90s` (anything humantime accepts).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("`{s}` is not a duration like 7d, 24h or 30m: {e}"))
}

/// [`parse_duration`], at most [`replay::MAX_CANARY_TIMEOUT`].
pub fn parse_canary_timeout(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d > replay::MAX_CANARY_TIMEOUT {
        return Err(format!(
            "a canary waits at most {}",
            humantime::format_duration(replay::MAX_CANARY_TIMEOUT)
        ));
    }
    Ok(d)
}

/// `d` before now; a span longer than the calendar reaches means since
/// long before any dead letter (never a panic).
fn ago(d: Duration) -> OffsetDateTime {
    time::Duration::try_from(d)
        .ok()
        .and_then(|d| OffsetDateTime::now_utc().checked_sub(d))
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
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
    let rows = dead_letters::find_dead_letters(pool, &filter).await?;
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
    let Some(r) = dead_letters::find_dead_letters(pool, &filter)
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
    println!("{}", escape_controls(&body::render(&r.body), true));
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

pub async fn groups(
    pool: &PgPool,
    tenant: Option<String>,
    limit: u32,
    as_json: bool,
) -> anyhow::Result<()> {
    let mut groups =
        replays::groups_page(pool, tenant.as_deref(), None, i64::from(limit) + 1).await?;
    let more = groups.len() > limit as usize;
    groups.truncate(limit as usize);
    if more {
        eprintln!("showing the {limit} largest groups; there are more (--limit N shows more)");
    }
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

/// Replays the rows `filter` names (see [`crate::replay::replay`]).
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
    let selected = replay::select(pool, &filter).await.map_err(cli_error)?;
    if selected.rows.is_empty() {
        println!("nothing to replay");
        return Ok(());
    }
    if dry_run {
        for r in &selected.rows {
            println!(
                "would replay {} ({} {} {}) with key {}",
                r.id,
                r.tenant_id.as_deref().unwrap_or("-"),
                r.command_type.as_deref().unwrap_or("-"),
                escape_controls(r.command_id.as_deref().unwrap_or("-"), false),
                escape_controls(&r.routing_key, false)
            );
        }
        println!(
            "dry run: {} dead letter(s) would be replayed",
            selected.rows.len()
        );
        return Ok(());
    }
    let who = replay::operator(settings, super::whoami::os_user()).map_err(cli_error)?;
    // A progress bar only when the list would not fit on a screen.
    let bar = (selected.rows.len() > 20 && std::io::stderr().is_terminal()).then(|| {
        let b = ProgressBar::new(selected.rows.len() as u64);
        b.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} replayed ({eta} left)")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let mut progress = |p: Progress<'_>| match (p, &bar) {
        (Progress::Replayed(_), Some(b)) => b.inc(1),
        (Progress::Replayed(r), None) => println!(
            "replayed {} with key {}",
            r.id,
            escape_controls(&r.routing_key, false)
        ),
        (Progress::Skipped(r), _) => {
            println!("skipped {}: a replay of it is still in flight", r.id)
        }
    };
    let report = replay::replay(settings, pool, selected, &who, canary, &mut progress)
        .await
        .map_err(cli_error)?;
    if let Some(b) = &bar {
        b.finish();
    }
    if let Some(n) = report.canary {
        println!("canary: {n} dead letter(s) replayed and applied");
    }
    println!("{} dead letter(s) replayed", report.replayed);
    match report.shortfall() {
        Some(why) => Err(CliError::Refused(why).into()),
        None => Ok(()),
    }
}

/// The library's refusals keep their exit status.
fn cli_error(e: ReplayError) -> anyhow::Error {
    match e {
        ReplayError::NotFound(m) => CliError::NotFound(m).into(),
        ReplayError::Refused(m) => CliError::Refused(escape_controls(&m, false)).into(),
        ReplayError::Failed(m) => CliError::Failed(m).into(),
        other => other.into(),
    }
}

/// `dlq edit`: the corrected body from `--file` or `$EDITOR`.
pub async fn edit(
    settings: &Settings,
    pool: &PgPool,
    id: i64,
    file: Option<std::path::PathBuf>,
    new_id: bool,
) -> anyhow::Result<()> {
    let row = replay::find(pool, id).await.map_err(cli_error)?;
    replay::editable(&row).map_err(cli_error)?;
    let text = match file {
        Some(path) => std::fs::read(&path)
            .map_err(|e| CliError::Failed(format!("reading {}: {e}", path.display())))?,
        None if std::io::stdin().is_terminal() => {
            let editor = std::env::var("EDITOR").unwrap_or_else(|_| "vi".to_owned());
            edit_in_editor(&row.body, &editor)?
        }
        None => {
            return Err(CliError::Failed(
                "give the corrected body with --file F (or run on a terminal to use $EDITOR)"
                    .into(),
            )
            .into())
        }
    };
    let who = replay::operator(settings, super::whoami::os_user()).map_err(cli_error)?;
    let report = replay::edit(settings, pool, &row, &text, new_id, &who)
        .await
        .map_err(cli_error)?;
    println!(
        "dead letter {id} edited and replayed ({} published)",
        report.replayed
    );
    Ok(())
}

/// Opens the body, pretty-printed, in `editor`; returns the text saved.
/// The body may hold personal data: the file is readable by its owner
/// only, and removed on every way out of here. As `system(3)` does, this
/// process ignores SIGINT and SIGQUIT while the editor runs (the editor
/// gets them as usual), so a ctrl-c in the editor cannot end the CLI
/// before it removes the file.
fn edit_in_editor(body: &[u8], editor: &str) -> Result<Vec<u8>, CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use std::os::unix::process::CommandExt;

    /// Removes the file when dropped, whatever happened.
    struct Removed(std::path::PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    let path = std::env::temp_dir().join(format!("dlq-edit-{}.json", uuid::Uuid::new_v4()));
    let failed =
        |what: &str, e: std::io::Error| CliError::Failed(format!("{what} {}: {e}", path.display()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| failed("creating", e))?;
    let guard = Removed(path.clone());
    let pretty = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| serde_json::to_vec_pretty(&v).ok())
        .unwrap_or_else(|| body.to_vec());
    file.write_all(&pretty)
        .and_then(|()| file.sync_all())
        .map_err(|e| failed("writing", e))?;
    drop(file);

    let ignored = IgnoredInterrupts::new();
    let mut command = std::process::Command::new(editor);
    command.arg(&path);
    // SAFETY: only signal(2), which is async-signal-safe, runs in the child.
    unsafe {
        command.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGQUIT, libc::SIG_DFL);
            Ok(())
        });
    }
    let status = command.status();
    drop(ignored);
    let status = status.map_err(|e| CliError::Failed(format!("starting {editor}: {e}")))?;
    if !status.success() {
        return Err(CliError::Failed(format!(
            "{editor} exited with {status}; nothing changed"
        )));
    }
    let text = std::fs::read(&guard.0).map_err(|e| failed("reading", e));
    drop(guard);
    text
}

/// SIGINT and SIGQUIT ignored until dropped, then as they were.
struct IgnoredInterrupts {
    int: libc::sighandler_t,
    quit: libc::sighandler_t,
}

impl IgnoredInterrupts {
    fn new() -> IgnoredInterrupts {
        // SAFETY: setting a signal's disposition to SIG_IGN has no
        // preconditions; the previous ones are restored on drop.
        unsafe {
            IgnoredInterrupts {
                int: libc::signal(libc::SIGINT, libc::SIG_IGN),
                quit: libc::signal(libc::SIGQUIT, libc::SIG_IGN),
            }
        }
    }
}

impl Drop for IgnoredInterrupts {
    fn drop(&mut self) {
        // SAFETY: restores the dispositions `new` found.
        unsafe {
            libc::signal(libc::SIGINT, self.int);
            libc::signal(libc::SIGQUIT, self.quit);
        }
    }
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
    let rows = dead_letters::find_dead_letters(pool, &filter).await?;
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
    let n = dead_letters::purge_dead_letters(pool, &ids).await?;
    println!("{n} dead letter(s) purged");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// An editor that records the file's mode and path, then edits it or
    /// fails.
    fn editor(dir: &std::path::Path, succeed: bool) -> String {
        let script = dir.join(if succeed { "ok.sh" } else { "fail.sh" });
        let body = if succeed {
            "printf '{\"edited\":true}' > \"$1\"; exit 0"
        } else {
            "exit 3"
        };
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nstat -c %a \"$1\" > {d}/mode\necho \"$1\" > {d}/path\n{body}\n",
                d = dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o700)).unwrap();
        script.display().to_string()
    }

    #[test]
    fn the_edited_body_is_private_to_its_owner_and_removed_on_every_way_out() {
        let dir = std::env::temp_dir().join(format!("lw-edit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let seen = |name: &str| {
            std::fs::read_to_string(dir.join(name))
                .unwrap()
                .trim()
                .to_owned()
        };
        for succeed in [true, false] {
            let result = edit_in_editor(br#"{"email":"a@example.com"}"#, &editor(&dir, succeed));
            assert_eq!(result.is_ok(), succeed, "{result:?}");
            if succeed {
                assert_eq!(result.unwrap(), br#"{"edited":true}"#);
            }
            assert_eq!(seen("mode"), "600");
            assert!(!std::path::Path::new(&seen("path")).exists(), "left behind");
        }
        assert!(edit_in_editor(b"{}", "/nonexistent/editor").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
