//! The batch's side of the mass-change guardrail (contract section 10):
//! counting destructive changes against each tenant's allowance.

use std::collections::HashMap;

use crate::domain::guardrail::{Allowance, Verdict};
use crate::domain::Ctx;
use crate::store::{guardrail, StoreError};
use sqlx::PgConnection;

/// The guardrail's state in one batch.
pub(super) struct Guardrail {
    /// Whether destructive changes are counted (and held past the allowance).
    guarded: bool,
    /// Tenants whose guardrail row this batch locked, with their allowance.
    allowances: HashMap<String, Allowance>,
    /// Destructive changes this batch applied, per tenant.
    counted: HashMap<String, u64>,
}

impl Guardrail {
    pub(super) fn new(guarded: bool) -> Self {
        Guardrail {
            guarded,
            allowances: HashMap::new(),
            counted: HashMap::new(),
        }
    }

    /// The guardrail's verdict on an already locked allowance.
    pub(super) fn admit(&mut self, ctx: &Ctx<'_>, changes: u64) -> Verdict {
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

    /// Locks the tenant's guardrail row for the rest of the batch (when it
    /// is counted at all).
    pub(super) async fn lock(
        &mut self,
        conn: &mut PgConnection,
        ctx: &Ctx<'_>,
    ) -> Result<(), StoreError> {
        let tenant = ctx.tenant.as_str();
        if self.guarded && ctx.policy.guardrail.enabled && !self.allowances.contains_key(tenant) {
            let allowance = guardrail::lock_allowance(conn, tenant, &ctx.policy.guardrail).await?;
            self.allowances.insert(tenant.to_owned(), allowance);
        }
        Ok(())
    }

    /// How many changes the tenant's window counts so far.
    pub(super) fn count(&self, tenant: &str) -> u64 {
        self.allowances.get(tenant).map_or(0, |a| a.count)
    }

    /// At the end of the batch: what it counted, per tenant.
    pub(super) async fn record(&self, conn: &mut PgConnection) -> Result<(), StoreError> {
        for (tenant, changes) in &self.counted {
            guardrail::record_changes(conn, tenant, *changes).await?;
        }
        Ok(())
    }
}
