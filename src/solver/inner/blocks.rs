//! method §6: the Armijo step of one block of the inner sweep: a W block `(W_l, b_l)` with
//! its matmul-free trials (shrink factors and `B = ∇W·V_{l−1}`, computed once per step),
//! and a V block `V_l` whose trials move `U_{l+1}` along `W_{l+1}G_V`. A trial costs
//! elementwise work and writes the gradient the layer's next block reads
//! ([`Known`](super::Known)). Trials go in ladders of [`LADDER`] candidate steps (`t`,
//! `t/2`): one pass over the operands and one scalar readback for both, and the block
//! takes the first candidate that passes, the step sequential backtracking would take.
//! Each block is prepared (`*_prepare`: its gradients, and the test its ladders share) and
//! its candidates written (`w_candidate*`, `v_candidates`) by the same code whether the host
//! decides each ladder after a readback (`w_block`, `v_block`) or the device does
//! (`w_record`, `v_record`, for a sweep recorded whole: `speculate.rs`).

use super::{Candidate, Lifted, Resume, ARMIJO_SLACK_EPS, MAX_BACKTRACK};
use crate::backend::ladder::{
    Decision, LadderModel, LadderPiece, LadderTest, PieceAt, REPORT_VALUE,
};
use crate::backend::{Axis, BResult, Backend, Grads, Moved, Slot, TrialOut, VStep, WTrial, LADDER};
use crate::problem::DeviceData;
use crate::solver::slots::{
    cand_slots, Readback, RES, V_GRAD_SQ, V_PHI_NEXT, V_TRIAL_PHI, V_TRIAL_PHI_NEXT, W_PENALTY,
    W_PHI, W_TRIAL_PHI, W_TRIAL_STEP,
};

/// A ladder's steps from its largest: `t`, `t/2`, ….
fn ladder_steps(t: f64) -> [f64; LADDER] {
    let mut ts = [t; LADDER];
    for c in 1..LADDER {
        ts[c] = 0.5 * ts[c - 1];
    }
    ts
}

/// The tests of `count` ladders in turn from step `*t` (each from half the last step of
/// the one before; `*t` left where the next would start), ladder `j` reading its
/// candidates' sums from trial set `j` (`slots::TRIAL_SETS`). The host records them all
/// and decides them in order after one readback: where a step is far off (a run's first
/// sweep) that is one readback for up to `2·TRIAL_SETS` trials instead of one per ladder.
fn ladder_sets(test: &LadderTest, t: &mut f64, count: usize) -> Vec<LadderTest> {
    (0..count)
        .map(|j| {
            let mut tj = *test;
            tj.ts = ladder_steps(*t);
            *t = 0.5 * tj.ts[tj.width - 1];
            // The ranges the trials write their sums to (`w_ladder`, `v_candidates`).
            let ranges = match &mut tj.model {
                LadderModel::W { step, .. } => {
                    *step = cand_slots(W_TRIAL_STEP, j);
                    [W_TRIAL_PHI, W_TRIAL_PHI]
                }
                LadderModel::V { .. } => [V_TRIAL_PHI, V_TRIAL_PHI_NEXT],
            };
            for (p, r) in tj.pieces.iter_mut().zip(ranges) {
                if let Some(p) = p {
                    p.cand = cand_slots(r, j);
                }
            }
            tj
        })
        .collect()
}

