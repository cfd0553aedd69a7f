//! The narrow sweep, for models with few parameters: a few samples at a time, all directions at
//! once. Every tangent is stored direction-innermost (`[width, directions]`), so each step is a
//! scalar of the primal times a vector over the directions, and the result accumulates in a
//! `[P, directions]` block small enough to stay in the core's cache. The samples are cut into
//! leaves of [`LEAF_SAMPLES`], each summed on one thread with its own accumulator, and the
//! leaves' sums are added up a binary tree whose shape depends on the sample count alone: the
//! result is the same, bit for bit, whatever the number of threads. The formulas are those of
//! the wide sweep (see `wide.rs`).

use curvature_tensor::Element;

use super::network::{zeros, Dense, LayerPrimal, Network};
use super::vector_units::has_vector_units;
use crate::Result;

/// Directions are padded to a multiple of this, so the vector loops have no remainder.
pub(crate) const LANES: usize = 8;

/// Samples taken through the sweep together (`WeightUpdate::apply` is instantiated for groups
/// of 1 to 4).
pub(crate) const GROUP: usize = 4;
const _: () = assert!(GROUP <= 4);

/// Samples per leaf of the reduction tree (a multiple of [`GROUP`]): small enough that a few
/// hundred samples still feed every thread, large enough that the leaves' accumulators and
/// their additions cost little next to the leaves' sweeps.
pub(crate) const LEAF_SAMPLES: usize = 16 * GROUP;
const _: () = assert!(LEAF_SAMPLES % GROUP == 0);

/// How many directions one pass carries: as many as keep a `[P, directions]` block within
/// `budget` bytes, in multiples of [`LANES`].
pub(crate) fn block_directions(params: usize, elem_bytes: usize, budget: usize) -> usize {
    (budget / params.saturating_mul(elem_bytes).max(1) / LANES * LANES).max(LANES)
}

/// One thread's tangent buffers, `[GROUP, width, directions]` per layer.
struct Workspace<T> {
    bent: Vec<Vec<T>>,
    dh: Vec<Vec<T>>,
    dg: Vec<T>,
    dg_prev: Vec<T>,
}

/// `out[k] = H·v[k]` for the `[K, P]` batch `v`, at most `directions` at a time, the samples
/// of each block summed by the fixed tree of [`accumulate_tree`].
pub(crate) fn apply<T: Element>(
    net: &Network<T>,
    v: &[T],
    out: &mut [T],
    directions: usize,
) -> Result<()> {
    let p = net.params;
    let block = directions.saturating_mul(p);
    for (out, v) in out.chunks_mut(block).zip(v.chunks(block)) {
        let (vt, width) = transpose_block(v, p)?;
        let acc = accumulate_tree(net, &vt, width, 0..net.samples)?;
        untranspose_block(&acc, width, out, p);
    }
    Ok(())
}

/// `vᵀ` of a block of directions `[count, P]`, zero-padded to `[P, width]`, and `width`. The
/// block holds at most the narrow block's directions, so `P · width` is small.
fn transpose_block<T: Element>(v: &[T], p: usize) -> Result<(Vec<T>, usize)> {
    let width = (v.len() / p).div_ceil(LANES) * LANES;
    let mut vt = zeros("the transposed directions", p.saturating_mul(width))?;
    for (d, row) in v.chunks_exact(p).enumerate() {
        for (q, &value) in row.iter().enumerate() {
            vt[q * width + d] = value;
        }
    }
    Ok((vt, width))
}

/// Writes the `[P, width]` accumulator back as rows `[count, P]`.
fn untranspose_block<T: Element>(acc: &[T], width: usize, out: &mut [T], p: usize) {
    for (d, row) in out.chunks_exact_mut(p).enumerate() {
        for (q, value) in row.iter_mut().enumerate() {
            *value = acc[q * width + d];
        }
    }
}

