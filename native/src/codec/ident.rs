//! Identifier records: what a checkpoint segment keeps of each identifier.

use super::body::{
    read_body, read_consent, read_days, read_keyed_body, read_keyed_ties, read_sums, write_days_first, Days, StoredTie,
};
use super::{Reader, Result, Writer, FORMAT, IDENT_FORMAT, IDENT_FORMAT_2, IDENT_FORMAT_3, IDENT_FORMAT_4};
use crate::facts::{Body, Facts, Id, UNPUBLISHED};
use crate::shares::Share;
use smallvec::SmallVec;

/// An identifier's record in a checkpoint segment: what is always in memory (first seen,
/// its number, the identifiers with ties to it, the checkpoint that stored its body;
/// not its shares, which are records of their own) and, when no store keeps bodies
/// under their keys, the body itself; then what the table topics hold of it: the anchor
/// of the person it was last published in (none: never published) and whether its
/// person's rows changed since, so that a publication may wait past a checkpoint (see
/// `publication`). The published anchors must be known
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
    let incoming = facts.incoming.get(id as usize).map_or(&[][..], |sources| sources.as_slice());
    w.uint(incoming.len() as u128);
    for &source in incoming {
        w.uint(source.into());
    }
    if inline {
        w.uint(0);
        write_days_first(&mut w, facts.body(id));
    } else {
        w.uint(ident.stored.into());
    }
    let anchors = facts.published_anchor.as_deref().expect("published anchors are known at a checkpoint");
    let published = anchors.get(id as usize).copied().unwrap_or(UNPUBLISHED);
    w.uint(if published == UNPUBLISHED { 0 } else { u128::from(published) + 1 });
    w.0.push(u8::from(facts.unpublished.contains(id)));
    w.0
}

/// The identifiers a record names (the sources of incoming ties): by number, or by key
/// in a record of format 2, resolved once every identifier is loaded.
pub enum Sources {
    Numbers(Vec<Id>),
    Keys(Vec<String>),
}

/// What an identifier record names, for the caller to check or resolve once every
/// identifier is loaded: the sources of its incoming ties, and, when its body came with
/// it, the body's ties by key (formats 1 and 2; from format 3 on a record holds its
/// ties by number, in the body).
pub struct Named {
    /// the identifier's number
    pub id: Id,
    /// None for a record of format 1, which kept none: derived from the ties at the end
    pub incoming: Option<Sources>,
    pub ties: Option<Vec<StoredTie>>,
    /// what the table topics hold of it (formats 3 and 4): the anchor it was last published
    /// under (None: never published), and whether its person's rows changed since
    pub published: Option<(Option<Id>, bool)>,
}

/// Load one identifier record (see `encode_ident`). Records of formats 1 (before bodies
/// were kept apart: a Kafka worker's changelog of an earlier version) and 2 load too:
/// their identifiers are numbered in the order they load. Records before format 5 list
/// the identifier's shares, which are made here; either way an identifier's list of
/// shares is made from the shares at the end of the load (`Loader::finish`).
pub fn decode_ident(facts: &mut Facts, key: &str, data: &[u8]) -> Result<Named> {
    let format = match data.first() {
        Some(&FORMAT) => return decode_ident_v1(facts, key, data),
        Some(&f @ (IDENT_FORMAT_2 | IDENT_FORMAT_3 | IDENT_FORMAT_4 | IDENT_FORMAT)) => f,
        Some(f) => return Err(format!("identifier record of unknown format {f}")),
        None => return Err("empty identifier record".into()),
    };
    let numbered = format != IDENT_FORMAT_2;
    let mut r = Reader::new(data, format)?.shifting(format >= IDENT_FORMAT_4);
    let first = (r.int()?, r.text()?);
    let id = if numbered {
        let number = Id::try_from(r.uint()?).map_err(|e| e.to_string())?;
        facts.intern_at(key, number, (first.0, &first.1))?
    } else {
        facts.intern(key, (first.0, &first.1)).0
    };
    if format < IDENT_FORMAT {
        read_shares(&mut r, facts, id)?;
    }
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
    ident.stored = stored;
    ident.body = body;
    ident.earlier = None;
    ident.packed = None;
    Ok(Named { id, incoming: Some(incoming), ties, published })
}

/// The shares an identifier record of a format before 5 lists, made. A record loaded
/// over an earlier one of the same identifier (a later segment's) lists the shares it
/// listed, in the same order, and then its new ones: those are recognised by their
/// text, without looking them up (such a checkpoint wrote every share of each
/// identifier it wrote, and the lookups were most of a load's time).
fn read_shares(r: &mut Reader<'_>, facts: &mut Facts, id: Id) -> Result<()> {
    let n = r.len()?;
    let earlier = std::mem::take(&mut facts.idents[id as usize].shares);
    let mut shares = SmallVec::with_capacity(r.bounded(n));
    for i in 0..n {
        let text = r.text()?;
        let sid = match earlier.get(i) {
            Some(&sid) if facts.shares.key(sid) == text => sid,
            _ => facts.shares.intern(&text),
        };
        let ts = r.int()?;
        let parent = match r.opt_text()? {
            None => None,
            Some(parent) => match facts.shares.made(sid).and_then(|share| share.parent) {
                Some(known) if facts.shares.key(known) == parent => Some(known),
                _ => Some(facts.shares.intern(&parent)),
            },
        };
        let recipients = u32::try_from(r.uint()?).map_err(|e| format!("recipients: {e}"))?;
        facts.shares.make(sid, Share { actor: id, ts, parent, recipients: recipients.into() });
        shares.push(sid);
    }
    // what the next record of this identifier is compared with (`Loader::finish`
    // makes the lists again from the shares)
    facts.idents[id as usize].shares = shares;
    Ok(())
}

/// Format 1: first seen, days, ties, shares, consent, mentions (no longer kept), sums.
fn decode_ident_v1(facts: &mut Facts, key: &str, data: &[u8]) -> Result<Named> {
    let mut r = Reader::new(data, FORMAT)?;
    let first = (r.int()?, r.text()?);
    let (id, _) = facts.intern(key, (first.0, &first.1));
    let mut days = Vec::new();
    read_days(&mut r, Days::Whole, &mut days)?;
    let ties = read_keyed_ties(&mut r)?;
    read_shares(&mut r, facts, id)?;
    let consent = read_consent(&mut r)?;
    for _ in 0..r.len()? {
        r.int()?;
    }
    let sums = read_sums(&mut r)?;
    facts.set_first(id, (first.0, &first.1));
    let ident = &mut facts.idents[id as usize];
    ident.stored = 0;
    ident.earlier = None;
    ident.packed = None;
    ident.body = Some(Box::new(Body { days, out: Vec::new(), consent, sums }));
    Ok(Named { id, incoming: None, ties: Some(ties), published: None })
}
