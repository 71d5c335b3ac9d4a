//! Per-kernel GPU vs CPU benchmarks at the three layer sizes of the project:
//! digits (64→100, N = 1437), teacher (50→64, N = 5000) and a Fashion-MNIST layer
//! (784→256, N = 60000), two output layers (`digits-out` 100→10 on the GPU's narrow
//! matmul tile, `teacher-out` 32→1 one element per invocation) and the square 1024³
//! (`square`): matmul NN (`U = W V + b1ᵀ`), NT
//! (`G_U Vᵀ`), TN (`Wᵀ G_U`), the constraint residual kernel and group_prox.
//!
//! Two parts, both in one run:
//! 1. criterion groups (`sample_size(10)`, short windows), for Fashion and the square
//!    only when the adapter is not a CPU (software) one, since a single one of their
//!    matmuls takes about a second or more there;
//! 2. a summary table measured by a plain timing loop over all three sizes: GFLOP/s for
//!    matmuls, GB/s (bytes read + written) for residual and group_prox, and the GPU/CPU
//!    ratio of the same run.
//!
//! 3. one whole inner sweep of the ALM (method §6, k = 1) on the digits, teacher and
//!    Fashion-MNIST networks: passes charged, CPU and GPU milliseconds, the ratio, and the
//!    dispatches and readbacks per sweep (fewest and mean; the GPU records a sweep whole
//!    and reads back once unless a device-decided ladder failed). The sweep timed is the
//!    inner loop's usual one, following another (`next_sweep`: it starts from the
//!    gradients the previous sweep's trials wrote).
//!
//! GPU timings include recording, submission and waiting (`sync` after a batch of ops).
//! `SPARSE_ALM_BENCH_SIZES=digits,teacher` restricts the sizes (names as above).

use criterion::{criterion_group, criterion_main, Criterion};
use ndarray::Array2;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::gpu::{GpuBackend, GpuOptions};
use sparse_alm::backend::{Axis, Backend, Grads, Residual};
use std::time::{Duration, Instant};

#[derive(Clone, Copy)]
struct Case {
    name: &'static str,
    d_in: usize,
    d_out: usize,
    n: usize,
}

const CASES: [Case; 6] = [
    Case {
        name: "digits",
        d_in: 64,
        d_out: 100,
        n: 1437,
    },
    Case {
        name: "teacher",
        d_in: 50,
        d_out: 64,
        n: 5000,
    },
    Case {
        name: "fashion",
        d_in: 784,
        d_out: 256,
        n: 60000,
    },
    // Output layers (at most 16 rows: the GPU's narrow matmul tile).
    Case {
        name: "digits-out",
        d_in: 100,
        d_out: 10,
        n: 1437,
    },
    Case {
        name: "teacher-out",
        d_in: 32,
        d_out: 1,
        n: 5000,
    },
    // The usual square reference (1024³), for comparison with published matmul figures.
    Case {
        name: "square",
        d_in: 1024,
        d_out: 1024,
        n: 1024,
    },
];

const KERNELS: [&str; 5] = [
    "matmul_nn",
    "matmul_nt",
    "matmul_tn",
    "residual",
    "group_prox",
];

fn cases() -> Vec<Case> {
    match std::env::var("SPARSE_ALM_BENCH_SIZES") {
        Ok(s) => CASES
            .iter()
            .copied()
            .filter(|c| s.split(',').any(|x| x.trim() == c.name))
            .collect(),
        Err(_) => CASES.to_vec(),
    }
}

/// Deterministic pseudo-random fill (no RNG state needed across backends).
fn host(r: usize, c: usize, seed: u64) -> Array2<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    Array2::from_shape_simple_fn((r, c), || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    })
}

struct Mats<B: Backend> {
    w: B::Mat,
    b: B::Mat,
    v: B::Mat,
    u: B::Mat,
    vo: B::Mat,
    lam: B::Mat,
    gu: B::Mat,
    gv: B::Mat,
    g: B::Mat,
    bt: B::Mat,
    shrink: B::Mat,
}

fn setup<B: Backend>(be: &B, c: Case) -> Mats<B> {
    let up = |a: Array2<f32>| be.upload(a.view()).expect("upload");
    let z = |r, k| be.zeros(r, k).expect("zeros");
    Mats {
        w: up(host(c.d_out, c.d_in, 1)),
        b: up(host(c.d_out, 1, 2)),
        v: up(host(c.d_in, c.n, 3)),
        u: up(host(c.d_out, c.n, 4)),
        vo: up(host(c.d_out, c.n, 5)),
        lam: up(host(c.d_out, c.n, 6)),
        gu: up(host(c.d_out, c.n, 7)),
        gv: z(c.d_out, c.n),
        g: z(c.d_out, c.d_in),
        bt: z(c.d_in, c.n),
        shrink: z(c.d_out, 1),
    }
}

