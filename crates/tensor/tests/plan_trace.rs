//! Tracing (`plan::capture`), constant folding, dead-step removal and the plan executor:
//! captures of known functions step by step, every refusal and error, and plans replayed on new
//! inputs against closed forms written here, on the CPU and on CUDA (the emulated GPU in CI).

mod common;

use curvature_tensor::plan::{capture, Plan, PlanStep, Prim, Source};
use curvature_tensor::{DType, Device, Tensor, TensorError};

fn f64s(values: &[f64], dims: &[usize], device: Device) -> Tensor {
    Tensor::from_f64s(values, dims, DType::F64, device).unwrap()
}

fn close(ours: &[f64], expected: &[f64], tol: f64) {
    assert_eq!(ours.len(), expected.len());
    let scale = expected.iter().fold(1e-300f64, |m, e| m.max(e.abs()));
    for (i, (a, b)) in ours.iter().zip(expected).enumerate() {
        assert!((a - b).abs() <= tol * scale, "element {i}: {a} vs {b}");
    }
}

/// The error of a capture that must fail.
fn refused(
    result: curvature_tensor::Result<(Vec<Tensor>, curvature_tensor::plan::Trace)>,
) -> TensorError {
    match result {
        Err(e) => e,
        Ok(_) => panic!("the capture should have failed"),
    }
}

fn call_names(plan: &Plan) -> Vec<&'static str> {
    plan.steps()
        .iter()
        .map(|s| match s {
            PlanStep::Call(step) => step.prim.name(),
            PlanStep::Fused(_) => "fused",
        })
        .collect()
}

/// Σ_j tanh(x_ij · w_j), written out.
fn tanh_rows(x: &[f64], w: &[f64]) -> Vec<f64> {
    x.chunks(w.len())
        .map(|row| row.iter().zip(w).map(|(a, b)| (a * b).tanh()).sum())
        .collect()
}

/// `sum(tanh(x · w), axis 1)` with a reshape round trip: three traced steps reading one input
/// and one constant; the plan replays it for new inputs.
fn capture_records_steps_inputs_and_constants(device: Device) {
    let w_host = [0.5, -1.5, 2.0];
    let w = f64s(&w_host, &[3], device);
    let x = f64s(&[0.1, 0.2, 0.3, -0.4, 0.5, -0.6], &[2, 3], device);
    let (outs, trace) = capture(&[&x], || {
        let flat = x.reshape([6])?.reshape([2, 3])?;
        Ok(vec![flat.mul(&w)?.tanh()?.sum(&[1], false)?])
    })
    .unwrap();
    assert_eq!(trace.device, device);
    let names: Vec<_> = trace.steps.iter().map(|s| s.prim.name()).collect();
    assert_eq!(names, ["mul", "tanh", "reduce_sum"]);
    assert_eq!(trace.inputs.len(), 1);
    let (input, shape) = &trace.inputs[0];
    assert_eq!(shape.dims(), [2, 3]);
    assert!(matches!(trace.values[*input].source, Source::Input(0)));
    let mul = &trace.steps[0];
    assert_eq!(
        mul.args[0], *input,
        "the reshaped input is the input itself"
    );
    match &trace.values[mul.args[1]].source {
        Source::Constant(t) => assert_eq!(t.to_f64s().unwrap(), w_host),
        _ => panic!("w must be a constant"),
    }
    assert_eq!(trace.steps[1].args, [mul.out]);
    assert_eq!(trace.steps[2].args, [trace.steps[1].out]);
    assert_eq!(trace.outputs.len(), 1);
    assert_eq!(trace.outputs[0].0, trace.steps[2].out);
    assert_eq!(trace.outputs[0].1.dims(), [2]);
    assert!(matches!(
        trace.values[trace.steps[2].out].source,
        Source::Step(2)
    ));
    close(
        &outs[0].to_f64s().unwrap(),
        &tanh_rows(&x.to_f64s().unwrap(), &w_host),
        1e-15,
    );

    let plan = Plan::compile(trace).unwrap();
    for round in 0..3 {
        let host: Vec<f64> = (0..6)
            .map(|i| (i as f64 - 2.5) * 0.3 + round as f64)
            .collect();
        let out = plan.run(&[&f64s(&host, &[2, 3], device)]).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].dims(), [2]);
        assert_eq!(out[0].device(), device);
        close(
            &out[0].to_f64s().unwrap(),
            &tanh_rows(&host, &w_host),
            1e-12,
        );
    }
}

