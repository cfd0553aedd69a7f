//! Compiled plans of an operator's sweep: the first batch of each size K is traced
//! ([`curvature_tensor::plan::capture`]) and compiled, and later batches of that size replay the
//! plan instead of walking the tape op by op.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use curvature_tensor::plan::{capture_with, capturing, enabled_by_env, Plan, Trace};
use curvature_tensor::{Tensor, TensorError};

use crate::{HessianError, Result};

/// How many batch sizes keep a plan (the most recently compiled).
pub(crate) const PLAN_CAPACITY: usize = 4;

/// Batch sizes and their plans (`None`: the size runs op by op), oldest first.
type Plans = VecDeque<(usize, Option<Rc<Plan>>)>;

/// The plans of one operator, by batch size: `None` marks a size whose sweep cannot be
/// compiled, so it runs op by op without tracing again.
pub(crate) struct PlanCache {
    enabled: bool,
    /// Boxed: an operator holding the cache stays small.
    plans: Box<RefCell<Plans>>,
}

impl PlanCache {
    /// An empty cache that compiles plans (unless `CURVATURE_PLAN=0`).
    pub(crate) fn new() -> PlanCache {
        PlanCache {
            enabled: true,
            plans: Box::new(RefCell::new(VecDeque::new())),
        }
    }

    /// Turns plans on or off; off forgets the compiled ones.
    pub(crate) fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
        if !on {
            self.plans.borrow_mut().clear();
        }
    }

    /// Whether a batch runs through a plan: on, and not switched off by `CURVATURE_PLAN=0`.
    pub(crate) fn active(&self) -> bool {
        self.enabled && enabled_by_env()
    }

    /// The batch sizes that hold a compiled plan, oldest first.
    pub(crate) fn batch_sizes(&self) -> Vec<usize> {
        self.plans
            .borrow()
            .iter()
            .filter(|(_, plan)| plan.is_some())
            .map(|&(k, _)| k)
            .collect()
    }

    /// The plan of batch size `k`, if one was compiled.
    pub(crate) fn plan(&self, k: usize) -> Option<Rc<Plan>> {
        self.lookup(k).flatten()
    }

    fn lookup(&self, k: usize) -> Option<Option<Rc<Plan>>> {
        self.plans
            .borrow()
            .iter()
            .find(|(size, _)| *size == k)
            .map(|(_, plan)| plan.clone())
    }

    fn insert(&self, k: usize, plan: Option<Rc<Plan>>) {
        let mut plans = self.plans.borrow_mut();
        plans.retain(|(size, _)| *size != k);
        if plans.len() >= PLAN_CAPACITY {
            plans.pop_front();
        }
        plans.push_back((k, plan));
    }

    /// `sweep(v)` for the batch `v` of `k` rows: by the plan of size `k` when there is one; else
    /// traced and compiled on this call (whose result is the traced, op-by-op one); op by op
    /// when plans are off, the sweep cannot be traced (an unsupported construct) or its trace
    /// does not compile (any compile error: the size then runs op by op from then on). Every
    /// other tracing error, and every error of a plan's run, is returned.
    pub(crate) fn apply(
        &self,
        v: &Tensor,
        k: usize,
        sweep: impl Fn(&Tensor) -> Result<Tensor>,
    ) -> Result<Tensor> {
        self.apply_compiling(v, k, sweep, Plan::compile)
    }

    /// [`PlanCache::apply`] with `compile` turning a trace into a plan.
    fn apply_compiling(
        &self,
        v: &Tensor,
        k: usize,
        sweep: impl Fn(&Tensor) -> Result<Tensor>,
        compile: impl FnOnce(Trace) -> std::result::Result<Plan, TensorError>,
    ) -> Result<Tensor> {
        if !self.active() || capturing() {
            // Inside an outer capture the sweep runs op by op, so the outer trace records it.
            return sweep(v);
        }
        match self.lookup(k) {
            Some(Some(plan)) => return single(plan.run(&[v])?),
            Some(None) => return sweep(v),
            None => {}
        }
        let traced = capture_with(&[v], || -> Result<Vec<Tensor>> { Ok(vec![sweep(v)?]) });
        let (outputs, trace) = match traced {
            Ok(traced) => traced,
            Err(e) if unsupported(&e) => {
                self.insert(k, None);
                return sweep(v);
            }
            Err(e) => return Err(e),
        };
        // A trace the compiler cannot take runs op by op: its result above is already the
        // op-by-op one, and the size is not traced again.
        let plan = compile(trace).ok().map(Rc::new);
        self.insert(k, plan);
        single(outputs)
    }
}

