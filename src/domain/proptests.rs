//! Property tests: decoding arbitrary bytes and deciding arbitrary sequences
//! of well-formed commands never panic, and decisions keep the contract's
//! invariants. `make test` runs the default number of cases; `make fuzz`
//! runs many more (PROPTEST_CASES).

use super::blocklist::Blocklist;
use super::contact::command::{Archive, ContactOp, ContactUpsert, LogActivity, Revive};
use super::contact::decide::decide_contact;
use super::contact::{ActivityKind, ContactRecord, Visibility};
use super::envelope::decode;
use super::event::EventType;
use super::ids::{EntityId, Limits, TenantId};
use super::outcome::Outcome;
use super::policy::TenantPolicy;
use super::registry::CommandType;
use super::user::decide::decide_user;
use super::user::{User, UserRecord};
use super::Ctx;
use crate::domain::effect::Effects;
use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use time::{Duration, OffsetDateTime};

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        any::<f64>().prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn known_type() -> impl Strategy<Value = String> {
    prop::sample::select(
        CommandType::all()
            .map(CommandType::name)
            .collect::<Vec<_>>(),
    )
    .prop_map(str::to_owned)
}

/// Envelopes whose fields are sometimes right, sometimes arbitrary.
fn envelope() -> impl Strategy<Value = Vec<u8>> {
    (
        prop_oneof![".{0,20}".prop_map(Value::String), json_value()],
        prop_oneof![known_type().prop_map(Value::String), json_value()],
        prop_oneof![Just(json!("acme")), json_value()],
        prop_oneof![Just(json!("2026-11-22T08:00:00Z")), json_value()],
        json_value(),
        prop::collection::btree_map(
            prop::sample::select(vec![
                "contact_id", "user_id", "role_id", "employer_id", "email", "status",
                "visibility", "attributes", "contact_ids", "filter", "operation", "kind",
                "body", "name", "permissions", "reason",
            ]),
            json_value(),
            0..5,
        ),
    )
        .prop_map(|(id, kind, tenant, at, expected, payload)| {
            let mut env = json!({
                "command_id": id, "type": kind, "tenant": tenant, "issued_at": at,
                "payload": Value::Object(payload.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()),
            });
            if !expected.is_null() {
                env["expected_version"] = expected;
            }
            serde_json::to_vec(&env).unwrap()
        })
}

fn visibility() -> impl Strategy<Value = Visibility> {
    prop::sample::select(vec![
        Visibility::Everyone,
        Visibility::Advisors,
        Visibility::Owner,
    ])
}

fn maybe_id() -> impl Strategy<Value = Option<EntityId>> {
    prop::option::of(
        prop::sample::select(vec!["e-1", "e-2", "inactive"]).prop_map(EntityId::trusted),
    )
}

// One arm per contact command: long because the list is, not because of logic.
fn contact_op() -> impl Strategy<Value = ContactOp> {
    let status = prop::sample::select(vec!["A", "B", "D", "N", "ZZ"]).prop_map(str::to_owned);
    let attrs = prop::collection::btree_map(
        prop::sample::select(vec!["do_not_email", "tier", "x"]).prop_map(str::to_owned),
        prop::option::of(prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            Just(json!("v"))
        ]),
        0..3,
    )
    .prop_map(|m: BTreeMap<String, Option<Value>>| {
        m.into_iter()
            .map(|(k, v)| {
                let v = if k == "do_not_email" {
                    v.map(|v| Value::Bool(v == Value::Bool(true)))
                } else {
                    v
                };
                (k, v)
            })
            .collect::<BTreeMap<_, _>>()
    });
    prop_oneof![
        (
            prop::option::of(Just("a@example.com".to_owned())),
            maybe_id(),
            prop::option::of(status.clone()),
            prop::option::of(visibility()),
            attrs.clone()
        )
            .prop_map(|(email, employer_id, status, visibility, attributes)| {
                ContactOp::Upsert(Box::new(ContactUpsert {
                    email,
                    first_name: Some("N".into()),
                    employer_id,
                    status,
                    visibility,
                    attributes,
                    ..ContactUpsert::default()
                }))
            }),
        Just(ContactOp::Deactivate { reason: None }),
        Just(ContactOp::Reactivate { reason: None }),
        status.prop_map(|status| ContactOp::ChangeStatus { status }),
        maybe_id().prop_map(|employer_id| ContactOp::ChangeEmployer {
            employer_id,
            department: None
        }),
        visibility().prop_map(|visibility| ContactOp::SetVisibility { visibility }),
        attrs.prop_map(|attributes| ContactOp::SetAttributes { attributes }),
        Just(ContactOp::Approve { reason: None }),
        Just(ContactOp::Reject { reason: None }),
        (maybe_id(), any::<bool>(), visibility(), any::<bool>()).prop_map(
            |(employer_id, suppress_email, visibility, revoke_user_access)| {
                ContactOp::Archive(Archive {
                    reason: None,
                    employer_id,
                    suppress_email,
                    visibility,
                    revoke_user_access,
                })
            }
        ),
        (maybe_id(), prop::option::of(visibility()), any::<bool>()).prop_map(
            |(employer_id, visibility, restore_email)| {
                ContactOp::Revive(Revive {
                    employer_id,
                    visibility,
                    restore_email,
                })
            }
        ),
        prop::sample::select(vec![None, Some("deact-x"), Some("REACT"), Some("note")]).prop_map(
            |code| {
                ContactOp::LogActivity(LogActivity {
                    kind: ActivityKind::Message,
                    body: "b".into(),
                    action_code: code.map(str::to_owned),
                    occurred_at: None,
                })
            }
        ),
        Just(ContactOp::Delete),
        Just(ContactOp::Restore),
        Just(ContactOp::Erase),
        Just(ContactOp::ConfirmConsent),
    ]
}

