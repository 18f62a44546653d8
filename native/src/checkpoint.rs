//! Checkpoint segments: the facts records one checkpoint writes, framed back to back in
//! parts of a few megabytes, so a checkpoint is a handful of store writes however many
//! records it holds.
//!
//! A frame is the table byte (`i` identifier, `s` share, `p` pair, `r` referrals, `e`
//! emitted), the key and the record, each of the last two preceded by its length as a
//! varint. Every record is the whole value of its key, so a later segment's record
//! replaces an earlier one's: loading keeps the latest record of each key.

use crate::codec;
use crate::emitted::PersonKey;
use crate::facts::{Facts, Id, Incoming, UNPUBLISHED};
use crate::shares::Sid;

/// The tables, in the order they load (shares, pairs and referrals name identifiers).
pub const TABLES: [u8; 5] = [b'i', b's', b'p', b'r', b'e'];
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
///
/// With a checkpoint number (`keyed`), the bodies of the dirty identifiers are not in the
/// segment: they are store writes of their own, under `body_key` of that number
/// (`next_bodies`), and the identifier records name the checkpoint that holds each body.
/// The versions they replace are deleted when the checkpoint is committed (`stale`).
pub struct Segment {
    idents: Vec<Id>,
    /// the shares made since the last checkpoint (a share never changes after)
    shares: Vec<Sid>,
    pairs: Vec<(Id, Id)>,
    referrals: Vec<Sid>,
    /// the persons whose last emitted score to write, by the digest of their ids (the
    /// ids spelled out took 56 bytes each, 10 as digests, for the whole checkpoint)
    emitted: Vec<PersonKey>,
    /// the table being written (index into `TABLES`) and the next key in it
    table: usize,
    at: usize,
    record: Vec<u8>,
    /// per dirty identifier: (it, the checkpoint that stored its body before, the one it
    /// was written ahead for, whether its body is resident and so written here)
    bodies: Vec<(Id, u32, u32, bool)>,
    body_at: usize,
    /// how many of `bodies` `next_stale` went through
    stale_at: usize,
    keyed: Option<u32>,
}

/// Records for the store to write, as (key, record).
pub type StoreWrites = Vec<(Vec<u8>, Vec<u8>)>;

/// The store key of an identifier's body as checkpoint `seq` wrote it.
pub fn body_key(key: &str, seq: u32) -> Vec<u8> {
    format!("i/{key}\x1f{seq:08x}").into_bytes()
}

impl Segment {
    /// Begin a checkpoint: the facts changed since the last one (every fact when `full`)
    /// are what it writes, and from now on nothing is dirty. `keyed`: the number of this
    /// checkpoint, when bodies are stored under their keys.
    pub fn begin(facts: &mut Facts, full: bool, keyed: Option<u32>) -> Self {
        let dirty = std::mem::take(&mut facts.dirty);
        let mut bodies = Vec::new();
        if let Some(seq) = keyed {
            for &id in dirty.idents.iter() {
                let ident = &mut facts.idents[id as usize];
                let resident = ident.body.is_some() || ident.packed.is_some();
                assert!(resident || ident.spilled == seq, "body {id} is neither resident nor written ahead");
                let before = std::mem::replace(&mut ident.stored, seq);
                bodies.push((id, before, std::mem::take(&mut ident.spilled), resident));
            }
            // in the order of their store keys (`body_key`: no identifier holds a
            // character below its separator): RocksDB inserts keys that come in order
            // into its memtable several times faster than keys in any order
            bodies.sort_unstable_by(|a, b| facts.key(a.0).cmp(facts.key(b.0)));
        }
        let (idents, shares, pairs, referrals, emitted) = if full {
            (
                (0..facts.idents.len() as Id).collect(),
                facts.shares.made_ids().collect(),
                facts.pairs.keys().copied().collect(),
                facts.shares.referrals.keys().copied().collect(),
                facts.last_emitted.keys(),
            )
        } else {
            let mut idents = dirty.records;
            for &id in dirty.idents.iter() {
                idents.insert(id);
            }
            // in ascending numbers: a load gives each new identifier the next one
            let mut idents = idents.drain();
            idents.sort_unstable();
            (
                idents,
                dirty.shares,
                dirty.pairs.into_iter().collect(),
                dirty.referrals.into_iter().collect(),
                dirty.emitted.iter().copied().collect(),
            )
        };
        let record = Vec::with_capacity(4096);
        Segment {
            idents,
            shares,
            pairs,
            referrals,
            emitted,
            table: 0,
            at: 0,
            record,
            bodies,
            body_at: 0,
            stale_at: 0,
            keyed,
        }
    }

