//! The KV table of the store: entries with their indexes, tombstones, and the writes Consul's
//! state store makes on them (set, check-and-set, lock, unlock, deletes), with the undo a
//! failed transaction needs.

use std::collections::BTreeMap;

use crate::go::quote::quote;
use crate::go::uuid::check_uuid;
use crate::store::Session;

/// A KV entry (`structs.DirEntry`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    /// Empty when no session holds the key.
    pub session: String,
    pub lock_index: u64,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Entry {
    pub(crate) fn new(key: &str, value: Vec<u8>, flags: u64, session: &str) -> Entry {
        Entry {
            key: key.to_string(),
            value,
            flags,
            session: session.to_string(),
            lock_index: 0,
            create_index: 0,
            modify_index: 0,
        }
    }

    /// `DirEntry.Equal`: the fields a write can change, without the indexes.
    fn same_content(&self, o: &Entry) -> bool {
        self.key == o.key
            && self.value == o.value
            && self.flags == o.flags
            && self.session == o.session
            && self.lock_index == o.lock_index
    }
}

/// The state of the keys a transaction touches, from before it ran.
pub(crate) struct Undo {
    index: u64,
    entries: BTreeMap<String, Option<Entry>>,
    tombstones: BTreeMap<String, Option<u64>>,
}

/// The KV table with its tombstones and its max index.
#[derive(Clone, Debug, Default)]
pub(crate) struct Kv {
    pub entries: BTreeMap<String, Entry>,
    tombstones: BTreeMap<String, u64>,
    /// Max index of the `kvs` and `tombstones` tables.
    pub index: u64,
}

impl Kv {
    /// `kvsSetTxn`: writes `e`, keeping the existing session unless `update_session`.
    /// An identical write leaves the indexes alone, as Consul does.
    pub(crate) fn set(&mut self, idx: u64, mut e: Entry, update_session: bool) -> Entry {
        let existing = self.entries.get(&e.key);
        e.create_index = existing.map_or(idx, |x| x.create_index);
        if !update_session {
            e.session = existing.map(|x| x.session.clone()).unwrap_or_default();
        }
        if let Some(x) = existing {
            if x.same_content(&e) {
                return x.clone();
            }
        }
        e.modify_index = idx;
        self.index = self.index.max(idx);
        // A key's tombstone stays when the key is written again, as in Consul's graveyard.
        self.entries.insert(e.key.clone(), e.clone());
        e
    }

    /// `kvsSetCASTxn`: `cas == 0` creates only; otherwise the ModifyIndex must match.
    pub(crate) fn cas(&mut self, idx: u64, e: Entry, cas: u64) -> Option<Entry> {
        let existing = self.entries.get(&e.key);
        match (cas, existing) {
            (0, Some(_)) => None,
            (0, None) => Some(self.set(idx, e, false)),
            (_, None) => None,
            (c, Some(x)) if x.modify_index != c => None,
            _ => Some(self.set(idx, e, false)),
        }
    }

    /// `kvsLockTxn`. `Ok(None)`: another session holds the key.
    pub(crate) fn lock(
        &mut self,
        idx: u64,
        mut e: Entry,
        sessions: &BTreeMap<String, Session>,
    ) -> Result<Option<Entry>, String> {
        if e.session.is_empty() {
            return Err("missing session".into());
        }
        check_uuid(&e.session).map_err(|m| format!("failed session lookup: index error: {m}"))?;
        if !sessions.contains_key(&e.session.to_ascii_lowercase()) {
            return Err(format!("invalid session {}", quote(&e.session)));
        }
        match self.entries.get(&e.key) {
            Some(x) if x.session == e.session => {
                e.lock_index = x.lock_index;
            }
            Some(x) if !x.session.is_empty() => return Ok(None),
            Some(x) => e.lock_index = x.lock_index + 1,
            None => e.lock_index = 1,
        }
        Ok(Some(self.set(idx, e, true)))
    }