/// Σ over `samples` of each sample's contribution, `[P, width]`: a leaf of at most
/// [`LEAF_SAMPLES`] is summed in sample order on the calling thread; a longer range is split
/// at a leaf boundary near its middle, the halves summed in parallel and added left + right.
/// The tree, and so every rounding, depends on the range alone, never on the thread count.
fn accumulate_tree<T: Element>(
    net: &Network<T>,
    vt: &[T],
    width: usize,
    samples: std::ops::Range<usize>,
) -> Result<Vec<T>> {
    let leaves = samples.len().div_ceil(LEAF_SAMPLES);
    if leaves <= 1 {
        return accumulate_samples(net, vt, width, samples);
    }
    let middle = samples.start + leaves / 2 * LEAF_SAMPLES;
    let (left, right) = rayon::join(
        || accumulate_tree(net, vt, width, samples.start..middle),
        || accumulate_tree(net, vt, width, middle..samples.end),
    );
    let (mut total, right) = (left?, right?);
    for (t, r) in total.iter_mut().zip(right) {
        *t = *t + r;
    }
    Ok(total)
}

/// Σ over `samples` of each sample's contribution, `[P, width]`, on the calling thread,
/// compiled for AVX2 and FMA when the CPU has them.
fn accumulate_samples<T: Element>(
    net: &Network<T>,
    vt: &[T],
    width: usize,
    samples: std::ops::Range<usize>,
) -> Result<Vec<T>> {
    let mut acc = zeros("the narrow sweep's accumulator", vt.len())?;
    let mut workspace = Workspace::new(net, width)?;
    #[cfg(target_arch = "x86_64")]
    {
        /// # Safety
        /// The CPU must have AVX2 and FMA.
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Element>(
            net: &Network<T>,
            vt: &[T],
            width: usize,
            samples: std::ops::Range<usize>,
            workspace: &mut Workspace<T>,
            acc: &mut [T],
        ) {
            accumulate(net, vt, width, samples, workspace, acc)
        }
        if has_vector_units() {
            // SAFETY: calling a `#[target_feature]` function is sound when the CPU has those
            // features, which `has_vector_units` has just detected at run time.
            unsafe { avx2(net, vt, width, samples, &mut workspace, &mut acc) };
            return Ok(acc);
        }
    }
    accumulate(net, vt, width, samples, &mut workspace, &mut acc);
    Ok(acc)
}

/// Adds the contributions of `samples` to `acc`, a group of samples at a time.
#[inline(always)]
fn accumulate<T: Element>(
    net: &Network<T>,
    vt: &[T],
    width: usize,
    samples: std::ops::Range<usize>,
    workspace: &mut Workspace<T>,
    acc: &mut [T],
) {
    for first in samples.clone().step_by(GROUP) {
        let count = GROUP.min(samples.end - first);
        workspace.samples(net, vt, width, first, count, acc);
    }
}

impl<T: Element> Workspace<T> {
    /// Buffers for a group of samples; `width · layer width` is at most the `[P, width]` block
    /// (P counts every layer's weights), so the products cannot overflow.
    fn new(net: &Network<T>, width: usize) -> Result<Workspace<T>> {
        let per_layer = || -> Result<Vec<Vec<T>>> {
            net.layers
                .iter()
                .map(|d| zeros("the narrow sweep's tangents", GROUP * d.outputs * width))
                .collect()
        };
        let widest = net.max_width().max(net.layers[0].inputs);
        Ok(Workspace {
            bent: per_layer()?,
            dh: per_layer()?,
            dg: zeros("the narrow sweep's tangents", GROUP * widest * width)?,
            dg_prev: zeros("the narrow sweep's tangents", GROUP * widest * width)?,
        })
    }

