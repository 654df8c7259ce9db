//! A contact command in the batch, and a bulk of them under a savepoint.

use super::batch::Batch;
use super::{decide, Key, Stop};
use crate::domain::contact::bulk::{summarize_bulk, BulkCommand, BulkTarget};
use crate::domain::contact::command::ContactOp;
use crate::domain::contact::decide::{check_op_against_policy, decide_contact, ContactDecision};
use crate::domain::contact::ContactRecord;
use crate::domain::event::EventDraft;
use crate::domain::guardrail::Verdict;
use crate::domain::ids::EntityId;
use crate::domain::outcome::{BulkItem, ErrorCode, Outcome, Rejection};
use crate::domain::user::UserRecord;
use crate::domain::Ctx;
use crate::store::{entities, StoreError};

/// A contact command applied.
pub(super) struct ContactDone {
    pub(super) outcome: Outcome,
    /// The contact's version after it; `None` when it does not exist.
    pub(super) version: Option<u64>,
    /// Whether it counts toward the guardrail.
    pub(super) destructive: bool,
}

/// A bulk applied: its outcome and one item per contact.
pub(super) struct BulkDone {
    pub(super) outcome: Outcome,
    pub(super) items: Vec<BulkItem>,
}

impl Batch<'_> {
    pub(super) async fn contact_command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        id: &EntityId,
        op: &ContactOp,
        expected_version: Option<u64>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<ContactDone, Stop> {
        let key = (ctx.tenant.to_string(), id.clone());
        self.load_contacts(std::slice::from_ref(&key)).await?;
        let record = self.cache.contact(&key);
        let linked_users = match &record {
            ContactRecord::Live(_) if op.needs_linked_users() => {
                self.flush().await?;
                let users =
                    entities::lock_users_of_contact(self.conn, ctx.tenant.as_str(), id).await?;
                // What this batch already changed wins over what was read.
                users
                    .into_iter()
                    .map(
                        |u| match self.cache.cached_user(&(key.0.clone(), u.id.clone())) {
                            Some(UserRecord::Live(cached)) => cached.clone(),
                            Some(UserRecord::Deleted { .. } | UserRecord::Absent) | None => u,
                        },
                    )
                    .collect()
            }
            ContactRecord::Live(_) | ContactRecord::Deleted { .. } | ContactRecord::Absent => {
                vec![]
            }
        };
        let decision =
            decide(|| decide_contact(ctx, id, &record, op, expected_version, &linked_users))?;
        let version = decision.version_after(&record);
        let outcome = decision.outcome;
        let destructive = decision.destructive(op);
        // A bulk counts its contacts together, once they are all decided.
        if !self.cache.in_bulk {
            if let Verdict::Hold { trips } = self.guard(ctx, u64::from(destructive)).await? {
                return Err(Stop::Held { trips });
            }
        }
        self.keep_contact_decision(ctx, key, command_id, decision, drafts)
            .await?;
        Ok(ContactDone {
            outcome,
            version,
            destructive,
        })
    }

    /// Keeps a decision: the contact's record, its events, then its effects.
    pub(super) async fn keep_contact_decision(
        &mut self,
        ctx: &Ctx<'_>,
        key: Key,
        command_id: &str,
        d: ContactDecision,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        if let Some(record) = d.write {
            self.cache.set_contact(key.clone(), record);
        }
        drafts.extend(d.events);
        for effect in d.effects {
            self.execute(ctx, &key, command_id, effect, drafts).await?;
        }
        Ok(())
    }

    /// A bulk under a savepoint: a refused bulk must leave no trace. Its
    /// items may flush (archive reads linked users), so the database side
    /// is guarded by a savepoint taken when memory and database agree, and
    /// the memory side by the undo log.
    pub(super) async fn bulk_in_savepoint(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        bulk: &BulkCommand,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<BulkDone, Stop> {
        self.flush().await?;
        self.cache.forget_undo();
        // The tenant's guardrail row is locked outside the savepoint, so
        // rolling back a held bulk keeps the lock that its count relies on.
        if bulk.op.kind().destructive().may_count() {
            self.guardrail.lock(self.conn, ctx).await?;
        }
        sqlx::query("SAVEPOINT bulk")
            .execute(&mut *self.conn)
            .await
            .map_err(StoreError::from)?;
        self.cache.in_bulk = true;
        let cp = self.cache.checkpoint();
        let r = self.bulk_command(ctx, command_id, bulk, drafts).await;
        self.cache.in_bulk = false;
        if let Err(Stop::Store(e)) = r {
            return Err(Stop::Store(e));
        }
        if r.is_err() {
            sqlx::query("ROLLBACK TO SAVEPOINT bulk")
                .execute(&mut *self.conn)
                .await
                .map_err(StoreError::from)?;
            self.cache.rollback_to(cp);
            drafts.clear();
        }
        sqlx::query("RELEASE SAVEPOINT bulk")
            .execute(&mut *self.conn)
            .await
            .map_err(StoreError::from)?;
        r
    }

    async fn bulk_command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        bulk: &BulkCommand,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<BulkDone, Stop> {
        let tenant = ctx.tenant.as_str();
        check_op_against_policy(ctx.policy, &bulk.op)?;
        let ids = match &bulk.target {
            BulkTarget::Ids(ids) => ids.clone(),
            BulkTarget::Employer(e) => {
                self.flush().await?;
                if !entities::employer_exists(self.conn, tenant, e).await? {
                    return Err(Rejection::new(
                        ErrorCode::EmployerNotFound,
                        format!("employer `{e}` in payload.filter does not exist"),
                    )
                    .into());
                }
                let ids = entities::contacts_of_employer(self.conn, tenant, e).await?;
                if ids.len() > ctx.limits.max_bulk_ids {
                    return Err(Rejection::invalid(format!(
                        "payload.filter matches {} contacts, more than the limit of {} (limits.max_bulk_ids)",
                        ids.len(),
                        ctx.limits.max_bulk_ids
                    ))
                    .into());
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
        let blocklist = self.blocklists.of(tenant);
        let ctx = &Ctx {
            blocklist: &blocklist,
            ..*ctx
        };
        let mut items = Vec::with_capacity(ids.len());
        let mut destructive = 0;
        for id in &ids {
            match self
                .contact_command(ctx, command_id, id, &bulk.op, None, drafts)
                .await
            {
                Ok(done) => {
                    destructive += u64::from(done.destructive);
                    items.push(BulkItem {
                        contact_id: id.to_string(),
                        outcome: done.outcome,
                        version: done.version,
                        error: None,
                    })
                }
                Err(Stop::Rejected(r)) if bulk.atomic => {
                    return Err(Rejection::new(
                        r.code,
                        format!("atomic bulk rolled back: contact `{id}`: {}", r.message),
                    )
                    .into())
                }
                Err(Stop::Rejected(r)) => items.push(BulkItem {
                    contact_id: id.to_string(),
                    outcome: Outcome::Rejected,
                    version: None,
                    error: Some(r.into()),
                }),
                Err(other @ (Stop::Panicked(_) | Stop::Held { .. } | Stop::Store(_))) => {
                    return Err(other)
                }
            }
        }
        let outcome = summarize_bulk(&items)?;
        // Held as a whole when its changes would exceed what is left.
        if let Verdict::Hold { trips } = self.guardrail.admit(ctx, destructive) {
            return Err(Stop::Held { trips });
        }
        Ok(BulkDone { outcome, items })
    }
}
