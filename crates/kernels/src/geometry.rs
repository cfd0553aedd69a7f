//! Launch geometry the kernels expect (as documented at the top of each `.cu` file). All
//! kernels loop over their work with grid strides, so these are performance choices; only the
//! block shapes of `matmul_*` (exactly 16×16) and of the row kernels (a multiple of 32) are
//! requirements.

use crate::kernel::Dtype;

/// Block size of the 1D element-wise kernels.
pub const BLOCK_1D: u32 = 256;

/// Upper bound on blocks for grid-stride launches (more buys nothing).
const MAX_BLOCKS: u64 = 65_535;

/// The block of every `matmul_*` launch: 16×16 threads.
pub const MATMUL_BLOCK: (u32, u32, u32) = (16, 16, 1);

/// Rows and columns of C computed by one `matmul_{dt}` block: 128 for `f32` (8×8 per thread),
/// 64 for `f64` (4×4 per thread, which keeps it from spilling).
pub fn matmul_tile(dtype: Dtype) -> usize {
    match dtype {
        Dtype::F32 | Dtype::F16 | Dtype::BF16 => 128,
        Dtype::F64 => 64,
    }
}

fn clamp_blocks(n: u64) -> u32 {
    n.clamp(1, MAX_BLOCKS) as u32
}

/// (grid, block) for a 1D grid-stride kernel over `n` elements.
pub fn launch_1d(n: usize) -> ((u32, u32, u32), (u32, u32, u32)) {
    let blocks = (n as u64).div_ceil(u64::from(BLOCK_1D));
    ((clamp_blocks(blocks), 1, 1), (BLOCK_1D, 1, 1))
}

/// (grid, block) of `matmul_{dt}` for C of m×n over `batch` matrices.
pub fn matmul_launch(
    dtype: Dtype,
    m: usize,
    n: usize,
    batch: usize,
) -> ((u32, u32, u32), (u32, u32, u32)) {
    let tile = matmul_tile(dtype) as u64;
    let tiles = |d: usize| clamp_blocks((d as u64).div_ceil(tile));
    (
        (tiles(n), tiles(m), clamp_blocks(batch as u64)),
        MATMUL_BLOCK,
    )
}

/// (grid, block) for `reduce_sum_*` / `reduce_max_*` over x viewed as [outer, red, inner]:
/// threads along `inner` when it is wide (coalesced), otherwise along `red`; when there are few
/// output tiles (e.g. summing a batch axis away), 1024-thread blocks so each tile's reduction
/// is spread over more threads.
pub fn reduce_axis_launch(outer: usize, inner: usize) -> ((u32, u32, u32), (u32, u32, u32)) {
    let bx: u32 = if inner >= 32 {
        32
    } else {
        (inner.max(1) as u32).next_power_of_two()
    };
    let tiles = (outer as u64) * (inner as u64).div_ceil(u64::from(bx));
    let threads = if tiles < 128 { 1024 } else { 256 };
    ((clamp_blocks(tiles), 1, 1), (bx, threads / bx, 1))
}

/// (grid, block) for the row kernels `log_softmax_*` / `logsumexp_*`: one block per row, a
/// multiple of 32 threads, no more than the row needs (up to 256).
pub fn row_launch(rows: usize, cols: usize) -> ((u32, u32, u32), (u32, u32, u32)) {
    let threads = (cols.clamp(1, 256) as u32).div_ceil(32) * 32;
    ((clamp_blocks(rows as u64), 1, 1), (threads, 1, 1))
}
