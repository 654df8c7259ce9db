//! Erased addresses (contract section 11): how an email is compared, its
//! plain SHA-256 for the erasure events, and the blocklist a decision reads.
//! The keyed hash the store keeps lives with the store (`crate::hash_key`):
//! the domain only sees which addresses are erased.

use sha2::{Digest, Sha256};
use std::collections::BTreeSet;

/// The form addresses are compared in: trimmed, lower case.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Lower-case hex SHA-256 of the normalised address, as `ContactErased` and
/// `UserErased` carry it.
pub fn email_sha256(email: &str) -> String {
    let digest = Sha256::digest(normalize_email(email).as_bytes());
    hex::encode(digest)
}

/// The erased addresses of one tenant, among those a batch looks at
/// (normalised). The store fills it before deciding; an erase adds to it
/// and a consent removes from it, so later commands of the batch see that.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Blocklist {
    erased: BTreeSet<String>,
}

impl Blocklist {
    pub fn of<I: IntoIterator<Item = S>, S: AsRef<str>>(emails: I) -> Blocklist {
        Blocklist {
            erased: emails
                .into_iter()
                .map(|e| normalize_email(e.as_ref()))
                .collect(),
        }
    }

    /// Whether `email` (any case, untrimmed) was erased.
    pub fn holds(&self, email: &str) -> bool {
        self.erased.contains(&normalize_email(email))
    }

    pub fn add(&mut self, email: &str) {
        self.erased.insert(normalize_email(email));
    }

    pub fn remove(&mut self, email: &str) {
        self.erased.remove(&normalize_email(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_trimmed_and_in_any_case() {
        let list = Blocklist::of([" Ann.Lee@Example.COM "]);
        assert!(list.holds("ann.lee@example.com"));
        assert!(list.holds("  ANN.LEE@EXAMPLE.COM"));
        assert!(!list.holds("ann.lee@example.org"));
    }

    #[test]
    fn the_event_hash_is_of_the_normalised_address() {
        // printf '%s' 'ann@example.com' | sha256sum
        let expected = "71d4f55f72fa128dfb468a1a3901507c804b74316488744d769d7f4b16696476";
        assert_eq!(email_sha256("ann@example.com"), expected);
        assert_eq!(email_sha256(" ANN@Example.com "), expected);
    }

    #[test]
    fn add_and_remove_take_any_case() {
        let mut list = Blocklist::default();
        list.add("Bob@Example.com");
        assert!(list.holds("bob@example.com"));
        list.remove("BOB@example.com");
        assert!(!list.holds("bob@example.com"));
    }
}
