//! Loading and storing contacts, users, employers, roles and activity.
//! Loads for update take the entity's row lock, so commands on one entity
//! are serialised and their outbox rows follow the entity's versions.

use super::StoreError;
use crate::domain::contact::{Activity, Contact};
use crate::domain::directory::{Employer, Role};
use crate::domain::ids::EntityId;
use crate::domain::record::{Kept, Record};
use crate::domain::ts::Ts;
use crate::domain::user::User;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;
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

/// A jsonb column as its text: the batch's hot path reads and writes
/// entity states without building a `serde_json::Value` tree in between.
pub type JsonText = Json<Box<RawValue>>;

fn parse_text<T: DeserializeOwned>(what: &'static str, v: &JsonText) -> Result<T, StoreError> {
    serde_json::from_str(v.0.get()).map_err(|source| StoreError::Corrupt { what, source })
}

fn to_text<T: serde::Serialize>(v: &T) -> JsonText {
    Json(serde_json::value::to_raw_value(v).expect("entity state serialises to JSON"))
}

/// A (tenant, id) key.
pub type Key = (String, EntityId);

/// The two tables whose rows are locked per batch.
#[derive(Clone, Copy, Debug)]
pub enum Table {
    Contacts,
    Users,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Contacts => "contacts",
            Table::Users => "users",
        }
    }
    fn id_column(self) -> &'static str {
        match self {
            Table::Contacts => "contact_id",
            Table::Users => "user_id",
        }
    }
    /// The indexed column beside the state: a contact's employer, a user's contact.
    fn link_column(self) -> &'static str {
        match self {
            Table::Contacts => "employer_id",
            Table::Users => "contact_id",
        }
    }
}

fn split(keys: &[Key]) -> (Vec<&str>, Vec<&str>) {
    keys.iter().map(|(t, id)| (t.as_str(), id.as_str())).unzip()
}

/// Inserts placeholder rows (version 0, no state) for entities an upsert
/// may create, so that creating transactions lock a row and serialise
/// instead of colliding. Unused ones are removed before the commit.
pub async fn insert_placeholders(
    conn: &mut PgConnection,
    table: Table,
    keys: &[Key],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let (tenants, ids) = split(keys);
    sqlx::query(&format!(
        "INSERT INTO {} (tenant_id, {}, version) SELECT t, i, 0 FROM UNNEST($1::text[], $2::text[]) AS u(t, i) \
         ORDER BY t, i ON CONFLICT DO NOTHING",
        table.name(),
        table.id_column()
    ))
    .bind(tenants)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn delete_placeholders(
    conn: &mut PgConnection,
    table: Table,
    keys: &[Key],
) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let (tenants, ids) = split(keys);
    sqlx::query(&format!(
        "DELETE FROM {t} x USING UNNEST($1::text[], $2::text[]) AS u(t, i) \
         WHERE x.tenant_id = u.t AND x.{id} = u.i AND x.state IS NULL AND x.deleted_at IS NULL",
        t = table.name(),
        id = table.id_column()
    ))
    .bind(tenants)
    .bind(ids)
    .execute(conn)
    .await?;
    Ok(())
}

/// What a locked table's row holds beside its key.
#[derive(Debug, Default, sqlx::FromRow)]
pub struct Row {
    pub version: i64,
    pub deleted_at: Option<OffsetDateTime>,
    pub state: Option<JsonText>,
    /// What a soft delete kept, and until when.
    pub deleted_state: Option<JsonText>,
    pub purge_after: Option<OffsetDateTime>,
}

#[derive(sqlx::FromRow)]
struct LockedRow {
    tenant_id: String,
    id: String,
    #[sqlx(flatten)]
    row: Row,
}

/// Locks the rows of `keys` in key order (a stable order keeps concurrent
/// batches from deadlocking) and returns what each holds; keys without a
/// row come back too.
async fn lock_rows(
    conn: &mut PgConnection,
    table: Table,
    keys: &[Key],
) -> Result<Vec<(Key, Option<Row>)>, StoreError> {
    if keys.is_empty() {
        return Ok(vec![]);
    }
    let (tenants, ids) = split(keys);
    let rows: Vec<LockedRow> = sqlx::query_as(&format!(
        "SELECT x.tenant_id, x.{id} AS id, x.version, x.deleted_at, x.state, x.deleted_state, \
         x.purge_after FROM {t} x \
         JOIN UNNEST($1::text[], $2::text[]) AS u(t, i) ON x.tenant_id = u.t AND x.{id} = u.i \
         ORDER BY x.tenant_id, x.{id} FOR UPDATE OF x",
        t = table.name(),
        id = table.id_column()
    ))
    .bind(tenants)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut by_key: std::collections::HashMap<(String, String), Row> = rows
        .into_iter()
        .map(|r| ((r.tenant_id, r.id), r.row))
        .collect();
    Ok(keys
        .iter()
        .map(|k| {
            let row = by_key.remove(&(k.0.clone(), k.1.as_str().to_owned()));
            (k.clone(), row)
        })
        .collect())
}

