//! Checkpoint segments: the facts records one checkpoint writes, framed back to back in
//! parts of a few megabytes, so a checkpoint is a handful of store writes however many
//! records it holds.
//!
//! A frame is the table byte (`i` identifier, `p` pair, `r` referrals, `e` emitted), the
//! key and the record, each of the last two preceded by its length as a varint. Every
//! record is the whole value of its key, so a later segment's record replaces an
//! earlier one's: loading keeps the latest record of each key.

use crate::codec;
use crate::facts::{self, Facts, Id};

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

/// The keys one checkpoint writes, taken when it begins: the dirty ones or, when `full`,
/// every one. Parts are rendered one at a time (`next_part`), so a checkpoint of every
/// fact holds one part in memory, not the state's whole size again.
pub struct Segment {
    idents: Vec<Id>,
    pairs: Vec<(Id, Id)>,
    referrals: Vec<String>,
    emitted: Vec<String>,
    /// the table being written (index into `TABLES`) and the next key in it
    table: usize,
    at: usize,
    record: Vec<u8>,
}

impl Segment {
    /// Begin a checkpoint: the facts changed since the last one (every fact when `full`)
    /// are what it writes, and from now on nothing is dirty.
    pub fn begin(facts: &mut Facts, full: bool) -> Self {
        let dirty = std::mem::take(&mut facts.dirty);
        let (idents, pairs, referrals, emitted) = if full {
            (
                (0..facts.idents.len() as Id).collect(),
                facts.pairs.keys().copied().collect(),
                facts.referrals.keys().cloned().collect(),
                facts.last_emitted.keys().cloned().collect(),
            )
        } else {
            (
                dirty.idents.iter().copied().collect(),
                dirty.pairs.into_iter().collect(),
                dirty.referrals.into_iter().collect(),
                dirty.emitted.into_iter().collect(),
            )
        };
        Segment { idents, pairs, referrals, emitted, table: 0, at: 0, record: Vec::with_capacity(4096) }
    }

    /// The next part (about `PART_BYTES`), or None once every record is written. The facts
    /// must not change between `begin` and the last part.
    pub fn next_part(&mut self, facts: &Facts) -> Option<Vec<u8>> {
        let mut parts = Parts::default();
        while parts.done.is_empty() && self.table < TABLES.len() {
            let at = self.at;
            self.at += 1;
            match self.table {
                0 if at < self.idents.len() => {
                    let id = self.idents[at];
                    self.record = codec::encode_ident(facts, id, std::mem::take(&mut self.record));
                    parts.push(b'i', facts.key(id).as_bytes(), &self.record);
                }
                1 if at < self.pairs.len() => {
                    let key;
                    (key, self.record) = codec::encode_pair(facts, self.pairs[at], std::mem::take(&mut self.record));
                    parts.push(b'p', key.as_bytes(), &self.record);
                }
                2 if at < self.referrals.len() => {
                    let sid = &self.referrals[at];
                    self.record = codec::encode_referrals(facts, sid, std::mem::take(&mut self.record));
                    parts.push(b'r', sid.as_bytes(), &self.record);
                }
                3 if at < self.emitted.len() => {
                    let pid = &self.emitted[at];
                    self.record = codec::encode_emitted(facts, pid, std::mem::take(&mut self.record));
                    parts.push(b'e', pid.as_bytes(), &self.record);
                }
                _ => {
                    self.table += 1;
                    self.at = 0;
                }
            }
        }
        parts.finish().pop()
    }
}

/// Loads segment parts one at a time, oldest first, each record replacing what an
/// earlier one of its key left: memory holds one part, not every segment at once.
/// Within a segment identifiers come first, and an identifier is written in the segment
/// that creates it, so a pair's identifiers are known when the pair arrives; a tie may
/// name an identifier of a later record, so ties are resolved at `finish`.
#[derive(Default)]
pub struct Loader {
    ties: Vec<(Id, Vec<codec::StoredTie>)>,
}

impl Loader {
    pub fn part(&mut self, facts: &mut Facts, part: &[u8]) -> Result<(), String> {
        for frame in frames(part) {
            let (table, key, record) = frame?;
            let key = std::str::from_utf8(key).map_err(|e| e.to_string())?;
            match table {
                b'i' => {
                    let ties = codec::decode_ident(facts, key, record)?;
                    self.ties.push((facts.ids[key], ties));
                }
                b'p' => codec::decode_pair(facts, key, record)?,
                b'r' => codec::decode_referrals(facts, key, record)?,
                b'e' => codec::decode_emitted(facts, key, record)?,
                _ => return Err("unknown checkpoint table".into()),
            }
        }
        Ok(())
    }

    /// Resolve the ties (the latest record of an identifier wins: it is applied last).
    pub fn finish(self, facts: &mut Facts) -> Result<(), String> {
        for (id, ties) in self.ties {
            let mut out = Vec::with_capacity(ties.len());
            for (target, day, counts) in ties {
                let target = *facts.ids.get(&target).ok_or_else(|| format!("tie to unknown {target}"))?;
                out.push(facts::Tie { target, day, counts });
            }
            out.sort_by_key(|t| (t.target, t.day));
            facts.idents[id as usize].out = out;
        }
        Ok(())
    }
}

/// A frame: (table, key, record).
type Frame<'a> = (u8, &'a [u8], &'a [u8]);

/// The frames of a part, in order.
fn frames(part: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, String>> {
    let mut at = 0;
    std::iter::from_fn(move || {
        if at >= part.len() {
            return None;
        }
        let table = part[at];
        at += 1;
        let frame = field(part, &mut at).and_then(|key| Ok((table, key, field(part, &mut at)?)));
        if frame.is_err() {
            at = part.len();
        }
        Some(frame)
    })
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

    fn all(part: &[u8]) -> Result<Vec<Frame<'_>>, String> {
        frames(part).collect()
    }

    #[test]
    fn frames_come_back_in_order_across_part_boundaries() {
        let mut parts = Parts::default();
        parts.push(b'i', b"qq:1", b"old");
        parts.push(b'e', b"p_1", &[7; 300]);
        parts.push(b'i', b"qq:1", b"new");
        let [part] = &parts.finish()[..] else { panic!("one part") };
        let got = all(part).unwrap();
        assert_eq!(got, vec![(b'i', &b"qq:1"[..], &b"old"[..]), (b'e', b"p_1", &[7; 300]), (b'i', b"qq:1", b"new")]);
    }

    #[test]
    fn a_cut_frame_is_an_error() {
        let mut parts = Parts::default();
        parts.push(b'p', b"a\x1fb", b"record");
        let whole = parts.finish().remove(0);
        for end in 1..whole.len() {
            assert!(all(&whole[..end]).is_err(), "cut at {end}");
        }
        let mut loader = Loader::default();
        let mut facts = Facts::new(crate::scales::Scales::new(30.0), [1; 4], vec![1], 0);
        assert!(loader.part(&mut facts, b"x\x01k\x01v").is_err());
    }
}
