//! Speed of whole training epochs, side by side with PyTorch **measured in the same run**
//! (`benches/peer/torch_epoch.py`, idiomatic PyTorch prox-SGD on the same network, batch,
//! step and prox), and the ALM's cost per pass against prox-GD's.
//!
//! Run with `cargo bench --bench train` (add `-- gpu` to time the GPU backend, `-- epochs`
//! or `-- alm` for one part only). The PyTorch
//! side runs `$SPARSE_ALM_TORCH_PYTHON` (default `python3`) when it can `import torch`;
//! otherwise only our times are printed, and the bench says so. Every figure is the
//! median of [`rounds`] rounds (3, or `SPARSE_ALM_BENCH_ROUNDS`), each round running ours
//! and then PyTorch's, so both sides see the same machine load. Our times are the
//! solver's own clock (measurement passes excluded). The ratio is our time / PyTorch's
//! (< 1: we are faster).

use sparse_alm::app::Problem;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::gpu::{GpuBackend, GpuOptions};
use sparse_alm::backend::Backend;
use sparse_alm::config::{load_config, Config, Method};
use sparse_alm::data::LoadedData;
use sparse_alm::model::Network;
use sparse_alm::problem::{Net, Params};
use sparse_alm::solver::spec_for;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Rounds per figure (median reported): 3, or `SPARSE_ALM_BENCH_ROUNDS` (more rounds
/// narrow a ratio on a noisy machine).
fn rounds() -> usize {
    std::env::var("SPARSE_ALM_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .filter(|&r| r >= 1)
        .unwrap_or(3)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// The Python that runs the peer script, if it has torch.
fn torch_python() -> Option<String> {
    let py = std::env::var("SPARSE_ALM_TORCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&py)
        .args(["-c", "import torch, numpy"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    ok.then_some(py)
}

/// One call of the peer script; the value it prints after `key`.
fn torch_seconds(py: &str, args: &[&str], key: &str) -> Option<f64> {
    let out = Command::new(py)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/peer/torch_epoch.py"
        ))
        .args(args)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().parse().ok())
}

fn load(config: &str) -> Option<(Config, LoadedData)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(config);
    let cfg = load_config(Some(&path), &[]).expect("config");
    match sparse_alm::data::load(&cfg.data) {
        Ok(d) => Some((cfg, d)),
        Err(e) => {
            println!("{config}: skipped ({e})");
            None
        }
    }
}

/// Seconds per epoch (or per pass, `per_pass`) of one run of `method` for `budget` passes.
fn run_once<B: Backend>(
    be: &B,
    problem: &Problem<B>,
    cfg: &Config,
    method: Method,
    budget: f64,
) -> (f64, f64) {
    let mut cfg = cfg.clone();
    cfg.train.max_passes = budget;
    cfg.train.max_seconds = f64::INFINITY;
    let res = problem.run(be, &cfg, method, &mut |_| {}).expect("train");
    (res.seconds, res.passes)
}

/// Passes of one prox-SGD epoch (forward + backward over N columns, method §5).
fn epoch_passes<B: Backend>(be: &B, problem: &Problem<B>) -> f64 {
    let spec = &problem.spec;
    let net = Net::new(be, spec, 1).expect("workspace");
    net.forward_passes(spec, 1) + net.backward_passes(spec, 1)
}

fn report(name: &str, ours: Vec<f64>, torch: Vec<f64>, unit: &str, scale: f64) {
    let o = median(ours) * scale;
    if torch.is_empty() {
        println!("{name:<44} ours {o:>9.2} {unit}   PyTorch: not measured");
    } else {
        let t = median(torch) * scale;
        println!(
            "{name:<44} ours {o:>9.2} {unit}   PyTorch {t:>9.2} {unit}   ours/PyTorch {:.2}×",
            o / t
        );
    }
}

fn epochs<B: Backend>(be: &B, py: Option<&str>) {
    for (config, peer, n_epochs) in [
        ("configs/digits.toml", "digits", 20usize),
        ("configs/fashion.toml", "fashion", 1),
    ] {
        let Some((cfg, data)) = load(config) else {
            continue;
        };
        let problem = Problem::new(be, &cfg, &data.train, &data.test).expect("upload");
        let per_epoch = epoch_passes(be, &problem);
        let budget = per_epoch * n_epochs as f64 - 1e-9;
        // A first, untimed run (page faults, the gather's sample-major copy).
        run_once(be, &problem, &cfg, Method::ProxSgd, per_epoch.min(budget));
        let (mut ours, mut torch) = (Vec::new(), Vec::new());
        let ep = n_epochs.to_string();
        for _ in 0..rounds() {
            ours.push(run_once(be, &problem, &cfg, Method::ProxSgd, budget).0 / n_epochs as f64);
            if let Some(py) = py {
                torch.extend(torch_seconds(py, &[peer, &ep, "1"], "seconds_per_epoch"));
            }
        }
        report(
            &format!("{peer}: prox-SGD epoch, batch 128"),
            ours,
            torch,
            "ms",
            1e3,
        );
        if peer == "fashion" {
            fullbatch(be, &cfg, &data, py);
        }
    }
}

/// One forward + backward over all 60000 Fashion-MNIST training samples.
fn fullbatch<B: Backend>(be: &B, cfg: &Config, data: &LoadedData, py: Option<&str>) {
    let spec = spec_for(cfg, data.train.d(), data.train.m());
    let init = Network::he_init(&spec.sizes, spec.alpha, 0);
    let p = Params::upload(be, &init).expect("params");
    let x = be.upload(data.train.x.view()).expect("x");
    let y = be.upload(data.train.y.view()).expect("y");
    let mut net = Net::new(be, &spec, data.train.n()).expect("net");
    let mut pass = || {
        let t = Instant::now();
        net.forward(be, &spec, &p, &x).expect("forward");
        net.backward(be, &spec, &p, &x, &y, 0).expect("backward");
        be.read_slots(&[0]).expect("sync");
        t.elapsed().as_secs_f64()
    };
    pass();
    let (mut ours, mut torch) = (Vec::new(), Vec::new());
    for _ in 0..rounds() {
        ours.push(pass());
        if let Some(py) = py {
            torch.extend(torch_seconds(py, &["fullbatch", "1"], "seconds_fullbatch"));
        }
    }
    report(
        "fashion: full-batch forward+backward, 60000",
        ours,
        torch,
        "ms",
        1e3,
    );
}

/// ALM against prox-GD, time per pass, each `passes` passes from the same start.
fn alm_vs_gd<B: Backend>(be: &B) {
    for (config, passes) in [
        ("configs/digits.toml", 100.0),
        ("configs/teacher.toml", 60.0),
    ] {
        let Some((cfg, data)) = load(config) else {
            continue;
        };
        let problem = Problem::new(be, &cfg, &data.train, &data.test).expect("upload");
        run_once(be, &problem, &cfg, Method::ProxGd, 5.0);
        let (mut alm, mut gd, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds() {
            let (s, p) = run_once(be, &problem, &cfg, Method::Alm, passes);
            let a = s / p;
            let (s, p) = run_once(be, &problem, &cfg, Method::ProxGd, passes);
            let g = s / p;
            alm.push(a);
            gd.push(g);
            ratio.push(a / g);
        }
        println!(
            "{:<44} ALM {:>7.3} ms/pass   prox-GD {:>7.3} ms/pass   ALM/prox-GD {:.2}× (median of per-round ratios)",
            format!("{}: {} passes each", Path::new(config).file_stem().unwrap().to_string_lossy(), passes),
            median(alm) * 1e3,
            median(gd) * 1e3,
            median(ratio)
        );
    }
}

fn run<B: Backend>(be: &B) {
    println!("backend: {}", be.name());
    let py = torch_python();
    match &py {
        Some(py) => println!("PyTorch: {py} (benches/peer/torch_epoch.py), same run, interleaved"),
        None => println!(
            "PyTorch: not available (no `import torch` in $SPARSE_ALM_TORCH_PYTHON or python3): our times only"
        ),
    }
    println!("medians of {} rounds", rounds());
    let args: Vec<String> = std::env::args().collect();
    let only = |part: &str| {
        let parts = ["epochs", "alm"];
        let chosen = args.iter().any(|a| parts.contains(&a.as_str()));
        !chosen || args.iter().any(|a| a == part)
    };
    if only("epochs") {
        epochs(be, py.as_deref());
    }
    if only("alm") {
        alm_vs_gd(be);
    }
}

fn main() {
    // As the binary does: this thread drives the solver and takes its share of the loops.
    sparse_alm::backend::cpu::adopt_current_thread();
    sparse_alm::backend::cpu::retain_freed_memory();
    let gpu = std::env::args().any(|a| a == "gpu" || a == "--device=gpu");
    if gpu {
        match GpuBackend::new(GpuOptions::from_env()) {
            Ok(be) => run(&be),
            Err(e) => println!("no GPU backend: {e}"),
        }
    } else {
        run(&CpuBackend::<f32>::new());
    }
}
