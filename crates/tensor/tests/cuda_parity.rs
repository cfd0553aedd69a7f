//! CPU/CUDA parity: every tensor op on `Device::Cuda` equals the CPU result (the CPU backend is
//! the specification) on seeded random inputs, in f64 (1e-12 relative) and f32 (1e-5
//! relative, both relative to the largest magnitude of the result). Runs on a real GPU when one is present, else on the emulated GPU (ARCHITECTURE.md, "The emulated GPU");
//! with `CURVATURE_REQUIRE_GPU=1` a missing GPU fails the tests instead.

use curvature_tensor::backend::{BinaryOp, TernaryOp, UnaryOp};
use curvature_tensor::{DType, Device, Result, Tensor, TensorError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn gpu() -> Device {
    let device = Device::cuda_or_emulated().expect("a real or emulated CUDA device");
    eprintln!("CUDA parity on {}", device.description());
    device
}

fn tol(dtype: DType) -> f64 {
    match dtype {
        DType::F64 => 1e-12,
        DType::F32 => 1e-5,
    }
}

struct Inputs(ChaCha8Rng);

impl Inputs {
    fn new(seed: u64) -> Inputs {
        Inputs(ChaCha8Rng::seed_from_u64(seed))
    }

    fn uniform(&mut self, dims: &[usize], lo: f64, hi: f64, dtype: DType) -> Tensor {
        let n = dims.iter().product();
        let data: Vec<f64> = (0..n).map(|_| self.0.random_range(lo..hi)).collect();
        Tensor::from_f64s(&data, dims, dtype, Device::Cpu).expect("a CPU tensor")
    }

    fn any(&mut self, dims: &[usize], dtype: DType) -> Tensor {
        self.uniform(dims, -1.0, 1.0, dtype)
    }
}

/// Runs `f` on `inputs` on the CPU and on `device` and asserts equal shapes, dtypes and values:
/// max|cuda − cpu| ≤ tol·max(1, max|cpu|) over the finite elements (the golden data's measure:
/// summation order differs between the backends), and NaN / ±inf in the same places.
fn parity(name: &str, device: Device, inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Result<Tensor>) {
    let cpu = f(inputs).unwrap_or_else(|e| panic!("{name} on the CPU: {e}"));
    let moved: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.to_device(device).expect("upload"))
        .collect();
    let gpu = f(&moved).unwrap_or_else(|e| panic!("{name} on {device}: {e}"));
    assert_eq!(gpu.device(), device, "{name}: result device");
    assert_eq!(gpu.dims(), cpu.dims(), "{name}: shape");
    assert_eq!(gpu.dtype(), cpu.dtype(), "{name}: dtype");
    let (c, g) = (cpu.to_f64s().unwrap(), gpu.to_f64s().unwrap());
    let scale = c
        .iter()
        .filter(|v| v.is_finite())
        .fold(1.0f64, |m, v| m.max(v.abs()));
    let bound = tol(cpu.dtype()) * scale;
    for (i, (a, b)) in c.iter().zip(&g).enumerate() {
        let ok = if a.is_finite() {
            (a - b).abs() <= bound
        } else {
            (a.is_nan() && b.is_nan()) || a == b
        };
        assert!(
            ok,
            "{name} ({}): element {i}: cpu {a} vs cuda {b} (bound {bound:e})",
            cpu.dtype()
        );
    }
}

const DTYPES: [DType; 2] = [DType::F64, DType::F32];

