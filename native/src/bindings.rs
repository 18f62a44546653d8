//! The byte-level helpers the shells call besides the core: framing input into log
//! lines, I-JSON checks, Kafka record batches and partitions, and table-topic compaction.
//! Each converts and hands the work to a plain-Rust module.

use crate::{allocator, compaction, framing, ijson, keyed};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

/// Up to `limit` non-blank lines of `data` from `start`, as (chunk, lines, bytes used):
/// see `framing::frame`.
#[pyfunction]
pub fn frame<'py>(
    py: Python<'py>,
    data: &[u8],
    start: usize,
    limit: usize,
    last: bool,
) -> PyResult<(Bound<'py, PyBytes>, usize, usize)> {
    let framed = framing::frame(data, start.min(data.len()), limit, last);
    let chunk = PyBytes::new_with(py, framed.joined_len(), |out| {
        framed.join_into(data, out);
        Ok(())
    })?;
    Ok((chunk, framed.spans.len(), framed.used))
}

/// (bytes the compiled core holds now, the most it held since the last call), counted
/// by its allocator when `CRM2STREAM_COUNT_ALLOCATIONS` was set as the module loaded;
/// None otherwise (see `allocator`).
#[pyfunction]
pub fn allocated() -> Option<(usize, usize)> {
    allocator::allocated()
}

/// Why a line is not I-JSON (see `ijson`) as (reason, error), or None when it is.
#[pyfunction]
pub fn json_fault(line: &[u8]) -> Option<(&'static str, String)> {
    match std::str::from_utf8(line) {
        Ok(text) => ijson::check(text).err().map(|fault| fault.verdict()),
        Err(e) => Some(("encoding", format!("not UTF-8 at byte {}", e.valid_up_to()))),
    }
}

/// A JSON array body framed into log lines, one per element (see `framing`): the whole
/// body is checked to be one array when made (a ValueError says why not), then `take`
/// hands its elements out a batch at a time.
#[pyclass(unsendable)]
pub struct JsonArray {
    body: Py<PyBytes>,
    at: usize,
    state: framing::ArrayAt,
}

#[pymethods]
impl JsonArray {
    #[new]
    fn new(py: Python<'_>, body: Py<PyBytes>) -> PyResult<Self> {
        let (mut at, mut state) = (0, framing::ArrayAt::Start);
        let data = body.as_bytes(py);
        loop {
            match framing::array_element(data, at, state) {
                Ok((Some(_), next)) => (at, state) = (next, framing::ArrayAt::Element),
                Ok((None, _)) => break,
                Err(why) => return Err(PyValueError::new_err(why)),
            }
        }
        Ok(JsonArray { body, at: 0, state: framing::ArrayAt::Start })
    }

    /// The next (up to) `limit` elements as log lines joined by `\n`, how many, and the
    /// original bytes of those a log line could not hold as they were (line breaks), by
    /// index: what their dead letters keep.
    #[allow(clippy::type_complexity)]
    fn take<'py>(
        &mut self,
        py: Python<'py>,
        limit: usize,
    ) -> (Bound<'py, PyBytes>, usize, Vec<(usize, Bound<'py, PyBytes>)>) {
        let data = self.body.as_bytes(py);
        let mut out = Vec::new();
        let mut originals = Vec::new();
        let mut count = 0;
        while count < limit {
            let Ok((Some((from, to)), next)) = framing::array_element(data, self.at, self.state) else { break };
            if count > 0 {
                out.push(b'\n');
            }
            let element = &data[from..to];
            framing::element_line(element, &mut out);
            if element.iter().any(|&b| b == b'\n' || b == b'\r') {
                originals.push((count, PyBytes::new(py, element)));
            }
            (self.at, self.state, count) = (next, framing::ArrayAt::Element, count + 1);
        }
        (PyBytes::new(py, &out), count, originals)
    }
}

/// Kafka record batches of NDJSON lines (see `keyed`): per line a record keyed by the
/// string value of its top-level `field`, in the partition Kafka's default partitioner
/// gives it, with `headers`; with `tombstones`, a line whose value is null becomes a
/// record without one, its `at` and `offset` in the headers. Returns (partition, batch,
/// records) in line order per partition; the interpreter is released while it builds.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn record_batches<'py>(
    py: Python<'py>,
    ndjson: &[u8],
    field: &str,
    partitions: u32,
    timestamp_ms: i64,
    max_bytes: usize,
    tombstones: bool,
    headers: Vec<(String, Vec<u8>)>,
) -> PyResult<Vec<(u32, Bound<'py, PyBytes>, i32)>> {
    if partitions == 0 {
        return Err(PyValueError::new_err("a topic has at least one partition"));
    }
    let headers: keyed::Headers = headers.into_iter().map(|(k, v)| (k.into_bytes(), v)).collect();
    let built = py.detach(|| -> Result<Vec<(u32, Vec<u8>, i32)>, String> {
        let mut writers: Vec<Option<keyed::BatchWriter>> = (0..partitions).map(|_| None).collect();
        if !ndjson.is_empty() {
            for line in ndjson.split(|&b| b == b'\n') {
                let key = keyed::key_of(line, field)?;
                let partition = keyed::partition(key.as_bytes(), partitions) as usize;
                let writer = writers[partition].get_or_insert_with(|| keyed::BatchWriter::new(timestamp_ms, max_bytes));
                if tombstones && line.ends_with(b"\"value\":null}") {
                    let marks = keyed::tombstone_headers(line)?;
                    writer.push(&keyed::Record { key: key.as_bytes(), value: None, headers: &marks });
                } else {
                    writer.push(&keyed::Record { key: key.as_bytes(), value: Some(line), headers: &headers });
                }
            }
        }
        let mut out = Vec::new();
        for (partition, writer) in writers.iter_mut().enumerate() {
            if let Some(writer) = writer {
                writer.finish();
                out.extend(writer.done.drain(..).map(|(batch, count)| (partition as u32, batch, count)));
            }
        }
        Ok(out)
    });
    let built = built.map_err(PyValueError::new_err)?;
    Ok(built.into_iter().map(|(partition, batch, count)| (partition, PyBytes::new(py, &batch), count)).collect())
}

/// Kafka's default partition of a key among `partitions` (murmur2, see `keyed`).
#[pyfunction]
pub fn kafka_partition(key: &[u8], partitions: u32) -> PyResult<u32> {
    if partitions == 0 {
        return Err(PyValueError::new_err("a topic has at least one partition"));
    }
    Ok(keyed::partition(key, partitions))
}

/// Each key's latest offset over a table topic's parts (see `compaction`): `add` the parts
/// in offset order, then `compact` each.
#[pyclass(unsendable)]
pub struct TopicLatest {
    latest: compaction::Latest,
}

#[pymethods]
impl TopicLatest {
    #[new]
    fn new() -> Self {
        TopicLatest { latest: compaction::Latest::new() }
    }

    fn add(&mut self, first: i64, part: &[u8]) -> PyResult<()> {
        self.latest.add(first, part).map_err(PyValueError::new_err)
    }

    fn __len__(&self) -> usize {
        self.latest.len()
    }

    /// The part without the records a later one supersedes: the same object when none
    /// is, None when none is left.
    fn compact<'py>(
        &self,
        py: Python<'py>,
        first: i64,
        part: Bound<'py, PyBytes>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        match self.latest.compact(first, part.as_bytes()).map_err(PyValueError::new_err)? {
            None => Ok(Some(part)),
            Some(None) => Ok(None),
            Some(Some(kept)) => Ok(Some(PyBytes::new(py, &kept))),
        }
    }
}
