//! [`Fingerprint`]: what every rank must agree on (parameter count, dtypes, per-sample shapes, a
//! checksum of the parameters), compared across ranks by one all-gather before any product.

use curvature_nn::Module;
use curvature_tensor::{DType, Tensor};

use crate::collective::Collective;
use crate::error::{DistributedError, DistributedResult};

/// Named 64-bit values describing one rank's problem. [`check`](Fingerprint::check) gathers
/// every rank's values and fails on every rank, naming the first field and rank that differ from
/// rank 0, unless all agree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fingerprint {
    fields: Vec<(String, u64)>,
}

impl Fingerprint {
    /// An empty fingerprint.
    pub fn new() -> Fingerprint {
        Fingerprint::default()
    }

    /// Adds a field with a value.
    pub fn field(mut self, name: impl Into<String>, value: u64) -> Fingerprint {
        self.fields.push((name.into(), value));
        self
    }

    /// Adds a field holding a hash of `dims` (its length and every entry).
    pub fn dims(self, name: impl Into<String>, dims: &[usize]) -> Fingerprint {
        let mut hash = Fnv::new();
        hash.write_u64(dims.len() as u64);
        for &d in dims {
            hash.write_u64(d as u64);
        }
        self.field(name, hash.finish())
    }

    /// Adds a field holding a dtype.
    pub fn dtype(self, name: impl Into<String>, dtype: DType) -> Fingerprint {
        let mut hash = Fnv::new();
        hash.write(dtype.as_str().as_bytes());
        self.field(name, hash.finish())
    }

    /// Adds a field holding a checksum (FNV-1a, 64 bits) of the dtypes, shapes and bytes of
    /// `tensors`, in order; device tensors are copied to the host for it.
    pub fn checksum(
        self,
        name: impl Into<String>,
        tensors: &[Tensor],
    ) -> DistributedResult<Fingerprint> {
        let mut hash = Fnv::new();
        for t in tensors {
            hash.write(t.dtype().as_str().as_bytes());
            hash.write_u64(t.rank() as u64);
            for &d in t.dims() {
                hash.write_u64(d as u64);
            }
            hash.write(&t.to_bytes()?);
        }
        Ok(self.field(name, hash.finish()))
    }

    /// The fingerprint of a model and its data: the parameter count and checksum, and the
    /// dtype and per-sample shape (all axes but the first) of every input and of the targets.
    pub fn of_model(
        model: &dyn Module,
        inputs: &[Tensor],
        targets: &Tensor,
    ) -> DistributedResult<Fingerprint> {
        let parameters = model.parameters();
        let mut fingerprint = Fingerprint::new()
            .field("the parameter count", model.num_params() as u64)
            .checksum("the parameter checksum", &parameters)?
            .field("the number of inputs", inputs.len() as u64);
        for (i, x) in inputs.iter().enumerate() {
            fingerprint = fingerprint
                .dtype(format!("the dtype of input {i}"), x.dtype())
                .dims(
                    format!("the per-sample shape of input {i}"),
                    x.dims().get(1..).unwrap_or(&[]),
                );
        }
        Ok(fingerprint
            .dtype("the dtype of the targets", targets.dtype())
            .dims(
                "the per-sample shape of the targets",
                targets.dims().get(1..).unwrap_or(&[]),
            ))
    }

    /// The fields, in order.
    pub fn fields(&self) -> &[(String, u64)] {
        &self.fields
    }

    /// Gathers every rank's fingerprint and compares it with rank 0's: `Ok` on every rank when
    /// all agree, otherwise the same [`DistributedError::FingerprintMismatch`] on every rank.
    /// Two all-gathers (the field count, then the values), which every rank must call.
    pub fn check(&self, collective: &dyn Collective) -> DistributedResult<()> {
        let rank = collective.rank();
        let counts = collective.all_gather_f64s(&[self.fields.len() as f64])?;
        let reference = counts.first().and_then(|c| c.first()).copied();
        for (peer, count) in counts.iter().enumerate() {
            if count.first().copied() != reference {
                return Err(DistributedError::FingerprintMismatch {
                    rank,
                    peer,
                    field: "the number of fingerprint fields".into(),
                    expected: reference.unwrap_or(0.0) as u64,
                    got: count.first().copied().unwrap_or(0.0) as u64,
                });
            }
        }
        let encoded: Vec<f64> = self
            .fields
            .iter()
            .flat_map(|&(_, v)| [(v >> 32) as f64, (v & 0xffff_ffff) as f64])
            .collect();
        let all = collective.all_gather_f64s(&encoded)?;
        let decode = |values: &[f64]| -> Vec<u64> {
            values
                .chunks(2)
                .map(|pair| ((pair[0] as u64) << 32) | pair.get(1).map_or(0, |&lo| lo as u64))
                .collect()
        };
        let Some(first) = all.first().map(|v| decode(v)) else {
            return Ok(());
        };
        for (peer, values) in all.iter().enumerate().skip(1) {
            for ((name, _), (&expected, got)) in
                self.fields.iter().zip(first.iter().zip(decode(values)))
            {
                if expected != got {
                    return Err(DistributedError::FingerprintMismatch {
                        rank,
                        peer,
                        field: name.clone(),
                        expected,
                        got,
                    });
                }
            }
        }
        Ok(())
    }
}

/// 64-bit FNV-1a.
struct Fnv(u64);

impl Fnv {
    fn new() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.write(&value.to_le_bytes());
    }

    fn finish(&self) -> u64 {
        self.0
    }
}
