//! The solver's mathematics checked in f64 on the CPU reference backend: finite-difference
//! checks of every gradient of method §3 (infeasible V, random-sign Λ) and of backprop,
//! the adjoint multipliers of method §4, monotone inner sweeps (method §6), the gradients
//! a sweep carries to the next and the fused trial terms (bit for bit), the ALM's
//! convergence on a small teacher problem, its P0-steps variant (method §7), and
//! prox-APG (monotone in (P0), zero groups kept at zero in a refit).

mod common;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sparse_alm::app::Problem;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::{Axis, Backend, LossKind, SweepCounters};
use sparse_alm::config::{load_config, AlmVariant, Config, Method};
use sparse_alm::data::Dataset;
use sparse_alm::model::Network;
use sparse_alm::problem::{DeviceData, Net, Params, Spec};
use sparse_alm::solver::inner::Lifted;
use sparse_alm::solver::measures::Evaluator;
use sparse_alm::solver::prox_grad::ProxGradOptions;
use sparse_alm::solver::{alm, baselines, Budget, Record, Recorder};

type Be = CpuBackend<f64>;

fn randn(rng: &mut ChaCha8Rng, r: usize, c: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((r, c), |_| {
        scale * <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng)
    })
}

/// A small teacher problem: regression (squared loss) or 3-class classification.
fn problem(seed: u64, sizes: &[usize], n: usize, loss: LossKind) -> (Spec, Dataset, Network) {
    let data = common::teacher_data(sizes, n, seed, seed + 100, loss);
    let spec = Spec::new(sizes.to_vec(), 0.1, 0.0, loss, Axis::Rows, Axis::Rows);
    (spec, data, Network::he_init(sizes, 0.1, seed + 7))
}

fn empty(d: &Dataset) -> Dataset {
    d.select(&[])
}

/// Central-difference check of `⟨∇f, D⟩` against `(f(x+εD) − f(x−εD))/2ε`.
fn check_fd(name: &str, analytic: f64, plus: f64, minus: f64, eps: f64) {
    let fd = (plus - minus) / (2.0 * eps);
    let err = (fd - analytic).abs() / analytic.abs().max(1e-8);
    assert!(
        err < 1e-5,
        "{name}: analytic {analytic:e} vs finite difference {fd:e} (rel err {err:e})"
    );
}

/// method §3: every gradient of L_ρ (W, b, V blocks) at an infeasible V with random-sign Λ.
fn lagrangian_gradients(loss: LossKind, axes: (Axis, Axis)) {
    let be = Be::new();
    let sizes = [4, 6, 5, 3];
    let (mut spec, train, init) = problem(1, &sizes, 37, loss);
    spec.axes = vec![axes.0, Axis::Rows, axes.1];
    let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
    let p = Params::upload(&be, &init).unwrap();
    let mut st = Lifted::new(&be, &spec, train.n(), &p, 2.5).unwrap();
    st.init_feasible(&be, &data).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    for l in 0..st.v.len() {
        let (r, c) = st.v[l].0.dim();
        st.v[l].0 = &st.v[l].0 + &randn(&mut rng, r, c, 0.3); // infeasible
        st.lam[l].0 = randn(&mut rng, r, c, 1.0); // any sign
    }
    st.recompute_u(&be, &data.x).unwrap();
    let rho = st.rho;
    alm::kkt(&be, &mut st, &data, rho).unwrap();
    let gw: Vec<_> = st.g.w.iter().map(|m| m.0.clone()).collect();
    let gb: Vec<_> = st.g.b.iter().map(|m| m.0.clone()).collect();
    let gv: Vec<_> = st.gv.iter().map(|m| m.0.clone()).collect();
    let eps = 1e-6;
    let value = |st: &mut Lifted<Be>| {
        st.recompute_u(&be, &data.x).unwrap();
        st.lagrangian(&be, &data.y).unwrap()
    };
    for l in 0..spec.layers() {
        let dw = randn(&mut rng, gw[l].nrows(), gw[l].ncols(), 1.0);
        let w0 = st.p.w[l].0.clone();
        st.p.w[l].0 = &w0 + &(eps * &dw);
        let fp = value(&mut st);
        st.p.w[l].0 = &w0 - &(eps * &dw);
        let fm = value(&mut st);
        st.p.w[l].0 = w0;
        check_fd(
            &format!("dL/dW{}", l + 1),
            (&gw[l] * &dw).sum(),
            fp,
            fm,
            eps,
        );

        let db = randn(&mut rng, gb[l].nrows(), 1, 1.0);
        let b0 = st.p.b[l].0.clone();
        st.p.b[l].0 = &b0 + &(eps * &db);
        let fp = value(&mut st);
        st.p.b[l].0 = &b0 - &(eps * &db);
        let fm = value(&mut st);
        st.p.b[l].0 = b0;
        check_fd(
            &format!("dL/db{}", l + 1),
            (&gb[l] * &db).sum(),
            fp,
            fm,
            eps,
        );
    }
    for (l, gv_l) in gv.iter().enumerate().take(st.v.len()) {
        let dv = randn(&mut rng, gv_l.nrows(), gv_l.ncols(), 1.0);
        let v0 = st.v[l].0.clone();
        st.v[l].0 = &v0 + &(eps * &dv);
        let fp = value(&mut st);
        st.v[l].0 = &v0 - &(eps * &dv);
        let fm = value(&mut st);
        st.v[l].0 = v0;
        check_fd(&format!("dL/dV{}", l + 1), (gv_l * &dv).sum(), fp, fm, eps);
    }
}

