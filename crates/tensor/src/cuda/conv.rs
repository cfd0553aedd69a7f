//! The sliding-window copies of convolution and pooling (`kernels/conv.cu`): `unfold_{dt}`
//! (im2col) and `fold_{dt}` (col2im), one thread per output element.

use curvature_kernels::{geometry, KernelArg, Launch};

use super::{kernels, upload_i64s, CudaStorage};
use crate::backend::Im2Col;
use crate::Result;

/// `unfold_{dt}(x, cols, n, geometry, fill)`.
pub(super) fn unfold(x: &CudaStorage, g: &Im2Col, fill: f64) -> Result<CudaStorage> {
    let n = g.columns_len();
    let out = x.alloc_like(n)?;
    if n == 0 {
        return Ok(out);
    }
    let table = upload_i64s("unfold2d", x.gpu(), &g.table())?;
    x.launch(
        Launch::new(kernels::unfold(x.dtype), geometry::launch_1d(n)).args([
            x.arg(),
            out.arg(),
            KernelArg::U64(n as u64),
            KernelArg::Buffer(&table),
            x.scalar(fill),
        ]),
    )?;
    Ok(out)
}

/// `fold_{dt}(cols, x, n, geometry)`.
pub(super) fn fold(cols: &CudaStorage, g: &Im2Col) -> Result<CudaStorage> {
    let n = g.image_len();
    let out = cols.alloc_like(n)?;
    if n == 0 {
        return Ok(out);
    }
    let table = upload_i64s("fold2d", cols.gpu(), &g.table())?;
    cols.launch(
        Launch::new(kernels::fold(cols.dtype), geometry::launch_1d(n)).args([
            cols.arg(),
            out.arg(),
            KernelArg::U64(n as u64),
            KernelArg::Buffer(&table),
        ]),
    )?;
    Ok(out)
}