#[test]
fn unary_ops_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(1);
    let ops = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sin,
        UnaryOp::Cos,
        UnaryOp::Sqrt,
        UnaryOp::Abs,
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Square,
        UnaryOp::Sign,
        UnaryOp::Recip,
        UnaryOp::Powf { exponent: 2.5 },
        UnaryOp::Powf { exponent: -1.5 },
        UnaryOp::Affine {
            mul: -1.5,
            add: 0.25,
        },
    ];
    for dtype in DTYPES {
        let signed = r.uniform(&[3, 5, 7], -4.0, 4.0, dtype);
        let positive = r.uniform(&[3, 5, 7], 0.1, 4.0, dtype);
        for op in ops {
            let needs_positive = matches!(
                op,
                UnaryOp::Log | UnaryOp::Sqrt | UnaryOp::Powf { .. } | UnaryOp::Recip
            );
            let x = if needs_positive { &positive } else { &signed };
            parity(op.name(), device, std::slice::from_ref(x), |v| {
                v[0].unary(op)
            });
        }
        parity("scalar exp", device, &[r.any(&[], dtype)], |v| v[0].exp());
        parity("empty tanh", device, &[r.any(&[0, 3], dtype)], |v| {
            v[0].tanh()
        });
    }
}

/// Shape pairs covering same-shape, trailing, leading, both-sided and scalar broadcasts.
const PAIRS: [(&[usize], &[usize]); 7] = [
    (&[4, 5], &[4, 5]),
    (&[3, 4], &[4]),
    (&[4], &[3, 4]),
    (&[2, 1, 4], &[3, 1]),
    (&[3, 1], &[2, 1, 4]),
    (&[], &[3]),
    (&[2, 3, 300], &[]),
];

#[test]
fn binary_ops_broadcast_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(2);
    let ops = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Eq,
        BinaryOp::TanhBackward,
        BinaryOp::SigmoidBackward,
    ];
    for dtype in DTYPES {
        for (a, b) in PAIRS {
            let inputs = [r.any(a, dtype), r.uniform(b, 0.5, 1.5, dtype)];
            for op in ops {
                parity(
                    &format!("{} {a:?} {b:?}", op.name()),
                    device,
                    &inputs,
                    |v| v[0].binary(op, &v[1]),
                );
            }
        }
        // Equal values, so `eq` sees ones as well as zeros.
        let x = r.any(&[3, 4], dtype);
        let row = x.narrow(0, 1, 1).unwrap();
        parity("eq with ties", device, &[x, row], |v| v[0].eq_mask(&v[1]));
    }
}

#[test]
fn ternary_ops_broadcast_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(3);
    let triples: [(&[usize], &[usize], &[usize]); 4] = [
        (&[2, 3], &[2, 3], &[2, 3]),
        (&[2, 3], &[3], &[2, 1]),
        (&[], &[2, 3], &[3]),
        (&[4, 1, 5], &[3, 1], &[5]),
    ];
    for dtype in DTYPES {
        for op in [
            TernaryOp::TanhBackwardGradY,
            TernaryOp::SigmoidBackwardGradY,
        ] {
            for (a, b, c) in triples {
                let inputs = [r.any(a, dtype), r.any(b, dtype), r.any(c, dtype)];
                parity(
                    &format!("{} {a:?} {b:?} {c:?}", op.name()),
                    device,
                    &inputs,
                    |v| v[0].ternary(op, &v[1], &v[2]),
                );
            }
        }
    }
}

#[test]
fn reductions_over_each_axis_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(4);
    for dtype in DTYPES {
        let x = r.any(&[4, 5, 6], dtype);
        let one = std::slice::from_ref(&x);
        for axis in [0, 1, 2] {
            for keepdim in [true, false] {
                parity(&format!("sum {axis} {keepdim}"), device, one, |v| {
                    v[0].sum(&[axis], keepdim)
                });
                parity(&format!("mean {axis} {keepdim}"), device, one, |v| {
                    v[0].mean(&[axis], keepdim)
                });
                parity(&format!("max {axis} {keepdim}"), device, one, |v| {
                    v[0].max(axis, keepdim)
                });
            }
        }
        parity("sum [0, 2]", device, one, |v| v[0].sum(&[0, 2], false));
        parity("sum_all", device, one, |v| v[0].sum_all());
        parity("mean_all", device, one, |v| v[0].mean_all());
        parity("max_all", device, one, |v| v[0].max_all());
        parity("sum_to [5, 1]", device, one, |v| v[0].sum_to([5, 1]));
        parity("sum_to [1, 1, 6]", device, one, |v| v[0].sum_to([1, 1, 6]));
        // Long reduced axes (1024-thread blocks, many partial sums) and wide inner axes.
        let tall = r.any(&[1000, 3], dtype);
        parity(
            "sum tall axis 0",
            device,
            std::slice::from_ref(&tall),
            |v| v[0].sum(&[0], false),
        );
        parity(
            "max tall axis 0",
            device,
            std::slice::from_ref(&tall),
            |v| v[0].max(0, false),
        );
        let wide = r.any(&[3, 1000], dtype);
        parity(
            "sum wide axis 1",
            device,
            std::slice::from_ref(&wide),
            |v| v[0].sum(&[1], false),
        );
        parity(
            "sum wide axis 0",
            device,
            std::slice::from_ref(&wide),
            |v| v[0].sum(&[0], true),
        );
        parity(
            "sum of empty axis",
            device,
            &[r.any(&[3, 0, 2], dtype)],
            |v| v[0].sum(&[1], false),
        );
    }
}

