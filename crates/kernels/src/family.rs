//! The kernel families: the embedded CUDA sources, one compiled module each. The kernels a
//! family defines are read from the compiled sources themselves
//! (`emulated_kernel_names`, [`crate::compiled_kernel_names`]), never listed by hand.

/// The prelude prepended to every family's source.
const COMMON: &str = include_str!("../../../kernels/common.cuh");
const ELEMENTWISE: &str = include_str!("../../../kernels/elementwise.cu");
const MATMUL: &str = include_str!("../../../kernels/matmul.cu");
const MATMUL_TC: &str = include_str!("../../../kernels/matmul_tc.cu");
const MATMUL_H16: &str = include_str!("../../../kernels/matmul_h16.cu");
const REDUCE: &str = include_str!("../../../kernels/reduce.cu");
const CONV: &str = include_str!("../../../kernels/conv.cu");
const FUSED: &str = include_str!("../../../kernels/fused.cu");
/// The elementwise ops' formulas, part of the prelude (after `common.cuh`).
const ELEMENTWISE_OPS: &str = include_str!("../../../kernels/elementwise_ops.cuh");
const RACE_TEST: &str = include_str!("../../../kernels/testing/race_test.cu");
/// The headers a family source may name in a `#include "name"` line, which is replaced by the
/// header's text (NVRTC is given one self-contained source).
const HEADERS: &[(&str, &str)] = &[(
    "gemm_splitk.cuh",
    include_str!("../../../kernels/gemm_splitk.cuh"),
)];

/// One CUDA source file (plus the common prelude) compiled as one module.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KernelFamily {
    /// `kernels/elementwise.cu`: unary, binary, ternary, casts, fill, strided copy.
    Elementwise,
    /// `kernels/matmul.cu`: batched tiled GEMM with transpose flags.
    Matmul,
    /// `kernels/matmul_tc.cu`: batched GEMM on tensor cores (TF32 and 3xTF32, f32 only).
    MatmulTc,
    /// `kernels/matmul_h16.cu`: batched GEMM of f16 or bf16 operands on tensor cores
    /// (`mma.sync` m16n8k16, f32 accumulate, rounded on store).
    MatmulH16,
    /// `kernels/reduce.cu`: axis reductions, the softmax family (log-softmax, logsumexp),
    /// gather and its adjoint index_add, and strided scatter.
    Reduce,
    /// `kernels/conv.cu`: the sliding-window copies of convolution and pooling, unfold
    /// (im2col) and its adjoint fold (col2im).
    Conv,
    /// `kernels/fused.cu`: a fused elementwise step (a small op program per element, an
    /// optional sum over one axis) in one launch.
    Fused,
}

impl KernelFamily {
    /// Every family, in a fixed order.
    pub fn all() -> &'static [KernelFamily] {
        &[
            KernelFamily::Elementwise,
            KernelFamily::Matmul,
            KernelFamily::MatmulTc,
            KernelFamily::MatmulH16,
            KernelFamily::Reduce,
            KernelFamily::Conv,
            KernelFamily::Fused,
        ]
    }

    /// Short name, also the NVRTC program name (`elementwise`, `matmul`, `matmul_tc`,
    /// `matmul_h16`, `reduce`, `conv`, `fused`).
    pub fn name(&self) -> &'static str {
        match self {
            KernelFamily::Elementwise => "elementwise",
            KernelFamily::Matmul => "matmul",
            KernelFamily::MatmulTc => "matmul_tc",
            KernelFamily::MatmulH16 => "matmul_h16",
            KernelFamily::Reduce => "reduce",
            KernelFamily::Conv => "conv",
            KernelFamily::Fused => "fused",
        }
    }

    /// The full source NVRTC compiles: the prelude (`common.cuh`, a newline,
    /// `elementwise_ops.cuh`), a newline, then the family's `.cu` file with each
    /// `#include "name"` line of a header under `kernels/` replaced by the header's text.
    pub fn source(&self) -> String {
        let body = match self {
            KernelFamily::Elementwise => ELEMENTWISE,
            KernelFamily::Matmul => MATMUL,
            KernelFamily::MatmulTc => MATMUL_TC,
            KernelFamily::MatmulH16 => MATMUL_H16,
            KernelFamily::Reduce => REDUCE,
            KernelFamily::Conv => CONV,
            KernelFamily::Fused => FUSED,
        };
        with_prelude(body)
    }
}

/// The test-only source `kernels/testing/race_test.cu` with the prelude (used by the race test).
pub(crate) fn testing_source() -> String {
    with_prelude(RACE_TEST)
}

fn with_prelude(body: &str) -> String {
    format!("{COMMON}\n{ELEMENTWISE_OPS}\n{}", expand_includes(body))
}

/// `body` with every line `#include "name"` of a known header replaced by the header's text
/// (the same expansion `build.rs` makes for the emulated GPU).
fn expand_includes(body: &str) -> String {
    crate::includes::expand_includes(body, |name| {
        HEADERS
            .iter()
            .find(|(h, _)| *h == name)
            .map(|(_, text)| (*text).to_string())
    })
}

/// The arity of an elementwise op list of `kernels/elementwise_ops.cuh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpArity {
    /// `CV_UNARY_OPS`.
    Unary,
    /// `CV_BINARY_OPS`.
    Binary,
    /// `CV_TERNARY_OPS`.
    Ternary,
}

/// The names of the elementwise ops of one arity, in the order of their list in
/// `kernels/elementwise_ops.cuh`: an op's position is its code in the programs of
/// `fused_eval_{dt}` (`kernels/fused.cu`), and `unary_{name}_{dt}` (and the binary and ternary
/// forms) its kernels in `kernels/elementwise.cu`.
///
/// ```
/// use curvature_kernels::{elementwise_op_names, OpArity};
///
/// let unary = elementwise_op_names(OpArity::Unary);
/// assert_eq!(unary[0], "neg");
/// assert!(unary.contains(&"tanh"));
/// assert_eq!(elementwise_op_names(OpArity::Binary)[0], "add");
/// ```
pub fn elementwise_op_names(arity: OpArity) -> Vec<&'static str> {
    let list = match arity {
        OpArity::Unary => "#define CV_UNARY_OPS(X)",
        OpArity::Binary => "#define CV_BINARY_OPS(X)",
        OpArity::Ternary => "#define CV_TERNARY_OPS(X)",
    };
    let mut names = Vec::new();
    let mut lines = ELEMENTWISE_OPS
        .lines()
        .skip_while(|l| l.trim_end() != format!("{list} \\"));
    if lines.next().is_none() {
        return names;
    }
    for line in lines {
        let entry = line.trim();
        if let Some(name) = entry.strip_prefix("X(").and_then(|e| e.split(',').next()) {
            names.push(name.trim());
        }
        if !entry.ends_with('\\') {
            break;
        }
    }
    names
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_headers_are_inlined_and_other_includes_kept() {
        let source = KernelFamily::Matmul.source();
        assert!(!source
            .lines()
            .any(|l| l.trim_start().starts_with("#include \"gemm_splitk.cuh\"")));
        assert!(
            source.contains("void gemm_splitk_arrive("),
            "the header's definition"
        );
        assert!(
            source.contains("gemm_splitk_arrive<T, S>("),
            "the call in matmul.cu"
        );
        let body = "a\n#include \"gemm_splitk.cuh\"\n#include \"missing.cuh\"\nb";
        let expanded = expand_includes(body);
        assert!(expanded.starts_with("a\n// gemm_splitk.cuh"), "{expanded}");
        assert!(
            expanded.ends_with("\n#include \"missing.cuh\"\nb"),
            "{expanded}"
        );
    }
}
