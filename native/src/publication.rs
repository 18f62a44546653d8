//! Table topics (`docs/architecture.md` explains why the scope is exact): per person whose
//! rows changed since the last publication, its current record in every table topic;
//! tombstones for person ids that no longer exist; and of the relationships, only the
//! pairs whose value changed: those with a changed tie, or with a tie from or to an
//! identifier that changed person (then under its old person id and its new one).

use crate::emitted::{person_key, PersonKey};
use crate::facts::{Facts, Id, IdSet, UNPUBLISHED};
use crate::identity::{anchor_of, component, current_person, person_digest, person_id, person_id_of, Partition};
use crate::json::{format_micros, write_canonical, write_int, write_str, J};
use crate::scales::Config;
use crate::tables::{
    end_of_day, identity_row, interactions_row, label_of, permission_rows, person_row, rfm_row, scores_row, tie_sums,
    write_relationship, DAY_US, STATE_TABLES,
};
use foldhash::{HashMap, HashSet};

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Full,
    Retired,
    Links,
}

pub struct Publication {
    at: String,
    day: i64,
    /// (person id as its digest, what it carries, the person's anchor; for a retired
    /// person id, the identifier that anchored it), sorted by person id. A person is
    /// found again from its anchor when rendered: no person is held for the whole
    /// publication (at the end of an ingest, one item per person there is).
    items: Vec<(PersonKey, Role, Id)>,
    /// the (from, to) persons, by anchor, of the relationships whose value may have
    /// changed; None: any relationship of the persons rendered may have
    rewrite: Option<HashSet<(Id, Id)>>,
    done: usize,
    /// until `resolve`: the identifiers whose person changed, with the anchor they were
    /// published under, and the identifiers the items cover
    moved_from: HashMap<Id, Id>,
    covered: IdSet,
    reached: Reached,
}

/// The persons the ties of a publication's rows reach: per identifier reached, its
/// person's anchor, and per anchor, its person id's digest. Found once each for the whole
/// publication (nothing changes who belongs to whom until its last page), a few dozen
/// bytes an identifier reached. Memoising a whole `Person` for every identifier a tie
/// reaches instead held 159 MiB after a tail of 200,000 events at 9M events.
#[derive(Default)]
struct Reached {
    anchor: HashMap<Id, Id>,
    digest: HashMap<Id, PersonKey>,
}

impl Reached {
    /// The anchor of `id`'s person and its person id's digest.
    fn of(&mut self, facts: &Facts, cfg: &Config, id: Id) -> (Id, PersonKey) {
        let anchor = match self.anchor.get(&id) {
            Some(&anchor) => anchor,
            None => {
                let (anchor, members) = match facts.persons.get(id) {
                    Some(person) => (person.anchor, person.members.clone()),
                    _ => {
                        let members = component(facts, id);
                        (anchor_of(facts, &members), members)
                    }
                };
                self.anchor.extend(members.into_iter().map(|member| (member, anchor)));
                anchor
            }
        };
        let digest = self.digest.entry(anchor).or_insert_with(|| person_digest(facts.key(anchor), &cfg.id_key));
        (anchor, *digest)
    }
}

impl Publication {
    pub fn len(&self) -> usize {
        self.items.len()
    }
    pub fn finished(&self) -> bool {
        self.done >= self.items.len()
    }
    /// The identifiers published before whose person changed, in order: `resolve` reads
    /// their bodies. (One never published appeared since the last publication: each of
    /// its ties is a changed tie, and each identifier with a tie into it is in the scope.)
    pub fn moved(&self) -> Vec<Id> {
        let mut moved: Vec<Id> =
            self.moved_from.iter().filter(|(_, &before)| before != UNPUBLISHED).map(|(&id, _)| id).collect();
        moved.sort_unstable(); // the scope's order does not depend on hashing
        moved
    }

    /// The person ids of the next `limit` items, once each: those whose published ties
    /// `render` reads and rewrites.
    pub fn persons_ahead(&self, limit: usize) -> Vec<String> {
        let end = (self.done + limit).min(self.items.len());
        let mut keys: Vec<&PersonKey> = self.items[self.done..end].iter().map(|(key, _, _)| key).collect();
        keys.dedup(); // sorted by person id
        keys.into_iter().map(person_id).collect()
    }

