//! What operators do with the mass-change guardrail (contract section 10):
//! release held commands (each applied once, in the order held, judged by
//! its own `issued_at` and authorised as its producer) or discard them into
//! the dead-letter store; and cancel a scheduled command as an operator.
//! The CLI and the console call these.

use crate::store::{dead_letters, outbox};
use sqlx::{PgConnection, PgPool};
use time::OffsetDateTime;

use crate::apply::{apply_batch, Disposition, Rules};
use crate::config::Settings;
use crate::domain::event::{to_cloud_event, EventData, EventDraft, GuardrailReleased};
use crate::domain::ids::{CommandId, EntityId, TenantId};
use crate::domain::outcome::{EntityRef, ErrorCode, Outcome, Rejection};
use crate::domain::Ctx;
use crate::hash_key::{HashKey, KeyError};
use crate::intake::{operator_cancel, prepare, Inbound};
use crate::store::guardrail::{self, Held};
use crate::store::StoreError;

/// Which held commands of a tenant.
#[derive(Clone, Debug)]
pub enum Selection {
    All,
    Ids(Vec<i64>),
}

/// One held command's fate in a release.
#[derive(Clone, Debug)]
pub struct Released {
    pub hold_id: i64,
    pub command_id: String,
    pub command_type: String,
    pub entity: Option<EntityRef>,
    pub outcome: Outcome,
    /// Addresses the command suppressed (`ContactEmailSuppressed` events).
    pub suppressed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("tenant: {0}")]
    Tenant(String),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error("deciding the command failed; nothing changed")]
    Undecided,
    /// A cancel that the rules refused (already run or cancelled, unknown).
    #[error("not cancelled ({outcome}): {message}")]
    NotCancelled {
        outcome: &'static str,
        message: String,
    },
}

impl From<sqlx::Error> for GuardError {
    fn from(e: sqlx::Error) -> Self {
        GuardError::Store(e.into())
    }
}

/// Held commands read per query while releasing or discarding.
const BATCH: i64 = 100;

impl Selection {
    /// The hold ids named, or `None` for all.
    pub fn ids(&self) -> Option<&[i64]> {
        match self {
            Selection::All => None,
            Selection::Ids(ids) => Some(ids),
        }
    }
}

/// The held commands a selection names, in the order they were held,
/// read a batch at a time.
struct Selected<'a> {
    pool: &'a PgPool,
    tenant: &'a str,
    ids: Option<&'a [i64]>,
    after: i64,
    batch: std::vec::IntoIter<Held>,
}

