//! crm2stream's compiled core, bound to Python.
//!
//! The shell hands in raw lines and gets back what to persist and publish; the facts stay
//! in here between calls. Everything in this crate except this module is plain Rust with
//! no interpreter in sight; this module only converts.

mod allocator;
mod bindings;
mod changes;
mod checkpoint;
mod codec;
mod compaction;
mod decode;
mod facts;
mod footprint;
mod framing;
mod identity;
mod ijson;
mod json;
mod keyed;
mod labels;
mod names;
mod publication;
mod reading;
mod resident;
mod scales;
mod shares;
mod tables;
mod value;

use decode::{Event, Kind};
use facts::{Facts, Id, IdSet};
use foldhash::HashSet;
use json::J;
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyList, PyString, PyTuple};
use scales::{Config, Scales};
use std::borrow::Cow;
use std::collections::HashMap;

fn to_py<'py>(py: Python<'py>, value: &J) -> PyResult<Bound<'py, PyAny>> {
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

fn to_py_list<'py>(py: Python<'py>, rows: &[J]) -> PyResult<Bound<'py, PyList>> {
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
    Ok(match name {
        "identify" => Kind::Identify,
        "unlink" => Kind::Unlink,
        "share" => Kind::Share,
        "comment" => Kind::Comment,
        "purchase" => Kind::Purchase,
        "permission" => Kind::Permission,
        other => return Err(PyValueError::new_err(format!("unknown event type {other:?}"))),
    })
}

fn kind_name(kind: Kind) -> &'static str {
    ["identify", "unlink", "share", "comment", "purchase", "permission"][kind as usize]
}

fn from_flat(flat: FlatEvent) -> PyResult<Event<'static>> {
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
        kind_name(kind).to_string(),
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
fn fast_decode(line: &[u8], currency: &str) -> Option<FlatEvent> {
    decode::decode(line, currency).map(to_flat)
}

/// A `Core`'s state, handed to work that runs without the GIL (see `detached`).
struct Confined<T>(T);

// SAFETY: `Core` is `unsendable`, so PyO3 refuses any call on it from another thread, and
// the `&mut self` a method holds keeps this thread's other calls out (PyO3's borrow flag).
// `Python::detach` runs its closure on the calling thread. So the state (and the `Rc`s in
// it) is never touched by two threads, with or without the GIL.
unsafe impl<T> Send for Confined<T> {}

impl<T> Confined<T> {
    /// By value: a closure that calls it captures the whole `Confined` (a closure that
    /// destructured it would capture the field alone, which need not be `Send`).
    fn into_inner(self) -> T {
        self.0
    }
}

/// Run `work` on a `Core`'s state without holding the GIL: Python threads (a worker's event
/// loop and its Kafka consumer) run meanwhile. `work` itself must be `Send`: it captures
/// no Python object. For the long steps of a commit only: applying a batch without the GIL
/// made a worker pinned to one core spend about a quarter more CPU per event (a GIL
/// hand-off to the busy event loop for every line the reference decoder has to judge).
fn detached<S, R: Send>(py: Python<'_>, state: S, work: impl FnOnce(S) -> R + Send) -> R {
    let state = Confined(state);
    py.detach(move || work(state.into_inner()))
}

/// The events of a chunk applied between two sheddings of the bodies' cache: a chunk's
/// events read the bodies of every identifier they name, and at 9 million events of the
/// bench's input, the 50,000 events of a batch named 89,000 identifiers whose decoded
/// bodies held 723 MiB (8 KiB each, against 1.4 KiB packed). Shed every piece, the
/// decoded bodies stay near the budget's share whatever the batch size.
const APPLY_PIECE: usize = 5_000;

/// The bodies asked of the store in one read, at most. A read's answers are copied on
/// their way in (the store's bytes, then the core's), and the allocators keep what a
/// read's peak took: at 9 million events of the bench's input, score changes asked for
/// 269,000 bodies (133 MiB) in one read and the process grew by 1,011 MiB; read 8,192 at a
/// time, by 369 MiB (twice that many halves the reads).
const FETCH_PIECE: usize = 16_384;

