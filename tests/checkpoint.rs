//! Checkpoints and resume (issue: `kill -9` lost the whole run): on the CPU backend a run
//! stopped mid-way in-process, right after a checkpoint, and resumed from that
//! checkpoint's file gives the same records and the same final network as the
//! uninterrupted run, bit for bit, for every method and both ALM variants; writing
//! checkpoints does not change a run.

mod common;

use sparse_alm::app::Problem;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::gpu::GpuOptions;
use sparse_alm::backend::{Backend, LossKind};
use sparse_alm::config::{load_config, AlmVariant, Config, Method};
use sparse_alm::data::Dataset;
use sparse_alm::model::Network;
use sparse_alm::solver::checkpoint::{self, Checkpoints, Stop};
use sparse_alm::solver::{Record, RunResult};
use sparse_alm::Error;
use std::path::Path;

fn data() -> (Dataset, Dataset) {
    let all = common::teacher_data(&[10, 16, 3], 700, 5, 6, LossKind::SoftmaxCe);
    (
        all.select(&(0..600).collect::<Vec<_>>()),
        all.select(&(600..700).collect::<Vec<_>>()),
    )
}

fn config(variant: AlmVariant) -> Config {
    let mut cfg = load_config(None, &[]).unwrap();
    cfg.model.hidden = vec![12, 8];
    cfg.train.max_passes = 150.0;
    cfg.warm.passes = 20.0;
    cfg.sgd.batch = 64;
    cfg.adam.batch = 64;
    cfg.alm.variant = variant;
    cfg
}

/// Run `method` with `checkpoints`; the outcome and every record the sink saw.
fn run<B: Backend>(
    be: &B,
    cfg: &Config,
    method: Method,
    checkpoints: Option<Checkpoints>,
) -> (sparse_alm::Result<RunResult>, Vec<Record>) {
    let (tr, te) = data();
    let problem = Problem::new(be, cfg, &tr, &te).unwrap();
    let mut recs = Vec::new();
    let res = problem.run_with(
        be,
        cfg,
        method,
        &mut |r: &Record| recs.push(r.clone()),
        checkpoints,
    );
    (res, recs)
}

