//! Running a loop with the CPU's vector extensions enabled, for the fused sweeps' elementwise
//! passes.

/// Whether the CPU has AVX2 and FMA, which the vectorised loops are compiled for.
pub(crate) fn has_vector_units() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` compiled for AVX2 and FMA when the CPU has them. Only code inlined into `f` gets
/// the features, so `f` must be small and call `#[inline(always)]` loops.
#[inline(always)]
pub(crate) fn with_vector_units<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must have AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if has_vector_units() {
            // SAFETY: calling a `#[target_feature]` function is sound when the CPU has those
            // features, which `has_vector_units` has just detected at run time.
            return unsafe { avx2(f) };
        }
    }
    f()
}