#[test]
fn log_softmax_and_logsumexp_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(5);
    for dtype in DTYPES {
        let x = r.uniform(&[3, 4, 5], -3.0, 3.0, dtype);
        let one = std::slice::from_ref(&x);
        for axis in [0, 1, 2, -1] {
            parity(&format!("log_softmax {axis}"), device, one, |v| {
                v[0].log_softmax(axis)
            });
            for keepdim in [true, false] {
                parity(&format!("logsumexp {axis} {keepdim}"), device, one, |v| {
                    v[0].logsumexp(axis, keepdim)
                });
            }
        }
        // Rows longer than one block, and large values that overflow without the shift.
        let long = r
            .uniform(&[2, 700], -50.0, 50.0, dtype)
            .mul_scalar(10.0)
            .unwrap();
        parity(
            "log_softmax long rows",
            device,
            std::slice::from_ref(&long),
            |v| v[0].log_softmax(-1),
        );
        parity("logsumexp long rows", device, &[long], |v| {
            v[0].logsumexp(-1, false)
        });
        let inf = Tensor::from_f64s(
            &[f64::NEG_INFINITY, 1.0, f64::NEG_INFINITY, f64::NEG_INFINITY],
            [2, 2],
            dtype,
            Device::Cpu,
        )
        .unwrap();
        parity("logsumexp with -inf", device, &[inf], |v| {
            v[0].logsumexp(-1, false)
        });
    }
}

#[test]
fn layout_ops_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(6);
    for dtype in DTYPES {
        let x = r.any(&[3, 4, 5], dtype);
        let one = std::slice::from_ref(&x);
        parity("permute [2, 0, 1]", device, one, |v| {
            v[0].permute(&[2, 0, 1])
        });
        parity("transpose 0 2", device, one, |v| v[0].transpose(0, 2));
        parity("t", device, one, |v| v[0].t());
        parity("reshape", device, one, |v| v[0].reshape([12, 5]));
        parity("narrow 1 1 2", device, one, |v| v[0].narrow(1, 1, 2));
        parity("narrow 2 3 2", device, one, |v| v[0].narrow(2, 3, 2));
        parity("pad_zeros 1 2 1", device, one, |v| v[0].pad_zeros(1, 2, 1));
        parity("pad_zeros -1 0 3", device, one, |v| {
            v[0].pad_zeros(-1, 0, 3)
        });
        parity("broadcast_to", device, &[r.any(&[4, 1], dtype)], |v| {
            v[0].broadcast_to([2, 4, 3])
        });
        parity("expand scalar", device, &[r.any(&[], dtype)], |v| {
            v[0].expand([3, 2])
        });
        for axis in [0, 1, 2] {
            parity(&format!("index_select {axis}"), device, one, |v| {
                v[0].index_select(axis, &[2, 0, 2, 1])
            });
        }
        parity("index_select none", device, one, |v| {
            v[0].index_select(1, &[])
        });
        parity("diagonal [3, 4, 5]", device, one, |v| v[0].diagonal());
        parity("trace", device, &[r.any(&[6, 4], dtype)], |v| v[0].trace());
        let parts = [
            r.any(&[3, 1, 5], dtype),
            r.any(&[3, 4, 5], dtype),
            r.any(&[3, 2, 5], dtype),
        ];
        parity("cat 1", device, &parts, |v| {
            Tensor::cat(&[&v[0], &v[1], &v[2]], 1)
        });
        let rows = [
            r.any(&[1, 4], dtype),
            r.any(&[3, 4], dtype),
            r.any(&[0, 4], dtype),
        ];
        parity("cat 0 with an empty part", device, &rows, |v| {
            Tensor::cat(&[&v[0], &v[1], &v[2]], 0)
        });
        let same = [r.any(&[2, 3], dtype), r.any(&[2, 3], dtype)];
        for axis in 0..3 {
            parity(&format!("stack {axis}"), device, &same, |v| {
                Tensor::stack(&[&v[0], &v[1]], axis)
            });
        }
    }
}

