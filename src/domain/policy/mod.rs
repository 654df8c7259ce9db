//! Tenant policies and producer authorisation (contract section 7), as pure data.

use super::outcome::{ErrorCode, Rejection};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The resolved policy of one tenant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantPolicy {
    /// Status codes `contact.change_status` and `contact.upsert` accept.
    pub statuses: Vec<String>,
    /// Statuses that make a contact's email suppressed.
    pub suppressing_statuses: Vec<String>,
    /// Statuses that hide a contact from its employer's record.
    pub hiding_statuses: Vec<String>,
    /// Some platforms keep contacts forever for data integrity.
    pub allow_contact_delete: bool,
    /// Soft: a deleted contact or user can be restored for `restore_days`.
    pub delete_mode: DeleteMode,
    pub restore_days: u32,
    /// A `message` activity whose action code starts with this deactivates.
    pub deactivate_prefix: String,
    /// A `message` activity whose action code starts with this reactivates.
    pub reactivate_prefix: String,
    /// The mass-change guardrail (contract section 10).
    pub guardrail: Guardrail,
    /// IANA name; an `effective_at` date is midnight there (contract section 12).
    pub time_zone: String,
}

/// How deletes end (contract section 11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteMode {
    /// Kept, restorable, for `restore_days`; then purged.
    #[default]
    Soft,
    /// Gone at once, as in v1.
    Hard,
}

/// The longest guardrail window: counts older than this are purged.
pub const MAX_GUARDRAIL_WINDOW_DAYS: u32 = 7;

/// How many destructive changes a tenant may take in a sliding window
/// before further ones are held for a person to release or discard.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Guardrail {
    pub enabled: bool,
    pub max_changes: u64,
    #[serde(with = "super::ids::human_duration")]
    pub window: std::time::Duration,
}

impl Default for Guardrail {
    fn default() -> Self {
        Guardrail {
            enabled: true,
            max_changes: 1000,
            window: std::time::Duration::from_secs(3600),
        }
    }
}

/// A `[tenants.X.guardrail]` block: every key optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardrailOverride {
    pub enabled: Option<bool>,
    pub max_changes: Option<u64>,
    #[serde(default, with = "super::ids::human_duration_opt")]
    pub window: Option<std::time::Duration>,
}

impl TenantPolicy {
    /// How long a soft-deleted contact or user can be restored.
    pub fn restore_window(&self) -> time::Duration {
        time::Duration::days(i64::from(self.restore_days))
    }
}

impl Default for TenantPolicy {
    fn default() -> Self {
        let codes = |s: &str| s.split(' ').map(str::to_owned).collect::<Vec<_>>();
        TenantPolicy {
            statuses: codes("A B C D H I L N P S1 T W"),
            suppressing_statuses: codes("D I N"),
            hiding_statuses: codes("D I N"),
            allow_contact_delete: true,
            delete_mode: DeleteMode::Soft,
            restore_days: 30,
            deactivate_prefix: "deact".into(),
            reactivate_prefix: "react".into(),
            guardrail: Guardrail::default(),
            time_zone: "UTC".into(),
        }
    }
}

/// One `[tenants.X]` block: every key optional, falling back to the defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantPolicyOverride {
    pub statuses: Option<Vec<String>>,
    pub suppressing_statuses: Option<Vec<String>>,
    pub hiding_statuses: Option<Vec<String>>,
    pub allow_contact_delete: Option<bool>,
    pub delete_mode: Option<DeleteMode>,
    pub restore_days: Option<u32>,
    pub deactivate_prefix: Option<String>,
    pub reactivate_prefix: Option<String>,
    pub guardrail: Option<GuardrailOverride>,
    pub time_zone: Option<String>,
}

impl TenantPolicyOverride {
    pub fn apply_to(&self, base: &TenantPolicy) -> TenantPolicy {
        TenantPolicy {
            statuses: self
                .statuses
                .clone()
                .unwrap_or_else(|| base.statuses.clone()),
            suppressing_statuses: self
                .suppressing_statuses
                .clone()
                .unwrap_or_else(|| base.suppressing_statuses.clone()),
            hiding_statuses: self
                .hiding_statuses
                .clone()
                .unwrap_or_else(|| base.hiding_statuses.clone()),
            allow_contact_delete: self
                .allow_contact_delete
                .unwrap_or(base.allow_contact_delete),
            delete_mode: self.delete_mode.unwrap_or(base.delete_mode),
            restore_days: self.restore_days.unwrap_or(base.restore_days),
            deactivate_prefix: self
                .deactivate_prefix
                .clone()
                .unwrap_or_else(|| base.deactivate_prefix.clone()),
            reactivate_prefix: self
                .reactivate_prefix
                .clone()
                .unwrap_or_else(|| base.reactivate_prefix.clone()),
            guardrail: match &self.guardrail {
                None => base.guardrail.clone(),
                Some(g) => Guardrail {
                    enabled: g.enabled.unwrap_or(base.guardrail.enabled),
                    max_changes: g.max_changes.unwrap_or(base.guardrail.max_changes),
                    window: g.window.unwrap_or(base.guardrail.window),
                },
            },
            time_zone: self
                .time_zone
                .clone()
                .unwrap_or_else(|| base.time_zone.clone()),
        }
    }
}

