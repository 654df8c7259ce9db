//! The decision for every contact command: outcome, new state and events
//! from the contact's current record (contract sections 3-5).

use super::change::Working;
use super::command::{ContactKind, ContactOp, ContactUpsert};
pub use super::decision::ContactDecision;
use super::*;
use crate::domain::blocklist::email_sha256;
use crate::domain::effect::Effect;
use crate::domain::event::{
    ContactDeleted, ContactErased, Created, EmailSuppressed, EmailUnsuppressed, EventData,
    EventDraft, OnContact,
};
use crate::domain::ids::EntityId;
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use crate::domain::policy::{DeleteMode, TenantPolicy};
use crate::domain::record::{check_version, Erasable, Kept};
use crate::domain::ts::Ts;
use crate::domain::user::User;
use crate::domain::Ctx;
use std::collections::BTreeMap;

fn check_status(policy: &TenantPolicy, status: &str) -> Result<(), Rejection> {
    if policy.statuses.iter().any(|s| s == status) {
        Ok(())
    } else {
        Err(Rejection::new(
            ErrorCode::InvalidStatus,
            format!(
                "status `{status}` is not one of the tenant's codes ({})",
                policy.statuses.join(" ")
            ),
        ))
    }
}

/// Validates what a contact command asks of the tenant's policy, whatever
/// the contact's state (so a bulk can refuse a bad operation once, up front).
pub fn check_op_against_policy(policy: &TenantPolicy, op: &ContactOp) -> Result<(), Rejection> {
    match op {
        ContactOp::ChangeStatus { status } => check_status(policy, status),
        ContactOp::Upsert(u) => u
            .status
            .as_deref()
            .map_or(Ok(()), |s| check_status(policy, s)),
        ContactOp::Deactivate { .. }
        | ContactOp::Reactivate { .. }
        | ContactOp::ChangeEmployer { .. }
        | ContactOp::SetVisibility { .. }
        | ContactOp::SetAttributes { .. }
        | ContactOp::Approve { .. }
        | ContactOp::Reject { .. }
        | ContactOp::Archive(_)
        | ContactOp::Revive(_)
        | ContactOp::LogActivity(_)
        | ContactOp::Restore
        | ContactOp::Delete
        | ContactOp::Erase
        | ContactOp::ConfirmConsent => Ok(()),
    }
}

/// Decides a contact command against the contact's current record.
/// `linked_users` are the live users whose `contact_id` is this contact
/// (needed by archive and revive only).
pub fn decide_contact(
    ctx: &Ctx<'_>,
    id: &EntityId,
    record: &ContactRecord,
    op: &ContactOp,
    expected_version: Option<u64>,
    linked_users: &[User],
) -> Result<ContactDecision, Rejection> {
    // What the command asks of the tenant's policy is wrong whatever the
    // contact's state, so it is refused first (a replay would fail again).
    check_op_against_policy(ctx.policy, op)?;
    let contact = match record {
        ContactRecord::Live(c) => c,
        ContactRecord::Deleted { .. } | ContactRecord::Absent => {
            return decide_not_live(ctx, id, record, op, expected_version)
        }
    };
    check_version(EntityKind::Contact, expected_version, contact.version)?;
    if contact.approval == Approval::Rejected && !op.kind().allowed_while_frozen() {
        let accepted: Vec<&str> = ContactKind::frozen_names()
            .into_iter()
            .map(|n| n.trim_start_matches("contact."))
            .collect();
        return Err(Rejection::new(
            ErrorCode::Frozen,
            format!(
                "contact `{id}` is rejected: only {} are accepted",
                accepted.join(", ")
            ),
        ));
    }
    match op {
        ContactOp::Restore => Err(Rejection::new(
            ErrorCode::InvalidTransition,
            format!("contact `{id}` is not deleted, so it cannot be restored"),
        )),
        ContactOp::Delete => delete(ctx, contact),
        ContactOp::ConfirmConsent => Ok(confirm_consent(ctx, contact)),
        ContactOp::Erase => erase(ctx, id, record, expected_version),
        ContactOp::Upsert(_)
        | ContactOp::Deactivate { .. }
        | ContactOp::Reactivate { .. }
        | ContactOp::ChangeStatus { .. }
        | ContactOp::ChangeEmployer { .. }
        | ContactOp::SetVisibility { .. }
        | ContactOp::SetAttributes { .. }
        | ContactOp::Approve { .. }
        | ContactOp::Reject { .. }
        | ContactOp::Archive(_)
        | ContactOp::Revive(_)
        | ContactOp::LogActivity(_) => {
            let mut w = Working::new(ctx, contact);
            w.apply(id, op, linked_users)?;
            Ok(w.finish())
        }
    }
}