#[test]
fn lagrangian_gradients_squared_loss() {
    lagrangian_gradients(LossKind::Squared, (Axis::Rows, Axis::Rows));
}

#[test]
fn lagrangian_gradients_softmax_ce_with_column_groups() {
    lagrangian_gradients(LossKind::SoftmaxCe, (Axis::Cols, Axis::Cols));
}

/// Backprop of (P0) (method §1, §7) against finite differences of the true forward pass.
#[test]
fn backprop_gradients() {
    for loss in [LossKind::Squared, LossKind::SoftmaxCe] {
        let be = Be::new();
        let sizes = [5, 7, 4, 3];
        let (spec, train, init) = problem(2, &sizes, 29, loss);
        let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
        let mut p = Params::upload(&be, &init).unwrap();
        let mut net = Net::new(&be, &spec, train.n()).unwrap();
        net.forward(&be, &spec, &p, &data.x).unwrap();
        net.backward(&be, &spec, &p, &data.x, &data.y, 0).unwrap();
        let gw: Vec<_> = net.grad.w.iter().map(|m| m.0.clone()).collect();
        let gb: Vec<_> = net.grad.b.iter().map(|m| m.0.clone()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let eps = 1e-6;
        let f = |p: &Params<Be>, net: &mut Net<Be>| {
            net.forward(&be, &spec, p, &data.x).unwrap();
            be.loss(net.output(), &data.y, loss, 5).unwrap();
            be.read_slots(&[5]).unwrap()[0]
        };
        for l in 0..spec.layers() {
            let dw = randn(&mut rng, gw[l].nrows(), gw[l].ncols(), 1.0);
            let w0 = p.w[l].0.clone();
            p.w[l].0 = &w0 + &(eps * &dw);
            let fp = f(&p, &mut net);
            p.w[l].0 = &w0 - &(eps * &dw);
            let fm = f(&p, &mut net);
            p.w[l].0 = w0;
            check_fd(
                &format!("{loss:?} dℓ/dW{}", l + 1),
                (&gw[l] * &dw).sum(),
                fp,
                fm,
                eps,
            );
            let db = randn(&mut rng, gb[l].nrows(), 1, 1.0);
            let b0 = p.b[l].0.clone();
            p.b[l].0 = &b0 + &(eps * &db);
            let fp = f(&p, &mut net);
            p.b[l].0 = &b0 - &(eps * &db);
            let fm = f(&p, &mut net);
            p.b[l].0 = b0;
            check_fd(
                &format!("{loss:?} dℓ/db{}", l + 1),
                (&gb[l] * &db).sum(),
                fp,
                fm,
                eps,
            );
        }
    }
}

/// method §4: with the adjoint multipliers at the feasible start, ∇_W L_ρ is the (P0)
/// gradient and ∇_V L_ρ vanishes.
#[test]
fn adjoint_multipliers_give_the_p0_gradient() {
    for loss in [LossKind::Squared, LossKind::SoftmaxCe] {
        let be = Be::new();
        let sizes = [6, 8, 7, 5, 3];
        let (spec, train, init) = problem(4, &sizes, 41, loss);
        let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
        let p = Params::upload(&be, &init).unwrap();
        let mut net = Net::new(&be, &spec, train.n()).unwrap();
        net.forward(&be, &spec, &p, &data.x).unwrap();
        net.backward(&be, &spec, &p, &data.x, &data.y, 0).unwrap();
        let mut st = Lifted::new(&be, &spec, train.n(), &p, 7.0).unwrap();
        st.init_feasible(&be, &data).unwrap();
        alm::kkt(&be, &mut st, &data, 0.0).unwrap();
        for l in 0..spec.layers() {
            let (a, b) = (&st.g.w[l].0, &net.grad.w[l].0);
            let scale = b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = (a - b).iter().fold(0.0f64, |m, v| m.max(v.abs()));
            // 1e-6, not 1e-12: step sizes and 1/N cross the backend trait as f32.
            assert!(
                diff <= 1e-6 * scale,
                "{loss:?} layer {l}: ∇W L_ρ differs from ∇W (P0) by {diff:e}"
            );
            let diffb = (&st.g.b[l].0 - &net.grad.b[l].0)
                .iter()
                .fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                diffb <= 1e-6 * scale,
                "{loss:?} layer {l}: bias gradient differs by {diffb:e}"
            );
        }
        for (l, g) in st.gv.iter().enumerate() {
            let mx = g.0.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let direct = st.lam[l].0.iter().fold(0.0f64, |m, v| m.max(v.abs())) / train.n() as f64;
            assert!(
                mx <= 1e-6 * direct,
                "{loss:?}: ∇V{} L_ρ = {mx:e} at the adjoint multipliers",
                l + 1
            );
        }
    }
}

