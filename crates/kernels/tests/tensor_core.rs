//! The tensor-core and asynchronous-copy instructions of `kernels/common.cuh` (`mma.sync`
//! m16n8k8 TF32, m16n8k16 f16 / bf16, `cp.async` with its groups and waits), through the test
//! kernels of `kernels/testing/race_test.cu`: each `mma` against a scalar f64 reference
//! written here (its own TF32 rounding and half-precision decoding) for random fragments, and
//! `cp.async` copies landing exactly at their wait. On the emulated GPU, and on a real one when
//! present.

mod common;

use common::{download, upload, zeros, Rng};
use curvature_kernels::{GpuBuffer, GpuDevice, KernelArg};

/// `x` rounded to TF32 (10 explicit mantissa bits), to nearest with ties away from zero.
fn tf32(x: f64) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let ulp = 2f64.powi(x.abs().log2().floor() as i32 - 10);
    x.signum() * (x.abs() / ulp + 0.5).floor() * ulp
}

/// IEEE binary16 bits to their value.
fn f16_value(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let man = f64::from(h & 0x3ff);
    match exp {
        0 => sign * man * 2f64.powi(-24),
        _ => sign * (1.0 + man / 1024.0) * 2f64.powi(exp - 15),
    }
}

/// bfloat16 bits to their value (the high half of an f32).
fn bf16_value(h: u16) -> f64 {
    f64::from(f32::from_bits(u32::from(h) << 16))
}

fn launch(dev: &GpuDevice, kernel: &str, threads: u32, args: &[KernelArg]) {
    dev.launch_testing(kernel, (1, 1, 1), (threads, 1, 1), args)
        .unwrap_or_else(|e| panic!("{kernel}: {e}"));
}

fn upload_u16(dev: &GpuDevice, v: &[u16]) -> GpuBuffer {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_ne_bytes()).collect();
    dev.upload(&bytes).expect("upload")
}

/// Row-major `a` (m×k) · `b` (k×n) + `c` (m×n) in f64, with |a|·|b| + |c| for the tolerance.
fn reference(
    a: &[f64],
    b: &[f64],
    c: &[f64],
    m: usize,
    n: usize,
    k: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut d = c.to_vec();
    let mut scale: Vec<f64> = c.iter().map(|v| v.abs()).collect();
    for i in 0..m {
        for j in 0..n {
            for kk in 0..k {
                d[i * n + j] += a[i * k + kk] * b[kk * n + j];
                scale[i * n + j] += (a[i * k + kk] * b[kk * n + j]).abs();
            }
        }
    }
    (d, scale)
}

fn assert_within(what: &str, got: &[f64], want: &[f64], scale: &[f64], rel: f64) {
    for (i, ((g, w), s)) in got.iter().zip(want).zip(scale).enumerate() {
        assert!(
            (g - w).abs() <= rel * s,
            "{what}[{i}]: got {g}, want {w} (scale {s}, relative tolerance {rel:e})"
        );
    }
}

/// The test kernel's D for A, B, C; `round`: the kernel rounds the inputs with `cv_tf32`
/// (else the instruction itself gets raw f32 bits, which only the emulated GPU specifies).
fn mma_tf32(dev: &GpuDevice, a: &[f64], b: &[f64], c: &[f64], round: bool) -> Vec<f64> {
    let (ab, bb, cb) = (
        upload::<f32>(dev, a),
        upload::<f32>(dev, b),
        upload::<f32>(dev, c),
    );
    let d = zeros::<f32>(dev, 128);
    launch(
        dev,
        "mma_m16n8k8_tf32_test",
        32,
        &[
            KernelArg::Buffer(&ab),
            KernelArg::Buffer(&bb),
            KernelArg::Buffer(&cb),
            KernelArg::Buffer(&d),
            KernelArg::I32(i32::from(round)),
        ],
    );
    download::<f32>(dev, &d)
}

fn f32_values(v: &[f64]) -> Vec<f64> {
    v.iter().map(|&x| f64::from(x as f32)).collect()
}

