//! The table topics' publication, and the published ties it reads and writes.

use super::store::{corrupt, fetch_records};
use super::{detached, Core};
use crate::{publication, reading, tables};
use foldhash::HashSet;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

impl Core {
    /// After a load: what the table topics were published with, when the checkpoint did
    /// not say (records of an earlier format), and the published ties when no store
    /// keeps them: a page of persons at a time, dropping clean bodies beyond the budget
    /// between pages.
    pub(super) fn derive_published(&mut self, py: Python<'_>) -> PyResult<()> {
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
    pub(super) fn fetch_ties(&mut self, py: Python<'_>, persons: &[String]) -> PyResult<HashSet<String>> {
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
    pub(super) fn spill_ties(&mut self, persons: Vec<String>, stored: &HashSet<String>) {
        if self.ties.is_none() {
            return;
        }
        for id in persons {
            let record = self.facts.published_ties.remove(&id).map(|targets| publication::encode_ties(&targets));
            if record.is_some() || stored.contains(&id) {
                self.keys_written.push((publication::ties_key(&id), record));
            }
        }
    }
}

#[pymethods]
impl Core {
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
        let Some((ahead, persons)) = self
            .publication
            .as_ref()
            .map(|p| (p.members_ahead(&mut self.facts, &self.cfg, limit), p.persons_ahead(limit)))
        else {
            return Ok(bases.iter().map(|_| (0, PyBytes::new(py, b""))).collect());
        };
        self.ensure(py, &ahead)?;
        let stored = self.fetch_ties(py, &persons)?;
        let Some(publication) = self.publication.as_mut() else { unreachable!("checked above") };
        if self.ties.is_some() {
            for (id, anchor) in publication.anchors_ahead(&self.facts, limit) {
                self.keys_written.push((publication::anchor_key(&id), anchor.map(String::into_bytes)));
            }
        }
        let out = detached(py, (&mut self.facts, &self.cfg, &mut *publication), |(facts, cfg, publication)| {
            publication::render(facts, cfg, publication, &bases, limit)
        });
        if publication.finished() {
            self.publication = None;
        }
        self.spill_ties(persons, &stored);
        Ok(out.into_iter().map(|records| (records.count, PyBytes::new(py, &records.ndjson))).collect())
    }

    /// Keep each person's published ties in the store, under `t/<person id>`: a
    /// publication reads those of the persons it renders with `fetch(keys) -> [bytes |
    /// None]` and hands the new ones to `take_published_keys`, so none stays in memory and
    /// a load need not derive them from every body. With them, each person it renders
    /// gets its anchor's key under `n/<person id>` (a retired person id loses it).
    /// Attach it before loading.
    fn keep_published_ties(&mut self, fetch: Py<PyAny>) {
        self.ties = Some(fetch);
        self.facts.published_ties.clear();
    }

    /// The published ties and anchors written since the last call, as (store key,
    /// record or None for a key to delete): write them with the records `publish`
    /// returned.
    #[allow(clippy::type_complexity)]
    fn take_published_keys<'py>(&mut self, py: Python<'py>) -> Vec<(Bound<'py, PyBytes>, Option<Bound<'py, PyBytes>>)> {
        std::mem::take(&mut self.keys_written)
            .into_iter()
            .map(|(key, record)| (PyBytes::new(py, &key), record.map(|r| PyBytes::new(py, &r))))
            .collect()
    }
}
