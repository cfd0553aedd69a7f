//! Kronecker-factored curvature (KFAC) of the `Linear` and `Conv2d` layers of a
//! [`Sequential`](curvature_nn::Sequential): per layer `A` (second moments of the layer's
//! inputs, with a ones column for the bias) and `G` (of the output curvature's square-root
//! columns backpropagated to the layer's outputs), the block-diagonal operator `G ⊗ A` and its
//! damped inverse.

use curvature_nn::{Conv2d, Linear, Module};
use curvature_tape::{vjp, Tape, Var};
use curvature_tensor::{DType, Device, Tensor, Window2d};

use crate::alloc;
use crate::error::{check_kind, invalid};
use crate::ggn::{curvature_columns, Curvature, IntoOutputLoss};
use crate::linalg::symmetric_eigen;
use crate::operator::{apply, check_batch, LinearOperator};
use crate::{HessianError, Result};

/// A layer found on the forward pass: its name, θ offset, input rows `[n·T, in]`, positions T,
/// output width and whether it has a bias.
struct Found {
    name: String,
    offset: usize,
    rows: Tensor,
    positions: usize,
    outputs: usize,
    bias: bool,
}

/// One `Linear` or `Conv2d` layer's Kronecker factors.
#[derive(Debug, Clone)]
pub struct KfacLayer {
    /// The layer's name: its index in the `Sequential` (`"0"`, `"2"`, …), its parameters'
    /// prefix.
    pub name: String,
    /// Where the layer's weight starts in θ (its bias follows the weight).
    pub offset: usize,
    /// The layer's input width `in` (a convolution's `C · kh · kw`: its weight is the
    /// `[out, C·kh·kw]` matrix acting on `unfold2d` columns).
    pub inputs: usize,
    /// The layer's output width `out` (a convolution's output channels).
    pub outputs: usize,
    /// Whether the layer has a bias (`Linear` always; `Conv2d` optionally).
    pub bias: bool,
    /// T, the positions the weight is applied at per sample: 1 for `Linear`, `oh · ow` for
    /// `Conv2d`.
    pub positions: usize,
    /// `A = 1/n · Σᵢ Σₜ āᵢₜ āᵢₜᵀ`, `[in + b, in + b]`, with `āᵢₜ = [aᵢₜ; 1]` the layer's input
    /// (a convolution's input patch at position t) for sample i, the one only with a bias.
    pub a: Tensor,
    /// `G = 1/T · Σᵢ Σ_r Σₜ gᵢᵣₜ gᵢᵣₜᵀ`, `[out, out]`, with `gᵢᵣₜ = ∂fᵢ/∂sᵢₜᵀ · lᵢᵣ` the
    /// square-root columns `lᵢᵣ` of the output curvature
    /// ([`Ggn::curvature_factors`](crate::Ggn::curvature_factors), which carry the loss's scale)
    /// backpropagated to the layer's pre-activation `sᵢₜ` (Grosse and Martens' KFC for
    /// convolutions; `Linear` has T = 1).
    pub g: Tensor,
}

impl KfacLayer {
    /// The number of the layer's parameters, `out · (in + b)` with b = 1 with a bias.
    pub fn parameters(&self) -> usize {
        self.outputs * (self.inputs + usize::from(self.bias))
    }
}

/// KFAC of a [`Sequential`](curvature_nn::Sequential) whose parameters all belong to `Linear`
/// and single-group `Conv2d` layers (the other layers parameter-free and row-independent:
/// activations, pooling, `Dropout`, `Flatten`), as a block-diagonal [`LinearOperator`] on θ:
/// the block of layer l is `G ⊗ A` ([`KfacLayer`]) on the layer's parameters as the row-major
/// matrix `[W | b]` (`[out, in + 1]`, `[out, in]` without a bias; i.e. `A ⊗ G` on its
/// column-major vec), applied as `X ↦ G X A`. For `Linear` layers it approximates the GGN's
/// (or Fisher's) diagonal block `Σᵢ (Σ_r gᵢᵣgᵢᵣᵀ) ⊗ āᵢāᵢᵀ`, and equals it for one sample;
/// for convolutions it further treats positions as independent (exact for one sample and one
/// output position). Memory: the factors, plus `R · n · O` cotangents and `R · n · T · out`
/// gradients per layer while they are built (R = O for the GGN, M for a Monte-Carlo Fisher,
/// 1 for the empirical Fisher).
pub struct Kfac {
    layers: Vec<KfacLayer>,
    dim: usize,
    dtype: DType,
    device: Device,
}

