//! Change events (contract section 5): every event type with its routing
//! name and the typed shape of its `data`, declared once in
//! [`event_types!`]; what the domain emits ([`EventDraft`]) and its
//! CloudEvents 1.0 form as written to the outbox.

use std::collections::BTreeMap;

use super::contact::{ActivityKind, ContactSnapshot, Visibility};
use super::ids::{CommandId, EntityId, TenantId};
use super::kinds::inline;
use super::outcome::EntityKind;
pub use super::ts::format_time;
use super::ts::Ts;
use super::user::UserSnapshot;
use super::Ctx;
use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// Declares the event types, once each:
///
/// ```text
/// event_types! {
///     ContactDeactivated = "contact.deactivated", entity Contact, data OnContact<Reason>;
/// }
/// ```
///
/// The name is the CloudEvents `type`; the literal is the routing name (the
/// routing key is `{tenant}.{routing name}`); `entity` is the kind of entity
/// the event is about (its `subject`); `data` is the type of the event's own
/// fields, which [`Data`] completes with `actor` and `issued_at`. From this
/// come [`EventType`] and [`EventData`], whose variant an emit site builds,
/// and the published schema: a new event type is one line here (and a data
/// type, unless an existing shape fits) plus its emit site.
macro_rules! event_types {
    ( $( $variant:ident = $routing:literal, entity $entity:ident, data $data:ty; )+ ) => {
        /// Every event type of the contract.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventType {
            $( $variant, )+
        }

        impl EventType {
            pub const ALL: &'static [EventType] = &[$( EventType::$variant, )+];

            /// The CloudEvents `type`.
            pub fn type_name(self) -> &'static str {
                match self { $( EventType::$variant => stringify!($variant), )+ }
            }

            /// The second half of the event routing key `{tenant}.{routing name}`.
            pub fn routing_name(self) -> &'static str {
                match self { $( EventType::$variant => $routing, )+ }
            }

            /// What the event is about: the first half of its `subject`.
            pub fn entity_kind(self) -> EntityKind {
                match self { $( EventType::$variant => EntityKind::$entity, )+ }
            }

            /// The JSON Schema of the event's `data`, from its type.
            pub fn data_schema(self, gen: &mut SchemaGenerator) -> Schema {
                match self { $( EventType::$variant => inline::<Data<'static, $data>>(gen), )+ }
            }
        }

        /// An event's own fields, by type: what an emit site builds.
        #[derive(Debug)]
        pub enum EventData {
            $( $variant($data), )+
        }

        impl EventData {
            pub fn event_type(&self) -> EventType {
                match self { $( EventData::$variant(_) => EventType::$variant, )+ }
            }

            /// The `data` object: the command's `actor` and `issued_at`, then the type's fields.
            fn into_object(self, ctx: &Ctx<'_>) -> Map<String, Value> {
                match self { $( EventData::$variant(data) => object(ctx, data), )+ }
            }
        }
    };
}

event_types! {
    ContactCreated = "contact.created", entity Contact, data OnContact<Created>;
    ContactUpdated = "contact.updated", entity Contact, data OnContact<Changed<ContactField>>;
    ContactDeactivated = "contact.deactivated", entity Contact, data OnContact<Reason>;
    ContactReactivated = "contact.reactivated", entity Contact, data OnContact<Reason>;
    ContactStatusChanged = "contact.status_changed", entity Contact,
        data OnContact<FromTo<String>>;
    ContactEmployerChanged = "contact.employer_changed", entity Contact,
        data OnContact<FromTo<Placement>>;
    ContactVisibilityChanged = "contact.visibility_changed", entity Contact,
        data OnContact<FromTo<Visibility>>;
    ContactAttributesChanged = "contact.attributes_changed", entity Contact,
        data OnContact<AttributesChanged>;
    ContactApproved = "contact.approved", entity Contact, data OnContact<Reason>;
    ContactRejected = "contact.rejected", entity Contact, data OnContact<Reason>;
    ContactArchived = "contact.archived", entity Contact, data OnContact<Reason>;
    ContactRevived = "contact.revived", entity Contact, data OnContact<Reason>;
    ContactActivityLogged = "contact.activity_logged", entity Contact,
        data OnContact<ActivityLogged>;
    ContactDeleted = "contact.deleted", entity Contact, data ContactDeleted;
    ContactEmailSuppressed = "contact.email_suppressed", entity Contact, data EmailSuppressed;
    ContactEmailUnsuppressed = "contact.email_unsuppressed", entity Contact,
        data OnContact<EmailUnsuppressed>;
    EmployerUpserted = "employer.upserted", entity Employer, data EmployerUpserted;
    RoleUpserted = "role.upserted", entity Role, data RoleUpserted;
    UserCreated = "user.created", entity User, data OnUser<Created>;
    UserUpdated = "user.updated", entity User, data OnUser<Changed<UserField>>;
    UserAccessRevoked = "user.access_revoked", entity User, data OnUser<Reason>;
    UserAccessRestored = "user.access_restored", entity User, data OnUser<Reason>;
    UserRoleChanged = "user.role_changed", entity User,
        data OnUser<FromTo<Option<EntityId>, EntityId>>;
    UserDeleted = "user.deleted", entity User, data UserDeleted;
    ContactRestored = "contact.restored", entity Contact, data OnContact<Created>;
    UserRestored = "user.restored", entity User, data OnUser<Created>;
    ContactErased = "contact.erased", entity Contact, data ContactErased;
    UserErased = "user.erased", entity User, data UserErased;
    CommandScheduled = "command.scheduled", entity Command, data CommandScheduled;
    CommandCancelled = "command.cancelled", entity Command, data CommandCancelled;
    GuardrailTripped = "guardrail.tripped", entity Tenant, data GuardrailTripped;
    GuardrailReleased = "guardrail.released", entity Tenant, data GuardrailReleased;
}

