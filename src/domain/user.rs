//! Employer users, roles and employers: state and decisions.

use super::command::{EmployerUpsert, RoleUpsert, UserOp, UserUpsert};
use super::event::{EventDraft, EventType};
use super::ids::EntityId;
use super::outcome::{EntityKind, ErrorCode, Outcome, Rejection};
use super::ts::Ts;
use super::{is_fresh, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// Aspects of a user (contract section 3).
pub const PROFILE: &str = "profile";
pub const ROLE: &str = "role";
pub const ACCESS: &str = "access";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub id: EntityId,
    pub version: u64,
    pub email: String,
    pub name: Option<String>,
    pub employer_id: Option<EntityId>,
    pub contact_id: Option<EntityId>,
    pub role_id: Option<EntityId>,
    pub site_access: bool,
    /// `issued_at` of the last command applied per aspect.
    pub aspects: BTreeMap<String, Ts>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// The user snapshot of contract section 5, in every user event.
#[derive(Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct UserSnapshot {
    pub id: EntityId,
    pub tenant: String,
    pub version: u64,
    pub email: String,
    pub name: Option<String>,
    pub employer_id: Option<EntityId>,
    pub contact_id: Option<EntityId>,
    pub role_id: Option<EntityId>,
    pub site_access: bool,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// What the store holds under a user id.
// One record is loaded per command and never stored in bulk, so the
// size difference between variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum UserRecord {
    Absent,
    /// A tombstone: the `issued_at` of the delete, no personal data.
    Deleted {
        at: Ts,
        version: u64,
    },
    Live(User),
}

impl User {
    pub fn snapshot(&self, tenant: &str) -> Value {
        serde_json::to_value(UserSnapshot {
            id: self.id.clone(),
            tenant: tenant.to_owned(),
            version: self.version,
            email: self.email.clone(),
            name: self.name.clone(),
            employer_id: self.employer_id.clone(),
            contact_id: self.contact_id.clone(),
            role_id: self.role_id.clone(),
            site_access: self.site_access,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
        .expect("a snapshot serialises")
    }

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
        self.version += 1;
        self.updated_at = Ts(ctx.now);
        self.aspects.insert(ACCESS.into(), Ts(ctx.issued_at));
        let t = if access {
            EventType::UserAccessRestored
        } else {
            EventType::UserAccessRevoked
        };
        let mut extra = Map::new();
        extra.insert("reason".into(), json!(reason));
        Some(self.event(ctx, t, extra))
    }

    fn event(&self, ctx: &Ctx<'_>, t: EventType, mut data: Map<String, Value>) -> EventDraft {
        data.insert("actor".into(), json!(ctx.actor));
        data.insert("issued_at".into(), json!(Ts(ctx.issued_at)));
        data.insert("user".into(), self.snapshot(ctx.tenant.as_str()));
        EventDraft {
            event_type: t,
            entity_kind: EntityKind::User,
            entity_id: self.id.to_string(),
            version: self.version,
            data,
        }
    }
}

/// The decision about one entity, for users, roles and employers.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision<T> {
    pub outcome: Outcome,
    /// The state to store; `None` when nothing is written (stale).
    pub write: Option<T>,
    pub events: Vec<EventDraft>,
    /// Employers the command references; created without a name if missing.
    pub ensure_employers: Vec<EntityId>,
}

impl<T> Decision<T> {
    fn stale() -> Self {
        Decision {
            outcome: Outcome::Stale,
            write: None,
            events: vec![],
            ensure_employers: vec![],
        }
    }
}