/// An entity kept in one of the locked tables (contacts, users): its
/// table, and the indexed column beside its state.
pub trait RowEntity: serde::Serialize + DeserializeOwned {
    const TABLE: Table;
    /// Named in "stored ... is unreadable" errors.
    const WHAT: &'static str;
    fn version(&self) -> u64;
    /// The value of [`Table::link_column`].
    fn link(&self) -> Option<&EntityId>;
}

impl RowEntity for Contact {
    const TABLE: Table = Table::Contacts;
    const WHAT: &'static str = "contact";
    fn version(&self) -> u64 {
        self.version
    }
    fn link(&self) -> Option<&EntityId> {
        self.employer_id.as_ref()
    }
}

impl RowEntity for User {
    const TABLE: Table = Table::Users;
    const WHAT: &'static str = "user";
    fn version(&self) -> u64 {
        self.version
    }
    fn link(&self) -> Option<&EntityId> {
        self.contact_id.as_ref()
    }
}

/// How a record reads from and writes to its row.
pub trait Stored: Sized {
    const TABLE: Table;
    fn from_row(row: Row) -> Result<Self, StoreError>;
    fn to_row(&self) -> Written;
}

impl<T: RowEntity> Stored for Record<T> {
    const TABLE: Table = T::TABLE;

    fn from_row(row: Row) -> Result<Self, StoreError> {
        Ok(match (row.state, row.deleted_at) {
            (Some(s), _) => Record::Live(parse_text(T::WHAT, &s)?),
            (None, Some(at)) => Record::Deleted {
                at: Ts(at),
                version: row.version as u64,
                kept: match (row.deleted_state, row.purge_after) {
                    (Some(s), Some(until)) => Some(Kept {
                        state: Box::new(parse_text(T::WHAT, &s)?),
                        purge_after: Ts(until),
                    }),
                    _ => None,
                },
            },
            (None, None) => Record::Absent,
        })
    }

    fn to_row(&self) -> Written {
        match self {
            Record::Live(e) => Written {
                version: e.version() as i64,
                link: e.link().map(|l| l.as_str().to_owned()),
                state: Some(to_text(e)),
                ..Written::default()
            },
            Record::Deleted { at, version, kept } => Written {
                version: *version as i64,
                deleted_at: Some(at.get()),
                deleted_state: kept.as_ref().map(|k| to_text(&k.state)),
                purge_after: kept.as_ref().map(|k| k.purge_after.get()),
                ..Written::default()
            },
            Record::Absent => Written::default(),
        }
    }
}

/// Locks and reads the records of `keys` (absent ones included).
pub async fn lock<R: Stored>(
    conn: &mut PgConnection,
    keys: &[Key],
) -> Result<Vec<(Key, R)>, StoreError> {
    lock_rows(conn, R::TABLE, keys)
        .await?
        .into_iter()
        .map(|(k, row)| {
            let record = R::from_row(row.unwrap_or_default())?;
            Ok((k, record))
        })
        .collect()
}

/// Columns of one written row.
#[derive(Debug, Default)]
pub struct Written {
    pub version: i64,
    /// The value of [`Table::link_column`].
    pub link: Option<String>,
    pub deleted_at: Option<OffsetDateTime>,
    pub state: Option<JsonText>,
    pub deleted_state: Option<JsonText>,
    pub purge_after: Option<OffsetDateTime>,
}

/// Writes records back (their rows exist: loaded, or placeholders).
pub async fn save<R: Stored>(
    conn: &mut PgConnection,
    records: &[(Key, R)],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let n = records.len();
    let (mut tenants, mut ids, mut versions) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut links, mut deleted, mut states) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut kept, mut purge) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for ((t, id), record) in records {
        let w = record.to_row();
        tenants.push(t.as_str());
        ids.push(id.as_str());
        versions.push(w.version);
        links.push(w.link);
        deleted.push(w.deleted_at);
        states.push(w.state);
        kept.push(w.deleted_state);
        purge.push(w.purge_after);
    }
    sqlx::query(&format!(
        "UPDATE {t} x SET version = u.v, {link} = u.l, deleted_at = u.d, state = u.s, \
         deleted_state = u.k, purge_after = u.p \
         FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::timestamptz[], \
           $6::jsonb[], $7::jsonb[], $8::timestamptz[]) \
         AS u(t, i, v, l, d, s, k, p) WHERE x.tenant_id = u.t AND x.{id} = u.i",
        t = R::TABLE.name(),
        link = R::TABLE.link_column(),
        id = R::TABLE.id_column()
    ))
    .bind(tenants)
    .bind(ids)
    .bind(versions)
    .bind(links)
    .bind(deleted)
    .bind(states)
    .bind(kept)
    .bind(purge)
    .execute(conn)
    .await?;
    Ok(())
}