    /// The anchors of the persons the next `limit` items render, as (person id, the
    /// anchor's key; None for a person id they retire): what the store indexes so that
    /// a person id finds its members without the facts (`anchor_key`).
    pub fn anchors_ahead(&self, facts: &Facts, limit: usize) -> Vec<(String, Option<String>)> {
        let end = (self.done + limit).min(self.items.len());
        let mut anchors: Vec<(String, Option<String>)> = self.items[self.done..end]
            .iter()
            .map(|(key, role, anchor)| {
                (person_id(key), (*role != Role::Retired).then(|| facts.key(*anchor).to_owned()))
            })
            .collect();
        anchors.dedup(); // sorted by person id: a person rendered whole and for its links
        anchors
    }

    /// The members of the persons the next `limit` items render (whose bodies it reads).
    pub fn members_ahead(&self, facts: &mut Facts, cfg: &Config, limit: usize) -> Vec<Id> {
        let end = (self.done + limit).min(self.items.len());
        let mut members = Vec::new();
        for &(_, role, anchor) in &self.items[self.done..end] {
            if role != Role::Retired {
                members.extend_from_slice(&current_person(facts, anchor, &cfg.id_key).members);
            }
        }
        members
    }
}

/// After a load: the table topics hold the anchors of the current persons and their
/// current pairs (the engine publishes at every checkpoint). Derived a page of persons at
/// a time (`step`), so that only a page's bodies need be resident at once.
pub struct Derivation {
    partition: Partition,
    day: i64,
    published: HashMap<String, Vec<String>>,
    next: usize,
}

impl Derivation {
    pub fn new(facts: &Facts, cfg: &Config) -> Self {
        Derivation {
            partition: Partition::new(facts, i64::MAX, &cfg.id_key),
            day: facts.max_ts.unwrap_or(0).div_euclid(DAY_US),
            published: HashMap::default(),
            next: 0,
        }
    }

    pub fn finished(&self) -> bool {
        self.next >= self.partition.persons.len()
    }

    /// The members of the next `persons` persons (whose bodies `step` reads).
    pub fn members_ahead(&self, persons: usize) -> Vec<Id> {
        let end = (self.next + persons).min(self.partition.persons.len());
        self.partition.persons[self.next..end].iter().flat_map(|p| p.members.iter().copied()).collect()
    }

    /// Derive what the next `persons` persons were published with.
    pub fn step(&mut self, facts: &Facts, cfg: &Config, persons: usize) {
        let end = (self.next + persons).min(self.partition.persons.len());
        for index in self.next..end {
            let person = &self.partition.persons[index];
            let partition = &self.partition;
            let reached = tie_sums(facts, cfg, &person.members, self.day, |id| partition.person_of(id), index);
            let mut targets: Vec<String> =
                reached.into_iter().map(|(to, _, _)| partition.persons[to].person_id()).collect();
            if !targets.is_empty() {
                targets.sort_unstable();
                self.published.insert(person.person_id(), targets);
            }
        }
        self.next = end;
    }

    pub fn finish(self, facts: &mut Facts) {
        if facts.published_anchor.is_none() {
            facts.published_anchor = Some(anchors_of_persons(&self.partition, facts.idents.len()));
        }
        facts.published_ties = self.published;
    }
}

/// After a load, with the published ties kept in the store: the anchors the table
/// topics hold are those of the current persons, which need no body.
pub fn derive_anchors(facts: &mut Facts, cfg: &Config) {
    let partition = Partition::new(facts, i64::MAX, &cfg.id_key);
    facts.published_anchor = Some(anchors_of_persons(&partition, facts.idents.len()));
}

/// Per identifier, the anchor of its person in a partition of all of them.
fn anchors_of_persons(partition: &Partition, identifiers: usize) -> Vec<Id> {
    let mut anchors = vec![UNPUBLISHED; identifiers];
    for person in &partition.persons {
        for &member in &person.members {
            anchors[member as usize] = person.anchor;
        }
    }
    anchors
}

/// The store key of a person's published ties: `t/<person id>`.
pub fn ties_key(person_id: &str) -> Vec<u8> {
    [b"t/", person_id.as_bytes()].concat()
}

/// The store key of a published person's anchor: `n/<person id>`.
pub fn anchor_key(person_id: &str) -> Vec<u8> {
    [b"n/", person_id.as_bytes()].concat()
}