impl<'a> Selected<'a> {
    fn new(pool: &'a PgPool, tenant: &'a str, selection: &'a Selection) -> Selected<'a> {
        Selected {
            pool,
            tenant,
            ids: selection.ids(),
            after: 0,
            batch: Vec::new().into_iter(),
        }
    }

    async fn next(&mut self) -> Result<Option<Held>, StoreError> {
        if let Some(h) = self.batch.next() {
            return Ok(Some(h));
        }
        let batch =
            guardrail::selected(self.pool, self.tenant, self.ids, self.after, Some(BATCH)).await?;
        if let Some(last) = batch.last() {
            self.after = last.hold_id;
        }
        self.batch = batch.into_iter();
        Ok(self.batch.next())
    }
}

/// Applies held commands, each in its own transaction, so an interrupted
/// release can be run again and a concurrent one skips what this one took.
pub async fn release(
    settings: &Settings,
    pool: &PgPool,
    tenant: &str,
    selection: Selection,
    actor: &str,
) -> Result<Vec<Released>, GuardError> {
    let tenant_id = TenantId::parse(tenant).map_err(|r| GuardError::Tenant(r.message))?;
    let hash_key = HashKey::load(pool, settings.privacy.hash_key.as_ref()).await?;
    let mut results = Vec::new();
    let mut held = Selected::new(pool, tenant, &selection);
    while let Some(h) = held.next().await? {
        let mut tx = pool.begin().await?;
        let released = release_one(settings, &hash_key, &mut tx, &h).await?;
        tx.commit().await?;
        results.extend(released);
    }
    let untrip = matches!(selection, Selection::All);
    let counts = (results.len() as u64, 0);
    publish_released(settings, pool, &tenant_id, untrip, counts, actor).await?;
    Ok(results)
}

/// What a release would do now: the first `at_most` held commands of the
/// selection (all with `None`) applied in one transaction that is rolled
/// back, nothing changed.
pub async fn preview(
    settings: &Settings,
    pool: &PgPool,
    tenant: &str,
    selection: &Selection,
    at_most: Option<i64>,
) -> Result<Vec<Released>, GuardError> {
    TenantId::parse(tenant).map_err(|r| GuardError::Tenant(r.message))?;
    let held = guardrail::selected(pool, tenant, selection.ids(), 0, at_most).await?;
    let hash_key = HashKey::load(pool, settings.privacy.hash_key.as_ref()).await?;
    let mut results = Vec::with_capacity(held.len());
    let mut tx = pool.begin().await?;
    for h in &held {
        results.extend(release_one(settings, &hash_key, &mut tx, h).await?);
    }
    tx.rollback().await?;
    Ok(results)
}

/// Takes a held command (`None` when another release took it first) and
/// applies it as a fresh delivery with the guardrail off.
async fn release_one(
    settings: &Settings,
    hash_key: &HashKey,
    conn: &mut PgConnection,
    h: &Held,
) -> Result<Option<Released>, GuardError> {
    let Some(h) = guardrail::take(conn, &h.tenant_id, h.hold_id).await? else {
        return Ok(None);
    };
    forget_held_outcome(conn, &h).await?;
    let msg = inbound(settings, &h);
    let now = OffsetDateTime::now_utc();
    let (policies, producers) = (settings.policies(), settings.producers());
    let prepared = prepare(&msg, &settings.limits, &producers, now);
    let rules = Rules::new(&policies, &producers, &settings.limits, hash_key).released();
    let batch = [(msg, prepared)];
    let done = apply_batch(conn, &batch, &rules, now, true).await?;
    let Some(Disposition::Ack { reply }) = done.dispositions.into_iter().next() else {
        // Deciding it panicked: it stays held for another try.
        guardrail::hold(conn, &h).await?;
        return Ok(None);
    };
    let suppressed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM outbox WHERE event_type = 'ContactEmailSuppressed' \
         AND event_id::text = ANY($1)",
    )
    .bind(&reply.events)
    .fetch_one(&mut *conn)
    .await?;
    Ok(Some(Released {
        hold_id: h.hold_id,
        command_id: h.command_id,
        command_type: h.command_type,
        entity: reply.entity,
        outcome: reply.outcome,
        suppressed: suppressed.max(0) as u64,
    }))
}

