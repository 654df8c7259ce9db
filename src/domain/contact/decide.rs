//! The decision for every contact command: outcome, new state and events
//! from the contact's current record (contract sections 3-5).

use super::command::{Archive, ContactOp, ContactUpsert, LogActivity, Revive};
use super::*;
use crate::domain::event::{
    ActivityLogged, AttributeChange, AttributesChanged, Changed, ContactDeleted, ContactErased,
    ContactField, Created, EmailSuppressed, EmailUnsuppressed, EventData, EventDraft, EventType,
    FromTo, OnContact, Placement, Reason,
};
use crate::domain::ids::EntityId;
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use crate::domain::policy::{DeleteMode, TenantPolicy};
use crate::domain::privacy::email_sha256;
use crate::domain::record::{check_version, Erasable, Kept};
use crate::domain::ts::Ts;
use crate::domain::user::User;
use crate::domain::working::{self, Versioned};
use crate::domain::Ctx;
use serde_json::Value;
use std::collections::BTreeMap;

/// The decision about one contact command.
#[derive(Clone, Debug, PartialEq)]
pub struct ContactDecision {
    pub outcome: Outcome,
    /// The record to store; `None` when nothing is written (stale).
    pub write: Option<ContactRecord>,
    /// Events in publishing order: the contact's, then its users'.
    pub events: Vec<EventDraft>,
    /// Linked users changed by archive/revive.
    pub users: Vec<User>,
    pub activity: Option<Activity>,
    /// Employers the command references; created without a name if missing.
    pub ensure_employers: Vec<EntityId>,
    /// A delete erases the contact's activity trail.
    pub erase_activity: bool,
}

impl ContactDecision {
    fn stale() -> Self {
        ContactDecision {
            outcome: Outcome::Stale,
            write: None,
            events: vec![],
            users: vec![],
            activity: None,
            ensure_employers: vec![],
            erase_activity: false,
        }
    }

    /// Applied, leaving `contact` live (created or restored): its employer
    /// must exist.
    fn live(contact: Contact, events: Vec<EventDraft>) -> Self {
        ContactDecision {
            outcome: Outcome::Applied,
            ensure_employers: contact.employer_id.iter().cloned().collect(),
            write: Some(ContactRecord::Live(contact)),
            events,
            users: vec![],
            activity: None,
            erase_activity: false,
        }
    }

    /// Counted by the guardrail: an applied destructive command, or an
    /// activity whose action code deactivated the contact.
    pub fn destructive(&self, op: &ContactOp) -> bool {
        self.outcome == Outcome::Applied
            && (op.kind().destructive()
                || (matches!(op, ContactOp::LogActivity(_))
                    && self
                        .events
                        .iter()
                        .any(|e| e.event_type == EventType::ContactDeactivated)))
    }

    /// The contact's version after the command, `None` if it does not exist.
    pub fn version_after(&self, before: &ContactRecord) -> Option<u64> {
        match self.write.as_ref().unwrap_or(before) {
            ContactRecord::Live(c) => Some(c.version),
            ContactRecord::Deleted { .. } | ContactRecord::Absent => None,
        }
    }
}

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
    let not_found = || {
        Rejection::new(
            ErrorCode::NotFound,
            format!("contact `{id}` does not exist"),
        )
    };
    // What the command asks of the tenant's policy is wrong whatever the
    // contact's state, so it is refused first (a replay would fail again).
    check_op_against_policy(ctx.policy, op)?;
    if let ContactOp::Erase = op {
        return erase(ctx, id, record, expected_version);
    }
    let contact = match (record, op) {
        (ContactRecord::Live(_), ContactOp::Restore) => {
            return Err(Rejection::new(
                ErrorCode::InvalidTransition,
                format!("contact `{id}` is not deleted, so it cannot be restored"),
            ))
        }
        (ContactRecord::Live(c), _) => c,
        (ContactRecord::Deleted { .. } | ContactRecord::Absent, ContactOp::Delete) => {
            return Err(not_found())
        }
        (ContactRecord::Deleted { at, .. }, _) if ctx.issued_at < at.get() => {
            // Issued before the delete: superseded, like any older command.
            check_version(EntityKind::Contact, expected_version, 0)?;
            return Ok(ContactDecision::stale());
        }
        (ContactRecord::Deleted { version, .. }, ContactOp::Restore) => {
            let Some(kept) = record.restorable(ctx.now) else {
                return Err(not_found());
            };
            check_version(EntityKind::Contact, expected_version, *version)?;
            return Ok(restore(ctx, kept, *version));
        }
        (ContactRecord::Deleted { .. } | ContactRecord::Absent, ContactOp::Upsert(u)) => {
            check_version(EntityKind::Contact, expected_version, 0)?;
            let mut created = create(ctx, id, u)?;
            // A new contact under the id: the deleted copy goes at once.
            created.erase_activity = matches!(record, ContactRecord::Deleted { kept: Some(_), .. });
            return Ok(created);
        }
        (ContactRecord::Deleted { .. } | ContactRecord::Absent, _) => return Err(not_found()),
    };
    check_version(EntityKind::Contact, expected_version, contact.version)?;
    if contact.approval == Approval::Rejected && !op.kind().allowed_while_frozen() {
        return Err(Rejection::new(
            ErrorCode::Frozen,
            format!(
                "contact `{id}` is rejected: only approve, reject, delete, log_activity, archive and revive are accepted"
            ),
        ));
    }
    match op {
        ContactOp::Delete => return delete(ctx, contact),
        ContactOp::ConfirmConsent => return Ok(confirm_consent(ctx, contact)),
        _ => {}
    }
    let mut w = Working::new(ctx, contact);
    w.apply(id, op, linked_users)?;
    Ok(w.finish())
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
        users: vec![],
        activity: None,
        ensure_employers: vec![],
        erase_activity: !soft,
    })
}

