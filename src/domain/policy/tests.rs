//! Unit tests of tenant policies: glob patterns, per-tenant overrides and
//! producer authorisation, replays included.

use super::*;

#[test]
fn glob_patterns() {
    assert!(glob_match("*", "contact.deactivate"));
    assert!(glob_match("contact.*", "contact.deactivate"));
    assert!(!glob_match("contact.*", "user.delete"));
    assert!(glob_match("*.delete", "user.delete"));
    assert!(glob_match("contact.*e", "contact.archive"));
    assert!(!glob_match("contact.*e", "contact.approve_x"));
    assert!(glob_match("c*t.*a*e", "contact.deactivate"));
    assert!(glob_match("user.upsert", "user.upsert"));
    assert!(!glob_match("user.upsert", "user.upserts"));
    assert!(!glob_match("ab*ba", "aba"));
}

#[test]
fn tenant_overrides_fall_back_to_the_default_block() {
    let mut blocks = BTreeMap::new();
    blocks.insert(
        "default".to_string(),
        TenantPolicyOverride {
            suppressing_statuses: Some(vec!["D".into()]),
            ..Default::default()
        },
    );
    blocks.insert(
        "acme".to_string(),
        TenantPolicyOverride {
            allow_contact_delete: Some(false),
            ..Default::default()
        },
    );
    let p = Policies::from_blocks(&blocks);
    assert!(!p.for_tenant("acme").allow_contact_delete);
    assert_eq!(p.for_tenant("acme").suppressing_statuses, vec!["D"]);
    assert!(p.for_tenant("globex").allow_contact_delete);
    assert_eq!(p.for_tenant("globex").suppressing_statuses, vec!["D"]);
    assert_eq!(p.for_tenant("globex").deactivate_prefix, "deact");
}

#[test]
fn producers_are_checked_only_when_configured() {
    let open = Producers::default();
    assert!(open.authorise(None, "acme", "contact.delete").is_ok());

    let mut grants = BTreeMap::new();
    grants.insert(
        "ats-sync".to_string(),
        ProducerGrant {
            tenants: vec!["acme".into(), "globex".into()],
            commands: vec!["contact.*".into(), "employer.*".into()],
            replay: false,
        },
    );
    grants.insert(
        "ops".to_string(),
        ProducerGrant {
            tenants: vec!["*".into()],
            commands: vec!["*".into()],
            replay: false,
        },
    );
    let p = Producers::new(grants);
    let code = |r: Result<(), Rejection>| r.err().map(|e| e.code);
    assert_eq!(
        code(p.authorise(Some("ats-sync"), "acme", "contact.deactivate")),
        None
    );
    assert_eq!(
        code(p.authorise(Some("ats-sync"), "globex", "employer.upsert")),
        None
    );
    assert_eq!(
        code(p.authorise(Some("ats-sync"), "initech", "contact.deactivate")),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(p.authorise(Some("ats-sync"), "acme", "user.delete")),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(p.authorise(None, "acme", "contact.deactivate")),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(p.authorise(Some("stranger"), "acme", "contact.deactivate")),
        Some(ErrorCode::Forbidden)
    );
    assert_eq!(
        code(p.authorise(Some("ops"), "anyone", "user.delete")),
        None
    );
}

fn replay_grants() -> Producers {
    let mut grants = BTreeMap::new();
    grants.insert(
        "narrow".to_string(),
        ProducerGrant {
            tenants: vec!["acme".into()],
            commands: vec!["contact.*".into()],
            replay: false,
        },
    );
    grants.insert(
        "operator".to_string(),
        ProducerGrant {
            replay: true,
            ..ProducerGrant::default()
        },
    );
    Producers::new(grants)
}

#[test]
fn with_authorisation_off_no_message_can_name_another_producer() {
    let off = Producers::default();
    // A producer's forged replay markers name nobody...
    assert_eq!(
        off.acting_producer(Some("mallory"), true, Some("boss")),
        None
    );
    assert_eq!(off.acting_producer(None, true, Some("boss")), None);
    // ...and its own messages are its own.
    assert_eq!(
        off.acting_producer(Some("mallory"), false, Some("boss")),
        Some("mallory")
    );
}

#[test]
fn a_trusted_replay_acts_as_its_original_producer() {
    let p = replay_grants();
    // The operator's replay stands for the original producer, or for
    // nobody when the original carried no user_id.
    assert_eq!(
        p.acting_producer(Some("operator"), true, Some("narrow")),
        Some("narrow")
    );
    assert_eq!(p.acting_producer(Some("operator"), true, None), None);
    // The operator sending a command of its own has no grants.
    assert_eq!(
        p.acting_producer(Some("operator"), false, Some("narrow")),
        Some("operator")
    );
    assert!(p
        .authorise(Some("operator"), "acme", "contact.deactivate")
        .is_err());
    // A producer cannot pose as a replay: its markers are ignored.
    assert_eq!(
        p.acting_producer(Some("narrow"), true, Some("operator")),
        Some("narrow")
    );
    assert!(!p.trusts_replay_from(Some("narrow"), true));
    assert!(p.trusts_replay_from(Some("operator"), true));
    assert!(!p.trusts_replay_from(Some("operator"), false));
    assert!(p.may_replay(Some("operator")));
    assert!(!p.may_replay(Some("narrow")));
    assert!(!p.may_replay(None));
}

#[test]
fn without_authorisation_anyone_may_replay_and_replays_are_believed() {
    let open = Producers::default();
    assert!(!open.enabled());
    assert!(open.may_replay(None));
    assert!(open.trusts_replay_from(Some("x"), true));
}

#[test]
fn a_bulk_needs_a_grant_for_its_inner_operation_too() {
    let mut grants = BTreeMap::new();
    grants.insert(
        "bulker".to_string(),
        ProducerGrant {
            tenants: vec!["acme".into()],
            commands: vec!["contact.bulk".into(), "contact.archive".into()],
            replay: false,
        },
    );
    let p = Producers::new(grants);
    assert!(p
        .authorise_command(Some("bulker"), "acme", &["contact.bulk", "contact.archive"])
        .is_ok());
    let refused = p
        .authorise_command(Some("bulker"), "acme", &["contact.bulk", "contact.reject"])
        .unwrap_err();
    assert_eq!(refused.code, ErrorCode::Forbidden);
    assert!(refused.message.contains("contact.reject"));
}
