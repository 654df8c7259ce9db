//! The batch's entities: contacts and users as the batch has decided them
//! so far, which of them must be written, and the writes that go with them
//! (activity, employers), with an undo log for a bulk that is refused.

use std::collections::{BTreeSet, HashMap};

use sqlx::PgConnection;

use super::Key;
use crate::domain::contact::{Activity, ContactRecord};
use crate::domain::user::UserRecord;
use crate::store::entities;
use crate::store::StoreError;

#[derive(Default)]
pub(super) struct EntityCache {
    contacts: HashMap<Key, ContactRecord>,
    users: HashMap<Key, UserRecord>,
    dirty_contacts: BTreeSet<Key>,
    dirty_users: BTreeSet<Key>,
    /// Rows inserted as lock placeholders for creating upserts.
    contact_placeholders: Vec<Key>,
    user_placeholders: Vec<Key>,
    employers: BTreeSet<Key>,
    activities: Vec<(Key, String, Activity)>,
    undo: Vec<Undo>,
    /// A bulk is being applied under its savepoint: a flush keeps the undo
    /// log, since the savepoint takes back what the flush wrote.
    pub(super) in_bulk: bool,
}

/// A cache write, for rolling back a refused bulk.
enum Undo {
    Contact(Key, Option<Box<ContactRecord>>, bool),
    User(Key, Option<Box<UserRecord>>, bool),
}

/// Takes back one cache write: the old record back (or none), and the key
/// clean again if the write made it dirty.
fn take_back<R>(
    cache: &mut HashMap<Key, R>,
    dirty: &mut BTreeSet<Key>,
    key: Key,
    old: Option<Box<R>>,
    was_dirty: bool,
) {
    if !was_dirty {
        dirty.remove(&key);
    }
    match old {
        Some(r) => cache.insert(key, *r),
        None => cache.remove(&key),
    };
}

/// Buffer lengths and undo position at a point in the batch.
pub(super) struct Checkpoint {
    undo: usize,
    activities: usize,
    employers: BTreeSet<Key>,
}

impl EntityCache {
    pub(super) fn contact(&self, key: &Key) -> ContactRecord {
        self.contacts
            .get(key)
            .cloned()
            .unwrap_or(ContactRecord::Absent)
    }

    pub(super) fn user(&self, key: &Key) -> UserRecord {
        self.users.get(key).cloned().unwrap_or(UserRecord::Absent)
    }

    pub(super) fn cached_contact(&self, key: &Key) -> Option<&ContactRecord> {
        self.contacts.get(key)
    }

    pub(super) fn cached_user(&self, key: &Key) -> Option<&UserRecord> {
        self.users.get(key)
    }

    /// A record as loaded (locked) from the store.
    pub(super) fn loaded_contact(&mut self, key: Key, record: ContactRecord) {
        self.contacts.insert(key, record);
    }

    pub(super) fn loaded_user(&mut self, key: Key, record: UserRecord) {
        self.users.insert(key, record);
    }

    pub(super) fn placeholders(&mut self, contacts: Vec<Key>, users: Vec<Key>) {
        self.contact_placeholders = contacts;
        self.user_placeholders = users;
    }

    pub(super) fn set_contact(&mut self, key: Key, record: ContactRecord) {
        let was_dirty = !self.dirty_contacts.insert(key.clone());
        let old = self.contacts.insert(key.clone(), record);
        self.undo
            .push(Undo::Contact(key, old.map(Box::new), was_dirty));
    }

    pub(super) fn set_user(&mut self, key: Key, record: UserRecord) {
        let was_dirty = !self.dirty_users.insert(key.clone());
        let old = self.users.insert(key.clone(), record);
        self.undo
            .push(Undo::User(key, old.map(Box::new), was_dirty));
    }

    pub(super) fn log_activity(&mut self, key: Key, command_id: &str, activity: Activity) {
        self.activities.push((key, command_id.to_owned(), activity));
    }

    pub(super) fn ensure_employers(&mut self, keys: impl IntoIterator<Item = Key>) {
        self.employers.extend(keys);
    }

    /// A new bulk starts: nothing before it is taken back.
    pub(super) fn forget_undo(&mut self) {
        self.undo.clear();
    }

    pub(super) fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            undo: self.undo.len(),
            activities: self.activities.len(),
            employers: self.employers.clone(),
        }
    }

    pub(super) fn rollback_to(&mut self, cp: Checkpoint) {
        while self.undo.len() > cp.undo {
            match self.undo.pop() {
                Some(Undo::Contact(key, old, was_dirty)) => take_back(
                    &mut self.contacts,
                    &mut self.dirty_contacts,
                    key,
                    old,
                    was_dirty,
                ),
                Some(Undo::User(key, old, was_dirty)) => {
                    take_back(&mut self.users, &mut self.dirty_users, key, old, was_dirty)
                }
                None => break,
            }
        }
        self.activities.truncate(cp.activities);
        self.employers = cp.employers;
    }

    /// Writes buffered entity changes, so that queries see them.
    pub(super) async fn flush(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        let contacts: Vec<(Key, ContactRecord)> = std::mem::take(&mut self.dirty_contacts)
            .into_iter()
            .map(|k| {
                let r = self.contact(&k);
                (k, r)
            })
            .collect();
        entities::save(conn, &contacts).await?;
        let users: Vec<(Key, UserRecord)> = std::mem::take(&mut self.dirty_users)
            .into_iter()
            .map(|k| {
                let r = self.user(&k);
                (k, r)
            })
            .collect();
        entities::save(conn, &users).await?;
        let employers: Vec<Key> = std::mem::take(&mut self.employers).into_iter().collect();
        entities::ensure_employers(conn, &employers).await?;
        entities::insert_activities(conn, &std::mem::take(&mut self.activities)).await?;
        // Outside a bulk, undo never reaches back past what is written;
        // inside one, the savepoint takes back what this flush wrote.
        if !self.in_bulk {
            self.undo.clear();
        }
        Ok(())
    }

    /// The end of the batch: what is pending, then the placeholders of
    /// creations that did not happen (refused upserts) go.
    pub(super) async fn finish(&mut self, conn: &mut PgConnection) -> Result<(), StoreError> {
        self.flush(conn).await?;
        let unused: Vec<Key> = self
            .contact_placeholders
            .iter()
            .filter(|k| self.contacts.get(*k) == Some(&ContactRecord::Absent))
            .cloned()
            .collect();
        entities::delete_placeholders(conn, entities::Table::Contacts, &unused).await?;
        let unused: Vec<Key> = self
            .user_placeholders
            .iter()
            .filter(|k| self.users.get(*k) == Some(&UserRecord::Absent))
            .cloned()
            .collect();
        entities::delete_placeholders(conn, entities::Table::Users, &unused).await
    }
}
