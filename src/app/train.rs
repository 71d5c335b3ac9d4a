//! `sparse-alm train`: one method on one problem, saved as a model directory (network,
//! metadata, metrics.jsonl, resolved config.toml).

use super::device::with_backend;
use super::report::{counters_report, TrainReport};
use super::setup::Setup;
use super::{Notice, Verbosity};
use crate::backend::Backend;
use crate::solver::RunResult;
use crate::Result;
use std::path::PathBuf;

/// What `train` needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Config file (`None`: the built-in digits default).
    pub config: Option<PathBuf>,
    /// `key=value` overrides, applied in order (flags already turned into these).
    pub sets: Vec<String>,
    /// Output directory (`None`: `runs/<timestamp>`).
    pub out: Option<PathBuf>,
    /// Run in a non-empty output directory, removing the tool's files of an earlier run.
    pub force: bool,
    pub verbosity: Verbosity,
}

/// `sparse-alm train`. `say` receives the progress notices and the header line (the
/// binary prints them); the final report is returned.
pub fn train(opts: &TrainOptions, say: &mut dyn FnMut(Notice)) -> Result<TrainReport> {
    let setup = Setup::open(
        opts.config.as_deref(),
        &opts.sets,
        opts.out.as_deref(),
        opts.force,
        say,
    )?;
    let cfg = &setup.cfg;
    say(Notice::Info(
        setup.header(&format!("method {}", cfg.train.method)),
    ));
    let before = setup.device.counters();
    let result = with_backend!(&setup.device, be => train_on(be, &setup, opts.verbosity.quiet))?;
    if let Some(d) = &result.diverged {
        say(Notice::Warn(format!(
            "warning: {d}. Saving its last finite state, as train.keep_diverged asks."
        )));
    }
    let after = setup.device.counters();
    let device_name = setup.device.name();
    setup.save_model(&setup.out_dir, &result, &device_name)?;
    let counters = opts
        .verbosity
        .verbose
        .then(|| counters_report(before, after, result.records.len()));
    Ok(TrainReport {
        out_dir: setup.out_dir.clone(),
        device: device_name,
        task: cfg.data.task,
        result,
        counters,
    })
}

/// The configured method on the setup's problem, logged to `metrics.jsonl`.
fn train_on<B: Backend>(be: &B, setup: &Setup, quiet: bool) -> Result<RunResult> {
    let cfg = &setup.cfg;
    let log = setup.out_dir.join("metrics.jsonl");
    setup
        .problem(be)?
        .run_logged(be, cfg, cfg.train.method, &log, quiet)
}
