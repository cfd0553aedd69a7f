//! [`InProcess`]: ranks as threads of one process, exchanging tensors through shared memory.
//!
//! Each collective is a round: every rank deposits its tensor under one mutex, the last to
//! arrive combines the deposits in rank order (so sums never depend on thread timing), stores
//! the outcome, advances the round counter and wakes the others. A rank that fails marks the
//! group failed and wakes every waiter, which returns [`CollectiveError::PeerFailed`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use curvature_tensor::{DType, Shape, Tensor};

use crate::collective::Collective;
use crate::error::{CollectiveError, CollectiveResult};

/// The most ranks [`InProcess::run`] starts (one thread each).
pub const MAX_IN_PROCESS_RANKS: usize = 256;

const BACKEND: &str = "in-process";

/// One rank's handle on a group of ranks running as threads of this process. Created by
/// [`InProcess::run`] / [`InProcess::run_each`], which give each rank's closure its handle;
/// cloning it gives another handle on the same rank.
#[derive(Clone)]
pub struct InProcess {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    size: usize,
    state: Mutex<State>,
    turn: Condvar,
}

struct State {
    /// Completed rounds.
    generation: u64,
    arrived: usize,
    deposits: Vec<Option<Deposit>>,
    /// The outcome of the last completed round.
    outcome: Option<Arc<Outcome>>,
    /// The first rank that failed and its message.
    failure: Option<(usize, String)>,
    /// Ranks whose closure has returned.
    finished: Vec<bool>,
}

struct Deposit {
    op: &'static str,
    tensor: Option<Tensor>,
    root: usize,
}

enum Outcome {
    Done(Option<Tensor>),
    OrderMismatch {
        peer: usize,
        peer_op: &'static str,
    },
    Mismatch {
        reference: usize,
        shape: Shape,
        dtype: DType,
        peer: usize,
        peer_shape: Shape,
        peer_dtype: DType,
    },
    Invalid(String),
}

/// How [`InProcess::run`] failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError<E> {
    /// The group could not start (no ranks, too many, a thread that would not start).
    #[error(transparent)]
    Setup(CollectiveError),
    /// A rank's closure failed: the first rank that failed and its own error (the other ranks
    /// ended with [`CollectiveError::PeerFailed`] naming it).
    #[error("rank {rank} failed: {error}")]
    Rank {
        /// The failed rank.
        rank: usize,
        /// Its error.
        error: E,
    },
}

impl InProcess {
    /// Runs `work` on `ranks` threads, each with its rank's handle, and returns every rank's
    /// value in rank order, or the error of the first rank that failed. A rank that returns an
    /// error or panics aborts the group (see [`Collective::abort`]), so no rank waits forever.
    pub fn run<T, E, F>(ranks: usize, work: F) -> Result<Vec<T>, RunError<E>>
    where
        T: Send,
        E: From<CollectiveError> + std::fmt::Display + Send,
        F: Fn(InProcess) -> Result<T, E> + Sync,
    {
        let (outcomes, failure) = InProcess::run_group(ranks, &work).map_err(RunError::Setup)?;
        let failed = failure.map(|(rank, _)| rank);
        let mut values = Vec::with_capacity(outcomes.len());
        let mut first_error = None;
        for (rank, outcome) in outcomes.into_iter().enumerate() {
            match outcome {
                Ok(value) => values.push(value),
                Err(error) => {
                    if first_error.is_none() || failed == Some(rank) {
                        first_error = Some(RunError::Rank { rank, error });
                    }
                }
            }
        }
        match first_error {
            Some(error) => Err(error),
            None => Ok(values),
        }
    }

    /// Runs `work` on `ranks` threads like [`run`](InProcess::run) and returns every rank's
    /// own outcome, in rank order.
    pub fn run_each<T, E, F>(ranks: usize, work: F) -> CollectiveResult<Vec<Result<T, E>>>
    where
        T: Send,
        E: From<CollectiveError> + std::fmt::Display + Send,
        F: Fn(InProcess) -> Result<T, E> + Sync,
    {
        Ok(InProcess::run_group(ranks, &work)?.0)
    }

