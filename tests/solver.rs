//! The solver's mathematics checked in f64 on the CPU reference backend: finite-difference
//! checks of every gradient of method §3 (infeasible V, random-sign Λ) and of backprop,
//! the adjoint multipliers of method §4, monotone inner sweeps (method §6), and the ALM's
//! convergence on a small teacher problem.

mod common;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sparse_alm::app::Problem;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::{Axis, Backend, LossKind};
use sparse_alm::config::{load_config, Method};
use sparse_alm::data::Dataset;
use sparse_alm::model::Network;
use sparse_alm::problem::{DeviceData, Net, Params, Spec};
use sparse_alm::solver::inner::Lifted;
use sparse_alm::solver::{alm, Record};

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

/// method §6: an inner sweep never increases L_ρ (f64, λ > 0, infeasible start).
#[test]
fn inner_sweeps_never_increase_the_lagrangian() {
    let be = Be::new();
    let sizes = [5, 9, 6, 2];
    let (mut spec, train, init) = problem(5, &sizes, 64, LossKind::Squared);
    spec.lambda = 0.02;
    let data = DeviceData::upload(&be, &train, &empty(&train)).unwrap();
    let p = Params::upload(&be, &init).unwrap();
    let mut st = Lifted::new(&be, &spec, train.n(), &p, 3.0).unwrap();
    st.init_feasible(&be, &data).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    for l in 0..st.v.len() {
        let (r, c) = st.v[l].0.dim();
        st.v[l].0 = &st.v[l].0 + &randn(&mut rng, r, c, 0.5);
    }
    st.recompute_u(&be, &data.x).unwrap();
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
