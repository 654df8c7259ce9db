//! Unit tests of `decide_user`, `decide_role` and `decide_employer`
//! (contract sections 3-5).

use super::command::{UserOp, UserUpsert};
use super::decide::decide_user;
use super::{User, UserRecord, ACCESS, PROFILE, ROLE};
use crate::domain::directory::{
    decide_employer, decide_role, Employer, EmployerUpsert, Role, RoleUpsert,
};
use crate::domain::event::EventType;
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use crate::domain::record::Decision;
use crate::domain::test_support::{id, ts, World, NOW};
use crate::domain::ts::Ts;
use serde_json::{json, Value};

use EventType::*;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const UID: &str = "u-1";
const EMAIL: &str = "grace@example.com";

/// One user's history: each decision's write is kept, as the store would.
/// Roles named by commands exist unless listed in `missing_roles`.
struct Sim {
    world: World,
    record: UserRecord,
    missing_roles: Vec<&'static str>,
}

impl Sim {
    fn empty() -> Sim {
        Sim {
            world: World::acting_as("hr-sync"),
            record: UserRecord::Absent,
            missing_roles: vec![],
        }
    }

    /// The standard user, created at minute 0: Grace, employer `e-1`,
    /// contact `c-17`, role `r-basic`.
    fn new() -> Sim {
        let mut sim = Sim::empty();
        assert_eq!(sim.ok(0, standard_upsert()).outcome, Outcome::Applied);
        sim
    }

    fn run_expecting(
        &mut self,
        minute: i64,
        op: UserOp,
        expected_version: Option<u64>,
    ) -> Result<Decision<UserRecord>, Rejection> {
        let role_exists = match &op {
            UserOp::Upsert(UserUpsert {
                role_id: Some(r), ..
            })
            | UserOp::ChangeRole { role_id: r } => !self.missing_roles.contains(&r.as_str()),
            _ => true,
        };
        let ctx = self.world.ctx(minute);
        let d = decide_user(
            &ctx,
            &id(UID),
            &self.record,
            &op,
            expected_version,
            role_exists,
        );
        if let Ok(Decision { write: Some(w), .. }) = &d {
            self.record = w.clone();
        }
        d
    }

    fn run(&mut self, minute: i64, op: UserOp) -> Result<Decision<UserRecord>, Rejection> {
        self.run_expecting(minute, op, None)
    }

    fn ok(&mut self, minute: i64, op: UserOp) -> Decision<UserRecord> {
        let name = op.type_name();
        self.run(minute, op)
            .unwrap_or_else(|r| panic!("{name} at minute {minute} was refused: {r}"))
    }

    fn refused(&mut self, minute: i64, op: UserOp) -> ErrorCode {
        let before = self.record.clone();
        let name = op.type_name();
        let code = match self.run(minute, op) {
            Ok(d) => panic!("{name} at minute {minute} was not refused: {:?}", d.outcome),
            Err(r) => r.code,
        };
        assert_eq!(self.record, before, "a refused command writes nothing");
        code
    }

    fn user(&self) -> &User {
        match &self.record {
            UserRecord::Live(u) => u,
            other => panic!("no live user: {other:?}"),
        }
    }
}

fn upsert(f: impl FnOnce(&mut UserUpsert)) -> UserOp {
    let mut u = UserUpsert::default();
    f(&mut u);
    UserOp::Upsert(u)
}

fn standard_upsert() -> UserOp {
    upsert(|u| {
        u.email = Some(EMAIL.into());
        u.name = Some("Grace".into());
        u.employer_id = Some(id("e-1"));
        u.contact_id = Some(id("c-17"));
        u.role_id = Some(id("r-basic"));
    })
}

fn revoke() -> UserOp {
    UserOp::RevokeAccess {
        reason: Some("left".into()),
    }
}

fn restore() -> UserOp {
    UserOp::RestoreAccess {
        reason: Some("back".into()),
    }
}

fn change_role(role: &str) -> UserOp {
    UserOp::ChangeRole { role_id: id(role) }
}

fn types<T>(d: &Decision<T>) -> Vec<EventType> {
    d.events.iter().map(|e| e.event_type).collect()
}

fn written(d: &Decision<UserRecord>) -> &User {
    match &d.write {
        Some(UserRecord::Live(u)) => u,
        other => panic!("no live user written: {other:?}"),
    }
}

