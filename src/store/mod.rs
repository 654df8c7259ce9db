//! Postgres: the pool, migrations, and the queries behind entities, the
//! inbox, the outbox and the dead-letter store.

pub mod audit;
pub mod dead_letters;
pub mod entities;
pub mod erasure;
pub mod guardrail;
pub mod hosts;
pub mod inbox;
pub mod outbox;
pub mod replays;
pub mod schedule;

use secrecy::ExposeSecret;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
use std::str::FromStr;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::Settings;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("another transaction processed a command of this batch at the same time")]
    ConcurrentDuplicate,
    #[error("database.url {0}")]
    Hosts(#[from] hosts::HostsError),
    #[error("no database server of database.url answers{}", if *.read_write { " and takes writes" } else { "" })]
    NoServer { read_write: bool },
    #[error("stored {what} is unreadable: {source}")]
    Corrupt {
        what: &'static str,
        source: serde_json::Error,
    },
}

impl StoreError {
    /// Transient faults are retried, never turned into outcomes. Classified
    /// exhaustively so a new variant must be decided on.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Db(e) => sqlx_is_transient(e),
            // Retrying the batch finds the other transaction's record.
            StoreError::ConcurrentDuplicate => true,
            // A standby being promoted, a primary restarting.
            StoreError::NoServer { .. } => true,
            StoreError::Migrate(_) | StoreError::Corrupt { .. } | StoreError::Hosts(_) => false,
        }
    }
}

fn sqlx_is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 40001 serialization failure; 40P01
            // deadlock; 57P0x: server shutting down or starting; 53300: too
            // many connections; 55P03 lock not available.
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "55P03"
                )
        }),
        sqlx::Error::Configuration(_)
        | sqlx::Error::InvalidArgument(_)
        | sqlx::Error::RowNotFound
        | sqlx::Error::TypeNotFound { .. }
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Encode(_)
        | sqlx::Error::Decode(_)
        | sqlx::Error::AnyDriverError(_)
        | sqlx::Error::Migrate(_)
        | sqlx::Error::BeginFailed
        | sqlx::Error::InvalidSavePointStatement => false,
        _ => false,
    }
}

/// Every connection works in the worker's own schema (and only there:
/// nothing is ever created in `public`).
fn options_for(settings: &Settings, url: &str) -> Result<PgConnectOptions, StoreError> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("lifecycle-worker")
        .options([("search_path", settings.database.schema.as_str())])
        // Statement logging would put personal data from bound values in logs.
        .disable_statement_logging())
}

/// The options of every host `database.url` names, in order, and whether
/// only a writable server will do ([`hosts`]).
fn host_options(settings: &Settings) -> Result<(Vec<PgConnectOptions>, bool), StoreError> {
    let hosts = hosts::Hosts::parse(settings.database.url.expose_secret())?;
    let options = hosts
        .urls()
        .iter()
        .map(|u| options_for(settings, u))
        .collect::<Result<_, _>>()?;
    Ok((options, hosts.read_write))
}

/// The options of the server to use now: the only host, or the first that
/// answers (and takes writes, when `target_session_attrs` asks for that).
async fn connect_options(settings: &Settings) -> Result<PgConnectOptions, StoreError> {
    server_options(settings, |o| o.clone()).await
}

/// [`connect_options`], the servers probed with the options `probe` makes
/// of them (the maintenance database, before the worker's exists).
async fn server_options(
    settings: &Settings,
    probe: impl Fn(&PgConnectOptions) -> PgConnectOptions,
) -> Result<PgConnectOptions, StoreError> {
    let (mut options, read_write) = host_options(settings)?;
    if options.len() == 1 && !read_write {
        return Ok(options.remove(0));
    }
    let probed: Vec<PgConnectOptions> = options.iter().map(probe).collect();
    match hosts::find(&probed, read_write).await {
        Some(i) => Ok(options.swap_remove(i)),
        None => Err(StoreError::NoServer { read_write }),
    }
}

