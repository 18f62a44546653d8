//! Which identifiers are one person, now or as of any moment (reference:
//! `crm2stream/core/identity.py`). A person is a connected component of the links that
//! exist; its anchor is the member seen first; its id is a keyed hash of the anchor.

use crate::facts::{Facts, Id, LinkEntry, Person};
use foldhash::{HashMap, HashMapExt, HashSet};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use std::rc::Rc;

/// The bytes of an HMAC a person id spells (`person_id`).
pub const PERSON_DIGEST: usize = 10;

pub fn person_id_of(anchor: &str, id_key: &[u8]) -> String {
    person_id(&person_digest(anchor, id_key))
}

/// The bytes a person id spells: the first `PERSON_DIGEST` of the anchor's HMAC.
pub fn person_digest(anchor: &str, id_key: &[u8]) -> [u8; PERSON_DIGEST] {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(id_key).expect("HMAC takes any key");
    mac.update(anchor.as_bytes());
    let digest = mac.finalize().into_bytes();
    digest[..PERSON_DIGEST].try_into().expect("an HMAC-SHA256 is 32 bytes")
}

/// A person id: `p_` and the digest's bytes in lowercase hex.
pub fn person_id(digest: &[u8; PERSON_DIGEST]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 + 2 * PERSON_DIGEST);
    out.push_str("p_");
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 15)]));
    }
    out
}

/// Whether the pair is linked counting only entries at or before cutoff.
pub fn linked_at(history: &[LinkEntry], cutoff: i64) -> bool {
    let index = history.partition_point(|e| e.0 <= cutoff);
    index > 0 && history[index - 1].2
}

pub fn make_person(facts: &Facts, members: Vec<Id>, id_key: &[u8]) -> Person {
    // each member's key read once (keys are unique, so the order is the keys')
    let mut keyed: Vec<(&str, Id)> = members.iter().map(|&member| (facts.key(member), member)).collect();
    keyed.sort_unstable();
    let members: Vec<Id> = keyed.into_iter().map(|(_, member)| member).collect();
    let anchor = anchor_of(facts, &members);
    Person { key: person_digest(facts.key(anchor), id_key), anchor, members }
}

/// The anchor of a person's members: the one seen first (then by key).
pub fn anchor_of(facts: &Facts, members: &[Id]) -> Id {
    *members
        .iter()
        .min_by_key(|&&member| {
            let (ts, event_id) = facts.first(member);
            (ts, event_id, facts.key(member))
        })
        .expect("a person has members")
}

/// Up to this many members, `component` finds a member among those found so far by
/// looking through them, not in a set.
const FEW_MEMBERS: usize = 32;

/// The identifiers linked to `id` now through any chain of links, itself first.
///
/// Score changes walk the person of every identifier a batch touched that is not
/// memoised (`memo`). Most persons have a few members, which a walk looks
/// through without building a set; most of its time is reading each member's links
/// (`docs/performance.md`).
pub fn component(facts: &Facts, id: Id) -> Vec<Id> {
    let mut component = vec![id];
    let mut seen: Option<HashSet<Id>> = None;
    let mut next = 0;
    while let Some(&node) = component.get(next) {
        next += 1;
        for &other in facts.adjacency.linked(node) {
            let new = match &mut seen {
                Some(seen) => seen.insert(other),
                None => !component.contains(&other),
            };
            if new {
                component.push(other);
                if seen.is_none() && component.len() > FEW_MEMBERS {
                    seen = Some(component.iter().copied().collect());
                }
            }
        }
    }
    component
}

/// The person an identifier belongs to now, cached until a link or an anchor changes.
pub fn current_person(facts: &mut Facts, id: Id, id_key: &[u8]) -> Rc<Person> {
    if let Some(person) = facts.persons.get(id) {
        return person.clone();
    }
    let person = Rc::new(make_person(facts, component(facts, id), id_key));
    facts.persons.insert(&person, facts.idents.len());
    person
}

const ABSENT: u32 = u32::MAX;

