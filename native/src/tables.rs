//! The live tables as of any UTC day (what they mean: `crm2stream/spec/`): rows are
//! projections of the facts through the partition of identifiers into persons.

use crate::facts::{Facts, Id, Person};
use crate::identity::{linked_at, Partition};
use crate::json::{format_micros, round4, J};
use crate::scales::{Config, WEIGHT_FX};
use crate::sum::Sum;
use crate::value::{active_at, consent_of, interaction_counts, merged_days, rfm, value_of};
use foldhash::{HashMap, HashMapExt};
use std::ops::Range;

pub const DAY_US: i64 = 86_400_000_000;

pub fn end_of_day(day: i64) -> i64 {
    (day + 1) * DAY_US - 1
}

/// The relationship from one person to another (indexes into the partition's persons).
struct Relationship {
    from: usize,
    to: usize,
    /// reply, comment, share, recipient
    counts: [u64; 4],
    strength: f64,
}

const REL_KINDS: [&str; 4] = ["reply", "comment", "share", "recipient"];

/// Every person's label and id as JSON strings, side by side in one buffer: the
/// relationships table names two persons per row, over a million rows.
pub struct PersonNames {
    text: Vec<u8>,
    /// per person: where its label starts, where its id starts, where it ends
    spans: Vec<[usize; 3]>,
}

impl PersonNames {
    pub fn new(facts: &Facts, cfg: &Config, partition: &Partition) -> Self {
        use crate::json::write_str;
        let mut text = Vec::new();
        let mut spans = Vec::with_capacity(partition.persons.len());
        for person in &partition.persons {
            let start = text.len();
            write_str(&mut text, &label_of(facts, cfg, person));
            let id = text.len();
            write_str(&mut text, &person.person_id());
            spans.push([start, id, text.len()]);
        }
        PersonNames { text, spans }
    }

    fn label(&self, person: usize) -> &[u8] {
        let [start, id, _] = self.spans[person];
        &self.text[start..id]
    }

    fn id(&self, person: usize) -> &[u8] {
        let [_, id, end] = self.spans[person];
        &self.text[id..end]
    }

    fn write_relationship(&self, out: &mut Vec<u8>, rel: &Relationship) {
        let from = (self.label(rel.from), self.id(rel.from));
        write_relationship(out, rel.counts, rel.strength, from, (self.label(rel.to), self.id(rel.to)));
    }
}

/// `write_canonical` of a relationship row, without building the row: keys in sorted order
/// (counts, from_label, from_person_id, strength, to_label, to_person_id). The persons
/// come as (label, person id), each already written as a JSON string.
pub fn write_relationship(
    out: &mut Vec<u8>,
    counts: [u64; 4],
    strength: f64,
    from: (&[u8], &[u8]),
    to: (&[u8], &[u8]),
) {
    use crate::json::{write_float, write_int};
    let [reply, comment, share, recipient] = counts;
    out.extend_from_slice(b"{\"counts\":{\"comment\":");
    write_int(out, comment.into());
    out.extend_from_slice(b",\"recipient\":");
    write_int(out, recipient.into());
    out.extend_from_slice(b",\"reply\":");
    write_int(out, reply.into());
    out.extend_from_slice(b",\"share\":");
    write_int(out, share.into());
    out.extend_from_slice(b"},\"from_label\":");
    out.extend_from_slice(from.0);
    out.extend_from_slice(b",\"from_person_id\":");
    out.extend_from_slice(from.1);
    out.extend_from_slice(b",\"strength\":");
    write_float(out, strength);
    out.extend_from_slice(b",\"to_label\":");
    out.extend_from_slice(to.0);
    out.extend_from_slice(b",\"to_person_id\":");
    out.extend_from_slice(to.1);
    out.push(b'}');
}

/// The tables as of a day, or a page of them: the persons in `persons` (indexes into the
/// partition's), for every table but identity, whose page is `identifiers` (indexes into
/// `Identity::order`).
pub struct View<'a> {
    facts: &'a Facts,
    cfg: &'a Config,
    as_of_day: i64,
    cutoff: i64,
    pub partition: Partition,
    persons: Range<usize>,
}

/// What the identity table is read in: the identifiers that exist by the cutoff, in key
/// order, and the links standing then.
pub struct Identity {
    pub order: Vec<Id>,
    linked: HashMap<Id, Vec<Id>>,
}

impl Identity {
    pub fn new(facts: &Facts, partition: &Partition, cutoff: i64) -> Self {
        let mut linked: HashMap<Id, Vec<Id>> = HashMap::new();
        for (&(a, b), history) in &facts.pairs {
            if linked_at(history, cutoff) {
                linked.entry(a).or_default().push(b);
                linked.entry(b).or_default().push(a);
            }
        }
        let mut order: Vec<Id> = partition.members().collect();
        order.sort_unstable_by(|a, b| facts.key(*a).cmp(facts.key(*b)));
        Identity { order, linked }
    }

