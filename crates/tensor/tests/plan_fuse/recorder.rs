//! A hand-made trace: ops run one by one (each through `plan::run_step`, the op-by-op path)
//! and recorded as the trace steps they are, with the shapes the recorder tracks.

use curvature_tensor::plan::{
    run_step, BroadcastLayout, FusedStep, PlanStep, Prim, Source, StridedCopy, Trace, TraceStep,
    TraceValue, ValueId,
};
use curvature_tensor::{
    BinaryOp, DType, Device, ReduceOp, Result, Shape, Tensor, TernaryOp, UnaryOp,
};

/// Records ops on tensors as a [`Trace`], keeping every value's op-by-op result.
pub struct Recorder {
    pub dtype: DType,
    pub values: Vec<TraceValue>,
    pub steps: Vec<TraceStep>,
    pub inputs: Vec<(ValueId, Shape)>,
    /// The op-by-op result of every value, with its shape.
    pub data: Vec<Tensor>,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![0; shape.len()];
    let mut acc = 1;
    for (s, &n) in s.iter_mut().zip(shape).rev() {
        *s = acc;
        acc *= n;
    }
    s
}

/// Strides reading `shape` broadcast to `out` (0 on broadcast dims).
pub fn broadcast_strides(shape: &[usize], out: &[usize]) -> Vec<usize> {
    let own = strides(shape);
    let lead = out.len() - shape.len();
    (0..out.len())
        .map(|d| {
            if d < lead || shape[d - lead] == 1 {
                0
            } else {
                own[d - lead]
            }
        })
        .collect()
}

impl Recorder {
    pub fn new(dtype: DType) -> Recorder {
        Recorder {
            dtype,
            values: Vec::new(),
            steps: Vec::new(),
            inputs: Vec::new(),
            data: Vec::new(),
        }
    }

    pub fn shape(&self, v: ValueId) -> Vec<usize> {
        self.data[v].dims().to_vec()
    }

    /// A plan input with these values.
    pub fn input(&mut self, values: &[f64], dims: &[usize]) -> ValueId {
        let t = Tensor::from_f64s(values, dims.to_vec(), self.dtype, Device::Cpu).unwrap();
        let id = self.values.len();
        self.values.push(TraceValue {
            len: t.elem_count(),
            dtype: self.dtype,
            source: Source::Input(self.inputs.len()),
        });
        self.inputs.push((id, t.shape().clone()));
        self.data.push(t);
        id
    }

    fn push(&mut self, prim: Prim, args: &[ValueId], dims: Vec<usize>) -> Result<ValueId> {
        let operands: Vec<Tensor> = args.iter().map(|&a| self.data[a].clone()).collect();
        let refs: Vec<&Tensor> = operands.iter().collect();
        let t = run_step(&prim, &refs, Shape::new(dims))?;
        let id = self.values.len();
        self.values.push(TraceValue {
            len: t.elem_count(),
            dtype: self.dtype,
            source: Source::Step(self.steps.len()),
        });
        self.steps.push(TraceStep {
            prim,
            args: args.to_vec(),
            out: id,
        });
        self.data.push(t);
        Ok(id)
    }

    pub fn unary(&mut self, op: UnaryOp, x: ValueId) -> ValueId {
        let dims = self.shape(x);
        self.push(Prim::Unary(op), &[x], dims).unwrap()
    }

    fn layout(&self, args: &[ValueId]) -> BroadcastLayout {
        let mut out = Shape::new(self.shape(args[0]));
        for &a in &args[1..] {
            out = Shape::broadcast("test", &out, &Shape::new(self.shape(a))).unwrap();
        }
        BroadcastLayout {
            strides: args
                .iter()
                .map(|&a| broadcast_strides(&self.shape(a), out.dims()))
                .collect(),
            out,
        }
    }

    pub fn binary(&mut self, op: BinaryOp, a: ValueId, b: ValueId) -> ValueId {
        let layout = self.layout(&[a, b]);
        let dims = layout.out.dims().to_vec();
        self.push(Prim::Binary(op, layout), &[a, b], dims).unwrap()
    }