impl Kfac {
    /// The factors of every `Linear` and `Conv2d` layer of `model` for `loss(model(x), y)` with the output
    /// curvature `curvature` ([`Curvature::Ggn`]: exact `√H` columns; a Monte-Carlo Fisher:
    /// its sampled gradients; the empirical Fisher: each sample's gradient). `x` is `[n, …]`.
    pub fn new<M: Module + ?Sized>(
        model: &M,
        loss: impl IntoOutputLoss,
        x: &Tensor,
        y: &Tensor,
        curvature: Curvature,
    ) -> Result<Kfac> {
        const OP: &str = "Kfac::new";
        let loss = loss.into_output_loss()?;
        let (params, dtype, device) =
            crate::model::check_model(OP, model, std::slice::from_ref(x))?;
        let dim = alloc::sum(
            OP,
            "the parameters",
            &params.iter().map(Tensor::elem_count).collect::<Vec<_>>(),
        )?;
        let seq = model
            .as_sequential()
            .ok_or_else(|| invalid(OP, "KFAC needs a Sequential of Linear layers"))?;
        if x.rank() < 2 || x.dims()[0] == 0 {
            return Err(invalid(
                OP,
                format!(
                    "needs a batch of inputs [n, …] with n ≥ 1, got {}",
                    x.shape()
                ),
            ));
        }
        let n = x.dims()[0];
        let tape = Tape::new();
        let mut h = tape.constant(x.clone());
        let mut probes: Vec<Var> = Vec::new();
        let mut found: Vec<Found> = Vec::new();
        let mut offset = 0;
        for (index, layer) in seq.layers().iter().enumerate() {
            let size: usize = layer.parameters().iter().map(Tensor::elem_count).sum();
            if !layer.rows_independent() {
                return Err(invalid(
                    OP,
                    format!("layer {index} mixes samples (its rows are not independent)"),
                ));
            }
            let consts: Vec<Var> = layer
                .parameters()
                .into_iter()
                .map(|t| tape.constant(t))
                .collect();
            let any = layer.as_any();
            // The layer's inputs as rows [n·T, in] (T positions per sample), and its width.
            let (rows, positions, outputs, bias) = if let Some(linear) =
                any.downcast_ref::<Linear>()
            {
                if h.rank() != 2 {
                    return Err(invalid(
                        OP,
                        format!(
                            "Linear layer {index} receives {} inputs, KFAC needs [n, in]",
                            h.shape()
                        ),
                    ));
                }
                (h.value().clone(), 1, linear.weight.dims()[0], true)
            } else if let Some(conv) = any.downcast_ref::<Conv2d>() {
                let o = conv.options;
                if o.groups != 1 || h.rank() != 4 {
                    return Err(invalid(
                        OP,
                        format!(
                            "Conv2d layer {index}: KFAC needs one group and [n, C, H, W] inputs, got {} groups and {}",
                            o.groups,
                            h.shape()
                        ),
                    ));
                }
                let dims = conv.weight.dims();
                let window = Window2d {
                    kernel: (dims[2], dims[3]),
                    stride: o.stride,
                    padding: o.padding,
                    dilation: o.dilation,
                };
                // [n, C·kh·kw, T] → [n·T, C·kh·kw]
                let columns = h.value().unfold2d(&window)?;
                let (k, t) = (columns.dims()[1], columns.dims()[2]);
                let count = alloc::product(OP, "the layer's input rows", &[n, t])?;
                let rows = columns.permute(&[0, 2, 1])?.reshape([count, k])?;
                (rows, t, dims[0], conv.bias.is_some())
            } else if size != 0 {
                return Err(invalid(
                    OP,
                    format!(
                        "layer {index} has parameters but is neither Linear nor Conv2d, which KFAC covers"
                    ),
                ));
            } else {
                h = layer.forward_with(&[], &h)?;
                continue;
            };
            let s = layer.forward_with(&consts, &h)?;
            let probe = tape.leaf(Tensor::zeros(s.shape().clone(), dtype, device)?);
            h = s.add(&probe)?;
            probes.push(probe);
            found.push(Found {
                name: index.to_string(),
                offset,
                rows,
                positions,
                outputs,
                bias,
            });
            offset += size;
        }
        if found.is_empty() {
            return Err(invalid(OP, "the model has no Linear or Conv2d layer"));
        }
        let (columns, r) = curvature_columns(OP, loss, curvature, h.value(), y)?;
        let o = h.value().elem_count() / n;
        // Cotangents [R, n, O]: column r of every sample's square root at once.
        let cot = Tensor::from_f64s(&columns, [n, o, r], dtype, device)?
            .permute(&[2, 0, 1])?
            .reshape(h.dims().iter().fold(vec![r], |mut d, &e| {
                d.push(e);
                d
            }))?;
        let grads = vjp(std::slice::from_ref(&h), &[h.constant(cot)], &probes, false)?;
        let mut layers = Vec::with_capacity(found.len());
        for (f, g) in found.into_iter().zip(grads) {
            // [R, n, out, T…] → [R·n·T, out]
            let t = f.positions;
            let count = alloc::product(OP, "the layer's gradients", &[r, n, t])?;
            let g = g
                .value()
                .reshape([r * n, f.outputs, t])?
                .permute(&[0, 2, 1])?
                .reshape([count, f.outputs])?;
            let abar = if f.bias {
                let ones = Tensor::ones([f.rows.dims()[0], 1], dtype, device)?;
                Tensor::cat(&[&f.rows, &ones], 1)?
            } else {
                f.rows
            };
            layers.push(KfacLayer {
                name: f.name,
                offset: f.offset,
                inputs: abar.dims()[1] - usize::from(f.bias),
                outputs: f.outputs,
                bias: f.bias,
                positions: t,
                a: abar
                    .transpose(0, 1)?
                    .matmul(&abar)?
                    .mul_scalar(1.0 / n as f64)?,
                g: g.transpose(0, 1)?.matmul(&g)?.mul_scalar(1.0 / t as f64)?,
            });
        }
        Ok(Kfac {
            layers,
            dim,
            dtype,
            device,
        })
    }

