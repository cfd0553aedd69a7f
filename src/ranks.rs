//! `curvature analyze` over ranks: under an MPI launcher (`mpirun -np N`, one process per
//! rank, [`Mpi`]) or with `--ranks N` (threads of this process, [`InProcess`]). Every rank loads
//! the model, takes its contiguous shard of the samples, builds its local operators and wraps
//! them in [`DistributedOperator`], and the analysis runs unchanged on every rank with the same
//! results; only rank 0 shows progress, writes files and prints.
//!
//! A rank that fails ends the run on every rank with its rank and error: in-process ranks wake
//! every rank waiting in a collective; MPI ranks end the job with `MPI_Abort` (exit status 2).

use std::sync::Arc;

use curvature::distributed::mpi::{launched_by_mpi, launcher_rank, Mpi};
use curvature::distributed::{
    on_rank, Collective, CollectiveError, DistributedOperator, Fingerprint, InProcess, Reduction,
    RunError, Shard,
};
use curvature::hessian::{Curvature, Ggn, LinearOperator, ModelHvp};
use curvature::tensor::{Device, Tensor};

use crate::analyze::{analyze, open, Analysis, Opened, Problem};
use crate::cli::{AnalyzeArgs, CurvatureChoice};
use crate::progress::{self, Step};

/// The ranks of one analysis and this rank's handle on them.
pub type Group = Arc<dyn Collective>;

/// The loss, gradient and curvature operator of a model over all its samples.
pub struct Objective {
    /// The loss over all samples.
    pub loss: f64,
    /// Its gradient `[P]`, in f64.
    pub grad: Vec<f64>,
    /// The curvature matrix `--curvature` names, over all samples.
    pub op: Box<dyn LinearOperator>,
}

/// Why `--curvature fisher` is not split over ranks.
const FISHER_SPLIT: &str = "--curvature fisher draws its targets in one sequence over all \
                            samples, which a split over ranks would change: run it in one \
                            process, or use ggn (its expectation)";

/// Why an analysis over ranks stopped.
pub enum Stop {
    /// Every rank met this error alike, before the samples were split (a bad file, a run that
    /// does not fit): reported once, without a rank.
    Everywhere(String),
    /// This rank's own error (its shard, or a peer's failure it saw).
    Here(String),
}

impl From<String> for Stop {
    fn from(message: String) -> Stop {
        Stop::Here(message)
    }
}

impl Stop {
    /// The error's message.
    pub fn message(self) -> String {
        match self {
            Stop::Everywhere(m) | Stop::Here(m) => m,
        }
    }
}

/// `result`, agreed on by every rank of `group` (all of them must call this): when every rank
/// failed, [`Stop::Everywhere`] with this rank's error; when only some did, the first of them
/// gets its error as [`Stop::Here`] (to end the run with it) and the others wait in a
/// collective until that ends them (in-process ranks return the peer's failure).
pub fn agreed<T>(group: Option<&Group>, result: Result<T, String>) -> Result<T, Stop> {
    let Some(group) = group else {
        return result.map_err(Stop::Here);
    };
    let flags = group
        .all_gather_f64s(&[f64::from(u8::from(result.is_err()))])
        .map_err(|e| Stop::Here(e.to_string()))?;
    let failed: Vec<usize> = (0..flags.len())
        .filter(|&r| flags[r].first().is_some_and(|&f| f != 0.0))
        .collect();
    let Some(&first) = failed.first() else {
        return result.map_err(Stop::Here);
    };
    match result {
        Err(message) if failed.len() == group.size() => Err(Stop::Everywhere(message)),
        Err(message) if group.rank() == first => Err(Stop::Here(message)),
        _ => {
            let waited = group.all_reduce_f64s(&[0.0]);
            Err(Stop::Here(waited.err().map_or_else(
                || format!("rank {first} failed"),
                |e| e.to_string(),
            )))
        }
    }
}

/// An error of one rank, as the command line reports it: with its rank, unless every rank met
/// it alike.
struct RankError {
    message: String,
    everywhere: bool,
}

impl From<CollectiveError> for RankError {
    fn from(e: CollectiveError) -> RankError {
        RankError {
            message: e.to_string(),
            everywhere: false,
        }
    }
}

impl std::fmt::Display for RankError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

