//! Variables stored in f16 and bf16: values and derivatives computed in f32 and rounded on
//! store, against closed forms; a mean whose sum exceeds f16's range does not overflow.

use curvature_tape::{grad, GradOptions, Tape};
use curvature_tensor::{DType, Device, Tensor};

#[test]
fn mean_of_f16_values_whose_sum_overflows_is_in_range() {
    let tape = Tape::new();
    // 100 values of 1000: Σ = 1e5 is beyond ±65504, the mean 1000 is not.
    let x = tape.leaf(Tensor::full(1000.0, [10, 10], DType::F16, Device::Cpu).expect("leaf"));
    let mean = x.mean_all().expect("the mean stays in range");
    assert_eq!(mean.value().to_f64s().expect("values"), vec![1000.0]);
    let rows = x.mean(&[1], false).expect("row means");
    assert_eq!(rows.value().to_f64s().expect("values"), vec![1000.0; 10]);
    let g = grad(&[mean], std::slice::from_ref(&x), GradOptions::default()).expect("gradient");
    // d mean / dx = 1/100, rounded to f16: 1311·2⁻¹⁷ (0.01·2¹⁷ = 1310.72).
    let expected = 1311.0 * 2f64.powi(-17);
    assert_eq!(g[0].value().to_f64s().expect("values"), vec![expected; 100]);
    assert_eq!(g[0].value().dtype(), DType::F16);
}

#[test]
fn second_derivatives_of_bf16_variables_match_the_closed_form() {
    let tape = Tape::new();
    let values = [0.5, -1.25, 2.0];
    let x = tape.leaf(Tensor::from_f64s(&values, [3], DType::BF16, Device::Cpu).expect("leaf"));
    // f = Σ tanh(x)·x; f' = tanh + x(1 − tanh²); f'' = 2(1 − tanh²)(1 − x·tanh).
    let f = x
        .tanh()
        .expect("tanh")
        .mul(&x)
        .expect("mul")
        .sum_all()
        .expect("sum");
    let options = GradOptions {
        create_graph: true,
        ..GradOptions::default()
    };
    let g = grad(&[f], std::slice::from_ref(&x), options).expect("gradient");
    let total = g[0].sum_all().expect("sum");
    let gg = grad(&[total], std::slice::from_ref(&x), GradOptions::default()).expect("grad²");
    let eps = DType::BF16.epsilon();
    for (i, &v) in values.iter().enumerate() {
        let t = f64::tanh(v);
        let first = t + v * (1.0 - t * t);
        let second = 2.0 * (1.0 - t * t) * (1.0 - v * t);
        let ours = g[0].value().to_f64s().expect("values")[i];
        assert!(
            (ours - first).abs() <= 4.0 * eps * first.abs().max(1.0),
            "f'({v}) = {ours}, expected {first}"
        );
        let ours = gg[0].value().to_f64s().expect("values")[i];
        assert!(
            (ours - second).abs() <= 4.0 * eps * second.abs().max(1.0),
            "f''({v}) = {ours}, expected {second}"
        );
    }
}
