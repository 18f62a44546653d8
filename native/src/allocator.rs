//! The allocator of the compiled core, and how it hands memory back.

use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering::Relaxed};

/// The facts are millions of small, long-lived allocations: mimalloc serves them faster
/// and with less fragmentation than the system allocator.
#[global_allocator]
static ALLOCATOR: Counted = Counted;

/// mimalloc, counting the bytes the core holds when `COUNT_VARIABLE` is set at load:
/// what the bench reads to tell the core's memory from the rest of the process's RSS
/// (the interpreter's, RocksDB's, and what mimalloc keeps freed), which the structures'
/// own estimate (`footprint`) cannot, as it misses what a call holds while it runs.
/// Off, the cost is one predictable branch per allocation.
pub struct Counted;

/// The environment variable that turns counting on, read when the module loads.
pub const COUNT_VARIABLE: &str = "CRM2STREAM_COUNT_ALLOCATIONS";
static COUNTING: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

#[inline]
fn count(delta: isize) {
    if COUNTING.load(Relaxed) {
        let now = LIVE.fetch_add(delta, Relaxed) + delta;
        PEAK.fetch_max(now, Relaxed);
    }
}

// SAFETY: every call is mimalloc's, with the caller's arguments; the counting beside it
// touches no memory the allocator hands out.
unsafe impl GlobalAlloc for Counted {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let block = mimalloc::MiMalloc.alloc(layout);
        if !block.is_null() {
            count(layout.size() as isize);
        }
        block
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let block = mimalloc::MiMalloc.alloc_zeroed(layout);
        if !block.is_null() {
            count(layout.size() as isize);
        }
        block
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        mimalloc::MiMalloc.dealloc(block, layout);
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let moved = mimalloc::MiMalloc.realloc(block, layout, new_size);
        if !moved.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        moved
    }
}

/// The bytes counted as held now, when counting: below zero when more was freed than
/// counted (memory allocated before counting began), so compare two of them.
pub fn held() -> Option<isize> {
    COUNTING.load(Relaxed).then(|| LIVE.load(Relaxed))
}

/// (bytes the core holds now, the most it held since the last call), when counting;
/// each call starts the next peak from now.
pub fn allocated() -> Option<(usize, usize)> {
    COUNTING.load(Relaxed).then(|| {
        let live = LIVE.load(Relaxed).max(0);
        let peak = PEAK.swap(live, Relaxed).max(live);
        (live as usize, peak as usize)
    })
}

/// mimalloc's `mi_option_purge_delay` (mimalloc.h, v2): how long freed memory stays
/// committed before it goes back to the OS. Every batch frees and reallocates the same
/// few hundred megabytes; handed back after the default 10 ms, each reuse is a fresh page
/// fault and a zeroed page. A second keeps it for the next batch and still lets an idle
/// process shrink.
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;
const PURGE_DELAY_MS: std::ffi::c_long = 1000;

extern "C" {
    #[cfg(test)]
    fn mi_option_get(option: std::ffi::c_int) -> std::ffi::c_long;
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
    fn mi_collect(force: bool);
}

/// Hand the memory the allocators keep freed back to the system now, rather than when an
/// allocation next passes the purge delay: after a batch (or a write of a publication)
/// the core has freed what the call held. On the 9M directory of the bench's input,
/// mimalloc's collection took 12 to 49 ms after a batch of 50,000 events, and the
/// process's RSS after it fell by 190 to 380 MiB; six batches took as long with it as
/// without, and peaked 60 MiB lower.
///
/// The C library's allocator (the interpreter's large objects, RocksDB's buffers) keeps
/// what they free too, and is asked to hand it back as well (`malloc_trim`). Both run at
/// most once per `COLLECT_EVERY`: what they hand back is faulted in again when next
/// allocated, and at every call (each write of 1,000 persons of a publication) they cost
/// the 1M ingest of the bench 5 to 7 s more.
pub fn collect() {
    static LAST: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if last.is_some_and(|at| at.elapsed() < COLLECT_EVERY) {
        return;
    }
    // SAFETY: a plain call into the linked allocator.
    unsafe { mi_collect(true) };
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: glibc's malloc_trim takes any padding and only releases free memory.
    unsafe {
        malloc_trim(0);
    }
    *last = Some(std::time::Instant::now());
}

/// How often `collect` hands freed memory back, at most.
const COLLECT_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn malloc_trim(pad: usize) -> std::ffi::c_int;
}

/// Set the allocator's options: call once, when the module loads.
pub fn configure() {
    // SAFETY: plain option setters of the allocator linked into this module.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
    if std::env::var_os(COUNT_VARIABLE).is_some_and(|v| !v.is_empty() && v != "0") {
        COUNTING.store(true, Relaxed);
    }
}

/// Count from now on (tests: the module's load reads the environment instead). The
/// tests that read the counts hold the guard it returns, one at a time: each one's
/// figures are far larger than what the other tests allocate meanwhile, not than its own.
/// Frees of what was allocated before counting began make the count start below zero,
/// so the tests compare differences, never levels.
#[cfg(test)]
pub fn count_from_now() -> std::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    COUNTING.store(true, Relaxed);
    guard
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_set() {
        // mimalloc's default purge delay is 10 ms: a different value means the option
        // numbering moved and the constant above must follow it.
        // SAFETY: option getters and setters of the linked allocator.
        unsafe {
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), 10);
            mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
            assert_eq!(mi_option_get(MI_OPTION_PURGE_DELAY), PURGE_DELAY_MS);
        }
    }

    #[test]
    fn counted_bytes_follow_what_is_held_and_the_peak_what_was() {
        let _one = count_from_now();
        let before = LIVE.load(Relaxed);
        // 256 MiB reserved, one page of it written: other tests allocate and free tens
        // of MiB meanwhile (with 64 MiB and a margin of 8, a test freeing 8.4 MiB at the
        // same moment failed it), so only what is far larger than them is checked
        let mut block: Vec<u8> = Vec::with_capacity(256 << 20);
        block.push(1);
        let during = LIVE.load(Relaxed);
        drop(block);
        let after = LIVE.load(Relaxed);
        assert!(during - before >= 192 << 20, "{before} then {during}");
        assert!(during - after >= 192 << 20, "{during} then {after}");
        assert!(PEAK.load(Relaxed) >= during - (64 << 20));
        assert!(allocated().is_some());
    }
}
