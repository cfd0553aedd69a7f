//! A set of scalar functions beyond the standard MLP workloads, for timing Hessian-vector
//! products of functions users write: elementwise chains (Rosenbrock), classification losses
//! (softmax regression, a loss with logsumexp over classes), residual and normalised networks,
//! and a physics-informed loss whose residual holds a derivative of the network with respect to
//! its input (so its Hessian differentiates three times through the tape).
//!
//! Every value (data, parameters, probes) comes from [`uniform`], a counter-based generator
//! (SplitMix64 of `seed · 2⁴⁰ + index`) that `benches/compare_jax_generic.py` evaluates
//! bit for bit in numpy, so both sides of the comparison compute the same products.

use curvature_hessian::{HessianError, PreparedHvp, Result};
use curvature_tape::{grad, GradOptions, Var};
use curvature_tensor::{DType, Device, Tensor};

/// The most elements one generated tensor may have (2²⁸), so a size typo is an error, not an
/// allocation of the whole memory.
pub const MAX_ELEMENTS: usize = 1 << 28;

/// The largest index [`uniform`] accepts: values of one seed are distinct streams for indices
/// below 2⁴⁰.
pub const MAX_INDEX: u64 = 1 << 40;

/// The ε of [`GenericFunction::LayernormMlp`]'s layer norm.
pub const LAYER_NORM_EPS: f64 = 1e-5;

/// One of the benchmark functions; every one is a scalar function of its parameter tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenericFunction {
    /// `Σᵢ 100 (xᵢ₊₁ − xᵢ²)² + (1 − xᵢ)²` over a vector of length `inputs`.
    Rosenbrock,
    /// `−mean_i log_softmax(X W)[i, yᵢ]`, X `[samples, inputs]`, W `[inputs, outputs]`,
    /// labels `yᵢ = 7i mod outputs`.
    SoftmaxRegression,
    /// `h₁ = tanh(X W₀)`, `h₂ = h₁ + tanh(h₁ W₁)`, `mean((h₂ W₂ − Y)²)`; W₀ `[inputs, width]`,
    /// W₁ `[width, width]`, W₂ `[width, outputs]`.
    ResidualMlp,
    /// `h = gelu(layer_norm(X W₀ + b₀))`, `mean((h W₁ + b₁ − Y)²)`; gelu with erf, layer norm
    /// over the `width` features without affine parameters, ε = [`LAYER_NORM_EPS`].
    LayernormMlp,
    /// `z = tanh(X W₀) W₁`, `mean_i logsumexp(zᵢ) − mean_i ⟨zᵢ, Tᵢ⟩` with soft targets T
    /// (rows of positive weights summing to 1) over `outputs` classes.
    LogsumexpLoss,
    /// The residual of `u′ + u = cos x` at `samples` points x ∈ [−1, 1), for the network
    /// `u(x) = tanh(tanh(x W₀ + b₀) W₁ + b₁) W₂ + b₂` (W₀ `[1, width]`): `mean((∂u/∂x + u −
    /// cos x)²)`, with ∂u/∂x taken on the tape and kept differentiable.
    Pinn,
}

/// The sizes a function is built with. Each function reads the fields its documentation
/// names (Rosenbrock only `inputs`, its vector's length; the physics-informed loss ignores
/// `inputs` and `outputs`, both 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Rows of the data (samples, collocation points).
    pub samples: usize,
    /// Features of a sample (Rosenbrock: the vector's length).
    pub inputs: usize,
    /// Hidden width.
    pub width: usize,
    /// Outputs or classes.
    pub outputs: usize,
    /// K, the directions of one batch of Hessian-vector products.
    pub k: usize,
}