#[test]
fn dtype_conversion_and_constructors_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(7);
    let x = r.uniform(&[5, 7], -1e3, 1e3, DType::F64);
    parity("f64 -> f32", device, std::slice::from_ref(&x), |v| {
        v[0].to_dtype(DType::F32)
    });
    parity("f64 -> f32 -> f64", device, std::slice::from_ref(&x), |v| {
        v[0].to_dtype(DType::F32)?.to_dtype(DType::F64)
    });
    parity("f64 -> f64", device, &[x], |v| v[0].to_dtype(DType::F64));
    for dtype in DTYPES {
        // Uploads and downloads are exact, constructors build the same values.
        let data: Vec<f64> = (0..10).map(|i| i as f64 * 0.1 - 0.3).collect();
        let host = Tensor::from_f64s(&data, [2, 5], dtype, Device::Cpu).unwrap();
        let dev = Tensor::from_f64s(&data, [2, 5], dtype, device).unwrap();
        assert_eq!(dev.device(), device);
        assert_eq!(dev.to_f64s().unwrap(), host.to_f64s().unwrap());
        assert_eq!(dev.to_bytes().unwrap(), host.to_bytes().unwrap());
        let eye = Tensor::eye(3, 4, dtype, device).unwrap();
        assert_eq!(
            eye.to_f64s().unwrap(),
            Tensor::eye(3, 4, dtype, Device::Cpu)
                .unwrap()
                .to_f64s()
                .unwrap()
        );
        // Constants are built on the device: the same bits as on the host, −0.0 and NaN too.
        for value in [0.0, -0.0, 1.0, 2.5, 1e300, f64::NAN] {
            let on_gpu = Tensor::full(value, [3, 1000], dtype, device).unwrap();
            let on_cpu = Tensor::full(value, [3, 1000], dtype, Device::Cpu).unwrap();
            assert_eq!(on_gpu.device(), device);
            assert!(
                on_gpu.to_bytes().unwrap() == on_cpu.to_bytes().unwrap(),
                "full({value}) in {dtype}"
            );
        }
        let ones = Tensor::ones_like(&dev).unwrap();
        assert_eq!(
            (ones.device(), ones.to_f64s().unwrap()),
            (device, vec![1.0; 10])
        );
        let empty = Tensor::zeros([0, 3], dtype, device).unwrap();
        assert_eq!(empty.to_f64s().unwrap(), Vec::<f64>::new());
        let back = dev.to_device(Device::Cpu).unwrap();
        assert_eq!(back.device(), Device::Cpu);
        assert_eq!(back.to_f64s().unwrap(), host.to_f64s().unwrap());
    }
    device.synchronize().expect("synchronize");
}

/// Dimensions that cover every tile edge: 1, a partial tile, just past 32, just past 128
/// (the f32 tile) and past 64 (the f64 tile), and many tiles.
const DIMS: [usize; 4] = [1, 7, 33, 129];

#[test]
fn matmul_tile_edges_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(8);
    for dtype in DTYPES {
        for m in DIMS {
            for n in DIMS {
                for k in DIMS {
                    let inputs = [r.any(&[m, k], dtype), r.any(&[k, n], dtype)];
                    parity(&format!("matmul {m}x{k} @ {k}x{n}"), device, &inputs, |v| {
                        v[0].matmul(&v[1])
                    });
                }
            }
        }
    }
}

