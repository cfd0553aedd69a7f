//! The wide sweep: one direction at a time through all n samples, every product a matrix
//! product of the `gemm` crate ([`host_gemm`](curvature_tensor::host_gemm)); directions run in parallel, one workspace per thread. Each
//! direction is swept start to finish by one workspace, and `gemm` splits a product over
//! threads by output tiles only, so a direction's result is the same, bit for bit, whichever
//! thread sweeps it and however many there are.
//!
//! For direction (dW, db) and layer l, with the primal h (input), z, σ', ∂L/∂z of the layer:
//! forward `dz = h·dWᵀ + db + dh_prev·Wᵀ`, `dh = σ'(z) ⊙ dz`; at the output `dg = C·dh` (the loss
//! curvature); backward `dg_z = σ'(z) ⊙ dg + (∂L/∂h ⊙ σ''(z)) ⊙ dz`, then
//! `(H·v)_W = dg_zᵀ·h + (∂L/∂z)ᵀ·dh_prev`, `(H·v)_b = Σ_rows dg_z` and
//! `dg_prev = dg_z·W + (∂L/∂z)·dW`.

use curvature_tensor::host_gemm::{gemm, Gemm, Operand};
use curvature_tensor::Element;
use rayon::prelude::*;

use super::network::{zeros, Network};
use super::vector_units::with_vector_units;
use crate::Result;

/// Per-thread buffers of one direction's tangents.
struct Workspace<T> {
    /// Per layer `[n, outputs]`: dz, then (∂L/∂h ⊙ σ''(z)) ⊙ dz once dh is taken from it.
    bent: Vec<Vec<T>>,
    /// Per layer `[n, outputs]`: dh = σ'(z) ⊙ dz.
    dh: Vec<Vec<T>>,
    /// The gradient's tangent at the current layer output and at its input.
    dg: Vec<T>,
    dg_prev: Vec<T>,
}

impl<T: Element> Workspace<T> {
    /// Buffers for one direction; every `n × width` product was checked by `Network::new`.
    fn new(net: &Network<T>) -> Result<Workspace<T>> {
        let per_layer = || -> Result<Vec<Vec<T>>> {
            net.layers
                .iter()
                .map(|d| zeros("the wide sweep's tangents", net.samples * d.outputs))
                .collect()
        };
        let widest = net.max_width().max(net.layers[0].inputs);
        Ok(Workspace {
            bent: per_layer()?,
            dh: per_layer()?,
            dg: zeros("the wide sweep's tangents", net.samples * widest)?,
            dg_prev: zeros("the wide sweep's tangents", net.samples * widest)?,
        })
    }