/// A function with its data and parameters at concrete sizes, dtype and device.
#[derive(Debug, Clone)]
pub struct GenericProblem {
    /// Which function.
    pub function: GenericFunction,
    /// The sizes it was built with.
    pub sizes: Sizes,
    /// The parameters, in the order of the function's documentation; the operator's vectors
    /// are their flattened values concatenated in this order.
    pub params: Vec<Tensor>,
    /// The data the function holds constant (inputs, targets), in the order of its
    /// documentation.
    pub data: Vec<Tensor>,
    /// Class labels (softmax regression), empty otherwise.
    pub labels: Vec<usize>,
}

/// The seeds of [`uniform`]'s streams: the data, the parameters (one seed per tensor from
/// `PARAMS`) and the probes.
const DATA_X: u64 = 1;
const DATA_Y: u64 = 2;
const PARAMS: u64 = 10;
/// The seed of [`GenericProblem::probes`].
pub const PROBES: u64 = 99;

impl GenericFunction {
    /// Every function, in the order of reports.
    pub const ALL: [GenericFunction; 6] = [
        GenericFunction::Rosenbrock,
        GenericFunction::SoftmaxRegression,
        GenericFunction::ResidualMlp,
        GenericFunction::LayernormMlp,
        GenericFunction::LogsumexpLoss,
        GenericFunction::Pinn,
    ];