impl<B: Backend> Lifted<B> {
    /// One Armijo step on block `(W_l, b_l)`, each ladder decided on the host. Returns
    /// (moved, squared gradient mapping `‖Δ‖²/t²` of the first trial, trials).
    pub(super) fn w_block(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
    ) -> BResult<(bool, f64, usize)> {
        let hidden = l + 1 < self.spec.layers();
        let test = self.w_prepare(be, data, l)?;
        let width = test.width;
        let (mut t, mut trial, mut first_map2, ladders) = self.resume_at(self.step_w[l], width);
        let mut last = None;
        while trial < MAX_BACKTRACK {
            let tests = ladder_sets(&test, &mut t, ladders.min((MAX_BACKTRACK - trial) / width));
            for (j, test) in tests.iter().enumerate() {
                self.w_ladder(be, data, l, &test.ts[..width], j)?;
            }
            for (j, d) in self.decide_on_host(be, &tests)?.into_iter().enumerate() {
                first_map2.get_or_insert(d.map2);
                let ts = tests[j].ts;
                if d.choice < width {
                    if j + 1 < tests.len() {
                        // A later ladder overwrote the candidates: write this one again
                        // (the same operations on the same state: the same bits).
                        self.w_ladder(be, data, l, &ts[..width], j)?;
                    }
                    self.w_accept(l, d.choice, PieceAt::Host(d.values[0]));
                    self.step_w[l] = ts[d.choice];
                    return Ok((true, first_map2.unwrap_or(0.0), trial + d.choice + 1));
                }
                last = Some(d);
                trial += width;
            }
        }
        if hidden {
            // The point did not move: G_U (known or computed) still holds.
            self.known.gu[l] = last.map(|d| PieceAt::Host(d.values[0]));
        }
        Ok((false, first_map2.unwrap_or(0.0), MAX_BACKTRACK))
    }

    /// A ladder of block `(W_l, b_l)` from step `t` (its first: `2t_last`; or where a
    /// failed one left off) recorded with the device's decision (report at `report`,
    /// after the report `prev` of the sweep's previous block), the state left as if a
    /// candidate was accepted. Returns the steps.
    pub(super) fn w_record(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        (l, t): (usize, f64),
        (prev, report): (Option<Slot>, Slot),
    ) -> BResult<[f64; LADDER]> {
        let hidden = l + 1 < self.spec.layers();
        let mut test = self.w_prepare(be, data, l)?;
        let ts = ladder_steps(t);
        self.w_ladder(be, data, l, &ts, 0)?;
        test.ts = ts;
        test.prev = prev;
        test.report = report;
        let [c0, c1] = &self.cand;
        let mut pairs = vec![
            (&mut self.p.w[l], [&c0.trial.w[l], &c1.trial.w[l]]),
            (&mut self.p.b[l], [&c0.trial.b[l], &c1.trial.b[l]]),
            (&mut self.u[l], [&c0.u[l], &c1.u[l]]),
        ];
        if hidden {
            pairs.push((&mut self.gv[l], [&c0.gv[l], &c1.gv[l]]));
        }
        be.ladder_select(&mut pairs, &test)?;
        self.w_known_after(l, PieceAt::Value(report + REPORT_VALUE));
        Ok(ts)
    }

    /// Where a block's backtracking starts: `(t, trials, first map2, ladders per
    /// readback)`, from `2·t_last` or where its recorded ladder failed. Only a ladder of
    /// [`LADDER`] candidates goes several to a readback.
    fn resume_at(&mut self, t_last: f64, width: usize) -> (f64, usize, Option<f64>, usize) {
        let (t, trials, map2, ladders) = match self.resume.take() {
            Some(Resume {
                t,
                trials,
                map2,
                ladders,
            }) => (t, trials, map2, ladders),
            None => (2.0 * t_last, 0, None, 1),
        };
        let ladders = if width == LADDER { ladders.max(1) } else { 1 };
        (t, trials, map2, ladders)
    }

    /// Read what `tests` need and decide each on the host (one readback).
    fn decide_on_host(&self, be: &B, tests: &[LadderTest]) -> BResult<Vec<Decision>> {
        let mut rb = Readback::new();
        for s in tests.iter().flat_map(LadderTest::reads) {
            rb.slot(s);
        }
        let v = rb.read(be)?;
        Ok(tests.iter().map(|test| test.decide(|s| v.get(s))).collect())
    }