fn run<B: Backend>(be: &B, m: &mut Mats<B>, kernel: &str, c: Case) {
    let r = match kernel {
        "matmul_nn" => be.matmul_nn(&mut m.u, &m.w, &m.v, Some(&m.b), 0.0),
        "matmul_nt" => be.matmul_nt(&mut m.g, &m.gu, &m.v, 0.0),
        "matmul_tn" => be.matmul_tn(&mut m.bt, &m.w, &m.gu, 0.0),
        "residual" => be.constraint_residual(
            &m.u,
            &m.vo,
            &m.lam,
            Residual {
                rho: 3.0,
                alpha: 0.1,
                inv_n: 1.0 / c.n as f32,
                write: Grads::Both,
            },
            &mut m.gu,
            &mut m.gv,
            0,
        ),
        // A tiny threshold keeps W (mostly) non-zero across repetitions.
        "group_prox" => be.group_prox(&mut m.w, 1e-6, Axis::Rows, &mut m.shrink, 3),
        _ => unreachable!(),
    };
    r.expect(kernel);
}

/// Work of one call: (amount, unit) — flops for matmuls, bytes moved otherwise.
fn work(kernel: &str, c: Case) -> (f64, &'static str) {
    let (i, o, n) = (c.d_in as f64, c.d_out as f64, c.n as f64);
    match kernel {
        "matmul_nn" | "matmul_nt" | "matmul_tn" => (2.0 * o * i * n, "GFLOP/s"),
        "residual" => (5.0 * 4.0 * o * n, "GB/s"),
        "group_prox" => (3.0 * 4.0 * o * i, "GB/s"),
        _ => unreachable!(),
    }
}

/// Seconds per call: one call to size a batch, then the best of 3 batches (each ends with
/// `sync`) within about `budget`.
fn time_per_call<B: Backend>(
    be: &B,
    m: &mut Mats<B>,
    kernel: &str,
    c: Case,
    budget: Duration,
) -> f64 {
    let t0 = Instant::now();
    run(be, m, kernel, c);
    be.sync().expect("sync");
    let first = t0.elapsed().as_secs_f64();
    // The first call also pays first-touch costs; only a call that is slow by itself
    // (a Fashion matmul on a software adapter: seconds) is reported from one sample.
    if first > 2.0 {
        return first;
    }
    let reps = ((budget.as_secs_f64() / 3.0 / first) as usize).clamp(1, 500);
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let t = Instant::now();
        for _ in 0..reps {
            run(be, m, kernel, c);
        }
        be.sync().expect("sync");
        best = best.min(t.elapsed().as_secs_f64() / reps as f64);
    }
    best
}

fn open_gpu() -> Option<GpuBackend> {
    match GpuBackend::new(GpuOptions::from_env()) {
        Ok(g) => Some(g),
        Err(e) => {
            eprintln!("*** SKIPPED GPU benches: {e}");
            None
        }
    }
}

fn benches(crit: &mut Criterion) {
    let cpu = CpuBackend::<f32>::new();
    let gpu = open_gpu();
    let software = gpu
        .as_ref()
        .is_some_and(|g| g.adapter_info().device_type == "Cpu");
    if let Some(g) = &gpu {
        println!("GPU adapter: {}", g.adapter_info());
    }
    println!("CPU backend: {}", cpu.name());

    // Part 1: criterion.
    for c in cases() {
        let mut cm = setup(&cpu, c);
        let mut gm = gpu.as_ref().map(|g| setup(g, c));
        let mut group = crit.benchmark_group(c.name);
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(200))
            .measurement_time(Duration::from_secs(1));
        for k in KERNELS {
            let slow = c.name == "fashion" || c.name == "square";
            if !slow {
                group.bench_function(format!("cpu/{k}"), |bch| {
                    bch.iter(|| run(&cpu, &mut cm, k, c))
                });
            }
            if let (Some(g), Some(gm)) = (&gpu, gm.as_mut()) {
                if slow && software {
                    continue;
                }
                group.bench_function(format!("gpu/{k}"), |bch| {
                    bch.iter_custom(|iters| {
                        let t = Instant::now();
                        for _ in 0..iters {
                            run(g, gm, k, c);
                        }
                        g.sync().expect("sync");
                        t.elapsed()
                    })
                });
            }
        }
        group.finish();
    }

    // Part 2: the summary table, measured in this run.
    println!();
    println!(
        "{:<8} {:<11} {:>12} {:>12} {:>10} {:>9}  unit",
        "size", "kernel", "cpu ms", "gpu ms", "gpu rate", "speedup"
    );
    for c in cases() {
        let budget = Duration::from_millis(if c.name == "fashion" { 500 } else { 300 });
        let mut cm = setup(&cpu, c);
        let mut gm = gpu.as_ref().map(|g| setup(g, c));
        for k in KERNELS {
            let tc = time_per_call(&cpu, &mut cm, k, c, budget);
            let (amount, unit) = work(k, c);
            let (tg, rate, ratio) = match (&gpu, gm.as_mut()) {
                (Some(g), Some(gm)) => {
                    let tg = time_per_call(g, gm, k, c, budget);
                    (tg * 1e3, amount / tg / 1e9, tc / tg)
                }
                _ => (f64::NAN, f64::NAN, f64::NAN),
            };
            println!(
                "{:<8} {:<11} {:>12.3} {:>12.3} {:>10.2} {:>9.3}  {unit} (cpu {:.2})",
                c.name,
                k,
                tc * 1e3,
                tg,
                rate,
                ratio,
                amount / tc / 1e9
            );
        }
    }
    if let Some(g) = &gpu {
        let k = g.counters();
        println!(
            "GPU counters: {} dispatches, {} submits, {} readbacks",
            k.dispatches, k.submits, k.readbacks
        );
    }

    // Part 3: one whole inner sweep (method §6, k = 1) of the ALM on the three networks.
    println!();
    println!(
        "{:<8} {:<16} {:>8} {:>10} {:>10} {:>8} {:>15} {:>13}",
        "size", "network", "passes", "cpu ms", "gpu ms", "speedup", "dispatches", "readbacks"
    );
    for (name, sizes, n) in [
        ("digits", vec![64, 100, 100, 10], 1437),
        ("teacher", vec![50, 64, 32, 1], 5000),
        ("fashion", vec![784, 256, 256, 10], 60000),
    ] {
        if !cases().iter().any(|c| c.name == name) {
            continue;
        }
        let (tc, passes, _) = sweep_time(&cpu, &sizes, n);
        let gpu_part = match &gpu {
            Some(g) if !(software && name == "fashion") => Some(sweep_time(g, &sizes, n)),
            _ => None,
        };
        let net = sizes
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
            .join("-");
        match gpu_part {
            Some((tg, _, (disp, reads))) => println!(
                "{name:<8} {net:<16} {passes:>8.2} {:>10.2} {:>10.2} {:>8.3} {:>15} {:>13}",
                tc * 1e3,
                tg * 1e3,
                tc / tg,
                format!("{} (avg {:.1})", disp.0, disp.1),
                format!("{} (avg {:.1})", reads.0, reads.1),
            ),
            None => println!(
                "{name:<8} {net:<16} {passes:>8.2} {:>10.2} {:>10} {:>8} {:>15} {:>13}",
                tc * 1e3,
                "-",
                "-",
                "-",
                "-"
            ),
        }
    }
}

