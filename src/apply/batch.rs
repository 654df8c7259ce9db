//! The batch being applied: its entities, buffered inbox and outbox rows,
//! and the way one command goes from its kind to its reply.

use crate::store::inbox::InboxRow;
use crate::store::{dead_letters, outbox};
use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;
use time::OffsetDateTime;
use tracing::Instrument;

use super::blocklist::{blocklist_locks, BlocklistWork};
use super::cache::EntityCache;
use super::guardrail::Guardrail;
use super::{entity, Applied, Disposition, Key, Rules, Stop};
use crate::domain::blocklist::Blocklist;
use crate::domain::contact::bulk::{BulkCommand, BulkTarget};
use crate::domain::contact::ContactRecord;
use crate::domain::directory::{decide_employer, decide_role, DirectoryCommand};
use crate::domain::envelope::{Command, CommandBody, DecodeFailure};
use crate::domain::event::{to_cloud_event, EventDraft, OutboxEvent};
use crate::domain::guardrail::Verdict;
use crate::domain::ids::Limits;
use crate::domain::outcome::{EntityKind, EntityRef, Outcome, Reply};
use crate::domain::policy::{Policies, TenantPolicy};
use crate::domain::schedule::due_later;
use crate::domain::user::UserRecord;
use crate::domain::Ctx;
use crate::hash_key::HashKey;
use crate::intake::Inbound;
use crate::store::entities;
use crate::store::{erasure, StoreError};

/// The batch's working set and buffered writes.
pub(super) struct Batch<'c> {
    pub(super) conn: &'c mut PgConnection,
    pub(super) cache: EntityCache,
    pub(super) outbox: Vec<OutboxEvent>,
    pub(super) inbox: Vec<InboxRow>,
    /// Replies of commands processed earlier in this batch.
    pub(super) seen: HashMap<(String, String), Reply>,
    pub(super) guardrail: Guardrail,
    pub(super) blocklists: BlocklistWork<'c>,
    /// Entities the command being applied erased: their events so far are
    /// scrubbed once published.
    pub(super) erased: Vec<(String, EntityKind, String)>,
    /// Commands scheduled by this batch.
    pub(super) scheduled: usize,
}

/// The context a command is decided in.
pub(super) fn command_ctx<'a>(
    cmd: &'a Command,
    policy: &'a TenantPolicy,
    limits: &'a Limits,
    now: OffsetDateTime,
    blocklist: &'a Blocklist,
) -> Ctx<'a> {
    Ctx {
        tenant: &cmd.tenant,
        policy,
        limits,
        issued_at: cmd.issued_at,
        actor: cmd.actor.as_deref(),
        now,
        blocklist,
    }
}

impl<'c> Batch<'c> {
    pub(super) fn new(conn: &'c mut PgConnection, guarded: bool, hash_key: &'c HashKey) -> Self {
        Batch {
            conn,
            cache: EntityCache::default(),
            outbox: Vec::new(),
            inbox: Vec::new(),
            seen: HashMap::new(),
            guardrail: Guardrail::new(guarded),
            blocklists: BlocklistWork::new(hash_key),
            erased: Vec::new(),
            scheduled: 0,
        }
    }

