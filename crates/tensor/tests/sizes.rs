//! Sizes are checked arithmetic: a shape whose element count overflows is rejected where it is
//! made, and a buffer that cannot be allocated is an error, never an abort. The property tests
//! draw shapes that mix small dimensions with astronomically large ones and assert that every
//! constructor and shape op gives either a typed error or the correct result.

use curvature_tensor::{DType, Device, Shape, Tensor, TensorError, MAX_ELEMENTS};
use proptest::prelude::*;

const CPU: Device = Device::Cpu;

/// 2⁴⁰ f64 elements are 8 TiB: more than any machine that runs the tests can allocate, yet a
/// valid shape.
const HUGE: usize = 1 << 40;

fn is_too_large(result: Result<Tensor, TensorError>) -> bool {
    matches!(result, Err(TensorError::ShapeTooLarge { .. }))
}

fn is_out_of_memory(result: Result<Tensor, TensorError>) -> bool {
    matches!(result, Err(TensorError::OutOfMemory { .. }))
}

#[test]
fn shape_product_overflow_is_rejected_cpu() {
    // 3 · 0xAAAA_AAAA_AAAA_AAAB wraps to 1 in 64-bit arithmetic.
    let wraps = [3, 0xAAAA_AAAA_AAAA_AAAB];
    assert!(is_too_large(Tensor::from_f64s(
        &[1.0],
        wraps,
        DType::F64,
        CPU
    )));
    assert!(is_too_large(Tensor::zeros(
        [1 << 32, 1 << 32],
        DType::F32,
        CPU
    )));
    assert!(is_too_large(Tensor::ones([usize::MAX], DType::F64, CPU)));
    assert!(Shape::checked(wraps).is_err());
    // A zero dimension does not excuse the others: the strides would overflow.
    assert!(Shape::checked([0, 1 << 40, 1 << 40]).is_err());
    assert!(Shape::checked([0, 1 << 40]).is_ok());
    assert!(Shape::checked([MAX_ELEMENTS]).is_ok());
    assert!(Shape::checked([MAX_ELEMENTS + 1]).is_err());
    // An unchecked `Shape` value is checked when a tensor is made from it.
    let unchecked = Shape::new(wraps);
    assert_eq!(unchecked.elem_count(), usize::MAX);
    assert!(is_too_large(Tensor::zeros(&unchecked, DType::F64, CPU)));
    assert!(is_too_large(Tensor::from_f64s(
        &[1.0],
        unchecked,
        DType::F64,
        CPU
    )));
    let err = Tensor::zeros([1 << 32, 1 << 32], DType::F32, CPU).unwrap_err();
    assert!(err.to_string().contains("too many elements"), "{err}");
}

#[test]
fn shape_ops_reject_overflowing_results_cpu() {
    let x = Tensor::ones([2, 3], DType::F64, CPU).unwrap();
    assert!(is_too_large(x.reshape([0, usize::MAX, 2])));
    assert!(is_too_large(x.reshape(Shape::new([0, usize::MAX, 2]))));
    assert!(is_too_large(x.broadcast_to([1 << 40, 1 << 40, 3])));
    assert!(is_too_large(x.pad_zeros(0, usize::MAX, 1)));
    assert!(is_too_large(x.pad_zeros(1, usize::MAX / 2, usize::MAX / 2)));
    let one = Tensor::ones([1, 1], DType::F64, CPU).unwrap();
    assert!(is_too_large(one.expand([1 << 40, 1 << 40])));
}

#[test]
fn cat_widths_are_checked_cpu() {
    // Zero-element parts whose lengths along the axis sum past usize::MAX.
    let a = Tensor::zeros([0, usize::MAX / 2 + 1], DType::F32, CPU);
    // [0, 2⁶³] is itself too large (its stride would overflow), so build the widest valid part.
    assert!(a.is_err());
    let part = Tensor::zeros([0, MAX_ELEMENTS], DType::F32, CPU).unwrap();
    let joined = Tensor::cat(&[&part, &part], 1);
    assert!(is_too_large(joined));
}