fn assert_applied(d: &Decision<UserRecord>, version_before: u64, expected: &[EventType]) {
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(d), expected);
    let after = written(d).version;
    assert_eq!(after, version_before + 1, "exactly one version bump");
    for e in &d.events {
        assert_eq!(e.version, after);
        assert_eq!(e.entity_kind, EntityKind::User);
        assert_eq!(e.entity_id, UID);
        assert_eq!(e.data["user"]["version"], after);
        assert_eq!(e.data["actor"], "hr-sync");
    }
    assert_eq!(written(d).updated_at, Ts(NOW));
}

fn assert_unchanged(d: &Decision<UserRecord>, version_before: u64) {
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty());
    assert_eq!(written(d).version, version_before);
}

fn assert_stale<T: std::fmt::Debug>(d: &Decision<T>) {
    assert_eq!(d.outcome, Outcome::Stale);
    assert!(d.write.is_none(), "{:?}", d.write);
    assert!(d.events.is_empty());
}

// ---------------------------------------------------------------------------
// user.upsert: creation
// ---------------------------------------------------------------------------

#[test]
fn creating_a_user_applies_version_one_with_site_access() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, standard_upsert());
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [UserCreated]);
    let u = written(&d);
    assert_eq!(u.version, 1);
    assert!(u.site_access);
    assert_eq!(u.email, EMAIL);
    assert_eq!(u.name.as_deref(), Some("Grace"));
    assert_eq!(u.employer_id, Some(id("e-1")));
    assert_eq!(u.contact_id, Some(id("c-17")));
    assert_eq!(u.role_id, Some(id("r-basic")));
    assert_eq!(u.created_at, Ts(NOW));
    for aspect in [PROFILE, ROLE, ACCESS] {
        assert_eq!(u.aspects.get(aspect), Some(&ts(0)), "{aspect}");
    }
    assert_eq!(d.ensure_employers, vec![id("e-1")]);
    let e = &d.events[0];
    assert_eq!(e.version, 1);
    assert_eq!(e.entity_kind, EntityKind::User);
    assert_eq!(e.data["issued_at"], "2026-11-22T08:00:00Z");
}

#[test]
fn the_user_snapshot_has_the_contract_fields() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, standard_upsert());
    let snap = d.events[0].data["user"].as_object().unwrap();
    let mut keys: Vec<&str> = snap.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut want = vec![
        "id",
        "tenant",
        "version",
        "email",
        "name",
        "employer_id",
        "contact_id",
        "role_id",
        "site_access",
        "created_at",
        "updated_at",
    ];
    want.sort_unstable();
    assert_eq!(keys, want);
    assert_eq!(snap["id"], UID);
    assert_eq!(snap["tenant"], "acme");
    assert_eq!(snap["site_access"], true);
}

#[test]
fn creating_a_user_with_only_an_email_is_allowed() {
    let mut sim = Sim::empty();
    let d = sim.ok(0, upsert(|u| u.email = Some(EMAIL.into())));
    let u = written(&d);
    assert_eq!(u.version, 1);
    assert_eq!(u.name, None);
    assert_eq!(u.role_id, None);
    assert!(d.ensure_employers.is_empty());
}

#[test]
fn creating_a_user_without_an_email_is_invalid_command() {
    let mut sim = Sim::empty();
    let op = upsert(|u| {
        u.name = Some("Grace".into());
        u.employer_id = Some(id("e-1"));
    });
    assert_eq!(sim.refused(0, op), ErrorCode::InvalidCommand);
}

#[test]
fn creating_a_user_with_a_missing_role_is_role_not_found() {
    let mut sim = Sim::empty();
    sim.missing_roles.push("r-basic");
    assert_eq!(sim.refused(0, standard_upsert()), ErrorCode::RoleNotFound);
}

#[test]
fn creating_a_user_with_expected_version_zero_applies_and_any_other_conflicts() {
    let mut sim = Sim::empty();
    let err = sim
        .run_expecting(0, standard_upsert(), Some(1))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(0, standard_upsert(), Some(0)).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
}

// ---------------------------------------------------------------------------
// user.upsert: update, per aspect
// ---------------------------------------------------------------------------

