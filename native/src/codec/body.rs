//! Identifier bodies: their day buckets, ties, consent and decayed sums, as the store
//! keeps them under their keys (and the cache packs them), and glances at them.

use super::{Reader, Result, Writer, BODY_FORMAT, BODY_FORMAT_2, BODY_FORMAT_3, FORMAT};
use crate::facts::{Body, ConsentEntry, DayBucket, Facts, Id, Scope, Tie, COUNTERS};
use num_bigint::BigUint;
use std::collections::BTreeMap;

/// An identifier's body as the store keeps it under its key (and the cache packs it):
/// its consent and sums first, so that a glance reads no further, then its day buckets
/// and ties, each day and each tie's target as the step from the one before.
pub fn encode_body(body: &Body, buffer: Vec<u8>) -> Vec<u8> {
    let mut w = Writer::into(buffer, BODY_FORMAT).shifting();
    write_consent_and_sums(&mut w, body);
    write_days(&mut w, &body.days, Days::Stepped);
    write_ties(&mut w, &body.out);
    w.0
}

/// `body` as formats 2 and 3 wrote it, and identifier records still hold it inline:
/// days, ties, then consent and sums.
pub(super) fn write_days_first(w: &mut Writer, body: &Body) {
    write_days(w, &body.days, Days::Whole);
    write_ties(w, &body.out);
    write_consent_and_sums(w, body);
}

/// Ties, sorted by (target, day): each target as the step from the one before.
fn write_ties(w: &mut Writer, ties: &[Tie]) {
    w.uint64(ties.len() as u64);
    let mut previous = 0;
    for tie in ties {
        w.uint64((tie.target - previous).into());
        previous = tie.target;
        w.int(tie.day.into());
        for &c in &tie.counts {
            w.uint64(c.into());
        }
    }
}

/// How a record writes its days: each whole (formats 1 to 3, and identifier records), or
/// as the step from the one before (format 4).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Days {
    Whole,
    Stepped,
}

pub(super) fn write_days(w: &mut Writer, days: &[DayBucket], how: Days) {
    w.uint64(days.len() as u64);
    let mut previous = 0;
    for b in days {
        w.int(if how == Days::Stepped { b.day() - previous } else { b.day() });
        previous = b.day();
        write_bucket(w, b);
    }
}

fn write_bucket(w: &mut Writer, b: &DayBucket) {
    for &c in &b.counts {
        w.uint64(c.into());
    }
    w.uint(b.amount);
}

pub(super) fn write_consent_and_sums(w: &mut Writer, body: &Body) {
    w.uint64(body.consent.len() as u64);
    for ((grantee, purpose, channel), history) in &body.consent {
        w.text(grantee);
        w.text(purpose);
        w.text(channel);
        w.uint64(history.len() as u64);
        for (ts, eid, granted, expires) in history {
            w.int(*ts);
            w.text(eid);
            w.0.push(u8::from(*granted));
            w.opt_int(*expires);
        }
    }
    for sum in &body.sums {
        w.sum(sum);
    }
}

/// A tie as stored: its target is named by key, resolved once every identifier is loaded.
pub type StoredTie = (String, i32, [u32; 4]);

/// An identifier's body as `encode_body` stored it (or an earlier format: 1 has its ties
/// resolved by key).
pub fn decode_body(facts: &Facts, data: &[u8]) -> Result<Body> {
    let body = match data.first() {
        Some(&FORMAT) => {
            let mut r = Reader::new(data, FORMAT)?;
            let (mut body, ties) = read_keyed_body(&mut r)?;
            body.out = resolve_ties(facts, ties)?;
            return Ok(body);
        }
        Some(&BODY_FORMAT) => {
            let mut r = Reader::new(data, BODY_FORMAT)?.shifting(true);
            let consent = read_consent(&mut r)?;
            let sums = read_sums(&mut r)?;
            let days = read_days(&mut r, Days::Stepped)?;
            Body { days, out: read_ties(&mut r)?, consent, sums }
        }
        _ => read_body(&mut body_reader(data)?)?,
    };
    check_ties(facts, &body.out)?;
    Ok(body)
}

/// What valuing a person now reads of a member's body: its consent and its decayed
/// sums. Score changes value every person a batch touched, and most members of those
/// persons were not touched: decoding their whole bodies (every day bucket and tie, which
/// grow with history) to read these cost more memory and time than the batch itself.
#[derive(Debug, Default)]
pub struct Glance {
    pub consent: BTreeMap<Scope, Vec<ConsentEntry>>,
    pub sums: [BigUint; 4],
}

/// The glance of a body as `encode_body` stored it: its head, whatever the length of its
/// history. Of formats 2 and 3 the days and ties are stepped over, not decoded; a body of
/// format 1, from an older directory, is decoded whole. Days and ties not decoded are not
/// checked: a body damaged there is found when it is decoded, as every body a batch
/// applies events to is.
pub fn glance_body(facts: &Facts, data: &[u8]) -> Result<Glance> {
    match data.first() {
        Some(&FORMAT) => {
            let body = decode_body(facts, data)?;
            return Ok(Glance { consent: body.consent, sums: body.sums });
        }
        Some(&BODY_FORMAT) => {
            let mut r = Reader::new(data, BODY_FORMAT)?.shifting(true);
            return Ok(Glance { consent: read_consent(&mut r)?, sums: read_sums(&mut r)? });
        }
        _ => {}
    }
    let mut r = body_reader(data)?;
    for _ in 0..r.len()? {
        r.day()?;
        for _ in 0..COUNTERS {
            r.count()?;
        }
        r.uint()?;
    }
    for _ in 0..r.len()? {
        r.number()?;
        r.day()?;
        for _ in 0..4 {
            r.count()?;
        }
    }
    Ok(Glance { consent: read_consent(&mut r)?, sums: read_sums(&mut r)? })
}

