//! Kafka records of NDJSON output lines (reference: `crm2stream/kafka/outbox.py`).
//!
//! A table publication is a dozen records per event; reading each line's key and hashing
//! it for its partition in Python costs more than rendering the line. Here each line's
//! key (a top-level string field) is read with a byte scan and partitioned exactly as
//! Kafka's default partitioner does (murmur2 of the key bytes, made positive, modulo the
//! partition count), so records land where a Java producer would put them.

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The partition Kafka's default partitioner gives a key.
pub fn partition(key: &[u8], partitions: u32) -> u32 {
    (murmur2(key) & 0x7fff_ffff) % partitions
}

/// The span of the JSON string value of the top-level `field` of an object, quotes
/// included; None when the object has no such field. (Quotes inside strings are escaped,
/// so a scan that skips strings and counts brackets knows the top level.)
pub fn field_span(line: &[u8], field: &str) -> Option<(usize, usize)> {
    let string_end = |mut i: usize| {
        i += 1;
        while i < line.len() && line[i] != b'"' {
            i += if line[i] == b'\\' { 2 } else { 1 };
        }
        i.min(line.len())
    };
    let mut depth = 0usize;
    let mut i = 0usize;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let end = string_end(i);
                let mut after = end + 1;
                while line.get(after).is_some_and(u8::is_ascii_whitespace) {
                    after += 1;
                }
                if depth == 1 && line.get(after) == Some(&b':') && &line[i + 1..end] == field.as_bytes() {
                    let mut from = after + 1;
                    while line.get(from).is_some_and(u8::is_ascii_whitespace) {
                        from += 1;
                    }
                    return match line.get(from) {
                        Some(b'"') => Some((from, string_end(from) + 1)),
                        Some(_) => Some((from, from + 1)), // not a string: the caller says so
                        None => None,
                    };
                }
                i = end;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    None
}

/// The key of a line: the string value of its top-level `field`.
pub fn key_of(line: &[u8], field: &str) -> Result<String, String> {
    let (from, to) = field_span(line, field).ok_or_else(|| format!("no \"{field}\" in {}", preview(line)))?;
    serde_json::from_slice::<String>(&line[from..to.min(line.len())])
        .map_err(|e| format!("\"{field}\" is not a string ({e}) in {}", preview(line)))
}

fn preview(line: &[u8]) -> String {
    String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Kafka's UtilsTest.testMurmur2 cases
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32, -58897971);
        assert_eq!(murmur2(&[b'a', b'b', b'c']) as i32, 479470107);
    }

    #[test]
    fn keys_are_read_at_the_top_level_only() {
        let line = br#"{"at":"x\"key\":","nested":{"key":"inner"},"key":"p_1","value":{"key":2}}"#;
        assert_eq!(key_of(line, "key").unwrap(), "p_1");
        let escaped = br#"{"key":"a\"b\\","offset":3}"#;
        assert_eq!(key_of(escaped, "key").unwrap(), "a\"b\\");
        assert!(key_of(br#"{"offset":3}"#, "key").is_err());
        assert!(key_of(br#"{"key":3}"#, "key").is_err());
    }
}