/// The lifted state at `init`'s forward pass with `V` moved off it by noise (seed
/// `seed`) and `U` recomputed: an infeasible start with the adjoint multipliers.
fn infeasible_state(
    be: &Be,
    spec: &Spec,
    train: &Dataset,
    init: &Network,
    seed: u64,
) -> (DeviceData<Be>, Lifted<Be>) {
    let data = DeviceData::upload(be, train, &empty(train)).unwrap();
    let p = Params::upload(be, init).unwrap();
    let mut st = Lifted::new(be, spec, train.n(), &p, 3.0).unwrap();
    st.init_feasible(be, &data).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for l in 0..st.v.len() {
        let (r, c) = st.v[l].0.dim();
        st.v[l].0 = &st.v[l].0 + &randn(&mut rng, r, c, 0.5);
    }
    st.recompute_u(be, &data.x).unwrap();
    (data, st)
}

/// method §6: an inner sweep never increases L_ρ (f64, λ > 0, infeasible start).
#[test]
fn inner_sweeps_never_increase_the_lagrangian() {
    let be = Be::new();
    let sizes = [5, 9, 6, 2];
    let (mut spec, train, init) = problem(5, &sizes, 64, LossKind::Squared);
    spec.lambda = 0.02;
    let (data, mut st) = infeasible_state(&be, &spec, &train, &init, 11);
    let mut prev = st.lagrangian(&be, &data.y).unwrap();
    let first = prev;
    for sweep in 0..25 {
        st.sweep(&be, &data, 2, &|_| false).unwrap();
        let now = st.lagrangian(&be, &data.y).unwrap();
        assert!(
            now <= prev + 1e-12 * prev.abs(),
            "sweep {sweep}: L_ρ rose from {prev} to {now}"
        );
        prev = now;
    }
    assert!(
        prev < 0.9 * first,
        "25 sweeps barely moved L_ρ: {first} → {prev}"
    );
}