    /// A W block's gradients at the current point (the residual pass unless a V trial left
    /// `G_U`; `∇W`, `∇b`; `B = ∇W·V_{l−1}` for row groups) and the test its ladders share.
    fn w_prepare(&mut self, be: &B, data: &DeviceData<B>, l: usize) -> BResult<LadderTest> {
        let axis = self.spec.axes[l];
        let hidden = l + 1 < self.spec.layers();
        // G_U from the V trial that moved this layer last, else a residual pass.
        let known = if hidden { self.known.gu[l] } else { None };
        if known.is_none() {
            self.piece_grad(be, l, &data.y, (W_PHI.slot(), self.rho), Grads::U)?;
        }
        be.group_norms(&self.p.w[l], axis, W_PENALTY.slot())?;
        let input = if l == 0 { &data.x } else { &self.v[l - 1] };
        be.weight_grads(&mut self.g.w[l], &mut self.g.b[l], &self.gu[l], input)?;
        self.passes += self.frac(l);
        if axis == Axis::Rows {
            be.matmul_nn(&mut self.bmat[l], &self.g.w[l], input, None, 0.0)?;
            self.passes += self.frac(l);
        }
        // Matmul-free trials go in ladders (one pass, one readback for LADDER candidates); a
        // column-grouped layer's trial costs a matmul, so its candidates go one at a time.
        let width = if axis == Axis::Rows { LADDER } else { 1 };
        let piece = LadderPiece {
            hidden,
            now: known.unwrap_or(PieceAt::Sums(W_PHI.slot())),
            cand: cand_slots(W_TRIAL_PHI, 0),
        };
        let model = LadderModel::W {
            step: cand_slots(W_TRIAL_STEP, 0),
            penalty: PieceAt::Sums(W_PENALTY.slot()),
            lambda: self.spec.lambda as f64,
        };
        Ok(self.ladder_test(be, [Some(piece), None], model, width))
    }

    /// A test of this state's `ρ`, `N` and slack, decided on the host (steps, previous block
    /// and report set by the caller).
    fn ladder_test(
        &self,
        be: &B,
        pieces: [Option<LadderPiece>; 2],
        model: LadderModel,
        width: usize,
    ) -> LadderTest {
        LadderTest {
            pieces,
            model,
            ts: [0.0; LADDER],
            width,
            rho: self.rho,
            n: self.n as f64,
            slack: ARMIJO_SLACK_EPS * be.epsilon(),
            prev: None,
            report: 0,
        }
    }

    /// The host's swap of W candidate `c` into the state, and what it leaves known.
    fn w_accept(&mut self, l: usize, c: usize, value: PieceAt) {
        let hidden = l + 1 < self.spec.layers();
        let cand = &mut self.cand[c];
        std::mem::swap(&mut self.p.w[l], &mut cand.trial.w[l]);
        std::mem::swap(&mut self.p.b[l], &mut cand.trial.b[l]);
        std::mem::swap(&mut self.u[l], &mut cand.u[l]);
        if hidden && self.spec.axes[l] == Axis::Rows {
            std::mem::swap(&mut self.gv[l], &mut cand.gv[l]);
        }
        self.w_known_after(l, value);
    }

    /// After an accepted W step: `U_l` moved, so its `G_U` is stale; a row trial wrote `G_V`
    /// there, whose piece has `value`.
    fn w_known_after(&mut self, l: usize, value: PieceAt) {
        if l + 1 < self.spec.layers() {
            self.known.gu[l] = None;
            self.known.gv[l] = (self.spec.axes[l] == Axis::Rows).then_some(value);
        }
    }

