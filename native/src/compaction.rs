//! Compacting a table topic's stored parts: the byte work of
//! `crm2stream/engine/compaction.py`, which says what compaction keeps and why. A topic
//! of millions of records is read twice (each key's latest offset, then every part
//! rewritten without what a later record supersedes), so the records are found by
//! scanning bytes, not by parsing JSON in the interpreter.

use foldhash::{HashMap, HashMapExt};

/// The first bytes of a compacted part: its records carry their own offsets.
pub const COMPACTED: &[u8] = b"#compacted\n";
const KEY: &[u8] = b",\"key\":";
const OFFSET: &[u8] = b",\"offset\":";

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|at| at + from)
}

/// A record's key (as its JSON string) and offset. Records are canonical JSON
/// (`{"at":...,"key":...,"offset":N,"value":...}`) and a JSON string holds no unescaped
/// `"`, so the first `,"offset":` after the key is the field.
pub fn key_and_offset(record: &[u8]) -> Result<(&[u8], i64), String> {
    let bad = || format!("not a table-topic record: {:?}", String::from_utf8_lossy(&record[..record.len().min(80)]));
    let key_at = find(record, KEY, 0).ok_or_else(bad)? + KEY.len();
    let offset_at = find(record, OFFSET, key_at).ok_or_else(bad)?;
    let digits_at = offset_at + OFFSET.len();
    let digits = record[digits_at..].iter().take_while(|b| b.is_ascii_digit()).count();
    let text = std::str::from_utf8(&record[digits_at..digits_at + digits]).map_err(|_| bad())?;
    Ok((&record[key_at..offset_at], text.parse().map_err(|_| bad())?))
}

/// (offset, record) of a stored part, compacted or numbered from `first`.
pub fn records(first: i64, part: &[u8]) -> Result<Vec<(i64, &[u8])>, String> {
    if let Some(body) = part.strip_prefix(COMPACTED) {
        body.split(|&b| b == b'\n').map(|record| Ok((key_and_offset(record)?.1, record))).collect()
    } else {
        Ok(part.split(|&b| b == b'\n').enumerate().map(|(i, record)| (first + i as i64, record)).collect())
    }
}

/// A key as `Latest` holds it: the first 128 bits of its SHA-256. The keys of a
/// relationships topic are millions of pairs of person ids, and held as they are (a boxed
/// key of about 45 bytes each) they were the peak of a bulk ingest's end: at 10 million
/// events, compaction took the process from about 2,800 to 3,780 MiB. Two keys of one
/// topic share a digest with a chance of about n²/2^129 (1 in 10^24 for 20 million keys),
/// and the hash is cryptographic, so no chosen identifier can make one record pass for
/// another.
type KeyDigest = [u8; 16];

fn digest(key: &[u8]) -> KeyDigest {
    use sha2::Digest as _;
    let full = sha2::Sha256::digest(key);
    let mut out = [0; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Each key's latest offset over a topic's parts, folded in offset order.
#[derive(Default)]
pub struct Latest {
    newest: HashMap<KeyDigest, i64>,
}

impl Latest {
    pub fn new() -> Self {
        Latest { newest: HashMap::new() }
    }

    pub fn add(&mut self, first: i64, part: &[u8]) -> Result<(), String> {
        for (_, record) in records(first, part)? {
            let (key, offset) = key_and_offset(record)?;
            self.newest.insert(digest(key), offset);
        }
        Ok(())
    }

    #[allow(clippy::len_without_is_empty)] // a count for the caller, not a collection
    pub fn len(&self) -> usize {
        self.newest.len()
    }

    /// A part without the records a later one supersedes: None when none is (keep the
    /// part as it is), `Some(None)` when none is left, else the compacted part.
    pub fn compact(&self, first: i64, part: &[u8]) -> Result<Option<Option<Vec<u8>>>, String> {
        let mut kept: Vec<&[u8]> = Vec::new();
        let mut dropped = false;
        for (_, record) in records(first, part)? {
            let (key, offset) = key_and_offset(record)?;
            if self.newest.get(&digest(key)).copied().unwrap_or(offset) > offset {
                dropped = true;
            } else {
                kept.push(record);
            }
        }
        if !dropped {
            return Ok(None);
        }
        if kept.is_empty() {
            return Ok(Some(None));
        }
        let mut out = Vec::with_capacity(COMPACTED.len() + kept.iter().map(|r| r.len() + 1).sum::<usize>());
        out.extend_from_slice(COMPACTED);
        for (i, record) in kept.iter().enumerate() {
            if i > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(record);
        }
        Ok(Some(Some(out)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, offset: i64) -> String {
        format!("{{\"at\":\"2026-11-01T00:00:00Z\",\"key\":\"{key}\",\"offset\":{offset},\"value\":null}}")
    }

    #[test]
    fn finds_the_key_and_the_offset_even_when_the_key_looks_like_a_field() {
        let r = record(",\\\"offset\\\":7", 42);
        assert_eq!(key_and_offset(r.as_bytes()).unwrap(), (&b"\",\\\"offset\\\":7\""[..], 42));
        assert!(key_and_offset(b"{\"at\":1}").is_err());
    }

    #[test]
    fn keeps_the_latest_record_of_each_key() {
        let first = [record("a", 0), record("b", 1)].join("\n");
        let second = [record("a", 2)].join("\n");
        let mut latest = Latest::new();
        latest.add(0, first.as_bytes()).unwrap();
        latest.add(2, second.as_bytes()).unwrap();
        assert_eq!(latest.len(), 2);
        let compacted = latest.compact(0, first.as_bytes()).unwrap().unwrap().unwrap();
        assert_eq!(compacted, [COMPACTED, record("b", 1).as_bytes()].concat());
        assert_eq!(latest.compact(2, second.as_bytes()).unwrap(), None);
        // a compacted part is read by its records' own offsets
        assert_eq!(latest.compact(0, &compacted).unwrap(), None);
        let gone = [record("a", 0)].join("\n");
        assert_eq!(latest.compact(0, gone.as_bytes()).unwrap(), Some(None));
    }
}
