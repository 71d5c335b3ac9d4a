//! method §4: the outer loop of the inexact augmented Lagrangian method, on the host.
//! Inner solves (§6, `inner/`) to a tolerance `ε_k` relative to the run's first sweep,
//! the multiplier update `Λ ← Λ + ρH`, the ρ rule (never decreased; block steps follow),
//! the ε schedule, recomputing `U` each outer iteration, best-W bookkeeping by true (P0),
//! and the stopping rules (KKT tolerance, outer iterations, passes, seconds). Also the
//! variant of method §7, "P0 steps with a feasible restart": after the ρ rule, a few
//! Armijo prox-gradient steps on (P0) itself (the step of `prox_grad.rs`), then `V` =
//! forward pass and `Λ` = adjoint multipliers.

use super::checkpoint::SolverState;
use super::inner::Lifted;
use super::prox_grad::{p0_at, ProxGradStep};
use super::slots::{
    Readback, DISCARD, GD_LOSS, H2, KKT_GRAD_V, KKT_MAP_B, KKT_MAP_W, KKT_PIECE, SIGMA2,
};
use super::{Budget, Recorder};
use crate::backend::{BResult, Backend, Grads};
use crate::config::{AlmConfig, AlmVariant};
use crate::problem::{prox_mapping_sq, DeviceData, Net, Params, Spec};
use crate::Result;