/// A command for a contact that is deleted or never existed.
fn decide_not_live(
    ctx: &Ctx<'_>,
    id: &EntityId,
    record: &ContactRecord,
    op: &ContactOp,
    expected_version: Option<u64>,
) -> Result<ContactDecision, Rejection> {
    let not_found = || {
        Rejection::new(
            ErrorCode::NotFound,
            format!("contact `{id}` does not exist"),
        )
    };
    // Erase forgets a soft-deleted copy too; deleting what is gone is
    // not_found, never stale.
    if let ContactOp::Erase = op {
        return erase(ctx, id, record, expected_version);
    }
    if let ContactOp::Delete = op {
        return Err(not_found());
    }
    if let ContactRecord::Deleted { at, .. } = record {
        if ctx.issued_at < at.get() {
            // Issued before the delete: superseded, like any older command.
            check_version(EntityKind::Contact, expected_version, 0)?;
            return Ok(ContactDecision::stale());
        }
    }
    match op {
        ContactOp::Restore => {
            let (Some(kept), ContactRecord::Deleted { version, .. }) =
                (record.restorable(ctx.now), record)
            else {
                return Err(not_found());
            };
            check_version(EntityKind::Contact, expected_version, *version)?;
            Ok(restore(ctx, kept, *version))
        }
        ContactOp::Upsert(u) => {
            check_version(EntityKind::Contact, expected_version, 0)?;
            let mut created = create(ctx, id, u)?;
            // A new contact under the id: the deleted copy goes at once.
            if let ContactRecord::Deleted { kept: Some(_), .. } = record {
                created.effects.insert(0, Effect::EraseActivity);
            }
            Ok(created)
        }
        ContactOp::Deactivate { .. }
        | ContactOp::Reactivate { .. }
        | ContactOp::ChangeStatus { .. }
        | ContactOp::ChangeEmployer { .. }
        | ContactOp::SetVisibility { .. }
        | ContactOp::SetAttributes { .. }
        | ContactOp::Approve { .. }
        | ContactOp::Reject { .. }
        | ContactOp::Archive(_)
        | ContactOp::Revive(_)
        | ContactOp::LogActivity(_)
        | ContactOp::Delete
        | ContactOp::Erase
        | ContactOp::ConfirmConsent => Err(not_found()),
    }
}

fn delete(ctx: &Ctx<'_>, contact: &Contact) -> Result<ContactDecision, Rejection> {
    if !ctx.policy.allow_contact_delete {
        return Err(Rejection::new(
            ErrorCode::DeleteForbidden,
            format!(
                "tenant `{}` does not allow deleting contacts; deactivate or archive instead",
                ctx.tenant
            ),
        ));
    }
    let version = contact.version + 1;
    let soft = ctx.policy.delete_mode == DeleteMode::Soft;
    let draft = |data| EventDraft::new(ctx, &contact.id, version, data);
    let mut events = Vec::new();
    if let Some(email) = &contact.email {
        if !contact.email_suppressed {
            events.push(draft(EventData::ContactEmailSuppressed(EmailSuppressed {
                email: email.clone(),
                reasons: vec!["deleted".to_owned()],
                contact: None,
            })));
        }
    }
    events.push(draft(EventData::ContactDeleted(ContactDeleted {
        contact_id: contact.id.clone(),
        email: contact.email.clone(),
    })));
    Ok(ContactDecision {
        outcome: Outcome::Applied,
        write: Some(ContactRecord::Deleted {
            at: Ts(ctx.issued_at),
            version,
            // Soft: kept, with its activity, until the window ends.
            kept: soft.then(|| Kept {
                state: Box::new(contact.clone()),
                purge_after: Ts(ctx.now + ctx.policy.restore_window()),
            }),
        }),
        events,
        effects: if soft {
            vec![]
        } else {
            vec![Effect::EraseActivity]
        },
    })
}

