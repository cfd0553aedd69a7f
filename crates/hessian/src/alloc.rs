//! Checked sizes and fallible host allocations. Every buffer this crate sizes from its
//! arguments goes through here, so an impossible size is a typed error naming the operation and
//! the sizes ([`HessianError::SizeOverflow`], [`HessianError::OutOfMemory`]), never a wrapped
//! product or an allocation abort.

use crate::{HessianError, Result};

/// The product of `factors`, or [`HessianError::SizeOverflow`] naming `what` is being sized.
pub(crate) fn product(op: &'static str, what: &'static str, factors: &[usize]) -> Result<usize> {
    factors
        .iter()
        .try_fold(1usize, |acc, &f| acc.checked_mul(f))
        .ok_or_else(|| HessianError::SizeOverflow {
            op,
            what,
            sizes: factors.to_vec(),
        })
}

/// The sum of `terms`, or [`HessianError::SizeOverflow`] naming `what`.
pub(crate) fn sum(op: &'static str, what: &'static str, terms: &[usize]) -> Result<usize> {
    terms
        .iter()
        .try_fold(0usize, |acc, &t| acc.checked_add(t))
        .ok_or_else(|| HessianError::SizeOverflow {
            op,
            what,
            sizes: terms.to_vec(),
        })
}

/// An empty vector with room for exactly `len` elements, or [`HessianError::OutOfMemory`]
/// with the bytes it would need when the allocator refuses.
pub(crate) fn with_capacity<T>(op: &'static str, what: &'static str, len: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(len)
        .map_err(|_| HessianError::OutOfMemory {
            op,
            what,
            elements: len,
            bytes: len as u128 * std::mem::size_of::<T>() as u128,
        })?;
    Ok(v)
}

/// `len` copies of `value`, allocated fallibly ([`with_capacity`]).
pub(crate) fn filled<T: Clone>(
    op: &'static str,
    what: &'static str,
    len: usize,
    value: T,
) -> Result<Vec<T>> {
    let mut v = with_capacity(op, what, len)?;
    v.resize(len, value);
    Ok(v)
}