/// method §6: the gradients a sweep's trials leave for the next sweep are the ones a fresh
/// residual pass computes: `next_sweep` gives the iterates of `sweep`, bit for bit, with
/// fewer operations (three hidden layers, so a V trial also moves a hidden `U_{l+1}`;
/// one and two Armijo steps per block).
#[test]
fn next_sweep_reuses_the_trials_gradients_exactly() {
    let sizes = [5, 9, 7, 6, 2];
    let (mut spec, train, init) = problem(8, &sizes, 70, LossKind::Squared);
    spec.lambda = 0.01;
    for k in [1, 2] {
        let run = |carry: bool| {
            let be = Be::new();
            let (data, mut st) = infeasible_state(&be, &spec, &train, &init, 12);
            let start = be.counters().dispatches;
            for sweep in 0..8 {
                if carry && sweep > 0 {
                    st.next_sweep(&be, &data, k, &|_| false).unwrap();
                } else {
                    st.sweep(&be, &data, k, &|_| false).unwrap();
                }
            }
            let ops = be.counters().dispatches - start;
            let mut mats: Vec<Array2<f64>> = Vec::new();
            for m in st.p.w.iter().chain(&st.p.b).chain(&st.v).chain(&st.u) {
                mats.push(m.0.clone());
            }
            (mats, ops)
        };
        let ((fresh, fresh_ops), (carried, carried_ops)) = (run(false), run(true));
        for (i, (a, b)) in fresh.iter().zip(&carried).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "k = {k}: matrix {i} differs between sweep and next_sweep"
            );
        }
        assert!(
            carried_ops < fresh_ops,
            "k = {k}: next_sweep ran {carried_ops} operations, sweep {fresh_ops}"
        );
    }
}

/// method §6, a sweep recorded whole (`solver/inner/speculate.rs`): each block's first
/// ladder decided by `ladder_select` instead of on the host gives the host-driven sweep's
/// iterates, trials and residuals bit for bit, on the same backend, including sweeps where
/// a ladder fails and recording resumes there; with one readback per sweep when none
/// fails, and one more per failed ladder. Two hidden layers and a softmax output (a V trial then moves a hidden `U` and the
/// output), f64 and f32.
#[test]
fn recorded_sweeps_match_host_sweeps() {
    fn check<F: sparse_alm::backend::cpu::Real>(loss: LossKind) {
        let sizes = [5, 9, 7, 3];
        let (mut spec, train, init) = problem(9, &sizes, 90, loss);
        spec.lambda = 0.01;
        let run = |record: bool| {
            let be = CpuBackend::<F>::new();
            let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
            let p = Params::upload(&be, &init).unwrap();
            let mut st = Lifted::new(&be, &spec, train.n(), &p, 3.0).unwrap();
            assert!(!st.record, "the CPU backend decides on the host by default");
            st.init_feasible(&be, &data).unwrap();
            st.record = record;
            let mut reps = Vec::new();
            let start = be.counters().readbacks;
            let mut sweeps = 0;
            for outer in 0..6 {
                st.rho *= 2.0;
                reps.push(st.sweep(&be, &data, 1, &|_| false).unwrap());
                for _ in 0..outer + 3 {
                    reps.push(st.next_sweep(&be, &data, 1, &|_| false).unwrap());
                }
                sweeps += outer + 4;
                let (_, _) = st.constraint_norm(&be, &data.y).unwrap();
            }
            let reads = be.counters().readbacks - start - 6;
            let mats: Vec<Vec<f64>> =
                st.p.w
                    .iter()
                    .chain(&st.p.b)
                    .chain(&st.v)
                    .chain(&st.u)
                    .map(|m| be.download(m).unwrap().iter().map(|&x| x as f64).collect())
                    .collect();
            let reps: Vec<(u64, usize, usize)> = reps
                .iter()
                .map(|r| (r.residual.to_bits(), r.trials, r.rejected_blocks))
                .collect();
            (mats, reps, reads, sweeps, st.passes)
        };
        let (host, recorded) = (run(false), run(true));
        let name = std::any::type_name::<F>();
        for (i, (a, b)) in host.0.iter().zip(&recorded.0).enumerate() {
            let same = a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{name} {loss:?}: matrix {i} differs between host and recorded sweeps"
            );
        }
        assert_eq!(host.1, recorded.1, "{name} {loss:?}: sweep reports differ");
        assert_eq!(
            host.4.to_bits(),
            recorded.4.to_bits(),
            "{name} {loss:?}: passes differ"
        );
        let (reads, sweeps) = (recorded.2, recorded.3 as u64);
        // Some ladders failed, and recording still saved most readbacks: a failed ladder
        // of a measured step costs its sweep one more, and a block backtracking from its
        // initial step up to 8 trials a readback (88 of 248 here, deterministic; 100 with a
        // readback per ladder there, 120 when the host also decided every resumed block's
        // ladders).
        assert!(
            reads > sweeps,
            "{name} {loss:?}: no recorded ladder failed ({reads} readbacks, {sweeps} sweeps)"
        );
        assert!(
            reads * 12 < host.2 * 5,
            "{name} {loss:?}: recorded sweeps read back {reads} times in {sweeps} sweeps, host-driven {}",
            host.2
        );
        eprintln!(
            "{name} {loss:?}: {sweeps} sweeps, readbacks host-driven {} recorded {reads}",
            host.2
        );
    }
    check::<f64>(LossKind::Squared);
    check::<f32>(LossKind::SoftmaxCe);
}

