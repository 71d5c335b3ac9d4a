//! method §6, a sweep recorded whole. Each block's first ladder (steps `2t_last`, `t_last`)
//! is decided on the device, which also swaps the accepted candidate into the state
//! (`Backend::ladder_select`, `backend/ladder.rs`), so the host records every block of the
//! sweep without waiting and reads back once, at its end: each block's decision and its
//! term of the sweep residual. Blocks mostly accept in their first ladder (measured on
//! teacher: the big blocks at its second candidate in 72 and 84 of 89 steps).
//!
//! Where a block's ladder failed (sequential backtracking would halve again), every later
//! block of the sweep skipped its swap, so the state is the one that block started from.
//! The host records again from there: the block's next ladder (its third and fourth
//! steps), again decided on the device, and the rest of the sweep after it, so a step
//! that was off by a little costs one more readback, not one for the ladder and one for
//! the rest. A step that is far off, as in a run's first sweep, would fail ladder after
//! ladder, and each time the rest of the sweep would be recorded and voided: a block whose
//! step is still the initial guess (no ladder of it has passed yet; recording stops before
//! it), and a block after its second failed ladder, backtracks on the host (`w_block`,
//! `v_block`: `TRIAL_SETS` ladders recorded before each readback and decided on the host in
//! order, no ladder dispatch, and the give-up after `MAX_BACKTRACK` trials), and recording
//! goes on after it. On digits' first sweep that is 5 readbacks for 33 trials, not 18.
//!
//! The decisions are those of the host-driven sweep: the same test on the same sums
//! (`LadderTest::decide`, which the host uses too; on the CPU backend bit for bit, in
//! `f64`). Passes count the method's work as in the host-driven sweep: the skipped
//! blocks' recorded work is not charged, and a resumed block's preparation is charged
//! once.

use super::{Lifted, Resume, SweepReport};
use crate::backend::ladder::{REPORT_DECISION, REPORT_MAP2};
use crate::backend::{Axis, BResult, Backend, Slot, LADDER};
use crate::problem::DeviceData;
use crate::solver::slots::{Readback, REPORT, TRIAL_SETS};

/// A block recorded in a sweep: `V_l` or `(W_l, b_l)`, its ladder's steps, where its
/// report is, the passes spent before it, and the earlier failed ladders it resumes.
#[derive(Clone, Copy, Debug)]
struct Recorded {
    v: bool,
    l: usize,
    ts: [f64; LADDER],
    report: Slot,
    passes: f64,
    resumed: Option<Resume>,
}

impl Recorded {
    /// The block's place in the sweep: `W_l` at `2l`, `V_l` at `2l + 1`.
    fn block(&self) -> usize {
        2 * self.l + usize::from(self.v)
    }
}

impl<B: Backend> Lifted<B> {
    /// Whether a sweep of `k` steps per block can be recorded whole: one step per block (a
    /// second step would depend on the first's outcome), row groups everywhere (a
    /// column-grouped trial evaluates one candidate per ladder, with a matmul each), and no
    /// exact blocks.
    pub(super) fn can_record(&self, k: usize) -> bool {
        self.record
            && k == 1
            && self.exact.is_none()
            && self.spec.axes.iter().all(|&a| a == Axis::Rows)
    }