    pub fn ternary(&mut self, op: TernaryOp, a: ValueId, b: ValueId, c: ValueId) -> ValueId {
        let layout = self.layout(&[a, b, c]);
        let dims = layout.out.dims().to_vec();
        self.push(Prim::Ternary(op, layout), &[a, b, c], dims)
            .unwrap()
    }

    fn strided(
        &mut self,
        x: ValueId,
        out: Vec<usize>,
        strides: Vec<usize>,
        offset: usize,
    ) -> ValueId {
        let copy = StridedCopy {
            out: Shape::new(out.clone()),
            strides,
            offset,
        };
        self.push(Prim::CopyStrided(copy), &[x], out).unwrap()
    }

    /// `len` entries of `axis` from `start` (as `Tensor::narrow` copies them).
    pub fn narrow(&mut self, x: ValueId, axis: usize, start: usize, len: usize) -> ValueId {
        let dims = self.shape(x);
        let s = strides(&dims);
        let mut out = dims.clone();
        out[axis] = len;
        self.strided(x, out, s.clone(), start * s[axis])
    }

    /// The axes reordered (as `Tensor::permute` copies them).
    pub fn permute(&mut self, x: ValueId, perm: &[usize]) -> ValueId {
        let dims = self.shape(x);
        let s = strides(&dims);
        let out = perm.iter().map(|&p| dims[p]).collect();
        let st = perm.iter().map(|&p| s[p]).collect();
        self.strided(x, out, st, 0)
    }

    /// Broadcast to `out` by a copy (as `Tensor::expand`).
    pub fn expand(&mut self, x: ValueId, out: &[usize]) -> ValueId {
        let st = broadcast_strides(&self.shape(x), out);
        self.strided(x, out.to_vec(), st, 0)
    }

    /// Zeros around `axis` (as `Tensor::pad_zeros`: `full` zeros and `cat`).
    pub fn pad(&mut self, x: ValueId, axis: usize, before: usize, after: usize) -> ValueId {
        let dims = self.shape(x);
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        let mut parts = Vec::new();
        let mut widths = Vec::new();
        let zeros = |n: usize, this: &mut Recorder| {
            let mut d = dims.clone();
            d[axis] = n;
            let len = d.iter().product();
            let dtype = this.dtype;
            this.push(
                Prim::Full {
                    value: 0.0,
                    len,
                    dtype,
                },
                &[],
                d,
            )
            .unwrap()
        };
        if before > 0 {
            parts.push(zeros(before, self));
            widths.push(before * inner);
        }
        parts.push(x);
        widths.push(dims[axis] * inner);
        if after > 0 {
            parts.push(zeros(after, self));
            widths.push(after * inner);
        }
        let mut out = dims.clone();
        out[axis] += before + after;
        self.push(Prim::Cat { outer, widths }, &parts, out).unwrap()
    }

    /// The sum over `axis` (kept as a unit dimension).
    pub fn sum(&mut self, x: ValueId, axis: usize) -> ValueId {
        self.reduce(ReduceOp::Sum, x, axis)
    }

    pub fn reduce(&mut self, op: ReduceOp, x: ValueId, axis: usize) -> ValueId {
        let dims = self.shape(x);
        let outer = dims[..axis].iter().product();
        let inner = dims[axis + 1..].iter().product();
        let mut out = dims.clone();
        out[axis] = 1;
        let prim = Prim::Reduce {
            op,
            outer,
            reduced: dims[axis],
            inner,
        };
        self.push(prim, &[x], out).unwrap()
    }

    /// The `op` reduction over the axes `first..end` of `x` read as `[outer, reduced, inner]`:
    /// its shape keeps them as unit axes (`keepdim`) or drops them.
    pub fn reduce_axes(
        &mut self,
        op: ReduceOp,
        x: ValueId,
        first: usize,
        end: usize,
        keepdim: bool,
    ) -> ValueId {
        let dims = self.shape(x);
        let prim = Prim::Reduce {
            op,
            outer: dims[..first].iter().product(),
            reduced: dims[first..end].iter().product(),
            inner: dims[end..].iter().product(),
        };
        let mut out = dims[..first].to_vec();
        if keepdim {
            out.extend(std::iter::repeat_n(1, end - first));
        }
        out.extend_from_slice(&dims[end..]);
        self.push(prim, &[x], out).unwrap()
    }

