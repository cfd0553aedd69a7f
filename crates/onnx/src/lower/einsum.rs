//! `Einsum` of one or two float operands, the forms PyTorch exports for attention
//! (`bhqd,bhkd->bhqk`), bilinear layers (`bn,anm,bm->ba` split in two) and transposes: indices
//! in one operand only and absent from the output are summed first, then the two operands are
//! permuted to `[batch, free, contracted]` and `[batch, contracted, free]`, multiplied as
//! batched matrices, and the result permuted to the output's order. Every step is a tape op.
//!
//! Ellipses (`...`), an index repeated within one operand (diagonals, traces) and more than
//! two operands are refused.

use curvature_tape::Var;

use super::operand::{float_input, known_attributes, output_count, product};
use super::util::attr_string;
use super::{node_error, unsupported, Ctx, Val};
use crate::ir::Node;
use crate::Result;

/// Lowers one node of this family.
pub fn lower(node: &Node, inputs: &[Option<Val>], _ctx: &Ctx) -> Result<Vec<Val>> {
    known_attributes(node, &["equation"])?;
    output_count(node, 1, "Output")?;
    let equation = attr_string(node, "equation", "")?;
    let (operands, output) = parse(node, &equation)?;
    if operands.len() != inputs.len() {
        return Err(node_error(
            node,
            format!(
                "equation '{equation}' names {} operands, the node has {} inputs",
                operands.len(),
                inputs.len()
            ),
        ));
    }
    let vars = (0..inputs.len())
        .map(|i| float_input(node, inputs, i, "Inputs"))
        .collect::<Result<Vec<_>>>()?;
    for (i, (letters, v)) in operands.iter().zip(&vars).enumerate() {
        if letters.len() != v.rank() {
            return Err(node_error(
                node,
                format!(
                    "operand {i} '{}' has {} indices but rank {} (shape {})",
                    letters.iter().collect::<String>(),
                    letters.len(),
                    v.rank(),
                    v.shape()
                ),
            ));
        }
    }
    let size_of = |c: char| -> Result<usize> {
        let mut size = None;
        for (letters, v) in operands.iter().zip(&vars) {
            for (k, &l) in letters.iter().enumerate() {
                if l == c {
                    let d = v.dims()[k];
                    match size {
                        Some(s) if s != d => {
                            return Err(node_error(
                                node,
                                format!(
                                    "index '{c}' has sizes {s} and {d} in '{equation}' \
                                     (broadcasting is only defined through an ellipsis)"
                                ),
                            ))
                        }
                        _ => size = Some(d),
                    }
                }
            }
        }
        size.ok_or_else(|| {
            node_error(
                node,
                format!("output index '{c}' of '{equation}' appears in no operand"),
            )
        })
    };
    for &c in operands.iter().flatten().chain(&output) {
        size_of(c)?;
    }
    let y = match (&operands[..], &vars[..]) {
        ([a], [x]) => {
            let (x, a) = sum_unused(x, a, &[], &output)?;
            permute_to(&x, &a, &output)?
        }
        ([a, b], [x, z]) => {
            let (x, a_kept) = sum_unused(x, a, b, &output)?;
            let (z, b_kept) = sum_unused(z, b, a, &output)?;
            contract(node, (&x, &a_kept), (&z, &b_kept), &output, size_of)?
        }
        _ => operand_count_error(node, operands.len())?,
    };
    Ok(vec![Val::Float(y)])
}

fn operand_count_error(node: &Node, count: usize) -> Result<Var> {
    Err(unsupported(
        node,
        "attribute",
        format!("an equation of {count} operands (supported: 1 or 2)"),
    ))
}

