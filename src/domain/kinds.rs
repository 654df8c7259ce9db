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
///             bulk true, frozen false, destructive true, wire wire::Reason;
///     }
/// }
/// ```
///
/// `id`: the payload field naming the entity; `bulk`: allowed as a `contact.bulk` operation; `frozen`: accepted while
/// the entity is frozen (a rejected contact); `destructive`: counted by the
/// mass-change guardrail when applied; `wire`: the payload's wire
/// type, whose JSON Schema is the published one.
macro_rules! command_kinds {
    (
        $(#[$meta:meta])*
        pub enum $kind:ident {
            $( $variant:ident = $name:literal, id $id:literal, aspect $aspect:literal,
               bulk $bulk:literal, frozen $frozen:literal, destructive $destructive:literal,
               wire $wire:ty; )+
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

            /// Counted by the mass-change guardrail when applied.
            pub fn destructive(self) -> bool {
                match self { $( $kind::$variant => $destructive, )+ }
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

/// A wire type's own schema, inlined; what it refers to stays in `gen`.
pub fn inline<T: schemars::JsonSchema>(gen: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let reference = gen.subschema_for::<T>();
    let name = T::schema_name();
    gen.definitions_mut()
        .remove(name.as_ref())
        .and_then(|v| schemars::Schema::try_from(v).ok())
        .unwrap_or(reference)
}
