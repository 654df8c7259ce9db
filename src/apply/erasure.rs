//! The batch's side of erasure and the erased-address blocklist (contract
//! section 11): the blocklist locks and lookups, and what an erasure or a
//! consent changes beyond its own entity.

use super::*;

/// The blocklist locks a batch takes: shared for each tenant whose
/// contacts it touches, exclusive for each tenant where it may erase or
/// confirm consent.
pub(super) fn blocklist_locks(commands: &[&Command]) -> Vec<(String, bool)> {
    commands
        .iter()
        .filter_map(|c| {
            let exclusive = match &c.body {
                CommandBody::Contact { op, .. } => {
                    matches!(op, ContactOp::Erase | ContactOp::ConfirmConsent)
                }
                CommandBody::User {
                    op: UserOp::Erase, ..
                } => true,
                CommandBody::Bulk(_) => false,
                CommandBody::User { .. }
                | CommandBody::Directory(_)
                | CommandBody::Cancel { .. } => return None,
            };
            Some((c.tenant.to_string(), exclusive))
        })
        .collect()
}

impl Uow<'_> {
    /// Locks and caches contacts not cached yet.
    pub(super) async fn load_contacts(&mut self, keys: &[Key]) -> Result<(), StoreError> {
        let missing: Vec<Key> = keys
            .iter()
            .filter(|k| !self.contacts.contains_key(*k))
            .cloned()
            .collect();
        let mut emails = Vec::new();
        for (key, record) in entities::lock::<ContactRecord>(self.conn, &missing).await? {
            if let Some(email) = record.held_state().and_then(|c| c.email.clone()) {
                emails.push((key.0.clone(), email));
            }
            self.contacts.insert(key, record);
        }
        self.look_up(emails).await
    }
    /// Finds which of the (tenant, email) pairs not looked up yet are on
    /// the blocklist (the batch holds the tenants' blocklist locks).
    pub(super) async fn look_up(
        &mut self,
        emails: Vec<(String, String)>,
    ) -> Result<(), StoreError> {
        let fresh: Vec<(String, String)> = emails
            .into_iter()
            .map(|(t, e)| (t, normalize_email(&e)))
            .filter(|pair| self.looked_up.insert(pair.clone()))
            .collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let entries: Vec<(String, Vec<u8>)> = fresh
            .iter()
            .map(|(t, e)| (t.clone(), self.hash_key.email_hmac(t, e)))
            .collect();
        for i in privacy::erased_among(self.conn, &entries).await? {
            let (tenant, email) = &fresh[i];
            self.blocklists
                .entry(tenant.clone())
                .or_default()
                .add(email);
        }
        Ok(())
    }
    /// The tenant's erased addresses known to the batch.
    pub(super) fn blocklist(&self, tenant: &str) -> Blocklist {
        self.blocklists.get(tenant).cloned().unwrap_or_default()
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
        let scrubbed = privacy::scrub(self.conn, tenant, kind, id).await?;
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
        privacy::add_erased(self.conn, tenant, &self.hash_key.email_hmac(tenant, &email)).await?;
        self.blocklists
            .entry(tenant.to_owned())
            .or_default()
            .add(&email);
        let except = (kind == EntityKind::Contact).then_some(id);
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
        privacy::remove_erased(self.conn, tenant, &self.hash_key.email_hmac(tenant, email)).await?;
        if let Some(list) = self.blocklists.get_mut(tenant) {
            list.remove(email);
        }
        self.reevaluate_contacts(ctx, command_id, email, Some(id), drafts)
            .await
    }
    /// Re-decides the suppression of the tenant's live contacts with
    /// `email` (but `except`) under the batch's blocklist.
    pub(super) async fn reevaluate_contacts(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        email: &str,
        except: Option<&EntityId>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        let tenant = ctx.tenant.as_str();
        self.flush().await?;
        let keys: Vec<Key> = privacy::contacts_with_email(self.conn, tenant, email)
            .await?
            .into_iter()
            .filter(|c| Some(c) != except)
            .map(|c| (tenant.to_owned(), c))
            .collect();
        self.load_contacts(&keys).await?;
        let blocklist = self.blocklist(tenant);
        let ctx = Ctx {
            blocklist: &blocklist,
            ..*ctx
        };
        let address = normalize_email(email);
        for key in keys {
            let ContactRecord::Live(contact) = self.contact(&key) else {
                continue;
            };
            if contact.email.as_deref().map(normalize_email) != Some(address.clone()) {
                continue;
            }
            if let Some(d) = reevaluate(&ctx, &contact) {
                self.keep_contact_decision(key, command_id, d, drafts)
                    .await?;
            }
        }
        Ok(())
    }
}