#[pyclass(unsendable)]
struct Core {
    facts: Facts,
    cfg: Config,
    publication: Option<publication::Publication>,
    /// the checkpoint being written, and the load under way
    segment: Option<checkpoint::Segment>,
    loader: Option<checkpoint::Loader>,
    /// a checkpoint was left unfinished: the next one writes every fact
    unfinished: bool,
    /// with a store that keeps bodies under their keys: `fetch(keys) -> [bytes | None]`,
    /// and the bytes of bodies kept in memory between calls
    fetch: Option<Py<PyAny>>,
    budget: usize,
    /// after a load without a store of published ties: derive them (`derive_published`)
    derive_ties: bool,
    /// a state table being read a page at a time (`begin_rows`), with its number, and
    /// how many reads began
    reading: Option<(u64, reading::Reading)>,
    reads: u64,
    /// with a store that keeps each person's published ties under its key:
    /// `fetch(keys) -> [bytes | None]`, and what the publication wrote since
    /// `take_published_ties` (store key, record or None to delete)
    ties: Option<Py<PyAny>>,
    ties_written: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

impl Core {
    /// Make the bodies of `ids` resident, fetching those that are not (`FETCH_PIECE` a read).
    fn ensure(&mut self, py: Python<'_>, ids: &[Id]) -> PyResult<()> {
        let missing = self.facts.missing(ids).map_err(corrupt)?;
        for keys in missing.chunks(FETCH_PIECE) {
            for (id, record) in self.stored_bodies(py, keys)? {
                self.facts.install(id, &record).map_err(corrupt)?;
            }
        }
        Ok(())
    }

    /// The consent and sums of those of `ids` whose bodies are not decoded in memory, read
    /// from their packed bodies or from the store (in reads of `FETCH_PIECE`) without
    /// decoding the rest. A body read from the store stays packed, as the store keeps it:
    /// the next batch's persons have most of these members again, and `evict` keeps the
    /// budget.
    fn glance(&mut self, py: Python<'_>, ids: &[Id]) -> PyResult<HashMap<Id, codec::Glance>> {
        let mut glances = HashMap::new();
        let mut stored = IdSet::default();
        for &id in ids {
            self.facts.idents[id as usize].recent = true;
            let ident = &self.facts.idents[id as usize];
            match (&ident.body, &ident.packed) {
                (Some(_), _) => {}
                (None, Some(packed)) => {
                    glances.insert(id, codec::glance_body(&self.facts, packed).map_err(corrupt)?);
                }
                (None, None) => stored.insert(id),
            }
        }
        for keys in stored.drain().chunks(FETCH_PIECE) {
            for (id, record) in self.stored_bodies(py, keys)? {
                glances.insert(id, codec::glance_body(&self.facts, &record).map_err(corrupt)?);
                self.facts.packed += record.len();
                self.facts.idents[id as usize].packed = Some(record.into_boxed_slice());
            }
        }
        Ok(glances)
    }

    /// The stored bodies of `ids` (none of them resident nor packed), in one read.
    fn stored_bodies(&self, py: Python<'_>, ids: &[Id]) -> PyResult<Vec<(Id, Vec<u8>)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let Some(fetch) = &self.fetch else {
            return Err(PyValueError::new_err("a body is not resident and no store is attached"));
        };
        let keys: Vec<Vec<u8>> = ids.iter().map(|&id| self.facts.body_key(id)).collect();
        let found = fetch_records(py, fetch, &keys)?;
        ids.iter()
            .copied()
            .zip(found)
            .map(|(id, record)| {
                let record = record.ok_or_else(|| {
                    let ident = &self.facts.idents[id as usize];
                    let seq = if ident.spilled != 0 { ident.spilled } else { ident.stored };
                    corrupt(format!(
                        "the body of {} under checkpoint {seq} is missing from the store",
                        self.facts.key(id)
                    ))
                })?;
                Ok((id, record))
            })
            .collect()
    }