#[test]
fn updating_profile_fields_applies_with_the_changed_field_names() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        upsert(|u| {
            u.email = Some("hopper@example.com".into());
            u.name = Some("Grace".into());
            u.employer_id = Some(id("e-2"));
        }),
    );
    assert_applied(&d, 1, &[UserUpdated]);
    assert_eq!(d.events[0].data["changed"], json!(["email", "employer_id"]));
    let u = written(&d);
    assert_eq!(u.email, "hopper@example.com");
    assert_eq!(u.employer_id, Some(id("e-2")));
    assert_eq!(u.contact_id, Some(id("c-17")), "omitted fields kept");
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(0)), "role not touched");
    assert_eq!(d.ensure_employers, vec![id("e-2")]);
}

#[test]
fn changing_the_linked_contact_is_a_profile_update() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.contact_id = Some(id("c-18"))));
    assert_applied(&d, 1, &[UserUpdated]);
    assert_eq!(d.events[0].data["changed"], json!(["contact_id"]));
}

#[test]
fn an_upsert_changing_profile_and_role_bumps_once_with_both_events() {
    let mut sim = Sim::new();
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Grace Hopper".into());
            u.role_id = Some(id("r-admin"));
        }),
    );
    assert_applied(&d, 1, &[UserUpdated, UserRoleChanged]);
    let rc = &d.events[1];
    assert_eq!(rc.data["from"], "r-basic");
    assert_eq!(rc.data["to"], "r-admin");
    let u = written(&d);
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn an_upsert_naming_only_a_role_touches_only_the_role_aspect() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|u| u.role_id = Some(id("r-admin"))));
    assert_applied(&d, 1, &[UserRoleChanged]);
    let u = written(&d);
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(0)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn upserting_the_same_values_is_unchanged_but_advances_the_aspects() {
    let mut sim = Sim::new();
    let d = sim.ok(5, standard_upsert());
    assert_unchanged(&d, 1);
    let u = written(&d);
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(5)));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
    assert_stale(&sim.ok(3, upsert(|u| u.name = Some("Older".into()))));
    assert_stale(&sim.ok(3, change_role("r-admin")));
}

#[test]
fn an_empty_upsert_of_an_existing_user_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, upsert(|_| {}));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(PROFILE), Some(&ts(5)));
}

#[test]
fn an_upsert_applies_a_fresh_role_and_skips_a_stale_profile() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.name = Some("Grace Hopper".into())));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Stale".into());
            u.role_id = Some(id("r-admin"));
        }),
    );
    assert_applied(&d, 2, &[UserRoleChanged]);
    let u = written(&d);
    assert_eq!(u.name.as_deref(), Some("Grace Hopper"));
    assert_eq!(u.role_id, Some(id("r-admin")));
    assert_eq!(u.aspects.get(PROFILE), Some(&ts(10)));
}

#[test]
fn an_upsert_applies_a_fresh_profile_and_skips_a_stale_role() {
    let mut sim = Sim::new();
    sim.ok(10, change_role("r-admin"));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Grace Hopper".into());
            u.role_id = Some(id("r-basic"));
        }),
    );
    assert_applied(&d, 2, &[UserUpdated]);
    let u = written(&d);
    assert_eq!(u.role_id, Some(id("r-admin")));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(10)));
}

#[test]
fn an_upsert_is_stale_only_when_all_its_aspects_are_stale() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.name = Some("Grace Hopper".into())));
    sim.ok(10, change_role("r-admin"));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Stale".into());
            u.role_id = Some(id("r-basic"));
        }),
    );
    assert_stale(&d);
}

#[test]
fn an_upsert_with_a_stale_profile_and_the_current_role_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(10, upsert(|u| u.name = Some("Grace Hopper".into())));
    let d = sim.ok(
        5,
        upsert(|u| {
            u.name = Some("Stale".into());
            u.role_id = Some(id("r-basic"));
        }),
    );
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn updating_a_user_with_a_missing_role_is_role_not_found() {
    let mut sim = Sim::new();
    sim.missing_roles.push("r-ghost");
    let op = upsert(|u| {
        u.name = Some("Grace Hopper".into());
        u.role_id = Some(id("r-ghost"));
    });
    assert_eq!(sim.refused(5, op), ErrorCode::RoleNotFound);
}

