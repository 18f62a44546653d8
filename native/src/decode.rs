//! The fast path of validation: a strict subset of the v1 contract, decoded without the
//! interpreter.
//!
//! The pydantic models stay the single definition of what is valid. This decoder accepts
//! only lines it can prove valid, normalised exactly as the models normalise them; for
//! anything else (invalid input, but also unusual valid forms such as exponent amounts or
//! non-ASCII identifiers) it answers `None`, and the engine asks the models, which
//! either reject the line with a reason or hand back its canonical form.

use crate::json::days_from_civil;
use serde_json::{Map, Value};

pub const DAY_US: i64 = 86_400_000_000;
const MAX_LINE_BYTES: usize = 1 << 20;
const MAX_RECIPIENTS: usize = 1000;
const MAX_TEXT: usize = 10_000;
const MAX_VALUE: usize = 256;
const AMOUNT_DECIMALS: usize = 8;
const MAX_UNITS: u128 = 100_000_000_000_000_000_000_000_000; // 10**18 in 10**-8 units
const YEAR_10000_US: i64 = 253_402_300_800_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Identify,
    Unlink,
    Share,
    Comment,
    Purchase,
    Permission,
}

impl Kind {
    /// Index of the type's `done` counter in a day bucket.
    pub fn done(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Default)]
pub struct Event {
    pub id: String,
    pub kind: Option<Kind>,
    pub ts: i64,
    pub actor: String,
    pub link: Option<String>,
    pub content_owner: Option<String>,
    pub reply_to: Option<String>,
    pub recipients: Vec<String>,
    pub parent: Option<String>,
    pub units: u128,
    pub referral: Option<String>,
    pub grantee: String,
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub expires: Option<i64>,
}

impl Event {
    pub fn kind(&self) -> Kind {
        self.kind.expect("decoded events have a type")
    }

    /// Every identifier key the event names, in any role, actor first.
    pub fn identifiers(&self) -> Vec<&str> {
        let mut named = vec![self.actor.as_str()];
        named.extend(self.link.as_deref());
        named.extend(self.content_owner.as_deref());
        named.extend(self.reply_to.as_deref());
        named.extend(self.recipients.iter().map(String::as_str));
        named
    }
}

const COMMON: [&str; 7] = [
    "event_id",
    "type",
    "occurred_at",
    "actor",
    "source",
    "schema_version",
    "properties",
];

