//! Sets of ids the facts keep: the accepted event ids, and sets of identifier ids.

use crate::facts::Id;

/// The accepted event ids. Each is kept with its hash, so growing the table never reads
/// the strings again: with millions of ids, that is most of what inserting costs.
#[derive(Default)]
pub struct SeenIds {
    table: hashbrown::HashTable<(u64, Box<str>)>,
    hasher: foldhash::fast::RandomState,
}

impl std::fmt::Debug for SeenIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SeenIds({})", self.table.len())
    }
}

impl SeenIds {
    /// Add an id; false when it was there already.
    pub fn insert(&mut self, id: &str) -> bool {
        use std::hash::BuildHasher;
        let hash = self.hasher.hash_one(id);
        match self.table.entry(hash, |(h, s)| *h == hash && &**s == id, |(h, _)| *h) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(slot) => {
                slot.insert((hash, id.into()));
                true
            }
        }
    }
}

/// A set of identifier ids: a flag per id and the list of members, so the inserts made
/// for every event are an index and a compare, not a hash.
#[derive(Debug, Default)]
pub struct IdSet {
    flags: Vec<bool>,
    ids: Vec<Id>,
}

impl IdSet {
    pub fn insert(&mut self, id: Id) {
        let at = id as usize;
        if at >= self.flags.len() {
            self.flags.resize(at + 1, false);
        }
        if !self.flags[at] {
            self.flags[at] = true;
            self.ids.push(id);
        }
    }
    pub fn contains(&self, id: Id) -> bool {
        self.flags.get(id as usize).copied().unwrap_or(false)
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn iter(&self) -> std::slice::Iter<'_, Id> {
        self.ids.iter()
    }
    /// The members, in insertion order; the set is left empty.
    pub fn drain(&mut self) -> Vec<Id> {
        for &id in &self.ids {
            self.flags[id as usize] = false;
        }
        std::mem::take(&mut self.ids)
    }
}
