//! Share-keyed facts: each share (who made it, when, the share it re-shares, how many it
//! reached), the re-shares under it and the purchases it referred, and the credit a share
//! earns the chain of sharers above it.
//!
//! A share id is named by its own event, by re-shares (as their parent) and by referred
//! purchases, in any order: each is interned once, as a `Sid` (`names::Names`), and
//! everything else holds the number. At 10M events there are 2.7M shares, a share is
//! kept in 24 bytes besides its id's text.

use crate::decode::{Event, DAY_US};
use crate::facts::{Facts, Id, R_RECIPIENT, R_SHARE, S_REACH, S_REVENUE};
use crate::fold::Roles;
use crate::names::Names;
use crate::sum::Sum;
use foldhash::{HashMap, HashMapExt};
use std::mem::size_of;

pub type Sid = u32;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Share {
    pub actor: Id,
    pub ts: i64,
    pub parent: Option<Sid>,
    pub recipients: u64,
}

/// A share as kept: `actor` is `NONE` until its own event is applied, `parent` when it
/// has none. Its re-shares are a list through the shares themselves: `first_child`, then
/// each child's `next_sibling` (`NONE` ends it). Packed to 4-byte alignment: 28 bytes.
/// (An `Option<Share>` took 40 bytes; a map of each share's re-shares took 46 MiB at 10M
/// events of the bench's input, measured by dropping it.)
#[derive(Debug, Clone, Copy)]
#[repr(C, packed(4))]
struct Kept {
    ts: i64,
    actor: Id,
    parent: Sid,
    recipients: u32,
    first_child: Sid,
    next_sibling: Sid,
}

const NONE: u32 = u32::MAX;
const UNMADE: Kept = Kept { ts: 0, actor: NONE, parent: NONE, recipients: 0, first_child: NONE, next_sibling: NONE };

#[derive(Debug, Default)]
pub struct Shares {
    keys: Names,
    /// per share id, the share once its own event was applied
    made: Vec<Kept>,
    /// the purchases a share referred, as (ts, units), sorted
    pub referrals: HashMap<Sid, Vec<(i64, u128)>>,
}

impl Shares {
    /// The number of a share id, if any event named it.
    pub fn get(&self, key: &str) -> Option<Sid> {
        self.keys.get(key)
    }

    /// The number of a share id, given it if no event named it before.
    pub fn intern(&mut self, key: &str) -> Sid {
        let (sid, new) = self.keys.intern(key);
        assert!(sid != NONE, "fewer than 2**32 - 1 share ids");
        if new {
            self.made.push(UNMADE);
        }
        sid
    }

    pub fn key(&self, sid: Sid) -> &str {
        self.keys.name(sid)
    }

    /// The share, once its own event was applied.
    pub fn made(&self, sid: Sid) -> Option<Share> {
        let kept = self.made[sid as usize];
        (kept.actor != NONE).then_some(Share {
            actor: kept.actor,
            ts: kept.ts,
            parent: (kept.parent != NONE).then_some(kept.parent),
            recipients: kept.recipients.into(),
        })
    }

