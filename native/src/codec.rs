//! The checkpointed form of the facts: one compact binary record per key.
//!
//! Records start with a format byte; identifiers inside records are written as their keys,
//! since ids are only positions in this process's tables.

use crate::facts::{Body, ConsentEntry, DayBucket, Facts, Id, Scope, Tie, COUNTERS, UNPUBLISHED};
use crate::shares::{Share, Sid};
use num_bigint::BigUint;
use std::collections::BTreeMap;

const FORMAT: u8 = 1;
/// Identifier records since they say what the table topics hold of them (format 2 did
/// not: the engine published at every checkpoint; format 1 held the body too, and
/// mentions). Both still load, see `decode_ident`.
const IDENT_FORMAT: u8 = 3;
const IDENT_FORMAT_2: u8 = 2;
pub const SEP: char = '\x1f';

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    /// A record written into `buffer` (emptied first): one buffer serves many records.
    fn into(mut buffer: Vec<u8>, format: u8) -> Self {
        buffer.clear();
        buffer.push(format);
        Writer(buffer)
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
}

pub type Result<T> = std::result::Result<T, String>;

impl<'a> Reader<'a> {
    fn new(data: &'a [u8], format: u8) -> Result<Self> {
        match data.first() {
            Some(&f) if f == format => Ok(Reader { data, at: 1 }),
            _ => Err("record is not in this version's checkpoint format".into()),
        }
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
/// shares, the identifiers with ties to it, the checkpoint that stored its body) and,
/// when no store keeps bodies under their keys, the body itself; then what the table
/// topics hold of it: the anchor of the person it was last published in (none: never
/// published) and whether its person's rows changed since, so that a publication may
/// wait past a checkpoint (see `publication`). The published anchors must be known
/// (`Facts::published_anchor`).
pub fn encode_ident(facts: &Facts, id: Id, inline: bool, buffer: Vec<u8>) -> Vec<u8> {
    let ident = &facts.idents[id as usize];
    let mut w = Writer::into(buffer, IDENT_FORMAT);
    w.int(ident.first.0);
    w.text(&ident.first.1);
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
        w.text(facts.key(source));
    }
    if inline {
        w.uint(0);
        write_body(&mut w, facts, facts.body(id));
    } else {
        w.uint(ident.stored.into());
    }
    let anchors = facts.published_anchor.as_deref().expect("published anchors are known at a checkpoint");
    let published = anchors.get(id as usize).copied().unwrap_or(UNPUBLISHED);
    w.opt_text((published != UNPUBLISHED).then(|| facts.key(published)));
    w.0.push(u8::from(facts.unpublished.contains(id)));
    w.0
}

/// An identifier's body as the store keeps it under its key.
pub fn encode_body(facts: &Facts, body: &Body, buffer: Vec<u8>) -> Vec<u8> {
    let mut w = Writer::into(buffer, FORMAT);
    write_body(&mut w, facts, body);
    w.0
}

fn write_body(w: &mut Writer, facts: &Facts, body: &Body) {
    w.uint(body.days.len() as u128);
    for b in &body.days {
        w.int(b.day());
        for &c in &b.counts {
            w.uint(c.into());
        }
        w.uint(b.amount);
    }
    w.uint(body.out.len() as u128);
    for tie in &body.out {
        w.text(facts.key(tie.target));
        w.int(tie.day.into());
        for &c in &tie.counts {
            w.uint(c.into());
        }
    }
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
        w.bytes(&sum.to_bytes_le());
    }
}

/// A tie as stored: its target is named by key, resolved once every identifier is loaded.
pub type StoredTie = (String, i32, [u32; 4]);

/// What an identifier record names by key, for the caller to resolve once every
/// identifier is loaded: the sources of its incoming ties, and its body's ties when the
/// body came with it.
pub struct Named {
    /// None for a record of format 1, which kept none: derived from the ties at the end
    pub incoming: Option<Vec<String>>,
    pub ties: Option<Vec<StoredTie>>,
    /// what the table topics hold of it (format 3): the anchor it was last published
    /// under (None: never published), and whether its person's rows changed since
    pub published: Option<(Option<String>, bool)>,
}

/// Load one identifier record (see `encode_ident`). A record of format 1 (before bodies
/// were kept apart: a Kafka worker's changelog of an earlier version) loads too.
pub fn decode_ident(facts: &mut Facts, key: &str, data: &[u8]) -> Result<Named> {
    let format = match data.first() {
        Some(&FORMAT) => return decode_ident_v1(facts, key, data),
        Some(&IDENT_FORMAT_2) => IDENT_FORMAT_2,
        _ => IDENT_FORMAT,
    };
    let mut r = Reader::new(data, format)?;
    let first = (r.int()?, r.text()?);
    let (id, _) = facts.intern(key, (first.0, &first.1));
    let shares = read_shares(&mut r, facts, id)?;
    let n = r.len()?;
    let mut incoming = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        incoming.push(r.text()?);
    }
    let stored = u32::try_from(r.uint()?).map_err(|e| e.to_string())?;
    let (body, ties) = if stored == 0 {
        let (body, ties) = read_body(&mut r)?;
        (Some(Box::new(body)), Some(ties))
    } else {
        (None, None)
    };
    let published = if format == IDENT_FORMAT { Some((r.opt_text()?, r.byte()? == 1)) } else { None };
    let ident = &mut facts.idents[id as usize];
    ident.first = first;
    ident.shares = shares;
    ident.stored = stored;
    ident.body = body;
    Ok(Named { incoming: Some(incoming), ties, published })
}

