//! The contract's two scalar forms the fast decoder parses itself: RFC 3339 timestamps
//! and decimal amounts, each exactly as the models read them, or None.

use crate::json::days_from_civil;

const AMOUNT_DECIMALS: usize = 8;
const MAX_UNITS: u128 = 100_000_000_000_000_000_000_000_000; // 10**18 in 10**-8 units
const YEAR_10000_US: i64 = 253_402_300_800_000_000;

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(b.iter().fold(0i64, |n, &d| n * 10 + i64::from(d - b'0')))
}

/// RFC 3339 with an offset, to microseconds since the epoch (UTC); nanoseconds truncated.
pub fn timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (year, month, day) = (digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (digits(&b[11..13])?, digits(&b[14..16])?, digits(&b[17..19])?);
    let mut rest = &b[19..];
    let mut micros = 0i64;
    if rest.first() == Some(&b'.') {
        let n = rest[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 || n > 9 {
            return None;
        }
        let mut frac = rest[1..1 + n.min(6)].to_vec();
        frac.resize(6, b'0');
        micros = digits(&frac)?;
        rest = &rest[1 + n..];
    }
    let offset = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (h, m) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if h > 23 || m > 59 {
                return None;
            }
            let minutes = h * 60 + m;
            if *sign == b'-' {
                -minutes
            } else {
                minutes
            }
        }
        _ => return None,
    };
    if year == 0 || !(1..=12).contains(&month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let month_days = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][(month - 1) as usize]
        + i64::from(month == 2 && (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)));
    if day < 1 || day > month_days {
        return None;
    }
    let days = days_from_civil(year, month as u32, day as u32);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset * 60;
    let ts = seconds * 1_000_000 + micros;
    (0..YEAR_10000_US).contains(&ts).then_some(ts)
}

/// A non-negative plain decimal (at most 8 significant decimals) in 10**-8 units, from a
/// JSON number or a string without escapes.
pub fn amount(raw: &str) -> Option<u128> {
    let s = match raw.strip_prefix('"') {
        Some(inner) => inner.strip_suffix('"')?,
        None => raw,
    };
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || whole.len() > 19
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let (kept, dropped) = frac.split_at(frac.len().min(AMOUNT_DECIMALS));
    if dropped.bytes().any(|b| b != b'0') {
        return None;
    }
    let mut units: u128 = whole.parse().ok()?;
    for i in 0..AMOUNT_DECIMALS {
        units = units * 10 + kept.as_bytes().get(i).map_or(0, |d| u128::from(d - b'0'));
    }
    (units < MAX_UNITS).then_some(units)
}
