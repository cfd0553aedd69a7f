//! Progress on stderr for steps that can take more than a second: a spinner for steps of
//! unknown length, a bar counting Hessian-vector products for the estimators. Nothing is drawn
//! when stderr is not a terminal, so pipes and files see only the results.

use std::io::IsTerminal;
use std::time::Duration;

use curvature::hessian::{LinearOperator, Result};
use curvature::tensor::{DType, Device, Tensor};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One step's progress display, cleared when dropped (also on an early error return).
pub struct Step {
    bar: ProgressBar,
}

impl Step {
    /// A spinner with a message, for a step whose length is unknown.
    pub fn spinner(message: impl Into<String>) -> Step {
        let bar = ProgressBar::with_draw_target(None, draw_target());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_message(message.into());
        bar.enable_steady_tick(Duration::from_millis(100));
        Step { bar }
    }

    /// A bar of `total` Hessian-vector products.
    pub fn products(message: impl Into<String>, total: u64) -> Step {
        let bar = ProgressBar::with_draw_target(Some(total), draw_target());
        bar.set_style(
            ProgressStyle::with_template("{msg:<26} [{wide_bar}] {pos}/{len} HVPs {elapsed}/{eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_message(message.into());
        Step { bar }
    }

    /// `op` with every product it computes counted on this step's bar.
    pub fn track<'a, O: LinearOperator + ?Sized>(&'a self, op: &'a O) -> Tracked<'a, O> {
        Tracked {
            inner: op,
            bar: &self.bar,
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

thread_local! {
    /// Whether this thread draws progress (every thread but the other ranks' of a group).
    static SHOWN: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Draws no progress from this thread on: a rank other than 0 computes silently.
pub fn hide_on_this_thread() {
    SHOWN.with(|shown| shown.set(false));
}

fn draw_target() -> ProgressDrawTarget {
    if SHOWN.with(|shown| shown.get()) && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

/// An operator that advances a progress bar by K for every `[K, dim]` batch it applies.
pub struct Tracked<'a, O: ?Sized> {
    inner: &'a O,
    bar: &'a ProgressBar,
}

impl<O: LinearOperator + ?Sized> LinearOperator for Tracked<'_, O> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn dtype(&self) -> DType {
        self.inner.dtype()
    }

    fn device(&self) -> Device {
        self.inner.device()
    }

    fn apply_batch(&self, v: &Tensor) -> Result<Tensor> {
        let out = self.inner.apply_batch(v)?;
        self.bar.inc(v.dims().first().copied().unwrap_or(0) as u64);
        Ok(out)
    }
}
