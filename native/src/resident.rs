//! Which identifier bodies are in memory (see `facts::Body`).
//!
//! With a store that keeps bodies under their keys (`Facts::keyed`), a call that reads
//! bodies is preceded by `wants`: the shell fetches those not in memory, in a few reads,
//! and `install`s them. After each piece of a chunk, each batch and each checkpoint,
//! `evict` keeps the cache's budget, least recently asked for first: a decoded body is
//! packed (encoded as the store keeps it, in a fraction of its memory, and decoded again
//! without a read of the store); a packed one is dropped when clean, and written ahead of
//! the checkpoint that will commit it when dirty. The bodies' memory follows the budget,
//! not the history (the memo of current persons has a bound of its own: `memo`).

use crate::codec;
use crate::decode::{Event, Kind};
use crate::facts::{Body, DayBucket, Facts, Id, IdSet, Tie};
use crate::sum::Sum;
use std::mem::size_of;

impl Body {
    /// About how many bytes of memory it holds (lengths and capacities).
    pub fn bytes(&self) -> usize {
        let sums: usize = self.sums.iter().map(Sum::heap_bytes).sum();
        size_of::<Body>()
            + self.days.capacity() * size_of::<DayBucket>()
            + self.out.capacity() * size_of::<Tie>()
            + self.consent.bytes()
            + sums
    }
}

/// Of the cache's budget, decoded bodies keep at most this fraction (a quarter): the
/// bodies a batch reads and those it will likely read next, while the rest of the budget
/// holds packed bodies, each in a fraction of the memory (on the 3M-line prefix of the
/// bench's 10M input, left to take the whole budget, decoded bodies held 529k of the 875k
/// bodies in memory, at 773 bytes each against 298 packed).
const DECODED_SHARE: usize = 4;

impl Facts {
    /// Add to `out` the identifiers whose bodies applying `event` reads: those it names
    /// and the sharers its share or referred purchase credits. Asked just before the event
    /// is applied, this is exact; asked of a piece of a chunk first, it is most of it.
    pub fn wants(&self, event: &Event<'_>, out: &mut Vec<Id>) {
        for key in event.identifiers() {
            if let Some(id) = self.id_of(key) {
                out.push(id);
            }
        }
        self.chain_wants(event, out);
    }

    /// The sharers an event's credit reaches up its chain (a share's parent, a purchase's
    /// referral): within a piece of a chunk the only bodies an event can need that
    /// `wants` did not name before the piece, when the chain starts at a share made
    /// earlier in the chunk. (An identifier the chunk creates may be packed by the
    /// shedding between pieces: the caller asks again for any of these not decoded.)
    pub fn chain_wants(&self, event: &Event<'_>, out: &mut Vec<Id>) {
        let chain = match event.kind {
            Kind::Share => event.parent.as_deref(),
            Kind::Purchase => event.referral.as_deref(),
            _ => None,
        };
        if let Some(sid) = chain.and_then(|key| self.shares.get(key)) {
            out.extend(self.ancestors(sid).into_iter().map(|(actor, _)| actor));
        }
    }

    /// Mark `ids` as asked for and make their bodies whole: decode those packed, merge
    /// into those opened what they were opened over; return those whose bodies only the
    /// store holds, each once.
    pub fn missing(&mut self, ids: &[Id]) -> Result<Vec<Id>, String> {
        let mut out = IdSet::default();
        for &id in ids {
            let ident = &mut self.idents[id as usize];
            ident.recent = true;
            if let Some(earlier) = ident.earlier.take() {
                let mut body = ident.body.take().expect("a body opened over its record");
                let merged = codec::merge_earlier(self, &mut body, &earlier);
                self.idents[id as usize].body = Some(body);
                if let Err(e) = merged {
                    // a corrupt record: the body stays opened over it, never taken for whole
                    self.idents[id as usize].earlier = Some(earlier);
                    return Err(format!("body of {}: {e}", self.key(id)));
                }
                self.grown.insert(id);
                continue;
            }
            if ident.body.is_some() {
                continue;
            }
            if !self.unpack(id, false)? {
                out.insert(id);
            }
        }
        Ok(out.drain())
    }

    /// Mark `ids` as asked for and make their bodies ready to be added to: a packed body
    /// is opened over its record (`codec::open_body`), without decoding its history;
    /// return those whose bodies only the store holds, each once (`install` them with
    /// `open`).
    pub fn unopened(&mut self, ids: &[Id]) -> Result<Vec<Id>, String> {
        let mut out = IdSet::default();
        for &id in ids {
            let ident = &mut self.idents[id as usize];
            ident.recent = true;
            if ident.body.is_some() {
                continue;
            }
            if !self.unpack(id, true)? {
                out.insert(id);
            }
        }
        Ok(out.drain())
    }

