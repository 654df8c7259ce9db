//! The inbox: the commands processed, with their first replies.

use super::StoreError;
use crate::domain::outcome::Reply;
use serde_json::Value;
use sqlx::PgConnection;
use std::collections::HashMap;

/// First replies of the given (tenant, command id) pairs that were already
/// processed: their redeliveries are duplicates.
pub async fn processed_replies(
    conn: &mut PgConnection,
    keys: &[(String, String)],
) -> Result<HashMap<(String, String), Reply>, StoreError> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let (tenants, ids): (Vec<&str>, Vec<&str>) =
        keys.iter().map(|(t, c)| (t.as_str(), c.as_str())).unzip();
    let rows: Vec<(String, String, Value)> = sqlx::query_as(
        "SELECT p.tenant_id, p.command_id, p.reply FROM processed_commands p \
         JOIN UNNEST($1::text[], $2::text[]) AS u(t, c) ON p.tenant_id = u.t AND p.command_id = u.c",
    )
    .bind(tenants)
    .bind(ids)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|(t, c, reply)| {
            let reply = serde_json::from_value(reply).map_err(|source| StoreError::Corrupt {
                what: "reply",
                source,
            })?;
            Ok(((t, c), reply))
        })
        .collect()
}

/// A processed command as the inbox records it.
#[derive(Debug, Clone)]
pub struct InboxRow {
    pub tenant: String,
    pub command_id: String,
    pub command_type: &'static str,
    pub reply: Reply,
}
