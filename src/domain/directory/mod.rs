//! The directory: employers and roles, their upserts and decisions.

use super::decision::Decision;
use super::event::{self, EventData, EventDraft};
use super::ids::{check_short, EntityId, Limits};
use super::kinds::command_kinds;
use super::outcome::{EntityKind, Outcome, Rejection};
use super::payload::{payload_as, take_id};
use super::record::check_version;
use super::ts::Ts;
use super::Ctx;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

command_kinds! {
    /// Employer and role commands.
    pub enum DirectoryKind {
        EmployerUpsert = "employer.upsert", id "employer_id", aspect "profile",
            bulk false, frozen false, destructive Never, blocklist Unneeded, wire wire::EmployerUpsert;
        RoleUpsert = "role.upsert", id "role_id", aspect "profile",
            bulk false, frozen false, destructive Never, blocklist Unneeded, wire wire::RoleUpsert;
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct EmployerUpsert {
    pub employer_id: EntityId,
    pub name: String,
    pub departments: Option<Vec<String>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct RoleUpsert {
    pub role_id: EntityId,
    pub name: String,
    pub permissions: Vec<String>,
}

/// A decoded directory command.
#[derive(Clone, Debug, PartialEq)]
pub enum DirectoryCommand {
    EmployerUpsert(EmployerUpsert),
    RoleUpsert(RoleUpsert),
}

impl DirectoryCommand {
    pub fn kind(&self) -> DirectoryKind {
        match self {
            DirectoryCommand::EmployerUpsert(_) => DirectoryKind::EmployerUpsert,
            DirectoryCommand::RoleUpsert(_) => DirectoryKind::RoleUpsert,
        }
    }
}

/// Decodes a directory command's payload, entity id included.
pub fn decode(
    kind: DirectoryKind,
    mut payload: Map<String, Value>,
    limits: &Limits,
) -> Result<DirectoryCommand, Rejection> {
    Ok(match kind {
        DirectoryKind::EmployerUpsert => {
            let employer_id = take_id(&mut payload, kind.id_field(), limits)?;
            let p: wire::EmployerUpsert = payload_as(payload)?;
            check_short("payload.name", &p.name, limits.max_name_chars)?;
            for d in p.departments.iter().flatten() {
                check_short("payload.departments[]", d, limits.max_name_chars)?;
            }
            DirectoryCommand::EmployerUpsert(EmployerUpsert {
                employer_id,
                name: p.name,
                departments: p.departments,
            })
        }
        DirectoryKind::RoleUpsert => {
            let role_id = take_id(&mut payload, kind.id_field(), limits)?;
            let p: wire::RoleUpsert = payload_as(payload)?;
            check_short("payload.name", &p.name, limits.max_name_chars)?;
            for perm in &p.permissions {
                check_short("payload.permissions[]", perm, limits.max_name_chars)?;
            }
            DirectoryCommand::RoleUpsert(RoleUpsert {
                role_id,
                name: p.name,
                permissions: p.permissions,
            })
        }
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
    let unchanged = current.is_some_and(|r| r.name == cmd.name && r.permissions == cmd.permissions);
    decide_upsert(
        ctx,
        EntityKind::Role,
        current.map(|r| (r.version, Some(r.profile_at))),
        expected_version,
        unchanged,
        |version| Role {
            id: cmd.role_id.clone(),
            version,
            name: cmd.name.clone(),
            permissions: cmd.permissions.clone(),
            profile_at: Ts(ctx.issued_at),
        },
        |role| {
            let data = EventData::RoleUpserted(event::RoleUpserted {
                role_id: role.id.clone(),
                name: role.name.clone(),
                permissions: role.permissions.clone(),
            });
            EventDraft::new(ctx, &role.id, role.version, data)
        },
    )
}

/// What employer and role upserts share: the version check, staleness by
/// the profile's timestamp, and one version up with one event unless
/// nothing changed. `current` is the entry's version and profile time.
fn decide_upsert<T>(
    ctx: &Ctx<'_>,
    kind: EntityKind,
    current: Option<(u64, Option<Ts>)>,
    expected_version: Option<u64>,
    unchanged: bool,
    build: impl FnOnce(u64) -> T,
    event: impl FnOnce(&T) -> EventDraft,
) -> Result<Decision<T>, Rejection> {
    let version = current.map_or(0, |(v, _)| v);
    check_version(kind, expected_version, version)?;
    if current
        .and_then(|(_, at)| at)
        .is_some_and(|at| ctx.issued_at < at.get())
    {
        return Ok(Decision::stale());
    }
    let entry = build(version + u64::from(!unchanged));
    let events = if unchanged {
        vec![]
    } else {
        vec![event(&entry)]
    };
    Ok(Decision {
        outcome: if unchanged {
            Outcome::Unchanged
        } else {
            Outcome::Applied
        },
        write: Some(entry),
        events,
        effects: vec![],
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
    let departments = cmd
        .departments
        .clone()
        .or_else(|| current.map(|e| e.departments.clone()))
        .unwrap_or_default();
    let unchanged = current.is_some_and(|e| {
        e.name.as_deref() == Some(cmd.name.as_str()) && e.departments == departments
    });
    decide_upsert(
        ctx,
        EntityKind::Employer,
        current.map(|e| (e.version, e.profile_at)),
        expected_version,
        unchanged,
        |version| Employer {
            id: cmd.employer_id.clone(),
            version,
            name: Some(cmd.name.clone()),
            departments,
            profile_at: Some(Ts(ctx.issued_at)),
        },
        |employer| {
            let data = EventData::EmployerUpserted(event::EmployerUpserted {
                employer_id: employer.id.clone(),
                name: cmd.name.clone(),
                departments: employer.departments.clone(),
            });
            EventDraft::new(ctx, &employer.id, employer.version, data)
        },
    )
}

/// Wire shapes of the directory payloads, minus the entity id.
pub mod wire {
    use schemars::JsonSchema;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct EmployerUpsert {
        pub name: String,
        pub departments: Option<Vec<String>>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct RoleUpsert {
        pub name: String,
        pub permissions: Vec<String>,
    }
}

#[cfg(test)]
mod tests;
