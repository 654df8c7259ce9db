//! The decision for every user command (contract sections 3-5).

use super::command::{UserOp, UserUpsert};
use super::{User, UserRecord, UserSnapshot, ACCESS, PROFILE, ROLE};
use crate::domain::blocklist::email_sha256;
use crate::domain::decision::Decision;
use crate::domain::effect::Effect;
use crate::domain::event::{
    Changed, Created, EventData, EventDraft, FromTo, OnUser, Reason, UserDeleted, UserErased,
    UserField,
};
use crate::domain::ids::EntityId;
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use crate::domain::policy::DeleteMode;
use crate::domain::record::{check_version, Erasable, Kept};
use crate::domain::ts::Ts;
use crate::domain::working::{Versioned, Working};
use crate::domain::Ctx;
use std::collections::BTreeMap;

/// Decides a `user.*` command. `role_exists` answers for the role the
/// command names, if any.
pub fn decide_user(
    ctx: &Ctx<'_>,
    id: &EntityId,
    record: &UserRecord,
    op: &UserOp,
    expected_version: Option<u64>,
    role_exists: bool,
) -> Result<Decision<UserRecord>, Rejection> {
    let role_missing = || match op.role_named() {
        Some(r) if !role_exists => Err(role_not_found(r)),
        _ => Ok(()),
    };
    if let UserOp::Erase = op {
        return erase(ctx, id, record, expected_version);
    }
    let current = match record {
        UserRecord::Live(_) if matches!(op, UserOp::Restore) => {
            return Err(Rejection::new(
                ErrorCode::InvalidTransition,
                format!("user `{id}` is not deleted, so it cannot be restored"),
            ))
        }
        UserRecord::Live(u) => Some(u),
        // A delete is never stale: deleting what is gone is not_found, as for contacts.
        UserRecord::Deleted { .. } if matches!(op, UserOp::Delete) => None,
        UserRecord::Deleted { at, .. } if ctx.issued_at < at.get() => {
            check_version(EntityKind::User, expected_version, 0)?;
            return Ok(Decision::stale());
        }
        UserRecord::Deleted { version, .. } if matches!(op, UserOp::Restore) => {
            return match record.restorable(ctx.now) {
                Some(kept) => {
                    check_version(EntityKind::User, expected_version, *version)?;
                    Ok(restore(ctx, kept, *version))
                }
                None => Err(Rejection::new(
                    ErrorCode::NotFound,
                    format!("user `{id}` does not exist"),
                )),
            };
        }
        UserRecord::Absent | UserRecord::Deleted { .. } => None,
    };
    let Some(user) = current else {
        return match op {
            UserOp::Upsert(u) => {
                check_version(EntityKind::User, expected_version, 0)?;
                role_missing()?;
                create_user(ctx, id, u)
            }
            _ => Err(Rejection::new(
                ErrorCode::NotFound,
                format!("user `{id}` does not exist"),
            )),
        };
    };
    check_version(EntityKind::User, expected_version, user.version)?;
    role_missing()?;
    let mut w = UserWorking {
        w: Working::new(ctx, user),
        events: Vec::new(),
        ensure_employers: Vec::new(),
    };
    match op {
        UserOp::Upsert(u) => w.upsert(u),
        UserOp::RevokeAccess { reason } => w.set_access(false, reason.as_deref()),
        UserOp::RestoreAccess { reason } => w.set_access(true, reason.as_deref()),
        UserOp::ChangeRole { role_id } => {
            if w.w.fresh(ROLE) {
                w.set_role(role_id);
            }
        }
        UserOp::Delete => return Ok(delete(ctx, user)),
        // Only a deleted user is restored, and erase is decided above.
        UserOp::Restore | UserOp::Erase => {}
    }
    Ok(w.finish())
}

/// A user being changed by one command. User events carry the new
/// version, so the version is bumped before the first one is made.
struct UserWorking<'a> {
    w: Working<'a, User>,
    events: Vec<EventDraft>,
    ensure_employers: Vec<EntityId>,
}