/// With several hosts in `database.url`, keeps the pool on the one to use
/// ([`hosts::follow_primary`]) until `token` is cancelled; with one, returns.
pub async fn follow_primary(settings: &Settings, pool: PgPool, token: CancellationToken) {
    let Ok((options, read_write)) = host_options(settings) else {
        return;
    };
    if options.len() < 2 {
        return;
    }
    let current = hosts::find(&options, read_write).await.unwrap_or(0);
    hosts::follow_primary(pool, options, read_write, current, token).await;
}

/// The tables of v1, which lived in `public`, in migration order.
const V1_TABLES: [&str; 9] = [
    "_sqlx_migrations",
    "contacts",
    "contact_activity",
    "users",
    "employers",
    "roles",
    "processed_commands",
    "outbox",
    "dead_letters",
];

/// Creates the worker's schema, moving a v1 installation's tables out of
/// `public` into it on the first start after the upgrade.
async fn ensure_schema(pool: &PgPool, schema: &str) -> Result<(), StoreError> {
    let mut tx = pool.begin().await?;
    // Serialises concurrent starts; released at commit.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('lifecycle-worker schema'))")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS {schema}"))
        .execute(&mut *tx)
        .await?;
    let v1_in_public: bool = sqlx::query_scalar(
        "SELECT to_regclass('public._sqlx_migrations') IS NOT NULL \
         AND to_regclass('public.outbox') IS NOT NULL \
         AND to_regclass(format('%I._sqlx_migrations', $1::text)) IS NULL",
    )
    .bind(schema)
    .fetch_one(&mut *tx)
    .await?;
    if v1_in_public {
        for table in V1_TABLES {
            sqlx::query(&format!("ALTER TABLE public.{table} SET SCHEMA {schema}"))
                .execute(&mut *tx)
                .await?;
        }
        tracing::info!(
            schema,
            "moved the v1 tables from public into the worker's schema"
        );
    }
    tx.commit().await?;
    Ok(())
}

/// Creates the configured database when it does not exist yet.
pub async fn ensure_database(settings: &Settings) -> Result<(), StoreError> {
    let options = server_options(settings, |o| o.clone().database("postgres")).await?;
    let name = options.get_database().unwrap_or("postgres").to_owned();
    let mut admin = options.clone().database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it at the same moment.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {}
            Err(e) => return Err(e.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// One connection, no retries: for `check`, which reports the first error as is.
pub async fn connect_once(settings: &Settings) -> Result<sqlx::PgConnection, StoreError> {
    Ok(connect_options(settings).await?.connect().await?)
}

/// Opens the pool (the database must exist).
pub async fn connect(settings: &Settings) -> Result<PgPool, StoreError> {
    let read_write = host_options(settings)?.1;
    let mut pool = PgPoolOptions::new()
        .max_connections(settings.database.max_connections)
        .acquire_timeout(Duration::from_secs(5));
    if read_write {
        // A server that went into recovery (a demoted primary) is never
        // written to: the connection is refused, and the error retried.
        pool = pool.after_connect(|conn, _| {
            Box::pin(async move {
                match hosts::writable(conn).await? {
                    true => Ok(()),
                    false => Err(sqlx::Error::Protocol(
                        "the server is in recovery (read-only); database.url asks for read-write"
                            .into(),
                    )),
                }
            })
        });
    }
    Ok(pool.connect_with(connect_options(settings).await?).await?)
}

/// Runs the forward-only migrations; safe to run twice and from several
/// processes at once (sqlx holds an advisory lock while migrating).
pub async fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    MIGRATOR.run(pool).await?;
    Ok(())
}

/// `run` and `migrate` both start here: create the database, migrate, connect.
pub async fn prepare(settings: &Settings) -> Result<PgPool, StoreError> {
    ensure_database(settings).await?;
    let pool = connect(settings).await?;
    ensure_schema(&pool, &settings.database.schema).await?;
    migrate(&pool).await?;
    replays::backfill_groups(&pool).await?;
    Ok(pool)
}
