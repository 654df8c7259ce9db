//! The batch's side of erasure and the erased-address blocklist (contract
//! section 11): the blocklist locks and lookups, and what an erasure or a
//! consent changes beyond its own entity.

use std::collections::{HashMap, HashSet};

use super::batch::Batch;
use super::Key;
use crate::domain::blocklist::{normalize_email, Blocklist};
use crate::domain::contact::decide::reevaluate;
use crate::domain::contact::ContactRecord;
use crate::domain::envelope::Command;
use crate::domain::event::EventDraft;
use crate::domain::ids::EntityId;
use crate::domain::kinds::BlocklistLock;
use crate::domain::outcome::EntityKind;
use crate::domain::Ctx;
use crate::hash_key::HashKey;
use crate::store::{entities, erasure, schedule, StoreError};

/// The blocklist locks a batch takes: shared for each tenant whose
/// contacts it touches, exclusive for each tenant where it may erase or
/// confirm consent.
pub(super) fn blocklist_locks(commands: &[&Command]) -> Vec<(String, bool)> {
    commands
        .iter()
        .filter_map(|c| {
            let exclusive = match c.command_type().blocklist() {
                BlocklistLock::Unneeded => return None,
                BlocklistLock::Shared => false,
                BlocklistLock::Exclusive => true,
            };
            Some((c.tenant.to_string(), exclusive))
        })
        .collect()
}

/// What the batch knows of the tenants' blocklists.
pub(super) struct BlocklistWork<'k> {
    hash_key: &'k HashKey,
    /// Per tenant, the erased addresses among those looked up.
    blocklists: HashMap<String, Blocklist>,
    /// (tenant, normalised email) pairs looked up already.
    looked_up: HashSet<(String, String)>,
}

impl<'k> BlocklistWork<'k> {
    pub(super) fn new(hash_key: &'k HashKey) -> Self {
        BlocklistWork {
            hash_key,
            blocklists: HashMap::new(),
            looked_up: HashSet::new(),
        }
    }

    /// The tenant's erased addresses known to the batch.
    pub(super) fn of(&self, tenant: &str) -> Blocklist {
        self.blocklists.get(tenant).cloned().unwrap_or_default()
    }
}

impl Batch<'_> {
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
        self.look_up(emails).await
    }

    /// Finds which of the (tenant, email) pairs not looked up yet are on
    /// the blocklist (the batch holds the tenants' blocklist locks).
    pub(super) async fn look_up(
        &mut self,
        emails: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let work = &mut self.blocklists;
        let fresh: Vec<(String, String)> = emails
            .into_iter()
            .map(|(t, e)| (t, normalize_email(&e)))
            .filter(|pair| work.looked_up.insert(pair.clone()))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let entries: Vec<(String, Vec<u8>)> = fresh
            .iter()
            .map(|(t, e)| (t.clone(), work.hash_key.email_hmac(t, e)))
            .collect();
        for i in erasure::erased_among(self.conn, &entries).await? {
            let (tenant, email) = &fresh[i];
            work.blocklists
                .entry(tenant.clone())
                .or_default()
                .add(email);
        }
        Ok(())
    }

    /// After an erasure: scrubs what else the worker keeps of the entity,
    /// puts its address on the blocklist and suppresses the tenant's other
    /// contacts with it.
    pub(super) async fn forget(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        kind: EntityKind,
        id: &EntityId,
        email: Option<String>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        let tenant = ctx.tenant.as_str();
        self.flush().await?;
        let scrubbed = erasure::scrub(self.conn, tenant, kind, id).await?;
        let unscheduled =
            schedule::forget_entity(self.conn, tenant, kind.as_str(), id.as_str()).await?;
        tracing::info!(
            tenant,
            kind = kind.as_str(),
            dead_letters = scrubbed.dead_letters,
            held = scrubbed.held,
            outbox = scrubbed.outbox,
            scheduled = unscheduled,
            "erased"
        );
        self.erased.push((tenant.to_owned(), kind, id.to_string()));
        let Some(email) = email else {
            return Ok(());
        };
        let hmac = self.blocklists.hash_key.email_hmac(tenant, &email);
        erasure::add_erased(self.conn, tenant, &hmac).await?;
        self.blocklists
            .blocklists
            .entry(tenant.to_owned())
            .or_default()
            .add(&email);
        let except = match kind {
            EntityKind::Contact => Some(id),
            EntityKind::User
            | EntityKind::Employer
            | EntityKind::Role
            | EntityKind::Tenant
            | EntityKind::Command => None,
        };
        self.reevaluate_contacts(ctx, command_id, &email, except, drafts)
            .await
    }

    /// After a consent: the address leaves the blocklist, and the tenant's
    /// other contacts with it are unsuppressed unless something else
    /// suppresses them.
    pub(super) async fn consent(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        id: &EntityId,
        email: &str,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        let tenant = ctx.tenant.as_str();
        let hmac = self.blocklists.hash_key.email_hmac(tenant, email);
        erasure::remove_erased(self.conn, tenant, &hmac).await?;
        if let Some(list) = self.blocklists.blocklists.get_mut(tenant) {
            list.remove(email);
        }
        self.reevaluate_contacts(ctx, command_id, email, Some(id), drafts)
            .await
    }

    /// Re-decides the suppression of the tenant's live contacts with
    /// `email` (but `except`) under the batch's blocklist.
    async fn reevaluate_contacts(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        email: &str,
        except: Option<&EntityId>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        let tenant = ctx.tenant.as_str();
        self.flush().await?;
        let keys: Vec<Key> = erasure::contacts_with_email(self.conn, tenant, email)
            .await?
            .into_iter()
            .filter(|c| Some(c) != except)
            .map(|c| (tenant.to_owned(), c))
            .collect();
        self.load_contacts(&keys).await?;
        let blocklist = self.blocklists.of(tenant);
        let ctx = Ctx {
            blocklist: &blocklist,
            ..*ctx
        };
        let address = normalize_email(email);
        for key in keys {
            let ContactRecord::Live(contact) = self.cache.contact(&key) else {
                continue;
            };
            if contact.email.as_deref().map(normalize_email) != Some(address.clone()) {
                continue;
            }
            if let Some(d) = reevaluate(&ctx, &contact) {
                self.keep_contact_decision(&ctx, key, command_id, d, drafts)
                    .await?;
            }
        }
        Ok(())
    }
}