impl UserWorking<'_> {
    fn upsert(&mut self, u: &UserUpsert) {
        let profile_given = u.email.is_some()
            || u.name.is_some()
            || u.employer_id.is_some()
            || u.contact_id.is_some()
            || u.role_id.is_none();
        let mut changed_fields = Vec::new();
        if profile_given && self.w.fresh(PROFILE) {
            let next = &mut self.w.next;
            if let Some(e) = u.email.as_ref().filter(|e| **e != next.email) {
                next.email = e.clone();
                changed_fields.push(UserField::Email);
            }
            if u.name.is_some() && u.name != next.name {
                next.name = u.name.clone();
                changed_fields.push(UserField::Name);
            }
            if u.employer_id.is_some() && u.employer_id != next.employer_id {
                next.employer_id = u.employer_id.clone();
                self.ensure_employers.extend(u.employer_id.clone());
                changed_fields.push(UserField::EmployerId);
            }
            if u.contact_id.is_some() && u.contact_id != next.contact_id {
                next.contact_id = u.contact_id.clone();
                changed_fields.push(UserField::ContactId);
            }
        }
        let role = u.role_id.as_ref().filter(|_| self.w.fresh(ROLE));
        let role_change = role
            .filter(|r| self.w.next.role_id.as_ref() != Some(*r))
            .map(|r| (self.w.next.role_id.replace(r.clone()), r.clone()));
        if changed_fields.is_empty() && role_change.is_none() {
            return;
        }
        self.bump();
        if !changed_fields.is_empty() {
            let changed = Changed {
                changed: changed_fields,
            };
            self.emit(EventData::UserUpdated, changed);
        }
        if let Some((from, to)) = role_change {
            self.emit(EventData::UserRoleChanged, FromTo { from, to });
        }
    }

    fn set_access(&mut self, access: bool, reason: Option<&str>) {
        if self.w.fresh(ACCESS) {
            if let Some(ev) = self.w.next.set_access(self.w.ctx, access, reason) {
                self.w.mark_changed();
                self.events.push(ev);
            }
        }
    }

    fn set_role(&mut self, role_id: &EntityId) {
        if self.w.next.role_id.as_ref() == Some(role_id) {
            return;
        }
        let from = self.w.next.role_id.replace(role_id.clone());
        self.bump();
        let to = role_id.clone();
        self.emit(EventData::UserRoleChanged, FromTo { from, to });
    }

    fn bump(&mut self) {
        self.w.mark_changed();
        self.w.next.bump(self.w.ctx.now);
    }

    fn emit<T>(&mut self, variant: fn(OnUser<T>) -> EventData, change: T) {
        let event = self.w.next.event(self.w.ctx, variant, change);
        self.events.push(event);
    }

    fn finish(self) -> Decision<UserRecord> {
        match self.w.outcome() {
            Outcome::Stale => Decision::stale(),
            outcome => Decision {
                outcome,
                write: Some(UserRecord::Live(self.w.next)),
                events: self.events,
                effects: Effect::ensure_employers(self.ensure_employers)
                    .into_iter()
                    .collect(),
            },
        }
    }
}

fn delete(ctx: &Ctx<'_>, user: &User) -> Decision<UserRecord> {
    let version = user.version + 1;
    let deleted = UserDeleted {
        user_id: user.id.clone(),
        email: user.email.clone(),
    };
    let soft = ctx.policy.delete_mode == DeleteMode::Soft;
    Decision {
        outcome: Outcome::Applied,
        write: Some(UserRecord::Deleted {
            at: Ts(ctx.issued_at),
            version,
            kept: soft.then(|| Kept {
                state: Box::new(user.clone()),
                purge_after: Ts(ctx.now + ctx.policy.restore_window()),
            }),
        }),
        events: vec![EventDraft::new(
            ctx,
            &user.id,
            version,
            EventData::UserDeleted(deleted),
        )],
        effects: vec![],
    }
}

