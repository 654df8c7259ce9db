//! Applies a batch of deliveries in one transaction, set-based.
//!
//! The batch's entities are locked and loaded with one query per table, the
//! domain decides each command in arrival order against an in-memory copy,
//! and the changes, outbox rows and inbox rows are written back with one
//! statement per table before the commit. A rejection changes nothing but
//! its dead letter, because decisions are only kept when they succeed; an
//! atomic bulk keeps an undo log to roll its contacts back. Rare paths
//! (employer and role upserts, bulk filters, archive's linked users, delete)
//! first flush what is pending, then use ordinary queries.

mod erasure;
mod scheduling;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::AssertUnwindSafe;

use sqlx::PgConnection;
use time::OffsetDateTime;
use tracing::Instrument;

use crate::domain::contact::bulk::{summarize_bulk, BulkCommand, BulkTarget};
use crate::domain::contact::command::ContactOp;
use crate::domain::contact::decide::{
    check_op_against_policy, decide_contact, reevaluate, ContactDecision,
};
use crate::domain::contact::{Activity, ContactRecord};
use crate::domain::decision::Decision;
use crate::domain::directory::{decide_employer, decide_role, DirectoryCommand};
use crate::domain::envelope::{Command, CommandBody, DecodeFailure};
use crate::domain::event::{to_cloud_event, EventDraft, OutboxEvent};
use crate::domain::event::{CommandCancelled, CommandScheduled, EventData, GuardrailTripped};
use crate::domain::guardrail::{Allowance, Verdict};
use crate::domain::ids::CommandId;
use crate::domain::ids::{EntityId, Limits};
use crate::domain::outcome::{
    BulkItem, EntityKind, EntityRef, ErrorCode, Outcome, Rejection, Reply,
};
use crate::domain::policy::TenantPolicy;
use crate::domain::policy::{Policies, Producers};
use crate::domain::privacy::{normalize_email, Blocklist};
use crate::domain::schedule::{due_later, not_cancellable};
use crate::domain::ts::Ts;
use crate::domain::user::command::UserOp;
use crate::domain::user::decide::decide_user;
use crate::domain::user::UserRecord;
use crate::domain::Ctx;
use crate::intake::Inbound;
use crate::privacy::HashKey;
use crate::store::entities::{self, DirectoryEntry};
use crate::store::journal;
use crate::store::schedule::{self, Scheduled};
use crate::store::{guardrail, privacy, replays, StoreError};

/// Decoded and authorised, or refused before touching the database.
#[derive(Debug, Clone)]
pub enum Prepared {
    Command(Box<Command>),
    Refused(DecodeFailure),
}

/// The configuration a batch is judged by.
#[derive(Clone, Copy, Debug)]
pub struct Rules<'a> {
    pub policies: &'a Policies,
    pub producers: &'a Producers,
    pub limits: &'a Limits,
    /// Off for commands an operator releases: they were held once, and
    /// what a release applies does not count toward the window.
    pub guardrail: bool,
    /// The key of the erased-address blocklist.
    pub hash_key: &'a HashKey,
    /// Whether a command whose `effective_at` lies ahead is scheduled:
    /// off when a due command (or a released one) is applied.
    pub schedule: bool,
}

/// What to do with a delivery once its batch committed.
#[derive(Debug)]
// One per delivery, consumed at once: boxing the reply is not worth it.
#[allow(clippy::large_enum_variant)]
pub enum Disposition {
    /// Applied, unchanged, stale, duplicate or dead-lettered: done with it.
    Ack { reply: Reply },
    /// Deciding it panicked: give it back; the delivery limit parks it.
    Requeue,
}

/// What a committed batch produced.
#[derive(Debug)]
pub struct BatchOutcome {
    pub dispositions: Vec<Disposition>,
    pub events: usize,
    /// Commands the batch scheduled: the scheduler may need to wake sooner.
    pub scheduled: usize,
}

type Key = (String, EntityId);