/// The inbox's `held` record gives way to the command's final outcome.
async fn forget_held_outcome(conn: &mut PgConnection, h: &Held) -> Result<(), StoreError> {
    sqlx::query(
        "DELETE FROM processed_commands WHERE tenant_id = $1 AND command_id = $2 AND outcome = 'held'",
    )
    .bind(&h.tenant_id)
    .bind(&h.command_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The held command as the delivery it was.
fn inbound(settings: &Settings, h: &Held) -> Inbound {
    Inbound::from_stored(
        &h.body,
        &h.properties,
        &h.exchange,
        &h.routing_key,
        &settings.limits,
    )
}

/// Rejects held commands with code `discarded` into the dead-letter store
/// (each in its own transaction), where they can still be replayed
/// deliberately. Returns how many.
pub async fn discard(
    settings: &Settings,
    pool: &PgPool,
    tenant: &str,
    selection: Selection,
    actor: &str,
) -> Result<u64, GuardError> {
    let tenant_id = TenantId::parse(tenant).map_err(|r| GuardError::Tenant(r.message))?;
    let producers = settings.producers();
    let mut discarded = 0;
    let mut held = Selected::new(pool, tenant, &selection);
    while let Some(h) = held.next().await? {
        let mut tx = pool.begin().await?;
        let Some(h) = guardrail::take(&mut tx, &h.tenant_id, h.hold_id).await? else {
            continue;
        };
        forget_held_outcome(&mut tx, &h).await?;
        let msg = inbound(settings, &h);
        let failure = crate::domain::envelope::DecodeFailure {
            rejection: Rejection::new(
                ErrorCode::Discarded,
                format!("held by the mass-change guardrail and discarded by {actor}"),
            ),
            command_id: Some(h.command_id.clone()),
            tenant: Some(h.tenant_id.clone()),
            command_type: Some(h.command_type.clone()),
        };
        let dead = msg.dead_letter(&failure, &producers, &settings.limits);
        dead_letters::store_dead_letter(&mut tx, &dead).await?;
        tx.commit().await?;
        discarded += 1;
    }
    let untrip = matches!(selection, Selection::All);
    publish_released(settings, pool, &tenant_id, untrip, (0, discarded), actor).await?;
    Ok(discarded)
}

/// `GuardrailReleased` with the numbers released and discarded; releasing
/// or discarding everything untrips the tenant and restarts its count.
async fn publish_released(
    settings: &Settings,
    pool: &PgPool,
    tenant: &TenantId,
    untrip: bool,
    (released, discarded): (u64, u64),
    actor: &str,
) -> Result<(), GuardError> {
    let mut tx = pool.begin().await?;
    let version = if untrip {
        guardrail::set_tripped(&mut tx, tenant.as_str(), false).await?
    } else {
        guardrail::next_version(&mut tx, tenant.as_str()).await?
    };
    let now = OffsetDateTime::now_utc();
    let policies = settings.policies();
    let ctx = Ctx {
        tenant,
        policy: policies.for_tenant(tenant.as_str()),
        limits: &settings.limits,
        issued_at: now,
        actor: Some(actor),
        now,
        blocklist: &Default::default(),
    };
    let data = EventData::GuardrailReleased(GuardrailReleased {
        released,
        discarded,
    });
    let draft = EventDraft::new(&ctx, &EntityId::trusted(tenant.as_str()), version, data);
    // A name for this operator action, as the event's `commandid`.
    let action = format!("guard-{}", uuid::Uuid::new_v4());
    let action =
        CommandId::parse(&action, &settings.limits).map_err(|r| GuardError::Tenant(r.message))?;
    let event = to_cloud_event(tenant, &action, 0, draft, now);
    outbox::write_outbox_and_inbox(&mut tx, &[event], &[]).await?;
    tx.commit().await?;
    Ok(())
}

/// An operator's cancel of a scheduled command (`schedule cancel`, the
/// console): a `command.cancel` with the operator as its `actor`, applied
/// like a released hold. It is authorised by the operator's access (the
/// database for the CLI, the token for the console), not by a producer
/// grant; everything else is the message path's: `not_found`,
/// `invalid_transition` once run or cancelled, `CommandCancelled`.
pub async fn cancel_scheduled(
    settings: &Settings,
    pool: &PgPool,
    tenant: &str,
    command_id: &str,
    actor: &str,
) -> Result<(), GuardError> {
    let tenant_id = TenantId::parse(tenant).map_err(|r| GuardError::Tenant(r.message))?;
    let now = OffsetDateTime::now_utc();
    let (msg, prepared) = operator_cancel(&tenant_id, command_id, actor, now, &settings.limits);
    // Authorised by the operator's access, not by a producer grant.
    let operator = crate::domain::policy::Producers::default();
    let hash_key = HashKey::load(pool, settings.privacy.hash_key.as_ref()).await?;
    let policies = settings.policies();
    let rules = Rules::new(&policies, &operator, &settings.limits, &hash_key);
    let mut tx = pool.begin().await?;
    let done = apply_batch(&mut tx, &[(msg, prepared)], &rules, now, true).await?;
    let Some(Disposition::Ack { reply }) = done.dispositions.into_iter().next() else {
        return Err(GuardError::Undecided);
    };
    tx.commit().await?;
    match reply.outcome {
        crate::domain::outcome::Outcome::Applied => Ok(()),
        outcome => Err(GuardError::NotCancelled {
            outcome: outcome.as_str(),
            message: reply.error.map(|e| e.message).unwrap_or_default(),
        }),
    }
}