/// Forgets a user, live or soft-deleted: a tombstone one version up and
/// `UserErased` with the address's hash; the store scrubs the rest and puts
/// the address on the tenant's blocklist.
fn erase(
    ctx: &Ctx<'_>,
    id: &EntityId,
    record: &UserRecord,
    expected_version: Option<u64>,
) -> Result<Decision<UserRecord>, Rejection> {
    let Some(Erasable {
        state: user,
        version,
        at,
        ..
    }) = record.erasable(ctx.issued_at)
    else {
        return Err(Rejection::new(
            ErrorCode::NotFound,
            format!("user `{id}` does not exist"),
        ));
    };
    check_version(EntityKind::User, expected_version, version)?;
    let version = version + 1;
    let erased = UserErased {
        user_id: id.clone(),
        email_sha256: email_sha256(&user.email),
    };
    Ok(Decision {
        outcome: Outcome::Applied,
        write: Some(UserRecord::Deleted {
            at,
            version,
            kept: None,
        }),
        events: vec![EventDraft::new(
            ctx,
            id,
            version,
            EventData::UserErased(erased),
        )],
        effects: vec![Effect::Forget {
            kind: EntityKind::User,
            email: Some(user.email.clone()),
        }],
    })
}

/// Brings a soft-deleted user back as it was, one version after its delete.
fn restore(ctx: &Ctx<'_>, kept: &User, deleted_version: u64) -> Decision<UserRecord> {
    let mut user = kept.clone();
    user.version = deleted_version + 1;
    user.updated_at = Ts(ctx.now);
    let events = vec![user.event(ctx, EventData::UserRestored, Created {})];
    Decision {
        outcome: Outcome::Applied,
        write: Some(UserRecord::Live(user)),
        events,
        effects: vec![],
    }
}

fn role_not_found(role: &EntityId) -> Rejection {
    Rejection::new(
        ErrorCode::RoleNotFound,
        format!("role `{role}` does not exist"),
    )
}

fn create_user(
    ctx: &Ctx<'_>,
    id: &EntityId,
    u: &UserUpsert,
) -> Result<Decision<UserRecord>, Rejection> {
    let Some(email) = u.email.clone() else {
        return Err(Rejection::invalid("a new user needs payload.email"));
    };
    let mut aspects = BTreeMap::new();
    for a in [PROFILE, ROLE, ACCESS] {
        aspects.insert(a.to_owned(), Ts(ctx.issued_at));
    }
    let user = User {
        id: id.clone(),
        version: 1,
        email,
        name: u.name.clone(),
        employer_id: u.employer_id.clone(),
        contact_id: u.contact_id.clone(),
        role_id: u.role_id.clone(),
        site_access: true,
        aspects,
        created_at: Ts(ctx.now),
        updated_at: Ts(ctx.now),
    };
    let events = vec![user.event(ctx, EventData::UserCreated, Created {})];
    Ok(Decision {
        outcome: Outcome::Applied,
        write: Some(UserRecord::Live(user)),
        events,
        effects: Effect::ensure_employers(u.employer_id.iter().cloned().collect())
            .into_iter()
            .collect(),
    })
}

/// How user events are made: by the user's own commands, and by the
/// archive and revive of the contact the user is linked to.
impl User {
    /// Sets site access as part of another command (archive/revive of the
    /// linked contact); returns the event, or `None` when already so.
    pub fn set_access(
        &mut self,
        ctx: &Ctx<'_>,
        access: bool,
        reason: Option<&str>,
    ) -> Option<EventDraft> {
        if self.site_access == access {
            return None;
        }
        self.site_access = access;
        self.bump(ctx.now);
        self.aspects.insert(ACCESS.into(), Ts(ctx.issued_at));
        let variant = if access {
            EventData::UserAccessRestored
        } else {
            EventData::UserAccessRevoked
        };
        let reason = Reason {
            reason: reason.map(str::to_owned),
        };
        Some(self.event(ctx, variant, reason))
    }

    /// An event about this user, at its current version and with its snapshot.
    pub(crate) fn event<T>(
        &self,
        ctx: &Ctx<'_>,
        variant: fn(OnUser<T>) -> EventData,
        change: T,
    ) -> EventDraft {
        let user = UserSnapshot::of(self, ctx.tenant.as_str());
        EventDraft::new(
            ctx,
            &self.id,
            self.version,
            variant(OnUser { change, user }),
        )
    }
}
