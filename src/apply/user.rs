//! A user command in the batch.

use super::batch::Batch;
use super::{decide, Stop};
use crate::domain::event::EventDraft;
use crate::domain::guardrail::Verdict;
use crate::domain::ids::EntityId;
use crate::domain::outcome::Outcome;
use crate::domain::user::command::UserOp;
use crate::domain::user::decide::decide_user;
use crate::domain::user::UserRecord;
use crate::domain::Ctx;
use crate::store::entities;

/// A user command applied.
pub(super) struct UserDone {
    pub(super) outcome: Outcome,
    /// The user's version after it; `None` when it does not exist.
    pub(super) version: Option<u64>,
}

impl Batch<'_> {
    pub(super) async fn user_command(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        id: &EntityId,
        op: &UserOp,
        expected_version: Option<u64>,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<UserDone, Stop> {
        let tenant = ctx.tenant.as_str();
        let role_exists = match op.role_named() {
            Some(r) => entities::role_exists(self.conn, tenant, r).await?,
            None => true,
        };
        let key = (tenant.to_owned(), id.clone());
        let record = self.cache.user(&key);
        let d = decide(|| decide_user(ctx, id, &record, op, expected_version, role_exists))?;
        let destructive = op
            .kind()
            .destructive()
            .counts(d.outcome == Outcome::Applied, false);
        if let Verdict::Hold { trips } = self.guard(ctx, u64::from(destructive)).await? {
            return Err(Stop::Held { trips });
        }
        let version = match d.write.as_ref().unwrap_or(&record) {
            UserRecord::Live(u) => Some(u.version),
            UserRecord::Deleted { .. } | UserRecord::Absent => None,
        };
        if let Some(w) = d.write {
            self.cache.set_user(key.clone(), w);
        }
        drafts.extend(d.events);
        for effect in d.effects {
            self.execute(ctx, &key, command_id, effect, drafts).await?;
        }
        Ok(UserDone {
            outcome: d.outcome,
            version,
        })
    }
}
