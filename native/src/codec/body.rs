//! Identifier bodies: their day buckets, ties, consent and decayed sums, as the store
//! keeps them under their keys (and the cache packs them), and glances at them.

use super::{Reader, Result, Writer, BODY_FORMAT, BODY_FORMAT_2, BODY_FORMAT_3, BODY_FORMAT_4, BODY_FORMAT_5, FORMAT};
use crate::facts::{Body, Consent, DayBucket, Facts, Id, Tie, COUNTERS};
use crate::sum::Sum;

/// An identifier's body as the store keeps it under its key (and the cache packs it):
/// its consent and sums first, so that a glance reads no further, then its day buckets
/// and ties as parts (here one), each day and each tie's target as the step from the one
/// before, and of their counters only those not zero (`Days::Sparse`).
pub fn encode_body(body: &Body, buffer: Vec<u8>) -> Vec<u8> {
    let mut w = Writer::into(buffer, BODY_FORMAT).shifting();
    write_consent_and_sums(&mut w, body);
    w.uint64(1);
    write_days(&mut w, &body.days, Days::Sparse);
    write_ties(&mut w, &body.out, Days::Sparse);
    w.0
}

/// The most parts a body's record holds. An event is applied to a body opened over its
/// record (`open_body`: its consent and sums, and none of its history), and packing it
/// again writes what the events added as one more part in front of the record's parts,
/// copied as they are: neither step decodes or encodes the history. Past this many parts
/// they are merged into one, which does; and a reader of the whole body merges them.
pub const MAX_PARTS: usize = 8;

/// `body` opened over `earlier` (see `MAX_PARTS`, `open_body`): its consent and sums
/// whole, its day buckets and ties those added since it was opened. Its part is written
/// first (none if it has no day bucket nor tie), then those of `earlier` as they are, or
/// merged with them into one when that would make more than `MAX_PARTS`. A part found
/// damaged by that merge is left as it was, not merged: the record keeps every part, and
/// whoever reads the whole body is told (`merge_earlier`).
pub fn encode_body_over(body: &Body, earlier: &[u8], buffer: Vec<u8>) -> Vec<u8> {
    let (r, count) = parts_of(earlier).expect("a record opened by open_body has parts");
    let mut w = Writer::into(buffer, BODY_FORMAT).shifting();
    write_consent_and_sums(&mut w, body);
    let added = !(body.days.is_empty() && body.out.is_empty());
    if added && count >= MAX_PARTS {
        let (mut days, mut ties) = (body.days.clone(), body.out.clone());
        if read_parts(&mut r.clone(), count, &mut days, &mut ties).is_ok() {
            coalesce(&mut days, &mut ties);
            w.uint64(1);
            write_days(&mut w, &days, Days::Sparse);
            write_ties(&mut w, &ties, Days::Sparse);
            return w.0;
        }
    }
    // nothing added but to its consent or sums (a sharer credited): no part
    w.uint64((count + usize::from(added)) as u64);
    if added {
        write_days(&mut w, &body.days, Days::Sparse);
        write_ties(&mut w, &body.out, Days::Sparse);
    }
    w.0.extend_from_slice(r.rest());
    w.0
}

/// A decoded body as the store keeps it: over the record it was opened over, if any
/// (`encode_body_over`), else whole (`encode_body`).
pub fn pack_body(body: &Body, earlier: Option<&[u8]>, buffer: Vec<u8>) -> Vec<u8> {
    match earlier {
        Some(earlier) => encode_body_over(body, earlier, buffer),
        None => encode_body(body, buffer),
    }
}

/// A body whose record has parts (formats 5 and 6), opened to be added to: its consent
/// and sums, without its day buckets and ties (see `MAX_PARTS`); None for a record of
/// an earlier format, which is decoded whole. The record is checked as far as the count
/// of its parts, so that `encode_body_over` finds them.
pub fn open_body(data: &[u8]) -> Result<Option<Body>> {
    Ok(opened(data)?.map(|(body, _, _)| body))
}

