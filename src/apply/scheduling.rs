//! The batch's side of effective-dated commands (contract section 12):
//! keeping a command until it is due, and `command.cancel`.

use time::OffsetDateTime;

use super::batch::{command_ctx, Batch};
use super::{entity, Applied, Disposition, Rules, Stop};
use crate::domain::blocklist::Blocklist;
use crate::domain::envelope::{Command, CommandBody};
use crate::domain::event::{
    to_cloud_event, CommandCancelled, CommandScheduled, EventData, EventDraft,
};
use crate::domain::ids::{CommandId, EntityId};
use crate::domain::outcome::{EntityKind, Outcome, Reply};
use crate::domain::schedule::not_cancellable;
use crate::domain::ts::Ts;
use crate::domain::Ctx;
use crate::intake::Inbound;
use crate::store::schedule::{self, Scheduled};
use crate::store::StoreError;

/// What a scheduled command is about: its entity, or its tenant for a bulk.
fn scheduled_subject(cmd: &Command) -> (EntityKind, EntityId) {
    match &cmd.body {
        CommandBody::Contact { contact_id, .. } => (EntityKind::Contact, contact_id.clone()),
        CommandBody::User { user_id, .. } => (EntityKind::User, user_id.clone()),
        CommandBody::Bulk(_) | CommandBody::Directory(_) | CommandBody::Cancel { .. } => {
            (EntityKind::Tenant, EntityId::trusted(cmd.tenant.as_str()))
        }
    }
}

impl Batch<'_> {
    /// Keeps a command whose `effective_at` lies ahead, whole, until it is
    /// due: outcome `scheduled`, event `CommandScheduled`.
    pub(super) async fn schedule(
        &mut self,
        msg: &Inbound,
        cmd: &Command,
        at: OffsetDateTime,
        rules: &Rules<'_>,
        now: OffsetDateTime,
    ) -> Result<Disposition, StoreError> {
        let tenant = cmd.tenant.as_str();
        let user_id = msg.acting_producer(rules.producers).map(str::to_owned);
        let (kind, id) = scheduled_subject(cmd);
        schedule::schedule(
            self.conn,
            &Scheduled {
                tenant_id: tenant.to_owned(),
                command_id: cmd.command_id.to_string(),
                command_type: cmd.type_name().to_owned(),
                entity_kind: kind.as_str().to_owned(),
                entity_id: id.to_string(),
                user_id: user_id.clone(),
                effective_at: at,
                body: msg.body.clone(),
                properties: msg.properties_json(),
                exchange: msg.exchange.clone(),
                routing_key: msg.routing_key.clone(),
            },
        )
        .await?;
        self.scheduled += 1;
        let key = (tenant.to_owned(), id.clone());
        let version = match kind {
            EntityKind::Contact => self
                .cache
                .cached_contact(&key)
                .and_then(|r| r.live())
                .map(|c| c.version),
            EntityKind::User => self
                .cache
                .cached_user(&key)
                .and_then(|r| r.live())
                .map(|u| u.version),
            EntityKind::Employer | EntityKind::Role | EntityKind::Tenant | EntityKind::Command => {
                None
            }
        };
        let no_addresses = Blocklist::default();
        let policy = rules.policies.for_tenant(tenant);
        let ctx = command_ctx(cmd, policy, rules.limits, now, &no_addresses);
        let data = EventData::CommandScheduled(CommandScheduled {
            command_id: cmd.command_id.to_string(),
            command_type: cmd.type_name().to_owned(),
            effective_at: Ts(at),
            user_id,
        });
        let draft = EventDraft {
            entity_kind: kind,
            ..EventDraft::new(&ctx, &id, version.unwrap_or(0), data)
        };
        let first_event = self.outbox.len();
        self.outbox
            .push(to_cloud_event(&cmd.tenant, &cmd.command_id, 0, draft, now));
        let entity = (kind != EntityKind::Tenant).then(|| entity(kind, &id, version));
        let reply = Reply {
            scheduled_for: Some(Ts(at)),
            ..self.reply(cmd, first_event, Outcome::Scheduled, entity)
        };
        Ok(self.remember(cmd, reply))
    }
    /// `command.cancel`: takes a pending command out of the schedule.
    pub(super) async fn cancel(
        &mut self,
        ctx: &Ctx<'_>,
        target: &CommandId,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<Applied, Stop> {
        let tenant = ctx.tenant.as_str();
        let Some(taken) = schedule::take(self.conn, tenant, target.as_str()).await? else {
            let key = (tenant.to_owned(), target.to_string());
            let recorded = match self.seen.get(&key) {
                Some(reply) => Some(reply.outcome),
                None => schedule::recorded_outcome(self.conn, tenant, target.as_str())
                    .await?
                    .map(|o| Outcome::parse(&o).unwrap_or(Outcome::Applied)),
            };
            return Err(not_cancellable(target, recorded).into());
        };
        schedule::mark_cancelled(self.conn, tenant, target.as_str()).await?;
        // Scheduled earlier in this batch: its inbox row is still buffered.
        let key = (tenant.to_owned(), target.to_string());
        if let Some(reply) = self.seen.get_mut(&key) {
            reply.outcome = Outcome::Cancelled;
            reply.scheduled_for = None;
        }
        for row in self
            .inbox
            .iter_mut()
            .filter(|r| r.tenant == tenant && r.command_id == target.as_str())
        {
            row.reply.outcome = Outcome::Cancelled;
            row.reply.scheduled_for = None;
        }
        let kind = EntityKind::parse(&taken.entity_kind).unwrap_or(EntityKind::Tenant);
        let id = EntityId::trusted(&taken.entity_id);
        let data = EventData::CommandCancelled(CommandCancelled {
            command_id: target.to_string(),
        });
        drafts.push(EventDraft {
            entity_kind: kind,
            ..EventDraft::new(ctx, &id, 0, data)
        });
        Ok(Applied {
            outcome: Outcome::Applied,
            entity: Some(entity(kind, &id, None)),
            items: None,
        })
    }
}
