//! The decision for every user command (contract sections 3-5).

use super::command::{UserOp, UserUpsert};
use super::{User, UserRecord, ACCESS, PROFILE, ROLE};
use crate::domain::event::{
    Changed, Created, EventData, EventDraft, FromTo, UserDeleted, UserField,
};
use crate::domain::ids::EntityId;
use crate::domain::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use crate::domain::record::{check_version, Decision};
use crate::domain::ts::Ts;
use crate::domain::{is_fresh, Ctx};
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
    let role_named = op.role_named();
    let current = match record {
        UserRecord::Live(u) => Some(u),
        // A delete is never stale: deleting what is gone is not_found, as for contacts.
        UserRecord::Deleted { .. } if matches!(op, UserOp::Delete) => None,
        UserRecord::Deleted { at, .. } if ctx.issued_at < at.get() => {
            check_version(EntityKind::User, expected_version, 0)?;
            return Ok(Decision::stale());
        }
        UserRecord::Absent | UserRecord::Deleted { .. } => None,
    };
    let Some(user) = current else {
        return match op {
            UserOp::Upsert(u) => {
                check_version(EntityKind::User, expected_version, 0)?;
                if let Some(r) = role_named.filter(|_| !role_exists) {
                    return Err(role_not_found(r));
                }
                create_user(ctx, id, u)
            }
            _ => Err(Rejection::new(
                ErrorCode::NotFound,
                format!("user `{id}` does not exist"),
            )),
        };
    };
    check_version(EntityKind::User, expected_version, user.version)?;
    if let Some(r) = role_named.filter(|_| !role_exists) {
        return Err(role_not_found(r));
    }
    let mut next = user.clone();
    let mut events = Vec::new();
    let mut fresh_any = false;
    let mut changed = false;
    let mut ensure_employers = Vec::new();
    match op {
        UserOp::Upsert(u) => {
            let profile_given = u.email.is_some()
                || u.name.is_some()
                || u.employer_id.is_some()
                || u.contact_id.is_some()
                || u.role_id.is_none();
            let mut changed_fields = Vec::new();
            if profile_given && is_fresh(&user.aspects, PROFILE, ctx.issued_at) {
                fresh_any = true;
                next.aspects.insert(PROFILE.into(), Ts(ctx.issued_at));
                if let Some(e) = &u.email {
                    if *e != next.email {
                        next.email = e.clone();
                        changed_fields.push(UserField::Email);
                    }
                }
                if u.name.is_some() && u.name != next.name {
                    next.name = u.name.clone();
                    changed_fields.push(UserField::Name);
                }
                if u.employer_id.is_some() && u.employer_id != next.employer_id {
                    next.employer_id = u.employer_id.clone();
                    ensure_employers.extend(u.employer_id.clone());
                    changed_fields.push(UserField::EmployerId);
                }
                if u.contact_id.is_some() && u.contact_id != next.contact_id {
                    next.contact_id = u.contact_id.clone();
                    changed_fields.push(UserField::ContactId);
                }
            }
            let mut role_change = None;
            if let Some(r) = &u.role_id {
                if is_fresh(&user.aspects, ROLE, ctx.issued_at) {
                    fresh_any = true;
                    next.aspects.insert(ROLE.into(), Ts(ctx.issued_at));
                    if next.role_id.as_ref() != Some(r) {
                        role_change = Some((next.role_id.clone(), r.clone()));
                        next.role_id = Some(r.clone());
                    }
                }
            }
            changed = !changed_fields.is_empty() || role_change.is_some();
            if changed {
                bump(&mut next, ctx);
                if !changed_fields.is_empty() {
                    let changed = Changed {
                        changed: changed_fields,
                    };
                    events.push(next.event(ctx, EventData::UserUpdated, changed));
                }
                if let Some((from, to)) = role_change {
                    events.push(next.event(ctx, EventData::UserRoleChanged, FromTo { from, to }));
                }
            }
        }
        UserOp::RevokeAccess { reason } | UserOp::RestoreAccess { reason } => {
            let access = matches!(op, UserOp::RestoreAccess { .. });
            if is_fresh(&user.aspects, ACCESS, ctx.issued_at) {
                fresh_any = true;
                next.aspects.insert(ACCESS.into(), Ts(ctx.issued_at));
                if let Some(ev) = next.set_access(ctx, access, reason.as_deref()) {
                    changed = true;
                    events.push(ev);
                }
            }
        }
        UserOp::ChangeRole { role_id } => {
            if is_fresh(&user.aspects, ROLE, ctx.issued_at) {
                fresh_any = true;
                next.aspects.insert(ROLE.into(), Ts(ctx.issued_at));
                if next.role_id.as_ref() != Some(role_id) {
                    changed = true;
                    let from = next.role_id.replace(role_id.clone());
                    bump(&mut next, ctx);
                    let to = role_id.clone();
                    events.push(next.event(ctx, EventData::UserRoleChanged, FromTo { from, to }));
                }
            }
        }
        UserOp::Delete => {
            let version = user.version + 1;
            let deleted = UserDeleted {
                user_id: user.id.clone(),
                email: user.email.clone(),
            };
            return Ok(Decision {
                outcome: Outcome::Applied,
                write: Some(UserRecord::Deleted {
                    at: Ts(ctx.issued_at),
                    version,
                }),
                events: vec![EventDraft::new(
                    ctx,
                    &user.id,
                    version,
                    EventData::UserDeleted(deleted),
                )],
                ensure_employers: vec![],
            });
        }
    }
    let outcome = if changed {
        Outcome::Applied
    } else if fresh_any {
        Outcome::Unchanged
    } else {
        return Ok(Decision::stale());
    };
    Ok(Decision {
        outcome,
        write: Some(UserRecord::Live(next)),
        events,
        ensure_employers,
    })
}

fn bump(user: &mut User, ctx: &Ctx<'_>) {
    user.version += 1;
    user.updated_at = Ts(ctx.now);
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
        ensure_employers: u.employer_id.iter().cloned().collect(),
    })
}