    /// Adds the contributions of samples `first..first + count` (`count ≤ GROUP`) to `acc`
    /// (`[P, width]`). Tangents are `[count, width of the layer, directions]`. Sums run four
    /// terms per pass over the row they add to, and each row of `acc` is updated once for the
    /// whole group.
    #[inline(always)]
    fn samples(
        &mut self,
        net: &Network<T>,
        vt: &[T],
        width: usize,
        first: usize,
        count: usize,
        acc: &mut [T],
    ) {
        let row = |q: usize| &vt[q * width..][..width];
        let at = |s: usize, rows: usize, r: usize| offset(s, rows, r, width);
        for (l, (dense, primal)) in net.layers.iter().zip(&net.primal).enumerate() {
            let (i, o) = (dense.inputs, dense.outputs);
            let (done, rest) = self.dh.split_at_mut(l);
            let (dz_all, dh_all) = (&mut self.bent[l], &mut rest[0]);
            for out in 0..o {
                let dw = dense.weight_offset + out * i;
                for s in 0..count {
                    let z = at(s, o, out);
                    dz_all[z..z + width].copy_from_slice(row(dense.bias_offset + out));
                }
                let w = &dense.weight[out * i..][..i];
                for s in 0..count {
                    let h = &primal.input[(first + s) * i..][..i];
                    let z = at(s, o, out);
                    let dz = &mut dz_all[z..z + width];
                    if l == 0 {
                        add_sum(dz, i, |j| (h[j], row(dw + j)));
                    } else {
                        let dh_prev = &done[l - 1];
                        add_pair_sum(dz, i, |j| {
                            let d = at(s, i, j);
                            (h[j], row(dw + j), w[j], &dh_prev[d..d + width])
                        });
                    }
                }
                for s in 0..count {
                    let e = (first + s) * o + out;
                    let (slope, bend) = (primal.slope[e], primal.bend[e]);
                    let z = at(s, o, out);
                    for (z, dh) in dz_all[z..z + width]
                        .iter_mut()
                        .zip(&mut dh_all[z..z + width])
                    {
                        *dh = slope * *z;
                        *z = bend * *z;
                    }
                }
            }
        }

        let last = net.layers.len() - 1;
        let outputs = net.layers[last].outputs;
        let dg = &mut self.dg[..count * outputs * width];
        dg.copy_from_slice(&self.dh[last][..count * outputs * width]);
        net.apply_output_curvature(dg, first, width);

        for (l, (dense, primal)) in net.layers.iter().zip(&net.primal).enumerate().rev() {
            let (i, o) = (dense.inputs, dense.outputs);
            let dg = &mut self.dg[..count * o * width];
            for s in 0..count {
                for out in 0..o {
                    let slope = primal.slope[(first + s) * o + out];
                    let g = at(s, o, out);
                    for (g, &b) in dg[g..g + width].iter_mut().zip(&self.bent[l][g..g + width]) {
                        *g = slope * *g + b;
                    }
                }
            }
            let dh_prev = (l > 0).then(|| &self.dh[l - 1][..]);
            let update = WeightUpdate {
                dense,
                primal,
                first,
                width,
                dg,
                dh_prev,
            };
            match count {
                4 => update.apply::<4>(acc),
                3 => update.apply::<3>(acc),
                2 => update.apply::<2>(acc),
                1 => update.apply::<1>(acc),
                _ => unreachable!("a group holds 1 to {GROUP} samples"),
            }
            if l == 0 {
                break;
            }
            let dg_prev = &mut self.dg_prev[..count * i * width];
            dg_prev.fill(T::zero());
            for j in 0..i {
                for s in 0..count {
                    let d = at(s, i, j);
                    let grad_z = &primal.grad_z[(first + s) * o..][..o];
                    add_pair_sum(&mut dg_prev[d..d + width], o, |out| {
                        let g = at(s, o, out);
                        let w = dense.weight[out * i + j];
                        let x = row(dense.weight_offset + out * i + j);
                        (w, &dg[g..g + width], grad_z[out], x)
                    });
                }
            }
            std::mem::swap(&mut self.dg, &mut self.dg_prev);
        }
    }
}

/// The backward step's contribution to one layer's rows of `acc`, for a group of `G` samples:
/// `(H·v)_b += Σ_s dg_z` and `(H·v)_W += Σ_s dg_z ⊗ h + ∂L/∂z ⊗ dh_prev`, every row of `acc`
/// read and written once for the whole group.
struct WeightUpdate<'a, T> {
    dense: &'a Dense<T>,
    primal: &'a LayerPrimal<T>,
    first: usize,
    width: usize,
    /// The group's dg_z, `[G, outputs, width]`.
    dg: &'a [T],
    /// The group's dh of the layer input, `[G, inputs, width]`; none for the first layer.
    dh_prev: Option<&'a [T]>,
}

