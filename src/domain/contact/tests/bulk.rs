//! contact.bulk: summarize_bulk and check_op_against_policy: decisions and outcomes.

use super::*;

fn item(contact_id: &str, outcome: Outcome) -> BulkItem {
    BulkItem {
        contact_id: contact_id.into(),
        outcome,
        version: Some(1),
        error: None,
    }
}

fn refused_item(contact_id: &str, code: ErrorCode) -> BulkItem {
    BulkItem {
        contact_id: contact_id.into(),
        outcome: Outcome::Rejected,
        version: None,
        error: Some(ReplyError {
            code,
            message: format!("{code} for {contact_id}"),
        }),
    }
}

#[test]
fn a_bulk_with_any_applied_item_is_applied() {
    use Outcome::*;
    let cases = [
        vec![item("a", Applied)],
        vec![item("a", Stale), item("b", Applied)],
        vec![item("a", Unchanged), item("b", Applied), item("c", Stale)],
        vec![refused_item("a", ErrorCode::NotFound), item("b", Applied)],
        vec![
            item("a", Applied),
            refused_item("b", ErrorCode::Frozen),
            item("c", Unchanged),
        ],
    ];
    for items in cases {
        assert_eq!(summarize_bulk(&items), Ok(Applied), "{items:?}");
    }
}

#[test]
fn a_bulk_without_applied_items_but_an_unchanged_one_is_unchanged() {
    use Outcome::*;
    let cases = [
        vec![item("a", Unchanged)],
        vec![item("a", Stale), item("b", Unchanged)],
        vec![refused_item("a", ErrorCode::Frozen), item("b", Unchanged)],
        vec![
            item("a", Stale),
            refused_item("b", ErrorCode::NotFound),
            item("c", Unchanged),
        ],
    ];
    for items in cases {
        assert_eq!(summarize_bulk(&items), Ok(Unchanged), "{items:?}");
    }
}

#[test]
fn a_bulk_with_only_stale_and_refused_items_is_stale() {
    use Outcome::*;
    let cases = [
        vec![item("a", Stale)],
        vec![item("a", Stale), item("b", Stale)],
        vec![refused_item("a", ErrorCode::NotFound), item("b", Stale)],
    ];
    for items in cases {
        assert_eq!(summarize_bulk(&items), Ok(Stale), "{items:?}");
    }
}

#[test]
fn a_bulk_whose_every_item_was_refused_is_rejected_with_the_first_code() {
    let items = [
        refused_item("c-1", ErrorCode::NotFound),
        refused_item("c-2", ErrorCode::Frozen),
        refused_item("c-3", ErrorCode::InvalidTransition),
    ];
    let err = summarize_bulk(&items).unwrap_err();
    assert_eq!(err.code, ErrorCode::NotFound);
    assert!(err.message.contains("c-1"), "{}", err.message);
    assert!(err.message.contains("all 3"), "{}", err.message);

    let items = [refused_item("c-9", ErrorCode::Frozen)];
    assert_eq!(summarize_bulk(&items).unwrap_err().code, ErrorCode::Frozen);
}

#[test]
fn an_empty_bulk_is_unchanged() {
    assert_eq!(summarize_bulk(&[]), Ok(Outcome::Unchanged));
}

#[test]
fn bulk_items_decided_one_by_one_summarize_to_the_contract_outcomes() {
    // A deactivate applied to three contacts in different states.
    let world = World::new();
    let ctx = world.ctx(5);
    let op = deactivate();
    let active = Sim::new();
    let mut inactive = Sim::new();
    inactive.ok(1, deactivate());
    let mut newer = Sim::new();
    newer.ok(10, reactivate());
    let mut items = vec![];
    for (cid, sim) in [("a", &active), ("b", &inactive), ("c", &newer)] {
        let d = decide_contact(&ctx, &id(cid), &sim.record, &op, None, &[]).unwrap();
        items.push(item(cid, d.outcome));
    }
    let outcomes: Vec<Outcome> = items.iter().map(|i| i.outcome).collect();
    assert_eq!(
        outcomes,
        [Outcome::Applied, Outcome::Unchanged, Outcome::Stale]
    );
    assert_eq!(summarize_bulk(&items), Ok(Outcome::Applied));
    assert_eq!(summarize_bulk(&items[1..]), Ok(Outcome::Unchanged));
    assert_eq!(summarize_bulk(&items[2..]), Ok(Outcome::Stale));
    let missing = decide_contact(&ctx, &id("d"), &ContactRecord::Absent, &op, None, &[]);
    assert_eq!(missing.unwrap_err().code, ErrorCode::NotFound);
}

#[test]
fn the_policy_check_refuses_unknown_statuses_only() {
    let policy = TenantPolicy::default();
    assert_eq!(
        check_op_against_policy(&policy, &change_status("ZZ"))
            .unwrap_err()
            .code,
        ErrorCode::InvalidStatus
    );
    assert_eq!(
        check_op_against_policy(&policy, &upsert(|u| u.status = Some("ZZ".into())))
            .unwrap_err()
            .code,
        ErrorCode::InvalidStatus
    );
    let fine = [
        change_status("S1"),
        upsert(|u| u.status = Some("B".into())),
        upsert(|u| u.first_name = Some("Ada".into())),
        deactivate(),
        reactivate(),
        change_employer(None, None),
        set_visibility(Visibility::Owner),
        set_attrs(&[("tier", None)]),
        approve(),
        reject(),
        archive(),
        revive(),
        activity(ActivityKind::Message, Some("deact")),
        delete(),
    ];
    for op in fine {
        assert_eq!(
            check_op_against_policy(&policy, &op),
            Ok(()),
            "{}",
            op.type_name()
        );
    }
    let strict = TenantPolicy {
        statuses: vec!["X".into()],
        ..TenantPolicy::default()
    };
    assert!(check_op_against_policy(&strict, &change_status("X")).is_ok());
    assert!(check_op_against_policy(&strict, &change_status("A")).is_err());
}

#[test]
fn the_policy_check_does_not_depend_on_delete_permission() {
    let policy = TenantPolicy {
        allow_contact_delete: false,
        ..TenantPolicy::default()
    };
    assert_eq!(check_op_against_policy(&policy, &delete()), Ok(()));
}