/// Forgets a contact, live or soft-deleted: a tombstone one version up,
/// `ContactEmailSuppressed` (reason `erased`) first if its address was
/// still mailed, then `ContactErased` with the address's hash. The store
/// scrubs the rest (see [`crate::domain::blocklist`]).
fn erase(
    ctx: &Ctx<'_>,
    id: &EntityId,
    record: &ContactRecord,
    expected_version: Option<u64>,
) -> Result<ContactDecision, Rejection> {
    let Some(Erasable {
        state: contact,
        live,
        version,
        at,
    }) = record.erasable(ctx.issued_at)
    else {
        return Err(Rejection::new(
            ErrorCode::NotFound,
            format!("contact `{id}` does not exist"),
        ));
    };
    check_version(EntityKind::Contact, expected_version, version)?;
    let version = version + 1;
    let draft = |data| EventDraft::new(ctx, id, version, data);
    let mut events = Vec::new();
    // A soft-deleted contact's address was suppressed by its delete.
    if let (Some(email), true) = (&contact.email, live) {
        if !contact.email_suppressed {
            events.push(draft(EventData::ContactEmailSuppressed(EmailSuppressed {
                email: email.clone(),
                reasons: vec!["erased".to_owned()],
                contact: None,
            })));
        }
    }
    events.push(draft(EventData::ContactErased(ContactErased {
        contact_id: id.clone(),
        email_sha256: contact.email.as_deref().map(email_sha256),
    })));
    Ok(ContactDecision {
        outcome: Outcome::Applied,
        write: Some(ContactRecord::Deleted {
            at,
            version,
            kept: None,
        }),
        events,
        effects: vec![
            Effect::EraseActivity,
            Effect::Forget {
                kind: EntityKind::Contact,
                email: contact.email.clone(),
            },
        ],
    })
}

/// The person opted in again: applied when the contact's address is on the
/// blocklist (the store then takes it off and re-evaluates the tenant's
/// other contacts with it), unchanged otherwise.
fn confirm_consent(ctx: &Ctx<'_>, contact: &Contact) -> ContactDecision {
    let unchanged = ContactDecision {
        outcome: Outcome::Unchanged,
        ..ContactDecision::stale()
    };
    let Some(email) = contact.email.as_deref().filter(|e| ctx.blocklist.holds(e)) else {
        return unchanged;
    };
    let mut blocklist = ctx.blocklist.clone();
    blocklist.remove(email);
    let consented = Ctx {
        blocklist: &blocklist,
        ..*ctx
    };
    let mut decided = reevaluate(&consented, contact).unwrap_or(ContactDecision {
        outcome: Outcome::Applied,
        ..ContactDecision::stale()
    });
    decided.effects.push(Effect::Consent {
        email: email.to_owned(),
    });
    decided
}

/// A contact whose address's suppression may have changed outside it (an
/// erasure or a consent for the same address): one version up with
/// `ContactEmailSuppressed` or `ContactEmailUnsuppressed` if its
/// suppression changes under `ctx.blocklist`, `None` if it does not.
pub fn reevaluate(ctx: &Ctx<'_>, contact: &Contact) -> Option<ContactDecision> {
    let mut probe = contact.clone();
    probe.refresh_derived(ctx.policy, ctx.blocklist);
    if probe.email_suppressed == contact.email_suppressed {
        return None;
    }
    Some(Working::new(ctx, contact).changed().finish())
}