fn bits(net: &Network) -> Vec<u32> {
    net.w
        .iter()
        .chain(&net.b)
        .flat_map(|m| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

/// (passes, p0) of each record, as bits.
fn trace(recs: &[Record]) -> Vec<(u64, u64)> {
    recs.iter()
        .map(|r| (r.passes.to_bits(), r.p0.to_bits()))
        .collect()
}

/// Stop `method` right after the first checkpoint once `fraction` of the uninterrupted
/// run's records exist (in phase `phase`), resume, and compare.
fn stop_and_resume(method: Method, variant: AlmVariant, fraction: f64, phase: &str, dir: &Path) {
    let stop = |n: usize| Stop::AfterRecords(((n as f64 * fraction) as usize).max(1));
    stop_and_resume_at(
        &CpuBackend::<f32>::new(),
        method,
        variant,
        &stop,
        phase,
        dir,
    );
}

/// Stop `method` where `stop` (given the uninterrupted run's record count) says, expect a
/// checkpoint of `phase`, resume, and compare with the uninterrupted run.
fn stop_and_resume_at<B: Backend>(
    be: &B,
    method: Method,
    variant: AlmVariant,
    stop: &dyn Fn(usize) -> Stop,
    phase: &str,
    dir: &Path,
) {
    let mut cfg = config(variant);
    if be.name().starts_with("GPU") {
        // Software adapters are slow; a shorter run has the same safe points.
        cfg.train.max_passes = 80.0;
    }
    let (full, full_recs) = run(be, &cfg, method, None);
    let full = full.unwrap();
    let stop = stop(full_recs.len());
    let what = format!(
        "{method} ({variant:?}), stopped at {stop:?} of {} records",
        full_recs.len()
    );
    // Checkpoints at every safe point change nothing.
    let path = checkpoint::checkpoint_path(dir);
    let (every, every_recs) = run(be, &cfg, method, Some(Checkpoints::new(path.clone(), 0.0)));
    assert_eq!(
        bits(&every.unwrap().net),
        bits(&full.net),
        "{what}: checkpointing changed the run"
    );
    assert_eq!(trace(&every_recs), trace(&full_recs));
    let mut ck = Checkpoints::new(path.clone(), f64::INFINITY);
    ck.stop = Some(stop.clone());
    let (stopped, _) = run(be, &cfg, method, Some(ck));
    match stopped {
        Err(Error::Interrupted(p)) => assert_eq!(p, path),
        Err(e) => panic!("{what}: {e}"),
        Ok(_) => panic!("{what}: the run was not stopped"),
    }
    let state = checkpoint::load(&path).unwrap();
    assert_eq!(state.phase, phase, "{what}");
    match &stop {
        Stop::AfterRecords(n) => {
            assert!(state.records.len() >= *n, "{what}");
            assert!(
                state.records.len() < full_recs.len(),
                "{what}: stopped at the end"
            );
        }
        Stop::AtPhaseEnd(_) => assert!(!state.started, "{what}"),
    }
    let ck = Checkpoints::new(path, f64::INFINITY).resuming(state);
    let (resumed, resumed_recs) = run(be, &cfg, method, Some(ck));
    let resumed = resumed.unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(
        bits(&resumed.net),
        bits(&full.net),
        "{what}: different network"
    );
    assert_eq!(
        trace(&resumed_recs),
        trace(&full_recs),
        "{what}: different records"
    );
    assert_eq!(resumed.passes.to_bits(), full.passes.to_bits(), "{what}");
    assert_eq!(
        resumed.final_measures.p0.to_bits(),
        full.final_measures.p0.to_bits(),
        "{what}"
    );
}

#[test]
fn every_method_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    for (method, fraction, phase) in [
        (Method::ProxSgd, 0.5, "sgd"),
        (Method::ProxAdam, 0.5, "adam"),
        (Method::ProxGd, 0.5, "gd"),
        (Method::ProxApg, 0.5, "apg"),
        (Method::Alm, 0.5, "alm"),
        (Method::WarmAlm, 0.2, "sgd"),
        (Method::WarmAlm, 0.85, "alm"),
    ] {
        stop_and_resume(method, AlmVariant::P0Steps, fraction, phase, tmp.path());
    }
}

#[test]
fn a_run_resumes_from_a_phase_end() {
    let tmp = tempfile::tempdir().unwrap();
    // Between the warm start and the ALM: the ALM starts afresh from the saved W.
    let at = |p: &str| {
        let p = p.to_string();
        move |_: usize| Stop::AtPhaseEnd(p.clone())
    };
    let cpu = CpuBackend::<f32>::new();
    stop_and_resume_at(
        &cpu,
        Method::WarmAlm,
        AlmVariant::P0Steps,
        &at("alm"),
        "alm",
        tmp.path(),
    );
    // At the end of the run (before the model is written): only the result is left.
    for method in [Method::ProxSgd, Method::Alm, Method::WarmAlm] {
        stop_and_resume_at(
            &cpu,
            method,
            AlmVariant::P0Steps,
            &at("done"),
            "done",
            tmp.path(),
        );
    }
}

/// The GPU backend is deterministic too (same kernels in the same order), so a resumed
/// run there is also the uninterrupted one.
#[test]
fn a_gpu_run_resumes_bit_for_bit() {
    let Some(gpu) = common::gpu_or_skip(GpuOptions::from_env()) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let half = |n: usize| Stop::AfterRecords(n / 2);
    for (method, phase) in [(Method::ProxAdam, "adam"), (Method::Alm, "alm")] {
        stop_and_resume_at(&gpu, method, AlmVariant::P0Steps, &half, phase, tmp.path());
    }
}

#[test]
fn the_plain_alm_resumes_bit_for_bit() {
    let tmp = tempfile::tempdir().unwrap();
    stop_and_resume(Method::Alm, AlmVariant::Plain, 0.3, "alm", tmp.path());
    stop_and_resume(Method::WarmAlm, AlmVariant::Plain, 0.85, "alm", tmp.path());
}