    /// A W ladder at steps `ts` with its sums in trial set `set` ([`ladder_sets`]): its
    /// candidates and their values.
    fn w_ladder(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
        ts: &[f64],
        set: usize,
    ) -> BResult<()> {
        // Each candidate: `(W, b)` one prox-gradient step from the current point, with its
        // penalty's sums and its step's model terms (into `W_TRIAL_STEP`).
        let slots = cand_slots(W_TRIAL_STEP, set);
        let (axis, lam) = (self.spec.axes[l], self.spec.lambda as f64);
        let step = |t: f64| (t as f32, (lam * t) as f32);
        let (p, g) = (&self.p, &self.g);
        let (old, grad) = ((&p.w[l], &p.b[l]), (&g.w[l], &g.b[l]));
        if let &[t0, t1] = ts {
            // Both candidates in one pass over the shared operands.
            let [c0, c1] = &mut self.cand;
            let new = [c0.prox_out(l), c1.prox_out(l)];
            be.prox_step_ladder(new, old, grad, [step(t0), step(t1)], axis, slots)?;
        } else {
            for (c, &t) in ts.iter().enumerate() {
                let new = self.cand[c].prox_out(l);
                be.prox_step(new, old, grad, step(t), axis, slots[c])?;
            }
        }
        self.w_candidate_values(be, data, l, ts, set)
    }

    /// The smooth part's value at the W trial's candidates (steps `ts`, candidate `c`'s
    /// sums into trial set `set` of [`W_TRIAL_PHI`]), and for a hidden layer's row trials
    /// the `G_V` each candidate's point gives.
    fn w_candidate_values(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
        ts: &[f64],
        set: usize,
    ) -> BResult<()> {
        let hidden = l + 1 < self.spec.layers();
        let phi = cand_slots(W_TRIAL_PHI, set);
        match self.spec.axes[l] {
            // A hidden layer's trials are written, valued and their G_V written in one pass.
            Axis::Rows if hidden => {
                let r = self.residual(self.rho, Grads::V);
                let (u, b_old, bmat) = (&self.u[l], &self.p.b[l], &self.bmat[l]);
                let [c0, c1] = &mut self.cand;
                let (w0, o0) = c0.w_trial(l, (u, b_old, bmat), ts[0], phi[0]);
                let (w1, o1) = c1.w_trial(l, (u, b_old, bmat), ts[1], phi[1]);
                be.w_trial_value_ladder([o0, o1], [w0, w1], (&self.v[l], &self.lam[l]), r)
            }
            // The output layer's trials: each written and its loss summed in one pass.
            Axis::Rows => {
                for (c, &t) in ts.iter().enumerate() {
                    let (u, b_old, bmat) = (&self.u[l], &self.p.b[l], &self.bmat[l]);
                    let cand = &mut self.cand[c];
                    let w = WTrial {
                        u,
                        b_old,
                        b_new: &cand.trial.b[l],
                        bmat,
                        shrink: &cand.shrink[l],
                        t: t as f32,
                    };
                    be.w_trial_loss(&mut cand.u[l], w, &data.y, self.spec.loss, phi[c])?;
                }
                Ok(())
            }
            Axis::Cols => {
                for (c, &slot) in phi.iter().enumerate().take(ts.len()) {
                    let input = if l == 0 { &data.x } else { &self.v[l - 1] };
                    let cand = &mut self.cand[c];
                    let b = Some(&cand.trial.b[l]);
                    be.matmul_nn(&mut cand.u[l], &cand.trial.w[l], input, b, 0.0)?;
                    self.passes += self.frac(l);
                    let u = &self.cand[c].u[l];
                    self.piece_value(be, l, u, None, &data.y, slot)?;
                }
                Ok(())
            }
        }
    }

