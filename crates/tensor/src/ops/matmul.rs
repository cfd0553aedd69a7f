//! `matmul` with `torch.matmul` semantics.

use crate::backend::MatmulSpec;
use crate::plan::Prim;
use crate::{Result, Shape, Tensor, TensorError};

impl Tensor {
    /// Matrix product with `torch.matmul` semantics: 1-D operands are promoted to a row (left)
    /// or a column (right) and the added axis removed afterwards; leading batch dimensions
    /// broadcast. A batch of matrices times one shared matrix is a single GEMM over all rows.
    pub fn matmul(&self, rhs: &Tensor) -> Result<Tensor> {
        self.check_same_kind("matmul", rhs)?;
        let out = Tensor::matmul_shape(self.shape(), rhs.shape())?;
        let a = if self.rank() == 1 {
            self.unsqueeze(0)?
        } else {
            self.clone()
        };
        let b = if rhs.rank() == 1 {
            rhs.unsqueeze(1)?
        } else {
            rhs.clone()
        };
        matmul_batched(&a, &b, false, false, self.shape(), rhs.shape())?.reshape(out)
    }

    /// The shape of `lhs @ rhs` under [`Tensor::matmul`]'s rules, or the error it would give.
    pub fn matmul_shape(lhs: &Shape, rhs: &Shape) -> Result<Shape> {
        if lhs.rank() == 0 || rhs.rank() == 0 {
            return Err(TensorError::InvalidArgument {
                op: "matmul",
                msg: format!("both operands need at least one dimension, got {lhs} @ {rhs}"),
            });
        }
        let (ld, rd) = (lhs.dims(), rhs.dims());
        let lhs_vector = ld.len() == 1;
        let rhs_vector = rd.len() == 1;
        let (m, k) = if lhs_vector {
            (1, ld[0])
        } else {
            (ld[ld.len() - 2], ld[ld.len() - 1])
        };
        let (k2, n) = if rhs_vector {
            (rd[0], 1)
        } else {
            (rd[rd.len() - 2], rd[rd.len() - 1])
        };
        if k != k2 {
            return Err(TensorError::MatmulShape {
                lhs: lhs.clone(),
                rhs: rhs.clone(),
                lhs_k: k,
                rhs_k: k2,
            });
        }
        let batch_of = |d: &[usize], vector: bool| {
            Shape::for_op(
                "matmul",
                if vector {
                    Vec::new()
                } else {
                    d[..d.len() - 2].to_vec()
                },
            )
        };
        let batch = Shape::broadcast(
            "matmul",
            &batch_of(ld, lhs_vector)?,
            &batch_of(rd, rhs_vector)?,
        )
        .map_err(|_| TensorError::BroadcastMismatch {
            op: "matmul",
            lhs: lhs.clone(),
            rhs: rhs.clone(),
        })?;
        let mut dims = batch.dims().to_vec();
        if !lhs_vector {
            dims.push(m);
        }
        if !rhs_vector {
            dims.push(n);
        }
        Shape::for_op("matmul", dims)
    }

    /// `op(self) @ op(rhs)` for operands of rank ≥ 2, where `op` transposes the last two
    /// axes when its flag is set; no transposed copy is made. Batch axes broadcast as in
    /// [`Tensor::matmul`].
    pub fn matmul_transposed(&self, rhs: &Tensor, trans_a: bool, trans_b: bool) -> Result<Tensor> {
        self.check_same_kind("matmul", rhs)?;
        if self.rank() < 2 || rhs.rank() < 2 {
            return Err(TensorError::InvalidArgument {
                op: "matmul_transposed",
                msg: format!(
                    "both operands need at least two dimensions, got {} @ {}",
                    self.shape(),
                    rhs.shape()
                ),
            });
        }
        matmul_batched(self, rhs, trans_a, trans_b, self.shape(), rhs.shape())
    }

    /// The transpose of the last two axes.
    pub fn t(&self) -> Result<Tensor> {
        if self.rank() < 2 {
            return Err(TensorError::InvalidArgument {
                op: "t",
                msg: format!("needs at least 2 dimensions, got {}", self.shape()),
            });
        }
        self.transpose(-2, -1)
    }
}

/// Both operands have rank ≥ 2: `op(a)[..., m, k] @ op(b)[..., k, n]`, where `op` transposes
/// the last two axes when its flag is set (without copying).
fn matmul_batched(
    a: &Tensor,
    b: &Tensor,
    trans_a: bool,
    trans_b: bool,
    lhs_orig: &Shape,
    rhs_orig: &Shape,
) -> Result<Tensor> {
    let (ad, bd) = (a.dims(), b.dims());
    let (ar, ac) = (ad[ad.len() - 2], ad[ad.len() - 1]);
    let (br, bc) = (bd[bd.len() - 2], bd[bd.len() - 1]);
    let (m, k) = if trans_a { (ac, ar) } else { (ar, ac) };
    let (k2, n) = if trans_b { (bc, br) } else { (br, bc) };
    if k != k2 {
        return Err(TensorError::MatmulShape {
            lhs: lhs_orig.clone(),
            rhs: rhs_orig.clone(),
            lhs_k: k,
            rhs_k: k2,
        });
    }
    let a_batch = Shape::for_op("matmul", ad[..ad.len() - 2].to_vec())?;
    let b_batch = Shape::for_op("matmul", bd[..bd.len() - 2].to_vec())?;
    let batch = Shape::broadcast("matmul", &a_batch, &b_batch).map_err(|_| {
        TensorError::BroadcastMismatch {
            op: "matmul",
            lhs: lhs_orig.clone(),
            rhs: rhs_orig.clone(),
        }
    })?;
    let out_shape = batch_dims(&batch, m, n)?;
    let spec = |batch_count, m, stride_a, stride_b| MatmulSpec {
        batch: batch_count,
        m,
        n,
        k,
        stride_a,
        stride_b,
        trans_a,
        trans_b,
    };
    let count = batch.elem_count();
    let a_full = || a.broadcast_to(batch_dims(&batch, ar, ac)?);
    let b_full = || b.broadcast_to(batch_dims(&batch, br, bc)?);
    let (a, b, spec) = if b_batch.elem_count() == 1 && !trans_a {
        // One shared right matrix: every batch row of A in one GEMM.
        (a_full()?, b.clone(), spec(1, count * m, 0, 0))
    } else if a_batch.elem_count() == 1 {
        (a.clone(), b_full()?, spec(count, m, 0, k * n))
    } else if b_batch.elem_count() == 1 {
        (a_full()?, b.clone(), spec(count, m, m * k, 0))
    } else {
        (a_full()?, b_full()?, spec(count, m, m * k, k * n))
    };
    a.apply_prim_to(Prim::Matmul(spec), &[&b], out_shape)
}

fn batch_dims(batch: &Shape, rows: usize, cols: usize) -> Result<Shape> {
    let mut dims = batch.dims().to_vec();
    dims.extend([rows, cols]);
    Shape::for_op("matmul", dims)
}
