//! What a decision does beyond its own record ([`Effect`]), executed with
//! one exhaustive match: a new kind of effect is a compile error here.

use super::batch::Batch;
use super::Key;
use crate::domain::effect::Effect;
use crate::domain::event::EventDraft;
use crate::domain::user::UserRecord;
use crate::domain::Ctx;
use crate::store::{entities, StoreError};

impl Batch<'_> {
    /// Executes one effect of the command in `ctx` on the entity `key`.
    pub(super) async fn execute(
        &mut self,
        ctx: &Ctx<'_>,
        key: &Key,
        command_id: &str,
        effect: Effect,
        drafts: &mut Vec<EventDraft>,
    ) -> Result<(), StoreError> {
        let tenant = &key.0;
        match effect {
            Effect::EraseActivity => {
                // Activity logged earlier in the batch must be erased too.
                self.flush().await?;
                entities::erase_activity(self.conn, tenant, &key.1).await
            }
            Effect::SaveLinkedUsers(users) => {
                for user in users {
                    self.cache
                        .set_user((tenant.clone(), user.id.clone()), UserRecord::Live(user));
                }
                Ok(())
            }
            Effect::LogActivity(activity) => {
                self.cache.log_activity(key.clone(), command_id, activity);
                Ok(())
            }
            Effect::EnsureEmployers(ids) => {
                self.cache
                    .ensure_employers(ids.into_iter().map(|e| (tenant.clone(), e)));
                Ok(())
            }
            // Boxed: both re-decide other contacts, whose decisions have
            // effects of their own.
            Effect::Forget { kind, email } => {
                Box::pin(self.forget(ctx, command_id, kind, &key.1, email, drafts)).await
            }
            Effect::Consent { email } => {
                Box::pin(self.consent(ctx, command_id, &key.1, &email, drafts)).await
            }
        }
    }
}
