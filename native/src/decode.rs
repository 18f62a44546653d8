//! The fast path of validation: a strict subset of the v1 contract, decoded without the
//! interpreter.
//!
//! The pydantic models stay the single definition of what is valid. This decoder accepts
//! only lines it can prove valid, normalised exactly as the models normalise them; for
//! anything else (invalid input, but also unusual valid forms such as exponent amounts,
//! duplicate keys or non-ASCII identifiers) it answers `None`, and the engine asks the
//! models, which either reject the line with a reason or hand back its flat form.
//! Strings are borrowed from the line unless they contain escapes.

use crate::scalars::{amount, timestamp};
use serde::de::{Deserializer, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::marker::PhantomData;

pub const DAY_US: i64 = 86_400_000_000;
const MAX_LINE_BYTES: usize = 1 << 20;
const MAX_RECIPIENTS: usize = 1000;
const MAX_TEXT: usize = 10_000;
const MAX_VALUE: usize = 256;

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
    const NAMES: [&'static str; 6] = ["identify", "unlink", "share", "comment", "purchase", "permission"];
    pub const ALL: [Kind; 6] =
        [Kind::Identify, Kind::Unlink, Kind::Share, Kind::Comment, Kind::Purchase, Kind::Permission];

    /// The type an event's `type` names, if any.
    pub fn named(name: &str) -> Option<Kind> {
        Self::NAMES.iter().position(|&known| known == name).map(|at| Self::ALL[at])
    }

    /// The type's name in an event's `type`.
    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// Index of the type's `done` counter in a day bucket.
    pub fn done(self) -> usize {
        self as usize
    }
}

/// A valid event; identifiers are normalised `kind:value` keys.
#[derive(Debug, Clone)]
pub struct Event<'a> {
    pub id: Cow<'a, str>,
    pub kind: Kind,
    pub ts: i64,
    pub actor: String,
    pub link: Option<String>,
    pub content_owner: Option<String>,
    pub reply_to: Option<String>,
    pub recipients: Vec<String>,
    pub parent: Option<Cow<'a, str>>,
    pub units: u128,
    pub referral: Option<Cow<'a, str>>,
    pub grantee: Cow<'a, str>,
    pub purpose: String,
    pub channel: String,
    pub granted: bool,
    pub expires: Option<i64>,
}

impl Event<'_> {
    pub fn new(id: String, kind: Kind, ts: i64, actor: String) -> Event<'static> {
        Event {
            id: Cow::Owned(id),
            kind,
            ts,
            actor,
            link: None,
            content_owner: None,
            reply_to: None,
            recipients: Vec::new(),
            parent: None,
            units: 0,
            referral: None,
            grantee: Cow::Borrowed(""),
            purpose: String::new(),
            channel: "*".to_string(),
            granted: false,
            expires: None,
        }
    }

    /// Every identifier key the event names, in any role, actor first.
    pub fn identifiers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.actor.as_str())
            .chain(self.link.as_deref())
            .chain(self.content_owner.as_deref())
            .chain(self.reply_to.as_deref())
            .chain(self.recipients.iter().map(String::as_str))
    }
}