#[test]
fn matmul_dimension_1000_matches_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(9);
    for dtype in DTYPES {
        let cases: [(usize, usize, usize); 3] = [(1000, 7, 33), (7, 33, 1000), (33, 1000, 7)];
        for (m, k, n) in cases {
            let inputs = [r.any(&[m, k], dtype), r.any(&[k, n], dtype)];
            parity(&format!("matmul {m}x{k} @ {k}x{n}"), device, &inputs, |v| {
                v[0].matmul(&v[1])
            });
        }
    }
}

#[test]
fn matmul_transposed_batched_and_broadcast_match_cpu_cuda() {
    let device = gpu();
    let mut r = Inputs::new(10);
    for dtype in DTYPES {
        // op(A) is 33×7, op(B) is 7×129, for each pair of transpose flags.
        for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
            let a = if ta {
                r.any(&[7, 33], dtype)
            } else {
                r.any(&[33, 7], dtype)
            };
            let b = if tb {
                r.any(&[129, 7], dtype)
            } else {
                r.any(&[7, 129], dtype)
            };
            parity(
                &format!("matmul_transposed {ta} {tb}"),
                device,
                &[a, b],
                |v| v[0].matmul_transposed(&v[1], ta, tb),
            );
            let a = if ta {
                r.any(&[3, 7, 33], dtype)
            } else {
                r.any(&[3, 33, 7], dtype)
            };
            let b = if tb {
                r.any(&[129, 7], dtype)
            } else {
                r.any(&[7, 129], dtype)
            };
            parity(
                &format!("batched matmul_transposed {ta} {tb}"),
                device,
                &[a, b],
                |v| v[0].matmul_transposed(&v[1], ta, tb),
            );
        }
        let cases: [(&[usize], &[usize]); 7] = [
            (&[3, 7, 33], &[3, 33, 129]),
            (&[3, 7, 33], &[33, 5]),
            (&[7, 33], &[3, 33, 5]),
            (&[2, 1, 7, 33], &[3, 33, 5]),
            (&[33], &[33, 7]),
            (&[7, 33], &[33]),
            (&[129], &[129]),
        ];
        for (a, b) in cases {
            let inputs = [r.any(a, dtype), r.any(b, dtype)];
            parity(&format!("matmul {a:?} @ {b:?}"), device, &inputs, |v| {
                v[0].matmul(&v[1])
            });
        }
        parity(
            "matmul k = 0",
            device,
            &[r.any(&[3, 0], dtype), r.any(&[0, 4], dtype)],
            |v| v[0].matmul(&v[1]),
        );
    }
}

#[test]
fn ops_mixing_cpu_and_cuda_are_device_mismatch_errors() {
    let device = gpu();
    let cpu = Tensor::ones([2, 2], DType::F64, Device::Cpu).unwrap();
    let cuda = Tensor::ones([2, 2], DType::F64, device).unwrap();
    let mixed: [(&str, Result<Tensor>); 4] = [
        ("add", cpu.add(&cuda)),
        ("matmul", cuda.matmul(&cpu)),
        ("cat", Tensor::cat(&[&cpu, &cuda], 0)),
        (
            "tanh_backward_grad_y",
            cuda.ternary(TernaryOp::TanhBackwardGradY, &cuda, &cpu),
        ),
    ];
    for (op, result) in mixed {
        match result {
            Err(e @ TensorError::DeviceMismatch { .. }) => {
                let message = e.to_string();
                assert!(
                    message.contains("cpu") && message.contains("cuda:0") && message.contains(op),
                    "{op}: {message}"
                );
            }
            other => panic!("{op}: expected a device mismatch, got {other:?}"),
        }
    }
    // A dtype mismatch on the GPU is an error too, not a panic.
    let f32s = Tensor::ones([2, 2], DType::F32, device).unwrap();
    assert!(matches!(
        cuda.add(&f32s),
        Err(TensorError::DTypeMismatch { .. })
    ));
}
