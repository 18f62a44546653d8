//! What the core's memory holds, structure by structure: approximate heap bytes from
//! lengths and capacities (not the allocator's view), so the bench can say what grows.

use crate::allocator;
use crate::facts::{Body, Facts, Id, Ident, Incoming, LinkEntry, LinkHistory};
use std::mem::size_of;

fn text(s: &str) -> usize {
    s.len()
}

/// (structure, entries, approximate bytes), largest first.
pub fn footprint(facts: &Facts) -> Vec<(&'static str, usize, usize)> {
    let idents = &facts.idents;
    let shares = facts.shares.footprint();
    let resident: Vec<&Body> = idents.iter().filter_map(|i| i.body.as_deref()).collect();
    let mut out = vec![
        (
            "identifiers",
            idents.len(),
            idents.capacity() * size_of::<Ident>()
                + facts.firsts.bytes()
                + idents.iter().filter(|i| i.shares.spilled()).map(|i| i.shares.capacity() * 4).sum::<usize>(),
        ),
        ("resident bodies", resident.len(), idents.iter().map(Ident::decoded_bytes).sum()),
        ("packed bodies", idents.iter().filter(|i| i.packed.is_some()).count(), facts.packed),
        ("identifier ids", facts.keys.len(), facts.keys.bytes()),
        (
            "links",
            facts.pairs.len(),
            facts.pairs.capacity() * (size_of::<((Id, Id), LinkHistory)>() + 1)
                + facts
                    .pairs
                    .values()
                    .map(|v| {
                        let spilled = if v.spilled() { v.capacity() * size_of::<LinkEntry>() } else { 0 };
                        spilled + v.iter().map(|e| text(&e.1)).sum::<usize>()
                    })
                    .sum::<usize>()
                + facts.adjacency.bytes(),
        ),
        ("shares", shares.0, shares.1),
        (
            "incoming ties",
            facts.incoming.len(),
            facts.incoming.capacity() * size_of::<Incoming>()
                + facts.incoming.iter().filter(|v| v.spilled()).map(|v| v.capacity() * 4).sum::<usize>(),
        ),
        ("last emitted", facts.last_emitted.len(), facts.last_emitted.bytes()),
        {
            let (kept, bytes) = facts.standings.footprint();
            ("kept standings", kept, bytes)
        },
        {
            let (persons, bytes) = facts.persons.footprint();
            ("person cache", persons, bytes)
        },
        (
            "published",
            facts.published_ties.len(),
            facts.published_anchor.as_ref().map_or(0, |v| v.capacity() * 4)
                + facts.published_ties.capacity() * 56
                + facts
                    .published_ties
                    .iter()
                    .map(|(k, v)| text(k) + v.capacity() * 24 + v.iter().map(|s| text(s)).sum::<usize>())
                    .sum::<usize>()
                + facts.changed_ties.capacity() * 9,
        ),
    ];
    out.sort_by_key(|b| std::cmp::Reverse(b.2));
    out
}

/// A structure's name, and how to drop it.
type Release = (&'static str, fn(&mut Facts));

/// What each structure holds, exactly: each is dropped in turn and the bytes the
/// allocator got back are counted (with counting on, see `allocator`; None without). It
/// leaves the facts empty: a diagnostic for the end of a run, which tells what
/// `footprint`'s estimates miss.
pub fn measure_by_dropping(facts: &mut Facts) -> Option<Vec<(&'static str, usize)>> {
    allocator::held()?;
    // each structure, and how to drop it: in this order, a body before its identifier
    let drops: [Release; 17] = [
        ("resident bodies", |f| {
            f.idents.iter_mut().for_each(|i| {
                i.body = None;
                i.earlier = None;
            })
        }),
        ("packed bodies", |f| f.idents.iter_mut().for_each(|i| i.packed = None)),
        ("identifiers", |f| f.idents = Vec::new()),
        ("identifier first events", |f| f.firsts = Default::default()),
        ("identifier ids", |f| f.keys = Default::default()),
        ("link histories", |f| f.pairs = Default::default()),
        ("links standing", |f| f.adjacency = Default::default()),
        ("shares", |f| f.shares = Default::default()),
        ("incoming ties", |f| f.incoming = Vec::new()),
        ("last emitted", |f| f.last_emitted = Default::default()),
        ("kept standings", |f| f.standings = Default::default()),
        ("person cache", |f| f.persons.clear()),
        ("dirty since the checkpoint", |f| f.dirty = Default::default()),
        ("unpublished", |f| f.unpublished = Default::default()),
        ("published anchors and ties", |f| {
            f.published_anchor = None;
            f.published_ties = Default::default();
            f.changed_ties = Default::default();
        }),
        ("event ids of the batch", |f| f.seen = Default::default()),
        ("batch scratch", |f| {
            f.touched = Default::default();
            f.grown = Default::default();
            f.mentioned = Vec::new();
            f.relinked = Default::default();
        }),
    ];
    let live = || allocator::held().unwrap_or_default();
    let mut out = Vec::with_capacity(drops.len());
    for (name, drop) in drops {
        let before = live();
        drop(facts);
        out.push((name, usize::try_from(before - live()).unwrap_or(0)));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scales::Scales;

    #[test]
    fn dropping_each_structure_counts_what_it_held() {
        let _one = allocator::count_from_now();
        let mut facts = Facts::new(Scales::new(30.0), [1; 4], vec![1], 0);
        for n in 0..200_000 {
            facts.intern(&format!("qq:{n:08}"), (1, "e1"));
        }
        let measured = measure_by_dropping(&mut facts).expect("counting");
        let of = |name: &str| measured.iter().find(|(n, _)| *n == name).map(|(_, bytes)| *bytes);
        // the keys' text alone is 2.2 MB, and an identifier at least its struct; other
        // tests allocate meanwhile, so only a floor far above their noise is checked
        assert!(of("identifier ids").is_some_and(|b| b >= 2_200_000), "{measured:?}");
        assert!(of("identifiers").is_some_and(|b| b >= 200_000 * size_of::<Ident>()), "{measured:?}");
        assert!(facts.idents.is_empty() && facts.keys.len() == 0);
    }
}