    #[allow(clippy::type_complexity)]
    fn run_group<T, E, F>(
        ranks: usize,
        work: &F,
    ) -> CollectiveResult<(Vec<Result<T, E>>, Option<(usize, String)>)>
    where
        T: Send,
        E: From<CollectiveError> + std::fmt::Display + Send,
        F: Fn(InProcess) -> Result<T, E> + Sync,
    {
        if ranks == 0 || ranks > MAX_IN_PROCESS_RANKS {
            return Err(CollectiveError::InvalidArgument {
                op: "InProcess::run",
                rank: 0,
                message: format!(
                    "the number of ranks must be in 1..={MAX_IN_PROCESS_RANKS}, got {ranks}"
                ),
            });
        }
        let shared = Arc::new(Shared {
            size: ranks,
            state: Mutex::new(State {
                generation: 0,
                arrived: 0,
                deposits: (0..ranks).map(|_| None).collect(),
                outcome: None,
                failure: None,
                finished: vec![false; ranks],
            }),
            turn: Condvar::new(),
        });
        let outcomes = std::thread::scope(|scope| {
            let mut handles = Vec::with_capacity(ranks);
            for rank in 0..ranks {
                let handle = InProcess {
                    rank,
                    shared: Arc::clone(&shared),
                };
                let spawned = std::thread::Builder::new()
                    .name(format!("rank-{rank}"))
                    .spawn_scoped(scope, move || run_rank(handle, work));
                match spawned {
                    Ok(joined) => handles.push(joined),
                    Err(error) => {
                        let message = format!("could not start the thread of rank {rank}: {error}");
                        shared.fail(rank, &message);
                        return Err(CollectiveError::Backend {
                            backend: BACKEND,
                            op: "InProcess::run",
                            rank,
                            message,
                        });
                    }
                }
            }
            Ok(handles
                .into_iter()
                .enumerate()
                .map(|(rank, joined)| {
                    joined.join().unwrap_or_else(|_| {
                        Err(E::from(CollectiveError::PeerFailed {
                            op: "InProcess::run",
                            rank,
                            failed: rank,
                            message: "the rank's thread panicked".into(),
                        }))
                    })
                })
                .collect::<Vec<_>>())
        })?;
        let failure = shared.lock().failure.clone();
        Ok((outcomes, failure))
    }

    /// One round: deposits this rank's part and returns the round's outcome once every rank
    /// has deposited, or the failure that ended the group.
    fn round(
        &self,
        op: &'static str,
        tensor: Option<&Tensor>,
        root: usize,
    ) -> CollectiveResult<Option<Tensor>> {
        let shared = &*self.shared;
        let mut state = shared.lock();
        self.check_peers(op, &state)?;
        let generation = state.generation;
        state.deposits[self.rank] = Some(Deposit {
            op,
            tensor: tensor.cloned(),
            root,
        });
        state.arrived += 1;
        if state.arrived == shared.size {
            let deposits: Vec<Deposit> =
                state.deposits.iter_mut().filter_map(Option::take).collect();
            state.outcome = Some(Arc::new(combine(&deposits)));
            state.arrived = 0;
            state.generation += 1;
            shared.turn.notify_all();
        } else {
            while state.generation == generation {
                self.check_peers(op, &state)?;
                state = shared
                    .turn
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        }
        let outcome = state.outcome.clone();
        drop(state);
        match outcome.as_deref() {
            Some(Outcome::Done(tensor)) => Ok(tensor.clone()),
            Some(Outcome::OrderMismatch { peer, peer_op }) => Err(CollectiveError::OrderMismatch {
                op,
                rank: self.rank,
                peer: *peer,
                peer_op,
            }),
            Some(Outcome::Mismatch {
                reference,
                shape,
                dtype,
                peer,
                peer_shape,
                peer_dtype,
            }) => Err(CollectiveError::Mismatch {
                op,
                rank: self.rank,
                reference: *reference,
                shape: shape.clone(),
                dtype: *dtype,
                peer: *peer,
                peer_shape: peer_shape.clone(),
                peer_dtype: *peer_dtype,
            }),
            Some(Outcome::Invalid(message)) => Err(self.invalid(op, message.clone())),
            None => Err(self.invalid(op, "the round completed without an outcome".into())),
        }
    }

    /// Errors if a rank has failed, or has finished and so can never join this round.
    fn check_peers(&self, op: &'static str, state: &State) -> CollectiveResult<()> {
        if let Some((failed, message)) = &state.failure {
            return Err(CollectiveError::PeerFailed {
                op,
                rank: self.rank,
                failed: *failed,
                message: message.clone(),
            });
        }
        if let Some(peer) = state.finished.iter().position(|&done| done) {
            return Err(CollectiveError::PeerFinished {
                op,
                rank: self.rank,
                peer,
            });
        }
        Ok(())
    }

    fn invalid(&self, op: &'static str, message: String) -> CollectiveError {
        CollectiveError::InvalidArgument {
            op,
            rank: self.rank,
            message,
        }
    }

    fn leading(&self, op: &'static str, tensor: &Tensor) -> CollectiveResult<usize> {
        tensor.dims().first().copied().ok_or_else(|| {
            self.invalid(
                op,
                "needs a tensor with a leading axis, got a scalar".into(),
            )
        })
    }

    fn expect_tensor(&self, op: &'static str, out: Option<Tensor>) -> CollectiveResult<Tensor> {
        out.ok_or_else(|| self.invalid(op, "the round returned no tensor".into()))
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records the first failure and wakes every waiting rank.
    fn fail(&self, rank: usize, message: &str) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = Some((rank, message.to_owned()));
        }
        drop(state);
        self.turn.notify_all();
    }

    fn finish(&self, rank: usize) {
        self.lock().finished[rank] = true;
        self.turn.notify_all();
    }
}

