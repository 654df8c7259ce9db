//! The fault scenarios. Each prints what it reached (commands, kills,
//! restarts, seconds) for the record.

use std::time::{Duration, Instant};

use crate::helpers::{allow_mass_changes, free_port, http_status, spawn_worker, spawn_worker_on};
use crate::helpers::{eventually, relay_lock_holder, terminate_backend, TestEnv};
use crate::services::{ensure_services, postgres, run, RestoreServices};
use crate::{
    check_outcome, event_queue, processed, publish_all, serial, set_up, wait_processed, workload,
};
use lapin::Channel;
use lifecycle_worker::amqp;

pub async fn fresh_channel(env: &TestEnv) -> (lapin::Connection, Channel) {
    let conn = amqp::connect(&env.settings.amqp, "chaos-test")
        .await
        .expect("broker");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_lose_nothing_and_apply_nothing_twice() {
    let _serial = serial().await;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let w = workload(300, 100, 4_000, 7);
    let mut worker = spawn_worker(&env);
    set_up(&env, &w).await;
    let setup = w.setup.len() as i64;
    publish_all(&env.settings, &w.load).await;
    let total = setup + w.load.len() as i64;
    let mut kills = Vec::new();
    for k in 1..=3i64 {
        wait_processed(&env, setup + k * w.load.len() as i64 / 5).await;
        let at = processed(&env).await;
        worker.kill9().await;
        kills.push(at);
        worker = spawn_worker(&env);
    }
    assert!(
        kills.iter().all(|&n| n < total),
        "each kill hit a working worker: {kills:?}"
    );
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "crash test: {total} commands, 3 kill -9 at {kills:?} processed, {events} events, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(worker);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_a_restart_finishes_the_work() {
    let _serial = serial().await;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let w = workload(200, 50, 3_000, 11);
    let mut worker = spawn_worker(&env);
    set_up(&env, &w).await;
    publish_all(&env.settings, &w.load).await;
    wait_processed(&env, w.setup.len() as i64 + w.load.len() as i64 / 4).await;
    let at = processed(&env).await;
    let (status, took) = worker.terminate().await;
    assert!(status.success(), "exit status {status:?}");
    assert!(took < Duration::from_secs(20), "drained in {took:?}");
    let after_stop = processed(&env).await;
    let mut worker = spawn_worker(&env);
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "graceful shutdown test: SIGTERM at {at} processed, exit 0 after {:.2}s ({after_stop} processed then), {} commands, {events} events, {:.1}s",
        took.as_secs_f64(),
        w.setup.len() + w.load.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = worker.terminate().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_on_one_queue_agree_and_the_relay_hands_over() {
    let _serial = serial().await;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let w = workload(300, 100, 4_000, 13);
    let mut workers: Vec<_> = (0..3).map(|_| spawn_worker(&env)).collect();
    set_up(&env, &w).await;
    publish_all(&env.settings, &w.load).await;
    wait_processed(&env, w.setup.len() as i64 + w.load.len() as i64 / 3).await;
    // Whichever held the relay lock, killing the first two makes the third
    // take over (or keep) the relay.
    workers[0].kill9().await;
    workers[1].kill9().await;
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "three workers test: {} commands, 2 of 3 killed mid-load, {events} events, {:.1}s",
        w.setup.len() + w.load.len(),
        started.elapsed().as_secs_f64()
    );
    let _ = workers[2].terminate().await;
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminating_the_relay_session_mid_load_hands_the_relay_over_and_loses_nothing() {
    let _serial = serial().await;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let w = workload(300, 100, 4_000, 23);
    let workers: Vec<_> = (0..2).map(|_| spawn_worker(&env)).collect();
    set_up(&env, &w).await;
    let setup = w.setup.len() as i64;
    let total = setup + w.load.len() as i64;
    publish_all(&env.settings, &w.load).await;
    // Each time: the session holding the lock (found by its name, in this
    // test's database only) is ended, and a relay on another session (the
    // other process's, or the same process reconnecting) takes over.
    let mut ended = Vec::new();
    for k in 1..=3i64 {
        wait_processed(&env, setup + k * w.load.len() as i64 / 5).await;
        let holder = eventually("a relay holding the lock", || relay_lock_holder(&env.pool)).await;
        let at = processed(&env).await;
        assert!(terminate_backend(&env.pool, holder).await);
        ended.push(at);
        eventually("another relay session holding the lock", || async {
            relay_lock_holder(&env.pool)
                .await
                .filter(|&pid| pid != holder)
        })
        .await;
    }
    // The later terminations may come after the last command on a fast
    // run (they still test a handover); the first is always mid-load.
    assert!(
        ended[0] < total,
        "the first termination hit a relay under load: {ended:?}"
    );
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "relay session test: {total} commands, 2 workers, relay session terminated at {ended:?} processed, {events} events, {:.1}s",
        started.elapsed().as_secs_f64()
    );
    drop(workers);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_load_loses_nothing() {
    let _serial = serial().await;
    let _restore = RestoreServices;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let _ = conn.close(200, "before restart".into()).await;
    let w = workload(200, 50, 3_000, 17);
    let worker = spawn_worker(&env);
    set_up(&env, &w).await;
    let (before, rest) = w.load.split_at(w.load.len() / 2);
    let (during, after) = rest.split_at(rest.len() / 2);
    publish_all(&env.settings, before).await;
    wait_processed(&env, w.setup.len() as i64 + before.len() as i64 / 3).await;
    let at = processed(&env).await;
    run("rabbitmqctl", &["-q", "stop_app"]);
    // Published while the broker is away: the publisher retries until it is back.
    let publishing = {
        let during = during.to_vec();
        let settings = env.settings.clone();
        tokio::spawn(async move { publish_all(&settings, &during).await })
    };
    run("rabbitmqctl", &["-q", "start_app"]);
    ensure_services();
    publishing.await.unwrap();
    publish_all(&env.settings, after).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "broker restart test: stop_app/start_app at {at} processed, {} commands, {events} events, {:.1}s",
        w.setup.len() + w.load.len(),
        started.elapsed().as_secs_f64()
    );
    drop(worker);
    env.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_mid_load_loses_nothing_and_flips_readiness() {
    let _serial = serial().await;
    let _restore = RestoreServices;
    let started = Instant::now();
    let env = TestEnv::prepare_with(allow_mass_changes).await;
    let (_conn, ch) = fresh_channel(&env).await;
    let queue = event_queue(&env, &ch).await;
    let w = workload(200, 50, 3_000, 19);
    let port = free_port();
    let worker = spawn_worker_on(&env, &format!("127.0.0.1:{port}"));
    eventually("ready", || async {
        (http_status(port, "/readyz").await == Some(200)).then_some(())
    })
    .await;
    set_up(&env, &w).await;
    publish_all(&env.settings, &w.load).await;
    wait_processed(&env, w.setup.len() as i64 + w.load.len() as i64 / 4).await;
    let at = processed(&env).await;
    postgres("stop");
    // While the database is away the worker is alive but not ready.
    eventually("not ready", || async {
        (http_status(port, "/readyz").await == Some(503)).then_some(())
    })
    .await;
    assert_eq!(http_status(port, "/healthz").await, Some(200));
    postgres("start");
    eventually("ready again", || async {
        (http_status(port, "/readyz").await == Some(200)).then_some(())
    })
    .await;
    let events = check_outcome(&env, &w, &ch, &queue).await;
    eprintln!(
        "postgres restart test: stop/start at {at} processed, /readyz 503 while down, {} commands, {events} events, {:.1}s",
        w.setup.len() + w.load.len(),
        started.elapsed().as_secs_f64()
    );
    drop(worker);
    env.finish().await;
}
