//! The kernel families: embedded CUDA sources and the names of their kernels.

/// The prelude prepended to every family's source.
const COMMON: &str = include_str!("../../../kernels/common.cuh");
const ELEMENTWISE: &str = include_str!("../../../kernels/elementwise.cu");
const MATMUL: &str = include_str!("../../../kernels/matmul.cu");
const REDUCE: &str = include_str!("../../../kernels/reduce.cu");
const RACE_TEST: &str = include_str!("../../../kernels/testing/race_test.cu");

/// Element types every kernel is instantiated for (the `{dt}` suffix).
pub const DTYPES: &[&str] = &["f32", "f64"];

/// `unary_{op}_{dt}(const T* x, T* out, size_t n, T p0, T p1)` ops.
pub const UNARY_OPS: &[&str] = &[
    "neg",
    "exp",
    "log",
    "sin",
    "cos",
    "sqrt",
    "abs",
    "tanh",
    "sigmoid",
    "square",
    "sign",
    "recip",
    "powf",
    "affine",
    "tanh_d1",
    "tanh_d2",
    "tanh_d3",
    "sigmoid_d1",
    "sigmoid_d2",
    "sigmoid_d3",
];

/// `binary_{op}_{dt}` (broadcasting) and `binary_{op}_contig_{dt}` ops.
pub const BINARY_OPS: &[&str] = &[
    "add",
    "sub",
    "mul",
    "div",
    "eq_mask",
    "maximum",
    "minimum",
    "tanh_backward",
    "sigmoid_backward",
];

/// `ternary_{op}_{dt}` (broadcasting) and `ternary_{op}_contig_{dt}` ops.
pub const TERNARY_OPS: &[&str] = &["tanh_backward_grad_y", "sigmoid_backward_grad_y"];

/// Per-dtype kernels of the elementwise family besides unary / binary / ternary.
const ELEMENTWISE_OTHER: &[&str] = &["fill", "copy_strided"];
/// Per-dtype kernels of the reduce family.
const REDUCE_KERNELS: &[&str] = &[
    "reduce_sum",
    "reduce_max",
    "log_softmax",
    "logsumexp",
    "gather",
    "copy_into_strided",
];

/// One CUDA source file (plus the common prelude) compiled as one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    /// `kernels/elementwise.cu`: unary, binary, ternary, fill, strided copy, casts.
    Elementwise,
    /// `kernels/matmul.cu`: batched tiled GEMM with transpose flags.
    Matmul,
    /// `kernels/reduce.cu`: axis reductions, log-softmax, logsumexp, gather, scatter-copy.
    Reduce,
}

impl KernelFamily {
    /// Every family, in a fixed order.
    pub fn all() -> &'static [KernelFamily] {
        &[
            KernelFamily::Elementwise,
            KernelFamily::Matmul,
            KernelFamily::Reduce,
        ]
    }

    /// Short name, also the NVRTC program name (`elementwise`, `matmul`, `reduce`).
    pub fn name(&self) -> &'static str {
        match self {
            KernelFamily::Elementwise => "elementwise",
            KernelFamily::Matmul => "matmul",
            KernelFamily::Reduce => "reduce",
        }
    }

    /// The full source NVRTC compiles: `common.cuh`, a newline, then the family's `.cu` file.
    pub fn source(&self) -> String {
        let body = match self {
            KernelFamily::Elementwise => ELEMENTWISE,
            KernelFamily::Matmul => MATMUL,
            KernelFamily::Reduce => REDUCE,
        };
        with_prelude(body)
    }

    /// Every kernel the family defines (`{op}_{dt}` for both dtypes).
    pub fn kernel_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for dt in DTYPES {
            match self {
                KernelFamily::Elementwise => {
                    names.extend(UNARY_OPS.iter().map(|op| format!("unary_{op}_{dt}")));
                    for op in BINARY_OPS {
                        names.push(format!("binary_{op}_{dt}"));
                        names.push(format!("binary_{op}_contig_{dt}"));
                    }
                    for op in TERNARY_OPS {
                        names.push(format!("ternary_{op}_{dt}"));
                        names.push(format!("ternary_{op}_contig_{dt}"));
                    }
                    names.extend(ELEMENTWISE_OTHER.iter().map(|op| format!("{op}_{dt}")));
                }
                KernelFamily::Matmul => names.push(format!("matmul_{dt}")),
                KernelFamily::Reduce => {
                    names.extend(REDUCE_KERNELS.iter().map(|op| format!("{op}_{dt}")));
                }
            }
        }
        if *self == KernelFamily::Elementwise {
            names.push("cast_f32_f64".to_string());
            names.push("cast_f64_f32".to_string());
        }
        names
    }
}

/// The test-only source `kernels/testing/race_test.cu` with the prelude (used by the race test).
pub(crate) fn testing_source() -> String {
    with_prelude(RACE_TEST)
}

fn with_prelude(body: &str) -> String {
    format!("{COMMON}\n{body}")
}

/// A compiled unit: a family, or the test-only source.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum ModuleKey {
    Family(KernelFamily),
    Testing,
}

impl ModuleKey {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            ModuleKey::Family(f) => f.name(),
            ModuleKey::Testing => "race_test",
        }
    }

    pub(crate) fn source(&self) -> String {
        match self {
            ModuleKey::Family(f) => f.source(),
            ModuleKey::Testing => testing_source(),
        }
    }
}
