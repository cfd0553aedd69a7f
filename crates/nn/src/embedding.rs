//! `Embedding`: rows of a table looked up by index.

use curvature_tape::Var;
use curvature_tensor::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::layers::check_shapes;
use crate::module::check_param_count;
use crate::{Module, NnError, Result};

/// `torch.nn.Embedding`: an input of indices (stored as whole numbers in a float tensor of
/// any shape `[…]`) gives the rows `[…, dim]` of `weight` `[num, dim]`. The indices are data,
/// not differentiated; the table is a parameter.
#[derive(Debug, Clone)]
pub struct Embedding {
    /// `[num, dim]`.
    pub weight: Tensor,
}

impl Embedding {
    /// A table of `num` rows of length `dim`, drawn from N(0, 1) (PyTorch's default) with
    /// `seed`.
    pub fn seeded(
        num: usize,
        dim: usize,
        dtype: DType,
        device: Device,
        seed: u64,
    ) -> Result<Embedding> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // Box–Muller: two uniforms in (0, 1] give one standard normal value.
        let weight = Tensor::from_fn([num, dim], dtype, device, |_| {
            let u: f64 = 1.0 - rng.random::<f64>();
            let t: f64 = rng.random();
            (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * t).cos()
        })?;
        Ok(Embedding { weight })
    }

    /// The indices held by `x`, each checked to be a whole number in `0..num`.
    fn indices(&self, x: &Tensor) -> Result<Vec<usize>> {
        let num = self.weight.dims().first().copied().unwrap_or(0);
        x.to_f64s()?
            .into_iter()
            .enumerate()
            .map(|(i, value)| {
                let whole = value >= 0.0 && value.fract() == 0.0 && value < num as f64;
                if whole {
                    Ok(value as usize)
                } else {
                    Err(NnError::InvalidArgument {
                        op: "Embedding",
                        msg: format!(
                            "input {i} is {value}, not a row index of the table (0..{num})"
                        ),
                    })
                }
            })
            .collect()
    }
}

impl Module for Embedding {
    fn named_parameters(&self) -> Vec<(String, Tensor)> {
        vec![("weight".to_string(), self.weight.clone())]
    }

    fn forward_with(&self, params: &[Var], x: &Var) -> Result<Var> {
        check_param_count("Embedding", params, 1)?;
        let table = &params[0];
        if table.rank() != 2 {
            return Err(NnError::InvalidArgument {
                op: "Embedding",
                msg: format!("the table must be [num, dim], got {}", table.shape()),
            });
        }
        let rows = table.index_select(0, &self.indices(x.value())?)?;
        let mut shape = x.dims().to_vec();
        shape.push(table.dims()[1]);
        Ok(rows.reshape(shape)?)
    }

    fn set_parameters(&mut self, params: &[Tensor]) -> Result<()> {
        check_shapes("Embedding::set_parameters", &[&self.weight], params)?;
        self.weight = params[0].clone();
        Ok(())
    }

    fn rows_independent(&self) -> bool {
        true
    }
}