#[test]
fn allocation_failure_is_an_error_cpu() {
    assert!(is_out_of_memory(Tensor::zeros([HUGE], DType::F64, CPU)));
    assert!(is_out_of_memory(Tensor::eye(
        1 << 20,
        1 << 20,
        DType::F64,
        CPU
    )));
    assert!(is_out_of_memory(Tensor::linspace(
        0.0,
        1.0,
        HUGE,
        DType::F64,
        CPU
    )));
    assert!(is_out_of_memory(Tensor::one_hot(
        &[0],
        HUGE,
        DType::F64,
        CPU
    )));
    let err = Tensor::full(1.0, [HUGE], DType::F32, CPU).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot allocate") && msg.contains("4.0 TiB"),
        "{msg}"
    );
}

#[test]
fn results_that_cannot_be_allocated_are_errors_cpu() {
    // Operands of 8 MiB each whose results would need 8 TiB.
    let col = Tensor::ones([1 << 20, 1], DType::F64, CPU).unwrap();
    let row = Tensor::ones([1, 1 << 20], DType::F64, CPU).unwrap();
    assert!(is_out_of_memory(col.matmul(&row)));
    assert!(is_out_of_memory(col.add(&row)));
    assert!(is_out_of_memory(col.broadcast_to([1 << 20, 1 << 20])));
}

#[test]
fn matmul_with_empty_inner_dimension_is_zero_cpu() {
    let a = Tensor::zeros([2, 0], DType::F64, CPU).unwrap();
    let b = Tensor::zeros([0, 3], DType::F64, CPU).unwrap();
    let c = a.matmul(&b).unwrap();
    assert_eq!(c.dims(), [2, 3]);
    assert_eq!(c.to_vec::<f64>().unwrap(), vec![0.0; 6]);
}

/// Dimensions that are either small (so their products are cheap to allocate) or so large that
/// any shape containing one and no zero is rejected or cannot be allocated.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![
        6 => 0usize..4,
        1 => Just(1usize << 40),
        1 => Just(1usize << 62),
        1 => Just(usize::MAX),
        1 => Just(0xAAAA_AAAA_AAAA_AAABusize),
    ]
}

fn dims() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(dim(), 0..5)
}

/// The element count when it is small enough to build, `None` otherwise.
fn small_count(dims: &[usize]) -> Option<usize> {
    let max1 = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d.max(1)))?;
    (max1 <= MAX_ELEMENTS)
        .then(|| dims.iter().product::<usize>())
        .filter(|&n| n <= 1 << 12)
}

