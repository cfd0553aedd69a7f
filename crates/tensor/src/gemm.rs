//! General matrix products over explicit layouts: [`gemm_into`] computes
//! `C_z ← f(α·op(A_z)·op(B_z) + β·C_z + bias)` for every batch index z, reading A and B and
//! writing C where their offsets, leading dimensions and batch strides say, so a slice or a
//! column block of a larger matrix is read and written in place. `f` and the scalars are the
//! call's [`Epilogue`]. The CPU backend's result is the specification; CUDA runs the `gemm_*`
//! kernels of `kernels/matmul.cu` with the tile and split-K the kernels crate selects
//! (`curvature_kernels::gemm_select`).

use crate::backend::MatmulSpec;
use crate::epilogue::{Bias, Epilogue};
use crate::storage::Storage;
use crate::{Result, Tensor, TensorError};

/// Where one operand's matrices lie in its tensor's elements (row-major): element (r, c) of
/// matrix z is at `offset + z·batch_stride + r·ld + c` (for a transposed operand, r and c are
/// the stored matrix's row and column).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatrixLayout {
    /// Elements before the first matrix.
    pub offset: usize,
    /// Elements from one stored row to the next (at least the stored row length).
    pub ld: usize,
    /// Elements from one batch entry to the next (0 reuses one matrix for every entry).
    pub batch_stride: usize,
}

impl MatrixLayout {
    /// Dense row-major matrices of `rows × cols`, one after another from element 0.
    pub fn dense(rows: usize, cols: usize) -> MatrixLayout {
        MatrixLayout {
            offset: 0,
            ld: cols,
            batch_stride: rows.saturating_mul(cols),
        }
    }
}

/// One batched product: `C_z[m×n] ← f(α·op(A_z)·op(B_z) + β·C_z + bias)` for z in
/// `0..batch`, `op(A)` m×k (stored k×m when `trans_a`), `op(B)` k×n (stored n×k when
/// `trans_b`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GemmCall {
    /// Matrices in the batch.
    pub batch: usize,
    /// Rows of op(A) and C.
    pub m: usize,
    /// Columns of op(B) and C.
    pub n: usize,
    /// The summed dimension.
    pub k: usize,
    /// A is stored k×m and transposed.
    pub trans_a: bool,
    /// B is stored n×k and transposed.
    pub trans_b: bool,
    /// Where A's matrices lie.
    pub a: MatrixLayout,
    /// Where B's matrices lie.
    pub b: MatrixLayout,
    /// Where C's matrices lie (they must not overlap one another).
    pub c: MatrixLayout,
    /// Scaling, bias orientation and activation applied before the store.
    pub epilogue: Epilogue,
}

impl GemmCall {
    /// The product of `spec` into a dense `[batch, m, n]` output, with the plain epilogue.
    pub fn from_spec(spec: &MatmulSpec) -> GemmCall {
        let (a_rows, a_cols) = if spec.trans_a {
            (spec.k, spec.m)
        } else {
            (spec.m, spec.k)
        };
        let (b_rows, b_cols) = if spec.trans_b {
            (spec.n, spec.k)
        } else {
            (spec.k, spec.n)
        };
        GemmCall {
            batch: spec.batch,
            m: spec.m,
            n: spec.n,
            k: spec.k,
            trans_a: spec.trans_a,
            trans_b: spec.trans_b,
            a: MatrixLayout {
                batch_stride: spec.stride_a,
                ..MatrixLayout::dense(a_rows, a_cols)
            },
            b: MatrixLayout {
                batch_stride: spec.stride_b,
                ..MatrixLayout::dense(b_rows, b_cols)
            },
            c: MatrixLayout::dense(spec.m, spec.n),
            epilogue: Epilogue::default(),
        }
    }

    /// (rows, columns) of A and of B as stored.
    pub(crate) fn stored_dims(&self) -> ((usize, usize), (usize, usize)) {
        let a = if self.trans_a {
            (self.k, self.m)
        } else {
            (self.m, self.k)
        };
        let b = if self.trans_b {
            (self.n, self.k)
        } else {
            (self.k, self.n)
        };
        (a, b)
    }

    /// The bias length the epilogue needs (0 without a bias).
    pub(crate) fn bias_len(&self) -> usize {
        match self.epilogue.bias {
            Bias::None => 0,
            Bias::Row => self.n,
            Bias::Column => self.m,
        }
    }

    /// Errors unless every operand holds its matrices (checked arithmetic), C's matrices do
    /// not overlap, and the bias has its length.
    /// The element count of a dense C (`batch · m · n`), or `None` when it overflows.
    pub(crate) fn dense_c_len(&self) -> Option<usize> {
        self.batch.checked_mul(self.m)?.checked_mul(self.n)
    }