/// method §4: on a small teacher the ALM drives feas below 1e-4 and kkt down ≥ 100×, and
/// returns the best (P0) it saw.
#[test]
fn alm_converges_on_a_small_teacher() {
    let be = CpuBackend::<f64>::new();
    // One hidden layer: every block of L_ρ is then smooth except through σ(W₁X), and the
    // gradient-based kkt of method §5 can go to zero. With two or more hidden layers some
    // entries of U_{l+1} settle exactly on the kink of σ, where the V-gradient of a
    // Clarke-stationary point need not vanish, and kkt plateaus (see README, "kkt").
    let sizes = vec![6, 10, 1];
    let (_, train, init) = problem(6, &sizes, 300, LossKind::Squared);
    let mut cfg = load_config(None, &[]).unwrap();
    cfg.model.hidden = sizes[1..sizes.len() - 1].to_vec();
    cfg.train.lambda = 1e-3;
    cfg.train.max_passes = f64::INFINITY;
    cfg.alm.max_outer = 30;
    cfg.alm.kkt_tol = 1e-3;
    // method §4 as written: its kkt and feas are those of the lifted iterates.
    cfg.alm.variant = AlmVariant::Plain;
    // The teacher's own initialisation, not the config's `init_seed`.
    let problem = Problem {
        init,
        ..Problem::new(&be, &cfg, &train, &empty(&train)).unwrap()
    };
    let mut records = Vec::new();
    let mut sink = |r: &Record| records.push(r.clone());
    let res = problem.run(&be, &cfg, Method::Alm, &mut sink).unwrap();
    let last = records.last().unwrap();
    let feas = last.feas.unwrap();
    let kkt = records
        .iter()
        .filter_map(|r| r.kkt)
        .fold(f64::INFINITY, f64::min);
    assert!(
        feas < 1e-4,
        "feas {feas:e} after {} outer iterations",
        last.iter
    );
    assert!(kkt <= 1e-2, "kkt fell only to {kkt:e} (need ≥ 100×)");
    let best = records.iter().map(|r| r.p0).fold(f64::INFINITY, f64::min);
    assert!(
        (res.final_measures.p0 - best).abs() <= 1e-9 * best,
        "returned p0 {} is not the best seen {best}",
        res.final_measures.p0
    );
    assert!(
        res.final_measures.p0 < records[0].p0,
        "the ALM did not improve on its start"
    );
}

