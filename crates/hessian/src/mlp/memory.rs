//! What the fused operator allocates, computed from the model's widths and the sample count
//! alone, so a caller can plan memory before it loads data or runs the primal pass.

use curvature_tensor::DType;

use super::{narrow, narrow_fits, NARROW_BLOCK_BYTES, NARROW_MIN_DIRECTIONS};
use crate::alloc;
use crate::error::invalid;
use crate::Result;

const OP: &str = "MlpMemory";

/// Bytes the `gemm` crate may take per thread and product for its packed panels: a depth
/// block of at most 512 times a panel of the widest side, plus its cache-sized blocks.
const GEMM_PANEL_DEPTH: usize = 512;
const GEMM_CACHE_BYTES: usize = 16 << 20;

/// The memory [`MlpHvp`](crate::MlpHvp) (and so [`ModelHvp`](crate::ModelHvp) for an MLP on
/// the CPU) needs for a model of `widths` (inputs first) over `samples` samples in `dtype`.
/// Every figure is an upper bound in bytes; the caller's own tensors (the model, `x`, `y`, the
/// batches it passes) are not included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpMemory {
    widths: Vec<usize>,
    samples: usize,
    dtype: DType,
    params: usize,
}

impl MlpMemory {
    /// The plan for `widths` (at least two, all positive) and `samples`; an error when a size
    /// overflows.
    pub fn new(widths: &[usize], samples: usize, dtype: DType) -> Result<MlpMemory> {
        if widths.len() < 2 || widths.contains(&0) {
            return Err(invalid(
                OP,
                format!("needs at least two positive widths, got {widths:?}"),
            ));
        }
        let mut params = 0usize;
        for pair in widths.windows(2) {
            let layer = alloc::product(OP, "a layer's weight", &[pair[0], pair[1]])?;
            params = alloc::sum(OP, "the parameters", &[params, layer, pair[1]])?;
        }
        Ok(MlpMemory {
            widths: widths.to_vec(),
            samples,
            dtype,
            params,
        })
    }

    /// P, the number of parameters.
    pub fn params(&self) -> usize {
        self.params
    }

    fn bytes(&self, elements: usize) -> Result<usize> {
        alloc::product(
            OP,
            "the fused sweep's memory",
            &[elements, self.dtype.size_in_bytes()],
        )
    }

    /// `n · width` for each layer output.
    fn outputs(&self) -> Result<usize> {
        let sum = alloc::sum(OP, "the layer widths", &self.widths[1..])?;
        alloc::product(OP, "the activations", &[self.samples, sum])
    }

    /// `n` times the widest layer (inputs included).
    fn widest(&self) -> Result<usize> {
        let widest = self.widths.iter().copied().max().unwrap_or(0);
        alloc::product(OP, "the activations", &[self.samples, widest])
    }

    /// The packing buffers of the products running at once, one per thread.
    fn gemm_bytes(&self) -> Result<usize> {
        let threads = rayon::current_num_threads().max(1);
        let widest = self.widths.iter().copied().max().unwrap_or(0);
        let panel = alloc::product(OP, "gemm's panels", &[2, GEMM_PANEL_DEPTH, widest + 8])?;
        let per_thread = alloc::sum(OP, "gemm's panels", &[self.bytes(panel)?, GEMM_CACHE_BYTES])?;
        alloc::product(OP, "gemm's panels", &[threads, per_thread])
    }

    /// Bytes the operator holds once made: its copy of the weights, the gradient, and per
    /// layer the input `[n, in]` and σ', the curvature term and ∂L/∂z `[n, out]` each (plus
    /// the softmax probabilities of a cross-entropy loss).
    pub fn held_bytes(&self) -> Result<usize> {
        let inputs = alloc::sum(
            OP,
            "the layer widths",
            &self.widths[..self.widths.len() - 1],
        )?;
        let inputs = alloc::product(OP, "the activations", &[self.samples, inputs])?;
        let outputs = alloc::product(OP, "the activations", &[3, self.outputs()?])?;
        let last = self.widths[self.widths.len() - 1];
        let probs = alloc::product(OP, "the activations", &[self.samples, last])?;
        let params = alloc::product(OP, "the parameters", &[2, self.params])?;
        self.bytes(alloc::sum(
            OP,
            "the fused sweep's memory",
            &[inputs, outputs, probs, params],
        )?)
    }

    /// Peak bytes while [`MlpHvp::new`](crate::MlpHvp::new) runs the primal pass: what it then
    /// holds plus, at most, five `[n, widest]` temporaries of the layer being processed and
    /// the loss's output terms, and the products' packing buffers.
    pub fn construction_bytes(&self) -> Result<usize> {
        let temporaries = alloc::product(OP, "the activations", &[5, self.widest()?])?;
        alloc::sum(
            OP,
            "the fused sweep's memory",
            &[
                self.held_bytes()?,
                self.bytes(temporaries)?,
                self.gemm_bytes()?,
            ],
        )
    }

    /// Peak bytes of one `apply_batch` of `directions` rows on top of
    /// [`held_bytes`](MlpMemory::held_bytes) and the caller's batch: the `[K, P]` result and
    /// the workspaces of the layout [`MlpHvp::strategy_for`](crate::MlpHvp::strategy_for)
    /// picks, with the current thread pool's threads (and the products' packing buffers).
    pub fn batch_bytes(&self, directions: usize) -> Result<usize> {
        let threads = rayon::current_num_threads().max(1);
        let result = alloc::product(OP, "the products", &[directions, self.params])?;
        let narrow = narrow_fits(self.params, self.dtype) && directions >= NARROW_MIN_DIRECTIONS;
        if narrow {
            // Each thread's accumulators alive in the reduction tree (one per level) and its
            // group's tangents (four per sample of a group, each within a block), and the
            // transposed block: all at most the narrow block of `[P, directions]`.
            let leaves = self.samples.div_ceil(narrow::LEAF_SAMPLES).max(1);
            let depth = leaves.next_power_of_two().trailing_zeros() as usize + 1;
            let per_thread = depth + 4 * narrow::GROUP;
            let blocks = alloc::product(OP, "the narrow sweep", &[threads, per_thread])?;
            let blocks = alloc::sum(OP, "the narrow sweep", &[blocks, 1])?;
            let block_bytes =
                alloc::product(OP, "the narrow sweep", &[blocks, NARROW_BLOCK_BYTES])?;
            return alloc::sum(
                OP,
                "the fused sweep's memory",
                &[self.bytes(result)?, block_bytes],
            );
        }
        // One workspace per thread in use: dz and dh per layer, dg and dg_prev.
        let per_thread = alloc::sum(
            OP,
            "the wide sweep",
            &[
                self.outputs()?,
                self.outputs()?,
                self.widest()?,
                self.widest()?,
            ],
        )?;
        let workspaces = alloc::product(
            OP,
            "the wide sweep",
            &[threads.min(directions.max(1)), per_thread],
        )?;
        let elements = alloc::sum(OP, "the fused sweep's memory", &[result, workspaces])?;
        alloc::sum(
            OP,
            "the fused sweep's memory",
            &[self.bytes(elements)?, self.gemm_bytes()?],
        )
    }
}