/// Every tenant's policy: the `default` block, then per-tenant overrides.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policies {
    default: TenantPolicy,
    tenants: BTreeMap<String, TenantPolicy>,
}

impl Policies {
    /// `blocks` is the `[tenants]` table; its `default` entry overrides the built-in defaults.
    pub fn from_blocks(blocks: &BTreeMap<String, TenantPolicyOverride>) -> Policies {
        let default = blocks
            .get("default")
            .map(|o| o.apply_to(&TenantPolicy::default()))
            .unwrap_or_default();
        let tenants = blocks
            .iter()
            .filter(|(name, _)| name.as_str() != "default")
            .map(|(name, o)| (name.clone(), o.apply_to(&default)))
            .collect();
        Policies { default, tenants }
    }

    pub fn for_tenant(&self, tenant: &str) -> &TenantPolicy {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }
}

/// What one AMQP user may send.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProducerGrant {
    /// Tenants this producer may send for; `*` is any.
    pub tenants: Vec<String>,
    /// Command type patterns; `*` matches any characters.
    pub commands: Vec<String>,
    /// May replay dead letters: its replays are authorised as the
    /// producer that first sent each message, never with its own grants.
    pub replay: bool,
}

/// Header a replay carries: the AMQP `user_id` of the producer that first
/// sent the message. Honoured only from a user granted `replay = true`.
pub const ORIGINAL_USER_HEADER: &str = "x-original-user-id";

/// Producer authorisation: off when no producer is configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Producers {
    grants: BTreeMap<String, ProducerGrant>,
}

impl Producers {
    pub fn new(grants: BTreeMap<String, ProducerGrant>) -> Producers {
        Producers { grants }
    }

    /// Whether authorisation is configured at all.
    pub fn enabled(&self) -> bool {
        !self.grants.is_empty()
    }

    /// Whether `user_id` may replay dead letters (anyone may while
    /// authorisation is off).
    pub fn may_replay(&self, user_id: Option<&str>) -> bool {
        !self.enabled()
            || user_id
                .and_then(|u| self.grants.get(u))
                .is_some_and(|g| g.replay)
    }

    /// Whether a delivery is a replay whose replay markers (`x-replayed`,
    /// [`ORIGINAL_USER_HEADER`]) can be believed: only a replay-granted user
    /// can send one, so no producer can pose as a replay.
    pub fn trusts_replay_from(&self, user_id: Option<&str>, replayed: bool) -> bool {
        replayed && self.may_replay(user_id)
    }

    /// The producer a delivery is authorised as (and recorded as, in a
    /// dead letter): for a replay from a replay-granted user, the original
    /// producer it names (none: forbidden); otherwise its sender. While
    /// authorisation is off nobody is granted anything, so the name a
    /// replay carries is believed from nobody: a replay then acts as no one
    /// (its dead-letter row keeps the producer it recorded first) and a
    /// producer cannot put another's name on its message.
    pub fn acting_producer<'a>(
        &self,
        user_id: Option<&'a str>,
        replayed: bool,
        original_user: Option<&'a str>,
    ) -> Option<&'a str> {
        match (self.enabled(), self.trusts_replay_from(user_id, replayed)) {
            (true, true) => original_user,
            (false, true) => None,
            (_, false) => user_id,
        }
    }

    /// [`Producers::authorise`] for a command: a bulk needs a grant for
    /// `contact.bulk` and for its inner operation.
    pub fn authorise_command(
        &self,
        user_id: Option<&str>,
        tenant: &str,
        command_types: &[&str],
    ) -> Result<(), Rejection> {
        command_types
            .iter()
            .try_for_each(|t| self.authorise(user_id, tenant, t))
    }

    /// Decides whether `user_id` (the AMQP property, validated by RabbitMQ)
    /// may send `command_type` for `tenant`.
    pub fn authorise(
        &self,
        user_id: Option<&str>,
        tenant: &str,
        command_type: &str,
    ) -> Result<(), Rejection> {
        if self.grants.is_empty() {
            return Ok(());
        }
        let forbidden = |m: String| Err(Rejection::new(ErrorCode::Forbidden, m));
        let Some(user) = user_id else {
            return forbidden(
                "producer authorisation is configured and the message has no AMQP user_id".into(),
            );
        };
        let Some(grant) = self.grants.get(user) else {
            return forbidden(format!("producer `{user}` has no grants"));
        };
        if !grant.tenants.iter().any(|t| t == "*" || t == tenant) {
            return forbidden(format!(
                "producer `{user}` may not send commands for tenant `{tenant}`"
            ));
        }
        if !grant.commands.iter().any(|p| glob_match(p, command_type)) {
            return forbidden(format!(
                "producer `{user}` may not send `{command_type}` commands"
            ));
        }
        Ok(())
    }
}

/// `*` matches any run of characters (including dots); everything else is literal.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() || !text.ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for middle in &parts[1..parts.len() - 1] {
        match rest.find(middle) {
            Some(i) => rest = &rest[i + middle.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests;
