//! crm2stream's compiled core, bound to Python.
//!
//! The shell hands in raw lines and gets back what to persist and publish; the facts stay
//! in here between calls. Everything in this crate except this module is plain Rust with
//! no interpreter in sight; `pycore`, `bindings` and `convert` only convert.
//!
//! The bindings are left out of the unit tests' build: the classes' methods are registered
//! at link time (pyo3's `multiple-pymethods`), which would link the test binary against
//! an interpreter it does not have. What they call is plain Rust, tested where it lives,
//! and the bindings themselves are what the Python suite runs.
#![cfg_attr(test, allow(dead_code))]

mod allocator;
#[cfg(not(test))]
mod bindings;
mod changes;
mod checkpoint;
mod codec;
mod compaction;
#[cfg(not(test))]
mod convert;
mod decode;
mod digest;
mod emitted;
mod facts;
mod fold;
mod footprint;
mod framing;
mod identity;
mod ids;
mod ijson;
mod json;
mod keyed;
mod labels;
mod memo;
mod names;
mod publication;
#[cfg(not(test))]
mod pycore;
mod reading;
mod resident;
mod scalars;
mod scales;
mod shares;
mod standing;
mod sum;
mod tables;
mod value;

#[cfg(not(test))]
use pyo3::prelude::*;

#[cfg(not(test))]
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    allocator::configure();
    m.add_class::<pycore::Core>()?;
    m.add("CorruptRecord", m.py().get_type::<pycore::CorruptRecord>())?;
    m.add_class::<bindings::JsonArray>()?;
    m.add_class::<bindings::TopicLatest>()?;
    m.add_function(wrap_pyfunction!(bindings::json_fault, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::allocated, m)?)?;
    m.add_function(wrap_pyfunction!(convert::fast_decode, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::frame, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::kafka_partition, m)?)?;
    m.add_function(wrap_pyfunction!(bindings::record_batches, m)?)?;
    Ok(())
}
