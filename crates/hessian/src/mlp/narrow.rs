//! The narrow sweep, for models with few parameters: one sample at a time, all directions at
//! once. Every tangent is stored direction-innermost (`[width, directions]`), so each step is a
//! scalar of the primal times a vector over the directions, and the result accumulates in a
//! `[P, directions]` block small enough to stay in the core's cache. The samples are split
//! between the threads, each with its own accumulator. The formulas are those of the wide
//! sweep (see `wide.rs`).

use curvature_tensor::Element;
use rayon::prelude::*;

use super::linalg::has_vector_units;
use super::network::{Network, TangentLayout};

/// Directions are padded to a multiple of this, so the vector loops have no remainder.
pub(crate) const LANES: usize = 8;

/// Samples taken through the sweep together.
const GROUP: usize = 4;

/// How many directions one pass carries: as many as keep a `[P, directions]` block within
/// `budget` bytes, in multiples of [`LANES`].
pub(crate) fn block_directions(params: usize, elem_bytes: usize, budget: usize) -> usize {
    (budget / (params * elem_bytes) / LANES * LANES).max(LANES)
}

/// One thread's tangent buffers, `[GROUP, width, directions]` per layer.
struct Workspace<T> {
    bent: Vec<Vec<T>>,
    dh: Vec<Vec<T>>,
    dg: Vec<T>,
    dg_prev: Vec<T>,
}

/// `out[k] = H·v[k]` for the `[K, P]` batch `v`, at most `directions` at a time. With enough
/// directions, each thread takes its own block of them through all samples; otherwise the
/// threads split the samples of each block.
pub(crate) fn apply<T: Element>(net: &Network<T>, v: &[T], out: &mut [T], directions: usize) {
    let p = net.params;
    let k_total = v.len() / p;
    let threads = rayon::current_num_threads();
    let per_thread = k_total.div_ceil(threads).div_ceil(LANES) * LANES;
    let block = directions.min(per_thread);
    if k_total.div_ceil(block) >= threads {
        out.par_chunks_mut(block * p)
            .zip(v.par_chunks(block * p))
            .for_each(|(out, v)| {
                let (vt, width) = transpose_block(v, p);
                let acc = accumulate_samples(net, &vt, width, 0..net.samples);
                untranspose_block(&acc, width, out, p);
            });
    } else {
        for (out, v) in out.chunks_mut(block * p).zip(v.chunks(block * p)) {
            let (vt, width) = transpose_block(v, p);
            let acc = accumulate_samples_parallel(net, &vt, width, threads);
            untranspose_block(&acc, width, out, p);
        }
    }
}

/// `vᵀ` of a block of directions `[count, P]`, zero-padded to `[P, width]`, and `width`.
fn transpose_block<T: Element>(v: &[T], p: usize) -> (Vec<T>, usize) {
    let width = (v.len() / p).div_ceil(LANES) * LANES;
    let mut vt = vec![T::zero(); p * width];
    for (d, row) in v.chunks_exact(p).enumerate() {
        for (q, &value) in row.iter().enumerate() {
            vt[q * width + d] = value;
        }
    }
    (vt, width)
}

/// Writes the `[P, width]` accumulator back as rows `[count, P]`.
fn untranspose_block<T: Element>(acc: &[T], width: usize, out: &mut [T], p: usize) {
    for (d, row) in out.chunks_exact_mut(p).enumerate() {
        for (q, value) in row.iter_mut().enumerate() {
            *value = acc[q * width + d];
        }
    }
}

/// Σ over `samples` of each sample's contribution, `[P, width]`, on the calling thread,
/// compiled for AVX2 and FMA when the CPU has them.
fn accumulate_samples<T: Element>(
    net: &Network<T>,
    vt: &[T],
    width: usize,
    samples: std::ops::Range<usize>,
) -> Vec<T> {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<T: Element>(
            net: &Network<T>,
            vt: &[T],
            width: usize,
            samples: std::ops::Range<usize>,
        ) -> Vec<T> {
            accumulate(net, vt, width, samples)
        }
        if has_vector_units() {
            // SAFETY: the CPU supports the features `avx2` is compiled with.
            return unsafe { avx2(net, vt, width, samples) };
        }
    }
    accumulate(net, vt, width, samples)
}

#[inline(always)]
fn accumulate<T: Element>(
    net: &Network<T>,
    vt: &[T],
    width: usize,
    samples: std::ops::Range<usize>,
) -> Vec<T> {
    let mut acc = vec![T::zero(); vt.len()];
    let mut workspace = Workspace::new(net, width);
    for first in samples.clone().step_by(GROUP) {
        let count = GROUP.min(samples.end - first);
        workspace.samples(net, vt, width, first, count, &mut acc);
    }
    acc
}

/// [`accumulate_samples`] over all samples, split between `threads`, the parts summed.
fn accumulate_samples_parallel<T: Element>(
    net: &Network<T>,
    vt: &[T],
    width: usize,
    threads: usize,
) -> Vec<T> {
    let parts = threads.clamp(1, net.samples);
    let per_part = net.samples.div_ceil(parts);
    let partial: Vec<Vec<T>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let start = (part * per_part).min(net.samples);
            let end = (start + per_part).min(net.samples);
            accumulate_samples(net, vt, width, start..end)
        })
        .collect();
    let mut parts = partial.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![T::zero(); vt.len()]);
    for part in parts {
        for (t, p) in total.iter_mut().zip(part) {
            *t = *t + p;
        }
    }
    total
}