/// The batch's working set and buffered writes.
struct Uow<'c> {
    conn: &'c mut PgConnection,
    contacts: HashMap<Key, ContactRecord>,
    users: HashMap<Key, UserRecord>,
    dirty_contacts: BTreeSet<Key>,
    dirty_users: BTreeSet<Key>,
    /// Rows inserted as lock placeholders for creating upserts.
    contact_placeholders: Vec<Key>,
    user_placeholders: Vec<Key>,
    employers: BTreeSet<Key>,
    activities: Vec<(Key, String, Activity)>,
    outbox: Vec<OutboxEvent>,
    inbox: Vec<(String, String, String, Reply)>,
    /// Replies of commands processed earlier in this batch.
    seen: HashMap<(String, String), Reply>,
    undo: Vec<Undo>,
    /// A bulk is being applied under its savepoint.
    in_bulk: bool,
    /// Whether destructive changes are counted (and held past the allowance).
    guarded: bool,
    /// Tenants whose guardrail row this batch locked, with their allowance.
    allowances: HashMap<String, Allowance>,
    /// Destructive changes this batch applied, per tenant.
    counted: HashMap<String, u64>,
    hash_key: &'c HashKey,
    /// Per tenant, the erased addresses among those looked up.
    blocklists: HashMap<String, Blocklist>,
    /// (tenant, normalised email) pairs looked up already.
    looked_up: HashSet<(String, String)>,
    /// Entities the command being applied erased: their events so far are
    /// scrubbed once published.
    erased: Vec<(String, EntityKind, String)>,
    /// Commands scheduled by this batch.
    scheduled: usize,
}

/// A cache write, for rolling back a refused bulk.
enum Undo {
    Contact(Key, Option<Box<ContactRecord>>, bool),
    User(Key, Option<Box<UserRecord>>, bool),
}

/// Undoes one cache write: the old record back (or none), and the key
/// clean again if the write made it dirty.
fn restore<R>(
    cache: &mut HashMap<Key, R>,
    dirty: &mut BTreeSet<Key>,
    key: Key,
    old: Option<Box<R>>,
    was_dirty: bool,
) {
    if !was_dirty {
        dirty.remove(&key);
    }
    match old {
        Some(r) => cache.insert(key, *r),
        None => cache.remove(&key),
    };
}

/// Buffer lengths and undo position at a point in the batch.
struct Checkpoint {
    undo: usize,
    activities: usize,
    employers: BTreeSet<Key>,
}

/// Applies a batch. With `check_duplicates` false, the inbox lookup is
/// skipped and a duplicate surfaces as [`StoreError::ConcurrentDuplicate`]
/// when the batch records its commands; the caller then retries with the
/// check (first deliveries are rarely duplicates, so this saves a query).
pub async fn apply_batch(
    conn: &mut PgConnection,
    batch: &[(Inbound, Prepared)],
    rules: &Rules<'_>,
    now: OffsetDateTime,
    check_duplicates: bool,
) -> Result<BatchOutcome, StoreError> {
    let commands: Vec<&Command> = batch
        .iter()
        .filter_map(|(_, p)| match p {
            Prepared::Command(c) => Some(c.as_ref()),
            Prepared::Refused(_) => None,
        })
        .collect();
    let mut uow = Uow::new(conn, rules.guardrail, rules.hash_key);
    let processed = if check_duplicates {
        let keys: Vec<(String, String)> = commands
            .iter()
            .map(|c| (c.tenant.to_string(), c.command_id.to_string()))
            .collect();
        journal::processed_replies(uow.conn, &keys).await?
    } else {
        HashMap::new()
    };
    uow.prefetch(&commands).await?;

    let mut dispositions = Vec::with_capacity(batch.len());
    for (msg, prepared) in batch {
        let disposition = match prepared {
            Prepared::Refused(failure) => uow.dead_letter(msg, failure, rules).await?,
            Prepared::Command(cmd) => {
                let key = (cmd.tenant.to_string(), cmd.command_id.to_string());
                match processed.get(&key).or_else(|| uow.seen.get(&key)) {
                    Some(first) => Disposition::Ack {
                        reply: Reply {
                            duplicate: true,
                            ..first.clone()
                        },
                    },
                    None => uow.apply_one(msg, cmd, rules, now).await?,
                }
            }
        };
        // A replay that got an outcome other than a rejection resolves its
        // dead letter (a rejection updated the row already).
        if let Disposition::Ack { reply } = &disposition {
            let replay = msg.replayed && rules.producers.trusts_replay_from(msg.user_id(), true);
            if replay && reply.outcome != Outcome::Rejected {
                let fingerprint = journal::fingerprint(&msg.routing_key, &msg.body_sha256());
                let outcome = if reply.duplicate {
                    format!("{} (duplicate)", reply.outcome.as_str())
                } else {
                    reply.outcome.as_str().to_owned()
                };
                replays::resolve(uow.conn, &fingerprint, &outcome).await?;
            }
        }
        dispositions.push(disposition);
    }
    let (events, scheduled) = (uow.outbox.len(), uow.scheduled);
    uow.finish().await?;
    Ok(BatchOutcome {
        dispositions,
        events,
        scheduled,
    })
}

