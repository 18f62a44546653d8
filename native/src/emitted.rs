//! The last score emitted per person: what a batch's score changes are measured from.
//!
//! Kept for every person ever emitted (635,000 at 9M events of the bench's input), so kept
//! small: a person id is `p_` and 20 hex digits (`identity::person_id`), held as its 10
//! bytes, and a tier as its number among the tier names seen. As `String`s, key and tier,
//! the map took 74 MiB at 9M events, measured by dropping it (`footprint`).

use crate::identity::PERSON_DIGEST;
use foldhash::{HashMap, HashSet};
use std::mem::size_of;

/// A person id's digest: the 10 bytes its 20 hex digits spell.
pub type PersonKey = [u8; PERSON_DIGEST];

/// The digest of a person id, or None for text that is not one.
pub fn person_key(person_id: &str) -> Option<PersonKey> {
    let hex = person_id.strip_prefix("p_").filter(|hex| hex.len() == 2 * PERSON_DIGEST)?.as_bytes();
    let digit = |c: u8| char::from(c).to_digit(16).filter(|_| !c.is_ascii_uppercase());
    let mut key = [0u8; PERSON_DIGEST];
    for (byte, pair) in key.iter_mut().zip(hex.chunks_exact(2)) {
        *byte = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(key)
}

#[derive(Debug, Default)]
pub struct LastEmitted {
    scores: HashMap<PersonKey, (f64, u16)>,
    tiers: Vec<Box<str>>,
}

impl LastEmitted {
    /// The composite and tier last emitted for a person.
    pub fn get(&self, key: &PersonKey) -> Option<(f64, &str)> {
        let (composite, tier) = self.scores.get(key)?;
        Some((*composite, &self.tiers[usize::from(*tier)]))
    }

    /// Record what was emitted for a person.
    pub fn insert(&mut self, key: PersonKey, composite: f64, tier: &str) {
        let number = match self.tiers.iter().position(|t| **t == *tier) {
            Some(number) => number,
            None => {
                self.tiers.push(tier.into());
                self.tiers.len() - 1
            }
        };
        let number = u16::try_from(number).expect("fewer than 65,536 tier names");
        self.scores.insert(key, (composite, number));
    }

    pub fn len(&self) -> usize {
        self.scores.len()
    }

    /// The persons with a score emitted, as the digests of their ids.
    pub fn keys(&self) -> Vec<PersonKey> {
        self.scores.keys().copied().collect()
    }

    /// About how many bytes it holds (see `footprint`): a table slot per capacity.
    pub fn bytes(&self) -> usize {
        self.scores.capacity() * (size_of::<(PersonKey, (f64, u16))>() + 1)
    }
}

/// The persons whose last emitted score changed since the last checkpoint.
pub type Emitted = HashSet<PersonKey>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{person_digest, person_id, person_id_of};

    #[test]
    fn a_person_id_reads_back_from_its_digest_and_nothing_else_is_one() {
        let id = person_id_of("member_card:me001", b"k");
        assert_eq!(person_key(&id).map(|key| person_id(&key)), Some(id.clone()));
        for bad in [
            "",
            "p_",
            "q_0123456789abcdef0123",
            "p_0123456789abcdef012",
            "p_0123456789ABCDEF0123",
            "p_0123456789abcdef012g",
        ] {
            assert_eq!(person_key(bad), None, "{bad}");
        }
    }

    #[test]
    fn scores_keep_their_tier_by_name() {
        let mut emitted = LastEmitted::default();
        let (a, b) = (person_digest("qq:a", b"k"), person_digest("qq:b", b"k"));
        emitted.insert(a, 1.5, "gold");
        emitted.insert(b, 0.25, "silver");
        emitted.insert(a, 2.0, "silver");
        assert_eq!(emitted.get(&a), Some((2.0, "silver")));
        assert_eq!(emitted.get(&b), Some((0.25, "silver")));
        assert_eq!(emitted.get(&person_key("p_0000000000000000000f").unwrap()), None);
        let mut ids: Vec<String> = emitted.keys().iter().map(person_id).collect();
        ids.sort();
        let mut want = vec![person_id(&a), person_id(&b)];
        want.sort();
        assert_eq!((ids, emitted.len()), (want, 2));
    }
}