    /// The layers' factors, in order.
    pub fn layers(&self) -> &[KfacLayer] {
        &self.layers
    }

    /// Layer `index`'s block `G ⊗ A` as a dense `[p, p]` matrix in θ's order (the weight
    /// row-major, then the bias).
    pub fn block(&self, index: usize) -> Result<Tensor> {
        let layer = self.layer("Kfac::block", index)?;
        let p = layer.parameters();
        let eye = Tensor::eye(p, p, self.dtype, self.device)?;
        layer_apply(layer, &eye, |x| Ok(layer.g.matmul(x)?.matmul(&layer.a)?))
    }

    /// The damped inverse `(G ⊗ A + λI)⁻¹` of every block, for `damping` λ > 0: with
    /// `G = Q_G Λ_G Q_Gᵀ` and `A = Q_A Λ_A Q_Aᵀ` (eigendecompositions on the host, in f64),
    /// `X ↦ Q_G [(Q_Gᵀ X Q_A) ⊘ (λ_G λ_Aᵀ + λ)] Q_Aᵀ`.
    pub fn inverse(&self, damping: f64) -> Result<KfacInverse> {
        const OP: &str = "Kfac::inverse";
        if !(damping > 0.0 && damping.is_finite()) {
            return Err(invalid(
                OP,
                format!("damping must be positive and finite, got {damping}"),
            ));
        }
        let mut blocks = Vec::with_capacity(self.layers.len());
        for layer in &self.layers {
            let (lg, qg) = eigen(OP, &layer.g)?;
            let (la, qa) = eigen(OP, &layer.a)?;
            let mut d = alloc::with_capacity(OP, "the inverse's scales", lg.len() * la.len())?;
            for &x in &lg {
                for &y in &la {
                    let denominator = x * y + damping;
                    if denominator <= 0.0 || !denominator.is_finite() {
                        return Err(invalid(
                            OP,
                            format!(
                                "layer {}: λ_G λ_A + damping = {denominator} is not positive",
                                layer.name
                            ),
                        ));
                    }
                    d.push(1.0 / denominator);
                }
            }
            let q = |v: Vec<f64>, k: usize| Tensor::from_f64s(&v, [k, k], self.dtype, self.device);
            blocks.push(InverseBlock {
                layer: layer.clone(),
                qg: q(qg, lg.len())?,
                qa: q(qa, la.len())?,
                scales: Tensor::from_f64s(&d, [lg.len(), la.len()], self.dtype, self.device)?,
            });
        }
        Ok(KfacInverse {
            blocks,
            dim: self.dim,
            dtype: self.dtype,
            device: self.device,
        })
    }

