//! The checkpointed form of the facts: one compact binary record per key.
//!
//! Records start with a format byte. Identifier records and bodies name identifiers by
//! number: an identifier keeps the number it was first given (its `Id`, a position in the
//! core's table) across checkpoints and loads, so a body read back is decoded without
//! looking up a key per tie (records of earlier formats named them by key, and still
//! load). Pair records name their identifiers by key.

use crate::facts::{Body, ConsentEntry, DayBucket, Facts, Id, Scope, Tie, COUNTERS, UNPUBLISHED};
use crate::shares::{Share, Sid};
use num_bigint::BigUint;
use std::collections::BTreeMap;

const FORMAT: u8 = 1;
/// Identifier records since they carry the identifier's number and name others by
/// theirs, say what the table topics hold of it, and write a body's sums shifted (see
/// `Writer::sum`). Format 3 wrote them whole; format 2 named identifiers by key and said
/// nothing of the topics (the engine published at every checkpoint); format 1 held the
/// body too, and mentions. All still load, see `decode_ident`.
const IDENT_FORMAT: u8 = 4;
const IDENT_FORMAT_3: u8 = 3;
const IDENT_FORMAT_2: u8 = 2;
/// Bodies whose ties name their targets by number and whose sums are shifted (format 2,
/// still read, wrote the sums whole; format 1 named the ties' targets by key: decoding
/// looked every one up).
const BODY_FORMAT: u8 = 3;
const BODY_FORMAT_2: u8 = 2;
/// The most low zero bits a shifted sum may say it had: a corrupt record must not make a
/// load allocate without bound (a sum's weights span `day / half_life` bits: 2**24 is
/// far beyond any real day and half-life).
const MAX_SHIFT: u128 = 1 << 24;
pub const SEP: char = '\x1f';

#[derive(Default)]
struct Writer(Vec<u8>, Sums);

/// How a record's decayed sums are written: whole (the formats before), or shifted.
#[derive(Default, Clone, Copy, PartialEq, Debug)]
enum Sums {
    #[default]
    Whole,
    Shifted,
}

impl Writer {
    /// A record written into `buffer` (emptied first): one buffer serves many records.
    fn into(mut buffer: Vec<u8>, format: u8) -> Self {
        buffer.clear();
        buffer.push(format);
        Writer(buffer, Sums::Whole)
    }
    fn shifting(mut self) -> Self {
        self.1 = Sums::Shifted;
        self
    }
    /// A decayed sum. Its weights are `2 ** (day / half_life)` in fixed point, about 700
    /// bits for a day of this century at a half-life of 30 days, and every weight is a
    /// mantissa shifted left by its whole half-lives: the sum has as many low zero bits
    /// as its earliest day has whole half-lives. Shifted, it is written as that count and
    /// the bits above (about 14 bytes instead of 90; at 9M events the sums were 45% of the
    /// bodies' bytes).
    fn sum(&mut self, sum: &BigUint) {
        if self.1 == Sums::Shifted {
            let shift = sum.trailing_zeros().unwrap_or(0);
            self.uint(shift.into());
            self.bytes(&(sum >> shift).to_bytes_le());
        } else {
            self.bytes(&sum.to_bytes_le());
        }
    }
    fn uint(&mut self, mut v: u128) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(byte);
                return;
            }
            self.0.push(byte | 0x80);
        }
    }
    fn int(&mut self, v: i64) {
        self.uint(u128::from(((v << 1) ^ (v >> 63)) as u64));
    }
    fn bytes(&mut self, b: &[u8]) {
        self.uint(b.len() as u128);
        self.0.extend_from_slice(b);
    }
    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
    fn opt_text(&mut self, s: Option<&str>) {
        match s {
            None => self.0.push(0),
            Some(s) => {
                self.0.push(1);
                self.text(s);
            }
        }
    }
    fn opt_int(&mut self, v: Option<i64>) {
        match v {
            None => self.0.push(0),
            Some(v) => {
                self.0.push(1);
                self.int(v);
            }
        }
    }
}

pub struct Reader<'a> {
    data: &'a [u8],
    at: usize,
    sums: Sums,
}

