//! Individual value, interaction counts and consent of a person (references:
//! `crm2stream/core/value.py`, `interactions.py`, `consent.py`).

use crate::decode::Kind;
use crate::facts::{
    Consent, ConsentEntry, DayBucket, Facts, Id, Scope, COUNTERS, PURCHASES, R_SHARE, S_CONSUMPTION, S_POPULARITY,
    S_REACH, S_REVENUE,
};
use crate::json::{round4, J};
use crate::scales::{Config, Scales, CREDIT_FX, WEIGHT_FX};
use crate::sum::Sum;
use std::borrow::Cow;
use std::collections::BTreeMap;

const AMOUNT_SCALE: f64 = 100_000_000.0;

/// Day buckets of all members summed, days up to `last_day` only, in day order (a lone
/// member's own buckets, borrowed).
pub fn merged_days<'a>(facts: &'a Facts, members: &[Id], last_day: i64) -> Cow<'a, [DayBucket]> {
    if let [only] = members {
        let days = &facts.body(*only).days;
        let end = days.partition_point(|b| b.day() <= last_day);
        return Cow::Borrowed(&days[..end]);
    }
    let mut all: Vec<&DayBucket> = Vec::new();
    for &id in members {
        let days = &facts.body(id).days;
        all.extend(&days[..days.partition_point(|b| b.day() <= last_day)]);
    }
    all.sort_unstable_by_key(|b| b.day);
    let mut merged: Vec<DayBucket> = Vec::with_capacity(all.len());
    for bucket in all {
        match merged.last_mut() {
            Some(total) if total.day == bucket.day => {
                for i in 0..COUNTERS {
                    total.counts[i] = total.counts[i].saturating_add(bucket.counts[i]);
                }
                total.amount += bucket.amount;
            }
            _ => merged.push(bucket.clone()),
        }
    }
    Cow::Owned(merged)
}

/// RFM in the customer-base-analysis convention (purchases merged per day).
pub fn rfm(days: &[DayBucket], as_of_day: i64) -> Option<Vec<(&'static str, J)>> {
    let purchase_days: Vec<&DayBucket> = days.iter().filter(|b| b.counts[PURCHASES] > 0).collect();
    let first = purchase_days.first()?.day();
    let repeat = &purchase_days[1..];
    let mut monetary = 0.0;
    if !repeat.is_empty() {
        // mean of the day totals, in 10**-4 units, rounded half to even
        let total: u128 = repeat.iter().map(|b| b.amount).sum();
        let divisor = repeat.len() as u128 * 10_000;
        let (q, r) = (total / divisor, total % divisor);
        let q = match (2 * r).cmp(&divisor) {
            std::cmp::Ordering::Greater => q + 1,
            std::cmp::Ordering::Equal if q % 2 == 1 => q + 1,
            _ => q,
        };
        monetary = format!("{}.{:04}", q / 10_000, q % 10_000).parse().unwrap_or(0.0);
    }
    let last = purchase_days.last()?.day();
    Some(vec![
        ("frequency", J::Int(repeat.len() as i128)),
        ("recency", J::Int(i128::from(last - first))),
        ("T", J::Int(i128::from(as_of_day - first))),
        ("monetary_value", J::Float(monetary)),
    ])
}

/// An identifier's four sums from its facts, counting only what happened by cutoff.
pub fn ident_sums(facts: &Facts, id: Id, as_of_day: i64, cutoff: i64) -> [Sum; 4] {
    let r = facts.received;
    let mut consumption = Sum::Zero;
    let mut popularity = Sum::Zero;
    for b in &facts.body(id).days {
        if b.day() > as_of_day {
            continue;
        }
        facts.scales.add_weighted(&mut consumption, b.amount, b.day());
        let c = &b.counts;
        let received = u128::from(r[0]) * u128::from(c[R_SHARE])
            + u128::from(r[1]) * u128::from(c[R_SHARE + 1])
            + u128::from(r[2]) * u128::from(c[R_SHARE + 2])
            + u128::from(r[3]) * u128::from(c[R_SHARE + 3]);
        facts.scales.add_weighted(&mut popularity, received, b.day());
    }
    let (reach, revenue) = facts.social_sums(id, cutoff);
    [consumption, popularity, reach, revenue]
}

#[derive(Debug, Clone)]
pub struct Value<'c> {
    pub consumption: f64,
    pub popularity: f64,
    pub reach: f64,
    pub referred_revenue: f64,
    pub social: f64,
    pub composite: f64,
    pub tier: &'c str,
}

impl Value<'_> {
    pub fn row(&self) -> Vec<(&'static str, J)> {
        vec![
            ("consumption", J::Float(round4(self.consumption))),
            ("popularity", J::Float(round4(self.popularity))),
            ("social", J::Float(round4(self.social))),
            ("reach", J::Float(round4(self.reach))),
            ("referred_revenue", J::Float(round4(self.referred_revenue))),
            ("composite", J::Float(self.composite)),
            ("tier", J::s(self.tier)),
        ]
    }
}

fn points(raw: f64, scale: f64) -> f64 {
    if raw > 0.0 {
        100.0 * (1.0 - 0.5f64.powf(raw / scale))
    } else {
        0.0
    }
}

