//! The activations PyTorch's `nn` modules export as single ops — `PRelu`, `Selu`,
//! `HardSigmoid`, `HardSwish`, `Mish`, `Softsign`, `ThresholdedRelu`, `Celu` — and the variadic
//! `Sum` and `Mean`, each written with differentiable tape ops so that derivatives of every
//! order follow. At the kinks the derivative is PyTorch's: the masks that select a piece are
//! constants, as the tape's `relu` derivative is.

use curvature_tape::Var;
use curvature_tensor::Tensor;

use super::host::broadcast_dims;
use super::operand::{float_input, known_attributes, output_count};
use super::util::attr_float;
use super::{node_error, unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// `Selu`'s α when the attribute is absent: the exact constant, of which ONNX's default
/// (1.67326319217681884765625) is the float32 rounding, so that a float64 model exported from
/// PyTorch (whose exporter leaves the attributes out) computes PyTorch's values.
const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// `Selu`'s γ when the attribute is absent: the exact constant (ONNX's default
/// 1.05070102214813232421875 is its float32 rounding).
const SELU_GAMMA: f64 = 1.050_700_987_355_480_5;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], _ctx: &Ctx) -> Result<Vec<Val>> {
    output_count(node, 1, "output")?;
    let y = match node.op_type.as_str() {
        "Sum" | "Mean" => return variadic(node, inputs).map(|v| vec![Val::Float(v)]),
        "PRelu" => prelu(node, inputs)?,
        op => {
            let known: &[&str] = match op {
                "Selu" => &["alpha", "gamma"],
                "HardSigmoid" => &["alpha", "beta"],
                "ThresholdedRelu" | "Celu" => &["alpha"],
                _ => &[],
            };
            known_attributes(node, known)?;
            if inputs.len() != 1 {
                return Err(node_error(
                    node,
                    format!("expects 1 input, got {}", inputs.len()),
                ));
            }
            let x = float_input(node, inputs, 0, "X")?;
            unary(node, x)?
        }
    };
    Ok(vec![Val::Float(y)])
}

/// A constant mask (1 or 0) computed from the value of `x`, on its tape.
fn mask(x: &Var, f: impl FnOnce(&Tensor) -> curvature_tensor::Result<Tensor>) -> Result<Var> {
    Ok(x.constant(f(x.value())?))
}

fn unary(node: &Node, x: &Var) -> Result<Var> {
    Ok(match node.op_type.as_str() {
        // γ·(x for x > 0, else α·(eˣ − 1)).
        "Selu" => {
            let alpha = attr_float(node, "alpha", SELU_ALPHA)?;
            let gamma = attr_float(node, "gamma", SELU_GAMMA)?;
            x.elu(alpha)?.mul_scalar(gamma)?
        }
        // max(0, min(1, α·x + β)); derivative α strictly inside (0, 1), as PyTorch.
        "HardSigmoid" => {
            let alpha = attr_float(node, "alpha", 0.2)?;
            let beta = attr_float(node, "beta", 0.5)?;
            hard_sigmoid(x, alpha, beta)?
        }
        // x·(x + 3)/6 on [−3, 3] (both ends included, as PyTorch's derivative), 0 below, x
        // above.
        "HardSwish" => {
            let middle = mask(x, |v| v.between(-3.0, 3.0))?;
            let above = mask(x, |v| v.affine(1.0, -3.0)?.step())?;
            let quadratic = x.mul(&x.add_scalar(3.0)?)?.div_scalar(6.0)?;
            quadratic.mul(&middle)?.add(&x.mul(&above)?)?
        }
        // x·tanh(softplus(x)).
        "Mish" => x.mul(&x.softplus()?.tanh()?)?,
        // x / (1 + |x|).
        "Softsign" => x.div(&x.abs()?.add_scalar(1.0)?)?,
        // x where x > α, else 0.
        "ThresholdedRelu" => {
            let alpha = attr_float(node, "alpha", 1.0)?;
            x.mul(&mask(x, |v| v.affine(1.0, -alpha)?.step())?)?
        }
        // max(0, x) + min(0, α·(e^(x/α) − 1)) = α·elu(x/α).
        "Celu" => {
            let alpha = attr_float(node, "alpha", 1.0)?;
            if alpha == 0.0 || !alpha.is_finite() {
                return Err(node_error(
                    node,
                    format!("attribute 'alpha' must be finite and nonzero, got {alpha}"),
                ));
            }
            x.div_scalar(alpha)?.elu(1.0)?.mul_scalar(alpha)?
        }
        other => {
            return Err(unsupported(
                node,
                "op",
                format!("'{other}' is not an activation"),
            ))
        }
    })
}

/// max(0, min(1, α·x + β)) with the derivative α where 0 < α·x + β < 1, else 0.
fn hard_sigmoid(x: &Var, alpha: f64, beta: f64) -> Result<Var> {
    let z = x.affine(alpha, beta)?;
    let inside = mask(&z, |v| v.step()?.mul(&v.affine(-1.0, 1.0)?.step()?))?;
    let saturated = mask(&z, |v| v.affine(-1.0, 1.0)?.step()?.affine(-1.0, 1.0))?;
    Ok(z.mul(&inside)?.add(&saturated)?)
}

/// `PRelu`: x where x > 0, else slope·x, the slope broadcast to x (unidirectionally); the
/// derivative at 0 is the slope, as PyTorch.
fn prelu(node: &Node, inputs: &[Option<Val>]) -> Result<Var> {
    known_attributes(node, &[])?;
    if inputs.len() != 2 {
        return Err(node_error(
            node,
            format!("expects 2 inputs, got {}", inputs.len()),
        ));
    }
    let x = float_input(node, inputs, 0, "X")?;
    let slope = float_input(node, inputs, 1, "slope")?;
    if broadcast_dims(node, x.dims(), slope.dims())? != x.dims() {
        return Err(node_error(
            node,
            format!(
                "slope of shape {} does not broadcast to X {}",
                slope.shape(),
                x.shape()
            ),
        ));
    }
    let positive = mask(x, Tensor::step)?;
    let negative = positive.affine(-1.0, 1.0)?;
    Ok(x.mul(&positive)?.add(&x.mul(&negative)?.mul(slope)?)?)
}

/// `Sum` and `Mean` of one or more float tensors, broadcast together (numpy rules).
fn variadic(node: &Node, inputs: &[Option<Val>]) -> Result<Var> {
    known_attributes(node, &[])?;
    if inputs.is_empty() {
        return Err(node_error(node, "needs at least one input".to_string()));
    }
    let mut total = float_input(node, inputs, 0, "data_0")?.clone();
    for i in 1..inputs.len() {
        let next = float_input(node, inputs, i, "data")?;
        broadcast_dims(node, total.dims(), next.dims())?;
        total = total.add(next)?;
    }
    if node.op_type == "Mean" {
        total = total.div_scalar(inputs.len() as f64)?;
    }
    Ok(total)
}