    /// The function's name: `rosenbrock`, `softmax_regression`, `residual_mlp`,
    /// `layernorm_mlp`, `logsumexp_loss`, `pinn`.
    pub fn name(self) -> &'static str {
        match self {
            GenericFunction::Rosenbrock => "rosenbrock",
            GenericFunction::SoftmaxRegression => "softmax_regression",
            GenericFunction::ResidualMlp => "residual_mlp",
            GenericFunction::LayernormMlp => "layernorm_mlp",
            GenericFunction::LogsumexpLoss => "logsumexp_loss",
            GenericFunction::Pinn => "pinn",
        }
    }

    /// The function called `name`, or an error listing the names.
    pub fn by_name(name: &str) -> Result<GenericFunction> {
        GenericFunction::ALL
            .into_iter()
            .find(|f| f.name() == name)
            .ok_or_else(|| HessianError::InvalidArgument {
                op: "GenericFunction::by_name",
                msg: format!(
                    "unknown function {name:?}, expected one of {}",
                    GenericFunction::ALL.map(GenericFunction::name).join(", ")
                ),
            })
    }

    /// The benchmark sizes: Rosenbrock P = 100 000, K = 16; softmax regression X [1024, 784],
    /// 10 classes, K = 32; residual MLP 128 wide, n = 512, 10 outputs, K = 32 (P = 34 048);
    /// layer-norm MLP 64 → 128 → 10, n = 512, K = 32; logsumexp loss 64 → 64 → 100 classes,
    /// n = 512, K = 32; physics-informed loss 1 → 64 → 64 → 1 at 256 points, K = 32.
    pub fn benchmark_sizes(self) -> Sizes {
        let (samples, inputs, width, outputs, k) = match self {
            GenericFunction::Rosenbrock => (1, 100_000, 1, 1, 16),
            GenericFunction::SoftmaxRegression => (1024, 784, 1, 10, 32),
            GenericFunction::ResidualMlp => (512, 128, 128, 10, 32),
            GenericFunction::LayernormMlp => (512, 64, 128, 10, 32),
            GenericFunction::LogsumexpLoss => (512, 64, 64, 100, 32),
            GenericFunction::Pinn => (256, 1, 64, 1, 32),
        };
        Sizes {
            samples,
            inputs,
            width,
            outputs,
            k,
        }
    }

    /// The shapes of the parameters at `sizes`, in order.
    pub fn param_shapes(self, sizes: &Sizes) -> Vec<Vec<usize>> {
        let Sizes {
            inputs,
            width,
            outputs,
            ..
        } = *sizes;
        match self {
            GenericFunction::Rosenbrock => vec![vec![inputs]],
            GenericFunction::SoftmaxRegression => vec![vec![inputs, outputs]],
            GenericFunction::ResidualMlp => vec![
                vec![inputs, width],
                vec![width, width],
                vec![width, outputs],
            ],
            GenericFunction::LayernormMlp => vec![
                vec![inputs, width],
                vec![width],
                vec![width, outputs],
                vec![outputs],
            ],
            GenericFunction::LogsumexpLoss => vec![vec![inputs, width], vec![width, outputs]],
            GenericFunction::Pinn => vec![
                vec![1, width],
                vec![width],
                vec![width, width],
                vec![width],
                vec![width, 1],
                vec![1],
            ],
        }
    }

    /// The shapes of the constant data at `sizes`, in order.
    fn data_shapes(self, sizes: &Sizes) -> Vec<Vec<usize>> {
        let Sizes {
            samples,
            inputs,
            outputs,
            ..
        } = *sizes;
        match self {
            GenericFunction::Rosenbrock => vec![],
            GenericFunction::SoftmaxRegression => vec![vec![samples, inputs]],
            GenericFunction::ResidualMlp
            | GenericFunction::LayernormMlp
            | GenericFunction::LogsumexpLoss => {
                vec![vec![samples, inputs], vec![samples, outputs]]
            }
            GenericFunction::Pinn => vec![vec![samples, 1]],
        }
    }

    /// The half-width `a` of the interval `[−a, a)` a parameter of `shape` is drawn from:
    /// Rosenbrock 1; softmax regression 0.01; the networks 1/√fan-in for weights and
    /// 0.1 for biases.
    fn param_scale(self, shape: &[usize]) -> f64 {
        match self {
            GenericFunction::Rosenbrock => 1.0,
            GenericFunction::SoftmaxRegression => 0.01,
            _ if shape.len() == 1 => 0.1,
            _ => 1.0 / (shape[0] as f64).sqrt(),
        }
    }

    /// Builds the function at `sizes` in `dtype` on `device`: every value drawn by [`uniform`]
    /// (data in [−1, 1), parameters by [`GenericFunction::param_shapes`]' order from seeds
    /// 10, 11, …; softmax regression's labels `7i mod outputs`; the logsumexp loss's targets
    /// normalised rows of values in [0, 1)). Rejects zero sizes, Rosenbrock with fewer than 2
    /// inputs, a physics-informed loss with `inputs` or `outputs` other than 1, and tensors of
    /// more than [`MAX_ELEMENTS`] elements.
    pub fn build(self, sizes: Sizes, dtype: DType, device: Device) -> Result<GenericProblem> {
        const OP: &str = "GenericFunction::build";
        let fields = [
            sizes.samples,
            sizes.inputs,
            sizes.width,
            sizes.outputs,
            sizes.k,
        ];
        if fields.contains(&0) {
            return Err(invalid(
                OP,
                format!(
                    "{}: every size must be positive, got {sizes:?}",
                    self.name()
                ),
            ));
        }
        if self == GenericFunction::Rosenbrock && sizes.inputs < 2 {
            return Err(invalid(
                OP,
                format!("rosenbrock needs at least 2 inputs, got {}", sizes.inputs),
            ));
        }
        if self == GenericFunction::Pinn && (sizes.inputs != 1 || sizes.outputs != 1) {
            return Err(invalid(
                OP,
                format!(
                    "pinn has one input and one output, got inputs {} and outputs {}",
                    sizes.inputs, sizes.outputs
                ),
            ));
        }
        let tensor = |seed: u64, shape: &[usize], scale: f64| -> Result<Tensor> {
            let count = element_count(OP, shape)?;
            let values = uniform(seed, count, -scale, scale)?;
            Ok(Tensor::from_f64s(&values, shape.to_vec(), dtype, device)?)
        };
        let params = self
            .param_shapes(&sizes)
            .iter()
            .enumerate()
            .map(|(i, shape)| tensor(PARAMS + i as u64, shape, self.param_scale(shape)))
            .collect::<Result<Vec<_>>>()?;
        let mut data = Vec::new();
        for (seed, shape) in [DATA_X, DATA_Y].into_iter().zip(self.data_shapes(&sizes)) {
            if self == GenericFunction::LogsumexpLoss && seed == DATA_Y {
                data.push(soft_targets(&shape, dtype, device)?);
            } else {
                data.push(tensor(seed, &shape, 1.0)?);
            }
        }
        let labels = if self == GenericFunction::SoftmaxRegression {
            (0..sizes.samples)
                .map(|i| (7 * (i % sizes.outputs)) % sizes.outputs)
                .collect()
        } else {
            Vec::new()
        };
        Ok(GenericProblem {
            function: self,
            sizes,
            params,
            data,
            labels,
        })
    }
}