/// Forgets a contact, live or soft-deleted: a tombstone one version up,
/// `ContactEmailSuppressed` (reason `erased`) first if its address was
/// still mailed, then `ContactErased` with the address's hash. The store
/// scrubs the rest (see [`crate::domain::privacy`]).
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
        users: vec![],
        activity: None,
        ensure_employers: vec![],
        erase_activity: true,
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
    match reevaluate(&consented, contact) {
        Some(d) => d,
        None => ContactDecision {
            outcome: Outcome::Applied,
            ..ContactDecision::stale()
        },
    }
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
    let mut w = Working::new(ctx, contact);
    w.w.mark_changed();
    Some(w.finish())
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

/// A contact event waiting for the snapshot after the command.
type Pending = Box<dyn FnOnce(ContactSnapshot) -> EventData>;

/// A contact being changed by one command: collects the changes and the
/// events, then settles version, suppression and outcome in [`Working::finish`].
struct Working<'a> {
    w: working::Working<'a, Contact>,
    /// Contact events, completed with the snapshot in [`Working::finish`].
    pending: Vec<Pending>,
    users: Vec<User>,
    user_events: Vec<EventDraft>,
    ensure_employers: Vec<EntityId>,
    activity: Option<Activity>,
}

impl<'a> Working<'a> {
    fn new(ctx: &'a Ctx<'a>, before: &'a Contact) -> Self {
        Working {
            w: working::Working::new(ctx, before),
            pending: vec![],
            users: vec![],
            user_events: vec![],
            ensure_employers: vec![],
            activity: None,
        }
    }

    /// Applies one command (delete aside, which replaces the contact).
    fn apply(
        &mut self,
        id: &EntityId,
        op: &ContactOp,
        linked_users: &[User],
    ) -> Result<(), Rejection> {
        match op {
            ContactOp::Upsert(u) => self.upsert(u)?,
            ContactOp::Deactivate { reason } | ContactOp::Reactivate { reason } => {
                if self.fresh(ACTIVATION) {
                    let active = matches!(op, ContactOp::Reactivate { .. });
                    self.set_active(active, reason.as_deref());
                }
            }
            ContactOp::ChangeStatus { status } => {
                if self.fresh(STATUS) {
                    self.set_status(status);
                }
            }
            ContactOp::ChangeEmployer {
                employer_id,
                department,
            } => {
                if self.fresh(EMPLOYER) {
                    self.set_employer(employer_id.clone(), department.clone());
                }
            }
            ContactOp::SetVisibility { visibility } => {
                if self.fresh(VISIBILITY) {
                    self.set_visibility(*visibility);
                }
            }
            ContactOp::SetAttributes { attributes } => {
                let fresh: BTreeMap<String, Option<Value>> = attributes
                    .iter()
                    .filter(|(name, _)| self.fresh(&attribute_aspect(name)))
                    .map(|(n, v)| (n.clone(), v.clone()))
                    .collect();
                self.set_attributes(&fresh);
                self.check_attribute_limit()?;
            }
            ContactOp::Approve { reason } | ContactOp::Reject { reason } => {
                if self.fresh(APPROVAL) {
                    let approval = if matches!(op, ContactOp::Approve { .. }) {
                        Approval::Approved
                    } else {
                        Approval::Rejected
                    };
                    self.set_approval(approval, reason.as_deref());
                }
            }
            ContactOp::Archive(a) => {
                if self.fresh(ACTIVATION) && self.w.next.archive.is_none() {
                    self.archive(a, linked_users);
                }
            }
            ContactOp::Revive(r) => {
                if self.fresh(ACTIVATION) {
                    if self.w.next.archive.is_none() {
                        return Err(Rejection::new(
                            ErrorCode::InvalidTransition,
                            format!("contact `{id}` is not archived, so it cannot be revived"),
                        ));
                    }
                    self.revive(r, linked_users);
                }
            }
            ContactOp::LogActivity(a) => self.log_activity(a),
            // Decided before any working copy exists.
            ContactOp::Restore
            | ContactOp::Delete
            | ContactOp::Erase
            | ContactOp::ConfirmConsent => {}
        }
        Ok(())
    }

