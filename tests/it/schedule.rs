//! Contract section 12: effective-dated commands wait for their time, apply
//! once when due (judged by their own issued_at), can be cancelled, and show
//! in `contact show` and `schedule list`.

use crate::helpers::{eventually, types, TestEnv};
use lifecycle_worker::domain::event::format_time;
use lifecycle_worker::domain::policy::GuardrailOverride;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

/// An RFC 3339 instant, in whole seconds, at least `seconds` from now: time
/// for the command to arrive before it is due, even on a busy machine.
fn in_seconds(seconds: i64) -> String {
    let at = OffsetDateTime::now_utc() + Duration::seconds(seconds + 1);
    format_time(at.replace_nanosecond(0).unwrap())
}

fn effective(mut cmd: Value, at: &str) -> Value {
    cmd["effective_at"] = json!(at);
    cmd
}

/// A command of `tenant` on contact `id`, effective at `at`.
fn later(env: &TestEnv, tenant: &str, kind: &str, id: &str, minute: u32, at: &str) -> Value {
    effective(
        env.command(tenant, kind, minute, json!({"contact_id": id})),
        at,
    )
}

/// Creates contact `id` in `tenant`.
async fn upsert(env: &TestEnv, tenant: &str, id: &str) {
    let cmd = env.command(
        tenant,
        "contact.upsert",
        0,
        json!({"contact_id": id, "first_name": "Sam"}),
    );
    assert_eq!(env.send(&cmd).await["outcome"], "applied");
}

/// The inbox's outcome of a command, once it is no longer `scheduled`.
async fn final_outcome(env: &TestEnv, cmd: &Value) -> Value {
    let id = cmd["command_id"].as_str().unwrap().to_owned();
    eventually("the command's final outcome", || {
        let id = id.clone();
        async move {
            let reply: Option<Value> = sqlx::query_scalar(
                "SELECT reply FROM processed_commands WHERE command_id = $1 AND outcome <> 'scheduled'",
            )
            .bind(&id)
            .fetch_optional(&env.pool)
            .await
            .unwrap();
            reply
        }
    })
    .await
}

async fn schedule_list(env: &TestEnv) -> Vec<Value> {
    let (code, out, err) = env.cli_text(&["schedule", "list", "--json"]).await;
    assert_eq!(code, 0, "{err}");
    serde_json::from_str::<Vec<Value>>(&out).unwrap()
}

#[tokio::test]
async fn a_future_command_is_scheduled_then_applied_once_when_due() {
    let env = TestEnv::start().await;
    let create = env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "s@example.com"}),
    );
    env.send(&create).await;
    let at = in_seconds(3);
    let cmd = effective(
        env.command(
            "acme",
            "contact.deactivate",
            1,
            json!({"contact_id": "c-1", "reason": "left"}),
        ),
        &at,
    );
    let reply = env.send(&cmd).await;
    assert_eq!(reply["outcome"], "scheduled", "{reply}");
    assert_eq!(reply["scheduled_for"], json!(at));
    assert_eq!(reply["entity"]["id"], "c-1");
    let scheduled = env.events_of(&reply).await;
    assert_eq!(types(&scheduled), ["CommandScheduled"]);
    assert_eq!(scheduled[0]["subject"], "contact/c-1");
    assert_eq!(scheduled[0]["data"]["type"], "contact.deactivate");
    assert_eq!(scheduled[0]["data"]["effective_at"], json!(at));
    let shown = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(shown["active"], true, "no state change yet");
    assert_eq!(
        shown["scheduled"],
        json!([{"command_id": cmd["command_id"], "type": "contact.deactivate", "effective_at": at}])
    );
    let listed = schedule_list(&env).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["tenant"], "acme");
    assert_eq!(listed[0]["entity"], json!({"kind": "contact", "id": "c-1"}));
    let again = env.send(&cmd).await;
    assert_eq!(
        (again["outcome"].clone(), again["duplicate"].clone()),
        (json!("scheduled"), json!(true))
    );

    let done = final_outcome(&env, &cmd).await;
    assert_eq!(done["outcome"], "applied");
    let events = env.events_of(&done).await;
    assert_eq!(
        types(&events),
        ["ContactDeactivated", "ContactEmailSuppressed"]
    );
    assert_eq!(events[0]["commandid"], cmd["command_id"]);
    let shown = env.contact_show("acme", "c-1").await.unwrap();
    assert_eq!(shown["active"], false);
    assert_eq!(shown["scheduled"], json!([]));
    let after = env.send(&cmd).await;
    assert_eq!(
        (after["outcome"].clone(), after["duplicate"].clone()),
        (json!("applied"), json!(true))
    );
    assert!(schedule_list(&env).await.is_empty());
    env.finish().await;
}