/// All persons as of a cutoff (inclusive, microseconds), sorted by person id.
pub struct Partition {
    pub persons: Vec<Person>,
    /// identifier id -> index in `persons`; `ABSENT` for identifiers first seen later
    person_of: Vec<u32>,
}

impl Partition {
    pub fn new(facts: &Facts, cutoff: i64, id_key: &[u8]) -> Self {
        let n = facts.idents.len();
        let mut parent: Vec<u32> = (0..n as u32).collect();
        let present: Vec<bool> = facts.idents.iter().map(|i| i.first_ts <= cutoff).collect();
        fn find(parent: &mut [u32], mut x: u32) -> u32 {
            let mut root = x;
            while parent[root as usize] != root {
                root = parent[root as usize];
            }
            while parent[x as usize] != root {
                let next = parent[x as usize];
                parent[x as usize] = root;
                x = next;
            }
            root
        }
        let latest = cutoff >= facts.max_ts.unwrap_or(0);
        for (&(a, b), history) in &facts.pairs {
            let linked = if latest { history.last().is_some_and(|e| e.2) } else { linked_at(history, cutoff) };
            if linked {
                let (ra, rb) = (find(&mut parent, a), find(&mut parent, b));
                if ra != rb {
                    parent[ra.max(rb) as usize] = ra.min(rb);
                }
            }
        }
        let mut groups: HashMap<u32, Vec<Id>> = HashMap::new();
        for id in 0..n as u32 {
            if present[id as usize] {
                let root = find(&mut parent, id);
                groups.entry(root).or_default().push(id);
            }
        }
        let mut persons: Vec<Person> =
            groups.into_values().map(|members| make_person(facts, members, id_key)).collect();
        // by person id: a digest's bytes sort as its hex digits do
        persons.sort_by_key(|person| person.key);
        let mut person_of = vec![ABSENT; n];
        for (index, person) in persons.iter().enumerate() {
            for &member in &person.members {
                person_of[member as usize] = index as u32;
            }
        }
        Partition { persons, person_of }
    }

    /// The index in `persons` of an identifier's person, if it exists by the cutoff.
    pub fn person_of(&self, id: Id) -> Option<usize> {
        match self.person_of.get(id as usize) {
            Some(&index) if index != ABSENT => Some(index as usize),
            _ => None,
        }
    }

    /// The identifiers that exist by the cutoff.
    pub fn members(&self) -> impl Iterator<Item = Id> + '_ {
        (0..self.person_of.len() as Id).filter(|&id| self.person_of[id as usize] != ABSENT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scales::Scales;

    /// A chain of `n` identifiers, each linked to the next, and one alone.
    fn chain(n: usize) -> (Facts, Vec<Id>, Id) {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let ids: Vec<Id> = (0..n).map(|i| facts.intern(&format!("qq:{i}"), (0, "e")).0).collect();
        for pair in ids.windows(2) {
            facts.adjacency.link(pair[0], pair[1]);
        }
        let alone = facts.intern("qq:alone", (0, "e")).0;
        (facts, ids, alone)
    }

    #[test]
    fn a_component_holds_every_identifier_linked_once_whatever_its_size() {
        for n in [1, 2, FEW_MEMBERS, FEW_MEMBERS + 1, 3 * FEW_MEMBERS] {
            let (facts, ids, alone) = chain(n);
            for &from in [ids[0], ids[n / 2], ids[n - 1]].iter() {
                let mut found = component(&facts, from);
                assert_eq!(found[0], from);
                found.sort_unstable();
                assert_eq!(found, ids, "from {from} of {n}");
            }
            assert_eq!(component(&facts, alone), vec![alone]);
        }
    }

    #[test]
    fn a_component_with_cycles_and_a_hub_names_each_member_once() {
        let (mut facts, ids, _) = chain(2 * FEW_MEMBERS);
        for &id in &ids[2..] {
            facts.adjacency.link(ids[0], id); // a hub, and cycles through it
        }
        let mut found = component(&facts, ids[FEW_MEMBERS]);
        found.sort_unstable();
        assert_eq!(found, ids);
    }
}
