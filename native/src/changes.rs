//! Score changes and marketing triggers (what they mean: `crm2stream/spec/changes.py`).
//!
//! After each batch, every person the batch touched (an identifier its events name, or a
//! sharer its shares and referred purchases credit) is valued as of the latest event time;
//! a record is emitted when the tier moves or the composite moves by at least the delta
//! since the last record for that person. It is a marketing trigger when, and only when,
//! the person holds an unexpired `marketing` permission at that moment.

use crate::codec::Glance;
use crate::facts::{Facts, Id, IdSet, Person, Scope};
use crate::identity::current_person;
use crate::json::{format_micros, round4, write_float, write_int, write_str};
use crate::scales::Config;
use crate::standing::{Consent, Standings};
use crate::sum::Sum;
use crate::tables::DAY_US;
use crate::value::{active_at, valued};
use foldhash::HashMap;
use std::rc::Rc;

/// A member's consent and kept sums: from its body when decoded in memory, else from its
/// glance (see `Glance`).
fn standing<'a>(facts: &'a Facts, glances: &'a HashMap<Id, Glance>, id: Id) -> (&'a Consent, &'a [Sum; 4]) {
    match facts.idents[id as usize].body.as_deref() {
        Some(body) => (&body.consent, &body.sums),
        None => {
            let glance = glances.get(&id).unwrap_or_else(|| panic!("no body nor glance of {}", facts.key(id)));
            (&glance.consent, &glance.sums)
        }
    }
}

/// The persons of the identifiers touched since the last score changes, each once, in the
/// order of their first touched identifier's key (the order their records come in).
pub fn touched_persons(facts: &mut Facts, cfg: &Config) -> Vec<Rc<Person>> {
    let mut order: Vec<(&str, Id)> = facts.touched.iter().map(|&id| (facts.key(id), id)).collect();
    order.sort_unstable(); // keys are unique
    let order: Vec<Id> = order.into_iter().map(|(_, id)| id).collect();
    let mut evaluated = IdSet::default();
    let mut persons = Vec::new();
    for id in order {
        if evaluated.contains(id) {
            continue;
        }
        let person = current_person(facts, id, &cfg.id_key);
        for &member in &person.members {
            evaluated.insert(member);
        }
        persons.push(person);
    }
    persons
}

/// Records of one output stream as NDJSON, numbered from a base offset.
pub struct Records {
    pub count: usize,
    pub ndjson: Vec<u8>,
    base: i64,
}

impl Records {
    fn new(base: i64) -> Self {
        Records { count: 0, ndjson: Vec::new(), base }
    }

    /// Start a record: `{"offset":N,"person_id":...,"label":...,"at":...,"composite":...,"tier":...`
    fn open(&mut self, person_id: &str, label: &str, at: &str, composite: f64, tier: &str) -> &mut Vec<u8> {
        let out = &mut self.ndjson;
        if self.count > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(b"{\"offset\":");
        write_int(out, i128::from(self.base) + self.count as i128);
        self.count += 1;
        out.extend_from_slice(b",\"person_id\":");
        write_str(out, person_id);
        out.extend_from_slice(b",\"label\":");
        write_str(out, label);
        out.extend_from_slice(b",\"at\":");
        write_str(out, at);
        out.extend_from_slice(b",\"composite\":");
        write_float(out, composite);
        out.extend_from_slice(b",\"tier\":");
        write_str(out, tier);
        out
    }
}

fn field_float(out: &mut Vec<u8>, name: &[u8], value: f64) {
    out.extend_from_slice(name);
    write_float(out, value);
}

/// The score changes and marketing triggers of one batch's touched persons
/// (`touched_persons`), valued a page of persons at a time (`value`), so that only a
/// page's glances are held at once; records are numbered from the offsets given.
pub struct Valuation {
    changes: Records,
    triggers: Records,
    standings: Standings,
    /// the latest event time: the moment persons are valued at, and its day
    moment: Option<(i64, i64, String)>,
}

impl Valuation {
    /// Begin valuing the persons a batch touched: what it touched waits for the next
    /// publication, and the kept standings are taken until `finish`.
    pub fn begin(facts: &mut Facts, change_base: i64, trigger_base: i64) -> Self {
        for id in facts.touched.drain() {
            facts.unpublished.insert(id);
        }
        let moment = facts.max_ts.map(|moment| (moment, moment.div_euclid(DAY_US), format_micros(moment)));
        Valuation {
            changes: Records::new(change_base),
            triggers: Records::new(trigger_base),
            standings: std::mem::take(&mut facts.standings),
            moment,
        }
    }

    /// The members whose consent and sums valuing these persons reads (see `standing`).
    pub fn needs(&self, persons: &[Rc<Person>]) -> Vec<Id> {
        let mut out = Vec::new();
        for person in persons {
            self.standings.needs(person, &mut out);
        }
        out
    }

    /// Value the next persons, in order. Every member `needs` named has its body decoded
    /// in memory or a glance in `glances`.
    pub fn value(&mut self, facts: &mut Facts, cfg: &Config, persons: &[Rc<Person>], glances: &HashMap<Id, Glance>) {
        let Some((moment, day, at)) = &self.moment else { return };
        let (moment, day) = (*moment, *day);
        let (changes, triggers, standings) = (&mut self.changes, &mut self.triggers, &mut self.standings);
        for person in persons {
            let (sums, consent) = standings.of(person, |id| standing(facts, glances, id));
            let value = valued(&facts.scales, &sums, day, cfg);
            let (previous_composite, previous_tier) =
                facts.last_emitted.get(&person.key).unwrap_or((0.0, cfg.lowest_tier()));
            let moved = (value.composite - previous_composite).abs() >= cfg.delta;
            if value.tier == previous_tier && !moved {
                continue;
            }
            let previous_tier = previous_tier.to_string();
            let label = crate::tables::label_of(facts, cfg, person);
            let person_id = person.person_id();
            let out = changes.open(&person_id, &label, at, value.composite, value.tier);
            field_float(out, b",\"previous_composite\":", previous_composite);
            out.extend_from_slice(b",\"previous_tier\":");
            write_str(out, &previous_tier);
            field_float(out, b",\"consumption\":", round4(value.consumption));
            field_float(out, b",\"popularity\":", round4(value.popularity));
            field_float(out, b",\"social\":", round4(value.social));
            out.push(b'}');
            // the latest entry of each scope decides it: none is later than this moment
            let mut grants: Vec<&Scope> = (consent.iter())
                .filter(|(_, entry)| active_at(entry, moment))
                .map(|&(number, _)| standings.scope(number))
                .filter(|scope| scope.1 == "marketing")
                .collect();
            grants.sort_unstable();
            if !grants.is_empty() {
                let out = triggers.open(&person_id, &label, at, value.composite, value.tier);
                out.extend_from_slice(b",\"previous_tier\":");
                write_str(out, &previous_tier);
                out.extend_from_slice(b",\"grants\":[");
                for (i, scope) in grants.into_iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    out.extend_from_slice(b"{\"grantee\":");
                    write_str(out, &scope.0);
                    out.extend_from_slice(b",\"channel\":");
                    write_str(out, &scope.2);
                    out.push(b'}');
                }
                out.extend_from_slice(b"]}");
            }
            facts.last_emitted.insert(person.key, value.composite, value.tier);
            facts.dirty.emitted.insert(person.key);
        }
    }

    /// The records of every person valued; the kept standings go back to the facts.
    pub fn finish(mut self, facts: &mut Facts) -> (Records, Records) {
        self.standings.end_batch();
        facts.standings = self.standings;
        (self.changes, self.triggers)
    }
}