fn mma_m16n8k8_tf32_matches_the_rounded_product(dev: &GpuDevice, round: bool) {
    let mut rng = Rng::new(7);
    for _ in 0..4 {
        let a = f32_values(&rng.vec(128, -2.0, 2.0));
        let b = f32_values(&rng.vec(64, -2.0, 2.0));
        let c = f32_values(&rng.vec(128, -1.0, 1.0));
        let got = mma_tf32(dev, &a, &b, &c, round);
        let ar: Vec<f64> = a.iter().map(|&x| tf32(x)).collect();
        let br: Vec<f64> = b.iter().map(|&x| tf32(x)).collect();
        let (want, scale) = reference(&ar, &br, &c, 16, 8, 8);
        // f32 accumulation of 8 exact products: a few f32 ulps of the scale. Unrounded inputs
        // would be off by up to 2^-11 of each product.
        assert_within("mma m16n8k8 tf32", &got, &want, &scale, 1e-6);
        let (unrounded, _) = reference(&a, &b, &c, 16, 8, 8);
        let off = got
            .iter()
            .zip(&unrounded)
            .zip(&scale)
            .map(|((g, u), s)| (g - u).abs() / s)
            .fold(0.0, f64::max);
        assert!(
            off > 1e-5,
            "the inputs were not rounded to TF32 (largest difference {off:e})"
        );
    }
}

fn tf32_rounding_is_to_nearest_ties_away(dev: &GpuDevice) {
    // D = A·I: every A value comes back rounded.
    let tie = 1.0 + 2f64.powi(-11);
    let below = 1.0 + 2f64.powi(-11) - 2f64.powi(-23);
    let cases = [
        (tie, 1.0 + 2f64.powi(-10)),
        (-tie, -(1.0 + 2f64.powi(-10))),
        (below, 1.0),
        (3.0 * 2f64.powi(-12) + 1.0, 1.0 + 2f64.powi(-10)),
        (0.0, 0.0),
        (1.5, 1.5),
    ];
    let mut a = vec![0.0; 128];
    for (i, (x, _)) in cases.iter().enumerate() {
        a[i * 8] = *x;
    }
    let identity: Vec<f64> = (0..64)
        .map(|i| if i / 8 == i % 8 { 1.0 } else { 0.0 })
        .collect();
    let got = mma_tf32(dev, &a, &identity, &[0.0; 128], true);
    for (i, (x, want)) in cases.iter().enumerate() {
        assert_eq!(got[i * 8], *want, "tf32({x})");
        assert_eq!(tf32(*x), *want, "the test's own tf32({x})");
    }
}

/// Random finite half-precision bit patterns with exponent fields in `exps`.
fn half_bits(rng: &mut Rng, n: usize, exps: (u16, u16), man_bits: u32) -> Vec<u16> {
    (0..n)
        .map(|_| {
            let r = rng.next_u64();
            let sign = ((r & 1) as u16) << 15;
            let span = u64::from(exps.1 - exps.0 + 1);
            let exp = exps.0 + ((r >> 1) % span) as u16;
            let man = ((r >> 8) & ((1 << man_bits) - 1)) as u16;
            sign | (exp << man_bits) | man
        })
        .collect()
}

fn mma_m16n8k16_matches(dev: &GpuDevice, kernel: &str, bf16: bool) {
    let mut rng = Rng::new(if bf16 { 11 } else { 13 });
    for _ in 0..3 {
        let (exps, man_bits) = if bf16 {
            ((124, 128), 7)
        } else {
            ((12, 17), 10)
        };
        let a_bits = half_bits(&mut rng, 256, exps, man_bits);
        let b_bits = half_bits(&mut rng, 128, exps, man_bits);
        let value = |h: u16| if bf16 { bf16_value(h) } else { f16_value(h) };
        let a: Vec<f64> = a_bits.iter().map(|&h| value(h)).collect();
        let b: Vec<f64> = b_bits.iter().map(|&h| value(h)).collect();
        let c = f32_values(&rng.vec(128, -1.0, 1.0));
        let (ab, bb, cb) = (
            upload_u16(dev, &a_bits),
            upload_u16(dev, &b_bits),
            upload::<f32>(dev, &c),
        );
        let d = zeros::<f32>(dev, 128);
        launch(
            dev,
            kernel,
            32,
            &[
                KernelArg::Buffer(&ab),
                KernelArg::Buffer(&bb),
                KernelArg::Buffer(&cb),
                KernelArg::Buffer(&d),
            ],
        );
        let got = download::<f32>(dev, &d);
        let (want, scale) = reference(&a, &b, &c, 16, 8, 16);
        assert_within(kernel, &got, &want, &scale, 1e-6);
    }
}

