//! Checkpoints written and loaded: segments of records, and bodies under their keys.

use super::store::corrupt;
use super::{detached, Core};
use crate::facts::Id;
use crate::{checkpoint, reading, value};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

#[pymethods]
impl Core {
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

    /// The next store keys, at most `limit`, of the bodies the checkpoint begun replaces:
    /// to delete in the write that commits it. None once all were handed out.
    fn checkpoint_stale<'py>(&mut self, py: Python<'py>, limit: usize) -> Option<Vec<Bound<'py, PyBytes>>> {
        let stale = self.segment.as_mut()?.next_stale(&self.facts, limit)?;
        Some(stale.iter().map(|k| PyBytes::new(py, k)).collect())
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
        self.facts.standings = crate::standing::Standings::default(); // they add up the old sums
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
}
