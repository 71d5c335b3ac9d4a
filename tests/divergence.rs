//! Divergence caught when it happens (issue: a diverging run used to spend its whole budget
//! and fail at save time, or be saved with an absurd (P0)): on the CPU reference backend
//! and on the GPU (tests/common policy), a method whose iterates blow up stops at the first
//! record that shows it with `Error::Diverged` naming method, phase and iteration, and
//! `train.keep_diverged` returns the last finite state instead.

mod common;

use sparse_alm::app::Problem;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::gpu::GpuOptions;
use sparse_alm::backend::{Backend, LossKind};
use sparse_alm::config::{load_config, Config, Method};
use sparse_alm::data::Dataset;
use sparse_alm::solver::{Record, RunResult};
use sparse_alm::Error;

/// A 3-class teacher problem.
fn data() -> (Dataset, Dataset) {
    let all = common::teacher_data(&[12, 20, 3], 1001, 3, 4, LossKind::SoftmaxCe);
    (
        all.select(&(0..800).collect::<Vec<_>>()),
        all.select(&(800..1001).collect::<Vec<_>>()),
    )
}

fn config(tweak: impl Fn(&mut Config)) -> Config {
    let mut cfg = load_config(None, &[]).unwrap();
    cfg.model.hidden = vec![24, 16];
    tweak(&mut cfg);
    cfg
}

/// Run `method`; the outcome and the records the sink saw.
fn run<B: Backend>(
    be: &B,
    cfg: &Config,
    method: Method,
) -> (sparse_alm::Result<RunResult>, Vec<Record>) {
    let (tr, te) = data();
    let problem = Problem::new(be, cfg, &tr, &te).unwrap();
    let mut recs = Vec::new();
    let res = problem.run(be, cfg, method, &mut |r: &Record| recs.push(r.clone()));
    (res, recs)
}

fn diverges_at_once<B: Backend>(be: &B) {
    let cases = [
        (Method::ProxSgd, "sgd", "--set sgd.lr=10, now 100"),
        (Method::WarmAlm, "sgd", "--set sgd.lr=10, now 100"),
        (Method::ProxAdam, "adam", "--set adam.lr=1, now 10"),
    ];
    let cfg = config(|c| {
        c.sgd.lr = 100.0;
        c.adam.lr = 10.0;
    });
    for (method, phase, fix) in cases {
        let (res, recs) = run(be, &cfg, method);
        let d = match res {
            Err(Error::Diverged(d)) => d,
            Err(e) => panic!("{method}: {e}"),
            Ok(r) => panic!(
                "{method}: no divergence, final (P0) {}",
                r.final_measures.p0
            ),
        };
        assert_eq!(
            (d.method.as_str(), d.phase.as_str()),
            (method.as_str(), phase)
        );
        assert_eq!(d.iter, 1, "{d}");
        assert!(d.fix.contains(fix), "{d}");
        assert_eq!(recs.len(), 1, "{method}: stopped at the first record");
        assert!(d.passes > 0.0 && d.passes < 10.0, "{d}");
    }
}

#[test]
fn diverging_methods_stop_at_the_first_record_on_the_cpu() {
    diverges_at_once(&CpuBackend::<f32>::new());
}

#[test]
fn diverging_methods_stop_at_the_first_record_on_the_gpu() {
    if let Some(g) = common::gpu_or_skip(GpuOptions::from_env()) {
        diverges_at_once(&g);
    }
}

#[test]
fn keep_diverged_returns_the_last_finite_state() {
    let be = CpuBackend::<f32>::new();
    let (tr, te) = data();
    let cfg = config(|c| {
        c.sgd.lr = 100.0;
        c.train.keep_diverged = true;
    });
    let problem = Problem::new(&be, &cfg, &tr, &te).unwrap();
    let res = problem
        .run(&be, &cfg, Method::ProxSgd, &mut |_| {})
        .unwrap();
    let d = res.diverged.as_ref().expect("the divergence is reported");
    assert_eq!(d.iter, 1);
    assert!(res.final_measures.p0.is_finite());
    // Diverged at the first record: the last finite state is the shared initialisation.
    assert_eq!(res.net.w, problem.init.w);
    assert_eq!(res.net.b, problem.init.b);
}

#[test]
fn a_converging_run_is_not_flagged() {
    let be = CpuBackend::<f32>::new();
    let cfg = config(|c| c.train.max_passes = 20.0);
    for method in [Method::ProxSgd, Method::Alm, Method::ProxApg] {
        let (res, recs) = run(&be, &cfg, method);
        let res = res.unwrap_or_else(|e| panic!("{method}: {e}"));
        assert!(res.diverged.is_none());
        assert!(recs.len() > 1);
    }
}
