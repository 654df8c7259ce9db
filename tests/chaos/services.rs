//! The machine's shared Postgres and RabbitMQ, stopped and started by the
//! fault tests and the chaos soak (`benches/soak.rs`).

/// Restores the shared services when a test ends, even by panicking.
pub struct RestoreServices;

impl Drop for RestoreServices {
    fn drop(&mut self) {
        ensure_services();
    }
}

/// Starts whatever of the shared services is down (`scripts/ensure-services.sh`)
/// and waits until both answer.
pub fn ensure_services() {
    let _ = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/ensure-services.sh"
        ))
        .status();
}

/// Runs a command with its output discarded; panics unless it succeeds.
pub fn run(cmd: &str, args: &[&str]) {
    let status = std::process::Command::new(cmd)
        .args(args)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(status.success(), "{cmd} {args:?} failed");
}

fn pg_cluster() -> String {
    std::fs::read_dir("/etc/postgresql")
        .expect("a Debian Postgres cluster")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .next()
        .expect("a cluster version")
}

/// Stops or starts the machine's Postgres cluster (`action`: "stop", "start").
pub fn postgres(action: &str) {
    run(
        "pg_ctlcluster",
        &["--skip-systemctl-redirect", &pg_cluster(), "main", action],
    );
}
