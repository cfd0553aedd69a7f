//! Which `gemm_{tile}_{dt}` kernel of `kernels/matmul.cu` runs a product, with how many k
//! splits, and its launch geometry: a deterministic function of (m, n, k, batch, dtype, SM
//! count). The rule (also in `kernels/README.md`):
//!
//! 1. **Tile.** The large tile (f32 128×64, f64 64×64) when the output holds at least one
//!    whole large tile (m ≥ BM and n ≥ BN); otherwise (narrow outputs) the small 32×32 tile.
//! 2. **Split-K.** When the chosen tile's blocks are still fewer than the SMs and k spans at least
//!    two k-slices, with `w = min(⌈sms / blocks⌉, ⌈k / BK⌉, ⌊WORKSPACE / (batch·m·n)⌋)` each split
//!    takes `p = ⌊⌈k / BK⌉ / w⌋` slices (at least 1; more if the workspace needs it), so there
//!    are `s = ⌈⌈k / BK⌉ / p⌉ ≥ w` splits, every one non-empty; each
//!    split writes raw sums into a workspace of `s·batch·m·n` elements and, in the same launch,
//!    the last split of each tile to finish adds them in increasing split order and applies
//!    the epilogue (`kernels/gemm_splitk.cuh`).
//! 3. **Grid.** `(⌈n/BN⌉, ⌈m/BM⌉, batch·s)` blocks of 256 threads, at most one wave: when
//!    that is more than `sms × GEMM_BLOCKS_PER_SM` blocks, the batch·split dimension shrinks
//!    first, then the row tiles, then the column tiles, until it fits, and each block walks
//!    its share of the tiles (every grid dimension of the kernels is a grid-stride loop).

use crate::kernel::{Dtype, Kernel};
use crate::launch::Dim3;

/// Threads of every `gemm_*` block (`(256, 1, 1)`).
pub const GEMM_BLOCK: Dim3 = (256, 1, 1);

/// The most elements a split-K workspace may hold (64 Mi: 256 MiB of f32).
pub const SPLIT_WORKSPACE_ELEMENTS: usize = 1 << 26;

/// Grid dimensions above this are covered by the kernels' grid-stride loops.
const MAX_GRID: u64 = 65_535;

/// Blocks of one `gemm_*` kernel an SM holds at once: every one declares
/// `__launch_bounds__(256, 2)` (at most 128 registers a thread, checked by the NVRTC test) and
/// uses at most 48 KiB of shared memory. One wave is `sms × GEMM_BLOCKS_PER_SM` blocks.
pub const GEMM_BLOCKS_PER_SM: u64 = 2;

/// The block tile of a `gemm_{tile}_{dt}` kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GemmTile {
    /// 128×64 (f32, k-slice 16) or 64×64 (f64, k-slice 16): large outputs.
    Large,
    /// 32×32, k-slice 32: narrow outputs, usually with split-K.
    Small,
}

impl GemmTile {
    /// Every tile, largest first.
    pub const ALL: [GemmTile; 2] = [GemmTile::Large, GemmTile::Small];

    /// The kernel name stem: `large` or `small`.
    pub fn name(self) -> &'static str {
        match self {
            GemmTile::Large => "large",
            GemmTile::Small => "small",
        }
    }

    /// (rows BM, columns BN, k-slice BK) of one block's tile, as `kernels/matmul.cu` defines it.
    pub fn dims(self, dtype: Dtype) -> (usize, usize, usize) {
        match (self, dtype) {
            // 16-bit products run the f32 kernel on widened operands.
            (GemmTile::Large, Dtype::F32 | Dtype::F16 | Dtype::BF16) => (128, 64, 16),
            (GemmTile::Large, Dtype::F64) => (64, 64, 16),
            (GemmTile::Small, _) => (32, 32, 32),
        }
    }
}

/// One product's kernel, k splits and launch geometry ([`select_gemm`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GemmPlan {
    /// The tile of the kernel to launch.
    pub tile: GemmTile,
    /// k ranges computed by separate blocks (1: no split, no workspace, no reduction).
    pub splits: usize,
    /// Grid of the `gemm_{tile}_{dt}` launch.
    pub grid: Dim3,
    /// Block of the `gemm_{tile}_{dt}` launch ([`GEMM_BLOCK`]).
    pub block: Dim3,
}

