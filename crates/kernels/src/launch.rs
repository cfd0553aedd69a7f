//! Typed launch descriptions: a [`Kernel`], its grid geometry and its arguments in one value.

use crate::buffer::KernelArg;
use crate::kernel::Kernel;

/// Grid or block dimensions (x, y, z).
pub type Dim3 = (u32, u32, u32);

/// One kernel launch: what runs ([`Kernel`]), over which grid of which blocks, with how much
/// dynamic shared memory and which arguments (in the order of the kernel's C parameters).
///
/// ```
/// use curvature_kernels::{geometry, Dtype, Kernel, KernelArg, Launch};
///
/// let launch = Launch::new(Kernel::fill(Dtype::F32), geometry::launch_1d(10))
///     .arg(KernelArg::U64(10))
///     .arg(KernelArg::F32(1.5));
/// assert_eq!(launch.kernel().name(), "fill_f32");
/// assert_eq!(launch.arguments().len(), 2);
/// ```
#[derive(Clone, Debug)]
pub struct Launch<'a> {
    kernel: Kernel,
    grid: Dim3,
    block: Dim3,
    shared_bytes: u32,
    args: Vec<KernelArg<'a>>,
}

impl<'a> Launch<'a> {
    /// A launch of `kernel` over `(grid, block)` (as the [`crate::geometry`] functions return
    /// them), no dynamic shared memory and no arguments yet.
    pub fn new(kernel: Kernel, (grid, block): (Dim3, Dim3)) -> Launch<'a> {
        Launch {
            kernel,
            grid,
            block,
            shared_bytes: 0,
            args: Vec::new(),
        }
    }

    /// Sets the bytes of dynamic shared memory per block.
    pub fn with_shared_bytes(mut self, bytes: u32) -> Launch<'a> {
        self.shared_bytes = bytes;
        self
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: KernelArg<'a>) -> Launch<'a> {
        self.args.push(arg);
        self
    }

    /// Appends arguments in order.
    pub fn args(mut self, args: impl IntoIterator<Item = KernelArg<'a>>) -> Launch<'a> {
        self.args.extend(args);
        self
    }

    /// The kernel launched.
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    /// Blocks in the grid.
    pub fn grid(&self) -> Dim3 {
        self.grid
    }

    /// Threads per block.
    pub fn block(&self) -> Dim3 {
        self.block
    }

    /// Bytes of dynamic shared memory per block.
    pub fn shared_bytes(&self) -> u32 {
        self.shared_bytes
    }

    /// The arguments, in order.
    pub fn arguments(&self) -> &[KernelArg<'a>] {
        &self.args
    }
}
