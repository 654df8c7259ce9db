//! contact.set_attributes: decisions and outcomes.

use super::*;

#[test]
fn setting_attributes_applies_with_each_change_from_and_to() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("silver")))]));
    let d = sim.ok(
        5,
        set_attrs(&[
            ("tier", Some(json!("gold"))),
            ("score", Some(json!(4.5))),
            ("vip", Some(json!(true))),
        ]),
    );
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({
            "tier": {"from": "silver", "to": "gold"},
            "score": {"from": null, "to": 4.5},
            "vip": {"from": null, "to": true},
        })
    );
    let c = written(&d);
    assert_eq!(c.attributes.len(), 3);
    for name in ["tier", "score", "vip"] {
        assert_eq!(c.aspects.get(&attribute_aspect(name)), Some(&ts(5)));
    }
}

#[test]
fn setting_an_attribute_to_null_removes_it() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(5, set_attrs(&[("tier", None)]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({"tier": {"from": "gold", "to": null}})
    );
    assert!(!written(&d).attributes.contains_key("tier"));
}

#[test]
fn setting_attributes_to_their_current_values_is_unchanged() {
    let mut sim = Sim::new();
    sim.ok(1, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(5, set_attrs(&[("tier", Some(json!("gold"))), ("x", None)]));
    assert_unchanged(&d, 2);
    let c = written(&d);
    assert_eq!(c.aspects.get(&attribute_aspect("tier")), Some(&ts(5)));
    assert_eq!(c.aspects.get(&attribute_aspect("x")), Some(&ts(5)));
    assert_stale(&sim.ok(4, set_attrs(&[("x", Some(json!(1)))])));
}

#[test]
fn attributes_are_one_aspect_per_name() {
    let mut sim = Sim::new();
    sim.ok(10, set_attrs(&[("tier", Some(json!("gold")))]));
    let d = sim.ok(
        5,
        set_attrs(&[
            ("tier", Some(json!("bronze"))),
            ("region", Some(json!("EU"))),
        ]),
    );
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(
        event(&d, ContactAttributesChanged).data["changed"],
        json!({"region": {"from": null, "to": "EU"}})
    );
    let c = written(&d);
    assert_eq!(c.attributes["tier"], json!("gold"));
    assert_eq!(c.aspects.get(&attribute_aspect("tier")), Some(&ts(10)));
    assert_eq!(c.aspects.get(&attribute_aspect("region")), Some(&ts(5)));
}

#[test]
fn setting_attributes_whose_names_are_all_stale_is_stale() {
    let mut sim = Sim::new();
    sim.ok(
        10,
        set_attrs(&[("a", Some(json!(1))), ("b", Some(json!(2)))]),
    );
    assert_stale(&sim.ok(5, set_attrs(&[("a", Some(json!(9))), ("b", None)])));
}

#[test]
fn setting_do_not_email_suppresses_and_clearing_it_unsuppresses() {
    let mut sim = Sim::new();
    let d = sim.ok(5, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_applied(&d, 1, &[ContactAttributesChanged, ContactEmailSuppressed]);
    let s = event(&d, ContactEmailSuppressed);
    assert_eq!(s.data["reasons"], json!(["do_not_email"]));
    assert_eq!(s.data["email"], EMAIL);
    assert_eq!(s.version, 2);

    let d = sim.ok(6, set_attrs(&[("do_not_email", Some(json!(false)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged, ContactEmailUnsuppressed]);
    assert_eq!(event(&d, ContactEmailUnsuppressed).data["email"], EMAIL);

    sim.ok(7, set_attrs(&[("do_not_email", Some(json!(true)))]));
    let d = sim.ok(8, set_attrs(&[("do_not_email", None)]));
    assert_applied(&d, 4, &[ContactAttributesChanged, ContactEmailUnsuppressed]);
}

#[test]
fn setting_do_not_email_on_an_already_suppressed_contact_emits_no_flip() {
    let mut sim = Sim::new();
    sim.ok(1, deactivate());
    let d = sim.ok(5, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    let d = sim.ok(6, set_attrs(&[("do_not_email", Some(json!(false)))]));
    assert_applied(&d, 3, &[ContactAttributesChanged]);
    assert!(written(&d).email_suppressed);
}

#[test]
fn do_not_email_without_an_email_suppresses_nothing() {
    let mut sim = Sim::empty();
    sim.ok(0, upsert(|u| u.first_name = Some("Ada".into())));
    let d = sim.ok(5, set_attrs(&[("do_not_email", Some(json!(true)))]));
    assert_applied(&d, 1, &[ContactAttributesChanged]);
    assert!(!written(&d).email_suppressed);
    assert!(written(&d)
        .suppression_reasons(&sim.world.policy, &sim.world.blocklist)
        .is_empty());
}

#[test]
fn setting_attributes_beyond_the_limit_is_invalid_command() {
    let mut sim = Sim::new_in(World::with_limits(|l| l.max_attributes = 2));
    sim.ok(
        1,
        set_attrs(&[("a", Some(json!(1))), ("b", Some(json!(2)))]),
    );
    assert_eq!(
        sim.refused(5, set_attrs(&[("c", Some(json!(3)))])),
        ErrorCode::InvalidCommand
    );
    // Replacing one attribute by another stays within the limit.
    let d = sim.ok(5, set_attrs(&[("a", None), ("c", Some(json!(3)))]));
    assert_applied(&d, 2, &[ContactAttributesChanged]);
    assert_eq!(written(&d).attributes.len(), 2);
}

#[test]
fn attribute_commands_are_refused_for_missing_conflicting_or_frozen_contacts() {
    let op = || set_attrs(&[("tier", Some(json!("gold")))]);
    let mut sim = Sim::empty();
    assert_eq!(sim.refused(5, op()), ErrorCode::NotFound);
    let mut sim = Sim::new();
    let err = sim.run_expecting(5, op(), Some(0)).unwrap_err();
    assert_eq!(err.code, ErrorCode::VersionConflict);
    sim.ok(6, reject());
    assert_eq!(sim.refused(7, op()), ErrorCode::Frozen);
}
