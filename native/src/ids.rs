//! Sets of ids the facts keep: the accepted event ids, sets of identifier ids, and the
//! links that stand between identifiers.

use crate::facts::Id;
use foldhash::{HashMap, HashMapExt};
use std::mem::size_of;

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

/// The links that stand now: per identifier, the identifiers linked to it, sorted. A
/// boxed slice rather than a set: most identifiers have one or two links, and a hash set
/// each took 81 MiB for 850,000 identifiers at 9M events (measured by dropping it).
#[derive(Debug, Default)]
pub struct Adjacency(HashMap<Id, Box<[Id]>>);

impl Adjacency {
    pub fn new() -> Self {
        Adjacency(HashMap::new())
    }

    /// The identifiers linked to `id` now, sorted.
    pub fn linked(&self, id: Id) -> &[Id] {
        self.0.get(&id).map_or(&[], |ids| ids)
    }

    /// `a` and `b` are linked now.
    pub fn link(&mut self, a: Id, b: Id) {
        self.add(a, b);
        self.add(b, a);
    }

    /// `a` and `b` are not linked now.
    pub fn unlink(&mut self, a: Id, b: Id) {
        self.remove(a, b);
        self.remove(b, a);
    }

    /// The links of these pairs, each once per direction: sorted once per identifier, not
    /// inserted one by one (an identifier with d links would cost d² copies).
    pub fn of_pairs(pairs: impl Iterator<Item = (Id, Id)>) -> Self {
        let mut lists: HashMap<Id, Vec<Id>> = HashMap::new();
        for (a, b) in pairs {
            lists.entry(a).or_default().push(b);
            lists.entry(b).or_default().push(a);
        }
        Adjacency(
            (lists.into_iter())
                .map(|(id, mut ids)| {
                    ids.sort_unstable();
                    ids.dedup();
                    (id, ids.into_boxed_slice())
                })
                .collect(),
        )
    }

    /// About how many bytes it holds (see `footprint`).
    pub fn bytes(&self) -> usize {
        let slots = self.0.capacity() * (size_of::<(Id, Box<[Id]>)>() + 1);
        slots + self.0.values().map(|ids| (ids.len() * size_of::<Id>()).max(8)).sum::<usize>()
    }

    fn add(&mut self, from: Id, to: Id) {
        let ids = self.0.entry(from).or_default();
        if let Err(at) = ids.binary_search(&to) {
            let mut grown = Vec::with_capacity(ids.len() + 1);
            grown.extend_from_slice(&ids[..at]);
            grown.push(to);
            grown.extend_from_slice(&ids[at..]);
            *ids = grown.into_boxed_slice();
        }
    }

    fn remove(&mut self, from: Id, to: Id) {
        let Some(ids) = self.0.get_mut(&from) else { return };
        if let Ok(at) = ids.binary_search(&to) {
            if ids.len() == 1 {
                self.0.remove(&from);
            } else {
                let mut kept = ids.to_vec();
                kept.remove(at);
                *ids = kept.into_boxed_slice();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_stand_both_ways_sorted_and_go() {
        let mut links = Adjacency::new();
        links.link(5, 2);
        links.link(5, 9);
        links.link(5, 1);
        links.link(5, 9); // again: no change
        assert_eq!(links.linked(5), &[1, 2, 9]);
        assert_eq!((links.linked(9), links.linked(7)), (&[5][..], &[][..]));
        links.unlink(5, 2);
        links.unlink(5, 7); // never linked: no change
        assert_eq!((links.linked(5), links.linked(2)), (&[1, 9][..], &[][..]));
        links.unlink(9, 5);
        links.unlink(1, 5);
        assert!(links.linked(5).is_empty() && links.0.is_empty());
        let rebuilt = Adjacency::of_pairs([(5, 9), (2, 5), (5, 1), (9, 5)].into_iter());
        assert_eq!((rebuilt.linked(5), rebuilt.linked(9)), (&[1, 2, 9][..], &[5][..]));
    }
}
