//! Score changes and marketing triggers (reference: `crm2stream/core/changes.py`).
//!
//! After each batch, every person the batch touched is valued as of the latest event time;
//! a record is emitted when the tier moves or the composite moves by at least the delta
//! since the last record for that person. It is a marketing trigger when, and only when,
//! the person holds an unexpired `marketing` permission at that moment.

use crate::facts::{Facts, Id};
use crate::identity::current_person;
use crate::json::{format_micros, round4, J};
use crate::scales::Config;
use crate::tables::{end_of_day, DAY_US};
use crate::value::{active_at, consent_of, value_of};
use foldhash::{HashSet, HashSetExt};

pub fn score_changes(facts: &mut Facts, cfg: &Config) -> (Vec<J>, Vec<J>) {
    let mut changes = Vec::new();
    let mut triggers = Vec::new();
    let Some(moment) = facts.max_ts.filter(|_| !facts.touched.is_empty()) else {
        facts.touched.drain();
        return (changes, triggers);
    };
    let day = moment.div_euclid(DAY_US);
    let cutoff = end_of_day(day);
    let at = format_micros(moment);
    let mut touched: Vec<Id> = facts.touched.drain();
    touched.sort_unstable_by(|a, b| facts.key(*a).cmp(facts.key(*b))); // keys are unique
    let mut evaluated: HashSet<Id> = HashSet::new();
    for id in touched {
        if evaluated.contains(&id) {
            continue;
        }
        let person = current_person(facts, id, &cfg.id_key);
        evaluated.extend(person.members.iter().copied());
        let value = value_of(facts, &person.members, day, cutoff, cfg);
        let previous = facts
            .last_emitted
            .get(&person.person_id)
            .cloned()
            .unwrap_or_else(|| (0.0, cfg.lowest_tier().to_string()));
        let moved = (value.composite - previous.0).abs() >= cfg.delta;
        if value.tier == previous.1 && !moved {
            continue;
        }
        facts.last_emitted.insert(person.person_id.clone(), (value.composite, value.tier.clone()));
        facts.dirty.emitted.insert(person.person_id.clone());
        let anchor = facts.key(person.anchor).to_string();
        changes.push(J::obj(vec![
            ("person_id", J::s(&person.person_id)),
            ("anchor", J::s(&anchor)),
            ("at", J::s(&at)),
            ("composite", J::Float(value.composite)),
            ("tier", J::s(&value.tier)),
            ("previous_composite", J::Float(previous.0)),
            ("previous_tier", J::s(&previous.1)),
            ("consumption", J::Float(round4(value.consumption))),
            ("popularity", J::Float(round4(value.popularity))),
            ("social", J::Float(round4(value.social))),
        ]));
        let grants: Vec<J> = consent_of(facts, &person.members, moment)
            .into_iter()
            .filter(|(scope, entry)| scope.1 == "marketing" && active_at(entry, moment))
            .map(|(scope, _)| J::obj(vec![("grantee", J::s(&scope.0)), ("channel", J::s(&scope.2))]))
            .collect();
        if !grants.is_empty() {
            triggers.push(J::obj(vec![
                ("person_id", J::s(&person.person_id)),
                ("anchor", J::s(&anchor)),
                ("at", J::s(&at)),
                ("composite", J::Float(value.composite)),
                ("tier", J::s(&value.tier)),
                ("previous_tier", J::s(&previous.1)),
                ("grants", J::List(grants)),
            ]));
        }
    }
    (changes, triggers)
}