/// In f32 the plan agrees with the closed form to f32 rounding.
fn plan_runs_in_f32(device: Device) {
    let w = Tensor::from_f64s(&[0.5, -1.5, 2.0], [3], DType::F32, device).unwrap();
    let x = Tensor::zeros([2, 3], DType::F32, device).unwrap();
    let (_, trace) = capture(&[&x], || Ok(vec![x.mul(&w)?.tanh()?.sum(&[1], false)?])).unwrap();
    let plan = Plan::compile(trace).unwrap();
    let host = [0.1, 0.2, 0.3, -0.4, 0.5, -0.6];
    let x2 = Tensor::from_f64s(&host, [2, 3], DType::F32, device).unwrap();
    let out = plan.run(&[&x2]).unwrap();
    assert_eq!(out[0].dtype(), DType::F32);
    close(
        &out[0].to_f64s().unwrap(),
        &tanh_rows(&host, &[0.5, -1.5, 2.0]),
        1e-5,
    );
}

/// Steps reading only constants run once at compile time (`1 − c²` and a `Full`), unless their
/// result is larger than the inputs; steps no output needs are dropped.
fn constant_steps_fold_and_dead_steps_go(device: Device) {
    let c_host = [0.5, -0.25, 2.0];
    let c = f64s(&c_host, &[3], device);
    let x = f64s(&[1.0, 2.0, 3.0], &[3], device);
    let (_, trace) = capture(&[&x], || {
        let _unused = x.exp()?;
        let one_minus = c.square()?.neg()?.add_scalar(1.0)?;
        let ones = x.ones_like()?; // a Full step: no operands
        Ok(vec![x.mul(&one_minus)?.add(&ones)?])
    })
    .unwrap();
    assert_eq!(trace.steps.len(), 7);
    let plan = Plan::compile(trace).unwrap();
    // What is left, x·(1 − c²) + 1, is one fused pass.
    assert_eq!(call_names(&plan), ["fused"]);
    let folded = plan
        .trace()
        .values
        .iter()
        .filter(|v| matches!(v.source, Source::Constant(_)))
        .count();
    assert_eq!(folded, 2, "1 − c² and the ones");
    assert_eq!(
        plan.pool_bytes(),
        3 * 3 * 8,
        "the two folded constants and the fused step's output"
    );
    let host = [0.3, -0.7, 1.1];
    let out = plan.run(&[&f64s(&host, &[3], device)]).unwrap();
    let expected: Vec<f64> = host
        .iter()
        .zip(&c_host)
        .map(|(x, c)| x * (1.0 - c * c) + 1.0)
        .collect();
    close(&out[0].to_f64s().unwrap(), &expected, 1e-15);

    // exp(big) is larger than the one-element input: it stays a step and runs every time.
    let big = Tensor::linspace(0.0, 1.0, 100, DType::F64, device).unwrap();
    let y = f64s(&[2.0], &[1], device);
    let (_, trace) = capture(&[&y], || Ok(vec![y.mul(&big.exp()?)?])).unwrap();
    let plan = Plan::compile(trace).unwrap();
    assert_eq!(call_names(&plan), ["fused"], "exp and mul fuse");
    assert_eq!(plan.pool_bytes(), 100 * 8, "the fused step's output only");
    let out = plan.run(&[&f64s(&[-3.0], &[1], device)]).unwrap();
    let expected: Vec<f64> = (0..100).map(|i| -3.0 * (i as f64 / 99.0).exp()).collect();
    close(&out[0].to_f64s().unwrap(), &expected, 1e-14);
}

/// A chain of three unary ops on n elements is one fused pass: its intermediates live in
/// registers, so a run holds only the result.
fn peak_bytes_follow_liveness(device: Device) {
    let x = f64s(&[0.1; 10], &[10], device);
    let (_, trace) = capture(&[&x], || Ok(vec![x.exp()?.tanh()?.sin()?])).unwrap();
    let plan = Plan::compile(trace).unwrap();
    assert_eq!(plan.peak_bytes(), 10 * 8);
    assert_eq!(plan.pool_bytes(), 10 * 8);
    let out = plan.run(&[&f64s(&[0.2; 10], &[10], device)]).unwrap();
    close(
        &out[0].to_f64s().unwrap(),
        &[0.2f64.exp().tanh().sin(); 10],
        1e-15,
    );
}