    /// `kvsUnlockTxn`. `Ok(None)`: not held by that session.
    pub(crate) fn unlock(&mut self, idx: u64, mut e: Entry) -> Result<Option<Entry>, String> {
        if e.session.is_empty() {
            return Err("missing session".into());
        }
        match self.entries.get(&e.key) {
            Some(x) if x.session == e.session => {
                e.lock_index = x.lock_index;
                e.session.clear();
                Ok(Some(self.set(idx, e, true)))
            }
            _ => Ok(None),
        }
    }

    pub(crate) fn delete(&mut self, idx: u64, key: &str) {
        if self.entries.remove(key).is_some() {
            self.tombstones.insert(key.to_string(), idx);
            self.index = self.index.max(idx);
        }
    }

    /// `kvsDeleteCASTxn`: a missing key counts as deleted.
    pub(crate) fn delete_cas(&mut self, idx: u64, key: &str, cas: u64) -> bool {
        match self.entries.get(key) {
            None => true,
            Some(x) if x.modify_index != cas => false,
            Some(_) => {
                self.delete(idx, key);
                true
            }
        }
    }

    /// `kvsDeleteTreeTxn`: deletes every key under `prefix` and, when one was deleted, leaves
    /// a single tombstone, for the prefix itself (none for the empty prefix, whose reads use
    /// the table index anyway). A read of a prefix strictly inside it therefore finds no
    /// tombstone and answers the table's index, as Consul does.
    pub(crate) fn delete_tree(&mut self, idx: u64, prefix: &str) {
        let keys: Vec<String> = self.prefixed(prefix).map(|e| e.key.clone()).collect();
        if keys.is_empty() {
            return;
        }
        for k in keys {
            self.entries.remove(&k);
        }
        if !prefix.is_empty() {
            self.tombstones.insert(prefix.to_string(), idx);
        }
        self.index = self.index.max(idx);
    }