/// A reader of a body of format 2 or 3 (whose sums are shifted).
fn body_reader(data: &[u8]) -> Result<Reader<'_>> {
    match data.first() {
        Some(&BODY_FORMAT_2) => Ok(Reader::new(data, BODY_FORMAT_2)?),
        _ => Ok(Reader::new(data, BODY_FORMAT_3)?.shifting(true)),
    }
}

/// Every tie names an identifier this core has.
pub fn check_ties(facts: &Facts, ties: &[Tie]) -> Result<()> {
    match ties.last() {
        Some(tie) if tie.target as usize >= facts.idents.len() => Err(format!("tie to unknown number {}", tie.target)),
        _ => Ok(()),
    }
}

/// Ties named by key as the identifiers they name, in (target, day) order.
pub fn resolve_ties(facts: &Facts, ties: Vec<StoredTie>) -> Result<Vec<Tie>> {
    let mut out = Vec::with_capacity(ties.len());
    for (target, day, counts) in ties {
        let target = facts.id_of(&target).ok_or_else(|| format!("tie to unknown {target}"))?;
        out.push(Tie { target, day, counts });
    }
    out.sort_by_key(|t| (t.target, t.day));
    Ok(out)
}

/// A body as `write_days_first` wrote it.
pub(super) fn read_body(r: &mut Reader<'_>) -> Result<Body> {
    let days = read_days(r, Days::Whole)?;
    let out = read_ties(r)?;
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok(Body { days, out, consent, sums })
}

fn read_ties(r: &mut Reader<'_>) -> Result<Vec<Tie>> {
    let n = r.len()?;
    let mut out = Vec::with_capacity(r.bounded(n));
    let mut target: Id = 0;
    for _ in 0..n {
        target = target.checked_add(r.number()?).ok_or("tie target out of range")?;
        let day = r.day()?;
        let mut counts = [0; 4];
        for count in &mut counts {
            *count = r.count()?;
        }
        out.push(Tie { target, day, counts });
    }
    if !out.is_sorted_by_key(|t| (t.target, t.day)) {
        return Err("ties out of order".into());
    }
    Ok(out)
}

pub(super) fn read_keyed_body(r: &mut Reader<'_>) -> Result<(Body, Vec<StoredTie>)> {
    let days = read_days(r, Days::Whole)?;
    let ties = read_keyed_ties(r)?;
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok((Body { days, out: Vec::new(), consent, sums }, ties))
}

/// Day buckets as `write_days` wrote them. Days increase, as a body keeps them: a record
/// whose days do not is corrupt, not a body to store again.
pub(super) fn read_days(r: &mut Reader<'_>, how: Days) -> Result<Vec<DayBucket>> {
    let n = r.len()?;
    let mut days: Vec<DayBucket> = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        let read = r.day()?;
        let day = match (how, days.last()) {
            (Days::Stepped, Some(last)) => last.day.checked_add(read).ok_or("day out of range")?,
            _ => read,
        };
        if days.last().is_some_and(|last| last.day >= day) {
            return Err("day buckets out of order".into());
        }
        days.push(read_bucket(r, day)?);
    }
    Ok(days)
}

fn read_bucket(r: &mut Reader<'_>, day: i32) -> Result<DayBucket> {
    let mut b = DayBucket { day, ..DayBucket::default() };
    for i in 0..COUNTERS {
        b.counts[i] = r.count()?;
    }
    b.amount = r.uint()?;
    Ok(b)
}

pub(super) fn read_keyed_ties(r: &mut Reader<'_>) -> Result<Vec<StoredTie>> {
    let n = r.len()?;
    let mut ties = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        let target = r.text()?;
        let day = r.day()?;
        let mut counts = [0; 4];
        for count in &mut counts {
            *count = r.count()?;
        }
        ties.push((target, day, counts));
    }
    Ok(ties)
}

pub(super) fn read_consent(r: &mut Reader<'_>) -> Result<BTreeMap<Scope, Vec<ConsentEntry>>> {
    let mut consent = BTreeMap::new();
    for _ in 0..r.len()? {
        let scope = (r.text()?, r.text()?, r.text()?);
        let n = r.len()?;
        let mut history = Vec::with_capacity(r.bounded(n));
        for _ in 0..n {
            history.push((r.int()?, r.text()?, r.byte()? == 1, r.opt_int()?));
        }
        consent.insert(scope, history);
    }
    Ok(consent)
}

pub(super) fn read_sums(r: &mut Reader<'_>) -> Result<[BigUint; 4]> {
    let mut sums: [BigUint; 4] = Default::default();
    for sum in &mut sums {
        *sum = r.sum()?;
    }
    Ok(sums)
}