fn check_version(expected: Option<u64>, current: u64) -> Result<(), Rejection> {
    match expected {
        Some(e) if e != current => Err(Rejection::new(
            ErrorCode::VersionConflict,
            format!("expected version {e}, the entity is at version {current}"),
        )),
        _ => Ok(()),
    }
}

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
    let role_named = match op {
        UserOp::Upsert(u) => u.role_id.as_ref(),
        UserOp::ChangeRole { role_id } => Some(role_id),
        _ => None,
    };
    let current = match record {
        UserRecord::Live(u) => Some(u),
        // A delete is never stale: deleting what is gone is not_found, as for contacts.
        UserRecord::Deleted { .. } if matches!(op, UserOp::Delete) => None,
        UserRecord::Deleted { at, .. } if ctx.issued_at < at.get() => {
            check_version(expected_version, 0)?;
            return Ok(Decision::stale());
        }
        UserRecord::Absent | UserRecord::Deleted { .. } => None,
    };
    let Some(user) = current else {
        return match op {
            UserOp::Upsert(u) => {
                check_version(expected_version, 0)?;
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
    check_version(expected_version, user.version)?;
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
                        changed_fields.push("email");
                    }
                }
                if u.name.is_some() && u.name != next.name {
                    next.name = u.name.clone();
                    changed_fields.push("name");
                }
                if u.employer_id.is_some() && u.employer_id != next.employer_id {
                    next.employer_id = u.employer_id.clone();
                    ensure_employers.extend(u.employer_id.clone());
                    changed_fields.push("employer_id");
                }
                if u.contact_id.is_some() && u.contact_id != next.contact_id {
                    next.contact_id = u.contact_id.clone();
                    changed_fields.push("contact_id");
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
                    let mut extra = Map::new();
                    extra.insert("changed".into(), json!(changed_fields));
                    events.push(next.event(ctx, EventType::UserUpdated, extra));
                }
                if let Some((from, to)) = role_change {
                    let mut extra = Map::new();
                    extra.insert("from".into(), json!(from));
                    extra.insert("to".into(), json!(to));
                    events.push(next.event(ctx, EventType::UserRoleChanged, extra));
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
                    let mut extra = Map::new();
                    extra.insert("from".into(), json!(from));
                    extra.insert("to".into(), json!(role_id));
                    events.push(next.event(ctx, EventType::UserRoleChanged, extra));
                }
            }
        }
        UserOp::Delete => {
            let version = user.version + 1;
            let mut data = Map::new();
            data.insert("user_id".into(), json!(user.id));
            data.insert("email".into(), json!(user.email));
            data.insert("actor".into(), json!(ctx.actor));
            data.insert("issued_at".into(), json!(Ts(ctx.issued_at)));
            return Ok(Decision {
                outcome: Outcome::Applied,
                write: Some(UserRecord::Deleted {
                    at: Ts(ctx.issued_at),
                    version,
                }),
                events: vec![EventDraft {
                    event_type: EventType::UserDeleted,
                    entity_kind: EntityKind::User,
                    entity_id: user.id.to_string(),
                    version,
                    data,
                }],
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
    let events = vec![user.event(ctx, EventType::UserCreated, Map::new())];
    Ok(Decision {
        outcome: Outcome::Applied,
        write: Some(UserRecord::Live(user)),
        events,
        ensure_employers: u.employer_id.iter().cloned().collect(),
    })
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Role {
    pub id: EntityId,
    pub version: u64,
    pub name: String,
    pub permissions: Vec<String>,
    pub profile_at: Ts,
}

pub fn decide_role(
    ctx: &Ctx<'_>,
    current: Option<&Role>,
    cmd: &RoleUpsert,
    expected_version: Option<u64>,
) -> Result<Decision<Role>, Rejection> {
    check_version(expected_version, current.map_or(0, |r| r.version))?;
    if let Some(r) = current {
        if ctx.issued_at < r.profile_at.get() {
            return Ok(Decision::stale());
        }
    }
    let unchanged = current.is_some_and(|r| r.name == cmd.name && r.permissions == cmd.permissions);
    let role = Role {
        id: cmd.role_id.clone(),
        version: current.map_or(0, |r| r.version) + u64::from(!unchanged),
        name: cmd.name.clone(),
        permissions: cmd.permissions.clone(),
        profile_at: Ts(ctx.issued_at),
    };
    let events = if unchanged {
        vec![]
    } else {
        let mut data = Map::new();
        data.insert("role_id".into(), json!(role.id));
        data.insert("name".into(), json!(role.name));
        data.insert("permissions".into(), json!(role.permissions));
        data.insert("actor".into(), json!(ctx.actor));
        data.insert("issued_at".into(), json!(Ts(ctx.issued_at)));
        vec![EventDraft {
            event_type: EventType::RoleUpserted,
            entity_kind: EntityKind::Role,
            entity_id: role.id.to_string(),
            version: role.version,
            data,
        }]
    };
    Ok(Decision {
        outcome: if unchanged {
            Outcome::Unchanged
        } else {
            Outcome::Applied
        },
        write: Some(role),
        events,
        ensure_employers: vec![],
    })
}

/// An employer. One referenced before its upsert exists with no name and version 0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Employer {
    pub id: EntityId,
    pub version: u64,
    pub name: Option<String>,
    pub departments: Vec<String>,
    pub profile_at: Option<Ts>,
}

pub fn decide_employer(
    ctx: &Ctx<'_>,
    current: Option<&Employer>,
    cmd: &EmployerUpsert,
    expected_version: Option<u64>,
) -> Result<Decision<Employer>, Rejection> {
    check_version(expected_version, current.map_or(0, |e| e.version))?;
    if let Some(at) = current.and_then(|e| e.profile_at) {
        if ctx.issued_at < at.get() {
            return Ok(Decision::stale());
        }
    }
    let departments = cmd
        .departments
        .clone()
        .or_else(|| current.map(|e| e.departments.clone()))
        .unwrap_or_default();
    let unchanged = current.is_some_and(|e| {
        e.name.as_deref() == Some(cmd.name.as_str()) && e.departments == departments
    });
    let employer = Employer {
        id: cmd.employer_id.clone(),
        version: current.map_or(0, |e| e.version) + u64::from(!unchanged),
        name: Some(cmd.name.clone()),
        departments,
        profile_at: Some(Ts(ctx.issued_at)),
    };
    let events = if unchanged {
        vec![]
    } else {
        let mut data = Map::new();
        data.insert("employer_id".into(), json!(employer.id));
        data.insert("name".into(), json!(employer.name));
        data.insert("departments".into(), json!(employer.departments));
        data.insert("actor".into(), json!(ctx.actor));
        data.insert("issued_at".into(), json!(Ts(ctx.issued_at)));
        vec![EventDraft {
            event_type: EventType::EmployerUpserted,
            entity_kind: EntityKind::Employer,
            entity_id: employer.id.to_string(),
            version: employer.version,
            data,
        }]
    };
    Ok(Decision {
        outcome: if unchanged {
            Outcome::Unchanged
        } else {
            Outcome::Applied
        },
        write: Some(employer),
        events,
        ensure_employers: vec![],
    })
}