#[test]
fn updating_a_user_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let op = || upsert(|u| u.name = Some("Grace Hopper".into()));
    let err = sim.run_expecting(5, op(), Some(0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let d = sim.run_expecting(5, op(), Some(1)).unwrap();
    assert_applied(&d, 1, &[UserUpdated]);
}

// ---------------------------------------------------------------------------
// user.revoke_access / user.restore_access
// ---------------------------------------------------------------------------

#[test]
fn revoking_access_applies() {
    let mut sim = Sim::new();
    let d = sim.ok(5, revoke());
    assert_applied(&d, 1, &[UserAccessRevoked]);
    assert_eq!(d.events[0].data["reason"], "left");
    assert_eq!(d.events[0].data["user"]["site_access"], false);
    let u = written(&d);
    assert!(!u.site_access);
    assert_eq!(u.aspects.get(ACCESS), Some(&ts(5)));
}

#[test]
fn revoking_access_of_a_revoked_user_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(5, revoke());
    let d = sim.ok(10, revoke());
    assert_unchanged(&d, 2);
    assert_eq!(written(&d).aspects.get(ACCESS), Some(&ts(10)));
    assert_stale(&sim.ok(7, restore()));
    assert!(!sim.user().site_access);
}

#[test]
fn revoking_access_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, restore());
    assert_stale(&sim.ok(5, revoke()));
    assert!(sim.user().site_access);
}

#[test]
fn restoring_access_applies() {
    let mut sim = Sim::new();
    sim.ok(5, revoke());
    let d = sim.ok(10, restore());
    assert_applied(&d, 2, &[UserAccessRestored]);
    assert_eq!(d.events[0].data["reason"], "back");
    assert!(written(&d).site_access);
}

#[test]
fn restoring_access_of_a_user_with_access_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, restore());
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(ACCESS), Some(&ts(5)));
}

#[test]
fn restoring_access_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, revoke());
    assert_stale(&sim.ok(5, restore()));
    assert!(!sim.user().site_access);
}

#[test]
fn access_commands_with_equal_timestamps_apply_in_arrival_order() {
    let mut sim = Sim::new();
    assert_applied(&sim.ok(5, revoke()), 1, &[UserAccessRevoked]);
    assert_applied(&sim.ok(5, restore()), 2, &[UserAccessRestored]);
}

#[test]
fn a_stale_access_command_does_not_block_the_profile_or_role() {
    let mut sim = Sim::new();
    sim.ok(10, revoke());
    assert_stale(&sim.ok(5, restore()));
    assert_applied(
        &sim.ok(5, upsert(|u| u.name = Some("Grace Hopper".into()))),
        2,
        &[UserUpdated],
    );
    assert_applied(&sim.ok(5, change_role("r-admin")), 3, &[UserRoleChanged]);
}

#[test]
fn access_commands_are_refused_for_missing_or_conflicting_users() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, revoke()), ErrorCode::NotFound);
    assert_eq!(sim.refused(5, restore()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, revoke(), Some(3)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

// ---------------------------------------------------------------------------
// user.change_role
// ---------------------------------------------------------------------------

#[test]
fn changing_the_role_applies_with_from_and_to() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_role("r-admin"));
    assert_applied(&d, 1, &[UserRoleChanged]);
    assert_eq!(d.events[0].data["from"], "r-basic");
    assert_eq!(d.events[0].data["to"], "r-admin");
    let u = written(&d);
    assert_eq!(u.role_id, Some(id("r-admin")));
    assert_eq!(u.aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn giving_a_first_role_reports_from_null() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.email = Some(EMAIL.into())));
    let d = sim.ok(5, change_role("r-admin"));
    assert_eq!(d.events[0].data["from"], Value::Null);
}

#[test]
fn changing_to_the_current_role_is_unchanged() {
    let mut sim = Sim::new();
    let d = sim.ok(5, change_role("r-basic"));
    assert_unchanged(&d, 1);
    assert_eq!(written(&d).aspects.get(ROLE), Some(&ts(5)));
}

#[test]
fn changing_the_role_with_an_older_issued_at_is_stale() {
    let mut sim = Sim::new();
    sim.ok(10, change_role("r-admin"));
    assert_stale(&sim.ok(5, change_role("r-other")));
    assert_eq!(sim.user().role_id, Some(id("r-admin")));
}

