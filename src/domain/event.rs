//! Change events (contract section 5): what the domain emits, and their
//! CloudEvents 1.0 form as written to the outbox.

use super::ids::{CommandId, TenantId};
use super::outcome::EntityKind;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use uuid::Uuid;

/// Every event type of the contract, with its routing name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    ContactCreated,
    ContactUpdated,
    ContactDeactivated,
    ContactReactivated,
    ContactStatusChanged,
    ContactEmployerChanged,
    ContactVisibilityChanged,
    ContactAttributesChanged,
    ContactApproved,
    ContactRejected,
    ContactArchived,
    ContactRevived,
    ContactActivityLogged,
    ContactDeleted,
    ContactEmailSuppressed,
    ContactEmailUnsuppressed,
    EmployerUpserted,
    RoleUpserted,
    UserCreated,
    UserUpdated,
    UserAccessRevoked,
    UserAccessRestored,
    UserRoleChanged,
    UserDeleted,
}

impl EventType {
    pub const ALL: [EventType; 24] = [
        EventType::ContactCreated,
        EventType::ContactUpdated,
        EventType::ContactDeactivated,
        EventType::ContactReactivated,
        EventType::ContactStatusChanged,
        EventType::ContactEmployerChanged,
        EventType::ContactVisibilityChanged,
        EventType::ContactAttributesChanged,
        EventType::ContactApproved,
        EventType::ContactRejected,
        EventType::ContactArchived,
        EventType::ContactRevived,
        EventType::ContactActivityLogged,
        EventType::ContactDeleted,
        EventType::ContactEmailSuppressed,
        EventType::ContactEmailUnsuppressed,
        EventType::EmployerUpserted,
        EventType::RoleUpserted,
        EventType::UserCreated,
        EventType::UserUpdated,
        EventType::UserAccessRevoked,
        EventType::UserAccessRestored,
        EventType::UserRoleChanged,
        EventType::UserDeleted,
    ];

    pub fn type_name(self) -> &'static str {
        match self {
            EventType::ContactCreated => "ContactCreated",
            EventType::ContactUpdated => "ContactUpdated",
            EventType::ContactDeactivated => "ContactDeactivated",
            EventType::ContactReactivated => "ContactReactivated",
            EventType::ContactStatusChanged => "ContactStatusChanged",
            EventType::ContactEmployerChanged => "ContactEmployerChanged",
            EventType::ContactVisibilityChanged => "ContactVisibilityChanged",
            EventType::ContactAttributesChanged => "ContactAttributesChanged",
            EventType::ContactApproved => "ContactApproved",
            EventType::ContactRejected => "ContactRejected",
            EventType::ContactArchived => "ContactArchived",
            EventType::ContactRevived => "ContactRevived",
            EventType::ContactActivityLogged => "ContactActivityLogged",
            EventType::ContactDeleted => "ContactDeleted",
            EventType::ContactEmailSuppressed => "ContactEmailSuppressed",
            EventType::ContactEmailUnsuppressed => "ContactEmailUnsuppressed",
            EventType::EmployerUpserted => "EmployerUpserted",
            EventType::RoleUpserted => "RoleUpserted",
            EventType::UserCreated => "UserCreated",
            EventType::UserUpdated => "UserUpdated",
            EventType::UserAccessRevoked => "UserAccessRevoked",
            EventType::UserAccessRestored => "UserAccessRestored",
            EventType::UserRoleChanged => "UserRoleChanged",
            EventType::UserDeleted => "UserDeleted",
        }
    }

    /// The second half of the event routing key `{tenant}.{routing name}`.
    pub fn routing_name(self) -> &'static str {
        match self {
            EventType::ContactCreated => "contact.created",
            EventType::ContactUpdated => "contact.updated",
            EventType::ContactDeactivated => "contact.deactivated",
            EventType::ContactReactivated => "contact.reactivated",
            EventType::ContactStatusChanged => "contact.status_changed",
            EventType::ContactEmployerChanged => "contact.employer_changed",
            EventType::ContactVisibilityChanged => "contact.visibility_changed",
            EventType::ContactAttributesChanged => "contact.attributes_changed",
            EventType::ContactApproved => "contact.approved",
            EventType::ContactRejected => "contact.rejected",
            EventType::ContactArchived => "contact.archived",
            EventType::ContactRevived => "contact.revived",
            EventType::ContactActivityLogged => "contact.activity_logged",
            EventType::ContactDeleted => "contact.deleted",
            EventType::ContactEmailSuppressed => "contact.email_suppressed",
            EventType::ContactEmailUnsuppressed => "contact.email_unsuppressed",
            EventType::EmployerUpserted => "employer.upserted",
            EventType::RoleUpserted => "role.upserted",
            EventType::UserCreated => "user.created",
            EventType::UserUpdated => "user.updated",
            EventType::UserAccessRevoked => "user.access_revoked",
            EventType::UserAccessRestored => "user.access_restored",
            EventType::UserRoleChanged => "user.role_changed",
            EventType::UserDeleted => "user.deleted",
        }
    }
}