#[tokio::test]
async fn a_later_reactivation_makes_a_scheduled_termination_stale() {
    let env = TestEnv::start().await;
    upsert(&env, "acme", "c-1").await;
    let termination = later(&env, "acme", "contact.deactivate", "c-1", 1, &in_seconds(3));
    assert_eq!(env.send(&termination).await["outcome"], "scheduled");
    // HR rescinds it: a reactivation issued after the termination was decided.
    let rescind = env.command(
        "acme",
        "contact.reactivate",
        2,
        json!({"contact_id": "c-1"}),
    );
    assert_eq!(env.send(&rescind).await["outcome"], "unchanged");
    let done = final_outcome(&env, &termination).await;
    assert_eq!(done["outcome"], "stale");
    assert_eq!(
        env.contact_show("acme", "c-1").await.unwrap()["active"],
        true
    );
    env.finish().await;
}

#[tokio::test]
async fn a_scheduled_command_can_be_cancelled_once() {
    let env = TestEnv::start().await;
    upsert(&env, "acme", "c-1").await;
    let cmd = later(&env, "acme", "contact.archive", "c-1", 1, &in_seconds(3600));
    assert_eq!(env.send(&cmd).await["outcome"], "scheduled");
    let cancel = env.command(
        "acme",
        "command.cancel",
        2,
        json!({"command_id": cmd["command_id"]}),
    );
    let cancelled = env.send(&cancel).await;
    assert_eq!(cancelled["outcome"], "applied", "{cancelled}");
    let events = env.events_of(&cancelled).await;
    assert_eq!(types(&events), ["CommandCancelled"]);
    assert_eq!(events[0]["subject"], "contact/c-1");
    assert_eq!(events[0]["data"]["command_id"], cmd["command_id"]);
    assert_eq!(events[0]["commandid"], cancel["command_id"]);
    assert!(schedule_list(&env).await.is_empty());
    let dup = env.send(&cmd).await;
    assert_eq!(
        (dup["outcome"].clone(), dup["duplicate"].clone()),
        (json!("cancelled"), json!(true))
    );
    assert!(schedule_list(&env).await.is_empty(), "not scheduled again");

    let twice = env.command(
        "acme",
        "command.cancel",
        3,
        json!({"command_id": cmd["command_id"]}),
    );
    assert_eq!(
        env.send(&twice).await["error"]["code"],
        "invalid_transition"
    );
    let unknown = env.command("acme", "command.cancel", 3, json!({"command_id": "nope"}));
    assert_eq!(env.send(&unknown).await["error"]["code"], "not_found");
    let at_once = env.command("acme", "contact.approve", 3, json!({"contact_id": "c-1"}));
    env.send(&at_once).await;
    let late = env.command(
        "acme",
        "command.cancel",
        4,
        json!({"command_id": at_once["command_id"]}),
    );
    assert_eq!(env.send(&late).await["error"]["code"], "invalid_transition");
    // Another tenant's command is unknown here.
    let other = later(
        &env,
        "globex",
        "contact.deactivate",
        "c-1",
        1,
        &in_seconds(3600),
    );
    env.send(&other).await;
    let across = env.command(
        "acme",
        "command.cancel",
        4,
        json!({"command_id": other["command_id"]}),
    );
    assert_eq!(env.send(&across).await["error"]["code"], "not_found");
    env.finish().await;
}