    /// Make a packed body resident, opened to be added to when `open` (`install_open`)
    /// or decoded whole; whether it was packed. One that does not read stays packed.
    fn unpack(&mut self, id: Id, open: bool) -> Result<bool, String> {
        let Some(packed) = self.idents[id as usize].packed.take() else { return Ok(false) };
        let len = packed.len();
        self.packed -= len;
        let installed =
            if open { self.install_open(id, packed) } else { self.install(id, &packed).map_err(|e| (e, packed)) };
        if let Err((e, packed)) = installed {
            self.packed += len;
            self.idents[id as usize].packed = Some(packed);
            return Err(e);
        }
        Ok(true)
    }

    /// The store key of a non-resident identifier's body.
    pub fn body_key(&self, id: Id) -> Vec<u8> {
        let ident = &self.idents[id as usize];
        let seq = if ident.spilled != 0 { ident.spilled } else { ident.stored };
        crate::checkpoint::body_key(self.key(id), seq)
    }

    /// Make a fetched or packed body resident, decoded whole.
    pub fn install(&mut self, id: Id, record: &[u8]) -> Result<(), String> {
        let body = codec::decode_body(self, record).map_err(|e| format!("body of {}: {e}", self.key(id)))?;
        self.reside(id, body, None);
        Ok(())
    }

    /// Make a fetched or packed body resident to be added to: opened over its record
    /// (`codec::open_body`), or decoded whole if its format has no parts. A record it
    /// cannot read is handed back with the error.
    pub fn install_open(&mut self, id: Id, record: Box<[u8]>) -> Result<(), (String, Box<[u8]>)> {
        let decoded = match codec::open_body(&record) {
            Ok(Some(body)) => {
                self.reside(id, body, Some(record));
                return Ok(());
            }
            Ok(None) => codec::decode_body(self, &record),
            Err(e) => Err(e),
        };
        match decoded {
            Ok(body) => {
                self.reside(id, body, None);
                Ok(())
            }
            Err(e) => Err((format!("body of {}: {e}", self.key(id)), record)),
        }
    }

    fn reside(&mut self, id: Id, body: Body, earlier: Option<Box<[u8]>>) {
        let ident = &mut self.idents[id as usize];
        ident.body = Some(Box::new(body));
        ident.earlier = earlier;
        let bytes = ident.decoded_bytes();
        self.held += bytes;
        ident.counted = u32::try_from(bytes).unwrap_or(u32::MAX);
    }

    /// While the decoded bodies hold more than a `DECODED_SHARE`th of `budget` bytes, or
    /// all of them more than `budget`, pack or drop those the sweep finds not asked for
    /// since it last passed them (CLOCK): a decoded body is packed; a packed one, when
    /// over the budget, is dropped when clean and, when dirty and given `ahead` (the
    /// number of the next checkpoint), returned as (store key, record) under that number,
    /// for the caller to write with its batch, and read back from there (without `ahead`
    /// dirty bodies stay packed).
    pub fn evict(&mut self, budget: usize, ahead: Option<u32>) -> crate::checkpoint::StoreWrites {
        for id in self.grown.drain() {
            let ident = &mut self.idents[id as usize];
            if ident.body.is_some() {
                let bytes = ident.decoded_bytes();
                self.held = self.held + bytes - ident.counted as usize;
                ident.counted = u32::try_from(bytes).unwrap_or(u32::MAX);
            }
        }
        let mut held = self.held;
        let n = self.idents.len();
        let mut written = Vec::new();
        // bodies are encoded into one buffer and copied out at their length: one
        // allocation each, of the size it keeps
        let mut scratch = Vec::new();
        let mut passed = 0;
        let decoded = budget / DECODED_SHARE;
        // three rounds at most: one clears the second chances, one packs, one drops
        while (held > decoded || held + self.packed > budget) && passed < 3 * n {
            let at = self.hand % n;
            self.hand = at + 1;
            passed += 1;
            let ident = &mut self.idents[at];
            if (ident.body.is_none() && ident.packed.is_none()) || std::mem::take(&mut ident.recent) {
                continue;
            }
            if ident.body.is_none() && held + self.packed <= budget {
                continue; // packed, and room for it
            }
            if let Some(body) = ident.body.take() {
                held -= std::mem::take(&mut ident.counted) as usize;
                scratch = codec::pack_body(&body, ident.earlier.take().as_deref(), scratch);
                self.packed += scratch.len();
                self.idents[at].packed = Some(Box::from(scratch.as_slice()));
                continue;
            }
            let dirty = ident.stored == 0 || self.dirty.idents.contains(at as Id);
            if dirty && ahead.is_none() {
                continue;
            }
            let packed = self.idents[at].packed.take().expect("packed, checked above");
            self.packed -= packed.len();
            if let (true, Some(seq)) = (dirty, ahead) {
                let key = crate::checkpoint::body_key(self.key(at as Id), seq);
                written.push((key, packed.into_vec()));
                self.idents[at].spilled = seq;
            }
        }
        self.held = held;
        written.sort_unstable(); // in key order, as a checkpoint writes them
        written
    }
}