    /// The shares whose events were applied (or records loaded), in the order first named.
    pub fn made_ids(&self) -> impl Iterator<Item = Sid> + '_ {
        (0..self.made.len() as Sid).filter(|&sid| self.made[sid as usize].actor != NONE)
    }

    /// A share whose event was applied: every share an identifier made or a parent lists.
    pub fn of(&self, sid: Sid) -> Share {
        self.made(sid).expect("a share whose event was applied")
    }

    /// Record a share (its event applied, or its record loaded). Its recipients are the
    /// event's (at most 1,000, the contract says).
    pub fn make(&mut self, sid: Sid, share: Share) {
        let recipients = u32::try_from(share.recipients).expect("at most 1,000 recipients");
        let parent = share.parent.unwrap_or(NONE);
        let kept = &mut self.made[sid as usize];
        (kept.ts, kept.actor, kept.parent, kept.recipients) = (share.ts, share.actor, parent, recipients);
    }

    /// Add a re-share under its parent (once: when its own event is applied, or its
    /// record loaded and `reindex`ed). Its place among its siblings is its arrival's:
    /// nothing reads re-shares in an order (`social_sums` reaches each at its depth).
    fn adopt(&mut self, parent: Sid, child: Sid) {
        self.made[child as usize].next_sibling = self.made[parent as usize].first_child;
        self.made[parent as usize].first_child = child;
    }

    /// The re-shares of a share whose events were applied or loaded.
    pub fn children(&self, parent: Sid) -> impl Iterator<Item = Sid> + '_ {
        let listed = |sid: Sid| (sid != NONE).then_some(sid);
        std::iter::successors(listed(self.made[parent as usize].first_child), move |&child| {
            listed(self.made[child as usize].next_sibling)
        })
    }

    /// Whether any re-share of this share was applied.
    pub fn has_children(&self, parent: Sid) -> bool {
        self.made[parent as usize].first_child != NONE
    }

    /// Rebuild the re-shares from the shares (after a load).
    pub fn reindex(&mut self) {
        for kept in &mut self.made {
            (kept.first_child, kept.next_sibling) = (NONE, NONE);
        }
        for sid in 0..self.made.len() as Sid {
            if let Some(parent) = self.made(sid).and_then(|share| share.parent) {
                self.adopt(parent, sid);
            }
        }
    }

    /// (shares made, approximate bytes): see `footprint`.
    pub fn footprint(&self) -> (usize, usize) {
        let made = self.made.iter().filter(|s| s.actor != NONE).count();
        let bytes = self.keys.bytes()
            + self.made.capacity() * size_of::<Kept>()
            + self.referrals.capacity() * 40
            + self.referrals.values().map(|v| v.capacity() * 32).sum::<usize>();
        (made, bytes)
    }
}

impl Facts {
    pub(crate) fn share(&mut self, event: &Event<'_>, roles: &Roles<'_>, day: i64) {
        let actor = roles.actor;
        if let Some(owner) = roles.content_owner {
            self.receive(actor, owner, day, R_SHARE);
        }
        let mut recipients: Vec<Id> = Vec::with_capacity(roles.recipients.len());
        for &id in roles.recipients {
            if id != actor && !recipients.contains(&id) {
                recipients.push(id);
            }
        }
        for &recipient in &recipients {
            self.receive(actor, recipient, day, R_RECIPIENT);
        }
        let sid = self.shares.intern(&event.id);
        let n = recipients.len() as u64;
        let parent = event.parent.as_deref().map(|p| self.shares.intern(p));
        self.shares.make(sid, Share { actor, ts: event.ts, parent, recipients: n });
        self.dirty.shares.push(sid);
        self.idents[actor as usize].shares.push(sid);
        if let Some(parent) = parent {
            self.shares.adopt(parent, sid);
        }
        if self.shares.has_children(sid) || self.shares.referrals.contains_key(&sid) {
            // Re-shares or referred purchases arrived before this share: the credit they
            // owe up the chain was left pending. Recompute the chain above them in full.
            self.recompute_chain(sid);
        } else {
            self.credit_chain(sid, S_REACH, u128::from(n), u128::from(n + 1), day);
        }
    }

    /// A purchase a share referred: credited up the chain once the share is known.
    pub(crate) fn refer(&mut self, key: &str, ts: i64, units: u128, day: i64) {
        let sid = self.shares.intern(key);
        let list = self.shares.referrals.entry(sid).or_default();
        let at = list.partition_point(|x| *x <= (ts, units));
        list.insert(at, (ts, units));
        self.dirty.referrals.insert(sid);
        if self.shares.made(sid).is_some() {
            self.credit_chain(sid, S_REVENUE, units, units, day);
        }
    }

    /// (actor, depth) of each identifier credited for a share: its own sharer at depth 0,
    /// then the nearest ancestor share each other identifier authored.
    pub fn ancestors(&self, share: Sid) -> Vec<(Id, usize)> {
        let mut credited: Vec<(Id, usize)> = Vec::new();
        let mut visited: Vec<Sid> = Vec::new();
        let mut current = Some(share);
        let mut depth = 0;
        while let Some(sid) = current {
            if depth > self.cascade_depth {
                break;
            }
            let Some(share) = self.shares.made(sid) else { break };
            if visited.contains(&sid) {
                break;
            }
            visited.push(sid);
            if !credited.iter().any(|(a, _)| *a == share.actor) {
                credited.push((share.actor, depth));
            }
            current = share.parent;
            depth += 1;
        }
        credited
    }

