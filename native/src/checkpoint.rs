//! Checkpoint segments: the facts records one checkpoint writes, framed back to back in
//! parts of a few megabytes, so a checkpoint is a handful of store writes however many
//! records it holds.
//!
//! A frame is the table byte (`i` identifier, `p` pair, `r` referrals, `e` emitted), the
//! key and the record, each of the last two preceded by its length as a varint. Every
//! record is the whole value of its key, so a later segment's record replaces an
//! earlier one's: loading keeps the latest record of each key.

use crate::codec;
use crate::facts::{Facts, Id};
use foldhash::HashMap;

/// The tables, in the order they load (pairs and referrals name identifiers).
pub const TABLES: [u8; 4] = [b'i', b'p', b'r', b'e'];
/// A part is closed once it holds this many bytes.
const PART_BYTES: usize = 8 << 20;

#[derive(Default)]
struct Parts {
    done: Vec<Vec<u8>>,
    current: Vec<u8>,
}

fn varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl Parts {
    fn push(&mut self, table: u8, key: &[u8], record: &[u8]) {
        if self.current.capacity() == 0 {
            self.current.reserve(PART_BYTES + (64 << 10));
        }
        let out = &mut self.current;
        out.push(table);
        varint(out, key.len());
        out.extend_from_slice(key);
        varint(out, record.len());
        out.extend_from_slice(record);
        if out.len() >= PART_BYTES {
            self.done.push(std::mem::take(out));
        }
    }

    fn finish(mut self) -> Vec<Vec<u8>> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

/// The records of the dirty facts or, when `full`, of every fact, as segment parts.
pub fn write(facts: &Facts, full: bool) -> Vec<Vec<u8>> {
    let mut parts = Parts::default();
    let mut record = Vec::with_capacity(4096);
    let dirty = &facts.dirty;
    let idents: Box<dyn Iterator<Item = Id>> =
        if full { Box::new(0..facts.idents.len() as Id) } else { Box::new(dirty.idents.iter().copied()) };
    for id in idents {
        record = codec::encode_ident(facts, id, record);
        parts.push(b'i', facts.key(id).as_bytes(), &record);
    }
    let pairs: Vec<(Id, Id)> =
        if full { facts.pairs.keys().copied().collect() } else { dirty.pairs.iter().copied().collect() };
    for pair in pairs {
        let key;
        (key, record) = codec::encode_pair(facts, pair, record);
        parts.push(b'p', key.as_bytes(), &record);
    }
    let shares: Vec<&String> = if full { facts.referrals.keys().collect() } else { dirty.referrals.iter().collect() };
    for sid in shares {
        record = codec::encode_referrals(facts, sid, record);
        parts.push(b'r', sid.as_bytes(), &record);
    }
    let persons: Vec<&String> = if full { facts.last_emitted.keys().collect() } else { dirty.emitted.iter().collect() };
    for pid in persons {
        record = codec::encode_emitted(facts, pid, record);
        parts.push(b'e', pid.as_bytes(), &record);
    }
    parts.finish()
}

/// Per table (in `TABLES` order), the latest record of each key across the parts given
/// oldest first, in the order keys were first written.
pub type Latest<'a> = [Vec<(&'a [u8], &'a [u8])>; 4];

pub fn read<'a>(parts: &[&'a [u8]]) -> Result<Latest<'a>, String> {
    let mut latest: Latest<'a> = Default::default();
    let mut index: [HashMap<&'a [u8], usize>; 4] = Default::default();
    for part in parts {
        let mut at = 0;
        while at < part.len() {
            let table = TABLES.iter().position(|&t| t == part[at]).ok_or("unknown checkpoint table")?;
            at += 1;
            let key = field(part, &mut at)?;
            let record = field(part, &mut at)?;
            match index[table].get(key) {
                Some(&i) => latest[table][i].1 = record,
                None => {
                    index[table].insert(key, latest[table].len());
                    latest[table].push((key, record));
                }
            }
        }
    }
    Ok(latest)
}

fn field<'a>(part: &'a [u8], at: &mut usize) -> Result<&'a [u8], String> {
    let mut len = 0usize;
    for shift in (0..64).step_by(7) {
        let byte = *part.get(*at).ok_or("checkpoint frame ends early")?;
        *at += 1;
        len |= usize::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let value = part.get(*at..*at + len).ok_or("checkpoint frame ends early")?;
            *at += len;
            return Ok(value);
        }
    }
    Err("checkpoint frame length too long".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_records_replace_earlier_ones_in_first_written_order() {
        let mut first = Parts::default();
        first.push(b'i', b"qq:1", b"old");
        first.push(b'i', b"qq:2", b"two");
        first.push(b'e', b"p_1", &[7; 300]);
        let mut second = Parts::default();
        second.push(b'i', b"qq:1", b"new");
        let (first, second) = (first.finish(), second.finish());
        let parts: Vec<&[u8]> = first.iter().chain(&second).map(Vec::as_slice).collect();
        let latest = read(&parts).unwrap();
        assert_eq!(latest[0], vec![(&b"qq:1"[..], &b"new"[..]), (&b"qq:2"[..], &b"two"[..])]);
        assert_eq!(latest[3], vec![(&b"p_1"[..], &[7u8; 300][..])]);
        assert!(latest[1].is_empty() && latest[2].is_empty());
    }

    #[test]
    fn a_cut_frame_is_an_error() {
        let mut parts = Parts::default();
        parts.push(b'p', b"a\x1fb", b"record");
        let whole = parts.finish().remove(0);
        for end in 1..whole.len() {
            assert!(read(&[&whole[..end]]).is_err(), "cut at {end}");
        }
        assert!(read(&[b"x\x01k\x01v"]).is_err());
    }
}