impl GenericProblem {
    /// P, the number of parameters (the operator's dimension).
    pub fn dim(&self) -> usize {
        self.params.iter().map(Tensor::elem_count).sum()
    }

    /// The function's value at `params` (the problem's parameter shapes, on one tape), recorded
    /// so it can be differentiated to any order.
    pub fn evaluate(&self, params: &[Var]) -> curvature_tape::Result<Var> {
        let expected = self.params.len();
        if params.len() != expected {
            return Err(curvature_tape::TapeError::LengthMismatch {
                what: "GenericProblem::evaluate parameters",
                expected,
                got: params.len(),
            });
        }
        let data = |i: usize| {
            self.data
                .get(i)
                .ok_or(curvature_tape::TapeError::LengthMismatch {
                    what: "GenericProblem::evaluate data tensors",
                    expected: i + 1,
                    got: self.data.len(),
                })
        };
        let constant = |i: usize| data(i).map(|t| params[0].constant(t.clone()));
        match self.function {
            GenericFunction::Rosenbrock => {
                let x = &params[0];
                let n = match x.dims() {
                    [n] if *n >= 2 => *n,
                    _ => {
                        return Err(curvature_tape::TapeError::InvalidArgument {
                            op: "GenericProblem::evaluate",
                            msg: format!(
                                "rosenbrock needs a vector of at least 2 elements, got shape {}",
                                x.shape()
                            ),
                        })
                    }
                };
                let head = x.narrow(0, 0, n - 1)?;
                let tail = x.narrow(0, 1, n - 1)?;
                let valley = tail.sub(&head.square()?)?.square()?.mul_scalar(100.0)?;
                valley.add(&head.sub_scalar(1.0)?.square()?)?.sum_all()
            }
            GenericFunction::SoftmaxRegression => {
                let logits = constant(0)?.matmul(&params[0])?;
                let picked = logits.log_softmax(1)?.gather_labels(&self.labels)?;
                picked.mean_all()?.mul_scalar(-1.0)
            }
            GenericFunction::ResidualMlp => {
                let h1 = constant(0)?.matmul(&params[0])?.tanh()?;
                let h2 = h1.add(&h1.matmul(&params[1])?.tanh()?)?;
                let out = h2.matmul(&params[2])?;
                out.sub(&constant(1)?)?.square()?.mean_all()
            }
            GenericFunction::LayernormMlp => {
                let pre = constant(0)?.matmul(&params[0])?.add(&params[1])?;
                let h = pre.layer_norm(LAYER_NORM_EPS)?.gelu()?;
                let out = h.matmul(&params[2])?.add(&params[3])?;
                out.sub(&constant(1)?)?.square()?.mean_all()
            }
            GenericFunction::LogsumexpLoss => {
                let z = constant(0)?
                    .matmul(&params[0])?
                    .tanh()?
                    .matmul(&params[1])?;
                let normaliser = z.logsumexp(1, false)?.mean_all()?;
                let fit = z.mul(&constant(1)?)?.sum(&[1], false)?.mean_all()?;
                normaliser.sub(&fit)
            }
            GenericFunction::Pinn => {
                let points = params[0].tape().leaf(data(0)?.clone());
                let h1 = points.matmul(&params[0])?.add(&params[1])?.tanh()?;
                let h2 = h1.matmul(&params[2])?.add(&params[3])?.tanh()?;
                let u = h2.matmul(&params[4])?.add(&params[5])?;
                let du = grad(
                    &[u.sum_all()?],
                    std::slice::from_ref(&points),
                    GradOptions::create_graph(),
                )?;
                let source = points.constant(data(0)?.cos()?);
                let residual = du[0].add(&u)?.sub(&source)?;
                residual.square()?.mean_all()
            }
        }
    }

