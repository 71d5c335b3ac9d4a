//! Speed of whole training epochs against the PyTorch figures measured on this machine
//! (`shared/reference/prototype-results.md`): prox-SGD and prox-Adam epochs on digits and
//! teacher, a prox-SGD epoch on Fashion-MNIST 784-256-256-10, and one full-batch
//! forward+backward over the 60000 Fashion-MNIST training samples.
//!
//! Run with `cargo bench --bench train` (add `-- --device gpu` to time the GPU backend).
//! Times are the solver's own clock (measurement passes excluded), median of 3 runs;
//! the ratio column is PyTorch time / our time (> 1: we are faster).

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
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

struct Case {
    config: &'static str,
    method: Method,
    epochs: usize,
    torch_ms: f64,
}

/// Milliseconds per epoch of `method` on `cfg` (median of 3 runs of `epochs` epochs).
fn epoch_ms<B: Backend>(
    be: &B,
    cfg: &Config,
    data: &LoadedData,
    method: Method,
    epochs: usize,
) -> f64 {
    let problem = Problem::new(be, cfg, &data.train, &data.test).expect("upload");
    let spec = &problem.spec;
    // Passes of one epoch: forward + backward over N columns (method §5 accounting).
    let net = Net::new(be, spec, 1).expect("workspace");
    let per_epoch = (net.forward_passes(spec, 1) + net.backward_passes(spec, 1)) * 1.0;
    let mut cfg = cfg.clone();
    cfg.train.max_passes = per_epoch * epochs as f64 - 1e-9;
    cfg.train.max_seconds = f64::INFINITY;
    let runs: Vec<f64> = (0..3)
        .map(|_| {
            let res = problem.run(be, &cfg, method, &mut |_| {}).expect("train");
            res.seconds * 1e3 / epochs as f64
        })
        .collect();
    median(runs)
}

fn run<B: Backend>(be: &B) {
    println!("backend: {}", be.name());
    let cases = [
        Case {
            config: "configs/digits.toml",
            method: Method::ProxSgd,
            epochs: 20,
            torch_ms: 13.7,
        },
        Case {
            config: "configs/digits.toml",
            method: Method::ProxAdam,
            epochs: 20,
            torch_ms: 17.7,
        },
        Case {
            config: "configs/teacher.toml",
            method: Method::ProxSgd,
            epochs: 10,
            torch_ms: 36.8,
        },
        Case {
            config: "configs/teacher.toml",
            method: Method::ProxAdam,
            epochs: 10,
            torch_ms: 50.7,
        },
        Case {
            config: "configs/fashion.toml",
            method: Method::ProxSgd,
            epochs: 1,
            torch_ms: 1380.0,
        },
        Case {
            config: "configs/fashion.toml",
            method: Method::ProxAdam,
            epochs: 1,
            torch_ms: 2070.0,
        },
    ];
    println!(
        "{:<10} {:<10} {:>12} {:>14} {:>8}",
        "problem", "method", "ms/epoch", "PyTorch ms", "ratio"
    );
    let mut fashion: Option<(Config, LoadedData)> = None;
    for c in &cases {
        let cfg = load_config(Some(Path::new(c.config)), &[]).expect("config");
        let data = match sparse_alm::data::load(&cfg.data) {
            Ok(d) => d,
            Err(e) => {
                println!("{:<10} skipped: {e}", c.config);
                continue;
            }
        };
        let ms = epoch_ms(be, &cfg, &data, c.method, c.epochs);
        let name = Path::new(c.config)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .to_string();
        println!(
            "{:<10} {:<10} {:>12.2} {:>14.1} {:>7.2}×",
            name,
            c.method.as_str(),
            ms,
            c.torch_ms,
            c.torch_ms / ms
        );
        if name == "fashion" && fashion.is_none() {
            fashion = Some((cfg, data));
        }
    }
    if let Some((cfg, data)) = fashion {
        let spec = spec_for(&cfg, data.train.d(), data.train.m());
        let init = Network::he_init(&spec.sizes, spec.alpha, 0);
        let p = Params::upload(be, &init).expect("params");
        let x = be.upload(data.train.x.view()).expect("x");
        let y = be.upload(data.train.y.view()).expect("y");
        let mut net = Net::new(be, &spec, data.train.n()).expect("net");
        let times: Vec<f64> = (0..3)
            .map(|_| {
                let t = Instant::now();
                net.forward(be, &spec, &p, &x).expect("forward");
                net.backward(be, &spec, &p, &x, &y, 0).expect("backward");
                be.read_slots(&[0]).expect("sync");
                t.elapsed().as_secs_f64()
            })
            .collect();
        let s = median(times);
        println!("full-batch forward+backward, Fashion-MNIST 60000: {:.3} s (PyTorch 0.77 s, ratio {:.2}×)", s, 0.77 / s);
    }
}

fn main() {
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
