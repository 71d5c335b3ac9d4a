//! method §6: the Armijo step of one block of the inner sweep: a W block `(W_l, b_l)` with
//! its matmul-free trials (shrink factors and `B = ∇W·V_{l−1}`, computed once per step),
//! and a V block `V_l` whose trials move `U_{l+1}` along `W_{l+1}G_V`. Each trial costs
//! elementwise work and one scalar readback, and writes the gradient the layer's next
//! block reads ([`Known`](super::Known)).

use super::{Lifted, ARMIJO_SLACK_EPS, MAX_BACKTRACK};
use crate::backend::{Axis, BResult, Backend, Grads, Moved, VStep, WTrial};
use crate::problem::DeviceData;
use crate::solver::slots::{
    Readback, D2, GDOT, GROUP_SUM, RES, V_GRAD_SQ, V_PHI_NEXT, V_TRIAL_PHI, V_TRIAL_PHI_NEXT,
    W_PENALTY, W_PHI, W_TRIAL_PENALTY, W_TRIAL_PHI, W_TRIAL_STEP,
};

impl<B: Backend> Lifted<B> {
    /// One Armijo step on block `(W_l, b_l)`. Returns (moved, squared gradient mapping
    /// `‖Δ‖²/t²` of the first trial, trials).
    pub(super) fn w_block(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
    ) -> BResult<(bool, f64, usize)> {
        let axis = self.spec.axes[l];
        let lam = self.spec.lambda as f64;
        let hidden = l + 1 < self.spec.layers();
        // G_U from the V trial that moved this layer last, else a residual pass.
        let known = if hidden { self.known.gu[l] } else { None };
        if known.is_none() {
            self.piece_grad(be, l, &data.y, (W_PHI.slot(), self.rho), Grads::U)?;
        }
        // The current penalty, read with the first trial's scalars.
        be.group_norms(&self.p.w[l], axis, W_PENALTY.slot())?;
        {
            let input = if l == 0 { &data.x } else { &self.v[l - 1] };
            be.matmul_nt(&mut self.g.w[l], &self.gu[l], input, 0.0)?;
            be.row_sum(&mut self.g.b[l], &self.gu[l], 0.0)?;
            self.passes += self.frac(l);
            if axis == Axis::Rows {
                be.matmul_nn(&mut self.bmat[l], &self.g.w[l], input, None, 0.0)?;
                self.passes += self.frac(l);
            }
        }
        let mut t = 2.0 * self.step_w[l];
        let mut phi = None;
        let mut first_map2 = None;
        for trial in 1..=MAX_BACKTRACK {
            be.axpby(
                &mut self.trial.w[l],
                1.0,
                &self.p.w[l],
                -(t as f32),
                &self.g.w[l],
            )?;
            be.group_prox(
                &mut self.trial.w[l],
                (lam * t) as f32,
                axis,
                &mut self.shrink[l],
                W_TRIAL_PENALTY.slot(),
            )?;
            be.axpby(
                &mut self.trial.b[l],
                1.0,
                &self.p.b[l],
                -(t as f32),
                &self.g.b[l],
            )?;
            let (dw, db) = (&mut self.diff.w[l], &mut self.diff.b[l]);
            let (tw, tb) = (&self.trial.w[l], &self.trial.b[l]);
            be.step_diff(dw, tw, &self.p.w[l], &self.g.w[l], W_TRIAL_STEP.at(0))?;
            be.step_diff(db, tb, &self.p.b[l], &self.g.b[l], W_TRIAL_STEP.at(1))?;
            let input = if l == 0 { &data.x } else { &self.v[l - 1] };
            match axis {
                // A hidden layer's trial is written, valued and its G_V written in one pass.
                Axis::Rows if hidden => {
                    let trial = WTrial {
                        u: &self.u[l],
                        b_old: &self.p.b[l],
                        b_new: &self.trial.b[l],
                        bmat: &self.bmat[l],
                        shrink: &self.shrink[l],
                        t: t as f32,
                    };
                    let (v, lam) = (&self.v[l], &self.lam[l]);
                    let r = self.residual(self.rho, Grads::V);
                    let (out, grad) = (&mut self.u_trial[l], &mut self.gv_trial[l]);
                    be.w_trial_value(out, grad, trial, (v, lam), r, W_TRIAL_PHI.slot())?;
                }
                Axis::Rows => {
                    be.w_trial_preact(
                        &mut self.u_trial[l],
                        &self.u[l],
                        &self.p.b[l],
                        &self.trial.b[l],
                        &self.bmat[l],
                        &self.shrink[l],
                        t as f32,
                    )?;
                    self.piece_value(be, l, &self.u_trial[l], None, &data.y, W_TRIAL_PHI.slot())?;
                }
                Axis::Cols => {
                    be.matmul_nn(
                        &mut self.u_trial[l],
                        &self.trial.w[l],
                        input,
                        Some(&self.trial.b[l]),
                        0.0,
                    )?;
                    self.passes += self.frac(l);
                    self.piece_value(be, l, &self.u_trial[l], None, &data.y, W_TRIAL_PHI.slot())?;
                }
            }
            let mut rb = Readback::new();
            for unit in 0..2 {
                rb.slot(W_TRIAL_STEP.part(unit, GDOT))
                    .slot(W_TRIAL_STEP.part(unit, D2));
            }
            rb.slot(W_TRIAL_PENALTY.part(0, GROUP_SUM));
            self.ask_piece(&mut rb, l, W_TRIAL_PHI.slot());
            if phi.is_none() {
                if known.is_none() {
                    self.ask_piece(&mut rb, l, W_PHI.slot());
                }
                rb.slot(W_PENALTY.part(0, GROUP_SUM));
            }
            let v = rb.read(be)?;
            let (phi_now, reg_old) = *phi.get_or_insert_with(|| {
                (
                    known.unwrap_or_else(|| self.piece(l, &v, W_PHI.slot())),
                    lam * v.get(W_PENALTY.part(0, GROUP_SUM)),
                )
            });
            let phi_new = self.piece(l, &v, W_TRIAL_PHI.slot());
            let gd = v.get(W_TRIAL_STEP.part(0, GDOT)) + v.get(W_TRIAL_STEP.part(1, GDOT));
            let d2 = v.get(W_TRIAL_STEP.part(0, D2)) + v.get(W_TRIAL_STEP.part(1, D2));
            if first_map2.is_none() {
                first_map2 = Some(d2 / (t * t));
            }
            // Prox-gradient sufficient decrease on the whole block objective: smooth part
            // by the quadratic model, plus the penalty (which the prox step never worsens
            // against the model), so F(x⁺) ≤ F(x) is guaranteed when accepted.
            let reg_new = lam * v.get(W_TRIAL_PENALTY.part(0, GROUP_SUM));
            let model = phi_now + gd + d2 / (2.0 * t);
            let slack = ARMIJO_SLACK_EPS * be.epsilon() * (phi_now.abs() + reg_old.abs());
            if phi_new <= model + slack && phi_new + reg_new <= phi_now + reg_old + slack {
                std::mem::swap(&mut self.p.w[l], &mut self.trial.w[l]);
                std::mem::swap(&mut self.p.b[l], &mut self.trial.b[l]);
                std::mem::swap(&mut self.u[l], &mut self.u_trial[l]);
                self.step_w[l] = t;
                if hidden {
                    // U_l moved: its G_U is stale; the trial wrote G_V there (rows only).
                    self.known.gu[l] = None;
                    self.known.gv[l] = None;
                    if axis == Axis::Rows {
                        std::mem::swap(&mut self.gv[l], &mut self.gv_trial[l]);
                        self.known.gv[l] = Some(phi_new);
                    }
                }
                return Ok((true, first_map2.unwrap_or(0.0), trial));
            }
            t *= 0.5;
        }
        if hidden {
            // The point did not move: G_U (known or computed above) still holds.
            self.known.gu[l] = phi.map(|p| p.0);
        }
        Ok((false, first_map2.unwrap_or(0.0), MAX_BACKTRACK))
    }