#[test]
fn changing_to_a_missing_role_is_role_not_found() {
    let mut sim = Sim::new();
    sim.missing_roles.push("r-ghost");
    assert_eq!(
        sim.refused(5, change_role("r-ghost")),
        ErrorCode::RoleNotFound
    );
}

#[test]
fn changing_the_role_is_refused_for_missing_or_conflicting_users() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, change_role("r-admin")), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim
        .run_expecting(5, change_role("r-admin"), Some(2))
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

// ---------------------------------------------------------------------------
// user.delete and the tombstone
// ---------------------------------------------------------------------------

#[test]
fn deleting_a_user_applies_with_ids_and_email_but_no_snapshot() {
    let mut sim = Sim::new();
    let d = sim.ok(5, UserOp::Delete);
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(types(&d), [UserDeleted]);
    let e = &d.events[0];
    assert_eq!(e.version, 2);
    assert_eq!(e.entity_kind, EntityKind::User);
    assert_eq!(e.data["user_id"], UID);
    assert_eq!(e.data["email"], EMAIL);
    assert_eq!(e.data["actor"], "hr-sync");
    assert!(!e.data.contains_key("user"));
    assert_eq!(
        d.write,
        Some(UserRecord::Deleted {
            at: ts(5),
            version: 2
        })
    );
}

#[test]
fn deleting_a_user_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(100, revoke());
    sim.ok(100, upsert(|u| u.name = Some("Grace Hopper".into())));
    let d = sim.ok(1, UserOp::Delete);
    assert_eq!(d.outcome, Outcome::Applied);
}

#[test]
fn deleting_a_missing_user_is_not_found() {
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, UserOp::Delete), ErrorCode::NotFound);
}

#[test]
fn deleting_a_deleted_user_again_later_is_not_found() {
    let mut sim = Sim::new();
    sim.ok(10, UserOp::Delete);
    assert_eq!(sim.refused(15, UserOp::Delete), ErrorCode::NotFound);
}

/// Contract section 3: "`delete` is never stale". A second delete is refused
/// as for contacts (`contact.delete` of a tombstone is `not_found` whatever
/// its `issued_at`).
#[test]
fn deleting_a_deleted_user_with_an_older_issued_at_is_not_found_since_delete_is_never_stale() {
    let mut sim = Sim::new();
    sim.ok(10, UserOp::Delete);
    assert_eq!(sim.refused(5, UserOp::Delete), ErrorCode::NotFound);
}

#[test]
fn deleting_a_user_with_the_wrong_expected_version_is_a_version_conflict() {
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, UserOp::Delete, Some(7)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
}

#[test]
fn user_commands_issued_before_the_delete_are_stale() {
    for op in [
        standard_upsert(),
        revoke(),
        restore(),
        change_role("r-admin"),
    ] {
        let mut sim = Sim::new();
        sim.ok(10, UserOp::Delete);
        let name = op.type_name();
        let d = sim.run(5, op).unwrap_or_else(|r| panic!("{name}: {r}"));
        assert_stale(&d);
        assert!(matches!(sim.record, UserRecord::Deleted { .. }), "{name}");
    }
}

#[test]
fn user_commands_issued_after_the_delete_are_not_found() {
    for op in [revoke(), restore(), change_role("r-admin")] {
        let mut sim = Sim::new();
        sim.ok(10, UserOp::Delete);
        let name = op.type_name();
        assert_eq!(sim.refused(15, op), ErrorCode::NotFound, "{name}");
    }
}

#[test]
fn an_upsert_after_the_delete_creates_a_new_user_at_version_one() {
    let mut sim = Sim::new();
    sim.ok(3, revoke());
    sim.ok(10, UserOp::Delete);
    let d = sim.ok(15, upsert(|u| u.email = Some("new@example.com".into())));
    assert_eq!(types(&d), [UserCreated]);
    let u = written(&d);
    assert_eq!(u.version, 1);
    assert!(u.site_access);
    assert_eq!(u.name, None, "nothing of the deleted user survives");
    assert_eq!(u.role_id, None);
    assert_eq!(d.events[0].version, 1);
}

#[test]
fn an_upsert_after_the_delete_still_needs_an_email() {
    let mut sim = Sim::new();
    sim.ok(10, UserOp::Delete);
    assert_eq!(
        sim.refused(15, upsert(|u| u.name = Some("Grace".into()))),
        ErrorCode::InvalidCommand
    );
}

