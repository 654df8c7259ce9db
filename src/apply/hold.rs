//! Keeping a command the mass-change guardrail holds (contract section 10).

use time::OffsetDateTime;

use super::batch::{command_ctx, Batch};
use super::{entity, Disposition, Rules};
use crate::domain::blocklist::Blocklist;
use crate::domain::contact::bulk::BulkTarget;
use crate::domain::directory::DirectoryCommand;
use crate::domain::envelope::{Command, CommandBody};
use crate::domain::event::{to_cloud_event, EventData, EventDraft, GuardrailTripped};
use crate::domain::ids::EntityId;
use crate::domain::outcome::{EntityKind, EntityRef, Outcome, Reply};
use crate::intake::Inbound;
use crate::store::{guardrail, StoreError};

/// What a held command is about: its entity, or a bulk's contact ids.
fn held_subject(cmd: &Command) -> (Option<EntityRef>, Option<serde_json::Value>) {
    match &cmd.body {
        CommandBody::Contact { contact_id, .. } => {
            (Some(entity(EntityKind::Contact, contact_id, None)), None)
        }
        CommandBody::User { user_id, .. } => (Some(entity(EntityKind::User, user_id, None)), None),
        CommandBody::Bulk(b) => match &b.target {
            BulkTarget::Ids(ids) => (None, Some(serde_json::json!(ids))),
            BulkTarget::Employer(e) => (None, Some(serde_json::json!({"employer_id": e}))),
        },
        CommandBody::Directory(DirectoryCommand::EmployerUpsert(u)) => (
            Some(entity(EntityKind::Employer, &u.employer_id, None)),
            None,
        ),
        CommandBody::Directory(DirectoryCommand::RoleUpsert(u)) => {
            (Some(entity(EntityKind::Role, &u.role_id, None)), None)
        }
        // Never destructive, so never held.
        CommandBody::Cancel { .. } => (None, None),
    }
}

impl Batch<'_> {
    /// Keeps a command the guardrail holds, whole, and records `held` as its
    /// outcome; the command that trips the guardrail also publishes
    /// `GuardrailTripped`.
    pub(super) async fn hold(
        &mut self,
        msg: &Inbound,
        cmd: &Command,
        trips: bool,
        rules: &Rules<'_>,
        now: OffsetDateTime,
    ) -> Result<Disposition, StoreError> {
        let tenant = cmd.tenant.as_str();
        let user_id = msg.acting_producer(rules.producers).map(str::to_owned);
        let (entity, contact_ids) = held_subject(cmd);
        let held = guardrail::Held {
            tenant_id: tenant.to_owned(),
            hold_id: 0,
            command_id: cmd.command_id.to_string(),
            command_type: cmd.type_name().to_owned(),
            entity_kind: entity.as_ref().map(|e| e.kind.as_str().to_owned()),
            entity_id: entity.as_ref().map(|e| e.id.clone()),
            contact_ids,
            user_id: user_id.clone(),
            body: msg.body.clone(),
            properties: msg.properties_json(),
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            held_at: now,
        };
        let hold_id = guardrail::hold(self.conn, &held).await?;
        let policy = rules.policies.for_tenant(tenant);
        let first_event = self.outbox.len();
        if trips {
            let version = guardrail::set_tripped(self.conn, tenant, true).await?;
            let count = self.guardrail.count(tenant);
            let no_addresses = Blocklist::default();
            let ctx = command_ctx(cmd, policy, rules.limits, now, &no_addresses);
            let data = EventData::GuardrailTripped(GuardrailTripped {
                max_changes: policy.guardrail.max_changes,
                window: humantime::format_duration(policy.guardrail.window).to_string(),
                count,
                command_id: cmd.command_id.to_string(),
                user_id,
            });
            let draft = EventDraft::new(&ctx, &EntityId::trusted(tenant), version, data);
            self.outbox
                .push(to_cloud_event(&cmd.tenant, &cmd.command_id, 0, draft, now));
            tracing::warn!(
                tenant,
                hold_id,
                "mass-change guardrail tripped: destructive commands are held"
            );
        }
        let reply = Reply {
            hold_id: Some(hold_id),
            ..self.reply(cmd, first_event, Outcome::Held, entity)
        };
        Ok(self.remember(cmd, reply))
    }
}
