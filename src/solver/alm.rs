//! method §4: the outer loop of the inexact augmented Lagrangian method, on the host.
//! Inner solves (§6, `inner/`) to a tolerance `ε_k` relative to the run's first sweep,
//! the multiplier update `Λ ← Λ + ρH`, the ρ rule (never decreased; block steps follow),
//! the ε schedule, recomputing `U` each outer iteration, best-W bookkeeping by true (P0),
//! and the stopping rules (KKT tolerance, outer iterations, passes, seconds).

use super::inner::Lifted;
use super::slots::{Readback, DISCARD, H2, KKT_GRAD_V, KKT_MAP_B, KKT_MAP_W, KKT_PIECE, SIGMA2};
use super::{Budget, Recorder};
use crate::backend::{BResult, Backend};
use crate::config::AlmConfig;
use crate::problem::{prox_mapping_sq, DeviceData, Params, Spec};

/// The Lagrangian's prox-gradient mapping of method §5 (unit step for W/b, V part scaled by
/// N) together with the constraint residual, at the current point and multipliers.
/// With `rho = 0` this is the plain Lagrangian, whose gradient at the updated multipliers
/// `Λ⁺ = Λ + ρH` equals the inner problem's: the KKT residual of (LE). With `rho = ρ` it
/// is the gradient of `L_ρ` itself (the gradient tests use that). Returns
/// `(kkt_abs, ‖H‖, ‖σ(U)‖)`. Leaves fresh `H` in the state's workspace.
pub fn kkt<B: Backend>(
    be: &B,
    st: &mut Lifted<B>,
    data: &DeviceData<B>,
    rho: f64,
) -> BResult<(f64, f64, f64)> {
    let layers = st.spec.layers();
    let lam = st.spec.lambda;
    let n = st.n as f64;
    for l in 0..layers {
        st.piece_grad(be, l, &data.y, KKT_PIECE.at(l), rho)?;
    }
    let mut rb = Readback::new();
    for l in 0..layers {
        let input = if l == 0 { &data.x } else { &st.v[l - 1] };
        be.matmul_nt(&mut st.g.w[l], &st.gu[l], input, 0.0)?;
        be.row_sum(&mut st.g.b[l], &st.gu[l], 0.0)?;
        st.passes += st.spec.pass_fraction(l, st.n, st.n);
        let scratch = (&mut st.trial.w[l], &mut st.diff.w[l], &mut st.shrink[l]);
        prox_mapping_sq(
            be,
            &st.p.w[l],
            &st.g.w[l],
            lam,
            st.spec.axes[l],
            scratch,
            KKT_MAP_W.at(l),
            DISCARD.slot(),
        )?;
        be.sq_norm(&st.g.b[l], KKT_MAP_B.at(l))?;
        rb.slot(KKT_MAP_W.at(l)).slot(KKT_MAP_B.at(l));
        if l + 1 < layers {
            be.matmul_tn(&mut st.gv[l], &st.p.w[l + 1], &st.gu[l + 1], 1.0)?;
            st.passes += st.spec.pass_fraction(l + 1, st.n, st.n);
            be.sq_norm(&st.gv[l], KKT_GRAD_V.at(l))?;
            rb.slot(KKT_GRAD_V.at(l))
                .slot(KKT_PIECE.part(l, H2))
                .slot(KKT_PIECE.part(l, SIGMA2));
        }
    }
    let v = rb.read(be)?;
    let (mut k2, mut hh, mut ss) = (0.0, 0.0, 0.0);
    for l in 0..layers {
        k2 += v.get(KKT_MAP_W.at(l)) + v.get(KKT_MAP_B.at(l));
        if l + 1 < layers {
            k2 += n * n * v.get(KKT_GRAD_V.at(l));
            hh += v.get(KKT_PIECE.part(l, H2));
            ss += v.get(KKT_PIECE.part(l, SIGMA2));
        }
    }
    Ok(((k2 + hh).sqrt(), hh.sqrt(), ss.sqrt()))
}

