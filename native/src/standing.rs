//! A person's standing: its members' decayed sums added up and, per consent scope, the
//! latest entry any member holds, which is all that valuing it now reads. Score changes
//! value every person a batch touched, and read every member's standing to do it: at 9M
//! events of the bench's input a touched identifier's person had six members on average,
//! so a batch of 50,000 events read 269,000 members' bodies to value the persons of the
//! 89,000 it named. Kept between batches, a person's standing is brought up to date from
//! the members the batch changed alone: their sums now, less their sums before the batch
//! (Kafka Streams' table aggregation with a subtractor), and their latest consent entries.
//!
//! Exact, not an estimate: sums are integers, and consent entries are only ever added, so
//! a kept standing, less a changed member's old part and plus its new one, is what adding
//! up every member gives, and the latest entry of a scope is the later of the kept one and
//! the changed members'. A kept standing serves only while it provably is that: the same
//! members, and none of them changed since it was kept but in this batch, each of those
//! with its sums before the batch known (`Before`). Otherwise every member is read and
//! added up again. What is kept is a cache, bounded and dropped at will: no table or
//! stream depends on it, only how many bodies a batch reads.
//!
//! Only the latest entry of each scope is kept, not the members' histories merged: a
//! person is valued as of the latest event time, which no entry is later than, so the
//! entry deciding each scope then is its latest (`value::deciding`). Keeping the merged
//! histories took 266 MiB for 195,000 persons at 9M events, measured by dropping them.

use crate::facts::{Body, ConsentEntry, Id, Person, Scope};
use crate::sum::Sum;
use foldhash::{HashMap, HashMapExt};
use std::mem::size_of;

pub use crate::facts::Consent;

/// Persons kept, at most; past it, those valued longest ago are dropped, down to half,
/// and kept again when a batch values them. (195,000 kept persons held 89 MiB at 9M
/// events, measured by dropping them. Dropping them all cost the batch after it a read of
/// every member of every person it valued.)
const KEPT: usize = 1 << 18;

/// A member's sums before the batch first changed its standing (packed as `Kept`'s, at
/// `at..at + len` of the batch's arena).
#[derive(Debug)]
struct Before {
    at: u32,
    len: u32,
}

/// A person's standing as of the end of batch `as_of`: its members, then its sums packed
/// (see `pack`), at `at..at + len` of the standings' arena; and per consent scope the
/// latest entry of its members (`Latest`). One arena, not an allocation per person,
/// compacted when half of it is replaced standings, and dropped in one piece.
#[derive(Debug)]
struct Kept {
    at: u32,
    len: u32,
    members: u32,
    as_of: u32,
    consent: Latest,
}

/// Per consent scope (its number among `Standings::scopes`), the latest entry, sorted by
/// number: a few dozen bytes a scope, where a map of the members' histories took a B-tree
/// node of about a kilobyte however few its scopes. A person without consent allocates nothing.
pub type Latest = Vec<(u32, ConsentEntry)>;

impl Kept {
    fn data<'a>(&self, arena: &'a [u8]) -> &'a [u8] {
        &arena[self.at as usize..(self.at + self.len) as usize]
    }

    fn has_members(&self, arena: &[u8], members: &[Id]) -> bool {
        let (kept, _) = self.data(arena).split_at(self.members as usize * 4);
        members.len() == self.members as usize
            && kept.chunks_exact(4).zip(members).all(|(kept, &id)| kept == id.to_le_bytes())
    }

    fn sums(&self, arena: &[u8]) -> [Sum; 4] {
        unpack(&self.data(arena)[self.members as usize * 4..])
    }
}

/// Each sum as its low zero bits and the bytes above them, with their length
/// (`Sum::with_shift_and_bytes`).
fn pack(sums: &[Sum; 4], out: &mut Vec<u8>) {
    for sum in sums {
        sum.with_shift_and_bytes(|shift, bytes| {
            let shift = u32::try_from(shift).expect("a sum's low zero bits within 2**32");
            out.extend_from_slice(&shift.to_le_bytes());
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        });
    }
}

fn unpack(packed: &[u8]) -> [Sum; 4] {
    let mut rest = packed;
    std::array::from_fn(|_| {
        let (shift, tail) = rest.split_at(4);
        let (len, tail) = tail.split_at(4);
        let (bytes, tail) = tail.split_at(u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize);
        rest = tail;
        Sum::from_shift_and_bytes(u32::from_le_bytes(shift.try_into().expect("4 bytes")).into(), bytes)
    })
}

