//! The allocator of the compiled core, and how it hands memory back.

/// The facts are millions of small, long-lived allocations: mimalloc serves them faster
/// and with less fragmentation than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
}

/// Set the allocator's options: call once, when the module loads.
pub fn configure() {
    // SAFETY: plain option setters of the allocator linked into this module.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS) };
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
}
