//! `sparse-alm compare`: every method of `compare.methods` on one problem from one shared
//! initialisation, saved side by side (a model directory and a metrics log per method,
//! compare.json with (P0) at pass and time checkpoints). A method that fails is kept in
//! the table and in compare.json with its reason; the others are saved as usual. Each
//! method checkpoints into its folder (`<method>/checkpoint.safetensors`, kept until
//! compare.json is written), so `compare --resume DIR` takes up an interrupted comparison:
//! finished methods are restored from their last checkpoint, the interrupted one continues
//! from its, the rest run.

use super::device::with_backend;
use super::report::{counters_report, fmt_error, CompareReport, MethodFailure, MethodOutcome};
use super::setup::{Command, RunArgs, Setup};
use super::{io_err, Notice};
use crate::backend::{Backend, SweepCounters};
use crate::config::Method;
use crate::output::{fmt_sig, write_json};
use crate::solver::checkpoint::{self, Checkpoints, Stop};
use crate::solver::RunResult;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    pub run: RunArgs,
    /// Test hook: stop `Method`'s run where [`Stop`] says, as a killed process would.
    #[doc(hidden)]
    pub stop: Option<(Method, Stop)>,
}

/// `sparse-alm compare`: every method of `compare.methods` from one shared initialisation.
pub fn compare(opts: &CompareOptions, say: &mut dyn FnMut(Notice)) -> Result<CompareReport> {
    if opts.run.config.is_none() && opts.run.resume.is_none() {
        return Err(Error::Refused(
            "compare needs a config file (or --resume DIR)".into(),
        ));
    }
    let setup = Setup::start(Command::Compare, &opts.run, say)?;
    if let Some(dir) = opts.run.resume.as_ref() {
        if dir.join("compare.json").exists() {
            return Err(Error::Refused(format!(
                "cannot resume {}: the comparison finished (its compare.json is there)",
                dir.display()
            )));
        }
    }
    let cfg = &setup.cfg;
    let methods: Vec<String> = cfg.compare.methods.iter().map(|m| m.to_string()).collect();
    say(Notice::Info(
        setup.header(&format!("methods {}", methods.join(","))),
    ));
    let before = setup.device.counters();
    let device_name = setup.device.name();
    let (outcomes, empty_p0) =
        with_backend!(&setup.device, be => compare_on(be, &setup, &device_name, opts, say))?;
    let after = setup.device.counters();
    let results: Vec<&RunResult> = outcomes.iter().filter_map(MethodOutcome::result).collect();
    let mut pass_checkpoints: Vec<f64> = cfg
        .compare
        .pass_checkpoints
        .iter()
        .copied()
        .filter(|&c| c <= cfg.train.max_passes)
        .collect();
    if pass_checkpoints.is_empty() && cfg.train.max_passes.is_finite() {
        // A budget below every checkpoint: show (P0) at the budget itself.
        pass_checkpoints.push(cfg.train.max_passes);
    }
    let time_checkpoints = if cfg.compare.time_checkpoints.is_empty() {
        let slowest = results.iter().map(|r| r.seconds).fold(0.0f64, f64::max);
        if slowest > 0.0 {
            (1..=5).map(|k| slowest * k as f64 / 5.0).collect()
        } else {
            Vec::new()
        }
    } else {
        cfg.compare.time_checkpoints.clone()
    };
    let records: usize = results.iter().map(|r| r.records.len()).sum();
    let sweeps = results
        .iter()
        .fold(SweepCounters::default(), |t, r| t.plus(r.sweeps));
    let counters = opts
        .run
        .verbosity
        .verbose
        .then(|| counters_report(before, after, records, sweeps));
    let report = CompareReport {
        out_dir: setup.out_dir.clone(),
        device: device_name,
        task: cfg.data.task,
        empty_p0,
        outcomes,
        pass_checkpoints,
        time_checkpoints,
        counters,
    };
    let path = setup.out_dir.join("compare.json");
    write_json(&path, &report.to_json()).map_err(io_err(&path))?;
    // compare.json holds every result now: nothing is left to resume.
    for method in &cfg.compare.methods {
        let ck = checkpoint_of(&setup.out_dir, *method);
        remove_if_present(&ck)?;
        // The folder of a method that failed held only its checkpoint.
        if let Some(dir) = ck.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
    Ok(report)
}

/// Every method on one problem, each with its own metrics log and its model saved as soon
/// as it finishes; returns the outcomes and the empty network's (P0). A method that stops
/// with an error of its own (divergence, a backend error) is kept as failed and the next
/// one runs; an error of the command (writing the outputs) stops it.
fn compare_on<B: Backend>(
    be: &B,
    setup: &Setup,
    device_name: &str,
    opts: &CompareOptions,
    say: &mut dyn FnMut(Notice),
) -> Result<(Vec<MethodOutcome>, f64)> {
    let cfg = &setup.cfg;
    let problem = setup.problem(be)?;
    let mut outcomes = Vec::new();
    for &method in &cfg.compare.methods {
        let log = setup
            .out_dir
            .join(format!("metrics-{}.jsonl", method.as_str()));
        let checkpoints = checkpoints_for(setup, method, opts, say)?;
        let quiet = opts.run.verbosity.quiet;
        let res = match problem.run_logged(be, cfg, method, &log, quiet, Some(checkpoints)) {
            Ok(res) => res,
            Err(e @ (Error::Diverged(_) | Error::Backend(_))) => {
                say(Notice::Warn(format!(
                    "{:>10}: FAILED: {e}",
                    method.as_str()
                )));
                outcomes.push(MethodOutcome::Failed(MethodFailure {
                    method,
                    reason: e.to_string(),
                }));
                continue;
            }
            Err(e) => return Err(e),
        };
        setup.save_model(&setup.out_dir.join(method.as_str()), &res, device_name)?;
        say(Notice::Info(format!(
            "{:>10}: p0 {}  test {}  {} passes  {} s",
            method.as_str(),
            fmt_sig(res.final_measures.p0, 4),
            fmt_error(cfg.data.task, res.final_measures.test_error),
            fmt_sig(res.passes, 4),
            fmt_sig(res.seconds, 3)
        )));
        outcomes.push(MethodOutcome::Done(Box::new(res)));
    }
    Ok((outcomes, problem.empty_p0))
}

/// `<method>/checkpoint.safetensors` of a comparison in `dir`.
fn checkpoint_of(dir: &Path, method: Method) -> PathBuf {
    checkpoint::checkpoint_path(&dir.join(method.as_str()))
}

/// `method`'s checkpoints (every `train.checkpoint_seconds` and at phase ends, in its
/// folder), resuming from the one there when the comparison is resumed.
fn checkpoints_for(
    setup: &Setup,
    method: Method,
    opts: &CompareOptions,
    say: &mut dyn FnMut(Notice),
) -> Result<Checkpoints> {
    let path = checkpoint_of(&setup.out_dir, method);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    let mut ck = Checkpoints::new(path.clone(), setup.cfg.train.checkpoint_seconds);
    if opts.run.resume.is_some() && path.is_file() {
        let state = checkpoint::load(&path)?;
        let (m, at) = (method.as_str(), state.summary());
        say(Notice::Info(format!(
            "{m:>10}: resuming from its checkpoint: {at}"
        )));
        ck = ck.resuming(state);
    }
    ck.stop = opts
        .stop
        .as_ref()
        .filter(|(m, _)| *m == method)
        .map(|(_, s)| s.clone());
    Ok(ck)
}

fn remove_if_present(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}