/// A person's value as of a day; the kept sums serve when nothing is to be left out.
pub fn value_of<'c>(facts: &Facts, members: &[Id], as_of_day: i64, cutoff: i64, cfg: &'c Config) -> Value<'c> {
    if facts.max_ts.is_none_or(|m| cutoff >= m) {
        return value_now(&facts.scales, members.iter().map(|&id| &facts.body(id).sums), as_of_day, cfg);
    }
    let mut totals: [Sum; 4] = Default::default();
    for &id in members {
        for (total, sum) in totals.iter_mut().zip(ident_sums(facts, id, as_of_day, cutoff)) {
            total.add(&sum);
        }
    }
    valued(&facts.scales, &totals, as_of_day, cfg)
}

/// A person's value as of the latest event, from its members' kept sums (a lone
/// member's, borrowed).
pub fn value_now<'a, 'c>(
    scales: &Scales,
    mut sums: impl Iterator<Item = &'a [Sum; 4]>,
    as_of_day: i64,
    cfg: &'c Config,
) -> Value<'c> {
    let Some(first) = sums.next() else { return valued(scales, &Default::default(), as_of_day, cfg) };
    let Some(second) = sums.next() else { return valued(scales, first, as_of_day, cfg) };
    let mut totals = first.clone();
    for more in std::iter::once(second).chain(sums) {
        for (total, sum) in totals.iter_mut().zip(more) {
            total.add(sum);
        }
    }
    valued(scales, &totals, as_of_day, cfg)
}

/// The value of kept sums (a person's members' summed) as of a day.
pub fn valued<'c>(scales: &Scales, totals: &[Sum; 4], as_of_day: i64, cfg: &'c Config) -> Value<'c> {
    let consumption = scales.value(&totals[S_CONSUMPTION], 0, as_of_day) / AMOUNT_SCALE;
    let popularity = scales.value(&totals[S_POPULARITY], WEIGHT_FX, as_of_day);
    let reach = scales.value(&totals[S_REACH], CREDIT_FX, as_of_day);
    let revenue = scales.value(&totals[S_REVENUE], CREDIT_FX, as_of_day) / AMOUNT_SCALE;
    let social = cfg.reach_weight * reach + cfg.referred_revenue_weight * revenue;
    let [w_c, w_p, w_s] = cfg.weights;
    let composite = round4(
        (w_c * points(consumption, cfg.consumption_scale)
            + w_p * points(popularity, cfg.popularity_scale)
            + w_s * points(social, cfg.social_scale))
            / (w_c + w_p + w_s),
    );
    Value { consumption, popularity, reach, referred_revenue: revenue, social, composite, tier: cfg.tier_of(composite) }
}

const RECEIVED: [&str; 4] = ["share", "comment", "reply", "recipient"];
const WINDOWS: [(&str, i64); 3] = [("last_1d", 1), ("last_7d", 7), ("last_30d", 30)];

fn counts(total: &[u64; 10]) -> J {
    let done = Kind::ALL.iter().map(|kind| (kind.name(), J::Int(total[kind.done()].into())));
    let received = RECEIVED.iter().enumerate().map(|(i, k)| (*k, J::Int(total[6 + i].into())));
    J::obj(vec![("done", J::Obj(done.collect())), ("received", J::Obj(received.collect()))])
}

/// All-time totals and rolling windows (a window of N days: `as_of - N < D <= as_of`).
pub fn interaction_counts(days: &[DayBucket], as_of_day: i64) -> Vec<(&'static str, J)> {
    let mut totals = [[0u64; 10]; 4];
    for bucket in days {
        for (w, total) in totals.iter_mut().enumerate() {
            if w == 0 || bucket.day() > as_of_day - WINDOWS[w - 1].1 {
                for (sum, &count) in total.iter_mut().zip(&bucket.counts[..10]) {
                    *sum += u64::from(count);
                }
            }
        }
    }
    let mut row = vec![("total", counts(&totals[0]))];
    for (w, (name, _)) in WINDOWS.iter().enumerate() {
        row.push((name, counts(&totals[w + 1])));
    }
    row
}

/// The deciding permission per (grantee, purpose, channel) as of cutoff, sorted by scope.
pub fn consent_of<'a>(facts: &'a Facts, members: &[Id], cutoff: i64) -> Vec<(&'a Scope, &'a ConsentEntry)> {
    deciding(members.iter().map(|&id| &facts.body(id).consent), cutoff)
}

/// `consent_of`, from the members' consent histories.
pub fn deciding<'a>(histories: impl Iterator<Item = &'a Consent>, cutoff: i64) -> Vec<(&'a Scope, &'a ConsentEntry)> {
    let mut latest: BTreeMap<&Scope, &ConsentEntry> = BTreeMap::new();
    for consent in histories {
        for (scope, history) in consent {
            let index = history.partition_point(|e| e.0 <= cutoff);
            if index == 0 {
                continue;
            }
            let entry = &history[index - 1];
            let newer = latest.get(scope).is_none_or(|held| (entry.0, &entry.1) > (held.0, &held.1));
            if newer {
                latest.insert(scope, entry);
            }
        }
    }
    latest.into_iter().collect()
}

pub fn active_at(entry: &ConsentEntry, moment: i64) -> bool {
    entry.2 && entry.3.is_none_or(|expires| expires > moment)
}
