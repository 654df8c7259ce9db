//! The published JSON Schemas (deploy/schemas) against real traffic: every
//! command sent here validates against its type's schema, and every event
//! the worker emits (all 32 types occur) against its event type's schema.

use std::collections::BTreeSet;

use crate::helpers::TestEnv;
use lifecycle_worker::domain::event::EventType;
use lifecycle_worker::domain::policy::GuardrailOverride;
use serde_json::{json, Value};

fn schema(path: &str) -> Value {
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy/schemas")
        .join(path);
    serde_json::from_str(&std::fs::read_to_string(&file).expect("schema file")).unwrap()
}

fn assert_valid(schema_path: &str, instance: &Value) {
    let validator = jsonschema::validator_for(&schema(schema_path)).expect("a valid schema");
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{schema_path}: {errors:?}\n{instance:#}");
}

#[tokio::test]
async fn commands_replies_and_every_event_type_match_the_published_schemas() {
    // Tenant "held" has no allowance: its first destructive change trips
    // the guardrail, for the guardrail's events and the `held` reply.
    let env = TestEnv::start_with(|s| {
        s.tenants.entry("held".into()).or_default().guardrail = Some(GuardrailOverride {
            max_changes: Some(0),
            ..Default::default()
        });
    })
    .await;
    let c = |kind: &str, minute: u32, payload: Value| env.command("acme", kind, minute, payload);
    let commands = vec![
        c(
            "role.upsert",
            0,
            json!({"role_id": "r-1", "name": "Employer", "permissions": ["jobs.post"]}),
        ),
        c(
            "role.upsert",
            0,
            json!({"role_id": "r-2", "name": "Denied Access Role", "permissions": []}),
        ),
        c(
            "employer.upsert",
            0,
            json!({"employer_id": "e-1", "name": "Acme Corp", "departments": ["HR"]}),
        ),
        c(
            "contact.upsert",
            0,
            json!({"contact_id": "c-1", "first_name": "Dana", "email": "dana@example.com", "employer_id": "e-1", "department": "HR"}),
        ),
        c(
            "contact.upsert",
            1,
            json!({"contact_id": "c-1", "title": "Recruiter"}),
        ),
        c(
            "user.upsert",
            1,
            json!({"user_id": "u-1", "email": "dana@example.com", "contact_id": "c-1", "role_id": "r-1"}),
        ),
        c(
            "user.upsert",
            2,
            json!({"user_id": "u-1", "name": "Dana R."}),
        ),
        c(
            "user.change_role",
            3,
            json!({"user_id": "u-1", "role_id": "r-2"}),
        ),
        c(
            "contact.change_status",
            2,
            json!({"contact_id": "c-1", "status": "B"}),
        ),
        c(
            "contact.set_attributes",
            2,
            json!({"contact_id": "c-1", "attributes": {"tier": "gold", "score": 3}}),
        ),
        c(
            "contact.log_activity",
            3,
            json!({"contact_id": "c-1", "kind": "meeting", "body": "intro call"}),
        ),
        c(
            "contact.archive",
            4,
            json!({"contact_id": "c-1", "reason": "left", "employer_id": "inactive", "revoke_user_access": true}),
        ),
        c("contact.revive", 5, json!({"contact_id": "c-1"})),
        c(
            "contact.reject",
            6,
            json!({"contact_id": "c-1", "reason": "duplicate record"}),
        ),
        c("contact.approve", 7, json!({"contact_id": "c-1"})),
        c(
            "contact.bulk",
            8,
            json!({"contact_ids": ["c-1"], "operation": {"type": "contact.set_visibility", "payload": {"visibility": "owner"}}}),
        ),
        c("contact.delete", 9, json!({"contact_id": "c-1"})),
        c("user.delete", 9, json!({"user_id": "u-1"})),
        c("contact.restore", 10, json!({"contact_id": "c-1"})),
        c("user.restore", 10, json!({"user_id": "u-1"})),
        c("contact.erase", 11, json!({"contact_id": "c-1"})),
        c("user.erase", 11, json!({"user_id": "u-1"})),
        c(
            "contact.upsert",
            12,
            json!({"contact_id": "c-2", "email": "DANA@example.com"}),
        ),
        c("contact.confirm_consent", 13, json!({"contact_id": "c-2"})),
    ];
    let mut events = Vec::new();
    for cmd in &commands {
        assert_valid(
            &format!("commands/{}.json", cmd["type"].as_str().unwrap()),
            cmd,
        );
        let reply = env.send(cmd).await;
        assert_eq!(reply["outcome"], "applied", "{cmd} -> {reply}");
        assert_valid("reply.json", &reply);
        events.extend(env.events_of(&reply).await);
    }
    let create = env.command(
        "held",
        "contact.upsert",
        0,
        json!({"contact_id": "c-9", "email": "h@example.com"}),
    );
    assert_eq!(env.send(&create).await["outcome"], "applied");
    let deactivate = env.command(
        "held",
        "contact.deactivate",
        1,
        json!({"contact_id": "c-9"}),
    );
    let held = env.send(&deactivate).await;
    assert_eq!(held["outcome"], "held");
    assert_valid("reply.json", &held);
    events.extend(env.events_of(&held).await);
    let (code, _, err) = env
        .cli_text(&["guard", "release", "--tenant", "held", "--all"])
        .await;
    assert_eq!(code, 0, "{err}");
    let released = crate::helpers::eventually("GuardrailReleased", || async {
        env.events_so_far()
            .into_iter()
            .find(|e| e["type"] == "GuardrailReleased")
    })
    .await;
    events.push(released);
    let rejected = env
        .send(&c(
            "contact.deactivate",
            10,
            json!({"contact_id": "nobody"}),
        ))
        .await;
    assert_valid("reply.json", &rejected);
    // Scheduled, then cancelled.
    let mut later = c("contact.deactivate", 14, json!({"contact_id": "c-2"}));
    later["effective_at"] = json!(lifecycle_worker::domain::event::format_time(
        time::OffsetDateTime::now_utc() + time::Duration::days(30)
    ));
    assert_valid("commands/contact.deactivate.json", &later);
    let scheduled = env.send(&later).await;
    assert_eq!(scheduled["outcome"], "scheduled", "{scheduled}");
    assert_valid("reply.json", &scheduled);
    events.extend(env.events_of(&scheduled).await);
    let cancel = c(
        "command.cancel",
        15,
        json!({"command_id": later["command_id"]}),
    );
    assert_valid("commands/command.cancel.json", &cancel);
    let cancelled = env.send(&cancel).await;
    assert_eq!(cancelled["outcome"], "applied", "{cancelled}");
    events.extend(env.events_of(&cancelled).await);
    let duplicate = env.send(&later).await;
    assert_eq!(duplicate["outcome"], "cancelled");
    assert_valid("reply.json", &duplicate);

    let mut seen = BTreeSet::new();
    for e in &events {
        let t = e["type"].as_str().unwrap();
        assert_valid(&format!("events/{t}.json"), e);
        seen.insert(t.to_owned());
    }
    let all: BTreeSet<String> = EventType::ALL
        .iter()
        .map(|t| t.type_name().to_owned())
        .collect();
    assert_eq!(seen, all, "every event type occurred");
    env.finish().await;
}

#[test]
fn the_schemas_refuse_what_the_worker_refuses() {
    let validator = jsonschema::validator_for(&schema("commands/contact.deactivate.json")).unwrap();
    let ok = json!({"command_id": "1", "type": "contact.deactivate", "tenant": "acme",
                    "issued_at": "2026-11-22T08:00:00Z", "payload": {"contact_id": "c-1"}});
    assert!(validator.is_valid(&ok));
    for (field, bad) in [
        ("tenant", json!("Acme")),
        ("tenant", json!("default")),
        ("expected_version", json!(-1)),
        ("payload", json!({"contact_id": "c-1", "colour": "red"})),
        ("payload", json!({})),
        ("extra", json!(1)),
    ] {
        let mut cmd = ok.clone();
        cmd[field] = bad;
        assert!(!validator.is_valid(&cmd), "{field}: {cmd}");
    }
}
