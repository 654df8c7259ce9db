//! Applies one decoded command inside a transaction: inbox claim, load with
//! row locks, the domain's decision, writes, outbox rows and the reply.
//! The caller owns the transaction (a savepoint per command) and rolls back
//! when the command is rejected, so a rejection leaves no trace but its
//! dead letter.

use crate::domain::command::{BulkCommand, BulkTarget, Command, CommandBody, ContactOp, UserOp};
use crate::domain::contact::{
    check_op_against_policy, decide_contact, summarize_bulk, ContactDecision, ContactRecord,
};
use crate::domain::event::{to_cloud_event, EventDraft, OutboxEvent};
use crate::domain::ids::{EntityId, Limits};
use crate::domain::outcome::{
    BulkItem, EntityKind, EntityRef, ErrorCode, Outcome, Rejection, Reply,
};
use crate::domain::policy::Policies;
use crate::domain::user::{decide_employer, decide_role, decide_user, UserRecord};
use crate::domain::Ctx;
use crate::store::{entities, journal, StoreError};
use sqlx::PgConnection;
use time::OffsetDateTime;

/// What applying a command produced.
#[derive(Debug)]
pub struct Applied {
    pub reply: Reply,
    /// Events written to the outbox (zero for duplicates).
    pub events: usize,
}

/// `Ok(Err(_))` is a permanent rejection: the caller rolls back to its
/// savepoint and dead-letters the message.
pub async fn apply_command(
    conn: &mut PgConnection,
    cmd: &Command,
    policies: &Policies,
    limits: &Limits,
    now: OffsetDateTime,
) -> Result<Result<Applied, Rejection>, StoreError> {
    #[cfg(feature = "failpoints")]
    crate::failpoints::before_apply(cmd.command_id.as_str());
    let tenant = cmd.tenant.as_str();
    let command_id = cmd.command_id.as_str();
    if !journal::claim_command(conn, tenant, command_id, cmd.type_name()).await? {
        let reply = journal::first_reply(conn, tenant, command_id)
            .await?
            .map(|first| Reply {
                duplicate: true,
                ..first
            })
            .ok_or(StoreError::Corrupt {
                what: "processed command without reply",
                source: serde::de::Error::custom("reply is null"),
            })?;
        return Ok(Ok(Applied { reply, events: 0 }));
    }
    let ctx = Ctx {
        tenant: &cmd.tenant,
        policy: policies.for_tenant(tenant),
        limits,
        issued_at: cmd.issued_at,
        actor: cmd.actor.as_deref(),
        now,
    };
    let mut drafts = Vec::new();
    let decided = match &cmd.body {
        CommandBody::Contact { contact_id, op } => contact_command(
            conn,
            &ctx,
            command_id,
            contact_id,
            op,
            cmd.expected_version,
            &mut drafts,
        )
        .await?
        .map(|(outcome, version)| {
            (
                outcome,
                Some(entity(EntityKind::Contact, contact_id, version)),
                None,
            )
        }),
        CommandBody::Bulk(bulk) => bulk_command(conn, &ctx, command_id, bulk, &mut drafts)
            .await?
            .map(|(outcome, items)| (outcome, None, Some(items))),
        CommandBody::User { user_id, op } => {
            user_command(conn, &ctx, user_id, op, cmd.expected_version, &mut drafts)
                .await?
                .map(|(outcome, version)| {
                    (
                        outcome,
                        Some(entity(EntityKind::User, user_id, version)),
                        None,
                    )
                })
        }
        CommandBody::EmployerUpsert(u) => {
            let current = entities::lock_employer(conn, tenant, &u.employer_id).await?;
            match decide_employer(&ctx, current.as_ref(), u, cmd.expected_version) {
                Ok(d) => {
                    if let Some(e) = &d.write {
                        entities::save_employer(conn, tenant, e).await?;
                    }
                    let version = d.write.as_ref().or(current.as_ref()).map(|e| e.version);
                    drafts.extend(d.events);
                    Ok((
                        d.outcome,
                        Some(entity(EntityKind::Employer, &u.employer_id, version)),
                        None,
                    ))
                }
                Err(r) => Err(r),
            }
        }
        CommandBody::RoleUpsert(u) => {
            let current = entities::lock_role(conn, tenant, &u.role_id).await?;
            match decide_role(&ctx, current.as_ref(), u, cmd.expected_version) {
                Ok(d) => {
                    if let Some(r) = &d.write {
                        entities::save_role(conn, tenant, r).await?;
                    }
                    let version = d.write.as_ref().or(current.as_ref()).map(|r| r.version);
                    drafts.extend(d.events);
                    Ok((
                        d.outcome,
                        Some(entity(EntityKind::Role, &u.role_id, version)),
                        None,
                    ))
                }
                Err(r) => Err(r),
            }
        }
    };
    let (outcome, entity, items) = match decided {
        Ok(d) => d,
        Err(rejection) => return Ok(Err(rejection)),
    };
    let events: Vec<OutboxEvent> = drafts
        .into_iter()
        .enumerate()
        .map(|(seq, d)| to_cloud_event(&cmd.tenant, &cmd.command_id, seq, d, now))
        .collect();
    journal::append_outbox(conn, &events).await?;
    let reply = Reply {
        command_id: Some(command_id.to_owned()),
        tenant: Some(tenant.to_owned()),
        outcome,
        duplicate: false,
        entity,
        events: events.iter().map(|e| e.id.to_string()).collect(),
        error: None,
        items,
    };
    journal::complete_command(conn, tenant, command_id, &reply).await?;
    Ok(Ok(Applied {
        reply,
        events: events.len(),
    }))
}

