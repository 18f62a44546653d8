//! The JSON layer of the contract, written once for both decoders: a line is one I-JSON
//! text (RFC 7493), the interoperable subset of JSON.
//!
//! - JSON as RFC 8259 writes it: no `NaN`, `Infinity`, comments or trailing commas;
//! - no object with a repeated key (RFC 8259 leaves the meaning open: one parser keeps the
//!   first value, another the last, and `"amount":"1.00","amount":"1000.00"` must not
//!   mean either);
//! - no lone surrogate in a `\u` escape (it is no character);
//! - every number a double can hold: no overflow (a 5,000-digit number, `1e400`), no
//!   underflow of a non-zero number to zero (`1e-400`), no exponent beyond four digits
//!   (`0e99999999999999999999`, which Python's `Decimal` cannot even hold);
//! - at most `MAX_DEPTH` levels of nesting.
//!
//! The reference decoder asks this checker before its JSON parser (jiter, whose limits and
//! leniencies differ), and the fast decoder asks it of the free-form `properties`, the only
//! part of an event its own typed parse does not already hold to these rules. So whatever
//! the fast path accepts, the models accept too.

use std::collections::HashSet;

/// Objects and arrays nested deeper than this make a line too large.
pub const MAX_DEPTH: usize = 64;

/// Why a text is not I-JSON, in the order of the contract's rejection reasons.
#[derive(Debug, PartialEq, Eq)]
pub enum Fault {
    /// nested deeper than `MAX_DEPTH` (reason `too_large`)
    TooDeep,
    /// not JSON, a repeated key or a lone surrogate (reason `malformed_json`)
    Malformed(String),
    /// a number outside a double's range (reason `invalid_value`)
    OutOfRange(String),
}

impl Fault {
    /// The rejection reason code and the sentence for people.
    pub fn verdict(&self) -> (&'static str, String) {
        match self {
            Fault::TooDeep => ("too_large", format!("nested deeper than {MAX_DEPTH} levels")),
            Fault::Malformed(why) => ("malformed_json", format!("not JSON: {why}")),
            Fault::OutOfRange(number) => {
                ("invalid_value", format!("number {number} is out of range (numbers must fit a double)"))
            }
        }
    }
}

/// A container being read; `fresh` until its first member (or its end) is read.
enum Open {
    Array {
        fresh: bool,
    },
    /// with the keys seen so far
    Object {
        keys: HashSet<String>,
        fresh: bool,
    },
}

struct Checker<'a> {
    text: &'a [u8],
    at: usize,
    stack: Vec<Open>,
    /// containers around the text checked
    outer: usize,
    too_deep: bool,
    out_of_range: Option<String>,
}

/// Whether `text` is one I-JSON text; the most fundamental fault when it is not (a line
/// too deep before its first syntax error is too deep; a syntax error outranks a number
/// out of range).
pub fn check(text: &str) -> Result<(), Fault> {
    check_nested(text, 0)
}

/// `check` of a value found `outer` containers deep in a line (the nesting limit counts
/// from the line's top).
pub fn check_nested(text: &str, outer: usize) -> Result<(), Fault> {
    let mut checker =
        Checker { text: text.as_bytes(), at: 0, stack: Vec::new(), outer, too_deep: false, out_of_range: None };
    let parsed = checker.document();
    if checker.too_deep {
        return Err(Fault::TooDeep);
    }
    parsed.map_err(Fault::Malformed)?;
    checker.out_of_range.map_or(Ok(()), |number| Err(Fault::OutOfRange(number)))
}

/// Whether a JSON number (valid syntax) is one a double holds: finite, not a non-zero
/// value rounded to zero, its exponent (if any) within four digits' worth.
fn fits_a_double(literal: &str) -> bool {
    let (mantissa, exponent) = literal.split_once(['e', 'E']).unwrap_or((literal, "0"));
    let exponent = exponent.trim_start_matches(['+', '-']).trim_start_matches('0');
    if exponent.len() > 4 {
        return false;
    }
    let Ok(value) = literal.parse::<f64>() else { return false };
    let zero = mantissa.bytes().all(|b| matches!(b, b'0' | b'.' | b'-'));
    value.is_finite() && (value != 0.0 || zero)
}