// ---------------------------------------------------------------------------
// role.upsert
// ---------------------------------------------------------------------------

fn role_cmd(name: &str, permissions: &[&str]) -> RoleUpsert {
    RoleUpsert {
        role_id: id("r-denied"),
        name: name.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
    }
}

fn role(version: u64, name: &str, permissions: &[&str], minute: i64) -> Role {
    Role {
        id: id("r-denied"),
        version,
        name: name.into(),
        permissions: permissions.iter().map(|p| (*p).to_owned()).collect(),
        profile_at: ts(minute),
    }
}

#[test]
fn upserting_a_new_role_applies_version_one() {
    let w = World::acting_as("hr-sync");
    let d = decide_role(&w.ctx(0), None, &role_cmd("Denied Access Role", &[]), None).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    let r = d.write.as_ref().unwrap();
    assert_eq!(r.version, 1);
    assert_eq!(r.name, "Denied Access Role");
    assert!(r.permissions.is_empty());
    assert_eq!(r.profile_at, ts(0));
    assert_eq!(types(&d), [RoleUpserted]);
    let e = &d.events[0];
    assert_eq!(e.version, 1);
    assert_eq!(e.entity_kind, EntityKind::Role);
    assert_eq!(e.entity_id, "r-denied");
    assert_eq!(e.data["role_id"], "r-denied");
    assert_eq!(e.data["name"], "Denied Access Role");
    assert_eq!(e.data["permissions"], json!([]));
}

#[test]
fn changing_a_role_applies_with_one_version_bump() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &["jobs.read"], 0);
    let cmd = role_cmd("Staff", &["jobs.read", "jobs.write"]);
    let d = decide_role(&w.ctx(5), Some(&current), &cmd, None).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    assert_eq!(d.write.as_ref().unwrap().version, 4);
    assert_eq!(d.events[0].version, 4);
    assert_eq!(
        d.events[0].data["permissions"],
        json!(["jobs.read", "jobs.write"])
    );
}

#[test]
fn upserting_a_role_as_it_is_is_unchanged_but_advances_its_timestamp() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &["jobs.read"], 0);
    let d = decide_role(
        &w.ctx(5),
        Some(&current),
        &role_cmd("Staff", &["jobs.read"]),
        None,
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Unchanged);
    assert!(d.events.is_empty());
    let r = d.write.unwrap();
    assert_eq!(r.version, 3);
    assert_eq!(r.profile_at, ts(5));
    let older = decide_role(&w.ctx(4), Some(&r), &role_cmd("Other", &[]), None).unwrap();
    assert_stale(&older);
}

#[test]
fn upserting_a_role_with_an_older_issued_at_is_stale() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &["jobs.read"], 10);
    let d = decide_role(&w.ctx(5), Some(&current), &role_cmd("Other", &[]), None).unwrap();
    assert_stale(&d);
    let equal = decide_role(&w.ctx(10), Some(&current), &role_cmd("Other", &[]), None).unwrap();
    assert_eq!(equal.outcome, Outcome::Applied, "equal timestamps apply");
}

