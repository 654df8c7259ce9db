//! `contact.bulk`: one contact operation applied to many contacts, by ids
//! or by an employer filter.

use super::command::{self, ContactKind, ContactOp};
use crate::domain::ids::{EntityId, Limits};
use crate::domain::outcome::{BulkItem, Outcome, Rejection};
use crate::domain::payload::{payload_as, printable};
use serde_json::{Map, Value};
use std::collections::HashSet;

#[derive(Clone, Debug, PartialEq)]
pub enum BulkTarget {
    Ids(Vec<EntityId>),
    Employer(EntityId),
}

#[derive(Clone, Debug, PartialEq)]
pub struct BulkCommand {
    pub target: BulkTarget,
    pub op: ContactOp,
    pub atomic: bool,
}

/// Decodes a `contact.bulk` payload.
pub fn decode(payload: Map<String, Value>, limits: &Limits) -> Result<BulkCommand, Rejection> {
    let p: wire::Bulk = payload_as(payload)?;
    let target = match (p.contact_ids, p.filter) {
        (Some(ids), None) => {
            if ids.is_empty() || ids.len() > limits.max_bulk_ids {
                return Err(Rejection::invalid(format!(
                    "payload.contact_ids must list 1-{} ids, not {}",
                    limits.max_bulk_ids,
                    ids.len()
                )));
            }
            let mut seen = HashSet::with_capacity(ids.len());
            let mut parsed = Vec::with_capacity(ids.len());
            for id in ids {
                let id = EntityId::parse("payload.contact_ids[]", &id, limits)?;
                // A contact named twice is processed once: its first mention counts.
                if seen.insert(id.clone()) {
                    parsed.push(id);
                }
            }
            BulkTarget::Ids(parsed)
        }
        (None, Some(filter)) => BulkTarget::Employer(EntityId::parse(
            "payload.filter.employer_id",
            &filter.employer_id,
            limits,
        )?),
        _ => {
            return Err(Rejection::invalid(
                "payload must have exactly one of `contact_ids` and `filter`",
            ))
        }
    };
    let Some(kind) = ContactKind::parse(&p.operation.kind).filter(|k| k.allowed_in_bulk()) else {
        return Err(Rejection::invalid(format!(
            "payload.operation.type `{}` is not allowed in a bulk (any contact command but bulk, upsert and delete)",
            printable(&p.operation.kind)
        )));
    };
    let op = command::decode(kind, p.operation.payload, limits)
        .map_err(|r| Rejection::new(r.code, format!("payload.operation: {}", r.message)))?;
    Ok(BulkCommand {
        target,
        op,
        atomic: p.atomic.unwrap_or(false),
    })
}

/// The outcome of a non-atomic bulk from its items: applied if any contact
/// changed, else unchanged, else stale. When every contact was refused,
/// nothing happened, so the bulk itself is rejected (and dead-lettered, so it
/// can be replayed once fixed). A filter that matched no contact is unchanged.
pub fn summarize_bulk(items: &[BulkItem]) -> Result<Outcome, Rejection> {
    let any = |o: Outcome| items.iter().any(|i| i.outcome == o);
    if any(Outcome::Applied) {
        Ok(Outcome::Applied)
    } else if any(Outcome::Unchanged) {
        Ok(Outcome::Unchanged)
    } else if any(Outcome::Stale) {
        Ok(Outcome::Stale)
    } else if let Some((item, error)) = items.iter().find_map(|i| i.error.as_ref().map(|e| (i, e)))
    {
        Err(Rejection::new(
            error.code,
            format!(
                "all {} contacts of the bulk were refused; first: contact `{}`: {}",
                items.len(),
                item.contact_id,
                error.message
            ),
        ))
    } else {
        Ok(Outcome::Unchanged)
    }
}

/// Wire shape of the bulk payload.
pub mod wire {
    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::{Map, Value};

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BulkFilter {
        pub employer_id: String,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BulkOperation {
        #[serde(rename = "type")]
        pub kind: String,
        #[serde(default)]
        pub payload: Map<String, Value>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct Bulk {
        pub contact_ids: Option<Vec<String>>,
        pub filter: Option<BulkFilter>,
        pub operation: BulkOperation,
        pub atomic: Option<bool>,
    }
}
