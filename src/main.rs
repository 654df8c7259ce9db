//! Thin entry point: parse the command line, load settings, dispatch.

use clap::Parser;
use lifecycle_worker::cli::{self, Cli, CliError, Command, ContactCommand, UserCommand};
use lifecycle_worker::config::Settings;
use lifecycle_worker::{app, store, telemetry};
use std::process::ExitCode;
use std::time::Duration;

/// glibc's malloc and free were about a quarter of the worker's CPU in the
/// flood (issue 17's profile): every command builds and drops JSON values.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Cli::parse();
    let settings = match Settings::load(args.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lifecycle-worker: {e}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(settings.log.format);
    let result = match args.command {
        Command::Run => app::run(settings, shutdown_signal(), |_| {}).await,
        Command::Migrate => store::prepare(&settings)
            .await
            .map(|_| eprintln!("migrations applied"))
            .map_err(Into::into),
        Command::Contact(ContactCommand::Show {
            tenant,
            id,
            activity,
        }) => cli::contact_show(&settings, &tenant, &id, activity).await,
        Command::User(UserCommand::Show { tenant, id }) => {
            cli::user_show(&settings, &tenant, &id).await
        }
        Command::Dlq(cmd) => cli::dlq(&settings, cmd).await,
        Command::Guard(cmd) => cli::guard(&settings, cmd).await,
        Command::Privacy(cmd) => cli::privacy(&settings, cmd).await,
        Command::Schedule(cmd) => cli::schedule(&settings, cmd).await,
        Command::Schemas { out } => lifecycle_worker::schemas::write_all(&out)
            .map(|n| eprintln!("{n} schemas written to {}", out.display()))
            .map_err(Into::into),
        Command::Check => match cli::check::run(&settings).await {
            Ok(true) => Ok(()),
            Ok(false) => return ExitCode::from(1),
            Err(e) => Err(e),
        },
        Command::Publish {
            file,
            wait,
            timeout,
        } => cli::publish(&settings, file, wait, Duration::from_secs(timeout)).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lifecycle-worker: {}", describe(&e));
            match e.downcast_ref::<CliError>() {
                Some(CliError::NotFound(_) | CliError::Refused(_)) => ExitCode::from(1),
                _ => ExitCode::from(2),
            }
        }
    }
}

/// The error and its causes, skipping causes that repeat their parent's text
/// (sqlx errors quote their source in their own message).
fn describe(e: &anyhow::Error) -> String {
    let mut out = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
    }
    out
}

/// Resolves on ctrl-c or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
