//! Structs passed to kernels by value (`KernelArg::Struct`) on the emulated GPU: the size and
//! the type of the argument are checked against the kernel's parameter, and a struct whose
//! step is empty launches and does nothing.

use curvature_kernels::{geometry, Dtype, GpuDevice, Kernel, KernelArg, Launch, StructArg};

/// The bytes of `struct cv_fused_args` (kernels/fused.cu asserts its size).
const FUSED_ARGS_BYTES: usize = 3336;

fn device() -> GpuDevice {
    GpuDevice::emulated().expect("the emulated GPU")
}

#[test]
fn a_struct_of_the_kernels_size_launches() {
    let dev = device();
    let out = dev.alloc(8).expect("a buffer");
    // All zeros: no elements, no stores, no reduction; the one pointer is set anyway.
    let mut args = StructArg::new(vec![0; FUSED_ARGS_BYTES]).expect("within the limit");
    args.set_pointer(0, &out, 0).expect("inside the struct");
    dev.launch(
        &Launch::new(Kernel::fused(Dtype::F64), geometry::launch_1d(1))
            .arg(KernelArg::Struct(&args)),
    )
    .expect("an empty step runs");
    dev.synchronize().expect("no fault");
}

#[test]
fn a_struct_of_another_size_is_refused() {
    let dev = device();
    let args = StructArg::new(vec![0; FUSED_ARGS_BYTES - 8]).expect("within the limit");
    let err = dev
        .launch(
            &Launch::new(Kernel::fused(Dtype::F32), geometry::launch_1d(1))
                .arg(KernelArg::Struct(&args)),
        )
        .expect_err("3328 bytes for a 3336-byte parameter");
    let msg = err.to_string();
    assert!(
        msg.contains("3328-byte struct") && msg.contains("3336"),
        "{msg}"
    );
}

#[test]
fn a_struct_where_a_scalar_or_pointer_goes_and_a_scalar_where_a_struct_goes_are_refused() {
    let dev = device();
    let args = StructArg::new(vec![0; 16]).expect("within the limit");
    let err = dev
        .launch(
            &Launch::new(Kernel::fused(Dtype::F64), geometry::launch_1d(1)).arg(KernelArg::U64(0)),
        )
        .expect_err("a scalar for a struct");
    assert!(err.to_string().contains("expects struct"), "{err}");
    let err = dev
        .launch(
            &Launch::new(Kernel::fill(Dtype::F32), geometry::launch_1d(1)).args([
                KernelArg::Struct(&args),
                KernelArg::U64(1),
                KernelArg::F32(0.0),
            ]),
        )
        .expect_err("a struct for a pointer");
    assert!(err.to_string().contains("argument 0 is struct"), "{err}");
}

#[test]
fn struct_limits_are_errors() {
    let dev = device();
    let buf = dev.alloc(16).expect("a buffer");
    assert!(StructArg::new(Vec::new()).is_err(), "empty");
    assert!(StructArg::new(vec![0; 12]).is_err(), "not a multiple of 8");
    assert!(
        StructArg::new(vec![0; StructArg::MAX_BYTES + 8]).is_err(),
        "too large"
    );
    let mut args = StructArg::new(vec![0; 32]).expect("within the limit");
    assert!(args.set_pointer(4, &buf, 0).is_err(), "unaligned");
    assert!(args.set_pointer(32, &buf, 0).is_err(), "past the end");
    assert!(
        args.set_pointer(usize::MAX - 7, &buf, 0).is_err(),
        "overflowing"
    );
    assert!(args.set_pointer(8, &buf, 17).is_err(), "past the buffer");
    args.set_pointer(24, &buf, 16)
        .expect("the buffer's end is a valid address");
}