#[test]
fn upserting_a_role_with_the_wrong_expected_version_is_a_version_conflict() {
    let w = World::acting_as("hr-sync");
    let current = role(3, "Staff", &[], 0);
    let cmd = role_cmd("Other", &[]);
    let err = decide_role(&w.ctx(5), Some(&current), &cmd, Some(2)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert!(decide_role(&w.ctx(5), Some(&current), &cmd, Some(3)).is_ok());
    let err = decide_role(&w.ctx(5), None, &cmd, Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert!(decide_role(&w.ctx(5), None, &cmd, Some(0)).is_ok());
}

// ---------------------------------------------------------------------------
// employer.upsert
// ---------------------------------------------------------------------------

fn employer_cmd(name: &str, departments: Option<&[&str]>) -> EmployerUpsert {
    EmployerUpsert {
        employer_id: id("e-1"),
        name: name.into(),
        departments: departments.map(|d| d.iter().map(|x| (*x).to_owned()).collect()),
    }
}

fn employer(version: u64, name: Option<&str>, departments: &[&str], at: Option<i64>) -> Employer {
    Employer {
        id: id("e-1"),
        version,
        name: name.map(str::to_owned),
        departments: departments.iter().map(|d| (*d).to_owned()).collect(),
        profile_at: at.map(ts),
    }
}

#[test]
fn upserting_a_new_employer_applies_version_one() {
    let w = World::acting_as("hr-sync");
    let d = decide_employer(&w.ctx(0), None, &employer_cmd("Initech", None), None).unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    let e = d.write.as_ref().unwrap();
    assert_eq!(e.version, 1);
    assert_eq!(e.name.as_deref(), Some("Initech"));
    assert!(e.departments.is_empty());
    assert_eq!(e.profile_at, Some(ts(0)));
    assert_eq!(types(&d), [EmployerUpserted]);
    let ev = &d.events[0];
    assert_eq!(ev.version, 1);
    assert_eq!(ev.entity_kind, EntityKind::Employer);
    assert_eq!(ev.data["employer_id"], "e-1");
    assert_eq!(ev.data["name"], "Initech");
    assert_eq!(ev.data["departments"], json!([]));
}

#[test]
fn upserting_an_implicit_employer_names_it_at_version_one() {
    let w = World::acting_as("hr-sync");
    let implicit = employer(0, None, &[], None);
    let d = decide_employer(
        &w.ctx(-500),
        Some(&implicit),
        &employer_cmd("Initech", Some(&["Sales"])),
        None,
    )
    .unwrap();
    assert_eq!(
        d.outcome,
        Outcome::Applied,
        "an implicit employer is never stale"
    );
    let e = d.write.unwrap();
    assert_eq!(e.version, 1);
    assert_eq!(e.name.as_deref(), Some("Initech"));
    assert_eq!(e.departments, ["Sales"]);
    assert_eq!(d.events[0].version, 1);
}

#[test]
fn renaming_an_employer_keeps_its_departments_when_none_are_given() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &["Sales", "R&D"], Some(0));
    let d = decide_employer(
        &w.ctx(5),
        Some(&current),
        &employer_cmd("Initrode", None),
        None,
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    let e = d.write.unwrap();
    assert_eq!(e.version, 3);
    assert_eq!(e.departments, ["Sales", "R&D"]);
    assert_eq!(d.events[0].data["departments"], json!(["Sales", "R&D"]));
}

#[test]
fn changing_only_the_departments_of_an_employer_applies() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &["Sales"], Some(0));
    let d = decide_employer(
        &w.ctx(5),
        Some(&current),
        &employer_cmd("Initech", Some(&[])),
        None,
    )
    .unwrap();
    assert_eq!(d.outcome, Outcome::Applied);
    assert!(d.write.unwrap().departments.is_empty());
}

#[test]
fn upserting_an_employer_as_it_is_is_unchanged_but_advances_its_timestamp() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &["Sales"], Some(0));
    for cmd in [
        employer_cmd("Initech", None),
        employer_cmd("Initech", Some(&["Sales"])),
    ] {
        let d = decide_employer(&w.ctx(5), Some(&current), &cmd, None).unwrap();
        assert_eq!(d.outcome, Outcome::Unchanged);
        assert!(d.events.is_empty());
        let e = d.write.unwrap();
        assert_eq!(e.version, 2);
        assert_eq!(e.profile_at, Some(ts(5)));
    }
}

#[test]
fn upserting_an_employer_with_an_older_issued_at_is_stale() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &[], Some(10));
    let d = decide_employer(
        &w.ctx(5),
        Some(&current),
        &employer_cmd("Initrode", None),
        None,
    )
    .unwrap();
    assert_stale(&d);
}

#[test]
fn upserting_an_employer_with_the_wrong_expected_version_is_a_version_conflict() {
    let w = World::acting_as("hr-sync");
    let current = employer(2, Some("Initech"), &[], Some(0));
    let cmd = employer_cmd("Initrode", None);
    let err = decide_employer(&w.ctx(5), Some(&current), &cmd, Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    assert!(decide_employer(&w.ctx(5), Some(&current), &cmd, Some(2)).is_ok());
    let err = decide_employer(&w.ctx(5), None, &cmd, Some(1)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    let implicit = employer(0, None, &[], None);
    assert!(decide_employer(&w.ctx(5), Some(&implicit), &cmd, Some(0)).is_ok());
}
