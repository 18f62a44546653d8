//! Rows as plain data: the bindings turn them into Python objects, so the core itself
//! never touches the interpreter.

/// A JSON-like value with object keys kept in the order written.
#[derive(Debug, Clone, PartialEq)]
pub enum J {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    List(Vec<J>),
    Obj(Vec<(&'static str, J)>),
}

impl J {
    pub fn obj(pairs: Vec<(&'static str, J)>) -> J {
        J::Obj(pairs)
    }
    pub fn s(text: &str) -> J {
        J::Str(text.to_string())
    }
}

const DAY_US: i64 = 86_400_000_000;

/// (year, month, day) of days since 1970-01-01 (proleptic Gregorian).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// RFC 3339 UTC text of microseconds since the epoch (fraction only when non-zero).
pub fn format_micros(ts: i64) -> String {
    let day = ts.div_euclid(DAY_US);
    let rest = ts.rem_euclid(DAY_US);
    let (y, m, d) = civil_from_days(day);
    let secs = rest / 1_000_000;
    let micros = rest % 1_000_000;
    let (hh, mm, ss) = (secs / 3600, secs / 60 % 60, secs % 60);
    if micros != 0 {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{micros:06}Z")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }
}

/// Round to 4 decimals, half to even on the exact binary value (as Python's `round`).
///
/// `x * 1e4` is off from the exact product by at most one ulp, so rounding it decides the
/// same integer unless the product lies within a few ulps of a half; only then is the
/// exact (and slow) decimal formatting consulted. Dividing that integer by 1e4 is
/// correctly rounded, which is what Python's `round` returns.
pub fn round4(value: f64) -> f64 {
    let scaled = value * 1e4;
    if !scaled.is_finite() || scaled.abs() >= 4_503_599_627_370_496.0 {
        return value; // |x| >= 2**52 / 1e4: already at (or beyond) 4-decimal resolution
    }
    let fraction = scaled - scaled.floor();
    if (fraction - 0.5).abs() > 8.0 * f64::EPSILON * scaled.abs().max(1.0) {
        return scaled.round_ties_even() / 1e4;
    }
    format!("{value:.4}").parse().unwrap_or(value)
}

/// The canonical JSON text the digest hashes: keys sorted at every level, numbers written
/// as Python's `orjson` writes them, so a digest can be recomputed from exported rows.
pub fn write_canonical(out: &mut Vec<u8>, value: &J) {
    match value {
        J::Null => out.extend_from_slice(b"null"),
        J::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        J::Int(i) => write_int(out, *i),
        J::Float(f) => write_float(out, *f),
        J::Str(s) => write_str(out, s),
        J::List(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(out, item);
            }
            out.push(b']');
        }
        J::Obj(fields) => {
            out.push(b'{');
            let mut write_field = |i: usize, (k, v): &(&str, J)| {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_canonical(out, v);
            };
            if fields.is_sorted_by_key(|field| field.0) {
                fields.iter().enumerate().for_each(|(i, field)| write_field(i, field));
            } else if fields.len() <= 16 {
                // rows and their parts are small objects: sort their indexes on the stack
                let mut order = [0u8; 16];
                let order = &mut order[..fields.len()];
                order.iter_mut().enumerate().for_each(|(i, slot)| *slot = i as u8);
                order.sort_unstable_by_key(|&i| fields[usize::from(i)].0);
                order.iter().enumerate().for_each(|(i, &at)| write_field(i, &fields[usize::from(at)]));
            } else {
                let mut order: Vec<&(&str, J)> = fields.iter().collect();
                order.sort_unstable_by_key(|field| field.0);
                order.into_iter().enumerate().for_each(|(i, field)| write_field(i, field));
            }
            out.push(b'}');
        }
    }
}

/// A float as the reference serialiser writes it: the shortest digits that read back,
/// positional for exponents -5..=15 (with ".0" when whole), else `de+x` / `de-x`.
pub fn write_float(out: &mut Vec<u8>, value: f64) {
    if !value.is_finite() {
        out.extend_from_slice(b"null");
        return;
    }
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value).as_bytes();
    match text.iter().position(|&b| b == b'e') {
        Some(at) if text.get(at + 1) != Some(&b'-') => {
            out.extend_from_slice(&text[..=at]);
            out.push(b'+');
            out.extend_from_slice(&text[at + 1..]);
        }
        _ => out.extend_from_slice(text),
    }
}

pub fn write_int(out: &mut Vec<u8>, value: i128) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Whether any byte needs escaping in JSON: a control character, `"` or `\`. Eight bytes
/// at a time (the usual "has a zero / has a byte less than" word tricks), since nearly
/// every string written has none.
fn needs_escape(bytes: &[u8]) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let special = |word: u64| {
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
        let quote = (word ^ (ONES * b'"' as u64)).wrapping_sub(ONES) & !(word ^ (ONES * b'"' as u64)) & HIGH;
        let slash = (word ^ (ONES * b'\\' as u64)).wrapping_sub(ONES) & !(word ^ (ONES * b'\\' as u64)) & HIGH;
        control | quote | slash != 0
    };
    let mut chunks = bytes.chunks_exact(8);
    let mut found = false;
    for chunk in &mut chunks {
        found |= special(u64::from_le_bytes(chunk.try_into().expect("eight bytes")));
    }
    found || chunks.remainder().iter().any(|&b| b < 0x20 || b == b'"' || b == b'\\')
}

pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if !needs_escape(bytes) {
        out.reserve(bytes.len() + 2);
        out.push(b'"');
        out.extend_from_slice(bytes);
        out.push(b'"');
        return;
    }
    out.push(b'"');
    let mut plain = 0; // start of the run not yet copied
    for (i, &b) in bytes.iter().enumerate() {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[plain..i]);
        plain = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            0x08 => out.extend_from_slice(b"\\b"),
            0x0c => out.extend_from_slice(b"\\f"),
            _ => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
        }
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_objects_have_their_keys_sorted_at_every_level() {
        let small =
            J::obj(vec![("b", J::Int(1)), ("a", J::List(vec![J::obj(vec![("d", J::Null), ("c", J::Bool(true))])]))]);
        let mut out = Vec::new();
        write_canonical(&mut out, &small);
        assert_eq!(out, br#"{"a":[{"c":true,"d":null}],"b":1}"#);
        const KEYS: [&str; 20] =
            ["t", "s", "r", "q", "p", "o", "n", "m", "l", "k", "j", "i", "h", "g", "f", "e", "d", "c", "b", "a"];
        let large = J::obj(KEYS.iter().map(|k| (*k, J::Float(0.5))).collect());
        let mut out = Vec::new();
        write_canonical(&mut out, &large);
        let mut sorted = KEYS;
        sorted.sort();
        let expected: Vec<String> = sorted.iter().map(|k| format!("\"{k}\":0.5")).collect();
        assert_eq!(String::from_utf8(out).unwrap(), format!("{{{}}}", expected.join(",")));
    }

    #[test]
    fn escapes_exactly_the_bytes_json_needs() {
        for text in [
            "",
            "plain",
            "exactly8",
            "sixteen chars ok",
            "a\"b",
            "x\\",
            "tab\there",
            "\u{1}",
            "long text then a quote\"",
            "caf\u{e9} \u{7f}",
        ] {
            let mut out = Vec::new();
            write_str(&mut out, text);
            assert_eq!(String::from_utf8(out).unwrap(), serde_json::to_string(text).unwrap(), "{text:?}");
        }
        for b in 0u8..=255 {
            let text = [b'a', b'b', b'c', b'd', b'e', b'f', b'g', b'h', b'i', b];
            let expected = b < 0x20 || b == b'"' || b == b'\\';
            assert_eq!(needs_escape(&text), expected, "byte {b}");
            assert_eq!(needs_escape(&text[2..]), expected, "byte {b} in a word");
        }
    }
}
