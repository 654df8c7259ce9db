//! Issue 26, item 3: a database URL naming a primary and its synchronous
//! streaming standby in libpq's multi-host form. Under load the primary
//! stops and the standby is promoted: the worker continues on the new
//! primary without a restart, losing no command, applying none twice,
//! publishing every event version in per-entity order. A throwaway pair of
//! servers (`scripts/postgres-pair.sh`) is set up and removed here; the
//! machine's own Postgres is not touched.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sqlx::PgPool;

use crate::faults::fresh_channel;
use crate::helpers::{allow_mass_changes, free_port, spawn_worker, TestEnv};
use crate::{check_outcome, event_queue, processed, publish_all, serial, set_up, workload};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/postgres-pair.sh");

/// The pair's data; both servers stopped and removed when dropped.
struct Pair {
    dir: PathBuf,
    primary: u16,
    standby: u16,
}

impl Pair {
    fn start() -> Pair {
        let (primary, standby) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("lw-pg-pair-{}-{primary}", std::process::id()));
        let pair = Pair {
            dir,
            primary,
            standby,
        };
        pair.run(&["start", &primary.to_string(), &standby.to_string()]);
        pair
    }

    fn run(&self, args: &[&str]) {
        let (action, rest) = args.split_first().unwrap();
        let out = std::process::Command::new("bash")
            .arg(SCRIPT)
            .arg(action)
            .arg(&self.dir)
            .args(rest)
            .output()
            .expect("postgres-pair.sh runs");
        assert!(
            out.status.success(),
            "postgres-pair.sh {action}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_takes_over_without_losing_or_repeating_a_command() {
    if !std::path::Path::new("/usr/lib/postgresql").exists() {
        eprintln!("switchover test skipped: no Postgres server binaries under /usr/lib/postgresql");
        return;
    }
    let _serial = serial().await;
    let started = Instant::now();
    let pair = Pair::start();
    let (p1, p2) = (pair.primary, pair.standby);
    let mut env = TestEnv::prepare_with(|s| {
        allow_mass_changes(s);
        let single = secrecy::ExposeSecret::expose_secret(&s.database.url).to_owned();
        let multi = single.replace("127.0.0.1:5432", &format!("127.0.0.1:{p1},127.0.0.1:{p2}"))
            + "?target_session_attrs=read-write";
        s.database.url = secrecy::SecretString::from(multi);
    })
    .await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let w = workload(200, 50, 3_000, 17);
    let _worker = spawn_worker(&env);
    set_up(&env, &w).await;
    publish_all(&env.settings, &w.load).await;
    let quarter = (w.setup.len() + w.load.len() / 4) as i64;
    crate::wait_processed(&env, quarter).await;

    // The primary goes; the standby, which has every commit, is promoted.
    let stopped = Instant::now();
    pair.run(&["stop-primary"]);
    pair.run(&["promote"]);
    let promoted = stopped.elapsed();
    env.pool.close().await;
    let db = env.db_name.clone();
    env.pool = PgPool::connect(&format!(
        "postgres://postgres@127.0.0.1:{p2}/{db}?options=-c%20search_path%3Dlifecycle"
    ))
    .await
    .expect("the promoted standby");
    let at_promotion = processed(&env).await;
    crate::helpers::eventually_within(
        Duration::from_secs(60),
        "a command applied on the new primary",
        || async { (processed(&env).await > at_promotion).then_some(()) },
    )
    .await;
    let first_applied = stopped.elapsed();

    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "switchover test: {} commands, primary stopped at {quarter}+ processed, standby promoted {:.2}s after the stop, first command applied on it {:.2}s after the stop, {events} events, {:.1}s",
        w.setup.len() + w.load.len(),
        promoted.as_secs_f64(),
        first_applied.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    env.finish().await;
    drop(pair);
}
