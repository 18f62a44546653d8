//! Python values to and from the core's: rows as Python objects, and events in the flat
//! form the reference decoder hands over.

use crate::decode::{self, Event, Kind};
use crate::json::J;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};
use std::borrow::Cow;

pub(crate) fn to_py<'py>(py: Python<'py>, value: &J) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        J::Null => py.None().into_bound(py),
        J::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        J::Int(i) => i.into_pyobject(py)?.into_any(),
        J::Float(f) => PyFloat::new(py, *f).into_any(),
        J::Str(s) => PyString::new(py, s).into_any(),
        J::List(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        J::Obj(fields) => {
            let dict = PyDict::new(py);
            for (k, v) in fields {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

pub(crate) fn to_py_list<'py>(py: Python<'py>, rows: &[J]) -> PyResult<Bound<'py, PyList>> {
    let list = PyList::empty(py);
    for row in rows {
        list.append(to_py(py, row)?)?;
    }
    Ok(list)
}

type Permission = (String, String, String, bool, Option<i64>);
/// The core's flat form of a valid event, as the reference decoder hands it over.
type FlatEvent = (
    String,
    String,
    i64,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<String>,
    Option<String>,
    u128,
    Option<String>,
    Option<Permission>,
);

fn kind_of(name: &str) -> PyResult<Kind> {
    Kind::named(name).ok_or_else(|| PyValueError::new_err(format!("unknown event type {name:?}")))
}

pub(crate) fn from_flat(flat: FlatEvent) -> PyResult<Event<'static>> {
    let (id, kind, ts, actor, link, content_owner, reply_to, recipients, parent, units, referral, permission) = flat;
    let mut event = Event::new(id, kind_of(&kind)?, ts, actor);
    event.link = link;
    event.content_owner = content_owner;
    event.reply_to = reply_to;
    event.recipients = recipients;
    event.parent = parent.map(Cow::Owned);
    event.units = units;
    event.referral = referral.map(Cow::Owned);
    if let Some((grantee, purpose, channel, granted, expires)) = permission {
        event.grantee = Cow::Owned(grantee);
        (event.purpose, event.channel, event.granted, event.expires) = (purpose, channel, granted, expires);
    }
    Ok(event)
}

fn to_flat(event: Event<'_>) -> FlatEvent {
    let kind = event.kind;
    let permission = (kind == Kind::Permission)
        .then(|| (event.grantee.to_string(), event.purpose, event.channel, event.granted, event.expires));
    (
        event.id.to_string(),
        kind.name().to_string(),
        event.ts,
        event.actor,
        event.link,
        event.content_owner,
        event.reply_to,
        event.recipients,
        event.parent.map(Cow::into_owned),
        event.units,
        event.referral.map(Cow::into_owned),
        permission,
    )
}

/// The fast decoder alone: the flat event, or None when the reference must decide.
#[pyfunction]
pub(crate) fn fast_decode(line: &[u8], currency: &str) -> Option<FlatEvent> {
    decode::decode(line, currency).map(to_flat)
}