fn linked_user() -> User {
    let t = super::ts::Ts(OffsetDateTime::UNIX_EPOCH);
    User {
        id: EntityId::trusted("u-1"),
        version: 1,
        email: "u@example.com".into(),
        name: None,
        employer_id: None,
        contact_id: Some(EntityId::trusted("c-1")),
        role_id: None,
        site_access: true,
        aspects: BTreeMap::new(),
        created_at: t,
        updated_at: t,
    }
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&body, &Limits::default());
    }

    #[test]
    fn decoding_arbitrary_envelopes_never_panics(body in envelope()) {
        let _ = decode(&body, &Limits::default());
    }

    #[test]
    fn deciding_any_sequence_keeps_the_invariants(
        steps in prop::collection::vec((contact_op(), -30i64..30, prop::option::of(0u64..4)), 1..40),
        erased in any::<bool>(),
    ) {
        let tenant = TenantId::parse("acme").unwrap();
        let policy = TenantPolicy::default();
        let limits = Limits::default();
        let id = EntityId::trusted("c-1");
        let base = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut record = ContactRecord::Absent;
        let mut users = vec![linked_user()];
        let blocklist = if erased { Blocklist::of(["A@example.com"]) } else { Blocklist::default() };
        for (op, minutes, expected) in steps {
            let ctx = Ctx { tenant: &tenant, policy: &policy, limits: &limits, issued_at: base + Duration::minutes(minutes), actor: None, now: base, blocklist: &blocklist };
            let before = match &record { ContactRecord::Live(c) => Some(c.version), _ => None };
            let Ok(d) = decide_contact(&ctx, &id, &record, &op, expected, &users) else { continue };
            match d.outcome {
                Outcome::Applied => {
                    let after = d.version_after(&record);
                    // A consent may change only the blocklist (another reason
                    // still suppresses the contact): no event, no version.
                    if d.events.is_empty() {
                        prop_assert_eq!(&op, &ContactOp::ConfirmConsent);
                        prop_assert_eq!(after, before);
                    } else if let (Some(b), Some(a)) = (before, after) {
                        prop_assert_eq!(a, b + 1);
                    }
                    // Events carry the version written: the contact's, or its tombstone's.
                    let written = match &d.write {
                        Some(ContactRecord::Live(c)) => Some(c.version),
                        Some(ContactRecord::Deleted { version, .. }) => Some(*version),
                        Some(ContactRecord::Absent) | None => None,
                    };
                    for e in d.events.iter().filter(|e| e.entity_kind == super::outcome::EntityKind::Contact) {
                        prop_assert_eq!(Some(e.version), written);
                    }
                }
                Outcome::Unchanged | Outcome::Stale => {
                    prop_assert!(d.events.is_empty());
                    prop_assert_eq!(d.version_after(&record), before);
                }
                Outcome::Rejected | Outcome::Held | Outcome::Scheduled | Outcome::Cancelled => {
                    prop_assert!(false, "decisions never carry Rejected or Held")
                }
            }
            if let (Some(ContactRecord::Live(c)), Outcome::Applied) = (&d.write, d.outcome) {
                let under = if op == ContactOp::ConfirmConsent { Blocklist::default() } else { blocklist.clone() };
                prop_assert_eq!(c.email_suppressed, !c.suppression_reasons(&policy, &under).is_empty());
                let flips = d.events.iter().filter(|e| matches!(e.event_type, EventType::ContactEmailSuppressed | EventType::ContactEmailUnsuppressed)).count();
                prop_assert!(flips <= 1);
            }
            for u in d.linked_users() {
                if let Some(slot) = users.iter_mut().find(|x| x.id == u.id) {
                    *slot = u.clone();
                }
            }
            if let Some(w) = d.write {
                record = w;
            }
        }
    }

    #[test]
    fn user_decisions_never_panic(
        ops in prop::collection::vec((0u8..7, -10i64..10, any::<bool>()), 1..20)
    ) {
        use crate::domain::user::command::{UserOp, UserUpsert};
        let tenant = TenantId::parse("acme").unwrap();
        let policy = TenantPolicy::default();
        let limits = Limits::default();
        let id = EntityId::trusted("u-1");
        let base = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let mut record = UserRecord::Absent;
        for (kind, minutes, role_exists) in ops {
            let ctx = Ctx { tenant: &tenant, policy: &policy, limits: &limits, issued_at: base + Duration::minutes(minutes), actor: None, now: base, blocklist: &Default::default() };
            let op = match kind {
                0 => UserOp::Upsert(UserUpsert { email: Some("u@example.com".into()), role_id: Some(EntityId::trusted("r")), ..UserUpsert::default() }),
                1 => UserOp::RevokeAccess { reason: None },
                2 => UserOp::RestoreAccess { reason: None },
                3 => UserOp::ChangeRole { role_id: EntityId::trusted("r2") },
                4 => UserOp::Restore,
                5 => UserOp::Erase,
                _ => UserOp::Delete,
            };
            if let Ok(d) = decide_user(&ctx, &id, &record, &op, None, role_exists) {
                prop_assert_eq!(d.outcome == Outcome::Applied, !d.events.is_empty());
                if let Some(w) = d.write {
                    record = w;
                }
            }
        }
    }
}