pub type Result<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], format: u8) -> Result<Self> {
        match data.first() {
            Some(&f) if f == format => Ok(Reader { data, at: 1, sums: Sums::Whole }),
            _ => Err("record is not in this version's checkpoint format".into()),
        }
    }
    fn shifting(mut self, shifted: bool) -> Self {
        self.sums = if shifted { Sums::Shifted } else { Sums::Whole };
        self
    }
    /// A decayed sum as `Writer::sum` wrote it.
    fn sum(&mut self) -> Result<BigUint> {
        let shift = if self.sums == Sums::Shifted { self.uint()? } else { 0 };
        if shift > MAX_SHIFT {
            return Err(format!("a sum shifted by {shift} bits"));
        }
        Ok(BigUint::from_bytes_le(self.bytes()?) << shift)
    }
    fn byte(&mut self) -> Result<u8> {
        let b = *self.data.get(self.at).ok_or("record ends early")?;
        self.at += 1;
        Ok(b)
    }
    fn uint(&mut self) -> Result<u128> {
        let mut v: u128 = 0;
        for shift in (0..128).step_by(7) {
            let b = self.byte()?;
            v |= u128::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }
    fn len(&mut self) -> Result<usize> {
        usize::try_from(self.uint()?).map_err(|e| e.to_string())
    }
    /// A count read from the record, capped by the bytes left (every item takes at least
    /// one): room to reserve up front without trusting a corrupt length.
    fn bounded(&self, count: usize) -> usize {
        count.min(self.data.len() - self.at)
    }
    fn int(&mut self) -> Result<i64> {
        let z = self.uint()? as u64;
        Ok(((z >> 1) as i64) ^ -((z & 1) as i64))
    }
    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        let slice = self.data.get(self.at..self.at + n).ok_or("record ends early")?;
        self.at += n;
        Ok(slice)
    }
    fn day(&mut self) -> Result<i32> {
        i32::try_from(self.int()?).map_err(|e| e.to_string())
    }
    fn count(&mut self) -> Result<u32> {
        u32::try_from(self.uint()?).map_err(|e| e.to_string())
    }
    fn number(&mut self) -> Result<Id> {
        Id::try_from(self.uint()?).map_err(|e| e.to_string())
    }
    fn text(&mut self) -> Result<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(|e| e.to_string())
    }
    fn opt_text(&mut self) -> Result<Option<String>> {
        Ok(if self.byte()? == 0 { None } else { Some(self.text()?) })
    }
    fn opt_int(&mut self) -> Result<Option<i64>> {
        Ok(if self.byte()? == 0 { None } else { Some(self.int()?) })
    }
}

/// An identifier's record in a checkpoint segment: what is always in memory (first seen,
/// its number, shares, the identifiers with ties to it, the checkpoint that stored its
/// body) and, when no store keeps bodies under their keys, the body itself; then what the
/// table topics hold of it: the anchor of the person it was last published in (none:
/// never published) and whether its person's rows changed since, so that a publication
/// may wait past a checkpoint (see `publication`). The published anchors must be known
/// (`Facts::published_anchor`).
///
/// An identifier keeps the number it was given when first seen (its `Id`) for good: the
/// records and bodies name identifiers by number, and a load gives each its number back
/// (identifier records come in ascending numbers within a segment: `checkpoint`).
pub fn encode_ident(facts: &Facts, id: Id, inline: bool, buffer: Vec<u8>) -> Vec<u8> {
    let ident = &facts.idents[id as usize];
    let mut w = Writer::into(buffer, IDENT_FORMAT).shifting();
    let (first_ts, first_event) = facts.first(id);
    w.int(first_ts);
    w.text(first_event);
    w.uint(id.into());
    w.uint(ident.shares.len() as u128);
    for &sid in &ident.shares {
        let share = facts.shares.of(sid);
        w.text(facts.shares.key(sid));
        w.int(share.ts);
        w.opt_text(share.parent.map(|parent| facts.shares.key(parent)));
        w.uint(share.recipients.into());
    }
    let incoming = facts.incoming.get(id as usize).map_or(&[][..], Vec::as_slice);
    w.uint(incoming.len() as u128);
    for &source in incoming {
        w.uint(source.into());
    }
    if inline {
        w.uint(0);
        write_body(&mut w, facts.body(id));
    } else {
        w.uint(ident.stored.into());
    }
    let anchors = facts.published_anchor.as_deref().expect("published anchors are known at a checkpoint");
    let published = anchors.get(id as usize).copied().unwrap_or(UNPUBLISHED);
    w.uint(if published == UNPUBLISHED { 0 } else { u128::from(published) + 1 });
    w.0.push(u8::from(facts.unpublished.contains(id)));
    w.0
}