/// Runs the analysis in one process, over `--ranks` in-process ranks or over the ranks of an
/// MPI job, and returns rank 0's analysis (`None` on the other ranks of an MPI job, which have
/// nothing left to do).
pub fn analyze_on_ranks(args: &AnalyzeArgs, device: Device) -> Result<Option<Analysis>, String> {
    let mpi = launched_by_mpi();
    if mpi && args.ranks.is_some() {
        return Err(
            "--ranks splits the samples over threads of one process; under mpirun the MPI \
             processes are the ranks: give one or the other"
                .to_string(),
        );
    }
    if mpi {
        let mpi = match Mpi::init() {
            Ok(mpi) => mpi,
            // Every process fails alike (the same library, the same environment): rank 0
            // reports it, the others leave quietly.
            Err(_) if launcher_rank().unwrap_or(0) != 0 => leave_quietly(),
            Err(e) => return Err(format!("MPI: {e}")),
        };
        let group: Group = Arc::new(mpi);
        if group.rank() != 0 {
            progress::hide_on_this_thread();
        }
        if !agree_on_split(args, device, &group)? {
            // Rank 0 reports the error every rank found; this rank leaves MPI quietly.
            drop(group);
            leave_quietly();
        }
        return match analyze(args, device, Some(&group)) {
            Ok(analysis) => Ok((group.rank() == 0).then_some(analysis)),
            Err(Stop::Everywhere(message)) => {
                // Rank 0 reports what every rank met; the others leave MPI quietly.
                let rank = group.rank();
                drop(group);
                if rank != 0 {
                    leave_quietly();
                }
                Err(message)
            }
            Err(Stop::Here(message)) => {
                // Ends every process of the job with this rank's error (exit status 2).
                group.abort(&message);
                Err(message)
            }
        };
    }
    match args.ranks {
        None => analyze(args, device, None).map(Some).map_err(Stop::message),
        Some(ranks) => {
            let ranks = ranks as usize;
            check_split(args, device, ranks)?;
            let outcome = InProcess::run(ranks, |collective| {
                let rank = collective.rank();
                if rank != 0 {
                    progress::hide_on_this_thread();
                }
                let group: Group = Arc::new(collective);
                let analysis = analyze(args, device, Some(&group)).map_err(|stop| match stop {
                    Stop::Everywhere(message) => RankError {
                        message,
                        everywhere: true,
                    },
                    Stop::Here(message) => {
                        group.abort(&message);
                        RankError {
                            message,
                            everywhere: false,
                        }
                    }
                })?;
                Ok::<_, RankError>((rank == 0).then_some(analysis))
            });
            match outcome {
                Ok(mut analyses) => Ok(analyses.swap_remove(0)),
                Err(RunError::Setup(e)) => Err(e.to_string()),
                Err(RunError::Rank { error, .. }) if error.everywhere => Err(error.message),
                Err(RunError::Rank { rank, error }) => Err(on_rank(rank, &error.message)),
            }
        }
    }
}

/// Checks, before any rank starts, what would make every rank fail alike, so that it is
/// reported once and without a rank: the model and its data open, `--curvature fisher` is not
/// split, every rank gets a sample, and an ONNX graph takes shards of the samples.
fn check_split(args: &AnalyzeArgs, device: Device, ranks: usize) -> Result<(), String> {
    if ranks > 1 && args.curvature == CurvatureChoice::Fisher {
        return Err(FISHER_SPLIT.to_string());
    }
    let opened = open(args, device)?;
    let samples = opened.samples();
    if samples < ranks {
        return Err(format!(
            "{}: {samples} samples cannot be split over {ranks} ranks (each rank needs at least \
             one)",
            args.model.display()
        ));
    }
    match &opened {
        Opened::Onnx(source) => source.check_split(ranks),
        Opened::File(_) => Ok(()),
    }
}

/// [`check_split`] on every rank of an MPI job. When every rank fails (they read the same
/// files), rank 0 returns the error, to be printed once, and the other ranks `false`, to leave
/// MPI and exit with status 2; when only some fail, the first of them ends the job with its
/// rank and error. `true`: every rank may start.
fn agree_on_split(args: &AnalyzeArgs, device: Device, group: &Group) -> Result<bool, String> {
    let checked = check_split(args, device, group.size());
    let flags = group
        .all_gather_f64s(&[f64::from(u8::from(checked.is_err()))])
        .map_err(|e| format!("MPI: {e}"))?;
    let failed: Vec<usize> = (0..flags.len())
        .filter(|&r| flags[r].first().is_some_and(|&f| f != 0.0))
        .collect();
    let Some(&first) = failed.first() else {
        return Ok(true);
    };
    let rank = group.rank();
    if failed.len() == group.size() {
        return checked
            .map(|()| false)
            .or_else(|e| if rank == 0 { Err(e) } else { Ok(false) });
    }
    if rank == first {
        let message = checked.err().unwrap_or_default();
        group.abort(&message);
        return Err(message);
    }
    // The others wait in a collective the failed rank never enters, until its abort ends them.
    let _ = group.all_reduce_f64s(&[0.0]);
    Err(format!("rank {first} failed"))
}

