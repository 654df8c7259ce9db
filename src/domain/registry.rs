//! Every command type, declared once. Each entity module declares its
//! command kinds with [`super::kinds::command_kinds!`] (name, entity id,
//! aspect, bulk, frozen, guardrail and blocklist rules, wire type); [`CommandType`] gathers them. Lists, parsing and
//! payload schemas derive from those declarations; decoding and deciding
//! match on the kinds exhaustively, so a kind without its decoder or its
//! decision does not compile.

use super::contact::command::ContactKind;
use super::directory::DirectoryKind;
use super::kinds::{inline, BlocklistLock};
use super::user::command::UserKind;
use serde_json::{Map, Value};

/// A command type of contract section 3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CommandType {
    Contact(ContactKind),
    /// `contact.bulk`: a contact operation applied to many contacts.
    Bulk,
    Directory(DirectoryKind),
    User(UserKind),
    /// `command.cancel`: cancels a scheduled command (contract section 12).
    Cancel,
}

pub const BULK: &str = "contact.bulk";
pub const CANCEL: &str = "command.cancel";

impl CommandType {
    /// Every command type, in contract order.
    pub fn all() -> impl Iterator<Item = CommandType> {
        let contact = ContactKind::ALL.iter().map(|k| CommandType::Contact(*k));
        let directory = DirectoryKind::ALL
            .iter()
            .map(|k| CommandType::Directory(*k));
        let user = UserKind::ALL.iter().map(|k| CommandType::User(*k));
        contact
            .chain(std::iter::once(CommandType::Bulk))
            .chain(directory)
            .chain(user)
            .chain(std::iter::once(CommandType::Cancel))
    }

    /// Whether `effective_at` is allowed: not on upserts, activity or cancels.
    pub fn may_be_scheduled(self) -> bool {
        match self {
            CommandType::Contact(k) => !matches!(k, ContactKind::Upsert | ContactKind::LogActivity),
            CommandType::User(k) => k != UserKind::Upsert,
            CommandType::Bulk => true,
            CommandType::Directory(_) | CommandType::Cancel => false,
        }
    }

    /// The blocklist lock a batch takes before deciding it: a bulk reads
    /// contacts' suppression, a cancel touches no entity.
    pub fn blocklist(self) -> BlocklistLock {
        match self {
            CommandType::Contact(k) => k.blocklist(),
            CommandType::User(k) => k.blocklist(),
            CommandType::Directory(k) => k.blocklist(),
            CommandType::Bulk => BlocklistLock::Shared,
            CommandType::Cancel => BlocklistLock::Unneeded,
        }
    }

    pub fn parse(name: &str) -> Option<CommandType> {
        if name == BULK {
            return Some(CommandType::Bulk);
        }
        if name == CANCEL {
            return Some(CommandType::Cancel);
        }
        ContactKind::parse(name)
            .map(CommandType::Contact)
            .or_else(|| DirectoryKind::parse(name).map(CommandType::Directory))
            .or_else(|| UserKind::parse(name).map(CommandType::User))
    }

    pub fn name(self) -> &'static str {
        match self {
            CommandType::Contact(k) => k.name(),
            CommandType::Bulk => BULK,
            CommandType::Directory(k) => k.name(),
            CommandType::User(k) => k.name(),
            CommandType::Cancel => CANCEL,
        }
    }

    /// The JSON Schema of the payload: the wire type's, plus the entity id
    /// the decoder splits off first, so schema and decoder cannot drift.
    pub fn payload_schema(self, gen: &mut schemars::SchemaGenerator) -> Value {
        let (schema, id, aspect) = match self {
            CommandType::Contact(k) => (k.wire_schema(gen), Some(k.id_field()), k.aspect()),
            CommandType::Bulk => (
                inline::<super::contact::bulk::wire::Bulk>(gen),
                None,
                "each contact's, by its operation",
            ),
            CommandType::Directory(k) => (k.wire_schema(gen), Some(k.id_field()), k.aspect()),
            CommandType::User(k) => (k.wire_schema(gen), Some(k.id_field()), k.aspect()),
            CommandType::Cancel => (
                inline::<super::payload::CancelWire>(gen),
                None,
                "none (the scheduled command's own)",
            ),
        };
        let mut schema = schema.to_value();
        let Some(obj) = schema.as_object_mut() else {
            return schema;
        };
        let mut required: Vec<Value> = obj
            .get("required")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(id) = id {
            if let Some(props) = obj
                .entry("properties")
                .or_insert_with(|| Value::Object(Map::new()))
                .as_object_mut()
            {
                props.insert(
                    id.to_owned(),
                    serde_json::json!({"type": "string", "minLength": 1, "maxLength": 128}),
                );
            }
            required.push(Value::from(id));
        }
        // The key must be present; null removes the employer.
        if self == CommandType::Contact(ContactKind::ChangeEmployer) {
            required.push(Value::from("employer_id"));
        }
        obj.insert("required".into(), Value::Array(required));
        obj.insert(
            "description".into(),
            Value::from(format!("Payload of `{}`; aspect: {aspect}.", self.name())),
        );
        schema
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_and_names_are_unique() {
        let names: Vec<&str> = CommandType::all().map(CommandType::name).collect();
        assert_eq!(names.len(), 27);
        let unique: std::collections::BTreeSet<&&str> = names.iter().collect();
        assert_eq!(unique.len(), names.len());
        for t in CommandType::all() {
            assert_eq!(CommandType::parse(t.name()), Some(t));
        }
        assert_eq!(CommandType::parse("contact.explode"), None);
    }

    #[test]
    fn bulk_takes_any_contact_command_but_upsert_delete_and_the_privacy_ones() {
        let refused: Vec<&str> = ContactKind::ALL
            .iter()
            .filter(|k| !k.allowed_in_bulk())
            .map(|k| k.name())
            .collect();
        assert_eq!(
            refused,
            [
                "contact.upsert",
                "contact.delete",
                "contact.erase",
                "contact.confirm_consent"
            ]
        );
    }
}