impl Checker<'_> {
    fn fail<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("{what} at byte {}", self.at))
    }

    fn skip_space(&mut self) {
        while matches!(self.text.get(self.at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    /// The whole text: one value between optional white space. Iterative, so depth costs
    /// no native stack: a value that opens a container only pushes it, and this loop reads
    /// its members.
    fn document(&mut self) -> Result<(), String> {
        self.skip_space();
        self.value()?;
        loop {
            self.skip_space();
            let Some(open) = self.stack.last_mut() else { break };
            let (is_object, fresh) = match open {
                Open::Array { fresh } => (false, std::mem::replace(fresh, false)),
                Open::Object { fresh, .. } => (true, std::mem::replace(fresh, false)),
            };
            let close = if is_object { b'}' } else { b']' };
            match self.peek() {
                Some(b) if b == close => {
                    self.at += 1;
                    self.stack.pop();
                }
                Some(b',') if !fresh => {
                    self.at += 1;
                    self.skip_space();
                    self.member()?;
                }
                None => return self.fail("unexpected end"),
                Some(_) if fresh => self.member()?,
                Some(_) => return self.fail(if is_object { "expected , or }" } else { "expected , or ]" }),
            }
        }
        if self.at < self.text.len() {
            return self.fail("trailing characters");
        }
        Ok(())
    }

    /// The next member of the open container: a value, after its key in an object.
    fn member(&mut self) -> Result<(), String> {
        if matches!(self.stack.last(), Some(Open::Object { .. })) {
            self.member_key()?;
        }
        self.value()
    }

    /// A value; a container is only opened (pushed on the stack).
    fn value(&mut self) -> Result<(), String> {
        match self.peek() {
            Some(b'{') => {
                self.open(Open::Object { keys: HashSet::new(), fresh: true });
                Ok(())
            }
            Some(b'[') => {
                self.open(Open::Array { fresh: true });
                Ok(())
            }
            Some(b'"') => self.string().map(drop),
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(b't') => self.literal(b"true"),
            Some(b'f') => self.literal(b"false"),
            Some(b'n') => self.literal(b"null"),
            None => self.fail("unexpected end"),
            Some(_) => self.fail("expected value"),
        }
    }

    fn open(&mut self, container: Open) {
        self.at += 1;
        self.stack.push(container);
        if self.outer + self.stack.len() > MAX_DEPTH {
            self.too_deep = true;
        }
    }

    /// `"key":` of an object member, the key new in its object.
    fn member_key(&mut self) -> Result<(), String> {
        if self.peek() != Some(b'"') {
            return self.fail("expected a key");
        }
        let start = self.at;
        let key = self.string()?;
        let Some(Open::Object { keys, .. }) = self.stack.last_mut() else { unreachable!("a member is in an object") };
        if !keys.insert(key) {
            let shown = String::from_utf8_lossy(&self.text[start..self.at]).into_owned();
            self.at = start;
            return self.fail(&format!("key {shown} is repeated (an object's keys must be unique)"));
        }
        self.skip_space();
        if self.peek() != Some(b':') {
            return self.fail("expected :");
        }
        self.at += 1;
        self.skip_space();
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), String> {
        if self.text[self.at..].starts_with(word) {
            self.at += word.len();
            Ok(())
        } else {
            self.fail("expected value")
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return self.fail("invalid number"),
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return self.fail("invalid number");
            }
        }
        let literal = std::str::from_utf8(&self.text[start..self.at]).expect("ASCII");
        if !fits_a_double(literal) && self.out_of_range.is_none() {
            let shown: String = literal.chars().take(24).collect();
            let ellipsis = if literal.len() > 24 { "..." } else { "" };
            self.out_of_range = Some(format!("{shown}{ellipsis}"));
        }
        Ok(())
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits =
            self.text.get(self.at..self.at + 4).ok_or_else(|| format!("unexpected end at byte {}", self.at))?;
        let text = std::str::from_utf8(digits).map_err(|_| format!("invalid escape at byte {}", self.at))?;
        let value = u32::from_str_radix(text, 16).map_err(|_| format!("invalid escape at byte {}", self.at))?;
        if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return self.fail("invalid escape");
        }
        self.at += 4;
        Ok(value)
    }

    /// A string (at its opening quote), decoded.
    fn string(&mut self) -> Result<String, String> {
        self.at += 1;
        let mut out = String::new();
        loop {
            let run = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            out.push_str(std::str::from_utf8(&self.text[run..self.at]).expect("the text is UTF-8"));
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escaped = self.peek();
                    self.at += 1;
                    match escaped {
                        Some(b'"') => out.push('"'),
                        Some(b'\\') => out.push('\\'),
                        Some(b'/') => out.push('/'),
                        Some(b'b') => out.push('\u{8}'),
                        Some(b'f') => out.push('\u{c}'),
                        Some(b'n') => out.push('\n'),
                        Some(b'r') => out.push('\r'),
                        Some(b't') => out.push('\t'),
                        Some(b'u') => out.push(self.escaped_char()?),
                        _ => {
                            self.at -= 1;
                            return self.fail("invalid escape");
                        }
                    }
                }
                Some(_) => return self.fail("control character in a string"),
                None => return self.fail("unterminated string"),
            }
        }
    }

    /// The character of a `\u` escape (after the `u`), a surrogate pair taken whole.
    fn escaped_char(&mut self) -> Result<char, String> {
        let start = self.at - 2;
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if !self.text[self.at..].starts_with(b"\\u") {
                    self.at = start;
                    return self.fail("lone surrogate in a \\u escape");
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    self.at = start;
                    return self.fail("lone surrogate in a \\u escape");
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => {
                self.at = start;
                return self.fail("lone surrogate in a \\u escape");
            }
            code => code,
        };
        Ok(char::from_u32(code).expect("a scalar value"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(text: &str) -> Option<&'static str> {
        check(text).err().map(|fault| fault.verdict().0)
    }

    #[test]
    fn json_texts_pass() {
        for text in [
            "{}",
            "[]",
            " {\"a\": [1, -0.5e-3, true, false, null, \"x\\u00e9\\ud83d\\ude00\"], \"b\": {}} ",
            "1.7976931348623157e308",
            "5e-324",
            "-0.0e-0009",
            "0e9999",
            "\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"",
            "{\"a\":1,\"b\":{\"a\":2}}",
        ] {
            assert_eq!(check(text), Ok(()), "{text}");
        }
    }

    #[test]
    fn what_json_does_not_allow_is_malformed() {
        for text in [
            "",
            "{",
            "{\"a\"}",
            "{\"a\":}",
            "[1,]",
            "{\"a\":1,}",
            "[1 2]",
            "NaN",
            "[Infinity]",
            "-",
            "01",
            "1.",
            ".5",
            "1e",
            "tru",
            "\"a",
            "\"\\x\"",
            "\"\\u12\"",
            "\"a\tb\"",
            "{} {}",
            "{'a':1}",
            "[1]]",
            "{\"a\":1]",
        ] {
            assert_eq!(verdict(text), Some("malformed_json"), "{text:?}");
        }
    }

    #[test]
    fn repeated_keys_are_malformed_even_written_differently() {
        assert_eq!(verdict("{\"amount\":\"1.00\",\"amount\":\"1000.00\"}"), Some("malformed_json"));
        assert_eq!(verdict("{\"a\":1,\"\\u0061\":2}"), Some("malformed_json"));
        assert_eq!(verdict("[{\"a\":1},{\"a\":2}]"), None);
    }

    #[test]
    fn lone_surrogates_are_malformed() {
        for text in ["\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "{\"\\ud800\":1}"] {
            assert_eq!(verdict(text), Some("malformed_json"), "{text}");
        }
    }

    #[test]
    fn numbers_beyond_a_double_are_out_of_range() {
        let long = "9".repeat(5000);
        for text in [
            "1e400",
            "-1e400",
            "1.7976931348623159e308",
            long.as_str(),
            "[1e99999999999999999999]",
            "1e-400",
            "2e-324",
            "0e10000",
            "1e-99999999999999999999",
            "-0e-99999999999999999999",
        ] {
            assert_eq!(verdict(text), Some("invalid_value"), "{text}");
        }
        assert_eq!(verdict("[1e400, ]"), Some("malformed_json"), "a syntax error outranks it");
    }

    #[test]
    fn nesting_is_limited() {
        let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert_eq!(verdict(&deep(MAX_DEPTH)), None);
        assert_eq!(verdict(&deep(MAX_DEPTH + 1)), Some("too_large"));
        assert_eq!(verdict(&deep(100_000)), Some("too_large"));
        assert_eq!(verdict(&format!("{}x", "[".repeat(MAX_DEPTH + 1))), Some("too_large"));
    }
}
