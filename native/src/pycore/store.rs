//! The bodies' cache and the shell's store: what a call reads is made resident first
//! (`ensure`, `glance`), and `evict` keeps the budget (see `resident`).

use super::Core;
use crate::codec;
use crate::facts::{Id, IdSet};
use crate::footprint;
use foldhash::HashMap;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// The bodies asked of the store in one read, at most. A read's answers are copied on
/// their way in (the store's bytes, then the core's), and the allocators keep what a
/// read's peak took: at 9 million events of the bench's input, score changes asked for
/// 269,000 bodies (133 MiB) in one read and the process grew by 1,011 MiB; read 8,192 at a
/// time, by 369 MiB (twice that many halves the reads).
const FETCH_PIECE: usize = 16_384;

impl Core {
    /// Make the bodies of `ids` resident and whole, fetching those that are not
    /// (`FETCH_PIECE` a read).
    pub(super) fn ensure(&mut self, py: Python<'_>, ids: &[Id]) -> PyResult<()> {
        let missing = self.facts.missing(ids).map_err(corrupt)?;
        for keys in missing.chunks(FETCH_PIECE) {
            for (id, record) in self.stored_bodies(py, keys)? {
                self.facts.install(id, &record).map_err(corrupt)?;
            }
        }
        Ok(())
    }

    /// Make the bodies of `ids` ready to be added to (`Facts::unopened`), fetching those
    /// the store alone holds.
    pub(super) fn open(&mut self, py: Python<'_>, ids: &[Id]) -> PyResult<()> {
        let missing = self.facts.unopened(ids).map_err(corrupt)?;
        for keys in missing.chunks(FETCH_PIECE) {
            for (id, record) in self.stored_bodies(py, keys)? {
                self.facts.install_open(id, record.into_boxed_slice()).map_err(|(e, _)| corrupt(e))?;
            }
        }
        Ok(())
    }

    /// The consent and sums of those of `ids` whose bodies are not decoded in memory, read
    /// from their packed bodies or from the store (in reads of `FETCH_PIECE`) without
    /// decoding the rest. A body read from the store stays packed, as the store keeps it:
    /// the next batch's persons have most of these members again, and `evict` keeps the
    /// budget.
    pub(super) fn glance(&mut self, py: Python<'_>, ids: &[Id]) -> PyResult<HashMap<Id, codec::Glance>> {
        let mut glances = HashMap::with_capacity_and_hasher(ids.len(), Default::default());
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
    pub(super) fn stored_bodies(&self, py: Python<'_>, ids: &[Id]) -> PyResult<Vec<(Id, Vec<u8>)>> {
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

    /// Between the pieces of a chunk, and the pages of a whole-state read (or of the
    /// derivation after a load), keep the cache's budget: clean bodies beyond it leave
    /// memory, dirty ones stay packed (writing them ahead is the engine's, after the call).
    pub(super) fn shed(&mut self) {
        if self.facts.keyed {
            self.facts.evict(self.budget, None);
        }
    }
}

/// One read of the store: `fetch(keys) -> [bytes | None]`, an answer per key.
pub(super) fn fetch_records(py: Python<'_>, fetch: &Py<PyAny>, keys: &[Vec<u8>]) -> PyResult<Vec<Option<Vec<u8>>>> {
    let asked: Vec<Bound<'_, PyBytes>> = keys.iter().map(|key| PyBytes::new(py, key)).collect();
    let found: Vec<Option<Vec<u8>>> = fetch.bind(py).call1((asked,))?.extract()?;
    if found.len() != keys.len() {
        return Err(PyValueError::new_err("fetch(keys) must answer once per key"));
    }
    Ok(found)
}

pyo3::create_exception!(
    _native,
    CorruptRecord,
    PyValueError,
    "A checkpoint record the core cannot read: damaged, or written by a version it does not know."
);

pub(super) fn corrupt(error: String) -> PyErr {
    CorruptRecord::new_err(format!("corrupt checkpoint record: {error}"))
}

#[pymethods]
impl Core {
    /// Keep bodies in the store: `fetch(keys) -> [bytes | None]` reads them back, and
    /// `evict` keeps those in memory to about `budget` bytes.
    fn attach_store(&mut self, fetch: Py<PyAny>, budget: usize) {
        self.fetch = Some(fetch);
        self.budget = budget;
        self.facts.keyed = true;
    }

    /// Keep the budget (see `Facts::evict`), after a batch or a committed checkpoint, and
    /// hand what the allocator keeps freed back to the system (`allocator::collect`): the
    /// dirty bodies written ahead under checkpoint number `ahead`, as (store key,
    /// record), for the caller to write with its batch before the next call.
    #[allow(clippy::type_complexity)]
    fn evict<'py>(&mut self, py: Python<'py>, ahead: u32) -> PyResult<Vec<(Bound<'py, PyBytes>, Bound<'py, PyBytes>)>> {
        if self.fetch.is_none() || self.segment.is_some() {
            return Err(PyValueError::new_err("evict needs an attached store and no checkpoint under way"));
        }
        let written = self.facts.evict(self.budget, Some(ahead));
        py.detach(crate::allocator::collect);
        Ok(written.iter().map(|(k, v)| (PyBytes::new(py, k), PyBytes::new(py, v))).collect())
    }

    /// What the core's memory holds: (structure, entries, approximate bytes), largest
    /// first (see `footprint`).
    fn footprint(&self) -> Vec<(&'static str, usize, usize)> {
        footprint::footprint(&self.facts)
    }

    /// What each structure holds, exactly, found by dropping them one by one (with
    /// `CRM2STREAM_COUNT_ALLOCATIONS` set; None without): the core is empty after it.
    fn measure_by_dropping(&mut self) -> Option<Vec<(&'static str, usize)>> {
        footprint::measure_by_dropping(&mut self.facts)
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
}