/// A person's published ties as stored: the person ids, sorted, one per line.
pub fn encode_ties(targets: &[String]) -> Vec<u8> {
    targets.join("\n").into_bytes()
}

pub fn decode_ties(record: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(record).map_err(|e| format!("published ties: {e}"))?;
    let targets: Vec<String> = text.split('\n').map(str::to_owned).collect();
    if targets.iter().any(String::is_empty) || !targets.windows(2).all(|w| w[0] < w[1]) {
        return Err(format!("published ties are not sorted person ids: {text:?}"));
    }
    Ok(targets)
}

/// Decide what the next publication carries, and consider it published; `resolve` it
/// (with the bodies of its `moved` identifiers resident) before rendering.
pub fn begin(facts: &mut Facts, cfg: &Config) -> Option<Publication> {
    let moment = facts.max_ts.filter(|_| !facts.unpublished.is_empty())?;
    let mut unpublished = facts.unpublished.drain();
    let changed_ties = std::mem::take(&mut facts.changed_ties);
    let all_ties_changed = std::mem::take(&mut facts.all_ties_changed);
    unpublished.sort_unstable_by(|a, b| facts.key(*a).cmp(facts.key(*b)));
    let mut anchors = facts.published_anchor.take().expect("derive_published first");
    anchors.resize(facts.idents.len(), UNPUBLISHED);
    // the identifiers whose person changed, with the anchor they were published under
    let mut moved_from: HashMap<Id, Id> = HashMap::default();
    let mut covered = IdSet::default();
    let mut items: Vec<(PersonKey, Role, Id)> = Vec::new();
    for id in unpublished {
        // its checkpoint record says whether it waits for a publication (`codec`)
        facts.dirty.records.insert(id);
        if covered.contains(id) {
            continue;
        }
        let person = current_person(facts, id, &cfg.id_key);
        for &member in &person.members {
            covered.insert(member);
            let before = anchors[member as usize];
            if before != person.anchor {
                moved_from.insert(member, before);
                anchors[member as usize] = person.anchor;
                facts.dirty.records.insert(member); // ...and the anchor it was published under
            }
            // an anchor that no longer anchors its person retires its person id
            if before == member && member != person.anchor {
                items.push((digest(&person_id_of(facts.key(member), &cfg.id_key)), Role::Retired, member));
            }
        }
        items.push((person.key, Role::Full, person.anchor));
    }
    // Relationships: the pairs a changed tie or a moved identifier affects, under the
    // persons before and after (named by their anchors); and the persons with ties into a
    // moved identifier.
    let mut rewrite: Option<HashSet<(Id, Id)>> = (!all_ties_changed).then(HashSet::default);
    for (source, target) in changed_ties.into_iter().filter(|_| !all_ties_changed) {
        let pair =
            (current_person(facts, source, &cfg.id_key).anchor, current_person(facts, target, &cfg.id_key).anchor);
        rewrite.iter_mut().for_each(|rewrite| {
            rewrite.insert(pair);
        });
    }
    facts.published_anchor = Some(anchors);
    let at = format_micros(moment);
    let day = moment.div_euclid(DAY_US);
    Some(Publication { at, day, items, rewrite, done: 0, moved_from, covered, reached: Reached::default() })
}

/// The relationships of the identifiers whose person changed: their ties' pairs under the
/// persons before and after, and the persons with ties into them.
pub fn resolve(facts: &mut Facts, cfg: &Config, publication: &mut Publication) {
    let moved = publication.moved();
    let moved_from = std::mem::take(&mut publication.moved_from);
    let mut covered = std::mem::take(&mut publication.covered);
    let (items, mut rewrite) = (&mut publication.items, publication.rewrite.as_mut());
    for &member in &moved {
        let targets: Vec<Id> = facts.body(member).out.iter().map(|t| t.target).collect();
        let sources = facts.incoming.get(member as usize).cloned().unwrap_or_default();
        let ties = targets.into_iter().map(|t| (member, t)).chain(sources.into_iter().map(|s| (s, member)));
        for (source, target) in ties {
            if let Some(rewrite) = rewrite.as_deref_mut() {
                for from in anchors_of(facts, cfg, &moved_from, source) {
                    for to in anchors_of(facts, cfg, &moved_from, target) {
                        rewrite.insert((from, to));
                    }
                }
            }
            if !covered.contains(source) {
                let person = current_person(facts, source, &cfg.id_key);
                for &other in &person.members {
                    covered.insert(other);
                }
                items.push((person.key, Role::Links, person.anchor));
            }
        }
    }
    // a digest's bytes sort as the hex digits of its person id do
    items.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    // what finding the persons memoised: the items name them by anchor
    facts.persons.clear();
}