/// Why a command did not end with a reply to record.
enum Decided {
    /// Held by the guardrail; `trips` when this command tripped it.
    Held {
        trips: bool,
    },
    Rejected(Rejection),
    Panicked(String),
}

impl From<Rejection> for Decided {
    fn from(r: Rejection) -> Self {
        Decided::Rejected(r)
    }
}

/// Runs a pure decision, turning a panic into [`Decided::Panicked`].
fn decide<T>(f: impl FnOnce() -> Result<T, Rejection>) -> Result<T, Decided> {
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r.map_err(Decided::Rejected),
        Err(panic) => Err(Decided::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".to_owned()),
        )),
    }
}

/// The context a command is decided in.
fn command_ctx<'a>(
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

fn entity(kind: EntityKind, id: &EntityId, version: Option<u64>) -> EntityRef {
    EntityRef {
        kind,
        id: id.to_string(),
        version,
    }
}

impl<'c> Uow<'c> {
    fn new(conn: &'c mut PgConnection, guarded: bool, hash_key: &'c HashKey) -> Self {
        Uow {
            conn,
            contacts: HashMap::new(),
            users: HashMap::new(),
            dirty_contacts: BTreeSet::new(),
            dirty_users: BTreeSet::new(),
            contact_placeholders: Vec::new(),
            user_placeholders: Vec::new(),
            employers: BTreeSet::new(),
            activities: Vec::new(),
            outbox: Vec::new(),
            inbox: Vec::new(),
            seen: HashMap::new(),
            undo: Vec::new(),
            in_bulk: false,
            guarded,
            allowances: HashMap::new(),
            counted: HashMap::new(),
            hash_key,
            blocklists: HashMap::new(),
            looked_up: HashSet::new(),
            erased: Vec::new(),
            scheduled: 0,
        }
    }