    /// Give up on this checkpoint before it is committed: its bodies are dirty again, and
    /// stored where they were.
    pub fn abandon(self, facts: &mut Facts) {
        for (id, before, spilled, _) in self.bodies {
            let ident = &mut facts.idents[id as usize];
            (ident.stored, ident.spilled) = (before, spilled);
            facts.dirty.idents.insert(id);
        }
    }

    /// The next part (about `PART_BYTES`), or None once every record is written. The facts
    /// must not change between `begin` and the last part.
    pub fn next_part(&mut self, facts: &Facts) -> Option<Vec<u8>> {
        let mut parts = Parts::default();
        let inline = self.keyed.is_none();
        while parts.done.is_empty() && self.table < TABLES.len() {
            let at = self.at;
            self.at += 1;
            match self.table {
                0 if at < self.idents.len() => {
                    let id = self.idents[at];
                    self.record = codec::encode_ident(facts, id, inline, std::mem::take(&mut self.record));
                    parts.push(b'i', facts.key(id).as_bytes(), &self.record);
                }
                1 if at < self.shares.len() => {
                    let sid = self.shares[at];
                    self.record = codec::encode_share(facts, sid, std::mem::take(&mut self.record));
                    parts.push(b's', facts.shares.key(sid).as_bytes(), &self.record);
                }
                2 if at < self.pairs.len() => {
                    let key;
                    (key, self.record) = codec::encode_pair(facts, self.pairs[at], std::mem::take(&mut self.record));
                    parts.push(b'p', key.as_bytes(), &self.record);
                }
                3 if at < self.referrals.len() => {
                    let sid = self.referrals[at];
                    self.record = codec::encode_referrals(facts, sid, std::mem::take(&mut self.record));
                    parts.push(b'r', facts.shares.key(sid).as_bytes(), &self.record);
                }
                4 if at < self.emitted.len() => {
                    let key = &self.emitted[at];
                    self.record = codec::encode_emitted(facts, key, std::mem::take(&mut self.record));
                    parts.push(b'e', crate::identity::person_id(key).as_bytes(), &self.record);
                }
                _ => {
                    self.table += 1;
                    self.at = 0;
                }
            }
        }
        parts.finish().pop()
    }

    /// The next bodies to store, as (store key, record), about `PART_BYTES` of them; None
    /// once all are handed out, and from the start when the checkpoint has no number (its
    /// bodies are in its segment).
    pub fn next_bodies(&mut self, facts: &Facts) -> Option<StoreWrites> {
        let seq = self.keyed?;
        let mut out = Vec::new();
        let mut size = 0;
        if self.body_at >= self.bodies.len() {
            return None;
        }
        while size < PART_BYTES && self.body_at < self.bodies.len() {
            let (id, _, _, resident) = self.bodies[self.body_at];
            self.body_at += 1;
            if !resident {
                continue; // written ahead under this checkpoint's number
            }
            let ident = &facts.idents[id as usize];
            let record = match (&ident.packed, &ident.body) {
                (Some(packed), _) => packed.to_vec(),
                (None, Some(body)) => codec::pack_body(body, ident.earlier.as_deref(), Vec::new()),
                (None, None) => unreachable!("{} is resident (begin)", facts.key(id)),
            };
            size += record.len();
            out.push((body_key(facts.key(id), seq), record));
        }
        Some(out)
    }

    /// The next store keys, at most `limit`, of the bodies this checkpoint replaces
    /// (None once all were handed out): delete them in the write that commits it. Handed
    /// out in pieces, since a checkpoint after a million events replaced 887,376 bodies,
    /// whose keys held 86 MiB more at once as a list of the interpreter's bytes.
    pub fn next_stale(&mut self, facts: &Facts, limit: usize) -> Option<Vec<Vec<u8>>> {
        let seq = self.keyed.unwrap_or(0);
        let rest = self.bodies.get(self.stale_at..).filter(|rest| !rest.is_empty())?;
        let taken = rest.len().min(limit.max(1));
        self.stale_at += taken;
        Some(
            rest[..taken]
                .iter()
                .filter(|&&(_, before, _, _)| before != 0 && before != seq)
                .map(|&(id, before, _, _)| body_key(facts.key(id), before))
                .collect(),
        )
    }
}

/// Loads segment parts one at a time, oldest first, each record replacing what an
/// earlier one of its key left: memory holds one part, not every segment at once.
/// Within a segment identifiers come first, and an identifier is written in the segment
/// that creates it, so a pair's identifiers are known when the pair arrives; a tie may
/// name an identifier of a later record, so ties are resolved at `finish`.
#[derive(Default)]
pub struct Loader {
    /// per identifier id, what its latest record names (checked or resolved at
    /// `finish`): only the latest, since an earlier record of an older format would
    /// otherwise put back the ties it held, or say the topics' state is unknown
    named: Vec<Option<codec::Named>>,
}