/// A command will apply at `effective_at` (contract section 12).
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CommandScheduled {
    pub command_id: String,
    #[serde(rename = "type")]
    pub command_type: String,
    pub effective_at: Ts,
    /// The AMQP user the command was authorised as.
    pub user_id: Option<String>,
}

/// A scheduled command was cancelled; the event's `commandid` is the cancel's.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct CommandCancelled {
    pub command_id: String,
}

/// The guardrail tripped: the allowance and the command that would have
/// exceeded it.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GuardrailTripped {
    pub max_changes: u64,
    /// The sliding window, like `1h`.
    pub window: String,
    /// Destructive changes applied in the window.
    pub count: u64,
    pub command_id: String,
    /// The AMQP user the tripping command was authorised as.
    pub user_id: Option<String>,
}

/// An operator released or discarded held commands.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct GuardrailReleased {
    /// Commands applied by the release (stale ones included).
    pub released: u64,
    pub discarded: u64,
}

/// The event's data: the `actor` and `issued_at` of the command that caused
/// it, then the fields of its type.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Data<'a, T> {
    pub actor: Option<&'a str>,
    pub issued_at: Ts,
    #[serde(flatten)]
    pub data: T,
}

fn object<T: Serialize>(ctx: &Ctx<'_>, data: T) -> Map<String, Value> {
    let data = Data {
        actor: ctx.actor,
        issued_at: Ts(ctx.issued_at),
        data,
    };
    match serde_json::to_value(&data) {
        Ok(Value::Object(object)) => object,
        // Structs of strings, numbers and string-keyed maps: always an object.
        other => unreachable!("event data serialise to an object, not {other:?}"),
    }
}

/// An event about a contact: its type's fields and the contact's snapshot
/// after the command.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OnContact<T> {
    #[serde(flatten)]
    pub change: T,
    pub contact: ContactSnapshot,
}

/// An event about a user: its type's fields and the user's snapshot after
/// the command.
#[derive(Debug, Serialize, JsonSchema)]
pub struct OnUser<T> {
    #[serde(flatten)]
    pub change: T,
    pub user: UserSnapshot,
}

/// No fields besides the snapshot.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Created {}

/// The reason the command gave, null when it gave none.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Reason {
    pub reason: Option<String>,
}

/// The fields an upsert changed.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Changed<F> {
    pub changed: Vec<F>,
}

/// A contact's profile fields, as `ContactUpdated` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContactField {
    FirstName,
    LastName,
    Email,
    Phone,
    Title,
}

/// A user's profile fields, as `UserUpdated` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    Email,
    Name,
    EmployerId,
    ContactId,
}

/// A value before and after the command.
#[derive(Debug, Serialize, JsonSchema)]
pub struct FromTo<F, T = F> {
    pub from: F,
    pub to: T,
}

/// Where a contact works.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct Placement {
    pub employer_id: Option<EntityId>,
    pub department: Option<String>,
}

/// The attributes a command changed, by name.
#[derive(Debug, Serialize, JsonSchema)]
pub struct AttributesChanged {
    pub changed: BTreeMap<String, AttributeChange>,
}

/// One attribute before and after the command; null where it is not set.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(deny_unknown_fields)]
pub struct AttributeChange {
    #[schemars(schema_with = "attribute_value")]
    pub from: Option<Value>,
    #[schemars(schema_with = "attribute_value")]
    pub to: Option<Value>,
}

