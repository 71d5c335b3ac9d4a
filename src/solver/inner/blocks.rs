//! method §6: the Armijo step of one block of the inner sweep: a W block `(W_l, b_l)` with
//! its matmul-free trials (shrink factors and `B = ∇W·V_{l−1}`, computed once per step),
//! and a V block `V_l` whose trials move `U_{l+1}` along `W_{l+1}G_V`. A trial costs
//! elementwise work and writes the gradient the layer's next block reads
//! ([`Known`](super::Known)). Trials go in ladders of [`LADDER`] candidate steps (`t`,
//! `t/2`): one pass over the operands and one scalar readback for both, and the block
//! takes the first candidate that passes, the step sequential backtracking would take.

use super::{Candidate, Lifted, ARMIJO_SLACK_EPS, MAX_BACKTRACK};
use crate::backend::{Axis, BResult, Backend, Grads, Moved, Slot, TrialOut, VStep, WTrial, LADDER};
use crate::problem::DeviceData;
use crate::solver::slots::{
    Readback, GROUP_SUM, RES, STEP_D2, STEP_GDOT, V_GRAD_SQ, V_PHI_NEXT, V_TRIAL_PHI,
    V_TRIAL_PHI_NEXT, W_PENALTY, W_PHI, W_TRIAL_PHI, W_TRIAL_STEP,
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
            be.weight_grads(&mut self.g.w[l], &mut self.g.b[l], &self.gu[l], input)?;
            self.passes += self.frac(l);
            if axis == Axis::Rows {
                be.matmul_nn(&mut self.bmat[l], &self.g.w[l], input, None, 0.0)?;
                self.passes += self.frac(l);
            }
        }
        // Matmul-free trials go in ladders (one pass, one readback for LADDER candidates); a
        // column-grouped layer's trial costs a matmul, so its candidates go one at a time.
        let width = if axis == Axis::Rows { LADDER } else { 1 };
        let mut t = 2.0 * self.step_w[l];
        let mut phi = None;
        let mut first_map2 = None;
        let mut trial = 0;
        while trial < MAX_BACKTRACK {
            let mut ts = [t; LADDER];
            for c in 1..width {
                ts[c] = 0.5 * ts[c - 1];
            }
            for (c, &t) in ts.iter().enumerate().take(width) {
                self.w_candidate(be, l, c, t)?;
            }
            self.w_candidate_values(be, data, l, &ts[..width])?;
            let mut rb = Readback::new();
            for c in 0..width {
                for part in [GROUP_SUM, STEP_GDOT, STEP_D2] {
                    rb.slot(W_TRIAL_STEP.part(c, part));
                }
                self.ask_piece(&mut rb, l, W_TRIAL_PHI.at(c));
            }
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
            // The candidates in order of decreasing step: the first that passes is the
            // step sequential backtracking would take.
            for (c, &t) in ts.iter().enumerate().take(width) {
                trial += 1;
                let phi_new = self.piece(l, &v, W_TRIAL_PHI.at(c));
                let gd = v.get(W_TRIAL_STEP.part(c, STEP_GDOT));
                let d2 = v.get(W_TRIAL_STEP.part(c, STEP_D2));
                if first_map2.is_none() {
                    first_map2 = Some(d2 / (t * t));
                }
                // Prox-gradient sufficient decrease on the whole block objective: smooth
                // part by the quadratic model, plus the penalty (which the prox step never
                // worsens against the model), so F(x⁺) ≤ F(x) is guaranteed when accepted.
                let reg_new = lam * v.get(W_TRIAL_STEP.part(c, GROUP_SUM));
                let model = phi_now + gd + d2 / (2.0 * t);
                let slack = ARMIJO_SLACK_EPS * be.epsilon() * (phi_now.abs() + reg_old.abs());
                if phi_new <= model + slack && phi_new + reg_new <= phi_now + reg_old + slack {
                    let cand = &mut self.cand[c];
                    std::mem::swap(&mut self.p.w[l], &mut cand.trial.w[l]);
                    std::mem::swap(&mut self.p.b[l], &mut cand.trial.b[l]);
                    std::mem::swap(&mut self.u[l], &mut cand.u[l]);
                    self.step_w[l] = t;
                    if hidden {
                        // U_l moved: its G_U is stale; the trial wrote G_V there (rows only).
                        self.known.gu[l] = None;
                        self.known.gv[l] = None;
                        if axis == Axis::Rows {
                            std::mem::swap(&mut self.gv[l], &mut cand.gv[l]);
                            self.known.gv[l] = Some(phi_new);
                        }
                    }
                    return Ok((true, first_map2.unwrap_or(0.0), trial));
                }
            }
            t = 0.5 * ts[width - 1];
        }
        if hidden {
            // The point did not move: G_U (known or computed above) still holds.
            self.known.gu[l] = phi.map(|p| p.0);
        }
        Ok((false, first_map2.unwrap_or(0.0), MAX_BACKTRACK))
    }

    /// Candidate `c` of a W trial at step `t`: `(W, b)` one prox-gradient step from the
    /// current point, with its penalty's sums and its step's model terms (into
    /// [`W_TRIAL_STEP`]).
    fn w_candidate(&mut self, be: &B, l: usize, c: usize, t: f64) -> BResult<()> {
        let (axis, lam) = (self.spec.axes[l], self.spec.lambda as f64);
        let (p, g, cand) = (&self.p, &self.g, &mut self.cand[c]);
        let new = (
            &mut cand.trial.w[l],
            &mut cand.trial.b[l],
            &mut cand.shrink[l],
        );
        let (old, grad) = ((&p.w[l], &p.b[l]), (&g.w[l], &g.b[l]));
        let steps = (t as f32, (lam * t) as f32);
        let slot = W_TRIAL_STEP.at(c);
        be.prox_step(new, old, grad, steps, axis, slot)
    }

    /// The smooth part's value at the W trial's candidates (steps `ts`, candidate `c`'s
    /// sums into `W_TRIAL_PHI.at(c)`), and for a hidden layer's row trials the `G_V` each
    /// candidate's point gives.
    fn w_candidate_values(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
        ts: &[f64],
    ) -> BResult<()> {
        let hidden = l + 1 < self.spec.layers();
        match self.spec.axes[l] {
            // A hidden layer's trials are written, valued and their G_V written in one pass.
            Axis::Rows if hidden => {
                let r = self.residual(self.rho, Grads::V);
                let (u, b_old, bmat) = (&self.u[l], &self.p.b[l], &self.bmat[l]);
                let [c0, c1] = &mut self.cand;
                let (w0, o0) = c0.w_trial(l, (u, b_old, bmat), ts[0], W_TRIAL_PHI.at(0));
                let (w1, o1) = c1.w_trial(l, (u, b_old, bmat), ts[1], W_TRIAL_PHI.at(1));
                be.w_trial_value_ladder([o0, o1], [w0, w1], (&self.v[l], &self.lam[l]), r)
            }
            Axis::Rows => {
                for (c, &t) in ts.iter().enumerate() {
                    let cand = &mut self.cand[c];
                    be.w_trial_preact(
                        &mut cand.u[l],
                        &self.u[l],
                        &self.p.b[l],
                        &cand.trial.b[l],
                        &self.bmat[l],
                        &cand.shrink[l],
                        t as f32,
                    )?;
                    let u = &self.cand[c].u[l];
                    self.piece_value(be, l, u, None, &data.y, W_TRIAL_PHI.at(c))?;
                }
                Ok(())
            }
            Axis::Cols => {
                for c in 0..ts.len() {
                    let input = if l == 0 { &data.x } else { &self.v[l - 1] };
                    let cand = &mut self.cand[c];
                    let b = Some(&cand.trial.b[l]);
                    be.matmul_nn(&mut cand.u[l], &cand.trial.w[l], input, b, 0.0)?;
                    self.passes += self.frac(l);
                    let u = &self.cand[c].u[l];
                    self.piece_value(be, l, u, None, &data.y, W_TRIAL_PHI.at(c))?;
                }
                Ok(())
            }
        }
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
        let mut t = 2.0 * self.step_v[l];
        let mut cur = None;
        let mut trial = 0;
        while trial < MAX_BACKTRACK {
            let ts = [t, 0.5 * t];
            self.v_candidates(be, data, l, ts, cur.is_none())?;
            let mut rb = Readback::new();
            for c in 0..LADDER {
                self.ask_piece(&mut rb, l, V_TRIAL_PHI.at(c));
                self.ask_piece(&mut rb, l + 1, V_TRIAL_PHI_NEXT.at(c));
            }
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
            // The first candidate that passes is the step sequential backtracking takes.
            for (c, &t) in ts.iter().enumerate() {
                trial += 1;
                let (new_l, new_next) = (
                    self.piece(l, &v, V_TRIAL_PHI.at(c)),
                    self.piece(l + 1, &v, V_TRIAL_PHI_NEXT.at(c)),
                );
                let phi_new = new_l + new_next;
                let slack = ARMIJO_SLACK_EPS * be.epsilon() * phi.abs();
                if phi_new <= phi - 0.5 * t * g2 + slack {
                    let cand = &mut self.cand[c];
                    std::mem::swap(&mut self.v[l], &mut cand.v[l]);
                    std::mem::swap(&mut self.u[l + 1], &mut cand.u[l + 1]);
                    self.step_v[l] = t;
                    // Both layers moved; the trial wrote G_U at the new points.
                    std::mem::swap(&mut self.gu[l], &mut cand.gu[l]);
                    self.known.gu[l] = Some(new_l);
                    if next_hidden {
                        std::mem::swap(&mut self.gu[l + 1], &mut cand.gu[l + 1]);
                        self.known.gu[l + 1] = Some(new_next);
                        self.known.gv[l + 1] = None;
                    }
                    return Ok((true, n * n * g2, trial));
                }
            }
            t = 0.5 * ts[LADDER - 1];
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

    /// The candidates of a V trial at steps `ts` (method §6): each moves `V_l` along
    /// `−G_V` and `U_{l+1}` along `−W_{l+1}G_V`, and sums the two pieces there
    /// (`V_TRIAL_PHI.at(c)`, `V_TRIAL_PHI_NEXT.at(c)`), writing each moved layer's `G_U`;
    /// with `grad_sq`, also `‖G_V‖²` into [`V_GRAD_SQ`].
    fn v_candidates(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
        ts: [f64; LADDER],
        grad_sq: bool,
    ) -> BResult<()> {
        let next_hidden = l + 2 < self.spec.layers();
        let a = ts.map(|t| -(t as f32));
        let r = self.residual(self.rho, Grads::U);
        let [c0, c1] = &mut self.cand;
        // Each moved matrix is written, valued and its G_U written in one pass.
        let outs = [
            TrialOut {
                out: &mut c0.v[l],
                grad: &mut c0.gu[l],
                slot: V_TRIAL_PHI.at(0),
            },
            TrialOut {
                out: &mut c1.v[l],
                grad: &mut c1.gu[l],
                slot: V_TRIAL_PHI.at(1),
            },
        ];
        let steps = a.map(|a| VStep {
            base: &self.v[l],
            a,
            dir: &self.gv[l],
            moved: Moved::V,
            other: &self.u[l],
            lam: &self.lam[l],
        });
        let grad_sq = grad_sq.then(|| V_GRAD_SQ.slot());
        be.step_value_ladder(outs, steps, r, grad_sq)?;
        if next_hidden {
            let outs = [
                TrialOut {
                    out: &mut c0.u[l + 1],
                    grad: &mut c0.gu[l + 1],
                    slot: V_TRIAL_PHI_NEXT.at(0),
                },
                TrialOut {
                    out: &mut c1.u[l + 1],
                    grad: &mut c1.gu[l + 1],
                    slot: V_TRIAL_PHI_NEXT.at(1),
                },
            ];
            let steps = a.map(|a| VStep {
                base: &self.u[l + 1],
                a,
                dir: &self.bmat[l + 1],
                moved: Moved::U,
                other: &self.v[l + 1],
                lam: &self.lam[l + 1],
            });
            be.step_value_ladder(outs, steps, r, None)
        } else {
            for (c, a) in a.into_iter().enumerate() {
                let out = &mut self.cand[c].u[l + 1];
                be.axpby(out, 1.0, &self.u[l + 1], a, &self.bmat[l + 1])?;
                let loss = self.spec.loss;
                be.loss(out, &data.y, loss, V_TRIAL_PHI_NEXT.at(c))?;
            }
            Ok(())
        }
    }
}

impl<B: Backend> Candidate<B> {
    /// This candidate's W trial of layer `l` at step `t` from the state's `(U, b, B)`
    /// (`state`), and where its point, `G_V` and sums (at `slot`) go.
    fn w_trial<'a>(
        &'a mut self,
        l: usize,
        (u, b_old, bmat): (&'a B::Mat, &'a B::Mat, &'a B::Mat),
        t: f64,
        slot: Slot,
    ) -> (WTrial<'a, B::Mat>, TrialOut<'a, B::Mat>) {
        let Candidate {
            trial,
            shrink,
            u: out,
            gv,
            ..
        } = self;
        let w = WTrial {
            u,
            b_old,
            b_new: &trial.b[l],
            bmat,
            shrink: &shrink[l],
            t: t as f32,
        };
        let o = TrialOut {
            out: &mut out[l],
            grad: &mut gv[l],
            slot,
        };
        (w, o)
    }
}
