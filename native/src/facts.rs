//! The facts every table is derived from (what the tables mean is `crm2stream/spec/`; the
//! tests hold these facts' tables to it; what one event does to them is `fold`).
//!
//! Facts are per identifier and UTC day (exact counters), per identifier pair (the history
//! of identify/unlink) and per share. Persons are never stored: they are connected
//! components computed when read. Every fact is an order-independent merge.

use crate::names::{Names, Texts};
use crate::scales::Scales;
use crate::shares::{Shares, Sid};
use crate::standing::Standings;
use crate::sum::Sum;
use foldhash::{HashMap, HashMapExt, HashSet};
use smallvec::SmallVec;

pub type Id = u32;
/// `Facts::published_anchor` of an identifier not yet published
pub const UNPUBLISHED: Id = Id::MAX;
/// The changed ties kept one by one between publications, at most: beyond, the next
/// publication rewrites every pair of the persons it renders (a publication deferred over
/// a bulk ingest would otherwise hold a pair per tie of the whole input).
pub const CHANGED_TIES: usize = 1 << 20;
pub const R_SHARE: usize = 6;
pub const R_COMMENT: usize = 7;
pub const R_REPLY: usize = 8;
pub const R_RECIPIENT: usize = 9;
pub const PURCHASES: usize = 10;
pub const COUNTERS: usize = 11;
pub const S_CONSUMPTION: usize = 0;
pub const S_POPULARITY: usize = 1;
pub const S_REACH: usize = 2;
pub const S_REVENUE: usize = 3;

/// One identifier's counters for one UTC day: done by type (0-5), received by kind (6-9),
/// purchases (10), and the amount spent in 10**-8 units. Counters are per identifier and
/// day, so 32 bits hold any real stream; they saturate rather than wrap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayBucket {
    pub day: i32,
    pub counts: [u32; COUNTERS],
    pub amount: u128,
}

impl DayBucket {
    pub fn day(&self) -> i64 {
        i64::from(self.day)
    }
    pub fn bump(&mut self, counter: usize) {
        self.counts[counter] = self.counts[counter].saturating_add(1);
    }
}

/// Interactions from one identifier to another on one day: reply, comment, share,
/// recipient. An identifier's ties are one vector sorted by (target, day).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tie {
    pub target: Id,
    pub day: i32,
    pub counts: [u32; 4],
}

/// (ts, event_id, granted, expires)
pub type ConsentEntry = (i64, String, bool, Option<i64>);
pub type Scope = (String, String, String);
/// (ts, event_id, linked): an entry of a pair's link history
pub type LinkEntry = (i64, Box<str>, bool);
/// A pair's link history, sorted. Most pairs are linked once and never unlinked: their one
/// entry is held in the map's slot. (As a `Vec` grown by insertion, one entry took a
/// 160-byte allocation, room for four, besides the slot: 140 MiB for the 915,158 pairs of
/// 10M events.)
pub type LinkHistory = SmallVec<[LinkEntry; 1]>;
/// The identifiers with ties into one, sorted: up to four in the space a `Vec`'s header
/// took, without an allocation.
pub type Incoming = SmallVec<[Id; 4]>;

/// An identifier's consent histories per scope, sorted by scope. A sorted vector, not a
/// `BTreeMap`: a map's first node took about a kilobyte however few its scopes, and most
/// identifiers that hold consent hold one or two scopes. The vector is kept at its
/// length, so a body holds what its scopes take.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Consent(Vec<(Scope, Vec<ConsentEntry>)>);

