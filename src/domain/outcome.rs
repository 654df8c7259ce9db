//! Outcomes, rejection codes and the reply body of contract section 4.

use super::ts::Ts;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// The permanent error codes of contract section 4. A command rejected with
/// one of these is dead-lettered and not recorded as processed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    Malformed,
    InvalidCommand,
    Forbidden,
    NotFound,
    EmployerNotFound,
    RoleNotFound,
    VersionConflict,
    Frozen,
    DeleteForbidden,
    InvalidStatus,
    InvalidTransition,
    /// A held command discarded by an operator (contract section 10).
    Discarded,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 12] = [
        ErrorCode::Malformed,
        ErrorCode::InvalidCommand,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::EmployerNotFound,
        ErrorCode::RoleNotFound,
        ErrorCode::VersionConflict,
        ErrorCode::Frozen,
        ErrorCode::DeleteForbidden,
        ErrorCode::InvalidStatus,
        ErrorCode::InvalidTransition,
        ErrorCode::Discarded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Malformed => "malformed",
            ErrorCode::InvalidCommand => "invalid_command",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::EmployerNotFound => "employer_not_found",
            ErrorCode::RoleNotFound => "role_not_found",
            ErrorCode::VersionConflict => "version_conflict",
            ErrorCode::Frozen => "frozen",
            ErrorCode::DeleteForbidden => "delete_forbidden",
            ErrorCode::InvalidStatus => "invalid_status",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::Discarded => "discarded",
        }
    }

    pub fn parse(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permanent refusal: the command is dead-lettered with this code and message.
/// Messages never quote personal data, only ids and field names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Rejection {
    pub code: ErrorCode,
    pub message: String,
}

impl Rejection {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Rejection {
            code,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Rejection::new(ErrorCode::InvalidCommand, message)
    }
}

/// What a valid command did to its entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Applied,
    Unchanged,
    Stale,
    Rejected,
    /// Held by the mass-change guardrail until released or discarded.
    Held,
    /// Waiting for its `effective_at` (contract section 12).
    Scheduled,
    /// Scheduled, then cancelled by a `command.cancel`.
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Unchanged => "unchanged",
            Outcome::Stale => "stale",
            Outcome::Rejected => "rejected",
            Outcome::Held => "held",
            Outcome::Scheduled => "scheduled",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        [
            Outcome::Applied,
            Outcome::Unchanged,
            Outcome::Stale,
            Outcome::Rejected,
            Outcome::Held,
            Outcome::Scheduled,
            Outcome::Cancelled,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    Contact,
    User,
    Employer,
    Role,
    /// A tenant as a whole: the subject of guardrail events.
    Tenant,
    /// What scheduling events are declared about; their subject is the
    /// scheduled command's entity (or its tenant, for a bulk).
    Command,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::Contact => "contact",
            EntityKind::User => "user",
            EntityKind::Employer => "employer",
            EntityKind::Role => "role",
            EntityKind::Tenant => "tenant",
            EntityKind::Command => "command",
        }
    }

    pub fn parse(s: &str) -> Option<EntityKind> {
        [
            EntityKind::Contact,
            EntityKind::User,
            EntityKind::Employer,
            EntityKind::Role,
            EntityKind::Tenant,
            EntityKind::Command,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct EntityRef {
    pub kind: EntityKind,
    pub id: String,
    /// The entity's version after the command; null when it does not exist.
    pub version: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ReplyError {
    pub code: ErrorCode,
    pub message: String,
}

impl From<Rejection> for ReplyError {
    fn from(r: Rejection) -> Self {
        ReplyError {
            code: r.code,
            message: r.message,
        }
    }
}

/// One contact's result inside a `contact.bulk` reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BulkItem {
    pub contact_id: String,
    pub outcome: Outcome,
    pub version: Option<u64>,
    pub error: Option<ReplyError>,
}

/// The reply body of contract section 4. Also what the inbox keeps, so that a
/// duplicate repeats the first outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reply {
    pub command_id: Option<String>,
    pub tenant: Option<String>,
    pub outcome: Outcome,
    pub duplicate: bool,
    pub entity: Option<EntityRef>,
    pub events: Vec<String>,
    pub error: Option<ReplyError>,
    pub items: Option<Vec<BulkItem>>,
    /// For a `held` command: the hold to release or discard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_id: Option<i64>,
    /// For a `scheduled` command: when it applies (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<Ts>,
}
