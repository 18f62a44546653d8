//! Short texts that live as long as the core (identifier keys, share ids, the event ids
//! identifiers were first seen in), kept back to back in one buffer rather than one
//! allocation apiece. There are millions of them (at 10M events, 1.3M identifiers and
//! 2.7M shares), and each allocation cost its header and rounding besides its text, and
//! pinned the allocator's pages among the short-lived ones around it.

use std::hash::BuildHasher;

/// Texts by number, in one buffer. A text replaced (`set`) leaves its old bytes behind:
/// only the event id an identifier was first seen in is ever replaced, when an earlier
/// event names it.
#[derive(Debug, Default)]
pub struct Texts {
    text: String,
    /// per text, where it starts (the high 40 bits) and its length in bytes (the low 24)
    spans: Vec<u64>,
}

const LENGTH_BITS: u32 = 24;

impl Texts {
    fn span(&mut self, text: &str) -> u64 {
        let start = self.text.len() as u64;
        assert!(text.len() < 1 << LENGTH_BITS, "a text of {} bytes", text.len());
        assert!(start < 1 << (64 - LENGTH_BITS), "more than a TiB of texts");
        self.text.push_str(text);
        start << LENGTH_BITS | text.len() as u64
    }

    /// Add a text; its number.
    pub fn push(&mut self, text: &str) -> u32 {
        let number = u32::try_from(self.spans.len()).expect("fewer than 2**32 texts");
        let span = self.span(text);
        self.spans.push(span);
        number
    }

    pub fn get(&self, number: u32) -> &str {
        let span = self.spans[number as usize];
        let start = (span >> LENGTH_BITS) as usize;
        &self.text[start..start + (span & ((1 << LENGTH_BITS) - 1)) as usize]
    }

    pub fn set(&mut self, number: u32, text: &str) {
        self.spans[number as usize] = self.span(text);
    }

    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// About how many bytes of memory they hold.
    pub fn bytes(&self) -> usize {
        self.text.capacity() + self.spans.capacity() * 8
    }
}

/// Texts numbered in the order first interned, found by their text.
#[derive(Debug, Default)]
pub struct Names {
    texts: Texts,
    index: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::RandomState,
}

impl Names {
    /// The number of a name, if interned.
    pub fn get(&self, name: &str) -> Option<u32> {
        let texts = &self.texts;
        self.index.find(self.hasher.hash_one(name), |&n| texts.get(n) == name).copied()
    }

    /// The number of a name, and whether it is new (interned now, with the next number).
    pub fn intern(&mut self, name: &str) -> (u32, bool) {
        if let Some(number) = self.get(name) {
            return (number, false);
        }
        let number = self.texts.push(name);
        let (texts, hasher) = (&self.texts, &self.hasher);
        self.index.insert_unique(hasher.hash_one(name), number, |&n| hasher.hash_one(texts.get(n)));
        (number, true)
    }

    pub fn name(&self, number: u32) -> &str {
        self.texts.get(number)
    }

    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// About how many bytes of memory they hold.
    pub fn bytes(&self) -> usize {
        self.texts.bytes() + self.index.capacity() * (std::mem::size_of::<u32>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_numbered_in_order_and_found_by_their_text() {
        let mut names = Names::default();
        assert_eq!(names.intern("qq:a"), (0, true));
        assert_eq!(names.intern("wechat:ü"), (1, true));
        assert_eq!(names.intern("qq:a"), (0, false));
        assert_eq!((names.get("wechat:ü"), names.get("qq:b")), (Some(1), None));
        assert_eq!((names.name(0), names.name(1), names.len()), ("qq:a", "wechat:ü", 2));
    }

    #[test]
    fn a_text_replaced_reads_back_new_and_the_others_stay() {
        let mut texts = Texts::default();
        let (a, b) = (texts.push("e-1"), texts.push(""));
        texts.set(a, "e-0-earlier");
        assert_eq!((texts.get(a), texts.get(b)), ("e-0-earlier", ""));
    }
}
