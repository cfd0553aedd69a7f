//! Every op has its kernel: for every variant of the op enums, the casts and the per-dtype ops,
//! in both dtypes, the kernel the CUDA backend launches is defined by the emulated GPU and,
//! when NVRTC is present, by the module NVRTC compiles; and every kernel is launched by some op.

use curvature_kernels::{
    compiled_kernel_names, emulated_kernel_names, nvrtc_available, Indexing, Kernel, KernelFamily,
};
use curvature_tensor::cuda_kernels as kernels;
use curvature_tensor::DType;
use curvature_tensor::{BinaryOp, ReduceOp, TernaryOp, UnaryOp};

const DTYPES: [DType; 2] = [DType::F32, DType::F64];
const HALVES: [DType; 2] = [DType::F16, DType::BF16];
const INDEXINGS: [Indexing; 2] = [Indexing::Broadcast, Indexing::Contiguous];

/// Every kernel the CUDA backend can launch.
fn launched() -> Vec<Kernel> {
    let mut all = Vec::new();
    for dt in DTYPES {
        all.extend(UnaryOp::ALL.iter().map(|&op| kernels::unary(op, dt)));
        for indexing in INDEXINGS {
            all.extend(
                BinaryOp::ALL
                    .iter()
                    .map(|&op| kernels::binary(op, indexing, dt)),
            );
            all.extend(
                TernaryOp::ALL
                    .iter()
                    .map(|&op| kernels::ternary(op, indexing, dt)),
            );
        }
        all.extend(ReduceOp::ALL.iter().map(|&op| kernels::reduce(op, dt)));
        all.extend(kernels::RowOp::ALL.iter().map(|&op| kernels::row(op, dt)));
        all.extend(kernels::per_dtype(dt));
        all.extend(kernels::conv(dt));
        all.push(kernels::fused(dt));
        for to in DTYPES.into_iter().filter(|&to| to != dt) {
            all.push(kernels::cast(dt, to));
        }
    }
    // The 16-bit storage dtypes: their casts to and from every other dtype, and the kernels
    // that move their bits (every other op widens to f32 through the casts).
    for half in HALVES {
        all.extend(kernels::half_moves(half));
        for other in DTYPES.into_iter().chain(HALVES).filter(|&d| d != half) {
            all.push(kernels::cast(half, other));
            all.push(kernels::cast(other, half));
        }
    }
    all.extend(kernels::tensor_core());
    all.sort_by_key(Kernel::name);
    all.dedup();
    all
}

/// The launched kernels missing from `defined(family)`.
fn missing(defined: impl Fn(KernelFamily) -> Vec<String>) -> Vec<String> {
    launched()
        .into_iter()
        .filter(|kernel| !defined(kernel.family()).contains(&kernel.name()))
        .map(|kernel| format!("{kernel} ({})", kernel.family().name()))
        .collect()
}

#[test]
fn every_op_has_a_kernel_in_the_emulated_gpu() {
    let missing = missing(emulated_kernel_names);
    assert!(
        missing.is_empty(),
        "kernels the CUDA backend launches that the emulated GPU does not define: {missing:?}"
    );
}

#[test]
fn every_op_has_a_kernel_in_the_nvrtc_module_nvrtc() {
    if !nvrtc_available() {
        if std::env::var("CURVATURE_REQUIRE_NVRTC").is_ok_and(|v| v == "1") {
            panic!("CURVATURE_REQUIRE_NVRTC=1 but libnvrtc cannot be loaded");
        }
        eprintln!("skipping: libnvrtc cannot be loaded");
        return;
    }
    let missing = missing(|family| {
        compiled_kernel_names(family, "sm_80")
            .unwrap_or_else(|e| panic!("{} does not compile: {e}", family.name()))
    });
    assert!(
        missing.is_empty(),
        "kernels the CUDA backend launches that NVRTC's module does not define: {missing:?}"
    );
}

/// No dead kernels: every kernel the emulated GPU defines is launched by some op.
#[test]
fn every_kernel_is_launched_by_an_op() {
    let launched: Vec<String> = launched().iter().map(Kernel::name).collect();
    let unused: Vec<String> = KernelFamily::all()
        .iter()
        .flat_map(|&family| emulated_kernel_names(family))
        .filter(|name| !launched.contains(name))
        .collect();
    assert!(
        unused.is_empty(),
        "kernels no op of the CUDA backend launches: {unused:?}"
    );
}

/// The op stems are the ops' own names, so a kernel is found by the name the op reports.
#[test]
fn kernel_names_follow_the_op_names() {
    assert_eq!(
        kernels::unary(UnaryOp::Tanh, DType::F32).name(),
        "unary_tanh_f32"
    );
    assert_eq!(
        kernels::binary(BinaryOp::Add, Indexing::Contiguous, DType::F64).name(),
        "binary_add_contig_f64"
    );
    assert_eq!(
        kernels::ternary(
            TernaryOp::TanhBackwardGradY,
            Indexing::Broadcast,
            DType::F32
        )
        .name(),
        "ternary_tanh_backward_grad_y_f32"
    );
    assert_eq!(
        kernels::reduce(ReduceOp::Max, DType::F64).name(),
        "reduce_max_f64"
    );
    assert_eq!(kernels::cast(DType::F32, DType::F64).name(), "cast_f32_f64");
}
