//! What the core's memory holds, structure by structure: approximate heap bytes from
//! lengths and capacities (not the allocator's view), so the bench can say what grows.

use crate::facts::{Body, Facts, Ident, LinkEntry};
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
                + idents.iter().map(|i| i.shares.capacity() * 4).sum::<usize>(),
        ),
        ("resident bodies", resident.len(), resident.iter().map(|b| b.bytes()).sum()),
        ("packed bodies", idents.iter().filter(|i| i.packed.is_some()).count(), facts.packed),
        ("identifier ids", facts.keys.len(), facts.keys.bytes()),
        (
            "links",
            facts.pairs.len(),
            facts.pairs.capacity() * 40
                + facts
                    .pairs
                    .values()
                    .map(|v| v.capacity() * size_of::<LinkEntry>() + v.iter().map(|e| text(&e.1)).sum::<usize>())
                    .sum::<usize>()
                + facts.adjacency.capacity() * 40
                + facts.adjacency.values().map(|s| s.capacity() * 5).sum::<usize>(),
        ),
        ("shares", shares.0, shares.1),
        (
            "incoming ties",
            facts.incoming.len(),
            facts.incoming.capacity() * 24 + facts.incoming.iter().map(|v| v.capacity() * 4).sum::<usize>(),
        ),
        (
            "last emitted",
            facts.last_emitted.len(),
            facts.last_emitted.capacity() * 64
                + facts.last_emitted.iter().map(|(k, v)| text(k) + text(&v.1)).sum::<usize>(),
        ),
        ("kept standings", facts.standings.footprint().0, facts.standings.footprint().1),
        (
            "person cache",
            facts.person_cache.iter().filter(|p| p.is_some()).count(),
            facts.person_cache.capacity() * 8
                + facts
                    .person_cache
                    .iter()
                    .flatten()
                    .filter(|p| {
                        facts
                            .person_cache
                            .get(p.anchor as usize)
                            .is_some_and(|a| a.as_ref().is_some_and(|a| std::rc::Rc::ptr_eq(a, p)))
                    })
                    .map(|p| 72 + text(&p.person_id) + p.members.capacity() * 4)
                    .sum::<usize>(),
        ),
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