impl Consent {
    pub fn with_capacity(scopes: usize) -> Self {
        Consent(Vec::with_capacity(scopes))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// (scope, history), sorted by scope.
    pub fn iter(&self) -> impl Iterator<Item = (&Scope, &Vec<ConsentEntry>)> {
        self.into_iter()
    }

    /// The history of a scope, begun empty if the scope is new.
    pub fn history_mut(&mut self, scope: Scope) -> &mut Vec<ConsentEntry> {
        let at = match self.0.binary_search_by(|(held, _)| held.cmp(&scope)) {
            Ok(at) => at,
            Err(at) => {
                self.0.reserve_exact(1);
                self.0.insert(at, (scope, Vec::new()));
                at
            }
        };
        &mut self.0[at].1
    }

    /// Set the history of a scope (a scope given twice keeps the last, as a map does).
    pub fn insert(&mut self, scope: Scope, history: Vec<ConsentEntry>) {
        *self.history_mut(scope) = history;
    }

    /// About how many bytes it holds (lengths and capacities).
    pub fn bytes(&self) -> usize {
        let per_scope = size_of::<(Scope, Vec<ConsentEntry>)>();
        self.0.capacity() * per_scope
            + (self.0.iter())
                .map(|(scope, history)| {
                    scope.0.capacity()
                        + scope.1.capacity()
                        + scope.2.capacity()
                        + history.capacity() * size_of::<ConsentEntry>()
                        + history.iter().map(|e| e.1.capacity()).sum::<usize>()
                })
                .sum::<usize>()
    }
}

impl<const N: usize> From<[(Scope, Vec<ConsentEntry>); N]> for Consent {
    fn from(histories: [(Scope, Vec<ConsentEntry>); N]) -> Self {
        let mut consent = Consent::with_capacity(N);
        for (scope, history) in histories {
            consent.insert(scope, history);
        }
        consent
    }
}

impl<'a> IntoIterator for &'a Consent {
    type Item = (&'a Scope, &'a Vec<ConsentEntry>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, (Scope, Vec<ConsentEntry>)>,
        fn(&'a (Scope, Vec<ConsentEntry>)) -> (&'a Scope, &'a Vec<ConsentEntry>),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(scope, history)| (scope, history))
    }
}

/// What an identifier's events added up to: its day buckets, ties, consent and decayed
/// sums. It grows with the identifier's history, so an engine with a store keeps it under
/// the identifier's key and holds only the bodies a batch needs (see `Facts::evict`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Body {
    pub days: Vec<DayBucket>,
    pub out: Vec<Tie>,
    pub consent: Consent,
    pub sums: [Sum; 4],
}

impl Body {
    /// The bucket of a day, added in day order if new (in a time-ordered stream: the last).
    pub fn bucket(&mut self, day: i64) -> &mut DayBucket {
        let day = i32::try_from(day).expect("days since 1970 before year 10000 fit 32 bits");
        let at = match self.days.last() {
            Some(last) if last.day == day => self.days.len() - 1,
            Some(last) if last.day < day => self.push_day(day),
            None => self.push_day(day),
            _ => match self.days.binary_search_by_key(&day, |b| b.day) {
                Ok(at) => at,
                Err(at) => {
                    self.days.insert(at, DayBucket { day, ..DayBucket::default() });
                    at
                }
            },
        };
        &mut self.days[at]
    }