    /// After a load: what the table topics were published with, when the checkpoint did
    /// not say (records of an earlier format), and the published ties when no store
    /// keeps them: a page of persons at a time, dropping clean bodies beyond the budget
    /// between pages.
    fn derive_published(&mut self, py: Python<'_>) -> PyResult<()> {
        if self.facts.published_anchor.is_some() && !self.derive_ties {
            return Ok(());
        }
        self.derive_ties = false;
        if self.ties.is_some() {
            publication::derive_anchors(&mut self.facts, &self.cfg);
            return Ok(());
        }
        let mut derivation = publication::Derivation::new(&self.facts, &self.cfg);
        while !derivation.finished() {
            self.ensure(py, &derivation.members_ahead(reading::PAGE))?;
            derivation.step(&self.facts, &self.cfg, reading::PAGE);
            self.shed();
        }
        derivation.finish(&mut self.facts);
        Ok(())
    }

    /// Read the published ties of the persons the next `limit` items render from the
    /// store (with one kept there); returns those found, whose records `render` replaces.
    fn fetch_ties(&mut self, py: Python<'_>, persons: &[String]) -> PyResult<HashSet<String>> {
        let Some(fetch) = &self.ties else { return Ok(HashSet::default()) };
        let keys: Vec<Vec<u8>> = persons.iter().map(|id| publication::ties_key(id)).collect();
        let found = fetch_records(py, fetch, &keys)?;
        let mut stored = HashSet::default();
        for (id, record) in persons.iter().zip(found) {
            if let Some(record) = record {
                let targets = publication::decode_ties(&record).map_err(corrupt)?;
                self.facts.published_ties.insert(id.clone(), targets);
                stored.insert(id.clone());
            }
        }
        Ok(stored)
    }

    /// After `render`, with the published ties kept in the store: hand those of the
    /// persons rendered to the next write, and keep none in memory.
    fn spill_ties(&mut self, persons: Vec<String>, stored: &HashSet<String>) {
        if self.ties.is_none() {
            return;
        }
        for id in persons {
            let record = self.facts.published_ties.remove(&id).map(|targets| publication::encode_ties(&targets));
            if record.is_some() || stored.contains(&id) {
                self.ties_written.push((publication::ties_key(&id), record));
            }
        }
    }

    /// Between the pieces of a chunk, and the pages of a whole-state read (or of the
    /// derivation after a load), keep the cache's budget: clean bodies beyond it leave
    /// memory, dirty ones stay packed (writing them ahead is the engine's, after the call).
    fn shed(&mut self) {
        if self.facts.keyed {
            self.facts.evict(self.budget, None);
        }
    }
}

/// One read of the store: `fetch(keys) -> [bytes | None]`, an answer per key.
fn fetch_records(py: Python<'_>, fetch: &Py<PyAny>, keys: &[Vec<u8>]) -> PyResult<Vec<Option<Vec<u8>>>> {
    let asked: Vec<Bound<'_, PyBytes>> = keys.iter().map(|key| PyBytes::new(py, key)).collect();
    let found: Vec<Option<Vec<u8>>> = fetch.bind(py).call1((asked,))?.extract()?;
    if found.len() != keys.len() {
        return Err(PyValueError::new_err("fetch(keys) must answer once per key"));
    }
    Ok(found)
}

fn corrupt(error: String) -> PyErr {
    PyValueError::new_err(format!("corrupt checkpoint record: {error}"))
}

