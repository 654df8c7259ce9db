//! The command line: `run`, `migrate`, `contact show`, `user show`, `publish`.

pub mod check;
pub mod dlq;
pub mod guard;
pub mod privacy;
pub mod whoami;

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde_json::Value;

use crate::amqp::{self, Names};
use crate::config::Settings;
use crate::domain::contact::Contact;
use crate::domain::user::User;
use crate::store::{self, entities};

#[derive(Debug, Parser)]
#[command(
    name = "lifecycle-worker",
    version,
    about = "Applies employer-contact and employer-user lifecycle commands from RabbitMQ to Postgres and publishes change events.",
    after_help = "Configuration: built-in defaults, then --config FILE (TOML), then LIFECYCLE__SECTION__KEY environment variables,\n\
                  e.g. LIFECYCLE__DATABASE__URL, LIFECYCLE__AMQP__URL, LIFECYCLE__AMQP__PREFIX, LIFECYCLE__HTTP__LISTEN."
)]
pub struct Cli {
    /// TOML configuration file (accepted before or after the subcommand).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the worker: consumers, outbox relay and HTTP (/healthz, /readyz, /metrics).
    ///
    /// Creates the database if missing and runs migrations first. Stops on
    /// SIGTERM or ctrl-c after finishing in-flight commands.
    ///
    /// Example: LIFECYCLE__AMQP__PREFIX=lifecycle lifecycle-worker run --config /etc/lifecycle-worker/config.toml
    Run,
    /// Create the database if missing and run the migrations (safe to run twice).
    ///
    /// Example: LIFECYCLE__DATABASE__URL=postgres://postgres@127.0.0.1:5432/lifecycle lifecycle-worker migrate
    Migrate,
    /// Check the configuration and that Postgres and RabbitMQ are reachable
    /// with the configured credentials; exit 1 and say what is wrong if not.
    /// Warns (exit status unchanged) about a connection to another machine
    /// that is not verified TLS.
    ///
    /// Example: LIFECYCLE__AMQP__URL=amqps://user:pw@mq:5671/%2f lifecycle-worker check
    Check,
    /// Inspect contacts.
    #[command(subcommand)]
    Contact(ContactCommand),
    /// Inspect employer users.
    #[command(subcommand)]
    User(UserCommand),
    /// Write the JSON Schemas of every command, the reply and every event.
    ///
    /// Example: lifecycle-worker schemas --out deploy/schemas
    Schemas {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
    },
    /// Inspect, replay and purge dead letters.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// The mass-change guardrail: status, held commands, release, discard.
    #[command(subcommand)]
    Guard(guard::GuardCommand),
    /// Data-subject requests: who holds an address, whether it was erased.
    #[command(subcommand)]
    Privacy(privacy::PrivacyCommand),
    /// Effective-dated commands waiting for their time.
    #[command(subcommand)]
    Schedule(ScheduleCommand),
    /// Publish a command (JSON) from a file or stdin to `{prefix}.commands`.
    ///
    /// The routing key is `{tenant}.{type}` from the body. Example:
    ///   echo '{"command_id":"c1","type":"contact.deactivate","tenant":"acme",
    ///          "issued_at":"2026-11-22T08:00:00Z","payload":{"contact_id":"c-17"}}' \
    ///     | lifecycle-worker publish --wait
    Publish {
        /// Read the command from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Wait for the worker's reply and print it.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContactCommand {
    /// Print a contact's snapshot as JSON (exit code 1 if there is none).
    ///
    /// Example: lifecycle-worker contact show --tenant acme c-17 --activity
    Show {
        /// The tenant key, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The contact id (the upstream system's own id).
        id: String,
        /// Add the activity trail as `activity`.
        #[arg(long)]
        activity: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Print an employer user's snapshot as JSON (exit code 1 if there is none).
    ///
    /// Example: lifecycle-worker user show --tenant acme u-3
    Show {
        /// The tenant key, e.g. `acme`.
        #[arg(long)]
        tenant: String,
        /// The user id (the upstream system's own id).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Pending scheduled commands by due time, as a table or JSON.
    ///
    /// Example: lifecycle-worker schedule list --tenant acme --json
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Cancels a scheduled command as an operator (a `command.cancel`
    /// with you as its actor): exit 0 when cancelled, 1 when it had already
    /// run, was cancelled or does not exist.
    ///
    /// Example: lifecycle-worker schedule cancel --tenant acme 7f0c6d2e-…
    Cancel {
        #[arg(long)]
        tenant: String,
        command_id: String,
    },
}

/// Runs a `schedule` subcommand.
pub async fn schedule(settings: &Settings, cmd: ScheduleCommand) -> anyhow::Result<()> {
    let pool = store::connect(settings).await?;
    let (tenant, json) = match cmd {
        ScheduleCommand::List { tenant, json } => (tenant, json),
        ScheduleCommand::Cancel { tenant, command_id } => {
            let actor = whoami::os_user();
            return match crate::guard::cancel_scheduled(
                settings,
                &pool,
                &tenant,
                &command_id,
                &actor,
            )
            .await
            {
                Ok(()) => {
                    println!("scheduled command {command_id} cancelled");
                    Ok(())
                }
                Err(e @ crate::guard::GuardError::NotCancelled { .. }) => {
                    Err(CliError::Refused(e.to_string()).into())
                }
                Err(e) => Err(e.into()),
            };
        }
    };
    let rows = crate::store::schedule::list(&pool, tenant.as_deref(), None).await?;
    let at = |s: &crate::store::schedule::Scheduled| crate::domain::ts::Ts(s.effective_at);
    if json {
        let list: Vec<Value> = rows
            .iter()
            .map(|s| {
                serde_json::json!({"tenant": s.tenant_id, "command_id": s.command_id,
                    "type": s.command_type, "effective_at": at(s),
                    "entity": {"kind": s.entity_kind, "id": s.entity_id}, "user_id": s.user_id})
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<26} {:<16} {:<36} {:<26} ENTITY",
        "EFFECTIVE_AT", "TENANT", "COMMAND_ID", "TYPE"
    );
    for s in &rows {
        println!(
            "{:<26} {:<16} {:<36} {:<26} {}/{}",
            crate::domain::event::format_time(s.effective_at),
            s.tenant_id,
            s.command_id,
            s.command_type,
            s.entity_kind,
            s.entity_id
        );
    }
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead letters, newest failures included, as a table or JSON.
    ///
    /// Example: lifecycle-worker dlq list --tenant acme --code not_found --since 24h
    List {
        #[arg(long)]
        tenant: Option<String>,
        /// An error code such as malformed, invalid_command, not_found, poison.
        #[arg(long)]
        code: Option<String>,
        /// Only rows that failed within this long, e.g. 30m, 24h, 7d.
        #[arg(long, value_parser = dlq::parse_duration)]
        since: Option<Duration>,
        /// A JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter: metadata, properties, the body (pretty JSON,
    /// escaped text or hex) and its history of replays and edits.
    ///
    /// Example: lifecycle-worker dlq show 42 --json
    Show {
        id: i64,
        /// One JSON object, body and history included.
        #[arg(long)]
        json: bool,
    },
    /// Failure causes of the rows not replayed successfully: code, type and
    /// the message with ids, numbers and quoted values as placeholders.
    ///
    /// Example: lifecycle-worker dlq groups --tenant acme --json
    Groups {
        #[arg(long)]
        tenant: Option<String>,
        /// Show at most N groups, the largest first.
        #[arg(long, value_name = "N", default_value_t = 100,
              value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Replace a dead letter's body by a corrected one and replay it. The
    /// new body must decode and is authorised as the original producer; it
    /// keeps the command_id unless --new-id. Without --file, opens $EDITOR.
    ///
    /// Example: lifecycle-worker dlq edit 42 --file fixed.json
    Edit {
        id: i64,
        #[arg(long, value_name = "FILE")]
        file: Option<PathBuf>,
        /// Give the command a new command_id (a new command, not a retry).
        #[arg(long)]
        new_id: bool,
    },
    /// Republish dead letters to `{prefix}.commands` with their original
    /// routing key and properties, plus header `x-replayed`.
    ///
    /// --all, --code and --tenant pick rows not replayed since they last
    /// failed; explicit IDs are replayed whatever their state. A command that
    /// was in fact applied comes back as a duplicate, never a second effect.
    ///
    /// Examples: lifecycle-worker dlq replay 42 43
    ///           lifecycle-worker dlq replay --code not_found --dry-run
    Replay {
        ids: Vec<i64>,
        #[arg(long, conflicts_with_all = ["ids", "code", "tenant", "group"])]
        all: bool,
        #[arg(long, conflicts_with = "ids")]
        code: Option<String>,
        #[arg(long, conflicts_with = "ids")]
        tenant: Option<String>,
        /// A failure group (`dlq groups`): its rows that failed before the
        /// replay started.
        #[arg(long, conflicts_with = "ids")]
        group: Option<String>,
        /// Replay N rows first and stop (exit 1) if any fails again.
        #[arg(long, value_name = "N")]
        canary: Option<usize>,
        /// How long the canary waits for its outcomes, e.g. 60s.
        #[arg(long, value_parser = dlq::parse_canary_timeout, default_value = "60s")]
        canary_timeout: Duration,
        /// List what would be replayed; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Delete dead letters (asks first unless --yes).
    ///
    /// Example: lifecycle-worker dlq purge --older-than 30d --yes
    Purge {
        ids: Vec<i64>,
        #[arg(long, conflicts_with = "ids")]
        code: Option<String>,
        /// Rows whose last failure is older than this, e.g. 30d.
        #[arg(long, value_parser = dlq::parse_duration, conflicts_with = "ids")]
        older_than: Option<Duration>,
        /// Do not ask.
        #[arg(long)]
        yes: bool,
    },
}

/// Runs a `privacy` subcommand.
pub async fn privacy(settings: &Settings, cmd: privacy::PrivacyCommand) -> anyhow::Result<()> {
    let pool = store::connect(settings).await?;
    privacy::run(settings, &pool, cmd).await
}

/// Runs a `guard` subcommand.
pub async fn guard(settings: &Settings, cmd: guard::GuardCommand) -> anyhow::Result<()> {
    let pool = store::connect(settings).await?;
    guard::run(settings, &pool, cmd).await
}

/// Runs a `dlq` subcommand.
pub async fn dlq(settings: &Settings, cmd: DlqCommand) -> anyhow::Result<()> {
    let pool = store::connect(settings).await?;
    match cmd {
        DlqCommand::List {
            tenant,
            code,
            since,
            json,
        } => dlq::list(&pool, tenant, code, since, json).await,
        DlqCommand::Show { id, json } => dlq::show(&pool, id, json).await,
        DlqCommand::Groups {
            tenant,
            limit,
            json,
        } => dlq::groups(&pool, tenant, limit, json).await,
        DlqCommand::Edit { id, file, new_id } => dlq::edit(settings, &pool, id, file, new_id).await,
        DlqCommand::Replay {
            ids,
            all,
            code,
            tenant,
            group,
            canary,
            canary_timeout,
            dry_run,
        } => {
            let filter = crate::replay::replay_filter(ids, all, code, tenant, group)?;
            let canary = canary.map(|n| (n, canary_timeout));
            dlq::replay(settings, &pool, filter, dry_run, canary).await
        }
        DlqCommand::Purge {
            ids,
            code,
            older_than,
            yes,
        } => dlq::purge(&pool, ids, code, older_than, yes).await,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    NotFound(String),
    /// Asked for something the rules refuse (exit 1, like not found).
    #[error("{0}")]
    Refused(String),
    #[error("{0}")]
    Failed(String),
}

/// Prints a contact snapshot, with `activity` when asked.
pub async fn contact_show(
    settings: &Settings,
    tenant: &str,
    id: &str,
    activity: bool,
) -> anyhow::Result<()> {
    let pool = store::connect(settings).await?;
    let mut conn = pool.acquire().await?;
    let Some(contact) = entities::find::<Contact>(&mut conn, tenant, id).await? else {
        return Err(CliError::NotFound(format!("no contact `{id}` in tenant `{tenant}`")).into());
    };
    let mut snapshot = contact.snapshot(tenant);
    snapshot["scheduled"] = pending(&mut conn, tenant, "contact", id).await?;
    if activity {
        let trail = entities::activity_of(&mut conn, tenant, id).await?;
        snapshot["activity"] = Value::Array(trail);
    }
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    Ok(())
}

/// An entity's pending scheduled commands, as `show` lists them.
async fn pending(
    conn: &mut sqlx::PgConnection,
    tenant: &str,
    kind: &str,
    id: &str,
) -> anyhow::Result<Value> {
    let pending = crate::store::schedule::of_entity(conn, tenant, kind, id).await?;
    Ok(pending
        .iter()
        .map(|s| {
            serde_json::json!({"command_id": s.command_id, "type": s.command_type,
                               "effective_at": crate::domain::ts::Ts(s.effective_at)})
        })
        .collect())
}

pub async fn user_show(settings: &Settings, tenant: &str, id: &str) -> anyhow::Result<()> {
    let pool = store::connect(settings).await?;
    let mut conn = pool.acquire().await?;
    let Some(user) = entities::find::<User>(&mut conn, tenant, id).await? else {
        return Err(CliError::NotFound(format!("no user `{id}` in tenant `{tenant}`")).into());
    };
    let mut snapshot = user.snapshot(tenant);
    snapshot["scheduled"] = pending(&mut conn, tenant, "user", id).await?;
    println!("{}", serde_json::to_string_pretty(&snapshot)?);
    Ok(())
}

/// Publishes a command with confirms and `mandatory`; with `wait`, prints the reply.
/// An exclusive queue for the reply, and a consumer on it.
async fn reply_queue(ch: &lapin::Channel) -> lapin::Result<(String, lapin::Consumer)> {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    let consumer = ch
        .basic_consume(
            q.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..BasicConsumeOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    Ok((q.name().as_str().to_owned(), consumer))
}

pub async fn publish(
    settings: &Settings,
    file: Option<PathBuf>,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let body = match file {
        Some(f) => std::fs::read(&f)
            .map_err(|e| CliError::Failed(format!("reading {}: {e}", f.display())))?,
        None => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            b
        }
    };
    let parsed: Value = serde_json::from_slice(&body)
        .map_err(|e| CliError::Failed(format!("the command is not JSON: {e}")))?;
    let field = |k: &str| parsed.get(k).and_then(Value::as_str).unwrap_or("");
    let (tenant, kind, command_id) = (field("tenant"), field("type"), field("command_id"));
    if tenant.is_empty() || kind.is_empty() {
        return Err(
            CliError::Failed("the command needs `tenant` and `type` to be routed".into()).into(),
        );
    }
    let names = Names::new(&settings.amqp.prefix);
    let conn = amqp::connect(&settings.amqp, "publish").await?;
    let ch = amqp::confirm_channel(&conn).await?;
    let mut props = amqp::json_properties().with_correlation_id(command_id.into());
    let mut replies = None;
    if wait {
        let (queue, consumer) = reply_queue(&ch).await?;
        props = props.with_reply_to(queue.into());
        replies = Some(consumer);
    }
    let confirm = ch
        .basic_publish(
            names.commands.as_str().into(),
            format!("{tenant}.{kind}").into(),
            // Unroutable (no queue bound: worker never started?) comes back as an error.
            BasicPublishOptions {
                mandatory: true,
                ..BasicPublishOptions::default()
            },
            &body,
            props,
        )
        .await?
        .await?;
    if !confirm.is_ack() {
        return Err(CliError::Failed(
            "the broker refused the command (its queue is full, or the broker is short of resources); nothing was sent: try again later"
                .into(),
        )
        .into());
    }
    if confirm.take_message().is_some() {
        return Err(CliError::Failed(format!(
            "no queue is bound for `{tenant}.{kind}` on `{}`: is the worker's topology declared (start `run` once)?",
            names.commands
        ))
        .into());
    }
    eprintln!(
        "published {command_id} to {} with key {tenant}.{kind}",
        names.commands
    );
    if let Some(mut consumer) = replies {
        let reply = tokio::time::timeout(timeout, consumer.next())
            .await
            .map_err(|_| CliError::Failed(format!("no reply within {}s", timeout.as_secs())))?;
        match reply {
            Some(Ok(d)) => {
                let v: Value = serde_json::from_slice(&d.data)?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            }
            _ => return Err(CliError::Failed("the reply queue closed".into()).into()),
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(())
}