/// `open_body`, with a reader at the record's first part and how many it has.
fn opened(data: &[u8]) -> Result<Option<(Body, Reader<'_>, usize)>> {
    let format = match data.first() {
        Some(&format @ (BODY_FORMAT | BODY_FORMAT_5)) => format,
        _ => return Ok(None),
    };
    let mut r = Reader::new(data, format)?.shifting(true);
    let consent = read_consent(&mut r)?;
    let sums = read_sums(&mut r)?;
    let count = if format == BODY_FORMAT { r.len()? } else { 1 };
    Ok(Some((Body { days: Vec::new(), out: Vec::new(), consent, sums }, r, count)))
}

/// Merge into a body opened over `earlier` (`open_body`) the day buckets and ties of
/// `earlier`: the body whole. A damaged record leaves the body as it was.
pub fn merge_earlier(facts: &Facts, body: &mut Body, earlier: &[u8]) -> Result<()> {
    let (mut r, count) = parts_of(earlier)?;
    add_parts(facts, body, &mut r, count)
}

/// Add `count` parts read from `r` to `body`, and order them (`coalesce`); a part that
/// does not read, or names an identifier this core lacks, leaves the body as it was.
fn add_parts(facts: &Facts, body: &mut Body, r: &mut Reader<'_>, count: usize) -> Result<()> {
    let (days, ties) = (body.days.len(), body.out.len());
    let known = |t: &Tie| (t.target as usize) < facts.idents.len();
    let read = read_parts(r, count, &mut body.days, &mut body.out).and_then(|()| {
        match body.out[ties..].iter().find(|t| !known(t)) {
            Some(tie) => Err(format!("tie to unknown number {}", tie.target)),
            None => Ok(()),
        }
    });
    if let Err(e) = read {
        body.days.truncate(days);
        body.out.truncate(ties);
        return Err(e);
    }
    coalesce(&mut body.days, &mut body.out);
    Ok(())
}

/// A reader of a record with parts, at its first part, and how many it has (a record of
/// format 5 has one, not counted).
pub(super) fn parts_of(data: &[u8]) -> Result<(Reader<'_>, usize)> {
    let format = *data.first().ok_or("record ends early")?;
    if format != BODY_FORMAT && format != BODY_FORMAT_5 {
        return Err("body of a format without parts opened".into());
    }
    let mut r = Reader::new(data, format)?.shifting(true);
    skip_consent_and_sums(&mut r)?;
    let count = if format == BODY_FORMAT { r.len()? } else { 1 };
    Ok((r, count))
}

/// Read `count` parts, adding their day buckets to `days` and their ties to `ties`
/// (`coalesce` orders them after).
fn read_parts(r: &mut Reader<'_>, count: usize, days: &mut Vec<DayBucket>, ties: &mut Vec<Tie>) -> Result<()> {
    for _ in 0..count {
        read_days(r, Days::Sparse, days)?;
        read_ties(r, Days::Sparse, ties)?;
    }
    Ok(())
}

/// Order day buckets and ties read from several parts, adding up what two parts hold for
/// the same day, or the same target and day.
fn coalesce(days: &mut Vec<DayBucket>, ties: &mut Vec<Tie>) {
    if !days.is_sorted_by(|a, b| a.day < b.day) {
        days.sort_by_key(|b| b.day);
        days.dedup_by(|later, kept| {
            let same = later.day == kept.day;
            if same {
                add_counts(&mut kept.counts, &later.counts);
                kept.amount += later.amount;
            }
            same
        });
    }
    if !ties.is_sorted_by(|a, b| (a.target, a.day) < (b.target, b.day)) {
        ties.sort_by_key(|t| (t.target, t.day));
        ties.dedup_by(|later, kept| {
            let same = (later.target, later.day) == (kept.target, kept.day);
            if same {
                add_counts(&mut kept.counts, &later.counts);
            }
            same
        });
    }
}

/// Counters of two parts added up, saturating as counting them one by one does.
fn add_counts(kept: &mut [u32], other: &[u32]) {
    for (k, o) in kept.iter_mut().zip(other) {
        *k = k.saturating_add(*o);
    }
}

/// `body` as formats 2 and 3 wrote it, and identifier records still hold it inline:
/// days, ties, then consent and sums.
pub(super) fn write_days_first(w: &mut Writer, body: &Body) {
    write_days(w, &body.days, Days::Whole);
    write_ties(w, &body.out, Days::Whole);
    write_consent_and_sums(w, body);
}

