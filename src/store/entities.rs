//! Loading and storing contacts, users, employers, roles and activity.
//! Loads for update take the entity's row lock, so commands on one entity
//! are serialised and their outbox rows follow the entity's versions.

use super::StoreError;
use crate::domain::contact::{Activity, Contact, ContactRecord};
use crate::domain::ids::EntityId;
use crate::domain::ts::Ts;
use crate::domain::user::{Employer, Role, User, UserRecord};
use serde::de::DeserializeOwned;
use serde_json::Value;
use sqlx::types::Json;
use sqlx::PgConnection;
use time::OffsetDateTime;

fn parse<T: DeserializeOwned>(what: &'static str, v: Value) -> Result<T, StoreError> {
    serde_json::from_value(v).map_err(|source| StoreError::Corrupt { what, source })
}

fn to_json<T: serde::Serialize>(v: &T) -> Value {
    serde_json::to_value(v).expect("entity state serialises to JSON")
}

type Row = (i64, Option<OffsetDateTime>, Option<Value>);

/// The table name and key column of a lockable entity kind.
#[derive(Clone, Copy)]
enum Table {
    Contacts,
    Users,
}

impl Table {
    fn select_for_update(self) -> &'static str {
        match self {
            Table::Contacts => "SELECT version, deleted_at, state FROM contacts WHERE tenant_id = $1 AND contact_id = $2 FOR UPDATE",
            Table::Users => "SELECT version, deleted_at, state FROM users WHERE tenant_id = $1 AND user_id = $2 FOR UPDATE",
        }
    }
    fn insert_placeholder(self) -> &'static str {
        match self {
            Table::Contacts => "INSERT INTO contacts (tenant_id, contact_id, version) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
            Table::Users => "INSERT INTO users (tenant_id, user_id, version) VALUES ($1, $2, 0) ON CONFLICT DO NOTHING",
        }
    }
}

/// Locks the entity's row. With `creates`, a missing row is first created as
/// a placeholder, so that two transactions creating the same entity
/// serialise instead of colliding; the placeholder disappears if the
/// transaction rolls back. Without it, a missing row reads as absent.
async fn lock_row(
    conn: &mut PgConnection,
    table: Table,
    tenant: &str,
    id: &str,
    creates: bool,
) -> Result<Row, StoreError> {
    let row: Option<Row> = sqlx::query_as(table.select_for_update())
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(r) = row {
        return Ok(r);
    }
    if !creates {
        return Ok((0, None, None));
    }
    sqlx::query(table.insert_placeholder())
        .bind(tenant)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(sqlx::query_as(table.select_for_update())
        .bind(tenant)
        .bind(id)
        .fetch_one(&mut *conn)
        .await?)
}

pub async fn lock_contact(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
    creates: bool,
) -> Result<ContactRecord, StoreError> {
    let (version, deleted_at, state) =
        lock_row(conn, Table::Contacts, tenant, id.as_str(), creates).await?;
    Ok(match (state, deleted_at) {
        (Some(s), _) => ContactRecord::Live(parse("contact", s)?),
        (None, Some(at)) => ContactRecord::Deleted {
            at: Ts(at),
            version: version as u64,
        },
        (None, None) => ContactRecord::Absent,
    })
}