impl GemmPlan {
    /// The GEMM kernel this plan launches.
    pub fn kernel(&self, dtype: Dtype) -> Kernel {
        Kernel::gemm(self.tile, dtype)
    }

    /// Blocks of the GEMM launch.
    pub fn blocks(&self) -> u64 {
        u64::from(self.grid.0) * u64::from(self.grid.1) * u64::from(self.grid.2)
    }

    /// The k elements each split covers: whole k-slices of the tile.
    pub fn split_len(&self, dtype: Dtype, k: usize) -> usize {
        let (_, _, bk) = self.tile.dims(dtype);
        k.div_ceil(self.splits.max(1)).div_ceil(bk) * bk
    }
}

/// Output tiles of an m×n product over `batch` matrices with the tile `tile`.
fn tile_blocks(tile: GemmTile, dtype: Dtype, m: usize, n: usize, batch: usize) -> u64 {
    let (bm, bn, _) = tile.dims(dtype);
    (m.div_ceil(bm) as u64)
        .saturating_mul(n.div_ceil(bn) as u64)
        .saturating_mul(batch as u64)
}

/// The kernel, splits and geometry for C = op(A)·op(B) with C of m×n, inner dimension k, over
/// `batch` matrices, on a GPU of `sm_count` multiprocessors (the rule in the module docs).
pub fn select_gemm(
    dtype: Dtype,
    m: usize,
    n: usize,
    k: usize,
    batch: usize,
    sm_count: u32,
) -> GemmPlan {
    let sms = u64::from(sm_count.max(1));
    let (large_m, large_n, _) = GemmTile::Large.dims(dtype);
    let tile = if m >= large_m && n >= large_n {
        GemmTile::Large
    } else {
        GemmTile::Small
    };
    let (_, _, bk) = tile.dims(dtype);
    let blocks = tile_blocks(tile, dtype, m, n, batch).max(1);
    let slices = k.div_ceil(bk);
    let outputs = (batch as u64)
        .saturating_mul(m as u64)
        .saturating_mul(n as u64)
        .max(1);
    let mut splits = 1;
    if blocks < sms && slices >= 2 {
        let fill = sms.div_ceil(blocks);
        let room = (SPLIT_WORKSPACE_ELEMENTS as u64 / outputs).max(1) as usize;
        let wanted = fill.min(slices as u64).min(room as u64).max(1) as usize;
        // Whole slices per split, rounded down so the splits reach `wanted`, unless the
        // workspace cannot hold that many.
        let mut per = (slices / wanted).max(1);
        if slices.div_ceil(per) > room {
            per = slices.div_ceil(room);
        }
        splits = slices.div_ceil(per);
    }
    plan_for_tile(dtype, tile, splits, m, n, batch, sm_count)
}