/// The one result of a sweep.
fn single(outputs: Vec<Tensor>) -> Result<Tensor> {
    let count = outputs.len();
    let mut outputs = outputs.into_iter();
    match (outputs.next(), count) {
        (Some(out), 1) => Ok(out),
        _ => Err(HessianError::InvalidArgument {
            op: "apply_batch",
            msg: format!("a compiled sweep returned {count} results instead of 1"),
        }),
    }
}

/// Whether a capture refused the sweep as a construct plans cannot replay.
fn unsupported(e: &HessianError) -> bool {
    matches!(e, HessianError::Tensor(TensorError::PlanUnsupported { .. }))
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use curvature_tensor::{DType, Device};

    use super::*;

    fn batch(k: usize, seed: f64) -> Tensor {
        let values: Vec<f64> = (0..k * 3).map(|i| seed + i as f64 * 0.25).collect();
        Tensor::from_f64s(&values, vec![k, 3], DType::F64, Device::Cpu).unwrap()
    }

    /// `tanh(v) · v` summed over the rows' entries, op by op.
    fn sweep(v: &Tensor) -> Result<Tensor> {
        Ok(v.tanh()?.mul(v)?.sum(&[1], false)?)
    }

    fn expected(v: &Tensor, k: usize) -> Vec<f64> {
        let x = v.to_f64s().unwrap();
        (0..k)
            .map(|r| (0..3).map(|j| x[r * 3 + j].tanh() * x[r * 3 + j]).sum())
            .collect()
    }

    #[test]
    fn a_trace_that_does_not_compile_runs_op_by_op_and_is_not_traced_again() {
        let cache = PlanCache::new();
        if !cache.active() {
            // `CURVATURE_PLAN=0`: nothing is traced or compiled.
            return;
        }
        let compiles = Cell::new(0);
        let refuse = |_: Trace| -> std::result::Result<Plan, TensorError> {
            compiles.set(compiles.get() + 1);
            Err(TensorError::InvalidArgument {
                op: "fused",
                msg: "a view reads past its value".into(),
            })
        };
        for (round, seed) in [0.5, -1.25].into_iter().enumerate() {
            let v = batch(2, seed);
            let got = cache.apply_compiling(&v, 2, sweep, refuse).unwrap();
            assert_eq!(got.dims(), [2], "round {round}");
            let want = expected(&v, 2);
            for (g, w) in got.to_f64s().unwrap().iter().zip(&want) {
                assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
            }
        }
        assert_eq!(
            compiles.get(),
            1,
            "the refused size is traced and compiled once"
        );
        assert!(cache.batch_sizes().is_empty());
        assert!(cache.plan(2).is_none());
        // Another size still compiles.
        let v = batch(3, 0.75);
        cache.apply(&v, 3, sweep).unwrap();
        assert_eq!(cache.batch_sizes(), vec![3]);
        let replayed = cache.apply(&v, 3, sweep).unwrap().to_f64s().unwrap();
        for (g, w) in replayed.iter().zip(&expected(&v, 3)) {
            assert!((g - w).abs() <= 1e-12 * w.abs().max(1.0), "{g} vs {w}");
        }
    }
}