/// Appends activity entries: (contact key, command id, activity).
pub async fn insert_activities(
    conn: &mut PgConnection,
    entries: &[(Key, String, Activity)],
) -> Result<(), StoreError> {
    if entries.is_empty() {
        return Ok(());
    }
    let n = entries.len();
    let (mut tenants, mut contacts, mut commands) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut kinds, mut bodies, mut codes) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut employers, mut times) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for ((t, c), command_id, a) in entries {
        tenants.push(t.as_str());
        contacts.push(c.as_str());
        commands.push(command_id.as_str());
        kinds.push(to_json(&a.kind).as_str().unwrap_or_default().to_owned());
        bodies.push(a.body.as_str());
        codes.push(a.action_code.as_deref());
        employers.push(a.employer_id.as_ref().map(EntityId::as_str));
        times.push(a.occurred_at.get());
    }
    sqlx::query(
        "INSERT INTO contact_activity \
         (tenant_id, contact_id, command_id, kind, body, action_code, employer_id, occurred_at) \
         SELECT t, c, m, k, b, a, e, o FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], \
         $5::text[], $6::text[], $7::text[], $8::timestamptz[]) \
         WITH ORDINALITY AS u(t, c, m, k, b, a, e, o, n) ORDER BY n",
    )
    .bind(tenants)
    .bind(contacts)
    .bind(commands)
    .bind(kinds)
    .bind(bodies)
    .bind(codes)
    .bind(employers)
    .bind(times)
    .execute(conn)
    .await?;
    Ok(())
}

/// Reads a live contact without locking (for `contact show`).
/// The live contact or user under `id`, unlocked (for `show`).
pub async fn find<T: RowEntity>(
    conn: &mut PgConnection,
    tenant: &str,
    id: &str,
) -> Result<Option<T>, StoreError> {
    let state: Option<Option<Value>> = sqlx::query_scalar(&format!(
        "SELECT state FROM {} WHERE tenant_id = $1 AND {} = $2",
        T::TABLE.name(),
        T::TABLE.id_column()
    ))
    .bind(tenant)
    .bind(id)
    .fetch_optional(conn)
    .await?;
    state.flatten().map(|s| parse(T::WHAT, s)).transpose()
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

/// Creates employers referenced before their upsert, with no name.
pub async fn ensure_employers(conn: &mut PgConnection, keys: &[Key]) -> Result<(), StoreError> {
    if keys.is_empty() {
        return Ok(());
    }
    let (tenants, ids) = split(keys);
    let states: Vec<Value> = keys
        .iter()
        .map(|(_, id)| {
            to_json(&Employer {
                id: id.clone(),
                version: 0,
                name: None,
                departments: vec![],
                profile_at: None,
            })
        })
        .collect();
    sqlx::query(
        "INSERT INTO employers (tenant_id, employer_id, version, state) \
         SELECT t, i, 0, s FROM UNNEST($1::text[], $2::text[], $3::jsonb[]) AS u(t, i, s) \
         ORDER BY t, i ON CONFLICT DO NOTHING",
    )
    .bind(tenants)
    .bind(ids)
    .bind(states)
    .execute(conn)
    .await?;
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

/// An employer or a role: one row of state per id, locked while decided.
pub trait DirectoryEntry: serde::Serialize + DeserializeOwned {
    const TABLE: &'static str;
    const ID_COLUMN: &'static str;
    /// Named in "stored ... is unreadable" errors.
    const WHAT: &'static str;
    fn id(&self) -> &EntityId;
    fn version(&self) -> u64;
}

impl DirectoryEntry for Employer {
    const TABLE: &'static str = "employers";
    const ID_COLUMN: &'static str = "employer_id";
    const WHAT: &'static str = "employer";
    fn id(&self) -> &EntityId {
        &self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
}

impl DirectoryEntry for Role {
    const TABLE: &'static str = "roles";
    const ID_COLUMN: &'static str = "role_id";
    const WHAT: &'static str = "role";
    fn id(&self) -> &EntityId {
        &self.id
    }
    fn version(&self) -> u64 {
        self.version
    }
}

/// Locks and reads an employer or role, if it exists.
pub async fn lock_entry<T: DirectoryEntry>(
    conn: &mut PgConnection,
    tenant: &str,
    id: &EntityId,
) -> Result<Option<T>, StoreError> {
    let state: Option<Value> = sqlx::query_scalar(&format!(
        "SELECT state FROM {} WHERE tenant_id = $1 AND {} = $2 FOR UPDATE",
        T::TABLE,
        T::ID_COLUMN
    ))
    .bind(tenant)
    .bind(id.as_str())
    .fetch_optional(conn)
    .await?;
    state.map(|s| parse(T::WHAT, s)).transpose()
}

pub async fn save_entry<T: DirectoryEntry>(
    conn: &mut PgConnection,
    tenant: &str,
    entry: &T,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO {t} (tenant_id, {id}, version, state) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (tenant_id, {id}) DO UPDATE SET version = $3, state = $4",
        t = T::TABLE,
        id = T::ID_COLUMN
    ))
    .bind(tenant)
    .bind(entry.id().as_str())
    .bind(entry.version() as i64)
    .bind(Json(to_json(entry)))
    .execute(conn)
    .await?;
    Ok(())
}