impl<T: Element> Workspace<T> {
    fn new(net: &Network<T>, width: usize) -> Workspace<T> {
        let per_layer = || {
            net.layers
                .iter()
                .map(|d| vec![T::zero(); GROUP * d.outputs * width])
                .collect()
        };
        let widest = net.max_width().max(net.layers[0].inputs);
        Workspace {
            bent: per_layer(),
            dh: per_layer(),
            dg: vec![T::zero(); GROUP * widest * width],
            dg_prev: vec![T::zero(); GROUP * widest * width],
        }
    }

    /// Adds the contributions of samples `first..first + count` (`count ≤ GROUP`) to `acc`
    /// (`[P, width]`). Tangents are `[count, width of the layer, directions]`; the loops over
    /// the group's samples are innermost, so each row of vᵀ and of `acc` is fetched once for
    /// the whole group.
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
        let at = |_: &[T], s: usize, rows: usize, r: usize| (s * rows + r) * width;
        for (l, (dense, primal)) in net.layers.iter().zip(&net.primal).enumerate() {
            let (i, o) = (dense.inputs, dense.outputs);
            let (done, rest) = self.dh.split_at_mut(l);
            let (dz_all, dh_all) = (&mut self.bent[l], &mut rest[0]);
            for out in 0..o {
                let dw = dense.weight_offset + out * i;
                for s in 0..count {
                    let z = at(dz_all, s, o, out);
                    dz_all[z..z + width].copy_from_slice(row(dense.bias_offset + out));
                }
                for j in 0..i {
                    let (x, w) = (row(dw + j), dense.weight[out * i + j]);
                    for s in 0..count {
                        let h = primal.input[(first + s) * i + j];
                        let z = at(dz_all, s, o, out);
                        let dz = &mut dz_all[z..z + width];
                        if l == 0 {
                            axpy(dz, h, x);
                        } else {
                            let d = at(&done[l - 1], s, i, j);
                            axpy2(dz, h, x, w, &done[l - 1][d..d + width]);
                        }
                    }
                }
                for s in 0..count {
                    let e = (first + s) * o + out;
                    let (slope, bend) = (primal.slope[e], primal.bend[e]);
                    let z = at(dz_all, s, o, out);
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
        net.apply_output_curvature(
            dg,
            first,
            TangentLayout::SampleWidthDirection { directions: width },
        );

        for (l, (dense, primal)) in net.layers.iter().zip(&net.primal).enumerate().rev() {
            let (i, o) = (dense.inputs, dense.outputs);
            let dg = &mut self.dg[..count * o * width];
            for s in 0..count {
                for out in 0..o {
                    let slope = primal.slope[(first + s) * o + out];
                    let g = at(dg, s, o, out);
                    for (g, &b) in dg[g..g + width].iter_mut().zip(&self.bent[l][g..g + width]) {
                        *g = slope * *g + b;
                    }
                }
            }
            for out in 0..o {
                let dw = dense.weight_offset + out * i;
                for s in 0..count {
                    let g = at(dg, s, o, out);
                    axpy(
                        acc_row(acc, width, dense.bias_offset + out),
                        T::one(),
                        &dg[g..g + width],
                    );
                }
                for j in 0..i {
                    let a = acc_row(acc, width, dw + j);
                    for s in 0..count {
                        let h = primal.input[(first + s) * i + j];
                        let g = at(dg, s, o, out);
                        if l == 0 {
                            axpy(a, h, &dg[g..g + width]);
                        } else {
                            let grad_z = primal.grad_z[(first + s) * o + out];
                            let d = at(&self.dh[l - 1], s, i, j);
                            let dh = &self.dh[l - 1][d..d + width];
                            axpy2(a, h, &dg[g..g + width], grad_z, dh);
                        }
                    }
                }
            }
            if l == 0 {
                break;
            }
            let dg_prev = &mut self.dg_prev[..count * i * width];
            dg_prev.fill(T::zero());
            for j in 0..i {
                for out in 0..o {
                    let (x, w) = (
                        row(dense.weight_offset + out * i + j),
                        dense.weight[out * i + j],
                    );
                    for s in 0..count {
                        let grad_z = primal.grad_z[(first + s) * o + out];
                        let (g, d) = (at(dg, s, o, out), at(dg_prev, s, i, j));
                        axpy2(&mut dg_prev[d..d + width], w, &dg[g..g + width], grad_z, x);
                    }
                }
            }
            std::mem::swap(&mut self.dg, &mut self.dg_prev);
        }
    }
}

#[inline(always)]
fn acc_row<T>(acc: &mut [T], width: usize, q: usize) -> &mut [T] {
    &mut acc[q * width..][..width]
}

/// `y += a·x`.
#[inline(always)]
fn axpy<T: Element>(y: &mut [T], a: T, x: &[T]) {
    for (y, &x) in y.iter_mut().zip(x) {
        *y = *y + a * x;
    }
}

/// `y += a·x + b·z`.
#[inline(always)]
fn axpy2<T: Element>(y: &mut [T], a: T, x: &[T], b: T, z: &[T]) {
    for ((y, &x), &z) in y.iter_mut().zip(x).zip(z) {
        *y = *y + (a * x + b * z);
    }
}