/// Brings a soft-deleted contact back as it was, one version after its delete.
fn restore(ctx: &Ctx<'_>, kept: &Contact, deleted_version: u64) -> ContactDecision {
    let mut contact = kept.clone();
    contact.version = deleted_version + 1;
    contact.updated_at = Ts(ctx.now);
    // Its address may have been erased meanwhile (under another contact).
    contact.refresh_derived(ctx.policy, ctx.blocklist);
    let snapshot = ContactSnapshot::of(&contact, ctx.tenant.as_str());
    let restored = OnContact {
        change: Created {},
        contact: snapshot.clone(),
    };
    let mut events = vec![EventDraft::new(
        ctx,
        &contact.id,
        contact.version,
        EventData::ContactRestored(restored),
    )];
    // The delete suppressed its address; it is back unless something else suppresses it.
    if let (Some(email), false) = (&contact.email, contact.email_suppressed) {
        let change = EmailUnsuppressed {
            email: Some(email.clone()),
        };
        events.push(EventDraft::new(
            ctx,
            &contact.id,
            contact.version,
            EventData::ContactEmailUnsuppressed(OnContact {
                change,
                contact: snapshot,
            }),
        ));
    }
    ContactDecision::live(contact, events)
}

fn create(ctx: &Ctx<'_>, id: &EntityId, u: &ContactUpsert) -> Result<ContactDecision, Rejection> {
    if u.email.is_none() && u.first_name.is_none() && u.last_name.is_none() {
        return Err(Rejection::invalid(
            "a new contact needs payload.email or a name (first_name or last_name)",
        ));
    }
    if u.attributes.len() > ctx.limits.max_attributes {
        return Err(Rejection::invalid(format!(
            "a contact may carry at most {} attributes",
            ctx.limits.max_attributes
        )));
    }
    let at = Ts(ctx.issued_at);
    let mut aspects: BTreeMap<String, Ts> =
        [PROFILE, ACTIVATION, STATUS, EMPLOYER, VISIBILITY, APPROVAL]
            .into_iter()
            .map(|a| (a.to_owned(), at))
            .collect();
    let mut attributes = BTreeMap::new();
    for (name, value) in &u.attributes {
        aspects.insert(attribute_aspect(name), at);
        if let Some(v) = value {
            attributes.insert(name.clone(), v.clone());
        }
    }
    let mut contact = Contact {
        id: id.clone(),
        version: 1,
        first_name: u.first_name.clone(),
        last_name: u.last_name.clone(),
        email: u.email.clone(),
        phone: u.phone.clone(),
        title: u.title.clone(),
        employer_id: u.employer_id.clone(),
        department: u.department.clone(),
        employer_since: at,
        active: true,
        status: u.status.clone().unwrap_or_else(|| "A".to_owned()),
        visibility: u.visibility.unwrap_or(Visibility::Everyone),
        approval: Approval::Approved,
        attributes,
        former_employers: vec![],
        archive: None,
        email_suppressed: false,
        shown_on_employer: false,
        aspects,
        created_at: Ts(ctx.now),
        updated_at: Ts(ctx.now),
    };
    contact.refresh_derived(ctx.policy, ctx.blocklist);
    let snapshot = ContactSnapshot::of(&contact, ctx.tenant.as_str());
    let draft = |data| EventDraft::new(ctx, id, 1, data);
    let mut events = vec![draft(EventData::ContactCreated(OnContact {
        change: Created {},
        contact: snapshot.clone(),
    }))];
    let reasons = contact.suppression_reasons(ctx.policy, ctx.blocklist);
    // Reasons exist only for a contact with an email.
    if let Some(email) = contact.email.clone().filter(|_| !reasons.is_empty()) {
        events.push(draft(EventData::ContactEmailSuppressed(EmailSuppressed {
            email,
            reasons,
            contact: Some(snapshot),
        })));
    }
    Ok(ContactDecision::live(contact, events))
}