/// The loss, gradient and curvature operator of `model`: over all samples in one process, or
/// over this rank's shard of `group`, reduced over the ranks. A rank whose own shard gives a
/// loss or gradient that is not finite fails alone, naming its samples.
pub fn objective(
    args: &AnalyzeArgs,
    problem: &Problem,
    group: Option<&Group>,
) -> Result<Objective, String> {
    let model = problem.model.as_ref();
    // The model's forward pass and loss fail on what the graph or the data hold.
    let located = |e: &dyn std::fmt::Display| format!("{}: {e}", args.model.display());
    let Some(group) = group else {
        let hvp = ModelHvp::new(model, problem.loss, problem.inputs.as_slice(), &problem.y)
            .map_err(|e| located(&e))?;
        let loss = hvp.value().map_err(|e| located(&e))?;
        let grad = hvp
            .gradient()
            .and_then(|g| Ok(g.to_f64s()?))
            .map_err(|e| located(&e))?;
        let op: Box<dyn LinearOperator> = if args.curvature == CurvatureChoice::Hessian {
            Box::new(hvp)
        } else {
            drop(hvp);
            Box::new(gauss_newton(args, problem, &problem.inputs, &problem.y)?)
        };
        return Ok(Objective { loss, grad, op });
    };
    if group.size() > 1 && args.curvature == CurvatureChoice::Fisher {
        return Err(FISHER_SPLIT.to_string());
    }
    let failed = |e: &dyn std::fmt::Display| e.to_string();
    let samples = problem.y.dims().first().copied().unwrap_or(0);
    let shard = Shard::of(group.as_ref(), samples).map_err(|e| failed(&e))?;
    let inputs = problem
        .inputs
        .iter()
        .map(|x| shard.select(x))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| failed(&e))?;
    let y = shard.select(&problem.y).map_err(|e| failed(&e))?;
    let fingerprint =
        Fingerprint::of_model(model, &problem.inputs, &problem.y).map_err(|e| failed(&e))?;
    let reduction = Reduction::of_loss(problem.loss);
    let local =
        ModelHvp::new(model, problem.loss, inputs.as_slice(), &y).map_err(|e| located(&e))?;
    let range = shard.range();
    let local_loss = local.value().map_err(|e| located(&e))?;
    let local_grad = local.gradient().map_err(|e| located(&e))?;
    let local_grad_values = local_grad.to_f64s().map_err(|e| failed(&e))?;
    if !local_loss.is_finite() || local_grad_values.iter().any(|g| !g.is_finite()) {
        let message = format!(
            "{}: the loss ({local_loss}) or its gradient over samples {}..{} is not finite",
            args.model.display(),
            range.start,
            range.end
        );
        group.abort(&message);
        return Err(message);
    }
    let hvp = DistributedOperator::new(local, group.clone(), shard, reduction, &fingerprint)
        .map_err(|e| failed(&e))?;
    let loss = hvp.reduce_value(local_loss).map_err(|e| failed(&e))?;
    let grad = hvp
        .reduce_tensor(&local_grad)
        .and_then(|g| Ok(g.to_f64s()?))
        .map_err(|e| failed(&e))?;
    let op: Box<dyn LinearOperator> = if args.curvature == CurvatureChoice::Hessian {
        Box::new(hvp)
    } else {
        drop(hvp);
        let local = gauss_newton(args, problem, &inputs, &y)?;
        let ggn = DistributedOperator::new(local, group.clone(), shard, reduction, &fingerprint)
            .map_err(|e| failed(&e))?;
        Box::new(ggn)
    };
    Ok(Objective { loss, grad, op })
}

/// The Gauss–Newton or Fisher matrix `--curvature` names, of the problem's model on the
/// samples `inputs`, `y`.
fn gauss_newton(
    args: &AnalyzeArgs,
    problem: &Problem,
    inputs: &[Tensor],
    y: &Tensor,
) -> Result<Ggn, String> {
    let curvature = Curvature::from_name(
        args.curvature.name(),
        args.fisher_samples as usize,
        args.seed,
    )
    .map_err(|e| e.to_string())?;
    let _step = Step::spinner(format!("recording the {} operator", args.curvature.title()));
    Ggn::new(problem.model.as_ref(), problem.loss, inputs, y, curvature)
        .map_err(|e| format!("{}: {e}", args.model.display()))
}

/// Ends an MPI rank other than 0 after an error every rank met, which rank 0 reports. It
/// leaves with status 0: rank 0's status 2 is the job's, and a non-zero status here would let
/// the launcher kill rank 0 before it has printed the error.
pub fn leave_quietly() -> ! {
    std::process::exit(0)
}