/// Ok with exactly these dims and `count` elements, or a size error (never any other error).
fn check(result: Result<Tensor, TensorError>, dims: &[usize]) -> Result<(), TestCaseError> {
    match (result, small_count(dims)) {
        (Ok(t), Some(count)) => {
            prop_assert_eq!(t.dims(), dims);
            prop_assert_eq!(t.elem_count(), count);
        }
        (Ok(t), None) => {
            // A valid shape with zero elements but a huge dimension.
            prop_assert_eq!(t.elem_count(), 0);
            prop_assert_eq!(t.dims(), dims);
        }
        (Err(TensorError::ShapeTooLarge { .. } | TensorError::OutOfMemory { .. }), None) => {}
        (Err(e), _) => prop_assert!(false, "unexpected error for {:?}: {}", dims, e),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn constructors_give_typed_errors_or_correct_tensors_cpu(dims in dims(), value in -3.0f64..3.0) {
        check(Tensor::zeros(dims.clone(), DType::F32, CPU), &dims)?;
        check(Tensor::ones(dims.clone(), DType::F64, CPU), &dims)?;
        let full = Tensor::full(value, dims.clone(), DType::F64, CPU);
        if let Ok(t) = &full {
            prop_assert!(t.to_vec::<f64>().unwrap().iter().all(|&v| v == value));
        }
        check(full, &dims)?;
        match small_count(&dims) {
            Some(count) => {
                let data: Vec<f64> = (0..count).map(|i| i as f64).collect();
                let t = Tensor::from_f64s(&data, dims.clone(), DType::F64, CPU).unwrap();
                prop_assert_eq!(t.to_vec::<f64>().unwrap(), data);
            }
            None => {
                let wrong = Tensor::from_f64s(&[1.0], dims.clone(), DType::F64, CPU);
                prop_assert!(wrong.is_err());
            }
        }
    }

    #[test]
    fn shape_ops_give_typed_errors_or_correct_results_cpu(
        source in prop::collection::vec(1usize..4, 1..4),
        target in dims(),
        axis in 0usize..4,
        before in dim(),
        after in dim(),
    ) {
        let count: usize = source.iter().product();
        let data: Vec<f64> = (0..count).map(|i| i as f64).collect();
        let x = Tensor::from_f64s(&data, source.clone(), DType::F64, CPU).unwrap();
        let axis = (axis % source.len()) as isize;

        // reshape: the data unchanged when the counts agree, an error otherwise.
        match x.reshape(target.clone()) {
            Ok(r) => {
                prop_assert_eq!(r.dims(), &target[..]);
                prop_assert_eq!(r.to_vec::<f64>().unwrap(), data.clone());
            }
            Err(_) => prop_assert!(small_count(&target) != Some(count)),
        }

        // broadcast_to / expand: every output element is the source element it maps to.
        match x.broadcast_to(target.clone()) {
            Ok(b) => {
                prop_assert_eq!(b.dims(), &target[..]);
                let values = b.to_vec::<f64>().unwrap();
                prop_assert!(values.iter().all(|v| data.contains(v)));
            }
            Err(TensorError::BroadcastMismatch { .. } | TensorError::ShapeTooLarge { .. }
                | TensorError::OutOfMemory { .. }) => {}
            Err(e) => prop_assert!(false, "broadcast_to {:?}: {}", target, e),
        }

        // pad_zeros: the axis grows by before + after, or a size error.
        match x.pad_zeros(axis, before, after) {
            Ok(p) => {
                let a = axis as usize;
                prop_assert_eq!(p.dims()[a], source[a] + before + after);
                let sum: f64 = p.to_vec::<f64>().unwrap().iter().sum();
                prop_assert_eq!(sum, data.iter().sum::<f64>());
            }
            Err(TensorError::ShapeTooLarge { .. } | TensorError::OutOfMemory { .. }) => {
                prop_assert!(small_count(&[before, after]).is_none()
                    || before.saturating_add(after) > 1 << 12);
            }
            Err(e) => prop_assert!(false, "pad_zeros: {}", e),
        }

        // narrow with huge arguments: an index error, never a wrap.
        prop_assert!(x.narrow(axis, before, after).is_ok()
            == before.checked_add(after).is_some_and(|end| end <= source[axis as usize]));

        // cat with itself along the axis, and stack.
        let joined = Tensor::cat(&[&x, &x], axis).unwrap();
        prop_assert_eq!(joined.dims()[axis as usize], 2 * source[axis as usize]);
        prop_assert_eq!(Tensor::stack(&[&x, &x], 0).unwrap().dims()[0], 2);

        // index_select with an out-of-range index is an error, in range a copy.
        let len = source[axis as usize];
        prop_assert!(x.index_select(axis, &[len]).is_err());
        prop_assert_eq!(x.index_select(axis, &[len - 1]).unwrap().dims()[axis as usize], 1);
    }
}

#[test]
fn sizes_are_checked_cuda() {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    let wraps = [3, 0xAAAA_AAAA_AAAA_AAAB];
    assert!(is_too_large(Tensor::from_f64s(
        &[1.0],
        wraps,
        DType::F64,
        device
    )));
    assert!(is_too_large(Tensor::zeros(
        [1 << 32, 1 << 32],
        DType::F32,
        device
    )));
    // Device memory that cannot be had is an error too (the driver's, or the emulator's).
    let err = Tensor::zeros([HUGE], DType::F64, device).unwrap_err();
    assert!(
        matches!(
            err,
            TensorError::Kernel(_) | TensorError::OutOfMemory { .. }
        ),
        "{err}"
    );
    let col = Tensor::ones([1 << 20, 1], DType::F32, device).unwrap();
    let row = Tensor::ones([1, 1 << 20], DType::F32, device).unwrap();
    assert!(col.matmul(&row).is_err());
}