    /// The rows of the identifiers `range` of `order`.
    pub fn rows<'b>(
        &'b self,
        facts: &'b Facts,
        partition: &'b Partition,
        range: Range<usize>,
    ) -> impl Iterator<Item = J> + 'b {
        self.order[range].iter().map(move |&id| {
            let index = partition.person_of(id).expect("members have a person");
            let links = self.linked.get(&id).into_iter().flatten().map(|&other| facts.key(other)).collect();
            identity_row(facts, id, &partition.persons[index], links)
        })
    }
}

/// What every person-keyed row starts with: the person id and its label.
fn head(person: &Person, facts: &Facts, cfg: &Config) -> Vec<(&'static str, J)> {
    vec![("person_id", J::s(&person.person_id())), ("label", J::Str(label_of(facts, cfg, person)))]
}

/// A person's label (see `labels`).
pub fn label_of(facts: &Facts, cfg: &Config, person: &Person) -> String {
    crate::labels::label(facts.key(person.anchor), cfg.raw_labels)
}

fn row(fields: Vec<(&'static str, J)>) -> J {
    J::obj(fields)
}

/// The state tables, in digest order.
pub const STATE_TABLES: [&str; 7] =
    ["persons", "identity", "interactions", "relationships", "rfm", "scores", "permissions"];

impl<'a> View<'a> {
    /// The rows of the persons `persons` (all: None) of a partition as of the day.
    pub fn page(
        facts: &'a Facts,
        cfg: &'a Config,
        as_of_day: i64,
        partition: Partition,
        persons: Option<Range<usize>>,
    ) -> Self {
        let persons = persons.unwrap_or(0..partition.persons.len());
        View { facts, cfg, as_of_day, cutoff: end_of_day(as_of_day), partition, persons }
    }

    /// The partition, for the next page.
    pub fn into_partition(self) -> Partition {
        self.partition
    }

    /// Hand each row of a table to `emit`, one at a time; false for an unknown table, and
    /// for identity, whose pages are identifiers (`Identity`).
    pub fn each(&self, table: &str, emit: &mut dyn FnMut(J)) -> bool {
        let rows = match table {
            "persons" => self.persons(),
            "interactions" => self.per_person(|p| Some(interactions_row(self.facts, self.cfg, p, self.as_of_day))),
            "relationships" => self.relationships(),
            "rfm" => self.per_person(|p| rfm_row(self.facts, self.cfg, p, self.as_of_day)),
            "scores" => self.per_person(|p| Some(scores_row(self.facts, self.cfg, p, self.as_of_day))),
            "permissions" => self.permissions(),
            _ => return false,
        };
        for row in rows {
            emit(row);
        }
        true
    }

    fn page_persons(&self) -> &[Person] {
        &self.partition.persons[self.persons.clone()]
    }

    fn per_person<'b>(&'b self, body: impl Fn(&Person) -> Option<J> + 'b) -> Box<dyn Iterator<Item = J> + 'b> {
        Box::new(self.page_persons().iter().filter_map(body))
    }

    fn persons(&self) -> Box<dyn Iterator<Item = J> + '_> {
        self.per_person(|p| Some(person_row(self.facts, self.cfg, p)))
    }

    /// Per source person (in person id order), the persons its members' ties reach, in
    /// person id order: persons are sorted by id, so their indexes are too.
    fn each_relationship(&self, emit: &mut dyn FnMut(Relationship)) {
        let partition = &self.partition;
        for (from, person) in self.persons.clone().zip(self.page_persons()) {
            let reached =
                tie_sums(self.facts, self.cfg, &person.members, self.as_of_day, |id| partition.person_of(id), from);
            for (to, counts, strength) in reached {
                emit(Relationship { from, to, counts, strength });
            }
        }
    }

    fn relationships(&self) -> Box<dyn Iterator<Item = J> + '_> {
        let mut all = Vec::new();
        self.each_relationship(&mut |rel| all.push(self.relationship_row(&rel)));
        Box::new(all.into_iter())
    }

    fn relationship_row(&self, rel: &Relationship) -> J {
        let persons = &self.partition.persons;
        relationship_row(self.facts, self.cfg, &persons[rel.from], &persons[rel.to], rel.counts, rel.strength)
    }

    fn permissions(&self) -> Box<dyn Iterator<Item = J> + '_> {
        Box::new(
            self.page_persons()
                .iter()
                .flat_map(move |person| permission_rows(self.facts, self.cfg, person, self.cutoff)),
        )
    }

    /// Hash the page's rows of a table (not identity: `Identity::rows`) into `digest`;
    /// relationships, most of the bytes, are written straight from their figures.
    pub fn digest_page(&self, table: &str, digest: &mut crate::digest::Digest, names: &PersonNames) {
        if table == "relationships" {
            self.each_relationship(&mut |rel| {
                digest.written(|buffer| names.write_relationship(buffer, &rel));
            });
            return;
        }
        self.each(table, &mut |row| digest.row(&row));
    }
}