/// method §6 exact blocks: after the exact `V_{L−1}` solve the V gradient of L_ρ vanishes,
/// after the exact `(W_L, b_L)` solve its prox-gradient mapping does, and sweeps with
/// exact blocks do not increase L_ρ (to the f32 precision in which the small matrices
/// cross the backend boundary).
#[test]
fn exact_blocks_solve_their_blocks() {
    let be = Be::new();
    let sizes = [5, 9, 6, 3];
    let (mut spec, train, init) = problem(8, &sizes, 80, LossKind::Squared);
    spec.lambda = 0.01;
    let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
    let p = Params::upload(&be, &init).unwrap();
    let mut st = Lifted::new(&be, &spec, train.n(), &p, 4.0).unwrap();
    st.init_feasible(&be, &data).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    for l in 0..st.v.len() {
        let (r, c) = st.v[l].0.dim();
        st.v[l].0 = &st.v[l].0 + &randn(&mut rng, r, c, 0.5);
        st.lam[l].0 = randn(&mut rng, r, c, 0.2);
    }
    st.recompute_u(&be, &data.x).unwrap();
    st.enable_exact(&be).unwrap();
    let mut ex = st.exact.take().unwrap();
    let before = st.lagrangian(&be, &data.y).unwrap();
    st.exact_v_last(&be, &data, &mut ex).unwrap();
    let after_v = st.lagrangian(&be, &data.y).unwrap();
    assert!(
        after_v <= before + 1e-6 * before.abs(),
        "exact V raised L_ρ: {before} → {after_v}"
    );
    let rho = st.rho;
    alm::kkt(&be, &mut st, &data, rho).unwrap();
    let g = &st.gv[1].0;
    let gmax = g.iter().fold(0.0f64, |m, v| m.max(v.abs())) * train.n() as f64;
    assert!(gmax < 1e-4, "N·∇V₂ L_ρ = {gmax:e} after the exact V block");
    st.exact_w_last(&be, &data, &mut ex).unwrap();
    let after_w = st.lagrangian(&be, &data.y).unwrap();
    assert!(
        after_w <= after_v + 1e-6 * after_v.abs(),
        "exact W raised L_ρ: {after_v} → {after_w}"
    );
    alm::kkt(&be, &mut st, &data, rho).unwrap();
    // Prox-gradient mapping of the W_L block with unit step.
    let w = &st.p.w[2].0;
    let mut z = w - &st.g.w[2].0;
    for mut row in z.rows_mut() {
        let n = row.dot(&row).sqrt();
        let f = if n > spec.lambda as f64 {
            1.0 - spec.lambda as f64 / n
        } else {
            0.0
        };
        row.mapv_inplace(|v| v * f);
    }
    let map = (w - &z).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let gb = st.g.b[2].0.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(
        map < 1e-5 && gb < 1e-5,
        "W_L block not solved: mapping {map:e}, ∇b {gb:e}"
    );
    st.exact = Some(ex);
    let mut prev = after_w;
    for sweep in 0..10 {
        st.sweep(&be, &data, 2, &|_| false).unwrap();
        let now = st.lagrangian(&be, &data.y).unwrap();
        assert!(
            now <= prev + 1e-6 * prev.abs(),
            "sweep {sweep} with exact blocks raised L_ρ: {prev} → {now}"
        );
        prev = now;
    }
}

/// The built-in config resized for a small teacher problem of `sizes` at λ.
fn small_config(sizes: &[usize], lambda: f64, passes: f64) -> Config {
    let mut cfg = load_config(None, &[]).unwrap();
    cfg.model.hidden = sizes[1..sizes.len() - 1].to_vec();
    cfg.train.lambda = lambda;
    cfg.train.max_passes = passes;
    cfg
}

/// Run `method` on the f64 backend from the teacher's own initialisation; the records and
/// the returned network's (P0) and cert.
fn run_small(
    cfg: &Config,
    method: Method,
    sizes: &[usize],
    seed: u64,
    n: usize,
) -> (Vec<Record>, f64, f64) {
    let be = Be::new();
    let (_, train, init) = problem(seed, sizes, n, LossKind::Squared);
    let problem = Problem {
        init,
        ..Problem::new(&be, cfg, &train, &empty(&train)).unwrap()
    };
    let mut records = Vec::new();
    let mut sink = |r: &Record| records.push(r.clone());
    let res = problem.run(&be, cfg, method, &mut sink).unwrap();
    (records, res.final_measures.p0, res.cert)
}

/// method §7: prox-APG's returned point never increases (P0) (the monotone restart), and
/// it beats prox-GD at equal passes on a small teacher.
#[test]
fn prox_apg_is_monotone_in_p0() {
    let sizes = [8, 16, 12, 1];
    let cfg = small_config(&sizes, 2e-3, 300.0);
    let (recs, p0, _) = run_small(&cfg, Method::ProxApg, &sizes, 21, 400);
    assert!(recs.len() >= 50, "only {} records", recs.len());
    for w in recs.windows(2) {
        assert!(
            w[1].p0 <= w[0].p0 * (1.0 + 1e-12),
            "(P0) rose from {} to {} (passes {:.1} → {:.1})",
            w[0].p0,
            w[1].p0,
            w[0].passes,
            w[1].passes
        );
    }
    let (_, p0_gd, _) = run_small(&cfg, Method::ProxGd, &sizes, 21, 400);
    assert!(
        p0 < p0_gd,
        "prox-APG (P0) {p0} is not below prox-GD's {p0_gd} at equal passes"
    );
}