/// How a record writes its days and counters: each day whole and every counter
/// (formats 1 to 3, and identifier records); each day as the step from the one before
/// (format 4); or stepped too, and of the counters a mask of those not zero, then those
/// alone (format 5). A day bucket counts what one identifier did and received in one
/// day, and a tie what it did to one other, most often one or two kinds of thing: after
/// six batches of the 9M tail of the bench's input, the packed bodies in memory took 204
/// MiB instead of 283 (765,000 and 748,000 bodies, some still of the format they were
/// stored in).
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Days {
    Whole,
    Stepped,
    Sparse,
}

/// Ties, sorted by (target, day): each target as the step from the one before; sparse,
/// the day of a tie to the same target as the one before as the step from its day.
pub(super) fn write_ties(w: &mut Writer, ties: &[Tie], how: Days) {
    w.uint64(ties.len() as u64);
    let mut previous = Tie::default();
    for tie in ties {
        let step = tie.target - previous.target;
        w.uint64(step.into());
        let day = i64::from(tie.day);
        w.int(if step == 0 && how == Days::Sparse { day - i64::from(previous.day) } else { day });
        write_counts(w, how, &tie.counts, None);
        previous = tie.clone();
    }
}

pub(super) fn write_days(w: &mut Writer, days: &[DayBucket], how: Days) {
    w.uint64(days.len() as u64);
    let mut previous = 0;
    for b in days {
        w.int(if how == Days::Whole { b.day() } else { b.day() - previous });
        previous = b.day();
        write_counts(w, how, &b.counts, Some(b.amount));
    }
}

/// Counters and, for a day bucket, its amount: every one, or (`Days::Sparse`) a mask
/// with a bit per counter not zero (and, after the counters, a bit for an amount not
/// zero), then those alone, in order.
fn write_counts(w: &mut Writer, how: Days, counts: &[u32], amount: Option<u128>) {
    if how != Days::Sparse {
        counts.iter().for_each(|&c| w.uint64(c.into()));
        amount.into_iter().for_each(|a| w.uint(a));
        return;
    }
    let mut mask: u64 = 0;
    for (i, &c) in counts.iter().enumerate() {
        mask |= u64::from(c != 0) << i;
    }
    let spent = amount.filter(|&a| a != 0);
    mask |= u64::from(spent.is_some()) << counts.len();
    w.uint64(mask);
    let mut set = mask & ((1 << counts.len()) - 1);
    while set != 0 {
        w.uint64(counts[set.trailing_zeros() as usize].into());
        set &= set - 1;
    }
    if let Some(amount) = spent {
        w.uint(amount);
    }
}