    fn push_day(&mut self, day: i32) -> usize {
        self.days.push(DayBucket { day, ..DayBucket::default() });
        self.days.len() - 1
    }
}

/// An identifier: what every person computation needs of it (when it was first seen, its
/// shares) and its body, when resident. Its key and the id of the event it was first seen
/// in are texts of the core's (`Facts::key`, `Facts::first`).
#[derive(Debug, Clone, Default)]
pub struct Ident {
    /// when it was first seen (microseconds)
    pub first_ts: i64,
    /// the shares it made: most identifiers make a few, held without an allocation
    pub shares: SmallVec<[Sid; 4]>,
    /// the committed checkpoint whose store write holds its body (0: none)
    pub stored: u32,
    /// the checkpoint number under which its dirty body was written ahead of that
    /// checkpoint to make room (0: it was not); it is read back from there
    pub spilled: u32,
    /// None while it is packed or only the store holds it (see `stored` and `spilled`)
    pub body: Option<Box<Body>>,
    /// With `body`, when it was opened to be added to (`codec::open_body`): the record it
    /// was opened over, whose day buckets and ties are not in `body` (its consent and
    /// sums are). Readers of the whole body merge them first (`Facts::missing`).
    pub earlier: Option<Box<[u8]>>,
    /// the body encoded as the store keeps it (`codec::pack_body`), held in memory
    /// instead of decoded: a fraction of the memory, and read back without the store (see
    /// `Facts::evict`). Never together with `body`.
    pub packed: Option<Box<[u8]>>,
    /// asked for since the eviction sweep last passed it (a second chance)
    pub recent: bool,
    /// the bytes of its decoded body when last counted (`Facts::held`)
    pub counted: u32,
}

impl Ident {
    /// About how many bytes its decoded body holds, with the record it was opened over.
    pub fn decoded_bytes(&self) -> usize {
        self.body.as_deref().map_or(0, Body::bytes) + self.earlier.as_deref().map_or(0, <[u8]>::len)
    }
}

pub use crate::ids::{IdSet, SeenIds};

/// Store keys of what a batch indexes: mention keys, and link keys with whether each
/// link stands (see `Facts::take_indexes`).
pub type Indexes = (Vec<Vec<u8>>, Vec<(Vec<u8>, bool)>);

/// What changed since the last checkpoint. `idents`: identifiers whose body changed (or
/// that are new); `records`: identifiers whose checkpoint record alone changed (what the
/// table topics hold of them, see `codec::encode_ident`), their bodies untouched.
#[derive(Debug, Default)]
pub struct Dirty {
    pub idents: IdSet,
    pub records: IdSet,
    /// the shares made, in the order they were: each once, as a share's own event is
    /// applied once
    pub shares: Vec<Sid>,
    pub pairs: HashSet<(Id, Id)>,
    pub referrals: HashSet<Sid>,
    pub emitted: crate::emitted::Emitted,
}

#[derive(Debug, Clone)]
pub struct Person {
    /// the digest its person id spells (`identity::person_id`): 10 bytes, where the id's
    /// text took 46 with its `String` (a memoised person is kept a while, see `memo`)
    pub key: crate::emitted::PersonKey,
    pub anchor: Id,
    /// sorted by key
    pub members: Vec<Id>,
}

impl Person {
    /// Its person id: `p_` and its digest in hex.
    pub fn person_id(&self) -> String {
        crate::identity::person_id(&self.key)
    }
}

#[derive(Debug)]
pub struct Facts {
    pub scales: Scales,
    pub credit: Vec<u64>,
    pub received: [u64; 4],
    pub cascade_depth: usize,
    pub idents: Vec<Ident>,
    /// the identifiers' keys, numbered by id, and the ids of the events they were first
    /// seen in
    pub keys: Names,
    pub firsts: Texts,
    /// pair (a, b) with key(a) < key(b) -> its identify/unlink history, sorted
    pub pairs: HashMap<(Id, Id), LinkHistory>,
    pub shares: Shares,
    pub seen: SeenIds,
    pub max_ts: Option<i64>,
    pub last_emitted: crate::emitted::LastEmitted,
    pub adjacency: crate::ids::Adjacency,
    /// per identifier id, the identifiers with ties to it (each once, sorted): who must
    /// republish a relationship when it changes person (see `publication`)
    pub incoming: Vec<Incoming>,
    pub dirty: Dirty,
    /// since the shell last took them (see `take_indexes`): the (identifier, log position)
    /// of every identifier each accepted event names, and the links whose history changed.
    /// The shell keeps them keyed on disk, for reads of one person that load nothing else.
    /// (only when `indexes`: an engine without a store of its own leaves them off).
    pub indexes: bool,
    /// whether the shell keeps bodies under their keys, so that clean ones may leave
    /// memory (`evict`); the position of the eviction sweep
    pub keyed: bool,
    pub hand: usize,
    /// the decoded bodies' bytes, as last counted (each body's `counted`), and the
    /// decoded bodies that changed since (`changed`), counted again by `evict`: only
    /// those, since summing every body touched each one's memory after every batch;
    /// and the packed bodies' bytes
    pub held: usize,
    pub grown: IdSet,
    pub packed: usize,
    pub mentioned: Vec<(Id, i64)>,
    pub relinked: HashSet<(Id, Id)>,
    pub touched: IdSet,
    /// the persons of identifiers, while no link or anchor changed (see `memo`)
    pub persons: crate::memo::PersonMemo,
    /// identifiers whose person's table rows changed since the last publication
    pub unpublished: IdSet,
    /// per identifier id, the anchor of the person it was last published in (`UNPUBLISHED`
    /// if never): None until derived after a load
    pub published_anchor: Option<Vec<Id>>,
    /// ties (source, target) changed since the last publication, and per person id the
    /// target person ids of its relationship records in the table topic, sorted (derived
    /// after a load with the anchors; see `publication`). When `all_ties_changed`, the
    /// changed ties are not known one by one (more than `CHANGED_TIES` of them, or a
    /// publication that waits past a checkpoint, which does not keep them): the next
    /// publication then rewrites every pair of the persons it renders.
    pub changed_ties: HashSet<(Id, Id)>,
    pub all_ties_changed: bool,
    pub published_ties: HashMap<String, Vec<String>>,
    /// the persons' standings kept between batches (see `standing`)
    pub standings: Standings,
}

impl Facts {
    pub fn new(scales: Scales, received: [u64; 4], credit: Vec<u64>, cascade_depth: usize) -> Self {
        Facts {
            scales,
            credit,
            received,
            cascade_depth,
            idents: Vec::new(),
            keys: Names::default(),
            firsts: Texts::default(),
            pairs: HashMap::new(),
            shares: Shares::default(),
            seen: SeenIds::default(),
            max_ts: None,
            last_emitted: crate::emitted::LastEmitted::default(),
            adjacency: crate::ids::Adjacency::new(),
            incoming: Vec::new(),
            dirty: Dirty::default(),
            indexes: false,
            keyed: false,
            hand: 0,
            held: 0,
            grown: IdSet::default(),
            packed: 0,
            mentioned: Vec::new(),
            relinked: HashSet::default(),
            touched: IdSet::default(),
            unpublished: IdSet::default(),
            published_anchor: Some(Vec::new()),
            changed_ties: HashSet::default(),
            all_ties_changed: false,
            published_ties: HashMap::default(),
            persons: Default::default(),
            standings: Standings::default(),
        }
    }

