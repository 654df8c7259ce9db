//! An employer or role upsert in the batch.

use super::batch::Batch;
use super::{decide, entity, Applied, Stop};
use crate::domain::decision::Decision;
use crate::domain::event::EventDraft;
use crate::domain::ids::EntityId;
use crate::domain::outcome::{EntityKind, Rejection};
use crate::domain::Ctx;
use crate::store::entities::{self, DirectoryEntry};

impl Batch<'_> {
    /// An employer or role upsert: flush what is pending (employers
    /// referenced earlier in the batch), lock the entry, decide, save.
    pub(super) async fn directory_command<T: DirectoryEntry>(
        &mut self,
        ctx: &Ctx<'_>,
        command_id: &str,
        kind: EntityKind,
        id: &EntityId,
        drafts: &mut Vec<EventDraft>,
        decide_entry: impl FnOnce(Option<&T>) -> Result<Decision<T>, Rejection>,
    ) -> Result<Applied, Stop> {
        self.flush().await?;
        let tenant = ctx.tenant.as_str();
        let current = entities::lock_entry::<T>(self.conn, tenant, id).await?;
        let d = decide(|| decide_entry(current.as_ref()))?;
        if let Some(written) = &d.write {
            entities::save_entry(self.conn, tenant, written).await?;
        }
        let version = d.write.as_ref().or(current.as_ref()).map(T::version);
        drafts.extend(d.events);
        let key = (tenant.to_owned(), id.clone());
        for effect in d.effects {
            self.execute(ctx, &key, command_id, effect, drafts).await?;
        }
        Ok(Applied {
            outcome: d.outcome,
            entity: Some(entity(kind, id, version)),
            items: None,
        })
    }
}