/// The event, when the line is certainly valid and in a form this decoder knows.
pub fn decode(line: &[u8], currency: &str) -> Option<Event> {
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    let value: Value = serde_json::from_slice(line).ok()?;
    let obj = value.as_object()?;
    let (kind, fields): (Kind, &[&str]) = match obj.get("type")?.as_str()? {
        "identify" => (Kind::Identify, &["link"]),
        "unlink" => (Kind::Unlink, &["link"]),
        "share" => (
            Kind::Share,
            &["content_id", "content_owner", "parent_share_id", "recipients"],
        ),
        "comment" => (
            Kind::Comment,
            &["content_id", "content_owner", "reply_to", "text"],
        ),
        "purchase" => (
            Kind::Purchase,
            &["order_id", "amount", "currency", "referral_share_id"],
        ),
        "permission" => (
            Kind::Permission,
            &["grantee", "purpose", "channel", "granted", "expires_at"],
        ),
        _ => return None,
    };
    if !obj
        .keys()
        .all(|k| COMMON.contains(&k.as_str()) || fields.contains(&k.as_str()))
    {
        return None;
    }
    let mut event = Event {
        id: text(obj.get("event_id")?, 1, 128)?,
        kind: Some(kind),
        ts: timestamp(obj.get("occurred_at")?.as_str()?)?,
        actor: identifier(obj.get("actor")?)?,
        channel: "*".to_string(),
        ..Event::default()
    };
    if let Some(source) = present(obj, "source") {
        token(source)?;
    }
    if let Some(version) = obj.get("schema_version") {
        if version.as_number()?.as_str() != "1" {
            return None;
        }
    }
    if let Some(properties) = present(obj, "properties") {
        properties.as_object()?;
    }
    match kind {
        Kind::Identify | Kind::Unlink => {
            let link = identifier(obj.get("link")?)?;
            if link == event.actor {
                return None;
            }
            event.link = Some(link);
        }
        Kind::Share => {
            text(obj.get("content_id")?, 1, 128)?;
            event.content_owner = optional(obj, "content_owner", identifier)?;
            event.parent = optional(obj, "parent_share_id", |v| text(v, 1, 128))?;
            if event.parent.as_deref() == Some(event.id.as_str()) {
                return None;
            }
            if let Some(list) = present(obj, "recipients") {
                let list = list.as_array()?;
                if list.len() > MAX_RECIPIENTS {
                    return None;
                }
                event.recipients = list.iter().map(identifier).collect::<Option<_>>()?;
            }
        }
        Kind::Comment => {
            text(obj.get("content_id")?, 1, 128)?;
            event.content_owner = optional(obj, "content_owner", identifier)?;
            event.reply_to = optional(obj, "reply_to", identifier)?;
            optional(obj, "text", |v| text(v, 0, MAX_TEXT))?;
        }
        Kind::Purchase => {
            text(obj.get("order_id")?, 1, 128)?;
            event.units = amount(obj.get("amount")?)?;
            let code = obj.get("currency")?.as_str()?;
            if code.len() != 3
                || !code.bytes().all(|b| b.is_ascii_alphabetic())
                || !code.eq_ignore_ascii_case(currency)
            {
                return None;
            }
            event.referral = optional(obj, "referral_share_id", |v| text(v, 1, 128))?;
        }
        Kind::Permission => {
            event.grantee = text(obj.get("grantee")?, 1, 128)?;
            event.purpose = token(obj.get("purpose")?)?;
            if let Some(channel) = obj.get("channel") {
                event.channel = token(channel)?;
            }
            event.granted = obj.get("granted")?.as_bool()?;
            event.expires = optional(obj, "expires_at", |v| timestamp(v.as_str()?))?;
        }
    }
    Some(event)
}

/// The field's value unless it is absent or null.
fn present<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

/// `Some(None)` when absent or null, `Some(Some(x))` when valid, `None` when not.
fn optional<T>(
    obj: &Map<String, Value>,
    name: &str,
    parse: impl Fn(&Value) -> Option<T>,
) -> Option<Option<T>> {
    match present(obj, name) {
        None => Some(None),
        Some(value) => parse(value).map(Some),
    }
}

fn text(value: &Value, min: usize, max: usize) -> Option<String> {
    let s = value.as_str()?;
    let n = s.chars().count();
    (min <= n && n <= max).then(|| s.to_string())
}

/// Python's `str.strip()` on ASCII: these are its ASCII white-space characters.
fn strip(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1f'))
}

fn token(value: &Value) -> Option<String> {
    let raw = value.as_str()?;
    if !raw.is_ascii() {
        return None;
    }
    let t = strip(raw).to_ascii_lowercase();
    let b = t.as_bytes();
    let ok = t == "*"
        || (!b.is_empty()
            && b.len() <= 64
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b[1..].iter().all(|&c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b':' | b'-')
            }));
    ok.then_some(t)
}

fn identifier(value: &Value) -> Option<String> {
    let obj = value.as_object()?;
    if obj.len() != 2 {
        return None;
    }
    let kind = obj.get("kind")?.as_str()?;
    let raw = obj.get("value")?.as_str()?;
    let kb = kind.as_bytes();
    if kb.is_empty()
        || kb.len() > 32
        || !kb[0].is_ascii_lowercase()
        || !kb[1..]
            .iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        || !raw.is_ascii()
    {
        return None;
    }
    let value: String = match kind {
        "phone" => raw.chars().filter(|c| !" -.()".contains(*c)).collect(),
        "email" => strip(raw).to_ascii_lowercase(),
        _ => strip(raw).to_string(),
    };
    if value.is_empty() || value.len() > MAX_VALUE || value.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return None;
    }
    Some(format!("{kind}:{value}"))
}

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
            if *sign == b'-' { -minutes } else { minutes }
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

/// A non-negative plain decimal (at most 8 significant decimals) in 10**-8 units.
fn amount(value: &Value) -> Option<u128> {
    let s = match value {
        Value::Number(n) => n.as_str(),
        Value::String(s) => s.as_str(),
        _ => return None,
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