// -- one person's rows: shared by the view and the table topics (`publication`) ------------

/// A person: its id, its label and how many identifiers it holds (which ones is the
/// identity table's business).
pub fn person_row(facts: &Facts, cfg: &Config, person: &Person) -> J {
    let mut fields = head(person, facts, cfg);
    fields.push(("members", J::Int(person.members.len() as i128)));
    row(fields)
}

pub fn identity_row(facts: &Facts, id: Id, person: &Person, mut links: Vec<&str>) -> J {
    let first = facts.first(id);
    links.sort_unstable();
    row(vec![
        ("identifier", J::s(facts.key(id))),
        ("person_id", J::s(&person.person_id())),
        ("anchor", J::s(facts.key(person.anchor))),
        ("first_seen", J::Str(format_micros(first.0))),
        ("first_event_id", J::s(first.1)),
        ("linked", J::List(links.into_iter().map(J::s).collect())),
    ])
}

pub fn interactions_row(facts: &Facts, cfg: &Config, person: &Person, as_of_day: i64) -> J {
    let mut fields = head(person, facts, cfg);
    fields.extend(interaction_counts(&merged_days(facts, &person.members, as_of_day), as_of_day));
    row(fields)
}

pub fn rfm_row(facts: &Facts, cfg: &Config, person: &Person, as_of_day: i64) -> Option<J> {
    let figures = rfm(&merged_days(facts, &person.members, as_of_day), as_of_day)?;
    let mut fields = head(person, facts, cfg);
    fields.extend(figures);
    Some(row(fields))
}

pub fn scores_row(facts: &Facts, cfg: &Config, person: &Person, as_of_day: i64) -> J {
    let mut fields = head(person, facts, cfg);
    fields.extend(value_of(facts, &person.members, as_of_day, end_of_day(as_of_day), cfg).row());
    row(fields)
}

pub fn permission_rows(facts: &Facts, cfg: &Config, person: &Person, cutoff: i64) -> Vec<J> {
    consent_of(facts, &person.members, cutoff)
        .into_iter()
        .map(|(scope, entry)| {
            let mut fields = head(person, facts, cfg);
            fields.extend([
                ("grantee", J::s(&scope.0)),
                ("purpose", J::s(&scope.1)),
                ("channel", J::s(&scope.2)),
                ("granted", J::Bool(entry.2)),
                ("active", J::Bool(active_at(entry, cutoff))),
                ("expires_at", entry.3.map_or(J::Null, |e| J::Str(format_micros(e)))),
                ("occurred_at", J::Str(format_micros(entry.0))),
                ("event_id", J::s(&entry.1)),
            ]);
            row(fields)
        })
        .collect()
}

/// The ties from a person's members, summed per target person (`target_of` names it;
/// `source` is the person itself, whose own ties are left out): (target, counts per kind,
/// decayed strength), sorted by target, pairs without any count left out.
pub fn tie_sums<K: Copy + Ord + std::hash::Hash>(
    facts: &Facts,
    cfg: &Config,
    members: &[Id],
    as_of_day: i64,
    mut target_of: impl FnMut(Id) -> Option<K>,
    source: K,
) -> Vec<(K, [u64; 4], f64)> {
    let weights = cfg.ties;
    let mut reached: HashMap<K, ([u64; 4], Sum)> = HashMap::new();
    for &member in members {
        for tie in &facts.body(member).out {
            let Some(to) = target_of(tie.target) else { continue };
            let day = i64::from(tie.day);
            if to == source || day > as_of_day {
                continue;
            }
            let (counts, strength) = reached.entry(to).or_default();
            for (count, &n) in counts.iter_mut().zip(&tie.counts) {
                *count += u64::from(n);
            }
            let tie: u128 = (0..4).map(|i| u128::from(weights[i]) * u128::from(tie.counts[i])).sum();
            facts.scales.add_weighted(strength, tie, day);
        }
    }
    let mut rows: Vec<(K, [u64; 4], f64)> = reached
        .into_iter()
        .filter(|(_, (counts, _))| counts.iter().any(|&n| n > 0))
        .map(|(to, (counts, strength))| (to, counts, round4(facts.scales.value(&strength, WEIGHT_FX, as_of_day))))
        .collect();
    rows.sort_unstable_by_key(|(to, _, _)| *to);
    rows
}

/// A relationship row between two persons.
pub fn relationship_row(facts: &Facts, cfg: &Config, from: &Person, to: &Person, counts: [u64; 4], strength: f64) -> J {
    let counts = REL_KINDS.iter().zip(counts).map(|(k, n)| (*k, J::Int(n.into())));
    row(vec![
        ("from_person_id", J::s(&from.person_id())),
        ("to_person_id", J::s(&to.person_id())),
        ("from_label", J::Str(label_of(facts, cfg, from))),
        ("to_label", J::Str(label_of(facts, cfg, to))),
        ("counts", J::Obj(counts.collect())),
        ("strength", J::Float(strength)),
    ])
}