/// An identifier's body as the store keeps it under its key (and the cache packs it).
pub fn encode_body(body: &Body, buffer: Vec<u8>) -> Vec<u8> {
    let mut w = Writer::into(buffer, BODY_FORMAT).shifting();
    write_body(&mut w, body);
    w.0
}

fn write_body(w: &mut Writer, body: &Body) {
    write_days(w, &body.days);
    // ties are sorted by (target, day): each target as the step from the one before
    w.uint(body.out.len() as u128);
    let mut previous = 0;
    for tie in &body.out {
        w.uint((tie.target - previous).into());
        previous = tie.target;
        w.int(tie.day.into());
        for &c in &tie.counts {
            w.uint(c.into());
        }
    }
    write_consent_and_sums(w, body);
}

fn write_days(w: &mut Writer, days: &[DayBucket]) {
    w.uint(days.len() as u128);
    for b in days {
        w.int(b.day());
        for &c in &b.counts {
            w.uint(c.into());
        }
        w.uint(b.amount);
    }
}

fn write_consent_and_sums(w: &mut Writer, body: &Body) {
    w.uint(body.consent.len() as u128);
    for ((grantee, purpose, channel), history) in &body.consent {
        w.text(grantee);
        w.text(purpose);
        w.text(channel);
        w.uint(history.len() as u128);
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

/// The identifiers a record names (the sources of incoming ties): by number, or by key
/// in a record of format 2, resolved once every identifier is loaded.
pub enum Sources {
    Numbers(Vec<Id>),
    Keys(Vec<String>),
}

/// What an identifier record names, for the caller to check or resolve once every
/// identifier is loaded: the sources of its incoming ties, and, when its body came with
/// it, the body's ties by key (formats 1 and 2; a record of format 3 holds its ties by
/// number, in the body).
pub struct Named {
    /// None for a record of format 1, which kept none: derived from the ties at the end
    pub incoming: Option<Sources>,
    pub ties: Option<Vec<StoredTie>>,
    /// what the table topics hold of it (format 3): the anchor it was last published
    /// under (None: never published), and whether its person's rows changed since
    pub published: Option<(Option<Id>, bool)>,
}

/// Load one identifier record (see `encode_ident`). Records of formats 1 (before bodies
/// were kept apart: a Kafka worker's changelog of an earlier version) and 2 load too:
/// their identifiers are numbered in the order they load.
pub fn decode_ident(facts: &mut Facts, key: &str, data: &[u8]) -> Result<Named> {
    let format = match data.first() {
        Some(&FORMAT) => return decode_ident_v1(facts, key, data),
        Some(&f @ (IDENT_FORMAT_2 | IDENT_FORMAT_3)) => f,
        _ => IDENT_FORMAT,
    };
    let numbered = format != IDENT_FORMAT_2;
    let mut r = Reader::new(data, format)?.shifting(format == IDENT_FORMAT);
    let first = (r.int()?, r.text()?);
    let id = if numbered {
        let number = Id::try_from(r.uint()?).map_err(|e| e.to_string())?;
        facts.intern_at(key, number, (first.0, &first.1))?
    } else {
        facts.intern(key, (first.0, &first.1)).0
    };
    let shares = read_shares(&mut r, facts, id)?;
    let n = r.len()?;
    let incoming = if numbered {
        let mut sources = Vec::with_capacity(r.bounded(n));
        for _ in 0..n {
            sources.push(r.number()?);
        }
        Sources::Numbers(sources)
    } else {
        let mut sources = Vec::with_capacity(r.bounded(n));
        for _ in 0..n {
            sources.push(r.text()?);
        }
        Sources::Keys(sources)
    };
    let stored = u32::try_from(r.uint()?).map_err(|e| e.to_string())?;
    let (body, ties) = match (stored, numbered) {
        (0, true) => (Some(Box::new(read_body(&mut r)?)), None),
        (0, false) => {
            let (body, ties) = read_keyed_body(&mut r)?;
            (Some(Box::new(body)), Some(ties))
        }
        _ => (None, None),
    };
    let published = if numbered {
        let anchor = match r.uint()? {
            0 => None,
            n => Some(Id::try_from(n - 1).map_err(|e| e.to_string())?),
        };
        Some((anchor, r.byte()? == 1))
    } else {
        None
    };
    facts.set_first(id, (first.0, &first.1));
    let ident = &mut facts.idents[id as usize];
    ident.shares = shares;
    ident.stored = stored;
    ident.body = body;
    ident.packed = None;
    Ok(Named { incoming: Some(incoming), ties, published })
}

fn read_shares(r: &mut Reader<'_>, facts: &mut Facts, id: Id) -> Result<Vec<Sid>> {
    let n = r.len()?;
    let mut shares = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        let sid = facts.shares.intern(&r.text()?);
        let ts = r.int()?;
        let parent = r.opt_text()?.map(|parent| facts.shares.intern(&parent));
        let recipients = u32::try_from(r.uint()?).map_err(|e| format!("recipients: {e}"))?;
        facts.shares.make(sid, Share { actor: id, ts, parent, recipients: recipients.into() });
        shares.push(sid);
    }
    Ok(shares)
}

/// Format 1: first seen, days, ties, shares, consent, mentions (no longer kept), sums.
fn decode_ident_v1(facts: &mut Facts, key: &str, data: &[u8]) -> Result<Named> {
    let mut r = Reader::new(data, FORMAT)?;
    let first = (r.int()?, r.text()?);
    let (id, _) = facts.intern(key, (first.0, &first.1));
    let days = read_days(&mut r)?;
    let ties = read_keyed_ties(&mut r)?;
    let shares = read_shares(&mut r, facts, id)?;
    let consent = read_consent(&mut r)?;
    for _ in 0..r.len()? {
        r.int()?;
    }
    let sums = read_sums(&mut r)?;
    facts.set_first(id, (first.0, &first.1));
    let ident = &mut facts.idents[id as usize];
    ident.shares = shares;
    ident.stored = 0;
    ident.body = Some(Box::new(Body { days, out: Vec::new(), consent, sums }));
    Ok(Named { incoming: None, ties: Some(ties), published: None })
}

/// An identifier's body as `encode_body` stored it (or format 1, its ties resolved by
/// key).
pub fn decode_body(facts: &Facts, data: &[u8]) -> Result<Body> {
    if data.first() == Some(&FORMAT) {
        let mut r = Reader::new(data, FORMAT)?;
        let (mut body, ties) = read_keyed_body(&mut r)?;
        body.out = resolve_ties(facts, ties)?;
        return Ok(body);
    }
    let body = read_body(&mut body_reader(data)?)?;
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

/// The glance of a body as `encode_body` stored it: its days and ties are stepped over,
/// not decoded (a body of format 1, from an older directory, is decoded whole). Stepped
/// over, its ties are not checked (`check_ties`, their order): a body damaged there is
/// found when it is decoded, as every body a batch applies events to is.
pub fn glance_body(facts: &Facts, data: &[u8]) -> Result<Glance> {
    if data.first() == Some(&FORMAT) {
        let body = decode_body(facts, data)?;
        return Ok(Glance { consent: body.consent, sums: body.sums });
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
        _ => Ok(Reader::new(data, BODY_FORMAT)?.shifting(true)),
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

fn read_body(r: &mut Reader<'_>) -> Result<Body> {
    let days = read_days(r)?;
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
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok(Body { days, out, consent, sums })
}

fn read_keyed_body(r: &mut Reader<'_>) -> Result<(Body, Vec<StoredTie>)> {
    let days = read_days(r)?;
    let ties = read_keyed_ties(r)?;
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok((Body { days, out: Vec::new(), consent, sums }, ties))
}

fn read_days(r: &mut Reader<'_>) -> Result<Vec<DayBucket>> {
    let n = r.len()?;
    let mut days = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        let mut b = DayBucket { day: r.day()?, ..DayBucket::default() };
        for i in 0..COUNTERS {
            b.counts[i] = r.count()?;
        }
        b.amount = r.uint()?;
        days.push(b);
    }
    Ok(days)
}

fn read_keyed_ties(r: &mut Reader<'_>) -> Result<Vec<StoredTie>> {
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

fn read_consent(r: &mut Reader<'_>) -> Result<BTreeMap<Scope, Vec<ConsentEntry>>> {
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

fn read_sums(r: &mut Reader<'_>) -> Result<[BigUint; 4]> {
    let mut sums: [BigUint; 4] = Default::default();
    for sum in &mut sums {
        *sum = r.sum()?;
    }
    Ok(sums)
}

pub fn encode_pair(facts: &Facts, pair: (Id, Id), buffer: Vec<u8>) -> (String, Vec<u8>) {
    let key = format!("{}{SEP}{}", facts.key(pair.0), facts.key(pair.1));
    let mut w = Writer::into(buffer, FORMAT);
    let history = &facts.pairs[&pair];
    w.uint(history.len() as u128);
    for (ts, eid, linked) in history {
        w.int(*ts);
        w.text(eid);
        w.0.push(u8::from(*linked));
    }
    (key, w.0)
}

pub fn decode_pair(facts: &mut Facts, key: &str, data: &[u8]) -> Result<()> {
    let (a, b) = key.split_once(SEP).ok_or("pair key without separator")?;
    let ids = (
        facts.id_of(a).ok_or_else(|| format!("pair names unknown identifier {a}"))?,
        facts.id_of(b).ok_or_else(|| format!("pair names unknown identifier {b}"))?,
    );
    let mut r = Reader::new(data, FORMAT)?;
    let n = r.len()?;
    let mut history = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        history.push((r.int()?, r.text()?, r.byte()? == 1));
    }
    facts.pairs.insert(ids, history);
    Ok(())
}

pub fn encode_referrals(facts: &Facts, share: Sid, buffer: Vec<u8>) -> Vec<u8> {
    let mut w = Writer::into(buffer, FORMAT);
    let list = &facts.shares.referrals[&share];
    w.uint(list.len() as u128);
    for &(ts, units) in list {
        w.int(ts);
        w.uint(units);
    }
    w.0
}

pub fn decode_referrals(facts: &mut Facts, share_id: &str, data: &[u8]) -> Result<()> {
    let mut r = Reader::new(data, FORMAT)?;
    let n = r.len()?;
    let mut list = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        list.push((r.int()?, r.uint()?));
    }
    let sid = facts.shares.intern(share_id);
    facts.shares.referrals.insert(sid, list);
    Ok(())
}

pub fn encode_emitted(facts: &Facts, person_id: &str, buffer: Vec<u8>) -> Vec<u8> {
    let (composite, tier) = &facts.last_emitted[person_id];
    let mut w = Writer::into(buffer, FORMAT);
    w.0.extend_from_slice(&composite.to_le_bytes());
    w.text(tier);
    w.0
}

pub fn decode_emitted(facts: &mut Facts, person_id: &str, data: &[u8]) -> Result<()> {
    let mut r = Reader::new(data, FORMAT)?;
    let raw: [u8; 8] = r.data.get(1..9).ok_or("record ends early")?.try_into().map_err(|_| "bad float")?;
    r.at = 9;
    let tier = r.text()?;
    facts.last_emitted.insert(person_id.to_string(), (f64::from_le_bytes(raw), tier));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::Loader;
    use crate::scales::Scales;

    /// A format-1 record as the previous version wrote it (a worker's changelog).
    fn v1_record(tie_to: &str) -> Vec<u8> {
        let mut w = Writer::into(Vec::new(), FORMAT);
        w.int(5);
        w.text("e1");
        w.uint(1); // days
        w.int(3);
        for c in 0..COUNTERS {
            w.uint(c as u128);
        }
        w.uint(250);
        w.uint(1); // ties
        w.text(tie_to);
        w.int(3);
        for c in [1, 0, 2, 0] {
            w.uint(c);
        }
        w.uint(1); // shares
        w.text("s1");
        w.int(5);
        w.opt_text(None);
        w.uint(2);
        w.uint(0); // consent
        w.uint(2); // mentions, skipped
        w.int(10);
        w.int(11);
        for sum in [7u32, 0, 9, 0] {
            w.bytes(&BigUint::from(sum).to_bytes_le());
        }
        w.0
    }

    #[test]
    fn a_body_names_its_ties_by_number_and_reads_back_as_written() {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        for key in ["qq:a", "qq:b", "qq:c"] {
            facts.intern(key, (1, "e1"));
        }
        let mut body = Body::default();
        body.bucket(3).bump(2);
        body.out = vec![
            Tie { target: 0, day: 3, counts: [1, 0, 0, 0] },
            Tie { target: 2, day: 1, counts: [0, 2, 0, 0] },
            Tie { target: 2, day: 4, counts: [0, 0, 0, 9] },
        ];
        body.sums[1] = BigUint::from(77u32);
        let record = encode_body(&body, Vec::new());
        assert_eq!(decode_body(&facts, &record), Ok(body.clone()));
        // a tie to a number no identifier has is a corrupt record, not a panic later
        let mut beyond = body;
        beyond.out.push(Tie { target: 3, day: 1, counts: [1, 0, 0, 0] });
        assert!(decode_body(&facts, &encode_body(&beyond, Vec::new())).is_err());
    }

    #[test]
    fn a_glance_reads_the_consent_and_sums_of_a_body_as_decoding_it_does() {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        for key in ["qq:a", "qq:b"] {
            facts.intern(key, (1, "e1"));
        }
        let mut body = Body::default();
        for day in [3, 9, 400] {
            body.bucket(day).bump(4);
            body.bucket(day).amount = u128::from(u64::MAX) * 3; // a number of several bytes
        }
        body.out =
            vec![Tie { target: 0, day: 3, counts: [1, 300, 0, 70_000] }, Tie { target: 1, day: 9, counts: [2; 4] }];
        let scope = ("brand".to_string(), "marketing".to_string(), "wechat".to_string());
        body.consent.insert(scope, vec![(5, "e7".into(), true, Some(99)), (8, "e9".into(), false, None)]);
        body.sums =
            [BigUint::from(u128::MAX) * 5u32, BigUint::default(), BigUint::from(9u32), BigUint::from(1u32) << 200];
        for record in [encode_body(&body, Vec::new()), {
            // an older directory's body, format 1: its ties named by key
            let mut w = Writer::into(Vec::new(), FORMAT);
            write_body_keyed(&mut w, &facts, &body);
            w.0
        }] {
            let glance = glance_body(&facts, &record).unwrap();
            assert_eq!((glance.consent, glance.sums), (body.consent.clone(), body.sums.clone()));
            // a body cut short is a corrupt record, not a glance of something else
            assert!(glance_body(&facts, &record[..record.len() - 1]).is_err());
        }
    }

    #[test]
    fn sums_are_written_shifted_and_bodies_with_whole_sums_still_read() {
        let facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let scales = Scales::new(30.0);
        let mut body = Body::default();
        for (day, amount) in [(20_000, 3u128), (20_400, 1 << 90), (19_990, 7)] {
            scales.add_weighted(&mut body.sums[0], amount, day);
        }
        body.sums[2] = BigUint::from(5u32);
        let record = encode_body(&body, Vec::new());
        assert_eq!(decode_body(&facts, &record), Ok(body.clone()));
        // format 2 wrote them whole: its bodies read as before, and take more bytes
        let mut whole = Writer::into(Vec::new(), BODY_FORMAT_2);
        write_body(&mut whole, &body);
        assert_eq!(decode_body(&facts, &whole.0), Ok(body.clone()));
        let glance = glance_body(&facts, &whole.0).unwrap();
        assert_eq!(glance.sums, body.sums);
        assert!(record.len() + 50 < whole.0.len(), "{} against {}", record.len(), whole.0.len());
        // a shift no sum can have is a corrupt record, not an allocation without bound
        let mut w = Writer::into(Vec::new(), BODY_FORMAT).shifting();
        write_days(&mut w, &[]);
        w.uint(0); // ties
        w.uint(0); // consent
        w.uint(MAX_SHIFT + 1);
        w.bytes(&[1]);
        assert!(decode_body(&facts, &w.0).unwrap_err().contains("shifted by"));
    }

    /// `body` as format 1 stored it.
    fn write_body_keyed(w: &mut Writer, facts: &Facts, body: &Body) {
        write_days(w, &body.days);
        w.uint(body.out.len() as u128);
        for tie in &body.out {
            w.text(facts.key(tie.target));
            w.int(tie.day.into());
            for &c in &tie.counts {
                w.uint(c.into());
            }
        }
        write_consent_and_sums(w, body);
    }

    #[test]
    fn a_loaded_identifier_gets_its_number_back_or_the_record_is_corrupt() {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        assert_eq!(facts.intern_at("qq:a", 0, (1, "e1")), Ok(0));
        assert_eq!(facts.intern_at("qq:a", 0, (1, "e1")), Ok(0)); // a later segment's record
        assert!(facts.intern_at("qq:a", 1, (1, "e1")).is_err());
        assert!(facts.intern_at("qq:b", 5, (1, "e1")).is_err()); // numbers come in order
        assert!(facts.intern_at("qq:b", 0, (1, "e1")).is_err());
        assert_eq!(facts.intern_at("qq:b", 1, (1, "e1")), Ok(1));
    }

    /// A part holding these identifier records, framed as a segment frames them.
    fn part_of(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
        let mut part = Vec::new();
        for (key, record) in records {
            part.push(b'i');
            part.push(key.len() as u8);
            part.extend_from_slice(key.as_bytes());
            let mut len = Writer::default();
            len.uint(record.len() as u128);
            part.extend_from_slice(&len.0);
            part.extend_from_slice(record);
        }
        part
    }

    /// A format-2 record of the previous version: identifiers named by key, its body in
    /// the store under checkpoint 1, nothing said of the table topics.
    fn v2_record(incoming_from: &str) -> Vec<u8> {
        let mut w = Writer::into(Vec::new(), IDENT_FORMAT_2);
        w.int(5);
        w.text("e1");
        w.uint(0); // shares
        w.uint(1);
        w.text(incoming_from);
        w.uint(1); // stored under checkpoint 1
        w.0
    }

    #[test]
    fn a_format_2_record_and_a_body_naming_ties_by_key_load() {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let mut loader = Loader::default();
        let part = part_of(&[("qq:b", v2_record("qq:a")), ("qq:a", v2_record("qq:b"))]);
        loader.part(&mut facts, &part).unwrap();
        assert!(loader.finish(&mut facts).unwrap().is_none(), "format 2 says nothing of the topics");
        let (a, b) = (facts.id("qq:a"), facts.id("qq:b"));
        assert_eq!((b, a), (0, 1), "numbered in the order they load");
        assert_eq!(facts.incoming[b as usize], vec![a]);
        assert_eq!(facts.idents[a as usize].stored, 1);
        // its body as format 1 stored it: ties by key
        let mut w = Writer::into(Vec::new(), FORMAT);
        w.uint(0); // days
        w.uint(1);
        w.text("qq:b");
        w.int(3);
        for c in [1, 0, 2, 0] {
            w.uint(c);
        }
        w.uint(0); // consent
        for _ in 0..4 {
            w.bytes(&[]);
        }
        let body = decode_body(&facts, &w.0).unwrap();
        assert_eq!(body.out, vec![Tie { target: b, day: 3, counts: [1, 0, 2, 0] }]);
    }

    #[test]
    fn a_record_of_this_format_replaces_an_earlier_format_whole() {
        // A worker's changelog: format-1 records, then a full segment of this version
        // after a's ties grew. Loaded in order, the earlier records' ties must not come
        // back over the latest body, nor make the load say nothing of the topics.
        let old = part_of(&[("qq:a", v1_record("qq:b")), ("qq:b", v1_record("qq:a"))]);
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let mut loader = Loader::default();
        loader.part(&mut facts, &old).unwrap();
        loader.finish(&mut facts).unwrap();
        let a = facts.id("qq:a");
        facts.body_mut(a).out[0].counts = [5, 5, 5, 5];
        let mut segment = crate::checkpoint::Segment::begin(&mut facts, true, None);
        let mut loader = Loader::default();
        let mut fresh = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        loader.part(&mut fresh, &old).unwrap();
        while let Some(part) = segment.next_part(&facts) {
            loader.part(&mut fresh, &part).unwrap();
        }
        assert!(loader.finish(&mut fresh).unwrap().is_some(), "the latest records say what was published");
        assert_eq!(fresh.body(fresh.id("qq:a")).out[0].counts, [5, 5, 5, 5]);
    }

    #[test]
    fn a_format_1_identifier_record_loads_with_its_incoming_ties_derived() {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let part = part_of(&[("qq:a", v1_record("qq:b")), ("qq:b", v1_record("qq:a"))]);
        let mut loader = Loader::default();
        loader.part(&mut facts, &part).unwrap();
        loader.finish(&mut facts).unwrap();
        let (a, b) = (facts.id("qq:a"), facts.id("qq:b"));
        let body = facts.body(a);
        assert_eq!(body.days[0].amount, 250);
        assert_eq!(body.out, vec![Tie { target: b, day: 3, counts: [1, 0, 2, 0] }]);
        assert_eq!(body.sums[2], BigUint::from(9u32));
        assert_eq!(facts.incoming[a as usize], vec![b]);
        assert_eq!(facts.incoming[b as usize], vec![a]);
        assert!(facts.shares.get("s1").is_some_and(|sid| facts.shares.made(sid).is_some()));
    }
}