    /// Saves what a transaction over these `(verb, key)` operations may change, so that a
    /// failed transaction can be undone without copying the whole table.
    pub(crate) fn save<'a>(&self, ops: impl Iterator<Item = (&'a str, &'a str)>) -> Undo {
        let mut undo = Undo {
            index: self.index,
            entries: BTreeMap::new(),
            tombstones: BTreeMap::new(),
        };
        for (verb, key) in ops {
            let keys: Vec<String> = if verb == "delete-tree" {
                self.prefixed(key).map(|e| e.key.clone()).collect()
            } else {
                vec![key.to_string()]
            };
            // Only the key's own tombstone changes (a tree delete's is the prefix's).
            undo.tombstones
                .entry(key.to_string())
                .or_insert_with(|| self.tombstones.get(key).copied());
            for k in keys {
                undo.entries
                    .entry(k.clone())
                    .or_insert_with(|| self.entries.get(&k).cloned());
            }
        }
        undo
    }

    /// Puts back what [`save`](Self::save) recorded.
    pub(crate) fn restore(&mut self, undo: Undo) {
        self.index = undo.index;
        for (k, e) in undo.entries {
            match e {
                Some(e) => self.entries.insert(k, e),
                None => self.entries.remove(&k),
            };
        }
        for (k, t) in undo.tombstones {
            match t {
                Some(t) => self.tombstones.insert(k, t),
                None => self.tombstones.remove(&k),
            };
        }
    }

    fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries
            .range(prefix.to_string()..)
            .take_while(move |(k, _)| k.starts_with(prefix))
            .map(|(_, e)| e)
    }

    fn max_index(&self) -> u64 {
        self.index.max(1)
    }

    /// `KVS.Get`: the entry's ModifyIndex, or the table's index when missing.
    pub(crate) fn get(&self, key: &str) -> (u64, Option<&Entry>) {
        match self.entries.get(key) {
            Some(e) => (e.modify_index.max(1), Some(e)),
            None => (self.max_index(), None),
        }
    }

    fn prefix_index(&self, prefix: &str, entries_max: u64) -> u64 {
        let mut l = entries_max;
        if prefix.is_empty() {
            l = self.index;
        } else {
            let g = self
                .tombstones
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(_, i)| *i)
                .max()
                .unwrap_or(0);
            l = l.max(g);
        }
        if l == 0 {
            self.max_index()
        } else {
            l
        }
    }

    /// `KVS.List`.
    pub(crate) fn list(&self, prefix: &str) -> (u64, Vec<Entry>) {
        let v: Vec<Entry> = self.prefixed(prefix).cloned().collect();
        let m = v.iter().map(|e| e.modify_index).max().unwrap_or(0);
        (self.prefix_index(prefix, m), v)
    }

    /// `KVS.ListKeys` with an optional separator.
    pub(crate) fn keys(&self, prefix: &str, sep: &str) -> (u64, Vec<String>) {
        let mut out: Vec<String> = Vec::new();
        let mut m = 0;
        for e in self.prefixed(prefix) {
            m = m.max(e.modify_index);
            let rest = &e.key[prefix.len()..];
            let k = match (!sep.is_empty()).then(|| rest.find(sep)).flatten() {
                Some(pos) => format!("{prefix}{}", &rest[..pos + sep.len()]),
                None => e.key.clone(),
            };
            if out.last() != Some(&k) {
                out.push(k);
            }
        }
        (self.prefix_index(prefix, m), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_with_separator() {
        let mut kv = Kv::default();
        for (i, k) in ["p/a", "p/b", "p/c/d", "p/c/e", "q"].iter().enumerate() {
            kv.set(i as u64 + 1, Entry::new(k, vec![], 0, ""), false);
        }
        assert_eq!(kv.keys("p/", "/").1, vec!["p/a", "p/b", "p/c/"]);
        assert_eq!(kv.keys("p/", "").1.len(), 4);
        assert_eq!(kv.list("p/").0, 4);
    }

    #[test]
    fn a_failed_transaction_is_undone_from_what_it_touched() {
        let mut kv = Kv::default();
        for (i, k) in ["t/a", "t/b", "u/c"].iter().enumerate() {
            kv.set(i as u64 + 1, Entry::new(k, b"v".to_vec(), 0, ""), false);
        }
        let before: Vec<(String, u64)> = kv
            .entries
            .values()
            .map(|e| (e.key.clone(), e.modify_index))
            .collect();
        let index = kv.index;
        let undo = kv.save([("set", "t/a"), ("delete-tree", "t/"), ("set", "new")].into_iter());
        kv.set(10, Entry::new("t/a", b"changed".to_vec(), 0, ""), false);
        kv.delete_tree(10, "t/");
        kv.set(10, Entry::new("new", vec![], 0, ""), false);
        kv.restore(undo);
        let after: Vec<(String, u64)> = kv
            .entries
            .values()
            .map(|e| (e.key.clone(), e.modify_index))
            .collect();
        assert_eq!(before, after);
        assert_eq!(kv.index, index);
        assert!(kv.tombstones.is_empty());
    }

    #[test]
    fn a_tree_delete_leaves_one_tombstone_for_its_prefix() {
        let mut kv = Kv::default();
        let entry = |k: &str, v: &[u8]| Entry::new(k, v.to_vec(), 0, "");
        kv.set(5, entry("p/x/k", b"1"), false);
        kv.delete(6, "p/x/k");
        // Written again: its tombstone stays (Consul's graveyard keeps it).
        kv.set(7, entry("p/x/k", b"2"), false);
        kv.set(7, entry("p/y/k", b"2"), false);
        kv.delete_tree(8, "p/");
        kv.set(9, entry("z", b"1"), false);
        assert_eq!(kv.keys("p/", "").0, 8, "the tree's own tombstone");
        assert_eq!(kv.list("p").0, 8, "a prefix of the tree sees it too");
        assert_eq!(kv.keys("p/x/", "").0, 6, "the key's older tombstone");
        assert_eq!(kv.list("p/y/").0, 9, "inside the tree: the table's index");
        kv.delete_tree(10, "q/");
        assert_eq!(kv.index, 9, "deleting nothing leaves the table alone");
    }
}