    /// One Armijo step on block `V_l` (hidden index `l`, method §6), each ladder decided
    /// on the host.
    pub(super) fn v_block(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
    ) -> BResult<(bool, f64, usize)> {
        let next_hidden = l + 2 < self.spec.layers();
        let test = self.v_prepare(be, data, l)?;
        let (mut t, mut trial, _, ladders) = self.resume_at(self.step_v[l], LADDER);
        let mut last: Option<Decision> = None;
        while trial < MAX_BACKTRACK {
            let tests = ladder_sets(&test, &mut t, ladders.min((MAX_BACKTRACK - trial) / LADDER));
            for (j, test) in tests.iter().enumerate() {
                // `‖G_V‖²` with the block's first ladder (it does not depend on the step).
                let grad_sq = last.is_none() && j == 0;
                self.v_candidates(be, data, l, test.ts, (j, grad_sq))?;
            }
            for (j, d) in self.decide_on_host(be, &tests)?.into_iter().enumerate() {
                let ts = tests[j].ts;
                if d.choice < LADDER {
                    if j + 1 < tests.len() {
                        // A later ladder overwrote the candidates ([`Lifted::w_block`]).
                        self.v_candidates(be, data, l, ts, (j, false))?;
                    }
                    let values = d.values.map(PieceAt::Host);
                    self.v_accept(l, d.choice, values);
                    self.step_v[l] = ts[d.choice];
                    return Ok((true, d.map2, trial + d.choice + 1));
                }
                last = Some(d);
                trial += LADDER;
            }
        }
        if next_hidden {
            // The point did not move: G_U of layer l + 1 (known or computed) still holds.
            self.known.gu[l + 1] = last.map(|d| PieceAt::Host(d.values[1]));
        }
        Ok((false, last.map_or(0.0, |d| d.map2), MAX_BACKTRACK))
    }

    /// A ladder of block `V_l` from step `t`, recorded with the device's decision
    /// ([`Lifted::w_record`]).
    pub(super) fn v_record(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        (l, t): (usize, f64),
        (prev, report): (Option<Slot>, Slot),
    ) -> BResult<[f64; LADDER]> {
        let next_hidden = l + 2 < self.spec.layers();
        let mut test = self.v_prepare(be, data, l)?;
        let ts = ladder_steps(t);
        self.v_candidates(be, data, l, ts, (0, true))?;
        test.ts = ts;
        test.prev = prev;
        test.report = report;
        let [c0, c1] = &self.cand;
        let (gu, gu_next) = self.gu.split_at_mut(l + 1);
        let mut pairs = vec![
            (&mut self.v[l], [&c0.v[l], &c1.v[l]]),
            (&mut self.u[l + 1], [&c0.u[l + 1], &c1.u[l + 1]]),
            (&mut gu[l], [&c0.gu[l], &c1.gu[l]]),
        ];
        if next_hidden {
            pairs.push((&mut gu_next[0], [&c0.gu[l + 1], &c1.gu[l + 1]]));
        }
        be.ladder_select(&mut pairs, &test)?;
        let value = |k| PieceAt::Value(report + REPORT_VALUE + k);
        self.v_known_after(l, [value(0), value(1)]);
        Ok(ts)
    }

    /// A V block's gradients at the current point (residual passes unless trials left
    /// them; `G_V = S_l/N + W_{l+1}ᵀ G_U_{l+1}`, `D = W_{l+1} G_V`) and the test its ladders
    /// share.
    fn v_prepare(&mut self, be: &B, data: &DeviceData<B>, l: usize) -> BResult<LadderTest> {
        let layers = self.spec.layers();
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
        be.matmul_tn(&mut self.gv[l], &self.p.w[l + 1], &self.gu[l + 1], 1.0)?;
        be.matmul_nn(
            &mut self.bmat[l + 1],
            &self.p.w[l + 1],
            &self.gv[l],
            None,
            0.0,
        )?;
        self.passes += 2.0 * self.frac(l + 1);
        let own = LadderPiece {
            hidden: true,
            now: known.0.unwrap_or(PieceAt::Sums(RES.at(l))),
            cand: cand_slots(V_TRIAL_PHI, 0),
        };
        let next = LadderPiece {
            hidden: l + 2 < layers,
            now: known.1.unwrap_or(PieceAt::Sums(V_PHI_NEXT.slot())),
            cand: cand_slots(V_TRIAL_PHI_NEXT, 0),
        };
        let model = LadderModel::V { grad_sq: V_GRAD_SQ };
        Ok(self.ladder_test(be, [Some(own), Some(next)], model, LADDER))
    }

