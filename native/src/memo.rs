//! Persons memoised by member: which identifiers are one person now, found once and kept
//! until a link or an anchor changes, or until the memo holds more than its limit.
//!
//! Score changes find the person of every identifier a batch touched. A person is found
//! by walking the links from one member and hashing the anchor's key; memoised, the next
//! batch touching any member finds it at once.
//! The memo used to be dropped with a member's body when the body left the decoded cache,
//! and on the bench's 10M directory 80,708 of 1,300,047 bodies were decoded after six
//! batches, so most persons were walked again by every batch touching them. It is
//! bounded by its own limit instead, the oldest memoised first to go (`trim`).

use crate::facts::{Id, Person};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

/// Persons memoised at most, after a batch's score changes: as many as the standings
/// kept (`standing::KEPT`), whose members a valuation checks against the person's. A
/// memoised person takes its `Rc` (16 bytes and a 40-byte `Person`) and 4 bytes a member:
/// 80 with the six members a touched identifier's person had on average at 9M events.
pub const MEMOISED: usize = 1 << 18;

#[derive(Debug, Default)]
pub struct PersonMemo {
    /// identifier id -> its person, for every member of a memoised person
    of: Vec<Option<Rc<Person>>>,
    /// the persons memoised, oldest first; those forgotten since linger until passed
    order: VecDeque<Weak<Person>>,
    /// how many persons are memoised
    count: usize,
}

impl PersonMemo {
    pub fn get(&self, id: Id) -> Option<&Rc<Person>> {
        self.of.get(id as usize).and_then(Option::as_ref)
    }

    /// Memoise a person for each of its members (none memoised: each was forgotten with
    /// its person, or never memoised). `ids` is how many identifiers there are.
    pub fn insert(&mut self, person: &Rc<Person>, ids: usize) {
        for &member in &person.members {
            let at = member as usize;
            if at >= self.of.len() {
                self.of.resize(ids.max(at + 1), None);
            }
            self.of[at] = Some(person.clone());
        }
        self.order.push_back(Rc::downgrade(person));
        self.count += 1;
    }

    /// Forget the person of `id`, for all its members.
    pub fn forget(&mut self, id: Id) {
        if let Some(person) = self.of.get_mut(id as usize).and_then(Option::take) {
            for &member in &person.members {
                if let Some(slot) = self.of.get_mut(member as usize) {
                    *slot = None;
                }
            }
            self.count -= 1;
        }
    }

    /// Forget every person.
    pub fn clear(&mut self) {
        *self = PersonMemo::default();
    }

    /// Forget the persons memoised first until at most `limit` are; and pass over those
    /// forgotten otherwise once they are as many as those memoised, so that the order
    /// stays within twice the limit.
    pub fn trim(&mut self, limit: usize) {
        while self.count > limit {
            let Some(oldest) = self.order.pop_front() else { break };
            // a person forgotten may still be held by a caller: only the memoised one goes
            let Some(person) = oldest.upgrade() else { continue };
            if self.get(person.members[0]).is_some_and(|memoised| Rc::ptr_eq(memoised, &person)) {
                self.forget(person.members[0]);
            }
        }
        if self.order.len() > 2 * self.count.max(limit / 2) {
            self.order.retain(|person| person.strong_count() > 0);
        }
    }

    /// (persons memoised, about how many bytes they hold): see `footprint`.
    pub fn footprint(&self) -> (usize, usize) {
        let persons: usize = (self.order.iter())
            .filter_map(Weak::upgrade)
            .map(|p| size_of::<Person>() + 16 + p.members.capacity() * 4)
            .sum();
        (self.count, persons + self.of.capacity() * 8 + self.order.capacity() * 8)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(members: &[Id]) -> Rc<Person> {
        Rc::new(Person { key: [0; 10], anchor: members[0], members: members.to_vec() })
    }

    #[test]
    fn a_person_takes_what_the_limit_was_set_for() {
        assert_eq!(size_of::<Person>(), 40);
    }

    #[test]
    fn a_person_is_memoised_for_all_its_members_and_forgotten_for_all() {
        let mut memo = PersonMemo::default();
        memo.insert(&person(&[3, 1, 7]), 8);
        assert!([1, 3, 7].iter().all(|&id| memo.get(id).is_some_and(|p| p.anchor == 3)));
        assert!(memo.get(2).is_none() && memo.get(100).is_none());
        memo.forget(7);
        assert!([1, 3, 7].iter().all(|&id| memo.get(id).is_none()));
        memo.forget(1); // nothing memoised: nothing to forget
        assert_eq!(memo.footprint().0, 0);
    }

    #[test]
    fn trimming_forgets_the_oldest_persons_still_memoised() {
        let mut memo = PersonMemo::default();
        for first in 0..10 {
            memo.insert(&person(&[2 * first, 2 * first + 1]), 20);
        }
        memo.forget(1); // the first, forgotten already: passed over
        memo.trim(4);
        let kept: Vec<Id> = (0..20).filter(|&id| memo.get(id).is_some()).collect();
        assert_eq!(kept, (12..20).collect::<Vec<_>>());
        assert_eq!(memo.footprint().0, 4);
    }

    #[test]
    fn the_order_stays_within_twice_what_is_memoised() {
        let mut memo = PersonMemo::default();
        for _ in 0..1000 {
            memo.insert(&person(&[5, 6]), 8); // memoised and forgotten again, as links change
            memo.forget(5);
            memo.trim(8);
        }
        assert!(memo.order.len() <= 2 * 4 + 1, "{} entries", memo.order.len());
        assert_eq!(memo.footprint().0, 0);
    }
}
