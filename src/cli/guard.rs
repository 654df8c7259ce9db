//! `guard status | list | release | discard`: the operator's side of the
//! mass-change guardrail (contract section 10).

use clap::Subcommand;
use serde_json::{json, Value};
use sqlx::PgPool;

use super::CliError;
use crate::config::Settings;
use crate::domain::event::format_time;
use crate::guard::{self, Selection};
use crate::store::guardrail;

#[derive(Debug, Subcommand)]
pub enum GuardCommand {
    /// Per tenant: tripped or not, destructive changes in the window, the allowance.
    ///
    /// Example: lifecycle-worker guard status --tenant acme
    Status {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Held commands, in the order they were held.
    ///
    /// Example: lifecycle-worker guard list --tenant acme --json
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Apply held commands, once each, in the order held, judged by their
    /// own issued_at. --all also untrips the tenant and restarts its count.
    /// --dry-run shows what each would do now and changes nothing.
    ///
    /// Example: lifecycle-worker guard release --tenant acme --all --dry-run
    Release {
        #[arg(long)]
        tenant: String,
        #[arg(long, conflicts_with = "hold_ids")]
        all: bool,
        hold_ids: Vec<i64>,
        #[arg(long)]
        dry_run: bool,
    },
    /// Reject held commands with code `discarded` into the dead-letter store.
    /// --all also untrips the tenant.
    ///
    /// Example: lifecycle-worker guard discard --tenant acme 17 18
    Discard {
        #[arg(long)]
        tenant: String,
        #[arg(long, conflicts_with = "hold_ids")]
        all: bool,
        hold_ids: Vec<i64>,
    },
}

fn selection(all: bool, ids: Vec<i64>) -> Result<Selection, CliError> {
    match (all, ids.is_empty()) {
        (true, _) => Ok(Selection::All),
        (false, false) => Ok(Selection::Ids(ids)),
        (false, true) => Err(CliError::Failed("name what: HOLD_ID… or --all".into())),
    }
}

pub async fn run(settings: &Settings, pool: &PgPool, cmd: GuardCommand) -> anyhow::Result<()> {
    match cmd {
        GuardCommand::Status { tenant, json } => status(settings, pool, tenant, json).await,
        GuardCommand::List { tenant, json } => list(pool, tenant, json).await,
        GuardCommand::Release {
            tenant,
            all,
            hold_ids,
            dry_run,
        } => {
            let selection = selection(all, hold_ids)?;
            let done = if dry_run {
                guard::preview(settings, pool, &tenant, &selection, None).await?
            } else {
                guard::release(
                    settings,
                    pool,
                    &tenant,
                    selection,
                    &super::whoami::os_user(),
                )
                .await?
            };
            let verb = if dry_run { "would get" } else { "got" };
            for r in &done {
                let entity = r.entity.as_ref().map_or("bulk".to_owned(), |e| {
                    format!("{} {}", e.kind.as_str(), e.id)
                });
                println!(
                    "hold {} ({} {}, {entity}) {verb} {}",
                    r.hold_id,
                    r.command_type,
                    r.command_id,
                    r.outcome.as_str()
                );
            }
            let suppressed: u64 = done.iter().map(|r| r.suppressed).sum();
            let prefix = if dry_run { "dry run: " } else { "" };
            println!(
                "{prefix}{} held command(s) released; {suppressed} address(es) {} suppressed",
                done.len(),
                if dry_run { "would become" } else { "became" }
            );
            Ok(())
        }
        GuardCommand::Discard {
            tenant,
            all,
            hold_ids,
        } => {
            let selection = selection(all, hold_ids)?;
            let n = guard::discard(
                settings,
                pool,
                &tenant,
                selection,
                &super::whoami::os_user(),
            )
            .await?;
            println!("{n} held command(s) discarded into the dead-letter store");
            Ok(())
        }
    }
}

async fn status(
    settings: &Settings,
    pool: &PgPool,
    tenant: Option<String>,
    as_json: bool,
) -> anyhow::Result<()> {
    let policies = settings.policies();
    let rows = guardrail::status(pool, |t| policies.for_tenant(t).guardrail.clone(), None).await?;
    let rows: Vec<Value> = rows
        .into_iter()
        .filter(|(t, _, _)| tenant.as_deref().is_none_or(|want| want == t))
        .map(|(t, tripped, count)| {
            let g = &policies.for_tenant(&t).guardrail;
            json!({
                "tenant": t, "tripped": tripped, "count": count,
                "max_changes": g.max_changes,
                "window": humantime::format_duration(g.window).to_string(),
                "enabled": g.enabled,
            })
        })
        .collect();
    if as_json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<20}  {:<8}  {:>8}  {:>11}  WINDOW",
        "TENANT", "TRIPPED", "COUNT", "MAX CHANGES"
    );
    for r in &rows {
        println!(
            "{:<20}  {:<8}  {:>8}  {:>11}  {}",
            r["tenant"].as_str().unwrap_or("-"),
            if r["tripped"] == true { "yes" } else { "no" },
            r["count"],
            r["max_changes"],
            r["window"].as_str().unwrap_or("-"),
        );
    }
    Ok(())
}

async fn list(pool: &PgPool, tenant: Option<String>, as_json: bool) -> anyhow::Result<()> {
    let held = guardrail::list(pool, tenant.as_deref()).await?;
    let rows: Vec<Value> = held
        .iter()
        .map(|h| {
            let entity = match (&h.entity_kind, &h.entity_id) {
                (Some(kind), Some(id)) => json!({"kind": kind, "id": id}),
                _ => Value::Null,
            };
            json!({
                "hold_id": h.hold_id, "tenant": h.tenant_id, "command_id": h.command_id,
                "type": h.command_type, "entity": entity, "contact_ids": h.contact_ids,
                "held_at": format_time(h.held_at), "user_id": h.user_id,
            })
        })
        .collect();
    if as_json {
        println!(
            "{}",
            super::dlq::escape_controls(&serde_json::to_string_pretty(&rows)?, true)
        );
        return Ok(());
    }
    println!(
        "{:>8}  {:<12}  {:<22}  {:<24}  ENTITY",
        "HOLD", "TENANT", "TYPE", "COMMAND ID"
    );
    for h in &held {
        let entity = match (&h.entity_kind, &h.entity_id) {
            (Some(kind), Some(id)) => format!("{kind} {id}"),
            _ => "bulk".to_owned(),
        };
        println!(
            "{:>8}  {:<12}  {:<22}  {:<24}  {}",
            h.hold_id,
            h.tenant_id,
            h.command_type,
            super::dlq::escape_controls(&h.command_id, false),
            super::dlq::escape_controls(&entity, false)
        );
    }
    println!("{} held command(s)", held.len());
    Ok(())
}