fn cp_async_lands_at_its_wait(dev: &GpuDevice) {
    let src: Vec<f64> = (0..224).map(|i| f64::from(i) + 0.5).collect();
    let sb = upload::<f32>(dev, &src);
    let out = zeros::<f32>(dev, 224);
    launch(
        dev,
        "cp_async_test",
        32,
        &[
            KernelArg::Buffer(&sb),
            KernelArg::Buffer(&out),
            KernelArg::I32(0),
        ],
    );
    let got = download::<f32>(dev, &out);
    for t in 0..32 {
        let u = (t + 1) % 32;
        assert_eq!(got[t], src[u], "4-byte copy of thread {u}");
        for e in 0..2 {
            assert_eq!(
                got[32 + 2 * t + e],
                src[32 + 2 * u + e],
                "8-byte copy of thread {u}"
            );
        }
        for e in 0..4 {
            // Odd threads read 8 of the 16 bytes: the rest is zero-filled.
            let want = if u % 2 == 1 && e >= 2 {
                0.0
            } else {
                src[96 + 4 * u + e]
            };
            assert_eq!(
                got[96 + 4 * t + e],
                want,
                "16-byte copy of thread {u}, float {e}"
            );
        }
    }
}

/// The emulated instruction rounds raw f32 inputs itself (`cvt.rna` semantics).
#[test]
fn emulated_mma_tf32_rounds_raw_inputs() {
    mma_m16n8k8_tf32_matches_the_rounded_product(&common::emulator(), false);
}

/// The shared byte offset an error about `s` names.
fn shared_byte(err: &str) -> usize {
    let at = err.find("`s` (byte ").expect("the error names `s`") + "`s` (byte ".len();
    let digits: String = err[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().expect("a byte offset")
}

fn cp_async_error(mode: i32) -> String {
    let dev = common::emulator();
    let src = upload::<f32>(&dev, &[1.0; 224]);
    let out = zeros::<f32>(&dev, 224);
    dev.launch_testing(
        "cp_async_test",
        (1, 1, 1),
        (32, 1, 1),
        &[
            KernelArg::Buffer(&src),
            KernelArg::Buffer(&out),
            KernelArg::I32(mode),
        ],
    )
    .expect_err("the emulated GPU must reject this kernel")
    .to_string()
}

#[test]
fn emulated_cp_async_without_a_wait_reads_never_written_shared_memory() {
    let err = cp_async_error(1);
    for part in ["cp_async_test", "never-written"] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
    // The first reads are of regions 0 and 1 (bytes 0..384).
    assert!(shared_byte(&err) < 384, "{err}");
}

#[test]
fn emulated_cp_async_group_not_waited_for_has_not_landed() {
    // wait_group 1 lands group 0 only: the 16-byte copies of group 1 are still in flight.
    let err = cp_async_error(2);
    for part in ["cp_async_test", "never-written"] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
    assert!((384..896).contains(&shared_byte(&err)), "{err}");
}

#[test]
fn emulated_thread_exiting_with_copies_in_flight_is_reported() {
    let err = cp_async_error(3);
    for part in [
        "cp_async_test",
        "exits with 1 cp.async copies it never waited for",
    ] {
        assert!(err.contains(part), "`{part}` missing from: {err}");
    }
}

device_tests! {
    mma_m16n8k8_tf32_rounds_then_accumulates => |dev: &GpuDevice| mma_m16n8k8_tf32_matches_the_rounded_product(dev, true);
    mma_tf32_rounding_is_to_nearest_ties_away => tf32_rounding_is_to_nearest_ties_away;
    mma_m16n8k16_f16_matches_reference => |dev: &GpuDevice| mma_m16n8k16_matches(dev, "mma_m16n8k16_f16_test", false);
    mma_m16n8k16_bf16_matches_reference => |dev: &GpuDevice| mma_m16n8k16_matches(dev, "mma_m16n8k16_bf16_test", true);
    cp_async_copies_land_at_their_wait => cp_async_lands_at_its_wait;
}