/// Run the ALM from the parameters in `p` (which on return hold the best W by true (P0)).
#[allow(clippy::too_many_arguments)]
pub fn run<B: Backend>(
    be: &B,
    spec: &Spec,
    cfg: &AlmConfig,
    rho0: f64,
    data: &DeviceData<B>,
    p: &mut Params<B>,
    budget: &mut Budget,
    rec: &mut Recorder<'_, B>,
) -> BResult<()> {
    let mut st = Lifted::new(be, spec, data.n, p, rho0)?;
    if cfg.exact_blocks {
        st.enable_exact(be)?;
    }
    let mut best = Params::zeros_like(be, spec)?;
    best.assign(be, p)?;
    st.init_feasible(be, data)?;
    let (kkt0, _, _) = kkt(be, &mut st, data, 0.0)?;
    let kkt0 = if kkt0 > 0.0 { kkt0 } else { 1.0 };
    let charge = |st: &mut Lifted<B>, budget: &mut Budget| {
        budget.passes += st.passes;
        st.passes = 0.0;
    };
    charge(&mut st, budget);
    let m0 = rec.record(be, &st.p, data, budget, "alm", 0, |r| {
        r.feas = Some(0.0);
        r.kkt = Some(1.0);
        r.rho = Some(st.rho);
        r.sweeps = Some(0);
    })?;
    let mut best_p0 = m0.p0;
    let mut eps = cfg.eps0;
    let mut r_ref: Option<f64> = None;
    let mut h_prev = f64::INFINITY;
    for k in 1..=cfg.max_outer {
        if budget.spent() {
            break;
        }
        // Inner phase (method §6): sweeps until residual ≤ ε_k · (first sweep's residual).
        let mut sweeps = 0;
        for _ in 0..cfg.inner_cap {
            let stop = |spent: f64| {
                let mut b = budget.clone();
                b.passes += spent;
                b.spent()
            };
            let rep = st.sweep(be, data, cfg.block_steps, &stop)?;
            charge(&mut st, budget);
            sweeps += 1;
            if rep.stopped {
                break;
            }
            let r0 = *r_ref.get_or_insert(rep.residual.max(f64::MIN_POSITIVE));
            if rep.residual <= eps * r0 || budget.spent() {
                break;
            }
        }
        // Multiplier update with the residual at the inner solution (elementwise only).
        let h_norm = st.constraint_norm(be, &data.y)?;
        for l in 0..st.lam.len() {
            be.multiplier_update(&mut st.lam[l], &st.h[l], st.rho as f32)?;
        }
        if h_norm > cfg.tau * h_prev {
            st.rho *= cfg.gamma;
            for t in st.step_w.iter_mut().chain(st.step_v.iter_mut()) {
                *t /= cfg.gamma;
            }
        }
        h_prev = h_norm;
        eps = (cfg.theta * eps).max(cfg.eps_min);
        st.recompute_u(be, &data.x)?;
        let (kkt_abs, h_norm, su_norm) = kkt(be, &mut st, data, 0.0)?;
        charge(&mut st, budget);
        // The true forward pass for best-W bookkeeping is part of the method's work.
        budget.passes += (0..spec.layers())
            .map(|l| spec.pass_fraction(l, data.n, data.n))
            .sum::<f64>();
        let rel_kkt = kkt_abs / kkt0;
        let rho = st.rho;
        let m = rec.record(be, &st.p, data, budget, "alm", k, |r| {
            r.feas = Some(if su_norm > 0.0 {
                h_norm / su_norm
            } else {
                h_norm
            });
            r.kkt = Some(rel_kkt);
            r.rho = Some(rho);
            r.sweeps = Some(sweeps);
            r.best_p0 = r.p0.min(best_p0);
        })?;
        if m.p0 < best_p0 {
            best_p0 = m.p0;
            best.assign(be, &st.p)?;
        }
        if rel_kkt <= cfg.kkt_tol {
            break;
        }
    }
    p.assign(be, &best)?;
    Ok(())
}