/// The consent scopes the kept standings name, numbered (a brand has a few dozen).
#[derive(Debug, Default)]
struct Scopes {
    list: Vec<Scope>,
    numbers: HashMap<Scope, u32>,
}

impl Scopes {
    /// Hold in `latest`, per scope, the later of its entry and the last of `member`'s
    /// history (histories are sorted entries, (time, event id) first, as `deciding`
    /// orders them; two entries of one time and event id are ordered as wholes, as there).
    fn keep_latest(&mut self, latest: &mut Latest, member: &Consent) {
        for (scope, history) in member {
            let Some(last) = history.last() else { continue };
            let number = match self.numbers.get(scope) {
                Some(&number) => number,
                None => {
                    let number = u32::try_from(self.list.len()).expect("fewer than 2**32 scopes");
                    self.list.push(scope.clone());
                    self.numbers.insert(scope.clone(), number);
                    number
                }
            };
            match latest.binary_search_by_key(&number, |(n, _)| *n) {
                Ok(at) if latest[at].1 >= *last => {}
                Ok(at) => latest[at].1 = last.clone(),
                Err(at) => latest.insert(at, (number, last.clone())),
            }
        }
    }
}

/// The standings kept, and what the batch under way changed.
#[derive(Debug)]
pub struct Standings {
    kept: HashMap<Id, Kept>,
    /// the kept standings' members and sums, and how many of its bytes no standing uses
    arena: Vec<u8>,
    garbage: usize,
    before: HashMap<Id, Before>,
    before_arena: Vec<u8>,
    /// per identifier, the last batch before this one that changed its standing (0: none
    /// since the start); this batch's changes are `before`'s keys, written at its end
    changed_at: Vec<u32>,
    scopes: Scopes,
    /// the batch under way: the number of score-change rounds since the start, plus one
    batch: u32,
}

impl Default for Standings {
    fn default() -> Self {
        Standings {
            kept: HashMap::new(),
            arena: Vec::new(),
            garbage: 0,
            before: HashMap::new(),
            before_arena: Vec::new(),
            changed_at: Vec::new(),
            scopes: Scopes::default(),
            batch: 1,
        }
    }
}

impl Standings {
    /// Before a member's sums or consent change: keep its standing before the batch, the
    /// first time the batch changes it.
    pub fn will_change(&mut self, id: Id, body: &Body) {
        if let std::collections::hash_map::Entry::Vacant(slot) = self.before.entry(id) {
            let at = self.before_arena.len();
            pack(&body.sums, &mut self.before_arena);
            let number = |n: usize| u32::try_from(n).expect("a batch's standings within 4 GiB");
            let len = number(self.before_arena.len() - at);
            slot.insert(Before { at: number(at), len });
        }
    }

    /// The last batch before this one that changed a member's standing.
    fn changed_before(&self, id: Id) -> u32 {
        self.changed_at.get(id as usize).copied().unwrap_or(0)
    }

    /// Whether the person's kept standing serves, brought up to date by the members this
    /// batch changed.
    fn serves(&self, person: &Person) -> bool {
        self.kept.get(&person.anchor).is_some_and(|kept| {
            kept.has_members(&self.arena, &person.members)
                && person.members.iter().all(|&m| self.changed_before(m) <= kept.as_of)
        })
    }

    /// The members whose standing valuing `person` reads: those this batch changed when
    /// its kept standing serves, every member otherwise.
    pub fn needs(&self, person: &Person, out: &mut Vec<Id>) {
        if self.serves(person) {
            out.extend(person.members.iter().copied().filter(|m| self.before.contains_key(m)));
        } else {
            out.extend_from_slice(&person.members);
        }
    }