pub async fn save_contact(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
    record: &ContactRecord,
) -> Result<(), StoreError> {
    let (version, employer, deleted_at, state) = match record {
        ContactRecord::Live(c) => (
            c.version as i64,
            c.employer_id.as_ref().map(|e| e.as_str().to_owned()),
            None,
            Some(to_json(c)),
        ),
        ContactRecord::Deleted { at, version } => (*version as i64, None, Some(at.get()), None),
        ContactRecord::Absent => (0, None, None, None),
    };
    sqlx::query(
        "UPDATE contacts SET version = $3, employer_id = $4, deleted_at = $5, state = $6 \
         WHERE tenant_id = $1 AND contact_id = $2",
    )
    .bind(tenant)
    .bind(id.as_str())
    .bind(version)
    .bind(employer)
    .bind(deleted_at)
    .bind(state)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads a live contact without locking (for `contact show`).
pub async fn find_contact(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<Contact>, StoreError> {
    let state: Option<Option<Value>> =
        sqlx::query_scalar("SELECT state FROM contacts WHERE tenant_id = $1 AND contact_id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    state.flatten().map(|s| parse("contact", s)).transpose()
}

/// Live contacts whose current employer is `employer`, for a bulk filter.
pub async fn contacts_of_employer(
    conn: &mut PgConnection,
    tenant: &str,
    employer: &EntityId,
) -> Result<Vec<EntityId>, StoreError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT contact_id FROM contacts WHERE tenant_id = $1 AND employer_id = $2 \
         AND state IS NOT NULL ORDER BY contact_id",
    )
    .bind(tenant)
    .bind(employer.as_str())
    .fetch_all(conn)
    .await?;
    Ok(ids.into_iter().map(EntityId::trusted).collect())
}

pub async fn insert_activity(
    conn: &mut PgConnection,
    tenant: &str,
    contact: &EntityId,
    command_id: &str,
    a: &Activity,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO contact_activity \
         (tenant_id, contact_id, command_id, kind, body, action_code, employer_id, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant)
    .bind(contact.as_str())
    .bind(command_id)
    .bind(to_json(&a.kind).as_str().unwrap_or_default().to_owned())
    .bind(&a.body)
    .bind(&a.action_code)
    .bind(a.employer_id.as_ref().map(EntityId::as_str))
    .bind(a.occurred_at.get())
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn erase_activity(
    conn: &mut PgConnection,
    tenant: &str,
    contact: &EntityId,
) -> Result<(), StoreError> {
    sqlx::query("DELETE FROM contact_activity WHERE tenant_id = $1 AND contact_id = $2")
        .bind(tenant)
        .bind(contact.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

/// The activity trail of a contact, oldest first, as `contact show --activity` prints it.
pub async fn activity_of(
    conn: &mut PgConnection,
    tenant: &str,
    contact: &str,
) -> Result<Vec<Value>, StoreError> {
    type ActivityRow = (
        i64,
        String,
        String,
        Option<String>,
        Option<String>,
        OffsetDateTime,
        String,
    );
    let rows: Vec<ActivityRow> = sqlx::query_as(
        "SELECT seq, kind, body, action_code, employer_id, occurred_at, command_id \
         FROM contact_activity WHERE tenant_id = $1 AND contact_id = $2 ORDER BY seq",
    )
    .bind(tenant)
    .bind(contact)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(seq, kind, body, action_code, employer_id, occurred_at, command_id)| {
                serde_json::json!({
                    "seq": seq,
                    "kind": kind,
                    "body": body,
                    "action_code": action_code,
                    "employer_id": employer_id,
                    "occurred_at": Ts(occurred_at),
                    "command_id": command_id,
                })
            },
        )
        .collect())
}

pub async fn lock_user(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
    creates: bool,
) -> Result<UserRecord, StoreError> {
    let (version, deleted_at, state) =
        lock_row(conn, Table::Users, tenant, id.as_str(), creates).await?;
    Ok(match (state, deleted_at) {
        (Some(s), _) => UserRecord::Live(parse("user", s)?),
        (None, Some(at)) => UserRecord::Deleted {
            at: Ts(at),
            version: version as u64,
        },
        (None, None) => UserRecord::Absent,
    })
}

pub async fn save_user(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
    record: &UserRecord,
) -> Result<(), StoreError> {
    let (version, contact, deleted_at, state) = match record {
        UserRecord::Live(u) => (
            u.version as i64,
            u.contact_id.as_ref().map(|c| c.as_str().to_owned()),
            None,
            Some(to_json(u)),
        ),
        UserRecord::Deleted { at, version } => (*version as i64, None, Some(at.get()), None),
        UserRecord::Absent => (0, None, None, None),
    };
    sqlx::query(
        "UPDATE users SET version = $3, contact_id = $4, deleted_at = $5, state = $6 \
         WHERE tenant_id = $1 AND user_id = $2",
    )
    .bind(tenant)
    .bind(id.as_str())
    .bind(version)
    .bind(contact)
    .bind(deleted_at)
    .bind(state)
    .execute(conn)
    .await?;
    Ok(())
}

/// Live users linked to a contact, locked, in id order (a stable lock order).
pub async fn lock_users_of_contact(
    conn: &mut PgConnection,
    tenant: &str,
    contact: &EntityId,
) -> Result<Vec<User>, StoreError> {
    let states: Vec<Value> = sqlx::query_scalar(
        "SELECT state FROM users WHERE tenant_id = $1 AND contact_id = $2 \
         AND state IS NOT NULL ORDER BY user_id FOR UPDATE",
    )
    .bind(tenant)
    .bind(contact.as_str())
    .fetch_all(conn)
    .await?;
    states.into_iter().map(|s| parse("user", s)).collect()
}

pub async fn find_user(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<User>, StoreError> {
    let state: Option<Option<Value>> =
        sqlx::query_scalar("SELECT state FROM users WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(conn)
            .await?;
    state.flatten().map(|s| parse("user", s)).transpose()
}

/// Creates employers referenced before their upsert, with no name.
pub async fn ensure_employers(
    conn: &mut PgConnection,
    tenant: &str,
    ids: &[EntityId],
) -> Result<(), StoreError> {
    for id in ids {
        let placeholder = Employer {
            id: id.clone(),
            version: 0,
            name: None,
            departments: vec![],
            profile_at: None,
        };
        sqlx::query(
            "INSERT INTO employers (tenant_id, employer_id, version, state) VALUES ($1, $2, 0, $3) \
             ON CONFLICT DO NOTHING",
        )
        .bind(tenant)
        .bind(id.as_str())
        .bind(Json(to_json(&placeholder)))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn employer_exists(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM employers WHERE tenant_id = $1 AND employer_id = $2)",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_one(conn)
    .await?)
}

pub async fn lock_employer(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
) -> Result<Option<Employer>, StoreError> {
    let state: Option<Value> = sqlx::query_scalar(
        "SELECT state FROM employers WHERE tenant_id = $1 AND employer_id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    state.map(|s| parse("employer", s)).transpose()
}

pub async fn save_employer(
    conn: &mut PgConnection,
    tenant: &str,
    e: &Employer,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO employers (tenant_id, employer_id, version, state) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, employer_id) DO UPDATE SET version = $3, state = $4",
    )
    .bind(tenant)
    .bind(e.id.as_str())
    .bind(e.version as i64)
    .bind(Json(to_json(e)))
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn role_exists(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
) -> Result<bool, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM roles WHERE tenant_id = $1 AND role_id = $2)",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_one(conn)
    .await?)
}

pub async fn lock_role(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
) -> Result<Option<Role>, StoreError> {
    let state: Option<Value> = sqlx::query_scalar(
        "SELECT state FROM roles WHERE tenant_id = $1 AND role_id = $2 FOR UPDATE",
    )
    .bind(tenant)
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    state.map(|s| parse("role", s)).transpose()
}

pub async fn save_role(conn: &mut PgConnection, tenant: &str, r: &Role) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO roles (tenant_id, role_id, version, state) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, role_id) DO UPDATE SET version = $3, state = $4",
    )
    .bind(tenant)
    .bind(r.id.as_str())
    .bind(r.version as i64)
    .bind(Json(to_json(r)))
    .execute(conn)
    .await?;
    Ok(())
}