/// The operands' index lists and the output's (explicit after `->`, else the indices that
/// appear exactly once, in alphabetical order, as numpy).
fn parse(node: &Node, equation: &str) -> Result<(Vec<Vec<char>>, Vec<char>)> {
    let compact: String = equation.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.contains('.') {
        return Err(unsupported(
            node,
            "attribute",
            format!("equation '{equation}' uses an ellipsis (supported: explicit indices)"),
        ));
    }
    let (lhs, rhs) = match compact.split_once("->") {
        Some((l, r)) => (l, Some(r)),
        None => (compact.as_str(), None),
    };
    let operands: Vec<Vec<char>> = lhs.split(',').map(|t| t.chars().collect()).collect();
    if operands.len() > 2 {
        return Err(unsupported(
            node,
            "attribute",
            format!(
                "equation '{equation}' has {} operands (supported: 1 or 2)",
                operands.len()
            ),
        ));
    }
    let valid = |c: &char| c.is_ascii_alphabetic();
    for term in &operands {
        if let Some(bad) = term.iter().find(|c| !valid(c)) {
            return Err(node_error(
                node,
                format!("equation '{equation}' has the character '{bad}' (indices are letters)"),
            ));
        }
        for (k, c) in term.iter().enumerate() {
            if term[..k].contains(c) {
                return Err(unsupported(
                    node,
                    "attribute",
                    format!(
                        "equation '{equation}' repeats index '{c}' within one operand \
                         (diagonals and traces are not supported)"
                    ),
                ));
            }
        }
    }
    let output: Vec<char> = match rhs {
        Some(r) => {
            let out: Vec<char> = r.chars().collect();
            for (k, c) in out.iter().enumerate() {
                if !valid(c) || out[..k].contains(c) {
                    return Err(node_error(
                        node,
                        format!(
                            "equation '{equation}' has an invalid or repeated output index '{c}'"
                        ),
                    ));
                }
            }
            out
        }
        None => {
            let all: Vec<char> = operands.iter().flatten().copied().collect();
            let mut once: Vec<char> = all
                .iter()
                .copied()
                .filter(|c| all.iter().filter(|d| *d == c).count() == 1)
                .collect();
            once.sort_unstable();
            once
        }
    };
    Ok((operands, output))
}

/// Sums the indices of `letters` found neither in `other` nor in `output`; the result and its
/// remaining indices.
fn sum_unused(
    x: &Var,
    letters: &[char],
    other: &[char],
    output: &[char],
) -> Result<(Var, Vec<char>)> {
    let unused: Vec<isize> = letters
        .iter()
        .enumerate()
        .filter(|(_, c)| !other.contains(c) && !output.contains(c))
        .map(|(k, _)| k as isize)
        .collect();
    let kept: Vec<char> = letters
        .iter()
        .enumerate()
        .filter(|(k, _)| !unused.contains(&(*k as isize)))
        .map(|(_, &c)| c)
        .collect();
    if unused.is_empty() {
        return Ok((x.clone(), kept));
    }
    Ok((x.sum(&unused, false)?, kept))
}

/// `x` (indices `letters`, each in `order`) permuted to `order`.
fn permute_to(x: &Var, letters: &[char], order: &[char]) -> Result<Var> {
    let perm: Vec<usize> = order
        .iter()
        .filter_map(|c| letters.iter().position(|l| l == c))
        .collect();
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(x.clone());
    }
    Ok(x.permute(&perm)?)
}

/// The two-operand contraction as one batched matrix product.
fn contract(
    node: &Node,
    (x, a): (&Var, &[char]),
    (z, b): (&Var, &[char]),
    output: &[char],
    size_of: impl Fn(char) -> Result<usize>,
) -> Result<Var> {
    let batch: Vec<char> = a
        .iter()
        .copied()
        .filter(|c| b.contains(c) && output.contains(c))
        .collect();
    let contracted: Vec<char> = a
        .iter()
        .copied()
        .filter(|c| b.contains(c) && !output.contains(c))
        .collect();
    let a_free: Vec<char> = a.iter().copied().filter(|c| !b.contains(c)).collect();
    let b_free: Vec<char> = b.iter().copied().filter(|c| !a.contains(c)).collect();
    let sizes = |cs: &[char]| -> Result<Vec<usize>> { cs.iter().map(|&c| size_of(c)).collect() };
    let (batch_dims, k_dims) = (sizes(&batch)?, sizes(&contracted)?);
    let (m_dims, n_dims) = (sizes(&a_free)?, sizes(&b_free)?);
    let (bt, k) = (product(node, &batch_dims)?, product(node, &k_dims)?);
    let (m, n) = (product(node, &m_dims)?, product(node, &n_dims)?);
    let a_order: Vec<char> = [&batch[..], &a_free, &contracted].concat();
    let b_order: Vec<char> = [&batch[..], &contracted, &b_free].concat();
    let lhs = permute_to(x, a, &a_order)?.reshape([bt, m, k])?;
    let rhs = permute_to(z, b, &b_order)?.reshape([bt, k, n])?;
    let product_dims: Vec<usize> = [batch_dims, m_dims, n_dims].concat();
    let product_order: Vec<char> = [&batch[..], &a_free, &b_free].concat();
    let y = lhs.matmul(&rhs)?.reshape(product_dims)?;
    permute_to(&y, &product_order, output)
}