/// Counters as `write_counts` wrote them, into `counts`; the amount, if it had a place.
fn read_counts(r: &mut Reader<'_>, how: Days, counts: &mut [u32], amount: Option<&mut u128>) -> Result<()> {
    if how != Days::Sparse {
        for count in counts.iter_mut() {
            *count = r.count()?;
        }
        if let Some(amount) = amount {
            *amount = r.uint()?;
        }
        return Ok(());
    }
    let mut mask = r.uint64()?;
    let places = counts.len() + usize::from(amount.is_some());
    if mask >> places != 0 {
        return Err("counter mask names no counter".into());
    }
    let spent = mask >> counts.len() != 0;
    mask &= (1 << counts.len()) - 1;
    while mask != 0 {
        let i = mask.trailing_zeros() as usize;
        mask &= mask - 1;
        counts[i] = r.count()?;
        if counts[i] == 0 {
            return Err("counter written as not zero is zero".into());
        }
    }
    if let (true, Some(amount)) = (spent, amount) {
        *amount = r.uint()?;
        if *amount == 0 {
            return Err("amount written as not zero is zero".into());
        }
    }
    Ok(())
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
        Some(&(BODY_FORMAT | BODY_FORMAT_5)) => {
            let (mut body, mut r, count) = opened(data)?.expect("a record with parts");
            add_parts(facts, &mut body, &mut r, count)?;
            return Ok(body);
        }
        Some(&BODY_FORMAT_4) => {
            let mut r = Reader::new(data, BODY_FORMAT_4)?.shifting(true);
            let consent = read_consent(&mut r)?;
            let sums = read_sums(&mut r)?;
            let mut body = Body { days: Vec::new(), out: Vec::new(), consent, sums };
            read_days(&mut r, Days::Stepped, &mut body.days)?;
            read_ties(&mut r, Days::Stepped, &mut body.out)?;
            body
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
    pub consent: Consent,
    pub sums: [Sum; 4],
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
        Some(&format @ (BODY_FORMAT | BODY_FORMAT_5 | BODY_FORMAT_4)) => {
            let mut r = Reader::new(data, format)?.shifting(true);
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
    let (mut days, mut out) = (Vec::new(), Vec::new());
    read_days(r, Days::Whole, &mut days)?;
    read_ties(r, Days::Whole, &mut out)?;
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok(Body { days, out, consent, sums })
}

/// Ties as `write_ties` wrote them, added to `out` (a part of a body, in (target, day)
/// order: a record whose ties are not is corrupt).
fn read_ties(r: &mut Reader<'_>, how: Days, out: &mut Vec<Tie>) -> Result<()> {
    let n = r.len()?;
    // room for one more: a body is decoded to be added to, and a vector decoded full was
    // copied whole by the first push (1% of a tail's batches)
    out.reserve(r.bounded(n) + usize::from(n > 0));
    let from = out.len();
    let mut target: Id = 0;
    for _ in 0..n {
        let step = r.number()?;
        target = target.checked_add(step).ok_or("tie target out of range")?;
        let mut tie = Tie { target, day: r.day()?, counts: [0; 4] };
        if let (Days::Sparse, 0, Some(last)) = (how, step, out[from..].last()) {
            tie.day = last.day.checked_add(tie.day).ok_or("day out of range")?;
        }
        read_counts(r, how, &mut tie.counts, None)?;
        out.push(tie);
    }
    if !out[from..].is_sorted_by_key(|t| (t.target, t.day)) {
        return Err("ties out of order".into());
    }
    Ok(())
}

pub(super) fn read_keyed_body(r: &mut Reader<'_>) -> Result<(Body, Vec<StoredTie>)> {
    let mut days = Vec::new();
    read_days(r, Days::Whole, &mut days)?;
    let ties = read_keyed_ties(r)?;
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok((Body { days, out: Vec::new(), consent, sums }, ties))
}

/// Day buckets as `write_days` wrote them, added to `out`. Days increase, as a body (or
/// a part of one) keeps them: a record whose days do not is corrupt, not a body to store
/// again.
pub(super) fn read_days(r: &mut Reader<'_>, how: Days, out: &mut Vec<DayBucket>) -> Result<()> {
    let n = r.len()?;
    out.reserve(r.bounded(n) + usize::from(n > 0)); // see `read_ties`
    let from = out.len();
    for _ in 0..n {
        let read = r.day()?;
        let last = out[from..].last().map(|b| b.day);
        let day = match (how, last) {
            (Days::Stepped | Days::Sparse, Some(last)) => last.checked_add(read).ok_or("day out of range")?,
            _ => read,
        };
        if last.is_some_and(|last| last >= day) {
            return Err("day buckets out of order".into());
        }
        let mut b = DayBucket { day, ..DayBucket::default() };
        read_counts(r, how, &mut b.counts, Some(&mut b.amount))?;
        out.push(b);
    }
    Ok(())
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

pub(super) fn read_consent(r: &mut Reader<'_>) -> Result<Consent> {
    let scopes = r.len()?;
    let mut consent = Consent::with_capacity(r.bounded(scopes));
    for _ in 0..scopes {
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

pub(super) fn read_sums(r: &mut Reader<'_>) -> Result<[Sum; 4]> {
    let mut sums: [Sum; 4] = Default::default();
    for sum in &mut sums {
        *sum = r.sum()?;
    }
    Ok(sums)
}

/// Step over what `write_consent_and_sums` wrote, allocating nothing.
fn skip_consent_and_sums(r: &mut Reader<'_>) -> Result<()> {
    for _ in 0..r.len()? {
        for _ in 0..3 {
            r.bytes()?;
        }
        for _ in 0..r.len()? {
            r.int()?;
            r.bytes()?;
            r.byte()?;
            r.opt_int()?;
        }
    }
    for _ in 0..4 {
        r.uint()?;
        r.bytes()?;
    }
    Ok(())
}