/// A string, borrowed from the line when it has no escapes.
#[derive(Debug)]
struct S<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for S<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for V<'a> {
            type Value = S<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<S<'a>, E> {
                Ok(S(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<S<'a>, E> {
                Ok(S(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V(PhantomData))
    }
}

/// A field that tells absent (`None`) from null (`Some(None)`).
#[derive(Debug)]
struct F<T>(Option<Option<T>>);

impl<T> Default for F<T> {
    fn default() -> Self {
        F(None)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for F<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Option::<T>::deserialize(d).map(|v| F(Some(v)))
    }
}

impl<T> F<T> {
    fn absent(&self) -> bool {
        self.0.is_none()
    }
    /// The value when given and not null.
    fn get(&self) -> Option<&T> {
        self.0.as_ref().and_then(Option::as_ref)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireIdent<'a> {
    #[serde(borrow)]
    kind: S<'a>,
    #[serde(borrow)]
    value: S<'a>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire<'a> {
    #[serde(borrow)]
    event_id: S<'a>,
    #[serde(borrow, rename = "type")]
    kind: S<'a>,
    #[serde(borrow)]
    occurred_at: S<'a>,
    #[serde(borrow)]
    actor: WireIdent<'a>,
    #[serde(default, borrow)]
    source: F<S<'a>>,
    #[serde(default, borrow)]
    schema_version: F<&'a RawValue>,
    #[serde(default, borrow)]
    properties: F<&'a RawValue>,
    #[serde(default, borrow)]
    link: F<WireIdent<'a>>,
    #[serde(default, borrow)]
    content_id: F<S<'a>>,
    #[serde(default, borrow)]
    content_owner: F<WireIdent<'a>>,
    #[serde(default, borrow)]
    parent_share_id: F<S<'a>>,
    #[serde(default, borrow)]
    recipients: F<Vec<WireIdent<'a>>>,
    #[serde(default, borrow)]
    reply_to: F<WireIdent<'a>>,
    #[serde(default, borrow)]
    text: F<S<'a>>,
    #[serde(default, borrow)]
    order_id: F<S<'a>>,
    #[serde(default, borrow)]
    amount: F<&'a RawValue>,
    #[serde(default, borrow)]
    currency: F<S<'a>>,
    #[serde(default, borrow)]
    referral_share_id: F<S<'a>>,
    #[serde(default, borrow)]
    grantee: F<S<'a>>,
    #[serde(default, borrow)]
    purpose: F<S<'a>>,
    #[serde(default, borrow)]
    channel: F<S<'a>>,
    #[serde(default)]
    granted: F<bool>,
    #[serde(default, borrow)]
    expires_at: F<S<'a>>,
}

/// The event, when the line is certainly valid and in a form this decoder knows.
pub fn decode<'a>(line: &'a [u8], currency: &str) -> Option<Event<'a>> {
    if line.len() > MAX_LINE_BYTES {
        return None;
    }
    let w: Wire<'a> = serde_json::from_slice(line).ok()?;
    let kind = Kind::named(w.kind.0.as_ref())?;
    // Fields of other types must be absent: pydantic forbids them even when null.
    let allowed = |mask: [bool; 17]| -> bool {
        let present = [
            !w.link.absent(),
            !w.content_id.absent(),
            !w.content_owner.absent(),
            !w.parent_share_id.absent(),
            !w.recipients.absent(),
            !w.reply_to.absent(),
            !w.text.absent(),
            !w.order_id.absent(),
            !w.amount.absent(),
            !w.currency.absent(),
            !w.referral_share_id.absent(),
            !w.grantee.absent(),
            !w.purpose.absent(),
            !w.channel.absent(),
            !w.granted.absent(),
            !w.expires_at.absent(),
            false,
        ];
        present.iter().zip(mask).all(|(p, ok)| !p || ok)
    };
    let t = true;
    let f = false;
    let fits = match kind {
        Kind::Identify | Kind::Unlink => allowed([t, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f, f]),
        Kind::Share => allowed([f, t, t, t, t, f, f, f, f, f, f, f, f, f, f, f, f]),
        Kind::Comment => allowed([f, t, t, f, f, t, t, f, f, f, f, f, f, f, f, f, f]),
        Kind::Purchase => allowed([f, f, f, f, f, f, f, t, t, t, t, f, f, f, f, f, f]),
        Kind::Permission => allowed([f, f, f, f, f, f, f, f, f, f, f, t, t, t, t, t, f]),
    };
    if !fits {
        return None;
    }
    let mut event = Event {
        id: text(w.event_id, 1, 128)?,
        ..Event::new(String::new(), kind, timestamp(&w.occurred_at.0)?, identifier(&w.actor)?)
    };
    if let Some(source) = w.source.get() {
        token(source)?;
    }
    match &w.schema_version.0 {
        None => {}
        Some(Some(raw)) if raw.get() == "1" => {}
        Some(_) => return None,
    }
    if let Some(properties) = w.properties.get() {
        // the typed parse holds every other field to the JSON rules of the contract
        if !properties.get().starts_with('{') || crate::ijson::check_nested(properties.get(), 1).is_err() {
            return None;
        }
    }
    match kind {
        Kind::Identify | Kind::Unlink => {
            let link = identifier(w.link.get()?)?;
            if link == event.actor {
                return None;
            }
            event.link = Some(link);
        }
        Kind::Share => {
            check_text(w.content_id.get()?, 1, 128)?;
            event.content_owner = optional(&w.content_owner, identifier)?;
            event.parent = match w.parent_share_id.get() {
                None => None,
                Some(p) => Some(text_ref(p, 1, 128)?),
            };
            if event.parent.as_deref() == Some(event.id.as_ref()) {
                return None;
            }
            if let Some(list) = w.recipients.get() {
                if list.len() > MAX_RECIPIENTS {
                    return None;
                }
                event.recipients = list.iter().map(identifier).collect::<Option<_>>()?;
            }
        }
        Kind::Comment => {
            check_text(w.content_id.get()?, 1, 128)?;
            event.content_owner = optional(&w.content_owner, identifier)?;
            event.reply_to = optional(&w.reply_to, identifier)?;
            if let Some(t) = w.text.get() {
                check_text(t, 0, MAX_TEXT)?;
            }
        }
        Kind::Purchase => {
            check_text(w.order_id.get()?, 1, 128)?;
            event.units = amount(w.amount.get()?.get())?;
            let code = w.currency.get()?.0.as_ref();
            if code.len() != 3 || !code.bytes().all(|b| b.is_ascii_alphabetic()) || !code.eq_ignore_ascii_case(currency)
            {
                return None;
            }
            event.referral = match w.referral_share_id.get() {
                None => None,
                Some(r) => Some(text_ref(r, 1, 128)?),
            };
        }
        Kind::Permission => {
            event.grantee = text_ref(w.grantee.get()?, 1, 128)?;
            event.purpose = token(w.purpose.get()?)?;
            match &w.channel.0 {
                None => {}
                Some(Some(channel)) => event.channel = token(channel)?,
                Some(None) => return None,
            }
            event.granted = *w.granted.get()?;
            event.expires = match w.expires_at.get() {
                None => None,
                Some(s) => Some(timestamp(&s.0)?),
            };
        }
    }
    Some(event)
}

fn optional(field: &F<WireIdent<'_>>, parse: impl Fn(&WireIdent<'_>) -> Option<String>) -> Option<Option<String>> {
    match field.get() {
        None => Some(None),
        Some(value) => parse(value).map(Some),
    }
}

