//! What a GEMM does to each element of its product before storing it: [`Epilogue`], computed
//! the same way by the CPU backend (the specification) and by the `gemm_*` kernels of
//! `kernels/matmul.cu`.

/// The bias added to every element of the product before the activation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Bias {
    /// No bias.
    #[default]
    None,
    /// A row vector of length n: element `j` is added to column `j` of every row (a linear
    /// layer's bias when rows are samples).
    Row,
    /// A column vector of length m: element `i` is added to row `i`.
    Column,
}

/// The elementwise function applied after the bias.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activation {
    /// `a(y) = y`.
    #[default]
    Identity,
    /// `a(y) = tanh y`.
    Tanh,
    /// `a(y) = σ(y) = 1 / (1 + e^−y)`.
    Sigmoid,
}

/// Which derivative of the activation is stored, written in terms of its value `a = a(y)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Factor {
    /// `a(y)`.
    #[default]
    Value,
    /// `a'(y)`: identity 1, tanh `1 − t²`, sigmoid `σ(1 − σ)`.
    FirstDerivative,
    /// `a''(y)`: identity 0, tanh `−2t(1 − t²)`, sigmoid `σ(1 − σ)(1 − 2σ)`.
    SecondDerivative,
}

/// `C ← f(α·op(A)·op(B) + β·C + bias)` per element, `f` the chosen [`Factor`] of the
/// [`Activation`]. When `beta` is 0, C is not read (it may hold anything, NaN included). The
/// default is the plain product (`α = 1`, `β = 0`, no bias, the identity's value).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Epilogue {
    /// Scale of the product.
    pub alpha: f64,
    /// Scale of the output's previous contents (0: they are not read).
    pub beta: f64,
    /// The bias vector's orientation (the vector itself is passed with the call).
    pub bias: Bias,
    /// The activation applied after the bias.
    pub activation: Activation,
    /// Which derivative of the activation is stored.
    pub factor: Factor,
}

impl Default for Epilogue {
    fn default() -> Epilogue {
        Epilogue {
            alpha: 1.0,
            beta: 0.0,
            bias: Bias::None,
            activation: Activation::Identity,
            factor: Factor::Value,
        }
    }
}

impl Epilogue {
    /// The activation factor of a pre-activation value `y` (after scaling and bias).
    pub fn activate(&self, y: f64) -> f64 {
        match self.activation {
            Activation::Identity => match self.factor {
                Factor::Value => y,
                Factor::FirstDerivative => 1.0,
                Factor::SecondDerivative => 0.0,
            },
            Activation::Tanh => {
                let t = y.tanh();
                let d = 1.0 - t * t;
                match self.factor {
                    Factor::Value => t,
                    Factor::FirstDerivative => d,
                    Factor::SecondDerivative => -2.0 * t * d,
                }
            }
            Activation::Sigmoid => {
                let s = if y >= 0.0 {
                    1.0 / (1.0 + (-y).exp())
                } else {
                    let e = y.exp();
                    e / (1.0 + e)
                };
                let d = s * (1.0 - s);
                match self.factor {
                    Factor::Value => s,
                    Factor::FirstDerivative => d,
                    Factor::SecondDerivative => d * (1.0 - 2.0 * s),
                }
            }
        }
    }

    /// The element `f(α·acc + β·old + bias)`; `old` is read only when `β ≠ 0`.
    pub fn apply(&self, acc: f64, old: impl FnOnce() -> f64, bias: f64) -> f64 {
        let mut y = self.alpha * acc;
        if self.beta != 0.0 {
            y += self.beta * old();
        }
        self.activate(y + bias)
    }

    /// The kernels' integer codes: (bias kind, activation, factor), as `kernels/matmul.cu`
    /// documents them.
    pub(crate) fn codes(&self) -> (i32, i32, i32) {
        let bias = match self.bias {
            Bias::None => 0,
            Bias::Column => 1,
            Bias::Row => 2,
        };
        let activation = match self.activation {
            Activation::Identity => 0,
            Activation::Tanh => 1,
            Activation::Sigmoid => 2,
        };
        let factor = match self.factor {
            Factor::Value => 0,
            Factor::FirstDerivative => 1,
            Factor::SecondDerivative => 2,
        };
        (bias, activation, factor)
    }
}