/// What an attribute may hold (see `check_attributes`); `Value` itself would
/// say "anything".
fn attribute_value(_: &mut SchemaGenerator) -> Schema {
    json_schema!({"type": ["string", "number", "boolean", "null"]})
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ActivityLogged {
    pub kind: ActivityKind,
    pub action_code: Option<String>,
    /// The contact's employer when the activity was logged.
    pub employer_id: Option<EntityId>,
}

/// The ids and the email, so that mailing systems can erase it; no snapshot.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContactDeleted {
    pub contact_id: EntityId,
    pub email: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EmailSuppressed {
    pub email: String,
    pub reasons: Vec<String>,
    /// Absent when the suppression comes with a delete.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schemars(with = "ContactSnapshot")]
    pub contact: Option<ContactSnapshot>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EmailUnsuppressed {
    pub email: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct EmployerUpserted {
    pub employer_id: EntityId,
    pub name: String,
    pub departments: Vec<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct RoleUpserted {
    pub role_id: EntityId,
    pub name: String,
    pub permissions: Vec<String>,
}

/// The ids and the email, so that mailing systems can erase it; no snapshot.
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserDeleted {
    pub user_id: EntityId,
    pub email: String,
}

/// The ids and a hash of the address, never the address: what a system
/// that kept a copy needs to find and forget it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ContactErased {
    pub contact_id: EntityId,
    /// Lower-case hex SHA-256 of the trimmed, lower-cased email; null when
    /// the contact had none.
    pub email_sha256: Option<String>,
}

/// See [`ContactErased`].
#[derive(Debug, Serialize, JsonSchema)]
pub struct UserErased {
    pub user_id: EntityId,
    pub email_sha256: String,
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

impl EventDraft {
    /// The event `data` describes, about `entity_id` at `version`, caused by
    /// the command of `ctx`.
    pub fn new(ctx: &Ctx<'_>, entity_id: &EntityId, version: u64, data: EventData) -> EventDraft {
        let event_type = data.event_type();
        EventDraft {
            event_type,
            entity_kind: event_type.entity_kind(),
            entity_id: entity_id.to_string(),
            version,
            data: data.into_object(ctx),
        }
    }
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
    /// Its entity was erased: `data` goes once the event is published.
    pub scrub: bool,
}

/// Namespace of the name-based (v5) event ids: an event's id is derived from
/// tenant, command id and its position in the command, so re-deciding the same
/// command (a retried transaction) yields the same ids.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6c1f_2a55_8d0e_4b7a_9c43_0e51_7f2d_b8a1);

pub fn event_id(tenant: &TenantId, command_id: &CommandId, seq: usize, t: EventType) -> Uuid {
    // The type is part of the name: a command held by the guardrail emits
    // `GuardrailTripped` first and its own events when released later, each
    // numbered from 0.
    let name = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{}",
        tenant,
        command_id,
        seq,
        t.type_name()
    );
    Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
}

/// Wraps a draft as a CloudEvent. `seq` numbers the events of one command.
pub fn to_cloud_event(
    tenant: &TenantId,
    command_id: &CommandId,
    seq: usize,
    draft: EventDraft,
    now: OffsetDateTime,
) -> OutboxEvent {
    let id = event_id(tenant, command_id, seq, draft.event_type);
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
        scrub: false,
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
        let e = EventType::ContactDeactivated;
        assert_eq!(event_id(&t, &c, 0, e), event_id(&t, &c, 0, e));
        assert_ne!(event_id(&t, &c, 0, e), event_id(&t, &c, 1, e));
        assert_ne!(
            event_id(&t, &c, 0, e),
            event_id(&t, &c, 0, EventType::GuardrailTripped)
        );
        let other = TenantId::parse("globex").unwrap();
        assert_ne!(event_id(&t, &c, 0, e), event_id(&other, &c, 0, e));
    }

    #[test]
    fn routing_names_are_distinct_and_start_with_the_entity_kind() {
        let mut seen = std::collections::BTreeSet::new();
        for &t in EventType::ALL {
            assert!(seen.insert(t.routing_name()), "{t:?}");
            let (kind, _) = t.routing_name().split_once('.').unwrap();
            // A tenant's events are the guardrail's (contract section 10).
            let expected = match t.entity_kind() {
                EntityKind::Tenant => "guardrail",
                EntityKind::Command => "command",
                other => other.as_str(),
            };
            assert_eq!(kind, expected, "{t:?}");
        }
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