/// method §9 refit: with `keep_zero_groups`, rows that are zero at the start stay zero
/// under prox-APG and prox-GD; without it the same rows revive (their gradient norm
/// exceeds λ), so the flag is what keeps them.
#[test]
fn keep_zero_groups_keeps_zero_rows_zero() {
    let be = Be::new();
    let sizes = [6, 12, 8, 2];
    let (spec, train, mut init) = problem(13, &sizes, 200, LossKind::Squared);
    let mut spec = spec;
    spec.lambda = 1e-4;
    let dead = [(0usize, 1usize), (0, 5), (1, 2)];
    for &(l, i) in &dead {
        init.w[l].row_mut(i).fill(0.0);
    }
    let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
    for method in ["gd", "apg"] {
        for keep in [true, false] {
            let mut eval = Evaluator::new(&be, &spec, &data).unwrap();
            let mut p = Params::upload(&be, &init).unwrap();
            let mut sink = |_: &Record| {};
            let mut rec = Recorder::new(&mut eval, 1.0, Method::ProxApg, 0.0, &mut sink);
            let mut budget = Budget::new(60.0, f64::INFINITY);
            let opts = ProxGradOptions {
                step0: 1.0,
                keep_zero_groups: keep,
            };
            let run = match method {
                "gd" => baselines::prox_gd,
                _ => baselines::prox_apg,
            };
            run(&be, &spec, opts, &data, &mut p, &mut budget, &mut rec).unwrap();
            let net = p.download(&be, spec.alpha).unwrap();
            let zero = |l: usize, i: usize| net.w[l].row(i).iter().all(|&v| v == 0.0);
            let kept = dead.iter().filter(|&&(l, i)| zero(l, i)).count();
            if keep {
                assert_eq!(kept, dead.len(), "{method}: a zero row revived");
            } else {
                assert!(
                    kept < dead.len(),
                    "{method}: no zero row revived without the flag"
                );
            }
        }
    }
}

/// method §7 variant: the P0-steps ALM returns the W whose (P0) is the best recorded, and
/// its trace differs from the plain variant's.
#[test]
fn p0_steps_alm_returns_the_best_recorded_w() {
    let sizes = [8, 16, 12, 1];
    let mut cfg = small_config(&sizes, 2e-3, 400.0);
    assert_eq!(cfg.alm.variant, AlmVariant::P0Steps, "the default variant");
    let (recs, p0, _) = run_small(&cfg, Method::Alm, &sizes, 22, 300);
    assert!(recs.len() >= 5, "only {} outer iterations", recs.len());
    let best = recs.iter().map(|r| r.p0).fold(f64::INFINITY, f64::min);
    assert!(
        (p0 - best).abs() <= 1e-9 * best,
        "returned (P0) {p0} is not the best recorded {best}"
    );
    assert!(p0 < recs[0].p0, "no progress from the start");
    cfg.alm.variant = AlmVariant::Plain;
    let (plain, _, _) = run_small(&cfg, Method::Alm, &sizes, 22, 300);
    assert!(
        recs.iter().zip(&plain).skip(1).any(|(a, b)| a.p0 != b.p0),
        "the P0-steps trace equals the plain one"
    );
}

/// method §7 variant on a small warm-started teacher: the default P0-steps polish ends
/// with a better certificate than the plain ALM's, at (P0) within 1%.
#[test]
fn p0_steps_polish_improves_cert_on_a_small_teacher() {
    let sizes = [8, 16, 12, 1];
    let mut cfg = small_config(&sizes, 2e-3, 300.0);
    cfg.sgd.lr = 0.05;
    cfg.sgd.momentum = 0.0;
    cfg.sgd.batch = 32;
    let (_, p0_steps, cert_steps) = run_small(&cfg, Method::WarmAlm, &sizes, 23, 400);
    cfg.alm.variant = AlmVariant::Plain;
    let (_, p0_plain, cert_plain) = run_small(&cfg, Method::WarmAlm, &sizes, 23, 400);
    eprintln!(
        "p0-steps: p0 {p0_steps} cert {cert_steps:e}; plain: p0 {p0_plain} cert {cert_plain:e}"
    );
    assert!(
        cert_steps < cert_plain,
        "cert {cert_steps:e} (p0-steps) not below {cert_plain:e} (plain)"
    );
    assert!(
        p0_steps <= 1.01 * p0_plain,
        "(P0) {p0_steps} (p0-steps) vs {p0_plain} (plain)"
    );
}