fn entity(kind: EntityKind, id: &EntityId, version: Option<u64>) -> EntityRef {
    EntityRef {
        kind,
        id: id.to_string(),
        version,
    }
}

/// Decides and stores one contact command; returns its outcome and the
/// contact's version after it.
async fn contact_command(
    conn: &mut PgConnection,
    ctx: &Ctx<'_>,
    command_id: &str,
    id: &EntityId,
    op: &ContactOp,
    expected_version: Option<u64>,
    drafts: &mut Vec<EventDraft>,
) -> Result<Result<(Outcome, Option<u64>), Rejection>, StoreError> {
    let tenant = ctx.tenant.as_str();
    let creates = matches!(op, ContactOp::Upsert(_));
    let record = entities::lock_contact(conn, tenant, id, creates).await?;
    let linked_users = match (op, &record) {
        (ContactOp::Archive(_) | ContactOp::Revive(_), ContactRecord::Live(_)) => {
            entities::lock_users_of_contact(conn, tenant, id).await?
        }
        _ => vec![],
    };
    let decision = match decide_contact(ctx, id, &record, op, expected_version, &linked_users) {
        Ok(d) => d,
        Err(r) => return Ok(Err(r)),
    };
    let version = decision.version_after(&record);
    let outcome = decision.outcome;
    store_contact_decision(conn, ctx, command_id, id, decision, drafts).await?;
    Ok(Ok((outcome, version)))
}

async fn store_contact_decision(
    conn: &mut PgConnection,
    ctx: &Ctx<'_>,
    command_id: &str,
    id: &EntityId,
    d: ContactDecision,
    drafts: &mut Vec<EventDraft>,
) -> Result<(), StoreError> {
    let tenant = ctx.tenant.as_str();
    if let Some(record) = &d.write {
        entities::save_contact(conn, tenant, id, record).await?;
    }
    for user in d.users {
        entities::save_user(conn, tenant, &user.id.clone(), &UserRecord::Live(user)).await?;
    }
    if d.erase_activity {
        entities::erase_activity(conn, tenant, id).await?;
    }
    if let Some(a) = &d.activity {
        entities::insert_activity(conn, tenant, id, command_id, a).await?;
    }
    entities::ensure_employers(conn, tenant, &d.ensure_employers).await?;
    drafts.extend(d.events);
    Ok(())
}

async fn bulk_command(
    conn: &mut PgConnection,
    ctx: &Ctx<'_>,
    command_id: &str,
    bulk: &BulkCommand,
    drafts: &mut Vec<EventDraft>,
) -> Result<Result<(Outcome, Vec<BulkItem>), Rejection>, StoreError> {
    let tenant = ctx.tenant.as_str();
    if let Err(r) = check_op_against_policy(ctx.policy, &bulk.op) {
        return Ok(Err(r));
    }
    let ids = match &bulk.target {
        BulkTarget::Ids(ids) => ids.clone(),
        BulkTarget::Employer(e) => {
            if !entities::employer_exists(conn, tenant, e).await? {
                return Ok(Err(Rejection::new(
                    ErrorCode::EmployerNotFound,
                    format!("employer `{e}` in payload.filter does not exist"),
                )));
            }
            entities::contacts_of_employer(conn, tenant, e).await?
        }
    };
    let mut items = Vec::with_capacity(ids.len());
    for id in &ids {
        match contact_command(conn, ctx, command_id, id, &bulk.op, None, drafts).await? {
            Ok((outcome, version)) => items.push(BulkItem {
                contact_id: id.to_string(),
                outcome,
                version,
                error: None,
            }),
            Err(r) if bulk.atomic => {
                return Ok(Err(Rejection::new(
                    r.code,
                    format!("atomic bulk rolled back: contact `{id}`: {}", r.message),
                )))
            }
            Err(r) => items.push(BulkItem {
                contact_id: id.to_string(),
                outcome: Outcome::Rejected,
                version: None,
                error: Some(r.into()),
            }),
        }
    }
    Ok(summarize_bulk(&items).map(|outcome| (outcome, items)))
}

async fn user_command(
    conn: &mut PgConnection,
    ctx: &Ctx<'_>,
    id: &EntityId,
    op: &UserOp,
    expected_version: Option<u64>,
    drafts: &mut Vec<EventDraft>,
) -> Result<Result<(Outcome, Option<u64>), Rejection>, StoreError> {
    let tenant = ctx.tenant.as_str();
    let role = match op {
        UserOp::Upsert(u) => u.role_id.as_ref(),
        UserOp::ChangeRole { role_id } => Some(role_id),
        _ => None,
    };
    let role_exists = match role {
        Some(r) => entities::role_exists(conn, tenant, r).await?,
        None => true,
    };
    let creates = matches!(op, UserOp::Upsert(_));
    let record = entities::lock_user(conn, tenant, id, creates).await?;
    let d = match decide_user(ctx, id, &record, op, expected_version, role_exists) {
        Ok(d) => d,
        Err(r) => return Ok(Err(r)),
    };
    let version = match d.write.as_ref().unwrap_or(&record) {
        UserRecord::Live(u) => Some(u.version),
        UserRecord::Deleted { .. } | UserRecord::Absent => None,
    };
    if let Some(w) = &d.write {
        entities::save_user(conn, tenant, id, w).await?;
    }
    entities::ensure_employers(conn, tenant, &d.ensure_employers).await?;
    drafts.extend(d.events);
    Ok(Ok((d.outcome, version)))
}