    /// The Hessian of the function at the problem's parameters as a prepared operator.
    pub fn prepare(&self) -> Result<PreparedHvp> {
        PreparedHvp::new(|p: &[Var]| self.evaluate(p), &self.params)
    }

    /// `k` probe directions `[k, P]` in [−1, 1) from [`uniform`]'s stream [`PROBES`], in the
    /// problem's dtype on its device.
    pub fn probes(&self, k: usize) -> Result<Tensor> {
        const OP: &str = "GenericProblem::probes";
        let first = self
            .params
            .first()
            .ok_or_else(|| invalid(OP, "the problem has no parameters".into()))?;
        let count = element_count(OP, &[k, self.dim()])?;
        let values = uniform(PROBES, count, -1.0, 1.0)?;
        Ok(Tensor::from_f64s(
            &values,
            [k, self.dim()],
            first.dtype(),
            first.device(),
        )?)
    }
}

/// Soft targets `[n, classes]`: the values of stream [`DATA_Y`] in [0, 1), plus ½, each row
/// divided by its sum (computed in f64 in index order).
fn soft_targets(shape: &[usize], dtype: DType, device: Device) -> Result<Tensor> {
    let count = element_count("soft_targets", shape)?;
    let mut values = uniform(DATA_Y, count, 0.5, 1.5)?;
    let classes = shape[shape.len() - 1];
    for row in values.chunks_mut(classes) {
        let total: f64 = row.iter().sum();
        row.iter_mut().for_each(|v| *v /= total);
    }
    Ok(Tensor::from_f64s(&values, shape.to_vec(), dtype, device)?)
}

/// SplitMix64's output function (Steele, Lea and Flood 2014) applied to `state`.
pub fn splitmix64(state: u64) -> u64 {
    let mut z = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// `count` values in `[lo, hi)`: value i is `lo + (hi − lo) · (h >> 11) · 2⁻⁵³` with
/// `h = splitmix64(seed · 2⁴⁰ + i)`, every step exact or one IEEE f64 rounding, so numpy
/// reproduces it bit for bit. `count` must be at most [`MAX_ELEMENTS`] and the seed below 2²⁴.
pub fn uniform(seed: u64, count: usize, lo: f64, hi: f64) -> Result<Vec<f64>> {
    if count > MAX_ELEMENTS {
        return Err(HessianError::TooLarge {
            op: "uniform",
            what: "count",
            value: count,
            limit: MAX_ELEMENTS,
        });
    }
    if seed >= 1 << 24 {
        return Err(invalid(
            "uniform",
            format!("seed {seed} must be below 2^24"),
        ));
    }
    let base = seed << 40;
    Ok((0..count as u64)
        .map(|i| {
            let unit = (splitmix64(base + i) >> 11) as f64 * (-53f64).exp2();
            lo + (hi - lo) * unit
        })
        .collect())
}

fn element_count(op: &'static str, shape: &[usize]) -> Result<usize> {
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| HessianError::SizeOverflow {
            op,
            what: "a generated tensor",
            sizes: shape.to_vec(),
        })?;
    if count > MAX_ELEMENTS {
        return Err(HessianError::TooLarge {
            op,
            what: "the elements of a generated tensor",
            value: count,
            limit: MAX_ELEMENTS,
        });
    }
    Ok(count)
}

fn invalid(op: &'static str, msg: String) -> HessianError {
    HessianError::InvalidArgument { op, msg }
}