/// method §6/§7: `step_diff` is the difference `axpby(Δ, 1, new, −1, old)` writes and the
/// sums `dot(g, Δ)` and `sq_norm(Δ)` take of it, bit for bit (so the line searches that
/// use it keep their iterates), at sizes around the lanes and past a parallel chunk; a
/// changed input changes the sums.
#[test]
fn step_diff_is_axpby_dot_and_sq_norm_bit_for_bit() {
    let be = CpuBackend::<f32>::new();
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for (r, c) in [(1usize, 1usize), (1, 63), (5, 13), (1, 257), (3, 30_000)] {
        let m = |rng: &mut ChaCha8Rng| randn(rng, r, c, 1.0).mapv(|v| v as f32);
        let (new, old, g) = (m(&mut rng), m(&mut rng), m(&mut rng));
        let (new, old, g) = (
            be.upload(new.view()).unwrap(),
            be.upload(old.view()).unwrap(),
            be.upload(g.view()).unwrap(),
        );
        let (mut fused, mut apart) = (be.zeros(r, c).unwrap(), be.zeros(r, c).unwrap());
        be.step_diff(&mut fused, &new, &old, &g, 0).unwrap();
        be.axpby(&mut apart, 1.0, &new, -1.0, &old).unwrap();
        be.dot(&g, &apart, 2).unwrap();
        be.sq_norm(&apart, 3).unwrap();
        let s = be.read_slots(&[0, 1, 2, 3]).unwrap();
        let bits = |a: &Array2<f32>| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&fused.0), bits(&apart.0), "{r}×{c}: Δ");
        assert_eq!(s[0].to_bits(), s[2].to_bits(), "{r}×{c}: ⟨g, Δ⟩");
        assert_eq!(s[1].to_bits(), s[3].to_bits(), "{r}×{c}: ‖Δ‖²");
        be.step_diff(&mut fused, &new, &g, &g, 0).unwrap();
        let t = be.read_slots(&[0, 1]).unwrap();
        assert_ne!(
            (t[0].to_bits(), t[1].to_bits()),
            (s[2].to_bits(), s[3].to_bits())
        );
    }
}

/// `--verbose`'s per-sweep counters: the ALM tallies every inner sweep the records count
/// (warm-started or not), each with its own work (at least one readback: its residual),
/// and a baseline has no sweeps.
#[test]
fn alm_tallies_its_inner_sweeps() {
    let sizes = [8, 16, 12, 1];
    let cfg = small_config(&sizes, 2e-3, 400.0);
    let be = Be::new();
    let (_, train, init) = problem(23, &sizes, 300, LossKind::Squared);
    let problem = Problem {
        init,
        ..Problem::new(&be, &cfg, &train, &empty(&train)).unwrap()
    };
    for method in [Method::Alm, Method::WarmAlm, Method::ProxGd] {
        let before = be.counters();
        let mut records = Vec::new();
        let mut sink = |r: &Record| records.push(r.clone());
        let res = problem.run(&be, &cfg, method, &mut sink).unwrap();
        let all = be.counters().since(before);
        let counted: usize = records.iter().filter_map(|r| r.sweeps).sum();
        assert_eq!(res.sweeps.sweeps as usize, counted, "{method}: sweeps");
        let w = res.sweeps.work;
        if method == Method::ProxGd {
            assert_eq!(
                res.sweeps,
                SweepCounters::default(),
                "{method} has no sweeps"
            );
            continue;
        }
        assert!(counted >= 3, "{method}: only {counted} sweeps");
        assert!(w.readbacks >= res.sweeps.sweeps, "{method}: {w:?}");
        assert!(w.dispatches > 10 * res.sweeps.sweeps, "{method}: {w:?}");
        // The outer loop (KKT measures, records, warm start) does work of its own.
        assert!(
            w.dispatches < all.dispatches && w.readbacks < all.readbacks,
            "{method}"
        );
    }
}