/// The Lagrangian's prox-gradient mapping of method §5 (unit step for W/b, V part scaled by
/// N) together with the constraint residual, at the current point and multipliers.
/// With `rho = 0` this is the plain Lagrangian, whose gradient at the updated multipliers
/// `Λ⁺ = Λ + ρH` equals the inner problem's: the KKT residual of (LE). With `rho = ρ` it
/// is the gradient of `L_ρ` itself (the gradient tests use that). Returns
/// `(kkt_abs, ‖H‖, ‖σ(U)‖)`. Overwrites the gradient workspaces.
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
        st.piece_grad(be, l, &data.y, (KKT_PIECE.at(l), rho), Grads::Both)?;
    }
    let mut rb = Readback::new();
    for l in 0..layers {
        let input = if l == 0 { &data.x } else { &st.v[l - 1] };
        be.weight_grads(&mut st.g.w[l], &mut st.g.b[l], &st.gu[l], input)?;
        st.passes += st.spec.pass_fraction(l, st.n, st.n);
        let c = &mut st.cand[0];
        let scratch = (&mut c.trial.w[l], &mut c.diff.w[l], &mut c.shrink[l]);
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

/// The workspaces and step of the P0-steps variant (method §7), carried across outer
/// iterations.
struct P0Steps<B: Backend> {
    /// Forward pass (then backprop) at the ALM's current W.
    net: Net<B>,
    step: ProxGradStep<B>,
    /// `t_P0`: starts at 1, halves on a failed trial, ×1.5 after an accepted step.
    t: f64,
    steps: usize,
}

impl<B: Backend> P0Steps<B> {
    fn new(be: &B, spec: &Spec, n: usize, steps: usize) -> BResult<Self> {
        Ok(P0Steps {
            net: Net::new(be, spec, n)?,
            step: ProxGradStep::new(be, spec, n, None)?,
            t: 1.0,
            steps,
        })
    }

    /// Up to `steps` Armijo prox-gradient steps on (P0) from the ALM's W (threshold
    /// `λ·t_P0`: the (P0) scale, not the augmented Lagrangian's ρ-scaled one), stopping
    /// early when the budget is spent; then the feasible restart of method §4's
    /// initialisation: `U, V` = the forward pass of the new W (the accepted trial's, no
    /// extra pass) and `Λ` = the adjoint multipliers. Returns (P0) at the new W: the
    /// accepted trial's loss + penalty, which is (P0) by that trial's forward pass.
    fn run(
        &mut self,
        be: &B,
        st: &mut Lifted<B>,
        data: &DeviceData<B>,
        budget: &mut Budget,
    ) -> BResult<f64> {
        let spec = st.spec.clone();
        self.net.forward(be, &spec, &st.p, &data.x)?;
        budget.passes += self.net.forward_passes(&spec, data.n);
        let bwd = self.net.backward_passes(&spec, data.n);
        let mut p0 = None;
        for _ in 0..self.steps {
            if budget.spent() {
                break;
            }
            let net = &mut self.net;
            net.backward(be, &spec, &st.p, &data.x, &data.y, GD_LOSS.slot())?;
            budget.passes += bwd;
            let accepted = self
                .step
                .step(be, &spec, data, &st.p, &net.grad, self.t, budget)?;
            let Some(acc) = accepted else {
                // Stationary for (P0) to float precision: W stays, and so does t_P0
                // (shrunk by every failed trial it would stall all later steps).
                break;
            };
            std::mem::swap(&mut st.p, &mut self.step.trial);
            std::mem::swap(&mut self.net, &mut self.step.trial_net);
            self.t = 1.5 * acc.t;
            p0 = Some(acc.p0());
        }
        let p0 = match p0 {
            Some(v) => v,
            None => p0_at(be, &spec, data, &st.p, &self.net)?,
        };
        let layers = spec.layers();
        for l in 0..layers {
            be.copy(&mut st.u[l], &self.net.u[l])?;
            if l + 1 < layers {
                be.copy(&mut st.v[l], &self.net.a[l])?;
            }
        }
        st.adjoint_multipliers(be, &data.y)?;
        Ok(p0)
    }
}

/// Run the ALM from the parameters in `p` (which on return hold the best W by true (P0)).
/// `cfg.variant` picks the outer iteration: method §4 as written (`plain`), or with the
/// P0 steps and feasible restart of method §7 (`p0-steps`). Besides the records, the
/// scalars the outer loop reads back anyway (each sweep's residual, ‖H‖, the KKT
/// residual, the P0 steps' (P0)) are watched for divergence, at no extra cost.
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
) -> Result<()> {
    let mut st = Lifted::new(be, spec, data.n, p, rho0)?;
    if cfg.exact_blocks {
        st.enable_exact(be)?;
    }
    let mut p0_steps = match cfg.variant {
        AlmVariant::Plain => None,
        AlmVariant::P0Steps => Some(P0Steps::new(be, spec, data.n, cfg.p0_steps)?),
    };
    let mut best = Params::zeros_like(be, spec)?;
    let charge = |st: &mut Lifted<B>, budget: &mut Budget| {
        budget.passes += st.passes;
        st.passes = 0.0;
    };
    let (kkt0, mut best_p0, mut eps, mut r_ref, mut h_prev, first);
    if let Some(s) = rec.take_resume("alm") {
        s.get_params(be, "p", &mut st.p)?;
        s.get_mats(be, "v", &mut st.v)?;
        s.get_mats(be, "u", &mut st.u)?;
        s.get_mats(be, "lam", &mut st.lam)?;
        s.get_params(be, "best", &mut best)?;
        st.rho = s.get("rho")?;
        s.get_list("step_w", &mut st.step_w)?;
        s.get_list("step_v", &mut st.step_v)?;
        kkt0 = s.get("kkt0")?;
        best_p0 = s.get("best_p0")?;
        eps = s.get("eps")?;
        r_ref = Some(s.get("r_ref")?).filter(|v| !v.is_nan());
        h_prev = s.get("h_prev")?;
        if let Some(ps) = p0_steps.as_mut() {
            ps.t = s.get("t_p0")?;
        }
        first = s.counter("k")? as usize + 1;
    } else {
        best.assign(be, p)?;
        st.init_feasible(be, data)?;
        let (k0, _, _) = kkt(be, &mut st, data, 0.0)?;
        kkt0 = if k0 > 0.0 { k0 } else { 1.0 };
        charge(&mut st, budget);
        let m0 = rec.record(be, &st.p, data, budget, "alm", 0, |r| {
            r.feas = Some(0.0);
            r.kkt = Some(1.0);
            r.rho = Some(st.rho);
            r.sweeps = Some(0);
        })?;
        best_p0 = m0.p0;
        eps = cfg.eps0;
        r_ref = None;
        h_prev = f64::INFINITY;
        first = 1;
    }
    for k in first..=cfg.max_outer {
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
            // Later sweeps start from the gradients the previous one's trials left.
            let before = be.counters();
            let rep = if sweeps == 0 {
                st.sweep(be, data, cfg.block_steps, &stop)?
            } else {
                st.next_sweep(be, data, cfg.block_steps, &stop)?
            };
            rec.sweeps.add_sweep(before, be.counters());
            charge(&mut st, budget);
            sweeps += 1;
            let what = format!("the inner residual of sweep {sweeps}");
            rec.watch("alm", k, budget, &what, rep.residual, false)?;
            if rep.stopped {
                break;
            }
            let r0 = *r_ref.get_or_insert(rep.residual.max(f64::MIN_POSITIVE));
            if rep.residual <= eps * r0 || budget.spent() {
                break;
            }
        }
        // Multiplier update with the residual at the inner solution (elementwise only).
        // The p0-steps variant skips it: its feasible restart below sets Λ to the adjoint
        // multipliers, which would overwrite it. ‖H‖ drives the ρ rule in both.
        let (h_norm, su_norm) = st.constraint_norm(be, &data.y)?;
        rec.watch("alm", k, budget, "‖H‖", h_norm, false)?;
        let inner_feas = if su_norm > 0.0 {
            h_norm / su_norm
        } else {
            h_norm
        };
        if p0_steps.is_none() {
            for l in 0..st.lam.len() {
                let (rho, alpha) = (st.rho as f32, st.spec.alpha);
                be.multiplier_update(&mut st.lam[l], &st.u[l], &st.v[l], rho, alpha)?;
            }
        }
        if h_norm > cfg.tau * h_prev {
            st.rho *= cfg.gamma;
            for t in st.step_w.iter_mut().chain(st.step_v.iter_mut()) {
                *t /= cfg.gamma;
            }
        }
        h_prev = h_norm;
        eps = (cfg.theta * eps).max(cfg.eps_min);
        // plain: recompute U from scratch (no drift). p0-steps: the steps and the feasible
        // restart leave U fresh, and the accepted trial gives (P0) at the new W.
        let p0_new = match p0_steps.as_mut() {
            None => {
                st.recompute_u(be, &data.x)?;
                None
            }
            Some(ps) => {
                charge(&mut st, budget);
                let p0 = ps.run(be, &mut st, data, budget)?;
                rec.watch("alm", k, budget, "(P0) after the P0 steps", p0, true)?;
                Some(p0)
            }
        };
        // After a feasible restart (H = 0, adjoint Λ) this is the (P0) prox-gradient map.
        let (kkt_abs, h_norm, su_norm) = kkt(be, &mut st, data, 0.0)?;
        charge(&mut st, budget);
        rec.watch("alm", k, budget, "the KKT residual", kkt_abs, false)?;
        match p0_new {
            Some(v) if v < best_p0 => {
                best_p0 = v;
                best.assign(be, &st.p)?;
            }
            Some(_) => {}
            // The true forward pass for best-W bookkeeping is part of the method's work.
            None => {
                budget.passes += (0..spec.layers())
                    .map(|l| spec.pass_fraction(l, data.n, data.n))
                    .sum::<f64>()
            }
        }
        let feas = match p0_new {
            Some(_) => inner_feas,
            None if su_norm > 0.0 => h_norm / su_norm,
            None => h_norm,
        };
        let rel_kkt = kkt_abs / kkt0;
        let rho = st.rho;
        let m = rec.record(be, &st.p, data, budget, "alm", k, |r| {
            r.feas = Some(feas);
            r.kkt = Some(rel_kkt);
            r.rho = Some(rho);
            r.sweeps = Some(sweeps);
            r.best_p0 = r.p0.min(best_p0);
        })?;
        if p0_new.is_none() && m.p0 < best_p0 {
            best_p0 = m.p0;
            best.assign(be, &st.p)?;
        }
        if rel_kkt <= cfg.kkt_tol {
            break;
        }
        if rec.checkpoint_due() {
            let mut s = SolverState::phase("alm");
            s.put_params(be, "p", &st.p)?;
            s.put_mats(be, "v", &st.v)?;
            s.put_mats(be, "u", &st.u)?;
            s.put_mats(be, "lam", &st.lam)?;
            s.put_params(be, "best", &best)?;
            s.put("rho", st.rho)
                .put("kkt0", kkt0)
                .put("best_p0", best_p0)
                .put("eps", eps)
                .put("r_ref", r_ref.unwrap_or(f64::NAN))
                .put("h_prev", h_prev);
            s.put_list("step_w", &st.step_w);
            s.put_list("step_v", &st.step_v);
            if let Some(ps) = p0_steps.as_ref() {
                s.put("t_p0", ps.t);
            }
            s.count("k", k as u64);
            rec.checkpoint(be, budget, s)?;
        }
    }
    p.assign(be, &best)?;
    Ok(())
}
