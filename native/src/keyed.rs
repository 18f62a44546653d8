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
        assert_eq!(murmur2(b"abc") as i32, 479470107);
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

// -- record batches ----------------------------------------------------------------------

/// CRC-32C (Castagnoli), as Kafka's record batches carry it.
fn crc32c(data: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        let mut table = [0u32; 256];
        for (i, slot) in table.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 { 0x82f6_3b78 ^ (c >> 1) } else { c >> 1 };
            }
            *slot = c;
        }
        table
    });
    !data.iter().fold(!0u32, |c, &b| table[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8))
}

fn zigzag(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes_field(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        None => zigzag(out, -1),
        Some(d) => {
            zigzag(out, d.len() as i64);
            out.extend_from_slice(d);
        }
    }
}

/// One record of a batch: key, value (None: a tombstone) and headers.
pub struct Record<'a> {
    pub key: &'a [u8],
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(Vec<u8>, Vec<u8>)],
}

/// Bytes of a record batch header before the records (magic 2).
const HEADER: usize = 61;

/// Kafka record batches (message format v2, no compression, create time ``timestamp``) of
/// records, at most ``max_bytes`` each unless one record alone is larger.
pub struct BatchWriter {
    timestamp: i64,
    max_bytes: usize,
    records: Vec<u8>,
    count: i32,
    record: Vec<u8>,
    pub done: Vec<(Vec<u8>, i32)>,
}

impl BatchWriter {
    pub fn new(timestamp: i64, max_bytes: usize) -> Self {
        BatchWriter { timestamp, max_bytes, records: Vec::new(), count: 0, record: Vec::new(), done: Vec::new() }
    }

    pub fn push(&mut self, record: &Record<'_>) {
        let body = &mut self.record;
        body.clear();
        body.push(0); // attributes
        zigzag(body, 0); // timestamp delta
        zigzag(body, i64::from(self.count)); // offset delta
        bytes_field(body, Some(record.key));
        bytes_field(body, record.value);
        zigzag(body, record.headers.len() as i64);
        for (name, value) in record.headers {
            bytes_field(body, Some(name));
            bytes_field(body, Some(value));
        }
        let size = body.len() + 5;
        if self.count > 0 && HEADER + self.records.len() + size > self.max_bytes {
            self.finish();
            // the offset delta restarts in the next batch
            return self.push(record);
        }
        zigzag(&mut self.records, self.record.len() as i64);
        self.records.extend_from_slice(&self.record);
        self.count += 1;
    }

    pub fn finish(&mut self) {
        if self.count == 0 {
            return;
        }
        let mut out = Vec::with_capacity(HEADER + self.records.len());
        out.extend_from_slice(&0i64.to_be_bytes()); // base offset
        out.extend_from_slice(&((HEADER - 12 + self.records.len()) as i32).to_be_bytes());
        out.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
        out.push(2); // magic
        out.extend_from_slice(&[0; 4]); // crc, below
        out.extend_from_slice(&0i16.to_be_bytes()); // attributes
        out.extend_from_slice(&(self.count - 1).to_be_bytes()); // last offset delta
        out.extend_from_slice(&self.timestamp.to_be_bytes()); // base timestamp
        out.extend_from_slice(&self.timestamp.to_be_bytes()); // max timestamp
        out.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
        out.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
        out.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
        out.extend_from_slice(&self.count.to_be_bytes());
        out.extend_from_slice(&self.records);
        let crc = crc32c(&out[21..]);
        out[17..21].copy_from_slice(&crc.to_be_bytes());
        self.done.push((out, self.count));
        self.records.clear();
        self.count = 0;
    }
}

/// A record's headers: (key, value) pairs.
pub type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// A table topic line whose value is null: its `at` and `offset`, the tombstone's headers.
pub fn tombstone_headers(line: &[u8]) -> Result<Headers, String> {
    #[derive(serde::Deserialize)]
    struct Marks {
        at: String,
        offset: i64,
    }
    let marks: Marks = serde_json::from_slice(line).map_err(|e| format!("{e} in {}", preview(line)))?;
    Ok(vec![(b"at".to_vec(), marks.at.into_bytes()), (b"offset".to_vec(), marks.offset.to_string().into_bytes())])
}

#[cfg(test)]
mod batch_tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
    }

    #[test]
    fn batches_split_at_the_limit_and_keep_a_large_record_whole() {
        let mut writer = BatchWriter::new(1_700_000_000_000, 200);
        let value = [b'x'; 50];
        for _ in 0..10 {
            writer.push(&Record { key: b"k", value: Some(&value), headers: &[] });
        }
        let big = [b'y'; 500];
        writer.push(&Record { key: b"k", value: Some(&big), headers: &[] });
        writer.finish();
        let counts: Vec<i32> = writer.done.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts.iter().sum::<i32>(), 11);
        assert_eq!(*counts.last().unwrap(), 1);
        assert!(writer.done[..writer.done.len() - 1].iter().all(|(b, _)| b.len() <= 200));
    }
}