    /// The person's standing now (sums, the latest consent entry per scope), from what is
    /// kept and the members `read` gives (each member's consent and sums now; only those
    /// `needs` named are asked for), and kept for the next batches.
    pub fn of<'a>(&mut self, person: &Person, read: impl Fn(Id) -> (&'a Consent, &'a [Sum; 4])) -> ([Sum; 4], Latest) {
        let (sums, consent) = match self.serves(person).then(|| self.kept.remove(&person.anchor)).flatten() {
            Some(kept) => {
                self.garbage += kept.len as usize;
                let mut sums = kept.sums(&self.arena);
                let mut consent = kept.consent;
                for (member, before) in person.members.iter().filter_map(|m| Some((*m, self.before.get(m)?))) {
                    let (now_consent, now_sums) = read(member);
                    for ((sum, old), new) in sums
                        .iter_mut()
                        .zip(unpack(&self.before_arena[before.at as usize..(before.at + before.len) as usize]))
                        .zip(now_sums)
                    {
                        // the kept sum holds the member's old part: never below it
                        sum.sub(&old);
                        sum.add(new);
                    }
                    self.scopes.keep_latest(&mut consent, now_consent);
                }
                (sums, consent)
            }
            None => {
                let mut sums: [Sum; 4] = Default::default();
                let mut consent = Latest::new();
                for &member in &person.members {
                    let (member_consent, member_sums) = read(member);
                    for (sum, part) in sums.iter_mut().zip(member_sums) {
                        sum.add(part);
                    }
                    self.scopes.keep_latest(&mut consent, member_consent);
                }
                (sums, consent)
            }
        };
        self.keep(person, &sums, consent.clone());
        (sums, consent)
    }

    /// The scope a number of `Latest` names.
    pub fn scope(&self, number: u32) -> &Scope {
        &self.scopes.list[number as usize]
    }

    fn keep(&mut self, person: &Person, sums: &[Sum; 4], mut consent: Latest) {
        consent.shrink_to_fit();
        let at = self.arena.len();
        for member in &person.members {
            self.arena.extend_from_slice(&member.to_le_bytes());
        }
        pack(sums, &mut self.arena);
        let number = |n: usize| u32::try_from(n).expect("kept standings within 4 GiB");
        let kept = Kept {
            at: number(at),
            len: number(self.arena.len() - at),
            members: number(person.members.len()),
            as_of: self.batch,
            consent,
        };
        if let Some(replaced) = self.kept.insert(person.anchor, kept) {
            self.garbage += replaced.len as usize;
        }
    }

    /// The batch's persons are valued: the next batch begins.
    pub fn end_batch(&mut self) {
        for &id in self.before.keys() {
            let at = id as usize;
            if at >= self.changed_at.len() {
                self.changed_at.resize(at + 1, 0);
            }
            self.changed_at[at] = self.batch;
        }
        self.before.clear();
        self.before_arena.clear();
        self.batch += 1;
        if self.kept.len() > KEPT {
            let mut valued: Vec<u32> = self.kept.values().map(|kept| kept.as_of).collect();
            let at = valued.len() - KEPT / 2;
            let (_, &mut since, _) = valued.select_nth_unstable(at);
            // persons valued in one batch go together: when keeping those of `since` would
            // keep more than KEPT, they go too
            let since = if valued.iter().filter(|&&b| b >= since).count() > KEPT { since + 1 } else { since };
            let mut dropped = 0;
            self.kept.retain(|_, kept| {
                let keep = kept.as_of >= since;
                dropped += if keep { 0 } else { kept.len as usize };
                keep
            });
            self.garbage += dropped;
        }
        if self.garbage > self.arena.len() / 2 {
            let mut arena = Vec::with_capacity(self.arena.len() - self.garbage);
            for kept in self.kept.values_mut() {
                let at = arena.len();
                arena.extend_from_slice(kept.data(&self.arena));
                kept.at = u32::try_from(at).expect("smaller than the arena it came from");
            }
            self.arena = arena;
            self.garbage = 0;
        }
    }

    /// How many persons are kept, and about how many bytes they hold (see `footprint`).
    pub fn footprint(&self) -> (usize, usize) {
        // an entry: its key, the `Kept` and a control byte; then the arena, and the consent
        // entries with their event ids' texts
        let entries = self.kept.capacity() * (size_of::<(Id, Kept)>() + 1);
        let consent: usize = (self.kept.values())
            .map(|kept| kept.consent.iter().map(|(_, e)| size_of::<(u32, ConsentEntry)>() + e.1.len()).sum::<usize>())
            .sum();
        (self.kept.len(), entries + consent + self.arena.capacity() + self.changed_at.capacity() * 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scales::Scales;

    #[test]
    fn packed_sums_read_back_as_they_were() {
        let scales = Scales::new(30.0);
        let mut sums: [Sum; 4] = Default::default();
        scales.add_weighted(&mut sums[0], 12_345, 20_000);
        scales.add_weighted(&mut sums[0], 7, 19_000);
        scales.add_weighted(&mut sums[3], 1 << 100, 20_400);
        for sums in [sums, Default::default()] {
            let mut packed = Vec::new();
            pack(&sums, &mut packed);
            assert_eq!(unpack(&packed), sums);
        }
    }

    #[test]
    fn a_scope_keeps_the_latest_entry_whichever_member_holds_it_and_whenever_it_came() {
        let scope: Scope = ("brand".into(), "marketing".into(), "sms".into());
        let history = |entries: &[(i64, &str, bool)]| -> Consent {
            let list = entries.iter().map(|&(ts, id, granted)| (ts, id.to_string(), granted, None)).collect();
            Consent::from([(scope.clone(), list)])
        };
        let other: Scope = ("brand".into(), "service".into(), "sms".into());
        let mut standings = Standings::default();
        let mut latest = Latest::new();
        standings.scopes.keep_latest(&mut latest, &history(&[(5, "e5", true), (9, "e9", false)]));
        standings.scopes.keep_latest(&mut latest, &history(&[(7, "e7", true)])); // earlier: the later stays
        assert_eq!(latest, vec![(0, (9, "e9".to_string(), false, None))]);
        standings.scopes.keep_latest(&mut latest, &history(&[(9, "e9b", true)])); // same time, later id
        assert_eq!(latest, vec![(0, (9, "e9b".to_string(), true, None))]);
        standings
            .scopes
            .keep_latest(&mut latest, &Consent::from([(other.clone(), vec![(1, "e1".into(), true, None)])]));
        assert_eq!(latest.len(), 2);
        assert_eq!((standings.scope(0), standings.scope(1)), (&scope, &other));
    }

    #[test]
    fn a_kept_standing_knows_its_members() {
        let person = Person { key: [0; 10], anchor: 3, members: vec![3, 70_000, 9] };
        let mut standings = Standings::default();
        let mut sums: [Sum; 4] = Default::default();
        sums[1] = Sum::shifted(5, 700);
        standings.keep(&person, &sums, Latest::new());
        standings.keep(&Person { anchor: 4, ..person.clone() }, &Default::default(), Latest::new());
        for _ in 0..3 {
            standings.keep(&person, &sums, Latest::new()); // again: the one before is garbage
        }
        let kept = &standings.kept[&3];
        assert!(kept.has_members(&standings.arena, &[3, 70_000, 9]));
        assert!(!kept.has_members(&standings.arena, &[3, 70_000]));
        assert!(!kept.has_members(&standings.arena, &[3, 9, 70_000]));
        assert_eq!(kept.sums(&standings.arena), sums);
        standings.end_batch(); // more than half the arena is garbage: compacted
        assert_eq!(standings.garbage, 0);
        let kept = &standings.kept[&3];
        assert!(kept.has_members(&standings.arena, &[3, 70_000, 9]));
        assert_eq!(kept.sums(&standings.arena), sums);
        assert_eq!(standings.kept[&4].sums(&standings.arena), <[Sum; 4]>::default());
    }

    #[test]
    fn past_the_limit_the_persons_valued_longest_ago_are_dropped() {
        let person = |anchor: Id| Person { key: [0; 10], anchor, members: vec![anchor] };
        let mut sums: [Sum; 4] = Default::default();
        let mut standings = Standings::default();
        let old = (KEPT / 2 + 10) as Id;
        for anchor in 0..old {
            standings.keep(&person(anchor), &sums, Latest::new());
        }
        standings.end_batch();
        sums[0] = Sum::shifted(7, 0);
        for anchor in old..old + (KEPT / 2) as Id {
            standings.keep(&person(anchor), &sums, Latest::new());
        }
        standings.end_batch();
        assert_eq!(standings.kept.len(), KEPT / 2);
        assert!(standings.kept.keys().all(|&anchor| anchor >= old));
        assert_eq!(standings.garbage, 0); // half the arena was dropped: compacted
        assert!(standings.kept.values().all(|kept| kept.sums(&standings.arena) == sums));
        // more persons valued in one batch than are kept: none stays
        for anchor in 0..=KEPT as Id {
            standings.keep(&person(anchor), &sums, Latest::new());
        }
        standings.end_batch();
        assert!(standings.kept.is_empty());
    }
}
