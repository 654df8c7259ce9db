//! Employer users: their state and snapshot; their commands ([`command`])
//! and decisions ([`decide`]).

pub mod command;
pub mod decide;
#[cfg(test)]
mod tests;

use super::event::{EventDraft, EventType};
use super::ids::EntityId;
use super::outcome::EntityKind;
use super::record::Record;
use super::ts::Ts;
use super::Ctx;
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
pub type UserRecord = Record<User>;

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
