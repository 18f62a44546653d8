//! State tables read as of a day: a page at a time, a digest, the members of a person.

use super::Core;
use crate::convert::to_py_list;
use crate::{identity, reading, tables};
use pyo3::exceptions::{PyKeyError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyList;

#[pymethods]
impl Core {
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
        let mut digest = crate::digest::Digest::default();
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
        let key = crate::emitted::person_key(person_id)?;
        let person = partition.persons.iter().find(|p| p.key == key)?;
        Some(person.members.iter().map(|m| self.facts.key(*m).to_string()).collect())
    }
}