    /// Writes `H·v` for one direction `v` (`[P]`) into `out` (`[P]`).
    fn sweep(&mut self, net: &Network<T>, v: &[T], out: &mut [T], parallel: bool) -> Result<()> {
        let n = net.samples;
        for (l, (dense, primal)) in net.layers.iter().zip(&net.primal).enumerate() {
            let (i, o) = (dense.inputs, dense.outputs);
            let dz = &mut self.bent[l];
            let db = &v[dense.bias_offset..][..o];
            dz.chunks_exact_mut(o)
                .for_each(|row| row.copy_from_slice(db));
            let dw = &v[dense.weight_offset..][..o * i];
            gemm(Gemm {
                m: n,
                n: o,
                k: i,
                dst: Operand::row_major(dz, o),
                accumulate: true,
                lhs: Operand::row_major(&primal.input, i),
                rhs: Operand::transposed(dw, i),
                parallel,
            })?;
            if l > 0 {
                gemm(Gemm {
                    m: n,
                    n: o,
                    k: i,
                    dst: Operand::row_major(dz, o),
                    accumulate: true,
                    lhs: Operand::row_major(&self.dh[l - 1], i),
                    rhs: Operand::transposed(&dense.weight, i),
                    parallel,
                })?;
            }
            let dh = &mut self.dh[l];
            with_vector_units(|| split_tangent(dz, dh, &primal.slope, &primal.bend));
        }

        let last = net.layers.len() - 1;
        let width = net.layers[last].outputs;
        let dg = &mut self.dg[..n * width];
        dg.copy_from_slice(&self.dh[last]);
        net.apply_output_curvature(dg, 0, 1);

        for (l, (dense, primal)) in net.layers.iter().zip(&net.primal).enumerate().rev() {
            let (i, o) = (dense.inputs, dense.outputs);
            let dg = &mut self.dg[..n * o];
            with_vector_units(|| gradient_tangent(dg, &primal.slope, &self.bent[l]));
            let (out_w, out_b) = out[dense.weight_offset..][..o * i + o].split_at_mut(o * i);
            column_sums(dg, out_b);
            gemm(Gemm {
                m: o,
                n: i,
                k: n,
                dst: Operand::row_major(out_w, i),
                accumulate: false,
                lhs: Operand::transposed(dg, o),
                rhs: Operand::row_major(&primal.input, i),
                parallel,
            })?;
            if l == 0 {
                break;
            }
            let dh_prev = &self.dh[l - 1];
            gemm(Gemm {
                m: o,
                n: i,
                k: n,
                dst: Operand::row_major(out_w, i),
                accumulate: true,
                lhs: Operand::transposed(&primal.grad_z, o),
                rhs: Operand::row_major(dh_prev, i),
                parallel,
            })?;
            let dg_prev = &mut self.dg_prev[..n * i];
            gemm(Gemm {
                m: n,
                n: i,
                k: o,
                dst: Operand::row_major(dg_prev, i),
                accumulate: false,
                lhs: Operand::row_major(dg, o),
                rhs: Operand::row_major(&dense.weight, i),
                parallel,
            })?;
            gemm(Gemm {
                m: n,
                n: i,
                k: o,
                dst: Operand::row_major(dg_prev, i),
                accumulate: true,
                lhs: Operand::row_major(&primal.grad_z, o),
                rhs: Operand::row_major(&v[dense.weight_offset..][..o * i], i),
                parallel,
            })?;
            std::mem::swap(&mut self.dg, &mut self.dg_prev);
        }
        Ok(())
    }
}

/// `dh = σ' ⊙ dz` and `dz ← bend ⊙ dz`, in one pass.
#[inline(always)]
fn split_tangent<T: Element>(dz: &mut [T], dh: &mut [T], slope: &[T], bend: &[T]) {
    for (((z, h), &s), &b) in dz.iter_mut().zip(dh.iter_mut()).zip(slope).zip(bend) {
        *h = s * *z;
        *z = b * *z;
    }
}

/// `dg ← σ' ⊙ dg + bent`, the tangent of ∂L/∂z.
#[inline(always)]
fn gradient_tangent<T: Element>(dg: &mut [T], slope: &[T], bent: &[T]) {
    for ((g, &s), &b) in dg.iter_mut().zip(slope).zip(bent) {
        *g = s * *g + b;
    }
}

/// `sums[c] = Σ_r rows[r, c]`.
fn column_sums<T: Element>(rows: &[T], sums: &mut [T]) {
    sums.fill(T::zero());
    for row in rows.chunks_exact(sums.len()) {
        for (s, &v) in sums.iter_mut().zip(row) {
            *s = *s + v;
        }
    }
}

/// `out[k] = H·v[k]` for the `[K, P]` batch `v`. The directions are split into one contiguous
/// share per thread, each swept with a single workspace (how they are shared changes only who
/// sweeps a direction, not its result).
pub(crate) fn apply<T: Element>(net: &Network<T>, v: &[T], out: &mut [T]) -> Result<()> {
    let p = net.params;
    let directions = v.len() / p;
    let threads = rayon::current_num_threads();
    // With fewer directions than threads, the threads share each product instead.
    let parallel = directions < threads;
    let share = directions.div_ceil(threads).max(1) * p;
    out.par_chunks_mut(share)
        .zip(v.par_chunks(share))
        .try_for_each(|(out, v)| {
            let mut workspace = Workspace::new(net)?;
            for (out, v) in out.chunks_exact_mut(p).zip(v.chunks_exact(p)) {
                workspace.sweep(net, v, out, parallel)?;
            }
            Ok(())
        })
}