/// Per-sweep counts: the fewest (a sweep whose recorded ladders all passed) and the mean.
type PerSweep = (u64, f64);

/// Median seconds of one inner sweep (after another) on random data, the passes it
/// charges, and the dispatches and readbacks it issues per sweep (fewest and mean over
/// [`SWEEPS`] sweeps: on a GPU a sweep whose device-decided ladder failed reads back again
/// and records the rest of the sweep anew).
fn sweep_time<B: Backend>(be: &B, sizes: &[usize], n: usize) -> (f64, f64, (PerSweep, PerSweep)) {
    use sparse_alm::backend::LossKind;
    use sparse_alm::config::Task;
    use sparse_alm::data::Dataset;
    use sparse_alm::model::Network;
    use sparse_alm::problem::{DeviceData, Params, Spec};
    use sparse_alm::solver::inner::Lifted;
    let (d, m) = (sizes[0], *sizes.last().unwrap());
    let x = host(d, n, 7);
    let mut y = Array2::<f32>::zeros((m, n));
    for j in 0..n {
        y[[(j * 7 + j / 3) % m, j]] = 1.0;
    }
    let train = Dataset {
        x,
        y,
        labels: None,
        task: Task::Classification,
        feature_names: vec![],
        class_names: vec![],
        target_std: None,
    };
    let empty = train.select(&[]);
    let spec = Spec::new(
        sizes.to_vec(),
        0.1,
        1e-3,
        LossKind::Squared,
        Axis::Rows,
        Axis::Rows,
    );
    let data = DeviceData::upload(be, &train, &empty).expect("upload");
    let p = Params::upload(be, &Network::he_init(sizes, 0.1, 1)).expect("params");
    let mut st = Lifted::new(be, &spec, n, &p, 3.0).expect("state");
    st.init_feasible(be, &data).expect("init");
    st.sweep(be, &data, 1, &|_| false).expect("warm-up sweep");
    be.sync().expect("sync");
    let mut times = Vec::new();
    let mut passes = 0.0;
    let (mut disp, mut reads) = (Vec::new(), Vec::new());
    for _ in 0..SWEEPS {
        st.passes = 0.0;
        let before = be.counters();
        let t = Instant::now();
        st.next_sweep(be, &data, 1, &|_| false).expect("sweep");
        be.sync().expect("sync");
        times.push(t.elapsed().as_secs_f64());
        let after = be.counters();
        disp.push(after.dispatches - before.dispatches);
        reads.push(after.readbacks - before.readbacks);
        passes = st.passes;
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let per = |v: &[u64]| {
        let mean = v.iter().sum::<u64>() as f64 / v.len() as f64;
        (*v.iter().min().unwrap(), mean)
    };
    (times[SWEEPS / 2], passes, (per(&disp), per(&reads)))
}

/// Sweeps timed per network (median reported).
const SWEEPS: usize = 5;

criterion_group!(kernels, benches);
criterion_main!(kernels);