    fn layer(&self, op: &'static str, index: usize) -> Result<&KfacLayer> {
        self.layers.get(index).ok_or_else(|| {
            invalid(
                op,
                format!(
                    "layer {index} asked for, the model has {} Linear layers",
                    self.layers.len()
                ),
            )
        })
    }
}

/// Eigenvalues and row-major eigenvectors (columns) of a small symmetric tensor, on the host.
fn eigen(op: &'static str, m: &Tensor) -> Result<(Vec<f64>, Vec<f64>)> {
    let k = m.dims()[0];
    let (values, vectors) = symmetric_eigen(op, k, &m.to_f64s()?)?;
    let mut rows = Vec::with_capacity(k * k);
    for r in 0..k {
        rows.extend((0..k).map(|c| vectors[(r, c)]));
    }
    Ok((values, rows))
}

/// `f` applied to one layer's slice of the `[K, dim]` batch `v` viewed as `[K, out, in + 1]`
/// (`[W | b]`; `[K, out, in]` without a bias), returned as `[K, p]` in θ's order.
fn layer_apply(
    layer: &KfacLayer,
    v: &Tensor,
    f: impl Fn(&Tensor) -> Result<Tensor>,
) -> Result<Tensor> {
    let k = v.dims()[0];
    let (o, i) = (layer.outputs, layer.inputs);
    let w = v.narrow(1, 0, o * i)?.reshape([k, o, i])?;
    if !layer.bias {
        return Ok(f(&w)?.reshape([k, o * i])?);
    }
    let b = v.narrow(1, o * i, o)?.reshape([k, o, 1])?;
    let y = f(&Tensor::cat(&[&w, &b], 2)?)?;
    let yw = y.narrow(2, 0, i)?.reshape([k, o * i])?;
    let yb = y.narrow(2, i, 1)?.reshape([k, o])?;
    Ok(Tensor::cat(&[&yw, &yb], 1)?)
}

/// One block's map of `[K, out, in + 1]` batches.
type BlockFn<'a> = Box<dyn Fn(&Tensor) -> Result<Tensor> + 'a>;

/// The blocks of `layers` applied to `v`, concatenated in θ's order.
fn block_diagonal<'a>(
    layers: impl Iterator<Item = (&'a KfacLayer, BlockFn<'a>)>,
    v: &Tensor,
) -> Result<Tensor> {
    let parts = layers
        .map(|(layer, f)| layer_apply(layer, &v.narrow(1, layer.offset, layer.parameters())?, f))
        .collect::<Result<Vec<_>>>()?;
    Ok(Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1)?)
}