/// Outputs that are an input or a constant come back as the new input and the constant.
fn outputs_may_be_inputs_or_constants(device: Device) {
    let c = f64s(&[7.0, 8.0], &[2], device);
    let x = f64s(&[1.0, 2.0], &[2], device);
    let (_, trace) = capture(&[&x], || Ok(vec![x.reshape([2, 1])?, c.clone(), x.neg()?])).unwrap();
    let plan = Plan::compile(trace).unwrap();
    let x2 = f64s(&[-4.0, 5.0], &[2], device);
    let out = plan.run(&[&x2]).unwrap();
    assert_eq!(out[0].dims(), [2, 1]);
    assert_eq!(out[0].to_f64s().unwrap(), [-4.0, 5.0]);
    assert_eq!(out[1].to_f64s().unwrap(), [7.0, 8.0]);
    assert_eq!(out[2].to_f64s().unwrap(), [4.0, -5.0]);
}

/// `Plan::run` names every input when one differs in count, shape, dtype or device.
fn run_checks_its_inputs(device: Device) {
    let x = f64s(&[1.0, 2.0], &[2], device);
    let (_, trace) = capture(&[&x], || Ok(vec![x.exp()?])).unwrap();
    let plan = Plan::compile(trace).unwrap();
    let bad = [
        vec![],
        vec![f64s(&[1.0, 2.0, 3.0], &[3], device)],
        vec![f64s(&[1.0, 2.0], &[1, 2], device)],
        vec![Tensor::zeros([2], DType::F32, device).unwrap()],
        vec![x.clone(), x.clone()],
    ];
    for inputs in bad {
        let refs: Vec<&Tensor> = inputs.iter().collect();
        let err = plan.run(&refs).unwrap_err().to_string();
        assert!(
            err.contains("Plan::run") && err.contains("expects inputs [[2] f64"),
            "{err}"
        );
    }
    if device != Device::Cpu {
        let err = plan
            .run(&[&f64s(&[1.0, 2.0], &[2], Device::Cpu)])
            .unwrap_err();
        assert!(err.to_string().contains("got [[2] f64 on cpu]"), "{err}");
    }
}

/// Reading a value computed from the inputs on the host is refused; reading a constant is not.
fn host_reads_of_traced_values_are_refused(device: Device) {
    let x = f64s(&[1.0, 2.0], &[2], device);
    let c = f64s(&[3.0, 4.0], &[2], device);
    let err = refused(capture(&[&x], || {
        let y = x.exp()?;
        let host = y.to_f64s()?;
        Ok(vec![y.add_scalar(host[0])?])
    }));
    assert!(matches!(err, TensorError::PlanUnsupported { .. }), "{err}");
    assert!(err.to_string().contains("read on the host"), "{err}");
    // Moving to the CPU reads the data on the host unless it is there already.
    let reads = if device == Device::Cpu { 1 } else { 2 };
    for read in 0..reads {
        let err = refused(capture(&[&x], || {
            let y = x.neg()?;
            match read {
                0 => drop(y.to_bytes()?),
                _ => drop(y.to_device(Device::Cpu)?),
            }
            Ok(vec![y])
        }));
        assert!(matches!(err, TensorError::PlanUnsupported { .. }), "{err}");
    }
    let (_, trace) = capture(&[&x], || {
        let scale = c.exp()?.to_f64s()?[0];
        Ok(vec![x.mul_scalar(scale)?])
    })
    .unwrap();
    let plan = Plan::compile(trace).unwrap();
    let out = plan.run(&[&f64s(&[1.0, -1.0], &[2], device)]).unwrap();
    close(
        &out[0].to_f64s().unwrap(),
        &[3f64.exp(), -(3f64.exp())],
        1e-15,
    );
}

/// A capture inside a capture is refused (the inner computation runs op by op, recorded by the
/// outer trace); the outer capture goes on.
fn nested_capture_is_refused(device: Device) {
    let x = f64s(&[1.0, 2.0], &[2], device);
    let (outs, trace) = capture(&[&x], || {
        let y = x.exp()?;
        let inner = capture(&[&y], || Ok(vec![y.neg()?]));
        assert!(matches!(inner, Err(TensorError::PlanUnsupported { .. })));
        Ok(vec![y.neg()?])
    })
    .unwrap();
    assert_eq!(outs.len(), 1);
    let names: Vec<_> = trace.steps.iter().map(|s| s.prim.name()).collect();
    assert_eq!(names, ["exp", "neg"]);
}

