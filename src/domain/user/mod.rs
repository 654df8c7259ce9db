//! Employer users: their state and snapshot; their commands ([`command`])
//! and decisions ([`decide`]).

pub mod command;
pub mod decide;
#[cfg(test)]
mod tests;

use super::ids::EntityId;
use super::record::Record;
use super::ts::Ts;
use super::working::versioned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
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
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
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

impl UserSnapshot {
    pub fn of(user: &User, tenant: &str) -> UserSnapshot {
        UserSnapshot {
            id: user.id.clone(),
            tenant: tenant.to_owned(),
            version: user.version,
            email: user.email.clone(),
            name: user.name.clone(),
            employer_id: user.employer_id.clone(),
            contact_id: user.contact_id.clone(),
            role_id: user.role_id.clone(),
            site_access: user.site_access,
            created_at: user.created_at,
            updated_at: user.updated_at,
        }
    }
}

impl User {
    pub fn snapshot(&self, tenant: &str) -> Value {
        serde_json::to_value(UserSnapshot::of(self, tenant)).expect("a snapshot serialises")
    }
}

versioned!(User);