impl LinearOperator for Kfac {
    fn dim(&self) -> usize {
        self.dim
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn device(&self) -> Device {
        self.device
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        check_batch("Kfac::apply_batch", self, v)?;
        block_diagonal(
            self.layers.iter().map(|l| {
                let f: BlockFn<'_> = Box::new(move |x: &Tensor| Ok(l.g.matmul(x)?.matmul(&l.a)?));
                (l, f)
            }),
            v,
        )
    }
}

struct InverseBlock {
    layer: KfacLayer,
    qg: Tensor,
    qa: Tensor,
    scales: Tensor,
}

/// [`Kfac::inverse`]: `(G ⊗ A + λI)⁻¹` block by block, as a [`LinearOperator`].
pub struct KfacInverse {
    blocks: Vec<InverseBlock>,
    dim: usize,
    dtype: DType,
    device: Device,
}

impl LinearOperator for KfacInverse {
    fn dim(&self) -> usize {
        self.dim
    }

    fn dtype(&self) -> DType {
        self.dtype
    }

    fn device(&self) -> Device {
        self.device
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        check_batch("KfacInverse::apply_batch", self, v)?;
        block_diagonal(
            self.blocks.iter().map(|b| {
                let f: BlockFn<'_> = Box::new(move |x: &Tensor| {
                    let z = b.qg.transpose(0, 1)?.matmul(x)?.matmul(&b.qa)?;
                    let z = z.mul(&b.scales)?;
                    Ok(b.qg.matmul(&z)?.matmul(&b.qa.transpose(0, 1)?)?)
                });
                (&b.layer, f)
            }),
            v,
        )
    }
}

/// How far one layer's KFAC block is from the exact block.
#[derive(Debug, Clone, PartialEq)]
pub struct KfacBlockError {
    /// The layer's name (see [`KfacLayer::name`]).
    pub name: String,
    /// The layer's number of parameters p.
    pub parameters: usize,
    /// `‖K − B‖_F / ‖B‖_F` for the KFAC block K and the exact block B (`‖K‖_F` when B is 0).
    pub relative_frobenius: f64,
}

/// Per layer, the relative Frobenius error of `kfac`'s block against the same diagonal block
/// of `exact` (a [`Ggn`](crate::Ggn) of the same model, loss and data, or any operator on θ),
/// each exact block built from `p` products with identity rows (small models).
pub fn kfac_block_errors<O: LinearOperator + ?Sized>(
    kfac: &Kfac,
    exact: &O,
) -> Result<Vec<KfacBlockError>> {
    const OP: &str = "kfac_block_errors";
    if exact.dim() != kfac.dim {
        return Err(HessianError::VectorLength {
            op: OP,
            expected: kfac.dim,
            got: exact.dim(),
        });
    }
    let probe = Tensor::zeros([1], kfac.dtype, kfac.device)?;
    check_kind(OP, &probe, exact.dtype(), exact.device())?;
    let mut out = Vec::with_capacity(kfac.layers.len());
    for (index, layer) in kfac.layers.iter().enumerate() {
        let p = layer.parameters();
        let eye = Tensor::eye(p, p, kfac.dtype, kfac.device)?;
        let mut parts: Vec<Tensor> = Vec::new();
        if layer.offset > 0 {
            parts.push(Tensor::zeros([p, layer.offset], kfac.dtype, kfac.device)?);
        }
        parts.push(eye);
        let rest = kfac.dim - layer.offset - p;
        if rest > 0 {
            parts.push(Tensor::zeros([p, rest], kfac.dtype, kfac.device)?);
        }
        let rows = Tensor::cat(&parts.iter().collect::<Vec<_>>(), 1)?;
        let b = apply(exact, &rows)?.narrow(1, layer.offset, p)?.to_f64s()?;
        let k = kfac.block(index)?.to_f64s()?;
        let diff: f64 = k.iter().zip(&b).map(|(x, y)| (x - y) * (x - y)).sum();
        let norm: f64 = b.iter().map(|y| y * y).sum();
        out.push(KfacBlockError {
            name: layer.name.clone(),
            parameters: p,
            relative_frobenius: if norm > 0.0 {
                (diff / norm).sqrt()
            } else {
                diff.sqrt()
            },
        });
    }
    Ok(out)
}