    /// `op(a, b)` with each operand read as if of the paired dims (its own element count, in
    /// its own order; unit axes broadcast): a reduction without its axes read back over them,
    /// as a tensor op reads it after `unsqueeze`.
    pub fn binary_as(
        &mut self,
        op: BinaryOp,
        a: (ValueId, &[usize]),
        b: (ValueId, &[usize]),
    ) -> ValueId {
        let out =
            Shape::broadcast("test", &Shape::new(a.1.to_vec()), &Shape::new(b.1.to_vec())).unwrap();
        let layout = BroadcastLayout {
            strides: vec![
                broadcast_strides(a.1, out.dims()),
                broadcast_strides(b.1, out.dims()),
            ],
            out: out.clone(),
        };
        self.push(Prim::Binary(op, layout), &[a.0, b.0], out.dims().to_vec())
            .unwrap()
    }

    /// `x` read as if of `dims` broadcast to `out` by a copy (`unsqueeze` then `broadcast_to`).
    pub fn expand_as(&mut self, x: ValueId, dims: &[usize], out: &[usize]) -> ValueId {
        let st = broadcast_strides(dims, out);
        self.strided(x, out.to_vec(), st, 0)
    }

    /// The trace returning `outputs`.
    pub fn trace(&self, outputs: &[ValueId]) -> Trace {
        Trace {
            device: Device::Cpu,
            values: self.values.clone(),
            inputs: self.inputs.clone(),
            steps: self.steps.clone(),
            outputs: outputs
                .iter()
                .map(|&v| (v, self.data[v].shape().clone()))
                .collect(),
        }
    }

    /// Runs compiled `steps` on the recorded inputs: calls op by op, fused steps through their
    /// executor. Returns the outputs' values, flat.
    pub fn run(&self, steps: &[PlanStep], outputs: &[ValueId]) -> Result<Vec<Tensor>> {
        let mut env: Vec<Option<Tensor>> = vec![None; self.values.len()];
        for (v, _) in &self.inputs {
            env[*v] = Some(self.data[*v].clone());
        }
        let get = |env: &Vec<Option<Tensor>>, v: ValueId| {
            env[v]
                .clone()
                .unwrap_or_else(|| panic!("value {v} read before it is computed"))
        };
        for step in steps {
            match step {
                PlanStep::Call(s) => {
                    let args: Vec<Tensor> = s.args.iter().map(|&a| get(&env, a)).collect();
                    let refs: Vec<&Tensor> = args.iter().collect();
                    let len = self.values[s.out].len;
                    env[s.out] = Some(run_step(&s.prim, &refs, Shape::new([len]))?);
                }
                PlanStep::Fused(f) => {
                    let args: Vec<Tensor> = f.operands.iter().map(|o| get(&env, o.value)).collect();
                    let refs: Vec<&Tensor> = args.iter().collect();
                    for (store, t) in f.stores.iter().zip(f.run(&refs)?) {
                        env[store.value] = Some(t);
                    }
                }
            }
        }
        Ok(outputs.iter().map(|&v| get(&env, v)).collect())
    }
}

/// The fused steps of a plan.
pub fn fused(steps: &[PlanStep]) -> Vec<&FusedStep> {
    steps
        .iter()
        .filter_map(|s| match s {
            PlanStep::Fused(f) => Some(f),
            PlanStep::Call(_) => None,
        })
        .collect()
}

/// The traced prims left as calls, by name.
pub fn calls(steps: &[PlanStep]) -> Vec<&'static str> {
    steps
        .iter()
        .filter_map(|s| match s {
            PlanStep::Call(c) => Some(c.prim.name()),
            PlanStep::Fused(_) => None,
        })
        .collect()
}
