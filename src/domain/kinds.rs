//! [`command_kinds!`]: how an entity module declares its command kinds,
//! once each. The generated methods are what [`super::registry`] and the
//! schemas derive everything from.

/// Declares an entity's command kinds:
///
/// ```text
/// command_kinds! {
///     /// doc
///     pub enum ContactKind {
///         Deactivate = "contact.deactivate", id "contact_id", aspect "activation",
///             bulk true, frozen false, destructive WhenApplied, blocklist Shared,
///             wire wire::Reason;
///     }
/// }
/// ```
///
/// `id`: the payload field naming the entity; `bulk`: allowed as a `contact.bulk` operation; `frozen`: accepted while
/// the entity is frozen (a rejected contact); `destructive`: when it is
/// counted by the mass-change guardrail ([`Destructive`]); `blocklist`: the
/// lock on the tenant's erased-address blocklist a batch takes before
/// deciding it ([`BlocklistLock`]); `wire`: the payload's wire type, whose
/// JSON Schema is the published one.
macro_rules! command_kinds {
    (
        $(#[$meta:meta])*
        pub enum $kind:ident {
            $( $variant:ident = $name:literal, id $id:literal, aspect $aspect:literal,
               bulk $bulk:literal, frozen $frozen:literal, destructive $destructive:ident,
               blocklist $blocklist:ident, wire $wire:ty; )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $kind {
            $( $variant, )+
        }

        impl $kind {
            pub const ALL: &'static [$kind] = &[$( $kind::$variant, )+];

            pub fn name(self) -> &'static str {
                match self { $( $kind::$variant => $name, )+ }
            }

            pub fn parse(name: &str) -> Option<$kind> {
                match name {
                    $( $name => Some($kind::$variant), )+
                    _ => None,
                }
            }

            /// The payload field naming the entity.
            pub fn id_field(self) -> &'static str {
                match self { $( $kind::$variant => $id, )+ }
            }

            /// The aspect the command is judged by (contract section 3).
            pub fn aspect(self) -> &'static str {
                match self { $( $kind::$variant => $aspect, )+ }
            }

            /// Allowed as the operation of a `contact.bulk`.
            pub fn allowed_in_bulk(self) -> bool {
                match self { $( $kind::$variant => $bulk, )+ }
            }

            /// Accepted while the entity is frozen.
            pub fn allowed_while_frozen(self) -> bool {
                match self { $( $kind::$variant => $frozen, )+ }
            }

            /// When it counts toward the mass-change guardrail.
            pub fn destructive(self) -> $crate::domain::kinds::Destructive {
                match self { $( $kind::$variant => $crate::domain::kinds::Destructive::$destructive, )+ }
            }

            /// The blocklist lock a batch takes before deciding it.
            pub fn blocklist(self) -> $crate::domain::kinds::BlocklistLock {
                match self { $( $kind::$variant => $crate::domain::kinds::BlocklistLock::$blocklist, )+ }
            }

            /// The names of the kinds accepted while the entity is frozen.
            pub fn frozen_names() -> Vec<&'static str> {
                Self::ALL
                    .iter()
                    .filter(|k| k.allowed_while_frozen())
                    .map(|k| k.name())
                    .collect()
            }

            /// The payload's JSON Schema, from its wire type.
            pub fn wire_schema(self, gen: &mut schemars::SchemaGenerator) -> schemars::Schema {
                match self {
                    $( $kind::$variant => $crate::domain::kinds::inline::<$wire>(gen), )+
                }
            }
        }
    };
}
pub(crate) use command_kinds;

/// When a command counts toward the mass-change guardrail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Destructive {
    Never,
    /// Whenever it is applied.
    WhenApplied,
    /// When applying it deactivates the entity (an activity whose action
    /// code deactivates).
    WhenItDeactivates,
}

impl Destructive {
    /// Whether a command of this kind counts, given whether it was applied
    /// and whether it deactivated its entity.
    pub fn counts(self, applied: bool, deactivated: bool) -> bool {
        match self {
            Destructive::Never => false,
            Destructive::WhenApplied => applied,
            Destructive::WhenItDeactivates => applied && deactivated,
        }
    }

    /// Whether applying it may count: the guardrail row is locked first.
    pub fn may_count(self) -> bool {
        match self {
            Destructive::Never => false,
            Destructive::WhenApplied | Destructive::WhenItDeactivates => true,
        }
    }
}

/// The lock on a tenant's erased-address blocklist a batch takes, before
/// any row lock, for a command of this kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum BlocklistLock {
    /// It neither reads nor changes contacts' suppression.
    Unneeded,
    /// It reads the blocklist (contacts' suppression depends on it).
    Shared,
    /// It changes the blocklist (erasure, consent).
    Exclusive,
}

/// A wire type's own schema, inlined; what it refers to stays in `gen`.
pub fn inline<T: schemars::JsonSchema>(gen: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let reference = gen.subschema_for::<T>();
    let name = T::schema_name();
    gen.definitions_mut()
        .remove(name.as_ref())
        .and_then(|v| schemars::Schema::try_from(v).ok())
        .unwrap_or(reference)
}