/// The launch of `tile` with `splits` k splits (at least 1) for an m×n output over `batch`
/// matrices on a GPU of `sm_count` multiprocessors: the grid of rule 3 in the module docs.
/// [`select_gemm`] ends here, and so does every plan the autotuner (`gemm_tune`) times.
pub fn plan_for_tile(
    dtype: Dtype,
    tile: GemmTile,
    splits: usize,
    m: usize,
    n: usize,
    batch: usize,
    sm_count: u32,
) -> GemmPlan {
    let (bm, bn, _) = tile.dims(dtype);
    let splits = splits.max(1);
    let wave = u64::from(sm_count.max(1)) * GEMM_BLOCKS_PER_SM;
    let x = (n.div_ceil(bn) as u64).clamp(1, MAX_GRID);
    let y = (m.div_ceil(bm) as u64).clamp(1, MAX_GRID);
    let z = (batch as u64)
        .saturating_mul(splits as u64)
        .clamp(1, MAX_GRID);
    // The largest extent of one dimension that keeps `others × extent` within the wave.
    let fit = |extent: u64, others: u64| extent.min((wave / others).max(1));
    let z = fit(z, x * y);
    let y = fit(y, x * z);
    let x = fit(x, y * z);
    GemmPlan {
        tile,
        splits,
        grid: (x as u32, y as u32, z as u32),
        block: GEMM_BLOCK,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_outputs_take_the_large_tile_without_splits() {
        let plan = select_gemm(Dtype::F32, 4096, 4096, 4096, 1, 132);
        assert_eq!((plan.tile, plan.splits), (GemmTile::Large, 1));
        // 64 × 32 tiles, one wave of 264 blocks walking them.
        assert_eq!(plan.grid, (64, 4, 1));
        let plan = select_gemm(Dtype::F64, 65536, 256, 256, 1, 132);
        assert_eq!(
            (plan.tile, plan.splits, plan.grid),
            (GemmTile::Large, 1, (4, 66, 1))
        );
    }

    #[test]
    fn tiny_outputs_with_long_k_split_to_fill_the_sms() {
        // 10×10 with k = 1000: one small tile, ⌈1000 / 32⌉ = 32 slices → 32 splits.
        let plan = select_gemm(Dtype::F32, 10, 10, 1000, 1, 132);
        assert_eq!((plan.tile, plan.splits), (GemmTile::Small, 32));
        assert_eq!(plan.split_len(Dtype::F32, 1000), 32);
        // 256×256 with k = 65536: 8 large tiles; 4096 slices, 240 per split → 18 splits.
        let plan = select_gemm(Dtype::F32, 256, 256, 65536, 1, 132);
        assert_eq!((plan.tile, plan.splits), (GemmTile::Large, 18));
        assert_eq!(plan.split_len(Dtype::F32, 65536), 3648);
        assert_eq!(plan.blocks(), 144);
        // 10×256 with k = 4096 is narrow: 8 small tiles; 128 slices, 7 per split → 19 splits.
        let plan = select_gemm(Dtype::F64, 10, 256, 4096, 1, 132);
        assert_eq!(
            (plan.tile, plan.splits, plan.blocks()),
            (GemmTile::Small, 19, 152)
        );
    }

    #[test]
    fn batches_that_fill_the_sms_do_not_split() {
        let plan = select_gemm(Dtype::F32, 10, 10, 1000, 141, 132);
        assert_eq!(
            (plan.tile, plan.splits, plan.grid),
            (GemmTile::Small, 1, (1, 1, 141))
        );
    }

    #[test]
    fn grids_stay_within_one_wave() {
        for (m, n, k, batch) in [
            (1000, 10, 10, 141),
            (141_000, 10, 1, 1),
            (4096, 4096, 4096, 1),
            (10, 10, 1000, 1),
            (3, 5, 65, 1000),
            (1 << 20, 1 << 20, 8, 1),
        ] {
            for sms in [1, 7, 132] {
                let plan = select_gemm(Dtype::F32, m, n, k, batch, sms);
                let (bm, bn, _) = plan.tile.dims(Dtype::F32);
                let work = (m.div_ceil(bm) * n.div_ceil(bn)) as u64 * (batch * plan.splits) as u64;
                let wave = u64::from(sms) * GEMM_BLOCKS_PER_SM;
                assert!(
                    plan.blocks() <= wave,
                    "{m}×{n}×{k}×{batch} on {sms}: {plan:?}"
                );
                assert!(
                    plan.blocks() >= wave.min(work) / 2,
                    "{m}×{n}×{k}×{batch}: {plan:?}"
                );
            }
        }
    }

    #[test]
    fn short_k_and_empty_products_never_split() {
        assert_eq!(select_gemm(Dtype::F32, 10, 10, 32, 1, 132).splits, 1);
        assert_eq!(select_gemm(Dtype::F32, 10, 10, 0, 1, 132).splits, 1);
        let empty = select_gemm(Dtype::F64, 0, 0, 1000, 0, 132);
        assert_eq!(empty.grid, (1, 1, 1));
    }

    #[test]
    fn every_split_holds_work() {
        for k in [33, 64, 65, 1000, 4097] {
            for sms in [1, 7, 132] {
                let plan = select_gemm(Dtype::F64, 3, 5, k, 1, sms);
                let len = plan.split_len(Dtype::F64, k);
                assert!((plan.splits - 1) * len < k, "k {k}, {plan:?}");
                assert!(plan.splits * len >= k, "k {k}, {plan:?}");
            }
        }
    }

    #[test]
    fn workspace_stays_bounded() {
        let plan = select_gemm(Dtype::F32, 4000, 4000, 1 << 20, 1, 100_000);
        let outputs = 4000 * 4000;
        assert!(plan.splits * outputs <= SPLIT_WORKSPACE_ELEMENTS.max(outputs));
    }
}