/// An event as decided by the domain: which entity version it describes and
/// its `data` object.
#[derive(Clone, Debug, PartialEq)]
pub struct EventDraft {
    pub event_type: EventType,
    pub entity_kind: EntityKind,
    pub entity_id: String,
    pub version: u64,
    pub data: Map<String, Value>,
}

/// An event ready for the outbox: a CloudEvent in structured JSON mode.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxEvent {
    pub id: Uuid,
    pub tenant: String,
    pub routing_key: String,
    pub event_type: EventType,
    pub entity_kind: EntityKind,
    pub entity_id: String,
    pub version: u64,
    pub cloud_event: Value,
}

/// Namespace of the name-based (v5) event ids: an event's id is derived from
/// tenant, command id and its position in the command, so re-deciding the same
/// command (a retried transaction) yields the same ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_2a55_8d0e_4b7a_9c43_0e51_7f2d_b8a1);

pub fn event_id(tenant: &TenantId, command_id: &CommandId, seq: usize) -> Uuid {
    let name = format!("{}\u{1f}{}\u{1f}{}", tenant, command_id, seq);
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

pub fn format_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// Wraps a draft as a CloudEvent. `seq` numbers the events of one command.
pub fn to_cloud_event(
    tenant: &TenantId,
    command_id: &CommandId,
    seq: usize,
    draft: EventDraft,
    now: OffsetDateTime,
) -> OutboxEvent {
    let id = event_id(tenant, command_id, seq);
    let cloud_event = serde_json::json!({
        "specversion": "1.0",
        "id": id.to_string(),
        "source": format!("/lifecycle/{tenant}"),
        "type": draft.event_type.type_name(),
        "subject": format!("{}/{}", draft.entity_kind.as_str(), draft.entity_id),
        "time": format_time(now),
        "datacontenttype": "application/json",
        "tenant": tenant.as_str(),
        "commandid": command_id.as_str(),
        "entityversion": draft.version,
        "data": Value::Object(draft.data),
    });
    OutboxEvent {
        id,
        tenant: tenant.as_str().to_owned(),
        routing_key: format!("{}.{}", tenant, draft.event_type.routing_name()),
        event_type: draft.event_type,
        entity_kind: draft.entity_kind,
        entity_id: draft.entity_id,
        version: draft.version,
        cloud_event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::Limits;

    #[test]
    fn event_ids_are_stable_and_distinct() {
        let t = TenantId::parse("acme").unwrap();
        let c = CommandId::parse("cmd-1", &Limits::default()).unwrap();
        assert_eq!(event_id(&t, &c, 0), event_id(&t, &c, 0));
        assert_ne!(event_id(&t, &c, 0), event_id(&t, &c, 1));
        let other = TenantId::parse("globex").unwrap();
        assert_ne!(event_id(&t, &c, 0), event_id(&other, &c, 0));
    }

    #[test]
    fn cloud_event_has_the_contract_fields() {
        let t = TenantId::parse("acme").unwrap();
        let c = CommandId::parse("cmd-1", &Limits::default()).unwrap();
        let draft = EventDraft {
            event_type: EventType::ContactDeactivated,
            entity_kind: EntityKind::Contact,
            entity_id: "c-17".into(),
            version: 8,
            data: Map::new(),
        };
        let e = to_cloud_event(&t, &c, 0, draft, OffsetDateTime::UNIX_EPOCH);
        assert_eq!(e.routing_key, "acme.contact.deactivated");
        let ce = &e.cloud_event;
        assert_eq!(ce["specversion"], "1.0");
        assert_eq!(ce["source"], "/lifecycle/acme");
        assert_eq!(ce["type"], "ContactDeactivated");
        assert_eq!(ce["subject"], "contact/c-17");
        assert_eq!(ce["time"], "1970-01-01T00:00:00Z");
        assert_eq!(ce["commandid"], "cmd-1");
        assert_eq!(ce["entityversion"], 8);
        assert_eq!(ce["tenant"], "acme");
        assert_eq!(ce["id"], e.id.to_string());
    }
}