    /// The reply the command got when it was first processed, in an
    /// earlier batch (`processed`) or earlier in this one.
    pub(super) fn first_reply<'a>(
        &'a self,
        processed: &'a HashMap<(String, String), Reply>,
        cmd: &Command,
    ) -> Option<&'a Reply> {
        let key = (cmd.tenant.to_string(), cmd.command_id.to_string());
        processed.get(&key).or_else(|| self.seen.get(&key))
    }

    /// Applies a command seen for the first time: its reply is recorded in
    /// the inbox, or its rejection in the dead-letter store.
    pub(super) async fn apply_one(
        &mut self,
        msg: &Inbound,
        cmd: &Command,
        rules: &Rules<'_>,
        now: OffsetDateTime,
    ) -> Result<Disposition, StoreError> {
        let span = tracing::info_span!(
            "command",
            tenant = %cmd.tenant,
            command_id = %cmd.command_id,
            kind = cmd.type_name(),
            outcome = tracing::field::Empty,
        );
        if rules.schedule {
            let policy = rules.policies.for_tenant(cmd.tenant.as_str());
            match due_later(cmd, policy, rules.limits, now) {
                Err(rejection) => {
                    return self.dead_letter(msg, &cmd.refused(rejection), rules).await
                }
                Ok(Some(at)) => return self.schedule(msg, cmd, at, rules, now).await,
                Ok(None) => {}
            }
        }
        let result = self
            .command(cmd, rules.policies, rules.limits, now)
            .instrument(span.clone())
            .await;
        match result {
            Ok(reply) => {
                span.record("outcome", reply.outcome.as_str());
                tracing::debug!(parent: &span, events = reply.events.len(), "command applied");
                Ok(self.remember(cmd, reply))
            }
            Err(Stop::Store(e)) => Err(e),
            Err(Stop::Rejected(rejection)) => {
                self.dead_letter(msg, &cmd.refused(rejection), rules).await
            }
            Err(Stop::Held { trips }) => self.hold(msg, cmd, trips, rules, now).await,
            Err(Stop::Panicked(message)) => {
                tracing::error!(
                    tenant = %cmd.tenant,
                    command_id = %cmd.command_id,
                    kind = cmd.type_name(),
                    panic = %message,
                    "deciding the command panicked; requeueing"
                );
                Ok(Disposition::Requeue)
            }
        }
    }

    /// Stores a refused message's dead letter; its reply says why.
    pub(super) async fn dead_letter(
        &mut self,
        msg: &Inbound,
        failure: &DecodeFailure,
        rules: &Rules<'_>,
    ) -> Result<Disposition, StoreError> {
        let dead = msg.dead_letter(failure, rules.producers, rules.limits);
        let id = dead_letters::store_dead_letter(self.conn, &dead).await?;
        tracing::info!(
            dead_letter = id,
            code = failure.rejection.code.as_str(),
            tenant = failure.tenant.as_deref(),
            command_id = failure.command_id.as_deref(),
            kind = failure.command_type.as_deref(),
            "command rejected and dead-lettered"
        );
        Ok(Disposition::Ack {
            reply: failure.reply(),
        })
    }

    /// Records a command's reply in the inbox (and for duplicates later in
    /// the batch).
    pub(super) fn remember(&mut self, cmd: &Command, reply: Reply) -> Disposition {
        let key = (cmd.tenant.to_string(), cmd.command_id.to_string());
        self.seen.insert(key, reply.clone());
        self.inbox.push(InboxRow {
            tenant: cmd.tenant.to_string(),
            command_id: cmd.command_id.to_string(),
            command_type: cmd.type_name(),
            reply: reply.clone(),
        });
        Disposition::Ack { reply }
    }

    /// The reply to a command that got `outcome`, naming the events it
    /// added to the outbox from `first_event` on.
    pub(super) fn reply(
        &self,
        cmd: &Command,
        first_event: usize,
        outcome: Outcome,
        entity: Option<EntityRef>,
    ) -> Reply {
        Reply {
            command_id: Some(cmd.command_id.to_string()),
            tenant: Some(cmd.tenant.to_string()),
            outcome,
            duplicate: false,
            entity,
            events: self.outbox[first_event..]
                .iter()
                .map(|e| e.id.to_string())
                .collect(),
            error: None,
            items: None,
            hold_id: None,
            scheduled_for: None,
        }
    }

    /// Turns a command's decided events into outbox rows, and what it gave
    /// into its reply.
    fn publish(
        &mut self,
        cmd: &Command,
        now: OffsetDateTime,
        drafts: Vec<EventDraft>,
        applied: Applied,
    ) -> Reply {
        let first_event = self.outbox.len();
        self.outbox.extend(
            drafts
                .into_iter()
                .enumerate()
                .map(|(seq, d)| to_cloud_event(&cmd.tenant, &cmd.command_id, seq, d, now)),
        );
        // The erased entity's events of this batch, its erasure's included.
        for (tenant, kind, id) in std::mem::take(&mut self.erased) {
            for e in self
                .outbox
                .iter_mut()
                .filter(|e| e.tenant == tenant && e.entity_kind == kind && e.entity_id == id)
            {
                e.scrub = true;
            }
        }
        Reply {
            items: applied.items,
            ..self.reply(cmd, first_event, applied.outcome, applied.entity)
        }
    }

    /// Locks and loads every contact and user the batch names directly,
    /// creating lock placeholders for the ones an upsert may create.
    pub(super) async fn prefetch(&mut self, commands: &[&Command]) -> Result<(), StoreError> {
        // Before any row lock, so that an erasure waiting for its
        // exclusive lock holds no rows a reader of the blocklist waits for.
        erasure::lock_blocklists(self.conn, &blocklist_locks(commands)).await?;
        let mut contacts = BTreeSet::new();
        let mut users = BTreeSet::new();
        let mut creating_contacts = BTreeSet::new();
        let mut creating_users = BTreeSet::new();
        let mut given_emails = Vec::new();
        for c in commands {
            let t = c.tenant.to_string();
            match &c.body {
                CommandBody::Contact { contact_id, op } => {
                    if let Some(upsert) = op.upsert() {
                        creating_contacts.insert((t.clone(), contact_id.clone()));
                        given_emails.extend(upsert.email.clone().map(|e| (t.clone(), e)));
                    }
                    contacts.insert((t, contact_id.clone()));
                }
                CommandBody::Bulk(BulkCommand {
                    target: BulkTarget::Ids(ids),
                    ..
                }) => contacts.extend(ids.iter().map(|id| (t.clone(), id.clone()))),
                CommandBody::User { user_id, op } => {
                    if op.may_create() {
                        creating_users.insert((t.clone(), user_id.clone()));
                    }
                    users.insert((t, user_id.clone()));
                }
                // A filter's contacts are found when the bulk is applied.
                CommandBody::Bulk(BulkCommand {
                    target: BulkTarget::Employer(_),
                    ..
                })
                | CommandBody::Directory(_)
                | CommandBody::Cancel { .. } => {}
            }
        }
        let creating_contacts: Vec<Key> = creating_contacts.into_iter().collect();
        let creating_users: Vec<Key> = creating_users.into_iter().collect();
        entities::insert_placeholders(self.conn, entities::Table::Contacts, &creating_contacts)
            .await?;
        entities::insert_placeholders(self.conn, entities::Table::Users, &creating_users).await?;
        self.cache.placeholders(creating_contacts, creating_users);
        self.load_contacts(&contacts.into_iter().collect::<Vec<_>>())
            .await?;
        self.blocklists.look_up(self.conn, given_emails).await?;
        let users: Vec<Key> = users.into_iter().collect();
        for (key, record) in entities::lock::<UserRecord>(self.conn, &users).await? {
            self.cache.loaded_user(key, record);
        }
        Ok(())
    }

    /// Locks and caches contacts not cached yet.
    pub(super) async fn load_contacts(&mut self, keys: &[Key]) -> Result<(), StoreError> {
        let missing: Vec<Key> = keys
            .iter()
            .filter(|k| self.cache.cached_contact(k).is_none())
            .cloned()
            .collect();
        let mut emails = Vec::new();
        for (key, record) in entities::lock::<ContactRecord>(self.conn, &missing).await? {
            if let Some(email) = record.held_state().and_then(|c| c.email.clone()) {
                emails.push((key.0.clone(), email));
            }
            self.cache.loaded_contact(key, record);
        }
        self.blocklists.look_up(self.conn, emails).await
    }

    /// Whether `changes` destructive changes of the command in `ctx` may
    /// apply now (counting them if so), locking the tenant's guardrail row
    /// first.
    pub(super) async fn guard(
        &mut self,
        ctx: &Ctx<'_>,
        changes: u64,
    ) -> Result<Verdict, StoreError> {
        if changes > 0 {
            self.guardrail.lock(self.conn, ctx).await?;
        }
        Ok(self.guardrail.admit(ctx, changes))
    }

    /// Writes buffered entity changes, so that queries see them.
    pub(super) async fn flush(&mut self) -> Result<(), StoreError> {
        self.cache.flush(self.conn).await
    }

    /// The end of the batch: entity writes, placeholder cleanup, guardrail
    /// counts, outbox, inbox.
    pub(super) async fn finish(mut self) -> Result<(), StoreError> {
        self.cache.finish(self.conn).await?;
        self.guardrail.record(self.conn).await?;
        outbox::write_outbox_and_inbox(self.conn, &self.outbox, &self.inbox).await
    }

    /// Applies one command: its reply, or why it stopped short of one.
    async fn command(
        &mut self,
        cmd: &Command,
        policies: &Policies,
        limits: &Limits,
        now: OffsetDateTime,
    ) -> Result<Reply, Stop> {
        let tenant = cmd.tenant.as_str();
        let blocklist = self.blocklists.of(tenant);
        let ctx = command_ctx(cmd, policies.for_tenant(tenant), limits, now, &blocklist);
        let command_id = cmd.command_id.as_str();
        #[cfg(feature = "failpoints")]
        super::decide(|| {
            crate::failpoints::before_apply(command_id);
            Ok(())
        })?;
        let mut drafts = Vec::new();
        let applied = match &cmd.body {
            CommandBody::Contact { contact_id, op } => {
                let done = self
                    .contact_command(
                        &ctx,
                        command_id,
                        contact_id,
                        op,
                        cmd.expected_version,
                        &mut drafts,
                    )
                    .await?;
                Applied {
                    outcome: done.outcome,
                    entity: Some(entity(EntityKind::Contact, contact_id, done.version)),
                    items: None,
                }
            }
            CommandBody::Bulk(bulk) => {
                let done = self
                    .bulk_in_savepoint(&ctx, command_id, bulk, &mut drafts)
                    .await?;
                Applied {
                    outcome: done.outcome,
                    entity: None,
                    items: Some(done.items),
                }
            }
            CommandBody::User { user_id, op } => {
                let done = self
                    .user_command(
                        &ctx,
                        command_id,
                        user_id,
                        op,
                        cmd.expected_version,
                        &mut drafts,
                    )
                    .await?;
                Applied {
                    outcome: done.outcome,
                    entity: Some(entity(EntityKind::User, user_id, done.version)),
                    items: None,
                }
            }
            CommandBody::Directory(DirectoryCommand::EmployerUpsert(u)) => {
                self.directory_command(
                    &ctx,
                    command_id,
                    EntityKind::Employer,
                    &u.employer_id,
                    &mut drafts,
                    |current| decide_employer(&ctx, current, u, cmd.expected_version),
                )
                .await?
            }
            CommandBody::Directory(DirectoryCommand::RoleUpsert(u)) => {
                self.directory_command(
                    &ctx,
                    command_id,
                    EntityKind::Role,
                    &u.role_id,
                    &mut drafts,
                    |current| decide_role(&ctx, current, u, cmd.expected_version),
                )
                .await?
            }
            CommandBody::Cancel { command_id: target } => {
                self.cancel(&ctx, target, &mut drafts).await?
            }
        };
        Ok(self.publish(cmd, now, drafts, applied))
    }
}