impl Loader {
    pub fn part(&mut self, facts: &mut Facts, part: &[u8]) -> Result<(), String> {
        for frame in frames(part) {
            let (table, key, record) = frame?;
            let key = std::str::from_utf8(key).map_err(|e| e.to_string())?;
            match table {
                b'i' => {
                    let named = codec::decode_ident(facts, key, record)?;
                    let id = named.id as usize;
                    if id >= self.named.len() {
                        self.named.resize_with(id + 1, || None);
                    }
                    self.named[id] = Some(named);
                }
                b's' => codec::decode_share(facts, key, record)?,
                b'p' => codec::decode_pair(facts, key, record)?,
                b'r' => codec::decode_referrals(facts, key, record)?,
                b'e' => codec::decode_emitted(facts, key, record)?,
                _ => return Err("unknown checkpoint table".into()),
            }
        }
        Ok(())
    }

    /// Resolve what the records name (the latest record of an identifier wins: it is
    /// applied last). Returns what the table topics hold, when every identifier's
    /// record says (see `Published`).
    pub fn finish(self, facts: &mut Facts) -> Result<Option<Published>, String> {
        // each identifier's shares, in the order they were first named (records before
        // format 5 listed them, and an earlier one may list fewer than a later share
        // record made)
        let (shares, idents) = (&facts.shares, &mut facts.idents);
        for ident in idents.iter_mut() {
            ident.shares.clear();
        }
        for sid in shares.made_ids() {
            idents[shares.of(sid).actor as usize].shares.push(sid);
        }
        facts.incoming.resize(facts.idents.len(), Incoming::new());
        let mut derive = false;
        let mut published = Some(Published {
            anchors: vec![UNPUBLISHED; facts.idents.len()],
            unpublished: vec![false; facts.idents.len()],
        });
        let count = facts.idents.len();
        let known = |id: Id| if (id as usize) < count { Ok(id) } else { Err(format!("unknown number {id}")) };
        for (id, named) in self.named.into_iter().enumerate() {
            let Some(named) = named else { continue };
            let id = id as Id;
            match (named.published, published.as_mut()) {
                (Some((anchor, unpublished)), Some(held)) => {
                    if let Some(anchor) = anchor {
                        held.anchors[id as usize] = known(anchor)?;
                    }
                    held.unpublished[id as usize] = unpublished;
                }
                (None, _) => published = None, // a record of an earlier format says nothing
                (Some(_), None) => {}
            }
            // sorted, each once (records before format 6's bodies kept them as they came)
            match named.incoming {
                Some(codec::Sources::Numbers(sources)) => {
                    facts.incoming[id as usize] = sources.into_iter().map(known).collect::<Result<_, _>>()?;
                }
                Some(codec::Sources::Keys(sources)) => {
                    let mut incoming = Incoming::with_capacity(sources.len());
                    for source in sources {
                        incoming.push(facts.id_of(&source).ok_or_else(|| format!("tie from unknown {source}"))?);
                    }
                    facts.incoming[id as usize] = incoming;
                }
                None => derive = true,
            }
            let sources = &mut facts.incoming[id as usize];
            if !sources.is_sorted_by(|a, b| a < b) {
                sources.sort_unstable();
                sources.dedup();
            }
            let ident = &facts.idents[id as usize];
            if let Some(ties) = named.ties {
                let out = codec::resolve_ties(facts, ties)?;
                if let Some(body) = facts.idents[id as usize].body.as_deref_mut() {
                    body.out = out;
                }
            } else if let Some(body) = ident.body.as_deref() {
                codec::check_ties(facts, &body.out)?; // numbered, maybe beyond its record
            }
        }
        if derive {
            // records of format 1 kept no incoming ties, and every body came with them
            let mut incoming = vec![Incoming::new(); facts.idents.len()];
            for source in 0..facts.idents.len() as Id {
                let mut last = None;
                for tie in &facts.body(source).out {
                    if last != Some(tie.target) {
                        incoming[tie.target as usize].push(source);
                        last = Some(tie.target);
                    }
                }
            }
            facts.incoming = incoming;
        }
        Ok(published)
    }
}

/// What the table topics held of the identifiers at the checkpoint loaded: per
/// identifier id, the anchor of the person it was last published in (`UNPUBLISHED`:
/// never) and whether its person's rows changed since.
pub struct Published {
    pub anchors: Vec<Id>,
    pub unpublished: Vec<bool>,
}

/// A frame: (table, key, record).
type Frame<'a> = (u8, &'a [u8], &'a [u8]);

/// The frames of a part, in order.
pub(crate) fn frames(part: &[u8]) -> impl Iterator<Item = Result<Frame<'_>, String>> {
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