impl<'a, T: Element> WeightUpdate<'a, T> {
    #[inline(always)]
    fn apply<const G: usize>(&self, acc: &mut [T]) {
        let (i, o, width) = (self.dense.inputs, self.dense.outputs, self.width);
        let row = |buffer: &'a [T], rows: usize, s: usize, r: usize| {
            &buffer[offset(s, rows, r, width)..][..width]
        };
        let sample = |s: usize| self.first + s;
        for out in 0..o {
            let g: [&[T]; G] = std::array::from_fn(|s| row(self.dg, o, s, out));
            let ones = [T::one(); G];
            add_products(acc_row(acc, width, self.dense.bias_offset + out), ones, g);
            let grad_z: [T; G] = std::array::from_fn(|s| self.primal.grad_z[sample(s) * o + out]);
            let dw = self.dense.weight_offset + out * i;
            for j in 0..i {
                let h: [T; G] = std::array::from_fn(|s| self.primal.input[sample(s) * i + j]);
                let target = acc_row(acc, width, dw + j);
                match self.dh_prev {
                    None => add_products(target, h, g),
                    Some(dh_prev) => {
                        let dh: [&[T]; G] = std::array::from_fn(|s| row(dh_prev, i, s, j));
                        add_product_pairs(target, h, g, grad_z, dh)
                    }
                }
            }
        }
    }
}

/// `y += Σ_{t < count} a_t·x_t` for `term(t) = (a_t, x_t)`, four terms per pass over `y`.
#[inline(always)]
fn add_sum<'a, T: Element>(y: &mut [T], count: usize, term: impl Fn(usize) -> (T, &'a [T])) {
    let mut t = 0;
    while t + 4 <= count {
        let terms: [(T, &[T]); 4] = std::array::from_fn(|g| term(t + g));
        add_products(y, terms.map(|(a, _)| a), terms.map(|(_, x)| x));
        t += 4;
    }
    for t in t..count {
        let (a, x) = term(t);
        add_products(y, [a], [x]);
    }
}

/// `y += Σ_{t < count} a_t·x_t + b_t·z_t` for `term(t) = (a_t, x_t, b_t, z_t)`, four terms
/// per pass over `y`.
#[inline(always)]
fn add_pair_sum<'a, T: Element>(
    y: &mut [T],
    count: usize,
    term: impl Fn(usize) -> (T, &'a [T], T, &'a [T]),
) {
    let mut t = 0;
    while t + 4 <= count {
        let terms: [(T, &[T], T, &[T]); 4] = std::array::from_fn(|g| term(t + g));
        add_product_pairs(
            y,
            terms.map(|(a, ..)| a),
            terms.map(|(_, x, ..)| x),
            terms.map(|(.., b, _)| b),
            terms.map(|(.., z)| z),
        );
        t += 4;
    }
    for t in t..count {
        let (a, x, b, z) = term(t);
        add_product_pairs(y, [a], [x], [b], [z]);
    }
}

/// `y += Σ_g a[g]·x[g]`.
#[inline(always)]
fn add_products<T: Element, const G: usize>(y: &mut [T], a: [T; G], x: [&[T]; G]) {
    let n = y.len();
    let x = x.map(|x| &x[..n]);
    for t in 0..n {
        let mut sum = y[t];
        for g in 0..G {
            sum = sum + a[g] * x[g][t];
        }
        y[t] = sum;
    }
}

/// `y += Σ_g a[g]·x[g] + b[g]·z[g]`.
#[inline(always)]
fn add_product_pairs<T: Element, const G: usize>(
    y: &mut [T],
    a: [T; G],
    x: [&[T]; G],
    b: [T; G],
    z: [&[T]; G],
) {
    let n = y.len();
    let (x, z) = (x.map(|x| &x[..n]), z.map(|z| &z[..n]));
    for t in 0..n {
        let mut sum = y[t];
        for g in 0..G {
            sum = sum + (a[g] * x[g][t] + b[g] * z[g][t]);
        }
        y[t] = sum;
    }
}

/// Where row `r` of sample `s` starts in a `[samples, rows, width]` tangent buffer.
#[inline(always)]
fn offset(s: usize, rows: usize, r: usize, width: usize) -> usize {
    (s * rows + r) * width
}

#[inline(always)]
fn acc_row<T>(acc: &mut [T], width: usize, q: usize) -> &mut [T] {
    &mut acc[q * width..][..width]
}