#[pymethods]
impl Core {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (*, currency, id_key, half_life, received, ties, credit, cascade_depth,
        consumption_scale, popularity_scale, social_scale, reach_weight, referred_revenue_weight,
        weights, tiers, delta, future_tolerance, raw_labels, indexes=false))]
    fn new(
        currency: String,
        id_key: Vec<u8>,
        half_life: f64,
        received: [u64; 4],
        ties: [u64; 4],
        credit: Vec<u64>,
        cascade_depth: usize,
        consumption_scale: f64,
        popularity_scale: f64,
        social_scale: f64,
        reach_weight: f64,
        referred_revenue_weight: f64,
        weights: [f64; 3],
        tiers: Vec<(String, f64)>,
        delta: f64,
        future_tolerance: i64,
        raw_labels: bool,
        indexes: bool,
    ) -> PyResult<Self> {
        if credit.len() != cascade_depth + 1 || tiers.is_empty() || half_life <= 0.0 {
            return Err(PyValueError::new_err("inconsistent core configuration"));
        }
        let mut facts = Facts::new(Scales::new(half_life), received, credit, cascade_depth);
        facts.indexes = indexes;
        let cfg = Config {
            currency,
            id_key,
            ties,
            consumption_scale,
            popularity_scale,
            social_scale,
            reach_weight,
            referred_revenue_weight,
            weights,
            tiers,
            delta,
            future_tolerance,
            raw_labels,
        };
        Ok(Core {
            facts,
            cfg,
            publication: None,
            segment: None,
            loader: None,
            unfinished: false,
            fetch: None,
            budget: 0,
            derive_ties: false,
            reading: None,
            reads: 0,
            ties: None,
            ties_written: Vec::new(),
        })
    }

    /// Decode and apply a log chunk (lines joined by `\n`) at log positions `start`...;
    /// lines the fast path cannot vouch for go to `fallback(line)`, which answers (reason,
    /// error) for a rejection or the flat event. With `arrival` (microseconds: when the
    /// chunk's lines arrived, as the log recorded it), an event dated more than the
    /// configured tolerance after it is rejected (`future_timestamp`). With `known`, the
    /// event ids accepted before are the caller's (a keyed index on disk): it is asked
    /// once per chunk, `known(ids) -> [bool]`, and the core keeps no id beyond the chunk;
    /// without it the core keeps every accepted id. Returns (rejections as (index, reason,
    /// error), duplicates as (index, event_id), the number of lines, the number accepted,
    /// their ids as a JSON array).
    #[allow(clippy::type_complexity)]
    #[pyo3(signature = (chunk, start, fallback, arrival=None, known=None))]
    fn process<'py>(
        &mut self,
        py: Python<'py>,
        chunk: &[u8],
        start: i64,
        fallback: Bound<'py, PyAny>,
        arrival: Option<i64>,
        known: Option<Bound<'py, PyAny>>,
    ) -> PyResult<(Vec<(usize, String, String)>, Vec<(usize, String)>, usize, usize, Bound<'py, PyBytes>)> {
        // a table read and a checkpoint are rendered from facts that do not change
        self.reading = None;
        if let Some(segment) = self.segment.take() {
            segment.abandon(&mut self.facts);
            self.unfinished = true;
        }
        self.derive_published(py)?;
        let mut rejected = Vec::new();
        let mut valid = Vec::new();
        let mut count = 0;
        let latest = arrival.map(|at| at.saturating_add(self.cfg.future_tolerance.saturating_mul(1_000_000)));
        // an empty chunk holds no line (not one empty line)
        let lines = (!chunk.is_empty()).then(|| chunk.split(|&b| b == b'\n')).into_iter().flatten();
        for (index, line) in lines.enumerate() {
            count += 1;
            let event = match decode::decode(line, &self.cfg.currency) {
                Some(event) => event,
                None => {
                    let answer = fallback.call1((PyBytes::new(py, line),))?;
                    let answer = answer.cast::<PyTuple>()?;
                    if answer.len() == 2 {
                        rejected.push((index, answer.get_item(0)?.extract()?, answer.get_item(1)?.extract()?));
                        continue;
                    }
                    from_flat(answer.extract()?)?
                }
            };
            if let (Some(at), Some(latest)) = (arrival, latest) {
                if event.ts > latest {
                    let error = format!(
                        "field 'occurred_at': {} is more than {} s after the line arrived ({})",
                        json::format_micros(event.ts),
                        self.cfg.future_tolerance,
                        json::format_micros(at)
                    );
                    rejected.push((index, "future_timestamp".to_string(), error));
                    continue;
                }
            }
            valid.push((index, event));
        }
        let before: Option<Vec<bool>> = match &known {
            Some(known) => {
                let ids: Vec<&str> = valid.iter().map(|(_, event)| &*event.id).collect();
                let answer: Vec<bool> = known.call1((ids,))?.extract()?;
                if answer.len() != valid.len() {
                    return Err(PyValueError::new_err("known(ids) must answer once per id"));
                }
                Some(answer)
            }
            None => None,
        };
        let mut in_chunk = foldhash::HashSet::default();
        let mut duplicates = Vec::new();
        let mut accepted = 0;
        let mut ids = Vec::with_capacity(chunk.len() / 8);
        ids.push(b'[');
        let mut wanted = Vec::new();
        for (p, piece) in valid.chunks(APPLY_PIECE).enumerate() {
            if p > 0 {
                self.shed();
            }
            wanted.clear();
            for (_, event) in piece {
                self.facts.wants(event, &mut wanted);
            }
            self.ensure(py, &wanted)?;
            for (i, (index, event)) in piece.iter().enumerate() {
                let first = match &before {
                    Some(before) => !before[p * APPLY_PIECE + i] && in_chunk.insert(&*event.id),
                    None => self.facts.seen.insert(&event.id),
                };
                if !first {
                    duplicates.push((*index, event.id.to_string()));
                    continue;
                }
                // what an earlier event of the chunk made this one reach (a new share's chain)
                wanted.clear();
                self.facts.chain_wants(event, &mut wanted);
                if wanted.iter().any(|&id| self.facts.idents[id as usize].body.is_none()) {
                    self.ensure(py, &wanted)?;
                }
                self.facts.apply(event, start + *index as i64);
                if accepted > 0 {
                    ids.push(b',');
                }
                json::write_str(&mut ids, &event.id);
                accepted += 1;
            }
        }
        ids.push(b']');
        Ok((rejected, duplicates, count, accepted, PyBytes::new(py, &ids)))
    }

    /// The keyed indexes of what was applied since the last call (`Facts::take_indexes`):
    /// (mention keys, link keys with whether each stands).
    #[allow(clippy::type_complexity)]
    fn take_indexes<'py>(&mut self, py: Python<'py>) -> (Vec<Bound<'py, PyBytes>>, Vec<(Bound<'py, PyBytes>, bool)>) {
        let (mentions, links) = self.facts.take_indexes();
        (
            mentions.iter().map(|k| PyBytes::new(py, k)).collect(),
            links.iter().map(|(k, linked)| (PyBytes::new(py, k), *linked)).collect(),
        )
    }

    /// (score changes, marketing triggers) for the persons touched since the last call,
    /// each as (count, NDJSON), records numbered from the offsets given.
    #[allow(clippy::type_complexity)]
    fn score_changes<'py>(
        &mut self,
        py: Python<'py>,
        change_base: i64,
        trigger_base: i64,
    ) -> PyResult<((usize, Bound<'py, PyBytes>), (usize, Bound<'py, PyBytes>))> {
        let touched: Vec<Id> = self.facts.touched.iter().copied().collect();
        let members = self.facts.members_of(&touched, &self.cfg.id_key);
        let glances = self.glance(py, &members)?;
        let (changes, triggers) =
            changes::score_changes(&mut self.facts, &self.cfg, &glances, change_base, trigger_base);
        for &id in glances.keys() {
            self.facts.forget_person(id); // as a body leaving memory does (`Facts::evict`)
        }
        Ok(((changes.count, PyBytes::new(py, &changes.ndjson)), (triggers.count, PyBytes::new(py, &triggers.ndjson))))
    }

    /// Decide what the next table-topic publication carries (see `publication`) and
    /// consider it published; the number of items it holds.
    fn begin_publication(&mut self, py: Python<'_>) -> PyResult<usize> {
        self.derive_published(py)?;
        self.publication = publication::begin(&mut self.facts, &self.cfg);
        let Some(mut begun) = self.publication.take() else { return Ok(0) };
        self.ensure(py, &begun.moved())?;
        publication::resolve(&mut self.facts, &self.cfg, &mut begun);
        let items = begun.len();
        self.publication = Some(begun);
        Ok(items)
    }

    /// The next `limit` items of the publication begun: per state table the records as
    /// (count, NDJSON), numbered from the bases given.
    fn publish<'py>(
        &mut self,
        py: Python<'py>,
        bases: Vec<i64>,
        limit: usize,
    ) -> PyResult<Vec<(usize, Bound<'py, PyBytes>)>> {
        if bases.len() != tables::STATE_TABLES.len() {
            return Err(PyValueError::new_err("one base per state table"));
        }
        let Some((ahead, persons)) =
            self.publication.as_ref().map(|p| (p.members_ahead(limit), p.persons_ahead(limit)))
        else {
            return Ok(bases.iter().map(|_| (0, PyBytes::new(py, b""))).collect());
        };
        self.ensure(py, &ahead)?;
        let stored = self.fetch_ties(py, &persons)?;
        let Some(publication) = self.publication.as_mut() else { unreachable!("checked above") };
        let out = detached(py, (&mut self.facts, &self.cfg, &mut *publication), |(facts, cfg, publication)| {
            publication::render(facts, cfg, publication, &bases, limit)
        });
        if publication.finished() {
            self.publication = None;
        }
        self.spill_ties(persons, &stored);
        Ok(out.into_iter().map(|records| (records.count, PyBytes::new(py, &records.ndjson))).collect())
    }

    /// Begin a checkpoint: the facts changed since the last one (every fact when `full`)
    /// are what `checkpoint_part` renders, and from now on nothing is dirty. A checkpoint
    /// left unfinished took the dirty keys with it, so the next one writes every fact.
    ///
    /// `seq`, the number of this checkpoint, when the caller stores bodies under their
    /// keys: then `checkpoint_bodies` hands them out, and the segment holds none.
    #[pyo3(signature = (full, seq=None))]
    fn begin_checkpoint(&mut self, py: Python<'_>, full: bool, seq: Option<u32>) -> PyResult<()> {
        if self.facts.keyed && seq.is_none() {
            return Err(PyValueError::new_err("a core with a store attached checkpoints by number (seq)"));
        }
        self.derive_published(py)?; // identifier records say what was published
        let mut full = full || std::mem::take(&mut self.unfinished);
        if let Some(segment) = self.segment.take() {
            segment.abandon(&mut self.facts);
            full = true;
        }
        self.segment = Some(checkpoint::Segment::begin(&mut self.facts, full, seq));
        Ok(())
    }

    /// The next bodies of the checkpoint begun, as (store key, record), None once all are.
    #[allow(clippy::type_complexity)]
    fn checkpoint_bodies<'py>(&mut self, py: Python<'py>) -> Option<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        let segment = self.segment.as_mut()?;
        let bodies = detached(py, (&self.facts, &mut *segment), |(facts, segment)| segment.next_bodies(facts))?;
        Some(bodies.iter().map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))).collect())
    }

    /// The store keys of the bodies the checkpoint begun replaces: to delete in the write
    /// that commits it.
    fn checkpoint_stale<'py>(&self, py: Python<'py>) -> Vec<Bound<'py, PyBytes>> {
        let stale = self.segment.as_ref().map(|segment| segment.stale(&self.facts)).unwrap_or_default();
        stale.iter().map(|k| PyBytes::new(py, k)).collect()
    }

    /// End the checkpoint begun: `committed` once the write that makes it the checkpoint
    /// landed; otherwise its keys are dirty again and the next checkpoint writes every fact.
    fn end_checkpoint(&mut self, committed: bool) {
        if let Some(segment) = self.segment.take() {
            if !committed {
                segment.abandon(&mut self.facts);
                self.unfinished = true;
            }
        }
    }

    /// Keep bodies in the store: `fetch(keys) -> [bytes | None]` reads them back, and
    /// `evict` keeps those in memory to about `budget` bytes.
    fn attach_store(&mut self, fetch: Py<PyAny>, budget: usize) {
        self.fetch = Some(fetch);
        self.budget = budget;
        self.facts.keyed = true;
    }

    /// Keep each person's published ties in the store, under `t/<person id>`: a
    /// publication reads those of the persons it renders with `fetch(keys) -> [bytes |
    /// None]` and hands the new ones to `take_published_ties`, so none stays in memory and
    /// a load need not derive them from every body. Attach it before loading.
    fn keep_published_ties(&mut self, fetch: Py<PyAny>) {
        self.ties = Some(fetch);
        self.facts.published_ties.clear();
    }

    /// The published ties written since the last call, as (store key, record or None
    /// for a key to delete): write them with the records `publish` returned.
    #[allow(clippy::type_complexity)]
    fn take_published_ties<'py>(&mut self, py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> {
        std::mem::take(&mut self.ties_written)
            .into_iter()
            .map(|(key, record)| (PyBytes::new(py, &key), record.map(|r| PyBytes::new(py, &r))))
            .collect()
    }

    /// Keep the budget (see `Facts::evict`), after a batch or a committed checkpoint:
    /// the dirty bodies written ahead under checkpoint number `ahead`, as (store key,
    /// record), for the caller to write with its batch before the next call.
    #[allow(clippy::type_complexity)]
    fn evict<'py>(&mut self, py: Python<'py>, ahead: u32) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        if self.fetch.is_none() || self.segment.is_some() {
            return Err(PyValueError::new_err("evict needs an attached store and no checkpoint under way"));
        }
        let written = self.facts.evict(self.budget, Some(ahead));
        Ok(written.iter().map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))).collect())
    }

    /// What the core's memory holds: (structure, entries, approximate bytes), largest
    /// first (see `footprint`).
    fn footprint(&self) -> Vec<(&'static str, usize, usize)> {
        footprint::footprint(&self.facts)
    }

    /// How many identifiers' table rows changed since the last publication.
    #[getter]
    fn unpublished(&self) -> usize {
        self.facts.unpublished.len()
    }

    /// How many bodies are in memory, decoded or packed.
    #[getter]
    fn resident(&self) -> usize {
        self.facts.idents.iter().filter(|i| i.body.is_some() || i.packed.is_some()).count()
    }

    /// The next part of the checkpoint begun (see `checkpoint`), None once it is written.
    fn checkpoint_part<'py>(&mut self, py: Python<'py>) -> Option<Bound<'py, PyBytes>> {
        let segment = self.segment.as_mut()?;
        let part = detached(py, (&self.facts, &mut *segment), |(facts, segment)| segment.next_part(facts));
        part.map(|part| PyBytes::new(py, &part))
    }

    /// Load a checkpoint segment part; parts come oldest first, then `finish_load`.
    fn load_part(&mut self, part: &[u8]) -> PyResult<()> {
        let loader = self.loader.get_or_insert_with(checkpoint::Loader::default);
        loader.part(&mut self.facts, part).map_err(corrupt)
    }

    /// Accepted event ids, as the log recorded them (a list per batch).
    fn add_seen(&mut self, ids: Vec<String>) {
        for id in &ids {
            self.facts.seen.insert(id);
        }
    }

    /// After the parts and the seen ids: the latest event time; rebuild the indexes.
    fn finish_load(&mut self, max_ts: Option<i64>) -> PyResult<()> {
        let published = match self.loader.take() {
            Some(loader) => loader.finish(&mut self.facts).map_err(corrupt)?,
            None => None,
        };
        self.facts.max_ts = max_ts;
        self.facts.reindex();
        match published {
            Some(published) => {
                for (id, waits) in published.unpublished.into_iter().enumerate() {
                    if waits {
                        self.facts.unpublished.insert(id as Id);
                    }
                }
                // the changed ties of a publication that waits are not kept one by one
                self.facts.all_ties_changed = !self.facts.unpublished.is_empty();
                self.facts.published_anchor = Some(published.anchors);
            }
            None => {
                // Records of an earlier format, written when every checkpoint published
                // everything: the anchors are derived as the current ones before the next
                // event, and the next checkpoint writes every record in this format.
                self.facts.published_anchor = None;
                self.unfinished |= !self.facts.idents.is_empty();
            }
        }
        self.derive_ties = self.ties.is_none();
        self.facts.count_all();
        Ok(())
    }

    /// Recompute every identifier's decayed sums from the facts (after a settings change).
    fn rebuild_sums(&mut self, py: Python<'_>) -> PyResult<()> {
        let all: Vec<Id> = (0..self.facts.idents.len() as Id).collect();
        for page in all.chunks(reading::PAGE) {
            self.ensure(py, page)?;
            for &id in page {
                let sums = value::ident_sums(&self.facts, id, i64::MAX / 2, i64::MAX);
                self.facts.body_mut(id).sums = sums;
                self.facts.changed(id);
            }
            self.shed();
        }
        Ok(())
    }

    #[getter]
    fn max_ts(&self) -> Option<i64> {
        self.facts.max_ts
    }

    fn __len__(&self) -> usize {
        self.facts.idents.len()
    }

    /// Begin reading a state table as of a UTC day (days since the epoch): `next_rows`
    /// hands its rows out a page at a time, sorted by key. Returns the read's number.
    /// Applying a chunk, a digest or another read ends it.
    fn begin_rows(&mut self, table: &str, as_of_day: i64) -> PyResult<u64> {
        let reading = reading::Reading::new(&self.facts, &self.cfg, table, as_of_day);
        let reading = reading.ok_or_else(|| PyKeyError::new_err(format!("unknown state table {table:?}")))?;
        self.reads += 1;
        self.reading = Some((self.reads, reading));
        Ok(self.reads)
    }

    /// The next page of read number `read` (about `limit` persons' rows), None once every
    /// row was handed out. The page's bodies are fetched and, past the cache's budget,
    /// dropped again after it. A read that something ended is an error, not a page of
    /// another.
    fn next_rows<'py>(&mut self, py: Python<'py>, read: u64, limit: usize) -> PyResult<Option<Bound<'py, PyList>>> {
        let Some((_, reading)) = self.reading.as_ref().filter(|(number, _)| *number == read) else {
            return Err(PyValueError::new_err(format!(
                "table read {read} ended before its last page (a chunk applied, a digest or another read)"
            )));
        };
        if reading.finished() {
            self.reading = None;
            return Ok(None);
        }
        let limit = limit.max(1);
        self.ensure(py, &reading.members_ahead(limit))?;
        let Some((_, reading)) = self.reading.as_mut() else { unreachable!("checked above") };
        let rows = reading.rows(&self.facts, &self.cfg, limit);
        self.shed();
        Ok(Some(to_py_list(py, &rows)?))
    }

    /// SHA-256 of every state table's canonical rows as of a UTC day, read `page`
    /// persons at a time (see `next_rows`).
    #[pyo3(signature = (as_of_day, page=reading::PAGE))]
    fn digest(&mut self, py: Python<'_>, as_of_day: i64, page: usize) -> PyResult<String> {
        let page = page.max(1);
        self.reading = None;
        let mut partition = identity::Partition::new(&self.facts, tables::end_of_day(as_of_day), &self.cfg.id_key);
        let names = tables::PersonNames::new(&self.facts, &self.cfg, &partition);
        let mut digest = tables::Digest::default();
        for table in tables::STATE_TABLES {
            digest.table(table);
            let mut reading = reading::Reading::of(&self.facts, table, as_of_day, partition).expect("a state table");
            while !reading.finished() {
                self.ensure(py, &reading.members_ahead(page))?;
                reading.digest(&self.facts, &self.cfg, page, &mut digest, &names);
                self.shed();
            }
            partition = reading.into_partition();
        }
        Ok(digest.finish())
    }

    /// The members of a person as of a day, or None.
    fn person_members(&self, person_id: &str, as_of_day: i64) -> Option<Vec<String>> {
        let partition = identity::Partition::new(&self.facts, tables::end_of_day(as_of_day), &self.cfg.id_key);
        let person = partition.persons.iter().find(|p| p.person_id == person_id)?;
        Some(person.members.iter().map(|m| self.facts.key(*m).to_string()).collect())
    }
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    allocator::configure();
    m.add_class::<Core>()?;
    m.add_class::<bindings::JsonArray>()?;
    m.add_class::<bindings::TopicLatest>()?;
    m.add_function(wrap_pyfunction!(bindings::json_fault, m)?)?;
    m.add_function(wrap_pyfunction!(fast_decode, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::frame, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::kafka_partition, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::record_batches, m)?)?;
    Ok(())
}