/// The digest a person id spells (`identity::person_id`).
fn digest(person_id: &str) -> PersonKey {
    person_key(person_id).expect("a person id is its digest in hex")
}

/// The anchor of an identifier's person now, and the one it was last published under if
/// that was another.
/// (Identifiers outside the scope did not change person: see `docs/architecture.md`.)
fn anchors_of(facts: &mut Facts, cfg: &Config, moved_from: &HashMap<Id, Id>, id: Id) -> [Id; 2] {
    let now = current_person(facts, id, &cfg.id_key).anchor;
    let before = moved_from.get(&id).copied().unwrap_or(UNPUBLISHED);
    [now, if before == UNPUBLISHED { now } else { before }]
}

/// The records of one table topic as NDJSON in canonical JSON, numbered from a base.
pub struct TopicRecords {
    pub count: usize,
    pub ndjson: Vec<u8>,
    base: i64,
}

impl TopicRecords {
    fn push(&mut self, at: &str, key: &str, value: Option<&J>) {
        self.open(at, key);
        match value {
            Some(value) => write_canonical(&mut self.ndjson, value),
            None => self.ndjson.extend_from_slice(b"null"),
        }
        self.ndjson.push(b'}');
    }

    /// A record whose value is already canonical JSON.
    fn push_raw(&mut self, at: &str, key: &str, value: &[u8]) {
        self.open(at, key);
        self.ndjson.extend_from_slice(value);
        self.ndjson.push(b'}');
    }

    /// `{"at":...,"key":...,"offset":N,"value":` (keys in canonical order)
    fn open(&mut self, at: &str, key: &str) {
        let out = &mut self.ndjson;
        if self.count > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(b"{\"at\":");
        write_str(out, at);
        out.extend_from_slice(b",\"key\":");
        write_str(out, key);
        out.extend_from_slice(b",\"offset\":");
        write_int(out, i128::from(self.base) + self.count as i128);
        out.extend_from_slice(b",\"value\":");
        self.count += 1;
    }
}

fn list_or_null(rows: Vec<J>) -> Option<J> {
    (!rows.is_empty()).then_some(J::List(rows))
}