    /// The host's swap of V candidate `c` into the state, and what it leaves known.
    fn v_accept(&mut self, l: usize, c: usize, values: [PieceAt; 2]) {
        let next_hidden = l + 2 < self.spec.layers();
        let cand = &mut self.cand[c];
        std::mem::swap(&mut self.v[l], &mut cand.v[l]);
        std::mem::swap(&mut self.u[l + 1], &mut cand.u[l + 1]);
        std::mem::swap(&mut self.gu[l], &mut cand.gu[l]);
        if next_hidden {
            std::mem::swap(&mut self.gu[l + 1], &mut cand.gu[l + 1]);
        }
        self.v_known_after(l, values);
    }

    /// After an accepted V step: both layers moved, and the trial wrote `G_U` at the new
    /// points (pieces' `values`).
    fn v_known_after(&mut self, l: usize, values: [PieceAt; 2]) {
        self.known.gu[l] = Some(values[0]);
        if l + 2 < self.spec.layers() {
            self.known.gu[l + 1] = Some(values[1]);
            self.known.gv[l + 1] = None;
        }
    }

    /// The candidates of a V trial at steps `ts` (method §6): each moves `V_l` along
    /// `−G_V` and `U_{l+1}` along `−W_{l+1}G_V`, and sums the two pieces there (trial set
    /// `set` of [`V_TRIAL_PHI`] and [`V_TRIAL_PHI_NEXT`]), writing each moved layer's
    /// `G_U`; with `grad_sq`, also `‖G_V‖²` into [`V_GRAD_SQ`].
    fn v_candidates(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
        ts: [f64; LADDER],
        (set, grad_sq): (usize, bool),
    ) -> BResult<()> {
        let next_hidden = l + 2 < self.spec.layers();
        let (phi, phi_next) = (
            cand_slots(V_TRIAL_PHI, set),
            cand_slots(V_TRIAL_PHI_NEXT, set),
        );
        let a = ts.map(|t| -(t as f32));
        let r = self.residual(self.rho, Grads::U);
        let [c0, c1] = &mut self.cand;
        // Each moved matrix is written, valued and its G_U written in one pass.
        let outs = [
            TrialOut {
                out: &mut c0.v[l],
                grad: &mut c0.gu[l],
                slot: phi[0],
            },
            TrialOut {
                out: &mut c1.v[l],
                grad: &mut c1.gu[l],
                slot: phi[1],
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
        let grad_sq = grad_sq.then_some(V_GRAD_SQ);
        be.step_value_ladder(outs, steps, r, grad_sq)?;
        if next_hidden {
            let outs = [
                TrialOut {
                    out: &mut c0.u[l + 1],
                    grad: &mut c0.gu[l + 1],
                    slot: phi_next[0],
                },
                TrialOut {
                    out: &mut c1.u[l + 1],
                    grad: &mut c1.gu[l + 1],
                    slot: phi_next[1],
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
            // The output layer: each candidate written and its loss summed in one pass.
            for (c, a) in a.into_iter().enumerate() {
                let out = &mut self.cand[c].u[l + 1];
                let step = (&self.u[l + 1], a, &self.bmat[l + 1]);
                be.step_loss(out, step, &data.y, self.spec.loss, phi_next[c])?;
            }
            Ok(())
        }
    }
}

impl<B: Backend> Candidate<B> {
    /// Where a W trial's prox step of layer `l` goes: `(W, b)` and the shrink factors.
    fn prox_out(&mut self, l: usize) -> (&mut B::Mat, &mut B::Mat, &mut B::Mat) {
        (
            &mut self.trial.w[l],
            &mut self.trial.b[l],
            &mut self.shrink[l],
        )
    }

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