/// Runs one rank's closure, turning an error or a panic into a failure of the group.
fn run_rank<T, E, F>(handle: InProcess, work: &F) -> Result<T, E>
where
    E: From<CollectiveError> + std::fmt::Display,
    F: Fn(InProcess) -> Result<T, E>,
{
    let rank = handle.rank;
    let shared = Arc::clone(&handle.shared);
    let outcome = match catch_unwind(AssertUnwindSafe(|| work(handle))) {
        Ok(outcome) => outcome,
        Err(payload) => {
            let message = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".into());
            Err(E::from(CollectiveError::PeerFailed {
                op: "InProcess::run",
                rank,
                failed: rank,
                message: format!("panicked: {message}"),
            }))
        }
    };
    match &outcome {
        Ok(_) => shared.finish(rank),
        Err(error) => shared.fail(rank, &error.to_string()),
    }
    outcome
}

/// Combines one round's deposits (in rank order): checks that every rank called the same
/// collective with tensors of one shape and dtype, then reduces, gathers or picks.
fn combine(deposits: &[Deposit]) -> Outcome {
    let Some(first) = deposits.first() else {
        return Outcome::Invalid("a round without deposits".into());
    };
    for (peer, deposit) in deposits.iter().enumerate() {
        if deposit.op != first.op {
            return Outcome::OrderMismatch {
                peer,
                peer_op: deposit.op,
            };
        }
        if deposit.root != first.root {
            return Outcome::Invalid(format!(
                "rank {peer} passed root {}, rank 0 root {}",
                deposit.root, first.root
            ));
        }
        if let (Some(a), Some(b)) = (&first.tensor, &deposit.tensor) {
            if a.dims() != b.dims() || a.dtype() != b.dtype() {
                return Outcome::Mismatch {
                    reference: 0,
                    shape: a.shape().clone(),
                    dtype: a.dtype(),
                    peer,
                    peer_shape: b.shape().clone(),
                    peer_dtype: b.dtype(),
                };
            }
        }
    }
    let tensors: Vec<&Tensor> = deposits.iter().filter_map(|d| d.tensor.as_ref()).collect();
    let result = match first.op {
        "barrier" => Ok(None),
        "broadcast" => Ok(tensors.get(first.root).map(|t| (*t).clone())),
        "all_gather" => Tensor::cat(&tensors, 0).map(Some),
        _ => sum_in_order(&tensors).map(Some),
    };
    match result {
        Ok(tensor) => Outcome::Done(tensor),
        Err(error) => Outcome::Invalid(error.to_string()),
    }
}

/// `((t₀ + t₁) + t₂) + …`, on the device of `t₀`.
fn sum_in_order(tensors: &[&Tensor]) -> curvature_tensor::Result<Tensor> {
    let Some((first, rest)) = tensors.split_first() else {
        return Err(curvature_tensor::TensorError::InvalidArgument {
            op: "all_reduce_sum",
            msg: "no tensors to sum".into(),
        });
    };
    let mut sum = (*first).clone();
    for t in rest {
        sum = sum.add(&t.to_device(first.device())?)?;
    }
    Ok(sum)
}

impl Collective for InProcess {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn all_reduce_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "all_reduce_sum";
        let sum = self.round(op, Some(tensor), 0)?;
        let sum = self.expect_tensor(op, sum)?;
        sum.to_device(tensor.device())
            .map_err(|source| self.tensor_error(op, source))
    }

    fn broadcast(&self, tensor: &Tensor, root: usize) -> CollectiveResult<Tensor> {
        let op = "broadcast";
        if root >= self.size() {
            return Err(self.invalid(
                op,
                format!("root {root} is not a rank of a group of {}", self.size()),
            ));
        }
        let value = self.round(op, Some(tensor), root)?;
        self.expect_tensor(op, value)?
            .to_device(tensor.device())
            .map_err(|source| self.tensor_error(op, source))
    }

    fn barrier(&self) -> CollectiveResult<()> {
        self.round("barrier", None, 0).map(|_| ())
    }

    fn reduce_scatter_sum(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "reduce_scatter_sum";
        let rows = self.leading(op, tensor)?;
        if rows % self.size() != 0 {
            return Err(self.invalid(
                op,
                format!(
                    "the leading dimension of shape {} is not divisible by {} ranks",
                    tensor.shape(),
                    self.size()
                ),
            ));
        }
        let block = rows / self.size();
        let sum = self.round(op, Some(tensor), 0)?;
        self.expect_tensor(op, sum)?
            .narrow(0, self.rank * block, block)
            .and_then(|part| part.to_device(tensor.device()))
            .map_err(|source| self.tensor_error(op, source))
    }

    fn all_gather(&self, tensor: &Tensor) -> CollectiveResult<Tensor> {
        let op = "all_gather";
        self.leading(op, tensor)?;
        let all = self.round(op, Some(tensor), 0)?;
        self.expect_tensor(op, all)?
            .to_device(tensor.device())
            .map_err(|source| self.tensor_error(op, source))
    }

    fn abort(&self, message: &str) {
        self.shared.fail(self.rank, message);
    }
}
