//! Launch geometry the kernels expect (as documented at the top of each `.cu` file). All
//! kernels loop over their work with grid strides, so these are performance choices; only the
//! block shapes of `gemm_*` (exactly 256 threads, [`crate::gemm_select`]) and of the row kernels
//! (a multiple of 32) are requirements.

/// Block size of the 1D element-wise kernels.
pub const BLOCK_1D: u32 = 256;

/// Upper bound on blocks for grid-stride launches (more buys nothing).
const MAX_BLOCKS: u64 = 65_535;

fn clamp_blocks(n: u64) -> u32 {
    n.clamp(1, MAX_BLOCKS) as u32
}

/// (grid, block) for a 1D grid-stride kernel over `n` elements.
pub fn launch_1d(n: usize) -> ((u32, u32, u32), (u32, u32, u32)) {
    let blocks = (n as u64).div_ceil(u64::from(BLOCK_1D));
    ((clamp_blocks(blocks), 1, 1), (BLOCK_1D, 1, 1))
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

/// Rows and columns of C computed by one tensor-core GEMM block (`matmul_tf32_f32`,
/// `matmul_tf32x3_f32`, `matmul_h16_f16`, `matmul_h16_bf16`).
pub const MATMUL_TENSOR_CORE_TILE: usize = 64;

/// The block of every tensor-core GEMM launch: four warps.
pub const MATMUL_TENSOR_CORE_BLOCK: (u32, u32, u32) = (128, 1, 1);

/// (grid, block) of the tensor-core GEMMs (`matmul_tf32_f32`, `matmul_tf32x3_f32`,
/// `matmul_h16_{f16,bf16}`) for C of m×n over `batch` matrices.
pub fn matmul_tensor_core_launch(
    m: usize,
    n: usize,
    batch: usize,
) -> ((u32, u32, u32), (u32, u32, u32)) {
    let tiles = |d: usize| clamp_blocks((d as u64).div_ceil(MATMUL_TENSOR_CORE_TILE as u64));
    (
        (tiles(n), tiles(m), clamp_blocks(batch as u64)),
        MATMUL_TENSOR_CORE_BLOCK,
    )
}
