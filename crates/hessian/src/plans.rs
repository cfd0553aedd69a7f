//! Compiled plans of an operator's sweep: the first batch of each size K is traced
//! ([`curvature_tensor::plan::capture`]) and compiled, and later batches of that size replay the
//! plan instead of walking the tape op by op.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use curvature_tensor::plan::{capture_with, capturing, enabled_by_env, Plan};
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
    /// when plans are off or the sweep cannot be compiled (an unsupported construct). Every
    /// other tracing or compile error is returned.
    pub(crate) fn apply(
        &self,
        v: &Tensor,
        k: usize,
        sweep: impl Fn(&Tensor) -> Result<Tensor>,
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
        match Plan::compile(trace) {
            Ok(plan) => self.insert(k, Some(Rc::new(plan))),
            Err(TensorError::PlanUnsupported { .. }) => self.insert(k, None),
            Err(e) => return Err(e.into()),
        }
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