    /// [`Lifted::next_sweep`] with one step per block, recorded whole (module comment).
    pub(super) fn recorded_sweep(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        stop: &dyn Fn(f64) -> bool,
    ) -> BResult<SweepReport> {
        let mut rep = SweepReport::default();
        let mut res2 = 0.0;
        // Blocks in sweep order: W_l at 2l, V_l at 2l + 1.
        let mut next = 0;
        while next < 2 * self.spec.layers() - 1 {
            if self.resume.is_none() && !self.stepped[next] {
                // The block's step is still the initial guess: the host backtracks.
                let (l, v) = (next / 2, next % 2 == 1);
                if !v && stop(self.passes) {
                    rep.stopped = true;
                    break;
                }
                let t_last = if v { self.step_v[l] } else { self.step_w[l] };
                self.resume = Some(Resume {
                    t: 2.0 * t_last,
                    trials: 0,
                    map2: None,
                    ladders: TRIAL_SETS,
                });
                self.host_block(be, data, next, &mut rep, &mut res2)?;
                next += 1;
                continue;
            }
            let (done, until) = self.record_from(be, data, next, stop, &mut rep)?;
            if done.is_empty() {
                break;
            }
            let mut rb = Readback::new();
            for b in &done {
                rb.slot(b.report + REPORT_DECISION)
                    .slot(b.report + REPORT_MAP2);
            }
            let vals = rb.read(be)?;
            next = until;
            for b in &done {
                let choice = vals.get(b.report + REPORT_DECISION) as usize;
                let map2 = vals.get(b.report + REPORT_MAP2);
                // A W block's residual term is its first candidate's, from its first
                // ladder; a V block's does not depend on the step.
                let first_map2 = match b.resumed {
                    Some(r) if !b.v => r.map2.unwrap_or(map2),
                    _ => map2,
                };
                let before = b.resumed.map_or(0, |r| r.trials);
                if choice < LADDER {
                    self.stepped[b.block()] = true;
                    rep.trials += before + choice + 1;
                    res2 += first_map2;
                    let step = if b.v {
                        &mut self.step_v
                    } else {
                        &mut self.step_w
                    };
                    step[b.l] = b.ts[choice];
                    continue;
                }
                // Both candidates failed: the later blocks skipped (their work, and what
                // they left in the workspaces, is void). This block backtracks from its
                // next step: its second ladder recorded again with the rest of the sweep
                // after it, any later one on the host (module comment).
                self.known.forget();
                self.passes = b.passes;
                let at = b.block();
                // Far off: the host backtracks, several ladders to a readback.
                let far = b.resumed.is_some() || !self.stepped[at];
                let resume = Resume {
                    t: 0.5 * b.ts[LADDER - 1],
                    trials: before + LADDER,
                    map2: Some(first_map2),
                    ladders: if far { TRIAL_SETS } else { 1 },
                };
                self.resume = Some(resume);
                rep.stopped = false;
                next = at;
                if far {
                    self.host_block(be, data, at, &mut rep, &mut res2)?;
                    next += 1;
                }
                break;
            }
        }
        rep.residual = res2.sqrt();
        Ok(rep)
    }

    /// Block `at` of the sweep backtracked on the host from `self.resume`; a block that
    /// moved has a measured step.
    fn host_block(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        at: usize,
        rep: &mut SweepReport,
        res2: &mut f64,
    ) -> BResult<()> {
        let block = if at % 2 == 1 {
            Self::v_block
        } else {
            Self::w_block
        };
        let rejected = rep.rejected_blocks;
        self.block_steps(be, data, at / 2, 1, rep, res2, block)?;
        self.stepped[at] |= rep.rejected_blocks == rejected;
        Ok(())
    }

    /// Record the sweep's blocks from block `first` on (each W block after the layer's
    /// budget check, as the host-driven sweep makes it), up to the first later block whose
    /// step is still the initial guess; `rep.stopped` when a budget ended the sweep. Also
    /// returns the block after the last recorded one, or `usize::MAX` at the sweep's end.
    fn record_from(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        first: usize,
        stop: &dyn Fn(f64) -> bool,
        rep: &mut SweepReport,
    ) -> BResult<(Vec<Recorded>, usize)> {
        let mut done: Vec<Recorded> = Vec::with_capacity(2 * self.spec.layers());
        for b in first..2 * self.spec.layers() - 1 {
            let (l, v) = (b / 2, b % 2 == 1);
            if b > first && !self.stepped[b] {
                return Ok((done, b));
            }
            // A resumed block passed its budget check when it was first recorded.
            let resumed = if b == first { self.resume.take() } else { None };
            if !v && resumed.is_none() && stop(self.passes) {
                rep.stopped = true;
                break;
            }
            let report = REPORT.at(b);
            let passes = self.passes;
            let prev = done.last().map(|r| r.report);
            let t_last = if v { self.step_v[l] } else { self.step_w[l] };
            let t = resumed.map_or(2.0 * t_last, |r| r.t);
            let ts = if v {
                self.v_record(be, data, (l, t), (prev, report))?
            } else {
                self.w_record(be, data, (l, t), (prev, report))?
            };
            done.push(Recorded {
                v,
                l,
                ts,
                report,
                passes,
                resumed,
            });
        }
        Ok((done, usize::MAX))
    }
}
