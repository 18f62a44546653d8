//! The core as Python sees it: one class, `Core`, whose methods are grouped by what the
//! shell does with them (`apply` a batch, `publish` the table topics, write and load
//! checkpoints in `checkpointing`, `read` tables, keep bodies in the `store`). The facts
//! stay in here between calls; these modules only convert and hand over.

mod apply;
mod checkpointing;
mod publish;
mod read;
mod store;

pub use store::CorruptRecord;

use crate::facts::Facts;
use crate::scales::{Config, Scales};
use crate::{checkpoint, publication, reading};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

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

#[pyclass(unsendable)]
pub struct Core {
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
    /// `fetch(keys) -> [bytes | None]`
    ties: Option<Py<PyAny>>,
    /// the published ties and anchors a publication wrote (`take_published_keys`)
    keys_written: Vec<(Vec<u8>, Option<Vec<u8>>)>,
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
            keys_written: Vec::new(),
        })
    }

    #[getter]
    fn max_ts(&self) -> Option<i64> {
        self.facts.max_ts
    }

    fn __len__(&self) -> usize {
        self.facts.idents.len()
    }
}
