//! Employer contacts: their state, snapshot and derived flags; their
//! commands ([`command`]), decisions ([`decide`]) and bulk ([`bulk`]).

pub mod bulk;
mod change;
pub mod command;
pub mod decide;
mod decision;
#[cfg(test)]
mod tests;

use super::blocklist::Blocklist;
use super::ids::EntityId;
use super::policy::TenantPolicy;
use super::record::Record;
use super::ts::Ts;
use super::working::versioned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    Everyone,
    Advisors,
    Owner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActivityKind {
    Note,
    Meeting,
    Task,
    Message,
}

/// The reserved attribute that drives email suppression.
pub const DO_NOT_EMAIL: &str = "do_not_email";
/// The suppression reason of an address that was erased (contract section 11).
pub const PREVIOUSLY_ERASED: &str = "previously_erased";

/// Aspects of a contact (contract section 3); attributes are `attribute:NAME`.
pub const PROFILE: &str = "profile";
pub const ACTIVATION: &str = "activation";
pub const STATUS: &str = "status";
pub const EMPLOYER: &str = "employer";
pub const VISIBILITY: &str = "visibility";
pub const APPROVAL: &str = "approval";

pub fn attribute_aspect(name: &str) -> String {
    format!("attribute:{name}")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Approval {
    Approved,
    Rejected,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct FormerEmployer {
    pub employer_id: EntityId,
    pub department: Option<String>,
    pub from: Ts,
    pub until: Ts,
}

/// Where the contact was before an archive moved it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmployerMemo {
    pub employer_id: Option<EntityId>,
    pub department: Option<String>,
}

/// What an archive changed, so that revive can undo exactly that.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchiveMemo {
    pub archived_at: Ts,
    pub visibility: Visibility,
    /// `do_not_email` before the archive; `None` when it was not set.
    pub do_not_email: Option<Value>,
    /// Set only when the archive moved the contact to another employer.
    pub employer: Option<EmployerMemo>,
    /// Users whose access this archive revoked.
    pub revoked_users: Vec<EntityId>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub id: EntityId,
    pub version: u64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub employer_id: Option<EntityId>,
    pub department: Option<String>,
    /// When the contact joined its current employer: a former employer's `from`.
    pub employer_since: Ts,
    pub active: bool,
    pub status: String,
    pub visibility: Visibility,
    pub approval: Approval,
    pub attributes: BTreeMap<String, Value>,
    pub former_employers: Vec<FormerEmployer>,
    /// Present while the contact is archived.
    pub archive: Option<ArchiveMemo>,
    /// Derived under the tenant policy in force when the contact last
    /// changed, and stored, so that `contact show` prints what the events
    /// said and a policy change never flips a flag silently.
    pub email_suppressed: bool,
    pub shown_on_employer: bool,
    /// `issued_at` of the last command applied per aspect.
    pub aspects: BTreeMap<String, Ts>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

/// What the store holds under a contact id.
pub type ContactRecord = Record<Contact>;

/// One entry of the activity trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Activity {
    pub kind: ActivityKind,
    pub body: String,
    pub action_code: Option<String>,
    /// The contact's employer when the activity was logged.
    pub employer_id: Option<EntityId>,
    pub occurred_at: Ts,
}

impl Contact {
    /// Why the email is suppressed; empty when it is not (or there is no email).
    pub fn suppression_reasons(&self, policy: &TenantPolicy, blocklist: &Blocklist) -> Vec<String> {
        let Some(email) = &self.email else {
            return vec![];
        };
        let mut reasons = Vec::new();
        if blocklist.holds(email) {
            reasons.push(PREVIOUSLY_ERASED.to_owned());
        }
        if self.attributes.get(DO_NOT_EMAIL) == Some(&Value::Bool(true)) {
            reasons.push(DO_NOT_EMAIL.to_owned());
        }
        if !self.active {
            reasons.push("inactive".to_owned());
        }
        if self.approval == Approval::Rejected {
            reasons.push("rejected".to_owned());
        }
        if policy.suppressing_statuses.contains(&self.status) {
            reasons.push(format!("status:{}", self.status));
        }
        reasons
    }

    /// Recomputes the stored derived flags under `policy` and `blocklist`.
    pub fn refresh_derived(&mut self, policy: &TenantPolicy, blocklist: &Blocklist) {
        self.email_suppressed = !self.suppression_reasons(policy, blocklist).is_empty();
        self.shown_on_employer = !policy.hiding_statuses.contains(&self.status);
    }

    /// The snapshot of contract section 5 (also what `contact show` prints).
    pub fn snapshot(&self, tenant: &str) -> Value {
        serde_json::to_value(ContactSnapshot::of(self, tenant)).expect("a snapshot serialises")
    }
}

/// The contact snapshot of contract section 5, in every contact event.
#[derive(Clone, Debug, Serialize, schemars::JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct ContactSnapshot {
    pub id: EntityId,
    pub tenant: String,
    pub version: u64,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub title: Option<String>,
    pub employer_id: Option<EntityId>,
    pub department: Option<String>,
    pub active: bool,
    pub status: String,
    pub visibility: Visibility,
    pub approval: Approval,
    /// Custom attributes: name -> string, number or bool.
    pub attributes: BTreeMap<String, Value>,
    pub email_suppressed: bool,
    pub shown_on_employer: bool,
    pub archived: bool,
    pub former_employers: Vec<FormerEmployer>,
    pub created_at: Ts,
    pub updated_at: Ts,
}

impl ContactSnapshot {
    pub fn of(contact: &Contact, tenant: &str) -> ContactSnapshot {
        ContactSnapshot {
            id: contact.id.clone(),
            tenant: tenant.to_owned(),
            version: contact.version,
            first_name: contact.first_name.clone(),
            last_name: contact.last_name.clone(),
            email: contact.email.clone(),
            phone: contact.phone.clone(),
            title: contact.title.clone(),
            employer_id: contact.employer_id.clone(),
            department: contact.department.clone(),
            active: contact.active,
            status: contact.status.clone(),
            visibility: contact.visibility,
            approval: contact.approval,
            attributes: contact.attributes.clone(),
            email_suppressed: contact.email_suppressed,
            shown_on_employer: contact.shown_on_employer,
            archived: contact.archive.is_some(),
            former_employers: contact.former_employers.clone(),
            created_at: contact.created_at,
            updated_at: contact.updated_at,
        }
    }
}

versioned!(Contact);