fn check_text(s: &S<'_>, min: usize, max: usize) -> Option<()> {
    let n = s.0.chars().count();
    (min <= n && n <= max).then_some(())
}

fn text(s: S<'_>, min: usize, max: usize) -> Option<Cow<'_, str>> {
    check_text(&s, min, max)?;
    Some(s.0)
}

fn text_ref<'a>(s: &S<'a>, min: usize, max: usize) -> Option<Cow<'a, str>> {
    check_text(s, min, max)?;
    Some(s.0.clone())
}

/// Python's `str.strip()` on ASCII: these are its ASCII white-space characters.
fn strip(s: &str) -> &str {
    s.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c' | '\x1c'..='\x1f'))
}

fn token(value: &S<'_>) -> Option<String> {
    let raw = value.0.as_ref();
    if !raw.is_ascii() {
        return None;
    }
    let t = strip(raw).to_ascii_lowercase();
    let b = t.as_bytes();
    let ok = t == "*"
        || (!b.is_empty()
            && b.len() <= 64
            && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
            && b[1..]
                .iter()
                .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.' | b':' | b'-')));
    ok.then_some(t)
}

fn identifier(ident: &WireIdent<'_>) -> Option<String> {
    let kind = ident.kind.0.as_ref();
    let raw = ident.value.0.as_ref();
    let kb = kind.as_bytes();
    if kb.is_empty()
        || kb.len() > 32
        || !kb[0].is_ascii_lowercase()
        || !kb[1..].iter().all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'_')
        || !raw.is_ascii()
    {
        return None;
    }
    let mut key = String::with_capacity(kind.len() + 1 + raw.len());
    key.push_str(kind);
    key.push(':');
    match kind {
        "phone" => key.extend(raw.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))),
        "email" => key.extend(strip(raw).chars().map(|c| c.to_ascii_lowercase())),
        _ => key.push_str(strip(raw)),
    }
    let value = &key.as_bytes()[kind.len() + 1..];
    if value.is_empty() || value.len() > MAX_VALUE || value.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return None;
    }
    Some(key)
}

#[cfg(test)]
mod tests {
    use super::Kind;

    #[test]
    fn every_type_is_named_by_its_name() {
        for kind in Kind::ALL {
            assert_eq!(Kind::named(kind.name()), Some(kind));
        }
        // a day bucket counts what was done in the six first counters, in this order
        let done: Vec<usize> = Kind::ALL.iter().map(|kind| kind.done()).collect();
        assert_eq!(done, (0..6).collect::<Vec<_>>());
        assert_eq!(Kind::named("Purchase"), None);
    }
}
