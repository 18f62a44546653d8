//! The other keyed records of a checkpoint: link histories of identifier pairs, shares,
//! a share's referrals, and the score last emitted per person.

use super::{Reader, Result, Writer, FORMAT, SEP};
use crate::emitted::{person_key, PersonKey};
use crate::facts::{Facts, Id, LinkHistory};
use crate::shares::{Share, Sid};

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
    let mut history = LinkHistory::with_capacity(r.bounded(n));
    for _ in 0..n {
        history.push((r.int()?, r.text()?.into_boxed_str(), r.byte()? == 1));
    }
    facts.pairs.insert(ids, history);
    Ok(())
}

/// A share: its sharer's number, when it was made, the share it re-shares (by id, as
/// it may be named before it is made) and its reach. A share never changes: only the
/// checkpoint after its event and full checkpoints write it.
pub fn encode_share(facts: &Facts, share: Sid, buffer: Vec<u8>) -> Vec<u8> {
    let made = facts.shares.of(share);
    let mut w = Writer::into(buffer, FORMAT);
    w.uint(made.actor.into());
    w.int(made.ts);
    w.opt_text(made.parent.map(|parent| facts.shares.key(parent)));
    w.uint(made.recipients.into());
    w.0
}

/// Load a share (see `encode_share`); its sharer was loaded before it (a share's record
/// is in the segment of its sharer's first record, or a later one).
pub fn decode_share(facts: &mut Facts, share_id: &str, data: &[u8]) -> Result<()> {
    let mut r = Reader::new(data, FORMAT)?;
    let actor: Id = r.number()?;
    if actor as usize >= facts.idents.len() {
        return Err(format!("share {share_id} made by unknown number {actor}"));
    }
    let ts = r.int()?;
    let parent = r.opt_text()?;
    let recipients = u32::try_from(r.uint()?).map_err(|e| format!("recipients: {e}"))?;
    let sid = facts.shares.intern(share_id);
    let parent = parent.map(|parent| facts.shares.intern(&parent));
    facts.shares.make(sid, Share { actor, ts, parent, recipients: recipients.into() });
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

pub fn encode_emitted(facts: &Facts, key: &PersonKey, buffer: Vec<u8>) -> Vec<u8> {
    let (composite, tier) = facts.last_emitted.get(key).expect("a person with a score emitted");
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
    let key = person_key(person_id).ok_or_else(|| format!("{person_id:?} is not a person id"))?;
    facts.last_emitted.insert(key, f64::from_le_bytes(raw), &tier);
    Ok(())
}