    /// Applies a command seen for the first time: its reply is recorded in
    /// the inbox, or its rejection in the dead-letter store.
    async fn apply_one(
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
            .await?;
        match result {
            Ok(reply) => {
                span.record("outcome", reply.outcome.as_str());
                tracing::debug!(parent: &span, events = reply.events.len(), "command applied");
                Ok(self.record(cmd, reply))
            }
            Err(Decided::Rejected(rejection)) => {
                self.dead_letter(msg, &cmd.refused(rejection), rules).await
            }
            Err(Decided::Held { trips }) => self.hold(msg, cmd, trips, rules, now).await,
            Err(Decided::Panicked(message)) => {
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
    async fn dead_letter(
        &mut self,
        msg: &Inbound,
        failure: &DecodeFailure,
        rules: &Rules<'_>,
    ) -> Result<Disposition, StoreError> {
        let dead = msg.dead_letter(failure, rules.producers, rules.limits);
        let id = journal::store_dead_letter(self.conn, &dead).await?;
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

    /// Keeps a command the guardrail holds, whole, and records `held` as its
    /// outcome; the command that trips the guardrail also publishes
    /// `GuardrailTripped`.
    async fn hold(
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
            properties: crate::amqp::properties_to_json(&msg.properties),
            exchange: msg.exchange.clone(),
            routing_key: msg.routing_key.clone(),
            held_at: now,
        };
        let hold_id = guardrail::hold(self.conn, &held).await?;
        let policy = rules.policies.for_tenant(tenant);
        let first_event = self.outbox.len();
        if trips {
            let version = guardrail::set_tripped(self.conn, tenant, true).await?;
            let count = self.allowances.get(tenant).map_or(0, |a| a.count);
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
        Ok(self.record(cmd, reply))
    }

    /// Records a command's reply in the inbox (and for duplicates later in
    /// the batch).
    fn record(&mut self, cmd: &Command, reply: Reply) -> Disposition {
        let key = (cmd.tenant.to_string(), cmd.command_id.to_string());
        self.seen.insert(key, reply.clone());
        self.inbox.push((
            cmd.tenant.to_string(),
            cmd.command_id.to_string(),
            cmd.type_name().to_owned(),
            reply.clone(),
        ));
        Disposition::Ack { reply }
    }

    /// Locks and loads every contact and user the batch names directly,
    /// creating lock placeholders for the ones an upsert may create.
    async fn prefetch(&mut self, commands: &[&Command]) -> Result<(), StoreError> {
        // Before any row lock, so that an erasure waiting for its
        // exclusive lock holds no rows a reader of the blocklist waits for.
        privacy::lock_blocklists(self.conn, &erasure::blocklist_locks(commands)).await?;
        let mut contacts = BTreeSet::new();
        let mut users = BTreeSet::new();
        let mut creating_contacts = BTreeSet::new();
        let mut creating_users = BTreeSet::new();
        for c in commands {
            let t = c.tenant.to_string();
            match &c.body {
                CommandBody::Contact { contact_id, op } => {
                    if matches!(op, ContactOp::Upsert(_)) {
                        creating_contacts.insert((t.clone(), contact_id.clone()));
                    }
                    contacts.insert((t, contact_id.clone()));
                }
                CommandBody::Bulk(BulkCommand {
                    target: BulkTarget::Ids(ids),
                    ..
                }) => contacts.extend(ids.iter().map(|id| (t.clone(), id.clone()))),
                CommandBody::User { user_id, op } => {
                    if matches!(op, UserOp::Upsert(_)) {
                        creating_users.insert((t.clone(), user_id.clone()));
                    }
                    users.insert((t, user_id.clone()));
                }
                CommandBody::Bulk(_) | CommandBody::Directory(_) | CommandBody::Cancel { .. } => {}
            }
        }
        let creating_contacts: Vec<Key> = creating_contacts.into_iter().collect();
        let creating_users: Vec<Key> = creating_users.into_iter().collect();
        entities::insert_placeholders(self.conn, entities::Table::Contacts, &creating_contacts)
            .await?;
        entities::insert_placeholders(self.conn, entities::Table::Users, &creating_users).await?;
        self.contact_placeholders = creating_contacts;
        self.user_placeholders = creating_users;
        self.load_contacts(&contacts.into_iter().collect::<Vec<_>>())
            .await?;
        let given: Vec<(String, String)> = commands
            .iter()
            .filter_map(|c| match &c.body {
                CommandBody::Contact {
                    op: ContactOp::Upsert(u),
                    ..
                } => u.email.clone().map(|e| (c.tenant.to_string(), e)),
                _ => None,
            })
            .collect();
        self.look_up(given).await?;
        let users: Vec<Key> = users.into_iter().collect();
        for (key, record) in entities::lock::<UserRecord>(self.conn, &users).await? {
            self.users.insert(key, record);
        }
        Ok(())
    }

    fn contact(&self, key: &Key) -> ContactRecord {
        self.contacts
            .get(key)
            .cloned()
            .unwrap_or(ContactRecord::Absent)
    }

    fn set_contact(&mut self, key: Key, record: ContactRecord) {
        let was_dirty = !self.dirty_contacts.insert(key.clone());
        let old = self.contacts.insert(key.clone(), record);
        self.undo
            .push(Undo::Contact(key, old.map(Box::new), was_dirty));
    }

    fn set_user(&mut self, key: Key, record: UserRecord) {
        let was_dirty = !self.dirty_users.insert(key.clone());
        let old = self.users.insert(key.clone(), record);
        self.undo
            .push(Undo::User(key, old.map(Box::new), was_dirty));
    }

    fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            undo: self.undo.len(),
            activities: self.activities.len(),
            employers: self.employers.clone(),
        }
    }

    fn rollback_to(&mut self, cp: Checkpoint) {
        while self.undo.len() > cp.undo {
            match self.undo.pop() {
                Some(Undo::Contact(key, old, was_dirty)) => restore(
                    &mut self.contacts,
                    &mut self.dirty_contacts,
                    key,
                    old,
                    was_dirty,
                ),
                Some(Undo::User(key, old, was_dirty)) => {
                    restore(&mut self.users, &mut self.dirty_users, key, old, was_dirty)
                }
                None => break,
            }
        }
        self.activities.truncate(cp.activities);
        self.employers = cp.employers;
    }

    /// Writes buffered entity changes, so that queries see them.
    async fn flush(&mut self) -> Result<(), StoreError> {
        let contacts: Vec<(Key, ContactRecord)> = std::mem::take(&mut self.dirty_contacts)
            .into_iter()
            .map(|k| {
                let r = self.contact(&k);
                (k, r)
            })
            .collect();
        entities::save(self.conn, &contacts).await?;
        let users: Vec<(Key, UserRecord)> = std::mem::take(&mut self.dirty_users)
            .into_iter()
            .map(|k| {
                let r = self.users.get(&k).cloned().unwrap_or(UserRecord::Absent);
                (k, r)
            })
            .collect();
        entities::save(self.conn, &users).await?;
        let employers: Vec<Key> = std::mem::take(&mut self.employers).into_iter().collect();
        entities::ensure_employers(self.conn, &employers).await?;
        entities::insert_activities(self.conn, &std::mem::take(&mut self.activities)).await?;
        // Outside a bulk, undo never reaches back past what is written;
        // inside one, the savepoint takes back what this flush wrote.
        if !self.in_bulk {
            self.undo.clear();
        }
        Ok(())
    }

    /// The end of the batch: entity writes, placeholder cleanup, outbox, inbox.
    async fn finish(mut self) -> Result<(), StoreError> {
        self.flush().await?;
        // Placeholders of creations that did not happen (refused upserts).
        let unused: Vec<Key> = self
            .contact_placeholders
            .iter()
            .filter(|k| matches!(self.contacts.get(*k), Some(ContactRecord::Absent)))
            .cloned()
            .collect();
        entities::delete_placeholders(self.conn, entities::Table::Contacts, &unused).await?;
        let unused: Vec<Key> = self
            .user_placeholders
            .iter()
            .filter(|k| matches!(self.users.get(*k), Some(UserRecord::Absent)))
            .cloned()
            .collect();
        entities::delete_placeholders(self.conn, entities::Table::Users, &unused).await?;
        for (tenant, changes) in &self.counted {
            guardrail::record_changes(self.conn, tenant, *changes).await?;
        }
        journal::write_outbox_and_inbox(self.conn, &self.outbox, &self.inbox).await?;
        Ok(())
    }

    /// Applies one command; `Ok(Err(_))` means it is refused or panicked.
    async fn command(
        &mut self,
        cmd: &Command,
        policies: &Policies,
        limits: &Limits,
        now: OffsetDateTime,
    ) -> Result<Result<Reply, Decided>, StoreError> {
        let tenant = cmd.tenant.as_str();
        let blocklist = self.blocklist(tenant);
        let ctx = command_ctx(cmd, policies.for_tenant(tenant), limits, now, &blocklist);
        let command_id = cmd.command_id.as_str();
        #[cfg(feature = "failpoints")]
        if let Err(e) = decide(|| {
            crate::failpoints::before_apply(command_id);
            Ok(())
        }) {
            return Ok(Err(e));
        }
        let mut drafts = Vec::new();
        let decided = match &cmd.body {
            CommandBody::Contact { contact_id, op } => self
                .contact_command(
                    &ctx,
                    command_id,
                    contact_id,
                    op,
                    cmd.expected_version,
                    &mut drafts,
                )
                .await?
                .map(|(o, v, _)| (o, Some(entity(EntityKind::Contact, contact_id, v)), None)),
            CommandBody::Bulk(bulk) => self
                .bulk_in_savepoint(&ctx, command_id, bulk, &mut drafts)
                .await?
                .map(|(o, items)| (o, None, Some(items))),
            CommandBody::User { user_id, op } => self
                .user_command(
                    &ctx,
                    command_id,
                    user_id,
                    op,
                    cmd.expected_version,
                    &mut drafts,
                )
                .await?
                .map(|(o, v)| (o, Some(entity(EntityKind::User, user_id, v)), None)),
            CommandBody::Directory(DirectoryCommand::EmployerUpsert(u)) => self
                .directory_command(
                    &ctx,
                    EntityKind::Employer,
                    &u.employer_id,
                    &mut drafts,
                    |current| decide_employer(&ctx, current, u, cmd.expected_version),
                )
                .await?
                .map(|(o, e)| (o, Some(e), None)),
            CommandBody::Directory(DirectoryCommand::RoleUpsert(u)) => self
                .directory_command(&ctx, EntityKind::Role, &u.role_id, &mut drafts, |current| {
                    decide_role(&ctx, current, u, cmd.expected_version)
                })
                .await?
                .map(|(o, e)| (o, Some(e), None)),
            CommandBody::Cancel { command_id: target } => self
                .cancel(&ctx, target, &mut drafts)
                .await?
                .map(|(o, e)| (o, Some(e), None)),
        };
        Ok(decided.map(|(outcome, entity, items)| {
            self.recorded(cmd, now, drafts, outcome, entity, items)
        }))
    }

    /// Turns a command's decided events into outbox rows and its reply.
    fn recorded(
        &mut self,
        cmd: &Command,
        now: OffsetDateTime,
        drafts: Vec<EventDraft>,
        outcome: Outcome,
        entity: Option<EntityRef>,
        items: Option<Vec<BulkItem>>,
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
            items,
            ..self.reply(cmd, first_event, outcome, entity)
        }
    }

    /// The reply to a command that got `outcome`, naming the events it
    /// added to the outbox from `first_event` on.
    fn reply(
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

    /// A bulk under a savepoint: a refused bulk must leave no trace. Its
    /// items may flush (archive reads linked users), so the database side
    /// is guarded by a savepoint taken when memory and database agree, and
    /// the memory side by the undo log.
    async fn bulk_in_savepoint(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        bulk: &BulkCommand,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<Result<(Outcome, Vec<BulkItem>), Decided>, StoreError> {
        self.flush().await?;
        self.undo.clear();
        // The tenant's guardrail row is locked outside the savepoint, so
        // rolling back a held bulk keeps the lock that its count relies on.
        if bulk.op.may_be_destructive() {
            self.lock_allowance(ctx).await?;
        }
        sqlx::query("SAVEPOINT bulk")
            .execute(&mut *self.conn)
            .await?;
        self.in_bulk = true;
        let cp = self.checkpoint();
        let r = self.bulk_command(ctx, command_id, bulk, drafts).await;
        self.in_bulk = false;
        let r = r?;
        if r.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT bulk")
                .execute(&mut *self.conn)
                .await?;
            self.rollback_to(cp);
            drafts.clear();
        }
        sqlx::query("RELEASE SAVEPOINT bulk")
            .execute(&mut *self.conn)
            .await?;
        Ok(r)
    }

    /// An employer or role upsert: flush what is pending (employers
    /// referenced earlier in the batch), lock the entry, decide, save.
    async fn directory_command<T: DirectoryEntry>(
        &mut self,
        ctx: &Ctx<'_>,
        kind: EntityKind,
        id: &EntityId,
        drafts: &mut Vec<EventDraft>,
        decide_entry: impl FnOnce(Option<&T>) -> Result<Decision<T>, Rejection>,
    ) -> Result<Result<(Outcome, EntityRef), Decided>, StoreError> {
        self.flush().await?;
        let tenant = ctx.tenant.as_str();
        let current = entities::lock_entry::<T>(self.conn, tenant, id).await?;
        let d = match decide(|| decide_entry(current.as_ref())) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(written) = &d.write {
            entities::save_entry(self.conn, tenant, written).await?;
        }
        let version = d.write.as_ref().or(current.as_ref()).map(T::version);
        drafts.extend(d.events);
        Ok(Ok((d.outcome, entity(kind, id, version))))
    }

    /// Whether `changes` destructive changes of the command in `ctx` may
    /// apply now (counting them if so), locking the tenant's guardrail row
    /// first.
    async fn guard(&mut self, ctx: &Ctx<'_>, changes: u64) -> Result<Verdict, StoreError> {
        if changes > 0 && self.guarded && ctx.policy.guardrail.enabled {
            self.lock_allowance(ctx).await?;
        }
        Ok(self.admit(ctx, changes))
    }

    /// Locks the tenant's guardrail row for the rest of the batch.
    async fn lock_allowance(&mut self, ctx: &Ctx<'_>) -> Result<(), StoreError> {
        let tenant = ctx.tenant.as_str();
        if self.guarded && ctx.policy.guardrail.enabled && !self.allowances.contains_key(tenant) {
            let allowance =
                guardrail::lock_allowance(self.conn, tenant, &ctx.policy.guardrail).await?;
            self.allowances.insert(tenant.to_owned(), allowance);
        }
        Ok(())
    }

    /// The guardrail's verdict on an already locked allowance.
    fn admit(&mut self, ctx: &Ctx<'_>, changes: u64) -> Verdict {
        let tenant = ctx.tenant.as_str();
        let Some(allowance) = self.allowances.get_mut(tenant) else {
            return Verdict::Apply;
        };
        let verdict = allowance.admit(changes);
        if verdict == Verdict::Apply && changes > 0 {
            *self.counted.entry(tenant.to_owned()).or_default() += changes;
        }
        verdict
    }

    async fn contact_command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        id: &EntityId,
        op: &ContactOp,
        expected_version: Option<u64>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<Result<(Outcome, Option<u64>, bool), Decided>, StoreError> {
        let key = (ctx.tenant.to_string(), id.clone());
        self.load_contacts(std::slice::from_ref(&key)).await?;
        let record = self.contact(&key);
        let linked_users = match (op, &record) {
            (op, ContactRecord::Live(_)) if op.needs_linked_users() => {
                self.flush().await?;
                let users =
                    entities::lock_users_of_contact(self.conn, ctx.tenant.as_str(), id).await?;
                // What this batch already changed wins over what was read.
                users
                    .into_iter()
                    .map(|u| match self.users.get(&(key.0.clone(), u.id.clone())) {
                        Some(UserRecord::Live(cached)) => cached.clone(),
                        _ => u,
                    })
                    .collect()
            }
            _ => vec![],
        };
        let decision = match decide(|| {
            decide_contact(ctx, id, &record, op, expected_version, &linked_users)
        }) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let version = decision.version_after(&record);
        let outcome = decision.outcome;
        let destructive = decision.destructive(op);
        // A bulk counts its contacts together, once they are all decided.
        if !self.in_bulk {
            if let Verdict::Hold { trips } = self.guard(ctx, u64::from(destructive)).await? {
                return Ok(Err(Decided::Held { trips }));
            }
        }
        self.keep_contact_decision(key, command_id, decision, drafts)
            .await?;
        if outcome == Outcome::Applied {
            match op {
                ContactOp::Erase => {
                    let email = record.held_state().and_then(|c| c.email.clone());
                    self.forget(ctx, command_id, EntityKind::Contact, id, email, drafts)
                        .await?;
                }
                ContactOp::ConfirmConsent => {
                    if let Some(email) = record.live().and_then(|c| c.email.as_deref()) {
                        self.consent(ctx, command_id, id, email, drafts).await?;
                    }
                }
                _ => {}
            }
        }
        Ok(Ok((outcome, version, destructive)))
    }

    async fn keep_contact_decision(
        &mut self,
        key: Key,
        command_id: &str,
        d: ContactDecision,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        if d.erase_activity {
            // Activity logged earlier in the batch must be erased too.
            self.flush().await?;
            entities::erase_activity(self.conn, &key.0, &key.1).await?;
        }
        for user in d.users {
            self.set_user((key.0.clone(), user.id.clone()), UserRecord::Live(user));
        }
        if let Some(a) = d.activity {
            self.activities
                .push((key.clone(), command_id.to_owned(), a));
        }
        self.employers
            .extend(d.ensure_employers.into_iter().map(|e| (key.0.clone(), e)));
        if let Some(record) = d.write {
            self.set_contact(key, record);
        }
        drafts.extend(d.events);
        Ok(())
    }

    async fn bulk_command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        bulk: &BulkCommand,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<Result<(Outcome, Vec<BulkItem>), Decided>, StoreError> {
        let tenant = ctx.tenant.as_str();
        if let Err(r) = check_op_against_policy(ctx.policy, &bulk.op) {
            return Ok(Err(r.into()));
        }
        let ids = match &bulk.target {
            BulkTarget::Ids(ids) => ids.clone(),
            BulkTarget::Employer(e) => {
                self.flush().await?;
                if !entities::employer_exists(self.conn, tenant, e).await? {
                    return Ok(Err(Rejection::new(
                        ErrorCode::EmployerNotFound,
                        format!("employer `{e}` in payload.filter does not exist"),
                    )
                    .into()));
                }
                let ids = entities::contacts_of_employer(self.conn, tenant, e).await?;
                if ids.len() > ctx.limits.max_bulk_ids {
                    return Ok(Err(Rejection::invalid(format!(
                        "payload.filter matches {} contacts, more than the limit of {} (limits.max_bulk_ids)",
                        ids.len(),
                        ctx.limits.max_bulk_ids
                    ))
                    .into()));
                }
                ids
            }
        };
        let keys: Vec<Key> = ids
            .iter()
            .map(|id| (tenant.to_owned(), id.clone()))
            .collect();
        self.load_contacts(&keys).await?;
        // The filter's contacts were looked up just now.
        let blocklist = self.blocklist(tenant);
        let ctx = &Ctx {
            blocklist: &blocklist,
            ..*ctx
        };
        let mut items = Vec::with_capacity(ids.len());
        let mut destructive = 0;
        for id in &ids {
            match self
                .contact_command(ctx, command_id, id, &bulk.op, None, drafts)
                .await?
            {
                Ok((outcome, version, counts)) => {
                    destructive += u64::from(counts);
                    items.push(BulkItem {
                        contact_id: id.to_string(),
                        outcome,
                        version,
                        error: None,
                    })
                }
                Err(Decided::Rejected(r)) if bulk.atomic => {
                    return Ok(Err(Rejection::new(
                        r.code,
                        format!("atomic bulk rolled back: contact `{id}`: {}", r.message),
                    )
                    .into()))
                }
                Err(Decided::Rejected(r)) => items.push(BulkItem {
                    contact_id: id.to_string(),
                    outcome: Outcome::Rejected,
                    version: None,
                    error: Some(r.into()),
                }),
                Err(other @ (Decided::Panicked(_) | Decided::Held { .. })) => {
                    return Ok(Err(other))
                }
            }
        }
        let outcome = match summarize_bulk(&items) {
            Ok(o) => o,
            Err(r) => return Ok(Err(r.into())),
        };
        // Held as a whole when its changes would exceed what is left.
        if let Verdict::Hold { trips } = self.admit(ctx, destructive) {
            return Ok(Err(Decided::Held { trips }));
        }
        Ok(Ok((outcome, items)))
    }

    async fn user_command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        id: &EntityId,
        op: &UserOp,
        expected_version: Option<u64>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<Result<(Outcome, Option<u64>), Decided>, StoreError> {
        let tenant = ctx.tenant.as_str();
        let role_exists = match op.role_named() {
            Some(r) => entities::role_exists(self.conn, tenant, r).await?,
            None => true,
        };
        let key = (tenant.to_owned(), id.clone());
        let record = self.users.get(&key).cloned().unwrap_or(UserRecord::Absent);
        let d = match decide(|| decide_user(ctx, id, &record, op, expected_version, role_exists)) {
            Ok(d) => d,
            Err(e) => return Ok(Err(e)),
        };
        let destructive = d.outcome == Outcome::Applied && op.kind().destructive();
        if let Verdict::Hold { trips } = self.guard(ctx, u64::from(destructive)).await? {
            return Ok(Err(Decided::Held { trips }));
        }
        let version = match d.write.as_ref().unwrap_or(&record) {
            UserRecord::Live(u) => Some(u.version),
            UserRecord::Deleted { .. } | UserRecord::Absent => None,
        };
        self.employers.extend(
            d.ensure_employers
                .into_iter()
                .map(|e| (tenant.to_owned(), e)),
        );
        if let Some(w) = d.write {
            self.set_user(key, w);
        }
        drafts.extend(d.events);
        if let (UserOp::Erase, Outcome::Applied) = (op, d.outcome) {
            let email = record.held_state().map(|u| u.email.clone());
            self.forget(ctx, command_id, EntityKind::User, id, email, drafts)
                .await?;
        }
        Ok(Ok((d.outcome, version)))
    }
}
