//! `sparse-alm train`: one method on one problem, saved as a model directory (network,
//! metadata, metrics.jsonl, resolved config.toml), with checkpoints while it runs
//! (`checkpoint.safetensors`, removed once the model is saved) and `--resume` from them.

use super::device::with_backend;
use super::report::{counters_report, TrainReport};
use super::setup::{Command, RunArgs, Setup};
use super::Notice;
use crate::backend::Backend;
use crate::solver::checkpoint::{self, Checkpoints, SolverState, Stop};
use crate::solver::RunResult;
use crate::{Error, Result};

/// What `train` needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    pub run: RunArgs,
    /// Test hook: stop (with [`Error::Interrupted`]) where this says, after writing the
    /// checkpoint, as a killed process would have.
    #[doc(hidden)]
    pub stop: Option<Stop>,
}

/// `sparse-alm train`. `say` receives the progress notices and the header line (the
/// binary prints them); the final report is returned.
pub fn train(opts: &TrainOptions, say: &mut dyn FnMut(Notice)) -> Result<TrainReport> {
    let setup = Setup::start(Command::Train, &opts.run, say)?;
    let resume = match &opts.run.resume {
        None => None,
        Some(dir) => {
            let path = checkpoint::checkpoint_path(dir);
            if !path.is_file() {
                return Err(Error::Refused(format!(
                    "cannot resume {}: it holds no checkpoint.safetensors (the run finished, \
                     or it never wrote one)",
                    dir.display()
                )));
            }
            let state = checkpoint::load(&path)?;
            let (dir, at) = (dir.display(), state.summary());
            say(Notice::Info(format!(
                "resuming {dir} from its checkpoint: {at}"
            )));
            Some(state)
        }
    };
    let cfg = &setup.cfg;
    say(Notice::Info(
        setup.header(&format!("method {}", cfg.train.method)),
    ));
    let before = setup.device.counters();
    let result = with_backend!(&setup.device, be => train_on(be, &setup, opts, resume))?;
    if let Some(d) = &result.diverged {
        say(Notice::Warn(format!(
            "warning: {d}. Saving its last finite state, as train.keep_diverged asks."
        )));
    }
    let after = setup.device.counters();
    let device_name = setup.device.name();
    setup.save_model(&setup.out_dir, &result, &device_name)?;
    // The model holds the result now; the checkpoint would only resume a finished run.
    let ck = checkpoint::checkpoint_path(&setup.out_dir);
    match std::fs::remove_file(&ck) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(ck, e)),
        _ => {}
    }
    let counters = opts
        .run
        .verbosity
        .verbose
        .then(|| counters_report(before, after, result.records.len(), result.sweeps));
    Ok(TrainReport {
        out_dir: setup.out_dir.clone(),
        device: device_name,
        task: cfg.data.task,
        result,
        counters,
    })
}

/// The configured method on the setup's problem, logged to `metrics.jsonl`, writing
/// checkpoints every `train.checkpoint_seconds` and resuming from `resume`.
fn train_on<B: Backend>(
    be: &B,
    setup: &Setup,
    opts: &TrainOptions,
    resume: Option<SolverState>,
) -> Result<RunResult> {
    let cfg = &setup.cfg;
    let log = setup.out_dir.join("metrics.jsonl");
    let mut checkpoints = Checkpoints::new(
        checkpoint::checkpoint_path(&setup.out_dir),
        cfg.train.checkpoint_seconds,
    );
    checkpoints.resume = resume;
    checkpoints.stop = opts.stop.clone();
    setup.problem(be)?.run_logged(
        be,
        cfg,
        cfg.train.method,
        &log,
        opts.run.verbosity.quiet,
        Some(checkpoints),
    )
}
