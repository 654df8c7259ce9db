//! User commands (contract section 3): declarations, decoded forms, wire
//! shapes and decoding.

use crate::domain::ids::{EntityId, Limits};
use crate::domain::kinds::command_kinds;
use crate::domain::outcome::Rejection;
use crate::domain::payload::{self, check_email, opt_id, opt_short, payload_as, Empty, Reason};
use serde_json::{Map, Value};

command_kinds! {
    /// The `user.*` commands of one employer user.
    pub enum UserKind {
        Upsert = "user.upsert", id "user_id", aspect "profile (+ role)",
            bulk false, frozen false, destructive Never, blocklist Unneeded, wire wire::UserUpsert;
        RevokeAccess = "user.revoke_access", id "user_id", aspect "access",
            bulk false, frozen false, destructive WhenApplied, blocklist Unneeded, wire Reason;
        RestoreAccess = "user.restore_access", id "user_id", aspect "access",
            bulk false, frozen false, destructive Never, blocklist Unneeded, wire Reason;
        ChangeRole = "user.change_role", id "user_id", aspect "role",
            bulk false, frozen false, destructive Never, blocklist Unneeded, wire wire::ChangeRole;
        Restore = "user.restore", id "user_id", aspect "all",
            bulk false, frozen false, destructive Never, blocklist Unneeded, wire Empty;
        Delete = "user.delete", id "user_id", aspect "all (never stale)",
            bulk false, frozen false, destructive WhenApplied, blocklist Unneeded, wire Empty;
        Erase = "user.erase", id "user_id", aspect "all (never stale)",
            bulk false, frozen false, destructive WhenApplied, blocklist Exclusive, wire Empty;
    }
}

#[derive(Clone, Debug, PartialEq, Default)]
pub struct UserUpsert {
    pub email: Option<String>,
    pub name: Option<String>,
    pub employer_id: Option<EntityId>,
    pub contact_id: Option<EntityId>,
    pub role_id: Option<EntityId>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum UserOp {
    Upsert(UserUpsert),
    RevokeAccess {
        reason: Option<String>,
    },
    RestoreAccess {
        reason: Option<String>,
    },
    ChangeRole {
        role_id: EntityId,
    },
    /// Brings a soft-deleted user back, within its restore window.
    Restore,
    Delete,
    /// Forgets the user for good; their address goes on the blocklist.
    Erase,
}

impl UserOp {
    pub fn kind(&self) -> UserKind {
        match self {
            UserOp::Upsert(_) => UserKind::Upsert,
            UserOp::RevokeAccess { .. } => UserKind::RevokeAccess,
            UserOp::RestoreAccess { .. } => UserKind::RestoreAccess,
            UserOp::ChangeRole { .. } => UserKind::ChangeRole,
            UserOp::Restore => UserKind::Restore,
            UserOp::Delete => UserKind::Delete,
            UserOp::Erase => UserKind::Erase,
        }
    }

    pub fn type_name(&self) -> &'static str {
        self.kind().name()
    }

    /// Whether it may create the user (the batch locks a placeholder row
    /// first).
    pub fn may_create(&self) -> bool {
        match self {
            UserOp::Upsert(_) => true,
            UserOp::RevokeAccess { .. }
            | UserOp::RestoreAccess { .. }
            | UserOp::ChangeRole { .. }
            | UserOp::Restore
            | UserOp::Delete
            | UserOp::Erase => false,
        }
    }

    /// The role the command names, which must exist.
    pub fn role_named(&self) -> Option<&EntityId> {
        match self {
            UserOp::Upsert(u) => u.role_id.as_ref(),
            UserOp::ChangeRole { role_id } => Some(role_id),
            UserOp::RevokeAccess { .. }
            | UserOp::RestoreAccess { .. }
            | UserOp::Restore
            | UserOp::Delete
            | UserOp::Erase => None,
        }
    }
}

/// Decodes the payload of a user command (its `user_id` already taken).
pub fn decode(
    kind: UserKind,
    payload: Map<String, Value>,
    limits: &Limits,
) -> Result<UserOp, Rejection> {
    Ok(match kind {
        UserKind::Upsert => {
            let p: wire::UserUpsert = payload_as(payload)?;
            if let Some(e) = &p.email {
                check_email(e, limits)?;
            }
            opt_short("payload.name", &p.name, limits)?;
            UserOp::Upsert(UserUpsert {
                email: p.email,
                name: p.name,
                employer_id: opt_id("payload.employer_id", p.employer_id, limits)?,
                contact_id: opt_id("payload.contact_id", p.contact_id, limits)?,
                role_id: opt_id("payload.role_id", p.role_id, limits)?,
            })
        }
        UserKind::RevokeAccess => UserOp::RevokeAccess {
            reason: payload::reason(payload, limits)?,
        },
        UserKind::RestoreAccess => UserOp::RestoreAccess {
            reason: payload::reason(payload, limits)?,
        },
        UserKind::ChangeRole => {
            let p: wire::ChangeRole = payload_as(payload)?;
            UserOp::ChangeRole {
                role_id: EntityId::parse("payload.role_id", &p.role_id, limits)?,
            }
        }
        UserKind::Restore => {
            payload::empty(payload)?;
            UserOp::Restore
        }
        UserKind::Delete => {
            payload::empty(payload)?;
            UserOp::Delete
        }
        UserKind::Erase => {
            payload::empty(payload)?;
            UserOp::Erase
        }
    })
}

/// Wire shapes of the user payloads, minus `user_id` (split off first).
pub mod wire {
    use schemars::JsonSchema;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct UserUpsert {
        pub email: Option<String>,
        pub name: Option<String>,
        pub employer_id: Option<String>,
        pub contact_id: Option<String>,
        pub role_id: Option<String>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ChangeRole {
        pub role_id: String,
    }
}
