//! A live contact being changed by one command: the changes it makes, the
//! events they raise, and the decision they settle into.

use super::command::{Archive, ContactOp, ContactUpsert, LogActivity, Revive};
use super::decision::ContactDecision;
use super::*;
use crate::domain::effect::Effect;
use crate::domain::event::{
    ActivityLogged, AttributeChange, AttributesChanged, Changed, ContactField, EmailSuppressed,
    EmailUnsuppressed, EventData, EventDraft, FromTo, OnContact, Placement, Reason,
};
use crate::domain::ids::EntityId;
use crate::domain::outcome::{ErrorCode, Outcome, Rejection};
use crate::domain::ts::Ts;
use crate::domain::user::User;
use crate::domain::working::{self, Versioned};
use crate::domain::Ctx;
use serde_json::Value;
use std::collections::BTreeMap;

/// A contact event waiting for the snapshot after the command.
type Pending = Box<dyn FnOnce(ContactSnapshot) -> EventData>;

/// A contact being changed by one command: collects the changes and the
/// events, then settles version, suppression and outcome in [`Working::finish`].
pub(super) struct Working<'a> {
    w: working::Working<'a, Contact>,
    /// Contact events, completed with the snapshot in [`Working::finish`].
    pending: Vec<Pending>,
    users: Vec<User>,
    user_events: Vec<EventDraft>,
    ensure_employers: Vec<EntityId>,
    activity: Option<Activity>,
}

impl<'a> Working<'a> {
    pub(super) fn new(ctx: &'a Ctx<'a>, before: &'a Contact) -> Self {
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
    pub(super) fn apply(
        &mut self,
        id: &EntityId,
        op: &ContactOp,
        linked_users: &[User],
    ) -> Result<(), Rejection> {
        match op {
            ContactOp::Upsert(u) => self.upsert(u)?,
            ContactOp::Deactivate { reason } => {
                if self.fresh(ACTIVATION) {
                    self.set_active(false, reason.as_deref());
                }
            }
            ContactOp::Reactivate { reason } => {
                if self.fresh(ACTIVATION) {
                    self.set_active(true, reason.as_deref());
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
            ContactOp::Approve { reason } => {
                if self.fresh(APPROVAL) {
                    self.set_approval(Approval::Approved, reason.as_deref());
                }
            }
            ContactOp::Reject { reason } => {
                if self.fresh(APPROVAL) {
                    self.set_approval(Approval::Rejected, reason.as_deref());
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

    /// Marks the contact changed without a change of its own (its
    /// suppression is re-decided by [`Working::finish`]).
    pub(super) fn changed(mut self) -> Self {
        self.w.mark_changed();
        self
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

    pub(super) fn finish(mut self) -> ContactDecision {
        let ctx = self.w.ctx;
        let outcome = self.w.outcome();
        if outcome == Outcome::Stale {
            return ContactDecision::stale();
        }
        if outcome == Outcome::Unchanged {
            return ContactDecision {
                outcome: Outcome::Unchanged,
                write: Some(ContactRecord::Live(self.w.next)),
                ..ContactDecision::stale()
            };
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
        // In the order the store has always written them.
        let effects = [
            (!self.users.is_empty()).then_some(Effect::SaveLinkedUsers(self.users)),
            self.activity.map(Effect::LogActivity),
            Effect::ensure_employers(self.ensure_employers),
        ];
        ContactDecision {
            outcome: Outcome::Applied,
            write: Some(ContactRecord::Live(self.w.next)),
            events,
            effects: effects.into_iter().flatten().collect(),
        }
    }
}
