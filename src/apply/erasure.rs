//! What an erasure or a consent changes beyond its own entity (contract
//! section 11): the entity's other traces scrubbed, the address on or off
//! the blocklist, the tenant's other contacts with it re-decided.

use super::batch::Batch;
use super::Key;
use crate::domain::blocklist::normalize_email;
use crate::domain::contact::decide::reevaluate;
use crate::domain::contact::ContactRecord;
use crate::domain::event::EventDraft;
use crate::domain::ids::EntityId;
use crate::domain::outcome::EntityKind;
use crate::domain::Ctx;
use crate::store::{erasure, schedule, StoreError};

impl Batch<'_> {
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
        let hmac = self.blocklists.hmac(tenant, &email);
        erasure::add_erased(self.conn, tenant, &hmac).await?;
        self.blocklists.add(tenant, &email);
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
        let hmac = self.blocklists.hmac(tenant, email);
        erasure::remove_erased(self.conn, tenant, &hmac).await?;
        self.blocklists.remove(tenant, email);
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