    pub fn key(&self, id: Id) -> &str {
        self.keys.name(id)
    }

    /// The id of an identifier's key, if it was seen.
    pub fn id_of(&self, key: &str) -> Option<Id> {
        self.keys.get(key)
    }

    /// When an identifier was first seen, and in which event: what orders the members of
    /// a person (its anchor is the first).
    pub fn first(&self, id: Id) -> (i64, &str) {
        (self.idents[id as usize].first_ts, self.firsts.get(id))
    }

    /// Set when an identifier was first seen (a later checkpoint record of it may say
    /// earlier).
    pub fn set_first(&mut self, id: Id, first: (i64, &str)) {
        if self.first(id) != first {
            self.idents[id as usize].first_ts = first.0;
            self.firsts.set(id, first.1);
        }
    }

    /// The body of a resident identifier. The shell fetches the bodies a call needs
    /// before making it (`wants`), so a missing one is a bug, not a state.
    pub fn body(&self, id: Id) -> &Body {
        let ident = &self.idents[id as usize];
        match (ident.body.as_deref(), &ident.earlier) {
            (Some(body), None) => body,
            _ => panic!("the body of {} is not resident whole", self.key(id)),
        }
    }

    /// Before an identifier's sums or consent change (see `standing`).
    pub fn will_change(&mut self, id: Id) {
        let body = self.idents[id as usize].body.as_deref().expect("a body being changed is resident");
        self.standings.will_change(id, body);
    }

    pub fn body_mut(&mut self, id: Id) -> &mut Body {
        Self::resident(&mut self.idents[id as usize])
    }

    pub(crate) fn resident(ident: &mut Ident) -> &mut Body {
        match ident.body.as_deref_mut() {
            Some(body) => body,
            None => panic!("a body the caller did not make resident"),
        }
    }

    /// The id of a key, adding an identifier first seen at `first` if new.
    pub fn intern(&mut self, key: &str, first: (i64, &str)) -> (Id, bool) {
        let (id, new) = self.keys.intern(key);
        if new {
            self.firsts.push(first.1);
            self.idents.push(Ident { first_ts: first.0, body: Some(Box::default()), recent: true, ..Ident::default() });
        }
        (id, new)
    }

    /// Give a loaded identifier back its number: the next one, or one it already has
    /// (identifier records come in ascending numbers, so a number beyond the next is a
    /// corrupt record, and so is a number or key that names another).
    pub fn intern_at(&mut self, key: &str, id: Id, first: (i64, &str)) -> Result<Id, String> {
        let next = self.idents.len();
        if id as usize == next {
            return match self.intern(key, first) {
                (_, true) => Ok(id),
                (known, false) => Err(format!("{key} is number {known}, not {id}")),
            };
        }
        if (id as usize) < next && self.key(id) == key {
            return Ok(id); // a later segment's record of an identifier loaded before
        }
        Err(match self.keys.get(key) {
            Some(known) => format!("{key} is number {known}, not {id}"),
            None => format!("{key} is numbered {id} where the next number is {next}"),
        })
    }