    /// One Armijo step on block `V_l` (hidden index `l`, method §6).
    pub(super) fn v_block(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
    ) -> BResult<(bool, f64, usize)> {
        let layers = self.spec.layers();
        let n = self.n as f64;
        let next_hidden = l + 1 < layers - 1;
        // G_V of layer l from the W trial that moved U_l last, G_U of layer l + 1 from the
        // V trial that moved it last; else residual passes. The matmul below adds to
        // `gv[l]`, so it is consumed.
        let known = (
            self.known.gv[l].take(),
            self.known.gu.get(l + 1).copied().flatten(),
        );
        if known.0.is_none() {
            self.piece_grad(be, l, &data.y, (RES.at(l), self.rho), Grads::V)?;
        }
        if known.1.is_none() {
            self.piece_grad(be, l + 1, &data.y, (V_PHI_NEXT.slot(), self.rho), Grads::U)?;
        }
        // G_V = S_l/N + W_{l+1}ᵀ G_U_{l+1};  D = W_{l+1} G_V.
        be.matmul_tn(&mut self.gv[l], &self.p.w[l + 1], &self.gu[l + 1], 1.0)?;
        be.matmul_nn(
            &mut self.bmat[l + 1],
            &self.p.w[l + 1],
            &self.gv[l],
            None,
            0.0,
        )?;
        self.passes += 2.0 * self.frac(l + 1);
        be.sq_norm(&self.gv[l], V_GRAD_SQ.slot())?;
        let mut t = 2.0 * self.step_v[l];
        let mut cur = None;
        for trial in 1..=MAX_BACKTRACK {
            // Each moved matrix is written, valued and its G_U written in one pass.
            let a = -(t as f32);
            let r = self.residual(self.rho, Grads::U);
            let step = VStep {
                base: &self.v[l],
                a,
                dir: &self.gv[l],
                moved: Moved::V,
                other: &self.u[l],
                lam: &self.lam[l],
            };
            let slot = V_TRIAL_PHI.slot();
            be.step_value(&mut self.v_trial[l], &mut self.gu_trial[l], step, r, slot)?;
            if next_hidden {
                let step = VStep {
                    base: &self.u[l + 1],
                    a,
                    dir: &self.bmat[l + 1],
                    moved: Moved::U,
                    other: &self.v[l + 1],
                    lam: &self.lam[l + 1],
                };
                let (out, grad) = (&mut self.u_trial[l + 1], &mut self.gu_trial[l + 1]);
                be.step_value(out, grad, step, r, V_TRIAL_PHI_NEXT.slot())?;
            } else {
                be.axpby(
                    &mut self.u_trial[l + 1],
                    1.0,
                    &self.u[l + 1],
                    a,
                    &self.bmat[l + 1],
                )?;
                be.loss(
                    &self.u_trial[l + 1],
                    &data.y,
                    self.spec.loss,
                    V_TRIAL_PHI_NEXT.slot(),
                )?;
            }
            let mut rb = Readback::new();
            self.ask_piece(&mut rb, l, V_TRIAL_PHI.slot());
            self.ask_piece(&mut rb, l + 1, V_TRIAL_PHI_NEXT.slot());
            if cur.is_none() {
                rb.slot(V_GRAD_SQ.slot());
                if known.0.is_none() {
                    self.ask_piece(&mut rb, l, RES.at(l));
                }
                if known.1.is_none() {
                    self.ask_piece(&mut rb, l + 1, V_PHI_NEXT.slot());
                }
            }
            let v = rb.read(be)?;
            let (phi_l, phi_next, g2) = *cur.get_or_insert_with(|| {
                (
                    known.0.unwrap_or_else(|| self.piece(l, &v, RES.at(l))),
                    known
                        .1
                        .unwrap_or_else(|| self.piece(l + 1, &v, V_PHI_NEXT.slot())),
                    v.get(V_GRAD_SQ.slot()),
                )
            });
            let phi = phi_l + phi_next;
            let (new_l, new_next) = (
                self.piece(l, &v, V_TRIAL_PHI.slot()),
                self.piece(l + 1, &v, V_TRIAL_PHI_NEXT.slot()),
            );
            let phi_new = new_l + new_next;
            let slack = ARMIJO_SLACK_EPS * be.epsilon() * phi.abs();
            if phi_new <= phi - 0.5 * t * g2 + slack {
                std::mem::swap(&mut self.v[l], &mut self.v_trial[l]);
                std::mem::swap(&mut self.u[l + 1], &mut self.u_trial[l + 1]);
                self.step_v[l] = t;
                // Both layers moved; their trials wrote G_U at the new points.
                std::mem::swap(&mut self.gu[l], &mut self.gu_trial[l]);
                self.known.gu[l] = Some(new_l);
                if next_hidden {
                    std::mem::swap(&mut self.gu[l + 1], &mut self.gu_trial[l + 1]);
                    self.known.gu[l + 1] = Some(new_next);
                    self.known.gv[l + 1] = None;
                }
                return Ok((true, n * n * g2, trial));
            }
            t *= 0.5;
        }
        if next_hidden {
            // The point did not move: G_U of layer l + 1 (known or computed) still holds.
            self.known.gu[l + 1] = cur.map(|c| c.1);
        }
        Ok((
            false,
            n * n * cur.map(|c| c.2).unwrap_or(0.0),
            MAX_BACKTRACK,
        ))
    }
}