    fn credit_chain(&mut self, share: Sid, which: usize, own: u128, above: u128, day: i64) {
        for (actor, depth) in self.ancestors(share) {
            let amount = if depth == 0 { own } else { above };
            if amount != 0 {
                let credit = amount * u128::from(self.credit[depth]);
                self.will_change(actor);
                let body = Self::resident(&mut self.idents[actor as usize]);
                self.scales.add_weighted(&mut body.sums[which], credit, day);
                self.changed(actor);
            }
            self.touched.insert(actor);
        }
    }

    fn recompute_chain(&mut self, share: Sid) {
        for (actor, _) in self.ancestors(share) {
            let (reach, revenue) = self.social_sums(actor, i64::MAX);
            self.will_change(actor);
            let body = self.body_mut(actor);
            body.sums[S_REACH] = reach;
            body.sums[S_REVENUE] = revenue;
            self.changed(actor);
            self.touched.insert(actor);
        }
    }

    /// (reach, revenue) integer sums earned by one identifier's shares, as of cutoff.
    pub fn social_sums(&self, id: Id, cutoff: i64) -> (Sum, Sum) {
        let shares = &self.shares;
        let mut depth_of: HashMap<Sid, usize> = HashMap::new();
        let mut order: Vec<(Sid, usize)> = Vec::new();
        let mut frontier: Vec<Sid> =
            self.idents[id as usize].shares.iter().copied().filter(|&sid| shares.of(sid).ts <= cutoff).collect();
        for &sid in &frontier {
            if depth_of.insert(sid, 0).is_none() {
                order.push((sid, 0));
            }
        }
        let mut depth = 0;
        while !frontier.is_empty() && depth < self.cascade_depth {
            depth += 1;
            let mut following = Vec::new();
            for sid in &frontier {
                for child in shares.children(*sid) {
                    if !depth_of.contains_key(&child) && shares.of(child).ts <= cutoff {
                        depth_of.insert(child, depth);
                        order.push((child, depth));
                        following.push(child);
                    }
                }
            }
            frontier = following;
        }
        let mut reach = Sum::Zero;
        let mut revenue = Sum::Zero;
        for (sid, k) in order {
            let share = shares.of(sid);
            let credit = self.credit[k];
            let n = share.recipients + u64::from(k > 0);
            let weighted = u128::from(n) * u128::from(credit);
            self.scales.add_weighted(&mut reach, weighted, share.ts.div_euclid(DAY_US));
            for &(ts, units) in shares.referrals.get(&sid).into_iter().flatten() {
                if ts <= cutoff {
                    let day = ts.div_euclid(DAY_US);
                    self.scales.add_weighted(&mut revenue, units * u128::from(credit), day);
                }
            }
        }
        (reach, revenue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn share(actor: Id, parent: Option<Sid>) -> Share {
        Share { actor, ts: 1, parent, recipients: 2 }
    }

    fn sorted(shares: &Shares, parent: Sid) -> Vec<Sid> {
        let mut children: Vec<Sid> = shares.children(parent).collect();
        children.sort_unstable();
        children
    }

    #[test]
    fn re_shares_are_listed_under_their_parent_whatever_came_first() {
        let mut shares = Shares::default();
        let (root, a, b, c) = (shares.intern("root"), shares.intern("a"), shares.intern("b"), shares.intern("c"));
        // two re-shares arrive before the share they re-share
        for child in [b, a] {
            shares.make(child, share(7, Some(root)));
            shares.adopt(root, child);
        }
        assert!(shares.has_children(root) && shares.made(root).is_none());
        shares.make(root, share(5, None));
        shares.make(c, share(8, Some(a)));
        shares.adopt(a, c);
        assert_eq!(shares.made(root).map(|s| s.actor), Some(5)); // making it kept its re-shares
        assert_eq!((sorted(&shares, root), sorted(&shares, a)), (vec![a, b], vec![c]));
        assert!(!shares.has_children(b) && shares.children(c).next().is_none());
        // loaded from records, the same lists
        let before: Vec<Vec<Sid>> = (0..4).map(|sid| sorted(&shares, sid)).collect();
        shares.reindex();
        assert_eq!((0..4).map(|sid| sorted(&shares, sid)).collect::<Vec<_>>(), before);
        assert_eq!(size_of::<Kept>(), 28);
    }
}