fn read_shares(r: &mut Reader<'_>, facts: &mut Facts, id: Id) -> Result<Vec<Sid>> {
    let n = r.len()?;
    let mut shares = Vec::with_capacity(r.bounded(n));
    for _ in 0..n {
        let sid = facts.shares.intern(&r.text()?);
        let ts = r.int()?;
        let parent = r.opt_text()?.map(|parent| facts.shares.intern(&parent));
        facts.shares.make(sid, Share { actor: id, ts, parent, recipients: r.uint()? as u64 });
        shares.push(sid);
    }
    Ok(shares)
}

/// Format 1: first seen, days, ties, shares, consent, mentions (no longer kept), sums.
fn decode_ident_v1(facts: &mut Facts, key: &str, data: &[u8]) -> Result<Named> {
    let mut r = Reader::new(data, FORMAT)?;
    let first = (r.int()?, r.text()?);
    let (id, _) = facts.intern(key, (first.0, &first.1));
    let (days, ties) = read_days_and_ties(&mut r)?;
    let shares = read_shares(&mut r, facts, id)?;
    let consent = read_consent(&mut r)?;
    for _ in 0..r.len()? {
        r.int()?;
    }
    let sums = read_sums(&mut r)?;
    let ident = &mut facts.idents[id as usize];
    ident.first = first;
    ident.shares = shares;
    ident.stored = 0;
    ident.body = Some(Box::new(Body { days, out: Vec::new(), consent, sums }));
    Ok(Named { incoming: None, ties: Some(ties), published: None })
}

/// An identifier's body as `encode_body` stored it, its ties resolved.
pub fn decode_body(facts: &Facts, data: &[u8]) -> Result<Body> {
    let mut r = Reader::new(data, FORMAT)?;
    let (mut body, ties) = read_body(&mut r)?;
    body.out = resolve_ties(facts, ties)?;
    Ok(body)
}

/// Ties named by key as the identifiers they name, in (target, day) order.
pub fn resolve_ties(facts: &Facts, ties: Vec<StoredTie>) -> Result<Vec<Tie>> {
    let mut out = Vec::with_capacity(ties.len());
    for (target, day, counts) in ties {
        let target = *facts.ids.get(&target).ok_or_else(|| format!("tie to unknown {target}"))?;
        out.push(Tie { target, day, counts });
    }
    out.sort_by_key(|t| (t.target, t.day));
    Ok(out)
}

fn read_body(r: &mut Reader<'_>) -> Result<(Body, Vec<StoredTie>)> {
    let (days, ties) = read_days_and_ties(r)?;
    let consent = read_consent(r)?;
    let sums = read_sums(r)?;
    Ok((Body { days, out: Vec::new(), consent, sums }, ties))
}

fn read_days_and_ties(r: &mut Reader<'_>) -> Result<(Vec<DayBucket>, Vec<StoredTie>)> {
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
    Ok((days, ties))
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
        *sum = BigUint::from_bytes_le(r.bytes()?);
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
        *facts.ids.get(a).ok_or_else(|| format!("pair names unknown identifier {a}"))?,
        *facts.ids.get(b).ok_or_else(|| format!("pair names unknown identifier {b}"))?,
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
    fn a_format_1_identifier_record_loads_with_its_incoming_ties_derived() {
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        let mut part = Vec::new();
        for (key, record) in [("qq:a", v1_record("qq:b")), ("qq:b", v1_record("qq:a"))] {
            part.push(b'i');
            part.push(key.len() as u8);
            part.extend_from_slice(key.as_bytes());
            let mut len = Writer::default();
            len.uint(record.len() as u128);
            part.extend_from_slice(&len.0);
            part.extend_from_slice(&record);
        }
        let mut loader = Loader::default();
        loader.part(&mut facts, &part).unwrap();
        loader.finish(&mut facts).unwrap();
        let (a, b) = (facts.ids["qq:a"], facts.ids["qq:b"]);
        let body = facts.body(a);
        assert_eq!(body.days[0].amount, 250);
        assert_eq!(body.out, vec![Tie { target: b, day: 3, counts: [1, 0, 2, 0] }]);
        assert_eq!(body.sums[2], BigUint::from(9u32));
        assert_eq!(facts.incoming[a as usize], vec![b]);
        assert_eq!(facts.incoming[b as usize], vec![a]);
        assert!(facts.shares.get("s1").is_some_and(|sid| facts.shares.made(sid).is_some()));
    }
}