    /// An identifier's body changed: the next checkpoint writes it, and `evict` counts
    /// its bytes again.
    pub fn changed(&mut self, id: Id) {
        self.dirty.idents.insert(id);
        self.grown.insert(id);
    }

    /// Count every decoded body's bytes afresh (after a load).
    pub fn count_all(&mut self) {
        self.grown.drain();
        self.held = 0;
        for ident in &mut self.idents {
            let bytes = ident.decoded_bytes();
            ident.counted = u32::try_from(bytes).unwrap_or(u32::MAX);
            self.held += bytes;
        }
    }

    pub fn forget_person(&mut self, id: Id) {
        self.persons.forget(id);
    }

    /// Rebuild the derived indexes (adjacency, share children) from the stored facts.
    pub fn reindex(&mut self) {
        self.incoming.resize(self.idents.len(), Incoming::new());
        let standing = self.pairs.iter().filter(|(_, history)| history.last().is_some_and(|e| e.2));
        self.adjacency = crate::ids::Adjacency::of_pairs(standing.map(|(&pair, _)| pair));
        self.shares.reindex();
    }

    /// The keyed indexes of what was applied since the last call, as store keys: one per
    /// (identifier, log position) mentioned, `x/<identifier>\x1f<position>`; and per
    /// link whose history changed, both directions `g/<a>\x1f<b>` with whether it stands
    /// now (its latest entry in event time).
    pub fn take_indexes(&mut self) -> Indexes {
        let key = |prefix: &[u8], a: &str, b: &[u8]| [prefix, a.as_bytes(), &[0x1f], b].concat();
        let mut mentions: Vec<Vec<u8>> = std::mem::take(&mut self.mentioned)
            .into_iter()
            .map(|(id, position)| key(b"x/", self.key(id), format!("{position:016x}").as_bytes()))
            .collect();
        mentions.sort_unstable(); // in key order, as a checkpoint writes bodies
        let mut links = Vec::with_capacity(self.relinked.len() * 2);
        for (a, b) in std::mem::take(&mut self.relinked) {
            let linked = self.pairs[&(a, b)].last().is_some_and(|e| e.2);
            links.push((key(b"g/", self.key(a), self.key(b).as_bytes()), linked));
            links.push((key(b"g/", self.key(b), self.key(a).as_bytes()), linked));
        }
        links.sort();
        (mentions, links)
    }
}

#[cfg(test)]
mod consent_tests {
    use super::*;

    #[test]
    fn short_lists_are_held_where_a_vec_header_was() {
        use std::mem::size_of;
        assert_eq!(size_of::<Incoming>(), size_of::<Vec<Id>>());
        assert_eq!(size_of::<SmallVec<[Sid; 4]>>(), size_of::<Vec<Sid>>());
        // one entry in the map's slot: its time, its event id's pointer, whether it links
        assert_eq!(size_of::<LinkHistory>(), 40);
        let mut history = LinkHistory::new();
        history.push((1, "e1".into(), true));
        assert!(!history.spilled());
    }

    fn scope(grantee: &str) -> Scope {
        (grantee.into(), "marketing".into(), "email".into())
    }

    #[test]
    fn consent_keeps_scopes_sorted_each_once_at_their_length() {
        let mut consent = Consent::default();
        consent.history_mut(scope("b")).push((2, "e2".into(), true, None));
        consent.history_mut(scope("a")).push((1, "e1".into(), true, None));
        consent.history_mut(scope("b")).push((3, "e3".into(), false, None));
        let scopes: Vec<&str> = consent.iter().map(|(s, _)| s.0.as_str()).collect();
        assert_eq!(scopes, ["a", "b"]);
        assert_eq!(consent.iter().map(|(_, h)| h.len()).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(consent.0.capacity(), 2);
        // a scope given again replaces its history, as a map's insert does
        consent.insert(scope("a"), vec![(9, "e9".into(), true, Some(10))]);
        assert_eq!(consent.len(), 2);
        assert_eq!(consent.iter().next().map(|(_, h)| h[0].0), Some(9));
        assert_eq!(
            Consent::from([(scope("b"), vec![]), (scope("a"), vec![])]).iter().next().map(|(s, _)| &s.0[..]),
            Some("a")
        );
    }
}
