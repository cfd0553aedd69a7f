//! The cache of free buffers of one device: a dropped buffer's memory is kept, by size class,
//! and handed to the next allocation of that class instead of going back to the driver, up to
//! a byte limit. Past the limit, and when an allocation fails for lack of memory, buffers are
//! freed for real.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use crate::buffer::{BufferMem, Recycle};
use crate::counters::Counters;

/// How sizes are grouped into classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Classes {
    /// Sizes rounded up to 16 bytes only, so the emulated GPU's guard page stays right after
    /// each buffer.
    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    Exact,
    /// Sizes rounded up to a multiple of 512 bytes, and of a sixteenth of their next power of
    /// two above 8 KiB, so similar sizes share buffers while wasting at most an eighth.
    Rounded,
}

impl Classes {
    /// The size class of a `bytes`-byte buffer, `None` when rounding up overflows.
    pub(crate) fn of(self, bytes: usize) -> Option<usize> {
        let step = match self {
            Classes::Exact => 16,
            Classes::Rounded => (bytes.checked_next_power_of_two()? / 16).max(512),
        };
        bytes.max(1).checked_next_multiple_of(step)
    }
}

#[derive(Default)]
struct Free {
    /// Free buffers by size class.
    lists: HashMap<usize, Vec<BufferMem>>,
    /// Their bytes, together.
    bytes: usize,
}

pub(crate) struct BufferCache {
    counters: Arc<Counters>,
    free: Mutex<Free>,
    /// The most bytes kept.
    limit: usize,
    /// Driver calls one free takes.
    free_calls: u64,
}

impl BufferCache {
    pub(crate) fn new(counters: Arc<Counters>, limit: usize, free_calls: u64) -> BufferCache {
        BufferCache {
            counters,
            free: Mutex::default(),
            limit,
            free_calls,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Free> {
        // Every update leaves the lists and their byte count consistent.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free buffer of size class `class`, if one is kept.
    pub(crate) fn take(&self, class: usize) -> Option<BufferMem> {
        let mut free = self.lock();
        let mem = free.lists.get_mut(&class)?.pop()?;
        free.bytes -= class;
        Some(mem)
    }

    /// Frees every kept buffer; returns how many bytes that released.
    pub(crate) fn release(&self) -> usize {
        let (lists, bytes) = {
            let mut free = self.lock();
            let bytes = free.bytes;
            free.bytes = 0;
            (std::mem::take(&mut free.lists), bytes)
        };
        for mem in lists.into_values().flatten() {
            self.free_now(mem);
        }
        bytes
    }

    /// Bytes kept now.
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }

    fn free_now(&self, mem: BufferMem) {
        drop(mem);
        self.counters.free(self.free_calls);
    }
}

impl Recycle for BufferCache {
    fn recycle(&self, class: usize, mem: BufferMem) {
        let overflow = {
            let mut free = self.lock();
            match free.bytes.checked_add(class) {
                Some(total) if total <= self.limit => {
                    free.bytes = total;
                    free.lists.entry(class).or_default().push(mem);
                    None
                }
                _ => Some(mem),
            }
        };
        if let Some(mem) = overflow {
            self.free_now(mem);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Classes;

    #[test]
    fn size_classes_cover_the_size_and_waste_at_most_an_eighth() {
        assert_eq!(Classes::Exact.of(0), Some(16));
        assert_eq!(Classes::Exact.of(17), Some(32));
        assert_eq!(Classes::Exact.of(4096), Some(4096));
        assert_eq!(Classes::Rounded.of(0), Some(512));
        assert_eq!(Classes::Rounded.of(513), Some(1024));
        assert_eq!(Classes::Rounded.of(4097), Some(4096 + 512));
        assert_eq!(Classes::Rounded.of(1 << 20), Some(1 << 20));
        assert_eq!(
            Classes::Rounded.of((1 << 20) + 1),
            Some((1 << 20) + (1 << 17))
        );
        for bytes in [1usize, 100, 5000, 123_456, 99_999_999] {
            let class = Classes::Rounded.of(bytes).expect("fits");
            assert!(
                class >= bytes && class - bytes <= (bytes / 8).max(512),
                "{bytes}"
            );
        }
        assert_eq!(Classes::Rounded.of(usize::MAX), None);
        assert_eq!(Classes::Exact.of(usize::MAX), None);
    }
}