#[tokio::test]
async fn dates_are_midnight_in_the_tenants_zone_and_bad_schedules_are_refused() {
    let env = TestEnv::start_with(|s| {
        s.tenants.entry("berlin".into()).or_default().time_zone = Some("Europe/Berlin".into());
    })
    .await;
    let next_year = OffsetDateTime::now_utc().year() + 1;
    let day = format!("{next_year}-01-15");
    let cmd = later(&env, "berlin", "contact.deactivate", "c-1", 1, &day);
    let reply = env.send(&cmd).await;
    assert_eq!(
        reply["scheduled_for"],
        json!(format!("{next_year}-01-14T23:00:00Z"))
    );
    let utc = later(&env, "acme", "contact.deactivate", "c-1", 1, &day);
    assert_eq!(
        env.send(&utc).await["scheduled_for"],
        json!(format!("{next_year}-01-15T00:00:00Z"))
    );

    let refused = [
        later(&env, "acme", "contact.upsert", "c-1", 1, &day),
        later(
            &env,
            "acme",
            "contact.deactivate",
            "c-1",
            1,
            &format!("{}-01-01", next_year + 2),
        ),
        effective(
            env.command(
                "acme",
                "contact.deactivate",
                1,
                json!({"contact_id": "c-1"}),
            ),
            "soon",
        ),
    ];
    for cmd in &refused {
        assert_eq!(
            env.send(cmd).await["error"]["code"],
            "invalid_command",
            "{cmd}"
        );
    }
    let bad_status = effective(
        env.command(
            "acme",
            "contact.change_status",
            1,
            json!({"contact_id": "c-1", "status": "ZZ"}),
        ),
        &day,
    );
    assert_eq!(
        env.send(&bad_status).await["error"]["code"],
        "invalid_status",
        "at once"
    );
    env.finish().await;
}

#[tokio::test]
async fn when_due_it_is_judged_like_any_command_held_or_dead_lettered_and_replayable() {
    let env = TestEnv::start_with(|s| {
        s.tenants.entry("held".into()).or_default().guardrail = Some(GuardrailOverride {
            max_changes: Some(0),
            ..Default::default()
        });
    })
    .await;
    upsert(&env, "held", "c-1").await;
    let guarded = later(&env, "held", "contact.deactivate", "c-1", 1, &in_seconds(3));
    assert_eq!(
        env.send(&guarded).await["outcome"],
        "scheduled",
        "the guardrail counts it when it runs"
    );
    let missing = later(
        &env,
        "acme",
        "contact.deactivate",
        "c-404",
        1,
        &in_seconds(3),
    );
    assert_eq!(
        env.send(&missing).await["outcome"],
        "scheduled",
        "the entity is checked when due"
    );

    assert_eq!(final_outcome(&env, &guarded).await["outcome"], "held");
    let dead = eventually("the due command's dead letter", || async {
        env.dead_letters()
            .await
            .into_iter()
            .find(|d| d.command_id.as_deref() == missing["command_id"].as_str())
    })
    .await;
    assert_eq!(dead.code, "not_found");
    env.send(&env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-404", "first_name": "Late"}),
    ))
    .await;
    let (code, _, err) = env.cli_text(&["dlq", "replay", &dead.id.to_string()]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(final_outcome(&env, &missing).await["outcome"], "applied");
    env.finish().await;
}

#[tokio::test]
async fn erasing_an_entity_drops_its_scheduled_commands() {
    let env = TestEnv::start().await;
    env.send(&env.command(
        "acme",
        "contact.upsert",
        0,
        json!({"contact_id": "c-1", "email": "x@example.com"}),
    ))
    .await;
    let cmd = later(
        &env,
        "acme",
        "contact.deactivate",
        "c-1",
        1,
        &in_seconds(3600),
    );
    env.send(&cmd).await;
    let user = effective(
        env.command("acme", "user.revoke_access", 1, json!({"user_id": "u-1"})),
        &in_seconds(3600),
    );
    env.send(&user).await;
    assert_eq!(schedule_list(&env).await.len(), 2);
    let erase = env.command("acme", "contact.erase", 2, json!({"contact_id": "c-1"}));
    assert_eq!(env.send(&erase).await["outcome"], "applied");
    let left = schedule_list(&env).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["entity"]["kind"], "user");
    assert_eq!(env.send(&cmd).await["outcome"], "cancelled");
    env.finish().await;
}
