//! A batch: its lines decoded and applied, its keyed indexes and its score changes.

use super::Core;
use crate::convert::from_flat;
use crate::{changes, decode, json};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyTuple};

/// The events of a chunk applied between two sheddings of the bodies' cache: a chunk's
/// events read the bodies of every identifier they name, and at 9 million events of the
/// bench's input, the 50,000 events of a batch named 89,000 identifiers whose decoded
/// bodies held 723 MiB (8 KiB each, against 1.4 KiB packed). Shed every piece, the
/// decoded bodies stay near the budget's share whatever the batch size.
const APPLY_PIECE: usize = 5_000;

/// Score changes value the persons a batch touched this many at a time, holding the
/// glances of one page's members at once, not of all of them (at 9M events of the bench's
/// input, valuing a batch's persons at once held up to 460 MiB more than before it).
const VALUED_PAGE: usize = 8_192;

#[pymethods]
impl Core {
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
        // a batch's events are reserved for at once, one per line: an event takes a few
        // hundred bytes, and grown by doubling, a batch's megabytes were copied each time
        let mut valid = Vec::with_capacity(chunk.iter().filter(|&&b| b == b'\n').count() + 1);
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
            self.open(py, &wanted)?;
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
                    self.open(py, &wanted)?;
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
        let persons = changes::touched_persons(&mut self.facts, &self.cfg);
        let mut valuation = changes::Valuation::begin(&mut self.facts, change_base, trigger_base);
        for page in persons.chunks(VALUED_PAGE) {
            let glances = match self.glance(py, &valuation.needs(page)) {
                Ok(glances) => glances,
                Err(error) => {
                    valuation.finish(&mut self.facts); // the standings go back
                    return Err(error);
                }
            };
            valuation.value(&mut self.facts, &self.cfg, page, &glances);
        }
        let (changes, triggers) = valuation.finish(&mut self.facts);
        drop(persons);
        self.facts.persons.trim(crate::memo::MEMOISED);
        Ok(((changes.count, PyBytes::new(py, &changes.ndjson)), (triggers.count, PyBytes::new(py, &triggers.ndjson))))
    }
}