/// The closure's own error comes back unchanged, and a panic in it leaves no tracer behind.
fn closure_errors_and_panics_reset_the_tracer(device: Device) {
    let x = f64s(&[1.0, 2.0], &[2], device);
    let err = refused(capture(&[&x], || Err(TensorError::Empty { op: "mine" })));
    assert!(matches!(err, TensorError::Empty { op: "mine" }));
    let err = refused(capture(&[&x], || {
        Ok(vec![x.matmul(&x.reshape([2, 1])?.reshape([1, 2])?)?])
    }));
    assert!(err.to_string().contains("matmul"), "{err}");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = capture(&[&x], || -> curvature_tensor::Result<Vec<Tensor>> {
            let _ = x.exp()?;
            panic!("inside the traced closure")
        });
    }));
    assert!(panicked.is_err());
    let (_, trace) = capture(&[&x], || Ok(vec![x.sin()?])).unwrap();
    assert_eq!(trace.steps.len(), 1, "a fresh tracer after the panic");
}

/// No inputs, inputs that share their data, inputs on two devices.
fn bad_inputs_are_errors(device: Device) {
    let x = f64s(&[1.0, 2.0], &[2], device);
    let err = refused(capture(&[], || Ok(vec![x.exp()?])));
    assert!(err.to_string().contains("at least one input"), "{err}");
    let view = x.reshape([1, 2]).unwrap();
    let err = refused(capture(&[&x, &view], || Ok(vec![x.exp()?])));
    assert!(
        err.to_string().contains("inputs 0 and 1 share their data"),
        "{err}"
    );
    if device != Device::Cpu {
        let cpu = f64s(&[1.0], &[1], Device::Cpu);
        let err = refused(capture(&[&x, &cpu], || Ok(vec![x.exp()?])));
        assert!(matches!(err, TensorError::DeviceMismatch { .. }), "{err}");
        // An op on another device than the inputs' is refused.
        let err = refused(capture(&[&cpu], || {
            let _ = x.exp()?;
            Ok(vec![cpu.exp()?])
        }));
        assert!(matches!(err, TensorError::PlanUnsupported { .. }), "{err}");
        assert!(err.to_string().contains("exp runs on"), "{err}");
    }
}

/// The primitive behind each traced step is the one the op ran: a matmul's spec, a cat's widths.
fn structural_ops_replay(device: Device) {
    let w = f64s(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[3, 2], device);
    let x = f64s(&[0.0; 6], &[2, 3], device);
    let (_, trace) = capture(&[&x], || {
        let y = x.matmul(&w)?; // [2, 2]
        let both = Tensor::cat(&[&y, &x.narrow(1, 0, 1)?], 1)?; // [2, 3]
        Ok(vec![both.log_softmax(1)?])
    })
    .unwrap();
    assert!(trace
        .steps
        .iter()
        .any(|s| matches!(s.prim, Prim::Matmul(_))));
    assert!(trace
        .steps
        .iter()
        .any(|s| matches!(&s.prim, Prim::Cat { widths, .. } if widths == &[2, 1])));
    let plan = Plan::compile(trace).unwrap();
    let host = [0.5, -1.0, 2.0, 1.5, 0.25, -0.75];
    let out = plan.run(&[&f64s(&host, &[2, 3], device)]).unwrap();
    let wh = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
    let mut expected = Vec::new();
    for r in 0..2 {
        let row = &host[r * 3..r * 3 + 3];
        let logits = [
            (0..3).map(|k| row[k] * wh[k * 2]).sum::<f64>(),
            (0..3).map(|k| row[k] * wh[k * 2 + 1]).sum::<f64>(),
            row[0],
        ];
        let m = logits.iter().cloned().fold(f64::MIN, f64::max);
        let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln();
        expected.extend(logits.iter().map(|l| l - lse));
    }
    close(&out[0].to_f64s().unwrap(), &expected, 1e-13);
}

device_tests!(
    capture_records_steps_inputs_and_constants,
    plan_runs_in_f32,
    constant_steps_fold_and_dead_steps_go,
    peak_bytes_follow_liveness,
    outputs_may_be_inputs_or_constants,
    run_checks_its_inputs,
    host_reads_of_traced_values_are_refused,
    nested_capture_is_refused,
    closure_errors_and_panics_reset_the_tracer,
    bad_inputs_are_errors,
    structural_ops_replay,
);
