//! Allocator tuning for throughput runs. The `curvature` binary and the benches use mimalloc;
//! batched HVPs free and allocate buffers of tens of megabytes op after op, and by default
//! mimalloc returns freed memory to the kernel after a few milliseconds, so every op faults its
//! pages in again. Keeping freed memory committed removes that cost.

/// mimalloc's `mi_option_purge_delay` (position 15 of `mi_option_e` in `mimalloc.h`, v2 and v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Tells mimalloc never to purge freed memory. Harmless when mimalloc is not the global
/// allocator (the option is then never read).
pub fn retain_freed_memory() {
    // SAFETY: `mi_option_set` writes one global option atomically; it takes plain integers and
    // touches no memory of ours.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1) }
}