    pub(crate) fn check(&self, lens: [usize; 3], bias_len: Option<usize>) -> Result<()> {
        let ((ar, ac), (br, bc)) = self.stored_dims();
        let operands = [
            ("A", ar, ac, self.a, lens[0]),
            ("B", br, bc, self.b, lens[1]),
            ("C", self.m, self.n, self.c, lens[2]),
        ];
        for (name, rows, cols, layout, len) in operands {
            let need = extent(self.batch, rows, cols, layout).ok_or_else(|| {
                self.error(format!("the extent of {name} overflows the address space"))
            })?;
            if need > len {
                return Err(self.error(format!(
                    "{name} needs {need} elements ({rows}×{cols} matrices at offset {}, ld {}, \
                     batch stride {}) but holds {len}",
                    layout.offset, layout.ld, layout.batch_stride
                )));
            }
            if rows > 0 && cols > 0 && layout.ld < cols && rows > 1 {
                return Err(self.error(format!(
                    "{name}'s leading dimension {} is less than its row length {cols}",
                    layout.ld
                )));
            }
        }
        let c_matrix = self.c_matrix_extent();
        if self.batch > 1 && c_matrix > 0 && self.c.batch_stride < c_matrix {
            return Err(self.error(format!(
                "C's batch stride {} makes its {}×{} matrices (ld {}) overlap",
                self.c.batch_stride, self.m, self.n, self.c.ld
            )));
        }
        let want = self.bias_len();
        match (want, bias_len) {
            (0, None) => Ok(()),
            (0, Some(_)) => Err(self.error(
                "a bias vector was given but the epilogue adds none (Bias::None)".to_string(),
            )),
            (_, None) => Err(self.error(format!(
                "the epilogue adds a {:?} bias of {want} elements but none was given",
                self.epilogue.bias
            ))),
            (want, Some(len)) if len != want => Err(self.error(format!(
                "the {:?} bias must hold {want} elements, not {len}",
                self.epilogue.bias
            ))),
            _ => Ok(()),
        }
    }

    /// Elements one C matrix spans: `(m − 1)·ldc + n` (0 when empty).
    fn c_matrix_extent(&self) -> usize {
        if self.m == 0 || self.n == 0 {
            return 0;
        }
        (self.m - 1)
            .saturating_mul(self.c.ld)
            .saturating_add(self.n)
    }

    fn error(&self, msg: String) -> TensorError {
        TensorError::InvalidArgument {
            op: "gemm",
            msg: format!(
                "{msg} (batch {}, m {}, n {}, k {}, trans_a {}, trans_b {})",
                self.batch, self.m, self.n, self.k, self.trans_a, self.trans_b
            ),
        }
    }
}

/// Elements an operand must hold: `offset + (batch − 1)·stride + (rows − 1)·ld + cols` (just
/// `offset` when nothing is read).
fn extent(batch: usize, rows: usize, cols: usize, layout: MatrixLayout) -> Option<usize> {
    if batch == 0 || rows == 0 || cols == 0 {
        return Some(layout.offset);
    }
    let last_matrix = (batch - 1).checked_mul(layout.batch_stride)?;
    let last_row = (rows - 1).checked_mul(layout.ld)?;
    layout
        .offset
        .checked_add(last_matrix)?
        .checked_add(last_row)?
        .checked_add(cols)
}

/// `C_z ← f(α·op(A_z)·op(B_z) + β·C_z + bias)` for every z of `call`, written into `c`'s
/// elements in place (tensors are read as flat row-major element arrays; their shapes do not
/// matter). `c` must not share its data with another tensor; all operands on one device with
/// one dtype. Errors name the operand and the layout that does not fit.
pub fn gemm_into(
    a: &Tensor,
    b: &Tensor,
    c: &mut Tensor,
    bias: Option<&Tensor>,
    call: &GemmCall,
) -> Result<()> {
    let lens = [a.elem_count(), b.elem_count(), c.elem_count()];
    call.check(lens, bias.map(Tensor::elem_count))?;
    a.storage().check_same("gemm", b.storage())?;
    a.storage().check_same("gemm", c.storage())?;
    if let Some(bias) = bias {
        a.storage().check_same("gemm", bias.storage())?;
    }
    let out = c.storage_mut().ok_or_else(|| {
        call.error("the output C shares its data with another tensor".to_string())
    })?;
    gemm_storage(
        a.storage(),
        b.storage(),
        out,
        bias.map(Tensor::storage),
        call,
    )
}

/// [`gemm_into`] on the operands' data (checked by the caller: lengths, devices, dtypes).
pub(crate) fn gemm_storage(
    a: &Storage,
    b: &Storage,
    out: &mut Storage,
    bias: Option<&Storage>,
    call: &GemmCall,
) -> Result<()> {
    match (a, b, out) {
        (Storage::Cpu(a), Storage::Cpu(b), Storage::Cpu(c)) => {
            let bias = match bias {
                Some(Storage::Cpu(s)) => Some(s),
                _ => None,
            };
            crate::cpu::gemm::gemm_into(a, b, c, bias, call)
        }
        (Storage::Cuda(a), Storage::Cuda(b), Storage::Cuda(c)) => {
            let bias = match bias {
                Some(Storage::Cuda(s)) => Some(s),
                _ => None,
            };
            crate::cuda::gemm_into(a, b, c, bias, call)
        }
        _ => Err(call.error("operands on different backends".to_string())),
    }
}