    fn fresh(&mut self, aspect: &str) -> bool {
        self.w.fresh(aspect)
    }

    fn advance(&mut self, aspect: &str) {
        self.w.advance(aspect)
    }

    /// Records a contact event; `variant` says which, and makes it carry the
    /// snapshot, known once the whole command is applied.
    fn emit<T: 'static>(&mut self, variant: fn(OnContact<T>) -> EventData, change: T) {
        self.w.mark_changed();
        self.pending.push(Box::new(move |contact| {
            variant(OnContact { change, contact })
        }));
    }

    fn set_active(&mut self, active: bool, reason: Option<&str>) {
        if self.w.next.active == active {
            return;
        }
        self.w.next.active = active;
        let variant = if active {
            EventData::ContactReactivated
        } else {
            EventData::ContactDeactivated
        };
        let reason = reason.map(str::to_owned);
        self.emit(variant, Reason { reason });
    }

    fn set_status(&mut self, status: &str) {
        if self.w.next.status == status {
            return;
        }
        let from = std::mem::replace(&mut self.w.next.status, status.to_owned());
        let to = status.to_owned();
        self.emit(EventData::ContactStatusChanged, FromTo { from, to });
    }

    fn set_visibility(&mut self, visibility: Visibility) {
        if self.w.next.visibility == visibility {
            return;
        }
        let from = std::mem::replace(&mut self.w.next.visibility, visibility);
        let to = visibility;
        self.emit(EventData::ContactVisibilityChanged, FromTo { from, to });
    }

    fn set_approval(&mut self, approval: Approval, reason: Option<&str>) {
        if self.w.next.approval == approval {
            return;
        }
        self.w.next.approval = approval;
        let variant = match approval {
            Approval::Approved => EventData::ContactApproved,
            Approval::Rejected => EventData::ContactRejected,
        };
        let reason = reason.map(str::to_owned);
        self.emit(variant, Reason { reason });
    }

    /// Moves the contact; the employer it leaves becomes a former employer.
    fn set_employer(&mut self, employer_id: Option<EntityId>, department: Option<String>) {
        if self.w.next.employer_id == employer_id && self.w.next.department == department {
            return;
        }
        let from = self.placement();
        if self.w.next.employer_id != employer_id {
            if let Some(old) = self.w.next.employer_id.take() {
                self.w.next.former_employers.push(FormerEmployer {
                    employer_id: old,
                    department: self.w.next.department.clone(),
                    from: self.w.next.employer_since,
                    until: Ts(self.w.ctx.issued_at),
                });
            }
            self.w.next.employer_since = Ts(self.w.ctx.issued_at);
            self.ensure_employers.extend(employer_id.clone());
        }
        self.w.next.employer_id = employer_id;
        self.w.next.department = department;
        let to = self.placement();
        self.emit(EventData::ContactEmployerChanged, FromTo { from, to });
    }

    fn placement(&self) -> Placement {
        Placement {
            employer_id: self.w.next.employer_id.clone(),
            department: self.w.next.department.clone(),
        }
    }

    /// Applies attribute changes (already judged fresh); one event lists them all.
    fn set_attributes(&mut self, changes: &BTreeMap<String, Option<Value>>) {
        let mut changed = BTreeMap::new();
        for (name, value) in changes {
            let from = self.w.next.attributes.get(name).cloned();
            if from == *value {
                continue;
            }
            match value {
                Some(v) => self.w.next.attributes.insert(name.clone(), v.clone()),
                None => self.w.next.attributes.remove(name),
            };
            let to = value.clone();
            changed.insert(name.clone(), AttributeChange { from, to });
        }
        if !changed.is_empty() {
            let changed = AttributesChanged { changed };
            self.emit(EventData::ContactAttributesChanged, changed);
        }
    }

    /// Refuses a command that would leave the contact with too many attributes.
    fn check_attribute_limit(&self) -> Result<(), Rejection> {
        if self.w.next.attributes.len() > self.w.ctx.limits.max_attributes {
            return Err(Rejection::invalid(format!(
                "a contact may carry at most {} attributes",
                self.w.ctx.limits.max_attributes
            )));
        }
        Ok(())
    }

    fn upsert(&mut self, u: &ContactUpsert) -> Result<(), Rejection> {
        let profile_given = u.first_name.is_some()
            || u.last_name.is_some()
            || u.email.is_some()
            || u.phone.is_some()
            || u.title.is_some();
        let employer_given = u.employer_id.is_some() || u.department.is_some();
        let anything_given = profile_given
            || employer_given
            || u.status.is_some()
            || u.visibility.is_some()
            || !u.attributes.is_empty();
        if (profile_given || !anything_given) && self.fresh(PROFILE) {
            let mut changed = Vec::new();
            let fields = [
                (
                    ContactField::FirstName,
                    &u.first_name,
                    &mut self.w.next.first_name,
                ),
                (
                    ContactField::LastName,
                    &u.last_name,
                    &mut self.w.next.last_name,
                ),
                (ContactField::Email, &u.email, &mut self.w.next.email),
                (ContactField::Phone, &u.phone, &mut self.w.next.phone),
                (ContactField::Title, &u.title, &mut self.w.next.title),
            ];
            for (name, given, slot) in fields {
                if given.is_some() && given != slot {
                    *slot = given.clone();
                    changed.push(name);
                }
            }
            if !changed.is_empty() {
                self.emit(EventData::ContactUpdated, Changed { changed });
            }
        }
        if employer_given && self.fresh(EMPLOYER) {
            let employer = u
                .employer_id
                .clone()
                .or_else(|| self.w.next.employer_id.clone());
            let department = if u.department.is_some() || employer != self.w.next.employer_id {
                u.department.clone()
            } else {
                self.w.next.department.clone()
            };
            self.set_employer(employer, department);
        }
        if let Some(s) = &u.status {
            if self.fresh(STATUS) {
                self.set_status(s);
            }
        }
        if let Some(v) = u.visibility {
            if self.fresh(VISIBILITY) {
                self.set_visibility(v);
            }
        }
        let fresh_attrs: BTreeMap<String, Option<Value>> = u
            .attributes
            .iter()
            .filter(|(name, _)| self.fresh(&attribute_aspect(name)))
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        self.set_attributes(&fresh_attrs);
        self.check_attribute_limit()
    }

    fn archive(&mut self, a: &Archive, linked_users: &[User]) {
        let mut memo = ArchiveMemo {
            archived_at: Ts(self.w.ctx.issued_at),
            visibility: self.w.next.visibility,
            do_not_email: self.w.next.attributes.get(DO_NOT_EMAIL).cloned(),
            employer: None,
            revoked_users: vec![],
        };
        let reason = a.reason.clone();
        self.emit(EventData::ContactArchived, Reason { reason });
        self.set_active(false, a.reason.as_deref());
        self.advance(VISIBILITY);
        self.set_visibility(a.visibility);
        if a.suppress_email {
            let dne = attribute_aspect(DO_NOT_EMAIL);
            self.advance(&dne);
            let mut change = BTreeMap::new();
            change.insert(DO_NOT_EMAIL.to_owned(), Some(Value::Bool(true)));
            self.set_attributes(&change);
        }
        if let Some(e) = &a.employer_id {
            if self.w.next.employer_id.as_ref() != Some(e) {
                memo.employer = Some(EmployerMemo {
                    employer_id: self.w.next.employer_id.clone(),
                    department: self.w.next.department.clone(),
                });
                self.advance(EMPLOYER);
                self.set_employer(Some(e.clone()), None);
            }
        }
        if a.revoke_user_access {
            for user in linked_users.iter().filter(|u| u.site_access) {
                let mut user = user.clone();
                if let Some(ev) = user.set_access(self.w.ctx, false, a.reason.as_deref()) {
                    memo.revoked_users.push(user.id.clone());
                    self.user_events.push(ev);
                    self.users.push(user);
                }
            }
        }
        self.w.next.archive = Some(memo);
    }

    fn revive(&mut self, r: &Revive, linked_users: &[User]) {
        let Some(memo) = self.w.next.archive.take() else {
            return;
        };
        self.emit(EventData::ContactRevived, Reason { reason: None });
        self.set_active(true, None);
        self.advance(VISIBILITY);
        self.set_visibility(r.visibility.unwrap_or(memo.visibility));
        if r.restore_email {
            let dne = attribute_aspect(DO_NOT_EMAIL);
            self.advance(&dne);
            let mut change = BTreeMap::new();
            change.insert(DO_NOT_EMAIL.to_owned(), memo.do_not_email.clone());
            self.set_attributes(&change);
        }
        let target = match (&r.employer_id, &memo.employer) {
            (Some(e), _) => Some(EmployerMemo {
                employer_id: Some(e.clone()),
                department: None,
            }),
            (None, Some(m)) => Some(m.clone()),
            (None, None) => None,
        };
        if let Some(t) = target {
            self.advance(EMPLOYER);
            self.set_employer(t.employer_id, t.department);
        }
        for uid in &memo.revoked_users {
            if let Some(user) = linked_users.iter().find(|u| &u.id == uid) {
                let mut user = user.clone();
                if let Some(ev) = user.set_access(self.w.ctx, true, None) {
                    self.user_events.push(ev);
                    self.users.push(user);
                }
            }
        }
    }

    fn log_activity(&mut self, a: &LogActivity) {
        let activity = Activity {
            kind: a.kind,
            body: a.body.clone(),
            action_code: a.action_code.clone(),
            employer_id: self.w.next.employer_id.clone(),
            occurred_at: Ts(a.occurred_at.unwrap_or(self.w.ctx.issued_at)),
        };
        let logged = ActivityLogged {
            kind: a.kind,
            action_code: a.action_code.clone(),
            employer_id: activity.employer_id.clone(),
        };
        self.emit(EventData::ContactActivityLogged, logged);
        self.activity = Some(activity);
        if let (ActivityKind::Message, Some(code)) = (a.kind, &a.action_code) {
            let code_lc = code.to_lowercase();
            let policy = self.w.ctx.policy;
            let wanted = if code_lc.starts_with(&policy.deactivate_prefix.to_lowercase()) {
                Some(false)
            } else if code_lc.starts_with(&policy.reactivate_prefix.to_lowercase()) {
                Some(true)
            } else {
                None
            };
            if let Some(active) = wanted {
                if self.fresh(ACTIVATION) {
                    self.set_active(active, Some(code));
                }
            }
        }
    }

    fn finish(mut self) -> ContactDecision {
        let ctx = self.w.ctx;
        match self.w.outcome() {
            Outcome::Stale => return ContactDecision::stale(),
            Outcome::Unchanged => {
                return ContactDecision {
                    outcome: Outcome::Unchanged,
                    write: Some(ContactRecord::Live(self.w.next)),
                    ..ContactDecision::stale()
                }
            }
            _ => {}
        }
        self.w.next.bump(ctx.now);
        self.w.next.refresh_derived(ctx.policy, ctx.blocklist);
        let was = self.w.before.email_suppressed;
        let now = self.w.next.suppression_reasons(ctx.policy, ctx.blocklist);
        // A suppressed contact has an email: there are no reasons without one.
        let email = self.w.next.email.clone();
        if let (false, true, Some(email)) = (was, self.w.next.email_suppressed, email) {
            self.pending.push(Box::new(move |contact| {
                EventData::ContactEmailSuppressed(EmailSuppressed {
                    email,
                    reasons: now,
                    contact: Some(contact),
                })
            }));
        } else if was && !self.w.next.email_suppressed {
            let email = self.w.next.email.clone().or(self.w.before.email.clone());
            self.emit(
                EventData::ContactEmailUnsuppressed,
                EmailUnsuppressed { email },
            );
        }
        let snapshot = ContactSnapshot::of(&self.w.next, ctx.tenant.as_str());
        let (id, version) = (&self.w.next.id, self.w.next.version);
        let mut events: Vec<EventDraft> = self
            .pending
            .into_iter()
            .map(|complete| EventDraft::new(ctx, id, version, complete(snapshot.clone())))
            .collect();
        events.extend(self.user_events);
        ContactDecision {
            outcome: Outcome::Applied,
            write: Some(ContactRecord::Live(self.w.next)),
            events,
            users: self.users,
            activity: self.activity,
            ensure_employers: self.ensure_employers,
            erase_activity: false,
        }
    }
}
