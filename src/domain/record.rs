//! What the store holds under an entity id, and the checks every entity's
//! decision shares.

use super::outcome::{EntityKind, ErrorCode, Rejection};
use super::ts::Ts;

/// An entity's record: never seen, deleted (a tombstone), or live.
// One record per entity of a batch; the size difference between variants
// is not worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Record<T> {
    Absent,
    /// A tombstone: the delete's `issued_at` and version; after a soft
    /// delete, also what was deleted, until its restore window ends.
    Deleted {
        at: Ts,
        version: u64,
        kept: Option<Kept<T>>,
    },
    Live(T),
}

impl<T> Record<T> {
    pub fn live(&self) -> Option<&T> {
        match self {
            Record::Live(t) => Some(t),
            Record::Deleted { .. } | Record::Absent => None,
        }
    }
}

impl<T> Record<T> {
    /// The entity's data the store still holds: live, or kept by a soft
    /// delete (even past its window, until the purge).
    pub fn held_state(&self) -> Option<&T> {
        match self {
            Record::Live(t) => Some(t),
            Record::Deleted { kept: Some(k), .. } => Some(&k.state),
            Record::Deleted { kept: None, .. } | Record::Absent => None,
        }
    }
}

/// What an erasure works on (contract section 11).
pub struct Erasable<'a, T> {
    /// The data the store still holds: live, or kept by a soft delete.
    pub state: &'a T,
    pub live: bool,
    /// The version the tombstone follows.
    pub version: u64,
    /// The tombstone's time: the erasure's, or a later delete's.
    pub at: Ts,
}

impl<T: super::working::Versioned> Record<T> {
    /// `None` when nothing is held: never existed, hard-deleted, purged or
    /// already erased.
    pub fn erasable(&self, issued_at: time::OffsetDateTime) -> Option<Erasable<'_, T>> {
        match self {
            Record::Live(t) => Some(Erasable {
                state: t,
                live: true,
                version: t.version(),
                at: Ts(issued_at),
            }),
            Record::Deleted {
                kept: Some(k),
                version,
                at,
            } => Some(Erasable {
                state: &k.state,
                live: false,
                version: *version,
                at: Ts(at.get().max(issued_at)),
            }),
            Record::Deleted { kept: None, .. } | Record::Absent => None,
        }
    }
}

/// A soft-deleted entity as it was, restorable until `purge_after`.
#[derive(Clone, Debug, PartialEq)]
pub struct Kept<T> {
    pub state: Box<T>,
    pub purge_after: Ts,
}

impl<T> Record<T> {
    /// What a soft delete kept, while its restore window is open at `now`.
    pub fn restorable(&self, now: time::OffsetDateTime) -> Option<&T> {
        match self {
            Record::Deleted { kept: Some(k), .. } if now < k.purge_after.get() => Some(&k.state),
            Record::Deleted { .. } | Record::Absent | Record::Live(_) => None,
        }
    }
}

/// `expected_version` must equal the entity's version (0 when it does not exist).
pub fn check_version(
    kind: EntityKind,
    expected: Option<u64>,
    current: u64,
) -> Result<(), Rejection> {
    match expected {
        Some(e) if e != current => Err(Rejection::new(
            ErrorCode::VersionConflict,
            format!(
                "expected version {e}, the {} is at version {current}",
                kind.as_str()
            ),
        )),
        _ => Ok(()),
    }
}
