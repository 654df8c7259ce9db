//! The batch's side of the erased-address blocklist (contract section 11):
//! the locks it takes and what it has looked up.

use std::collections::{HashMap, HashSet};

use sqlx::PgConnection;

use crate::domain::blocklist::{normalize_email, Blocklist};
use crate::domain::envelope::Command;
use crate::domain::kinds::BlocklistLock;
use crate::hash_key::HashKey;
use crate::store::{erasure, StoreError};

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

    /// Finds which of the (tenant, email) pairs not looked up yet are on
    /// the blocklist (the batch holds the tenants' blocklist locks).
    pub(super) async fn look_up(
        &mut self,
        conn: &mut PgConnection,
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
        for i in erasure::erased_among(conn, &entries).await? {
            let (tenant, email) = &fresh[i];
            self.blocklists
                .entry(tenant.clone())
                .or_default()
                .add(email);
        }
        Ok(())
    }

    /// The address's key on the stored blocklist.
    pub(super) fn hmac(&self, tenant: &str, email: &str) -> Vec<u8> {
        self.hash_key.email_hmac(tenant, email)
    }

    /// The address is on the tenant's blocklist now.
    pub(super) fn add(&mut self, tenant: &str, email: &str) {
        self.blocklists
            .entry(tenant.to_owned())
            .or_default()
            .add(email);
    }

    /// The address is off the tenant's blocklist now.
    pub(super) fn remove(&mut self, tenant: &str, email: &str) {
        if let Some(list) = self.blocklists.get_mut(tenant) {
            list.remove(email);
        }
    }

    /// The tenant's erased addresses known to the batch.
    pub(super) fn of(&self, tenant: &str) -> Blocklist {
        self.blocklists.get(tenant).cloned().unwrap_or_default()
    }
}