/// The records of the next `limit` items, per state table (in `STATE_TABLES` order).
pub fn render(
    facts: &mut Facts,
    cfg: &Config,
    publication: &mut Publication,
    bases: &[i64],
    limit: usize,
) -> Vec<TopicRecords> {
    let mut out: Vec<TopicRecords> =
        bases.iter().map(|&base| TopicRecords { count: 0, ndjson: Vec::new(), base }).collect();
    let table = |name: &str| STATE_TABLES.iter().position(|t| *t == name).expect("a state table");
    let [persons, identity, interactions, relationships, rfm, scores, permissions] =
        ["persons", "identity", "interactions", "relationships", "rfm", "scores", "permissions"].map(table);
    let (day, cutoff) = (publication.day, end_of_day(publication.day));
    let end = (publication.done + limit).min(publication.items.len());
    let at = publication.at.as_str();
    // the pairs each person's records now hold, kept once the loop lets go of the facts
    let mut published: Vec<(String, Vec<String>)> = Vec::new();
    let reached_by_ties = &mut publication.reached;
    for &(key, role, anchor) in &publication.items[publication.done..end] {
        let person_id = &person_id(&key);
        if role == Role::Retired {
            for t in [persons, interactions, rfm, scores, permissions] {
                out[t].push(at, person_id, None);
            }
            for target in facts.published_ties.remove(person_id).unwrap_or_default() {
                out[relationships].push(at, &format!("{person_id}>{target}"), None);
            }
            continue;
        }
        let person = &current_person(facts, anchor, &cfg.id_key);
        // nothing changes who belongs to whom between `begin` and the last page
        debug_assert_eq!(person.key, key);
        // the persons the ties reach, as (anchor, person id digest), looked up before the
        // rows borrow the facts
        let old = facts.published_ties.remove(person_id).unwrap_or_default();
        let facts: &Facts = facts;
        let mut targets: Vec<(Id, PersonKey)> = Vec::new();
        let mut slot_of = HashMap::<Id, usize>::default();
        let mut slot_of_anchor = HashMap::<Id, usize>::default();
        for &member in &person.members {
            for tie in &facts.body(member).out {
                let target = reached_by_ties.of(facts, cfg, tie.target);
                let slot = *slot_of_anchor.entry(target.0).or_insert_with(|| {
                    targets.push(target);
                    targets.len() - 1
                });
                slot_of.insert(tie.target, slot);
            }
        }
        let own = targets.iter().position(|&(a, _)| a == person.anchor).unwrap_or(usize::MAX);
        let mut reached = tie_sums(facts, cfg, &person.members, day, |id| slot_of.get(&id).copied(), own);
        // a digest's bytes sort as the hex digits of its person id do
        reached.sort_unstable_by(|a, b| targets[a.0].1.cmp(&targets[b.0].1));
        // the pairs to write: those whose value may have changed, and the new ones
        let touched: Vec<bool> = match &publication.rewrite {
            Some(rewrite) => targets.iter().map(|&(to, _)| rewrite.contains(&(person.anchor, to))).collect(),
            None => vec![true; targets.len()],
        };
        let (mut from_label, mut from_id) = (Vec::new(), Vec::new());
        write_str(&mut from_label, &label_of(facts, cfg, person));
        write_str(&mut from_id, person_id);
        let (mut to_label, mut to_id, mut row) = (Vec::new(), Vec::new(), Vec::new());
        let mut now = Vec::with_capacity(reached.len());
        let mut gone = old.iter().peekable();
        for (to, counts, strength) in reached {
            let target = &crate::identity::person_id(&targets[to].1);
            while let Some(stale) = gone.next_if(|stale| *stale < target) {
                out[relationships].push(at, &format!("{person_id}>{stale}"), None);
            }
            let known = gone.next_if(|stale| *stale == target).is_some();
            if touched[to] || !known {
                // written straight from the figures: most of a publication's bytes
                to_label.clear();
                to_id.clear();
                row.clear();
                write_str(&mut to_label, &crate::labels::label(facts.key(targets[to].0), cfg.raw_labels));
                write_str(&mut to_id, target);
                write_relationship(&mut row, counts, strength, (&from_label, &from_id), (&to_label, &to_id));
                out[relationships].push_raw(at, &format!("{person_id}>{target}"), &row);
            }
            now.push(target.clone());
        }
        for stale in gone {
            out[relationships].push(at, &format!("{person_id}>{stale}"), None);
        }
        if !now.is_empty() {
            published.push((person_id.clone(), now));
        }
        if role == Role::Links {
            continue;
        }
        out[persons].push(at, person_id, Some(&person_row(facts, cfg, person)));
        for &member in &person.members {
            let linked: Vec<&str> = facts.adjacency.linked(member).iter().map(|&other| facts.key(other)).collect();
            out[identity].push(at, facts.key(member), Some(&identity_row(facts, member, person, linked)));
        }
        out[interactions].push(at, person_id, Some(&interactions_row(facts, cfg, person, day)));
        out[rfm].push(at, person_id, rfm_row(facts, cfg, person, day).as_ref());
        out[scores].push(at, person_id, Some(&scores_row(facts, cfg, person, day)));
        out[permissions].push(at, person_id, list_or_null(permission_rows(facts, cfg, person, cutoff)).as_ref());
    }
    facts.published_ties.extend(published);
    // the persons rendered were memoised for this write alone (`members_ahead`, above)
    for &(_, role, anchor) in &publication.items[publication.done..end] {
        if role != Role::Retired {
            facts.forget_person(anchor);
        }
    }
    publication.done = end;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_ties_read_back_as_written_and_garbage_is_an_error() {
        let targets = vec!["p1".to_string(), "p2".to_string()];
        assert_eq!(decode_ties(&encode_ties(&targets)), Ok(targets));
        assert_eq!(ties_key("p9"), b"t/p9");
        for garbage in [&b"p2\np1"[..], b"", b"p1\n\np2", b"\xff"] {
            assert!(decode_ties(garbage).is_err(), "{garbage:?}");
        }
    }
}
