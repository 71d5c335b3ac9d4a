//! method §6, a sweep recorded whole. Each block's first ladder (steps `2t_last`, `t_last`)
//! is decided on the device, which also swaps the accepted candidate into the state
//! (`Backend::ladder_select`, `backend/ladder.rs`), so the host records every block of the
//! sweep without waiting and reads back once, at its end: each block's decision and its
//! term of the sweep residual. Blocks mostly accept in their first ladder (measured on
//! teacher: the big blocks at its second candidate in 72 and 84 of 89 steps).
//!
//! Where a block's first ladder failed (sequential backtracking would halve again), every
//! later block of the sweep skipped its swap, so the state is the one that block started
//! from; the host resumes there, with the block's third step and a readback per ladder,
//! and records the rest of the sweep after it. The decisions are those of the host-driven sweep:
//! the same test on the same sums (`LadderTest::decide`, which the host uses too; on the
//! CPU backend bit for bit, in `f64`). Passes count the method's work as in the
//! host-driven sweep: the skipped blocks' recorded work is not charged, and the resumed
//! block's preparation is charged once.

use super::{Lifted, Resume, SweepReport};
use crate::backend::ladder::{REPORT_DECISION, REPORT_MAP2};
use crate::backend::{Axis, BResult, Backend, Slot, LADDER};
use crate::problem::DeviceData;
use crate::solver::slots::{Readback, REPORT};

/// A block recorded in a sweep: `V_l` or `(W_l, b_l)`, its ladder's steps, where its
/// report is, and the passes spent before it.
#[derive(Clone, Copy, Debug)]
struct Recorded {
    v: bool,
    l: usize,
    ts: [f64; LADDER],
    report: Slot,
    passes: f64,
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
            let done = self.record_from(be, data, next, stop, &mut rep)?;
            if done.is_empty() {
                break;
            }
            let mut rb = Readback::new();
            for b in &done {
                rb.slot(b.report + REPORT_DECISION)
                    .slot(b.report + REPORT_MAP2);
            }
            let vals = rb.read(be)?;
            next = usize::MAX;
            for b in &done {
                let choice = vals.get(b.report + REPORT_DECISION) as usize;
                let map2 = vals.get(b.report + REPORT_MAP2);
                if choice < LADDER {
                    rep.trials += choice + 1;
                    res2 += map2;
                    let step = if b.v {
                        &mut self.step_v
                    } else {
                        &mut self.step_w
                    };
                    step[b.l] = b.ts[choice];
                    continue;
                }
                // Both candidates failed: the later blocks skipped (their work, and what
                // they left in the workspaces, is void). This block backtracks on the host,
                // from its third step; recording goes on after it.
                self.known.forget();
                self.passes = b.passes;
                self.resume = Some(Resume {
                    t: 0.5 * b.ts[LADDER - 1],
                    trials: LADDER,
                    map2,
                });
                rep.stopped = false;
                let block = if b.v { Self::v_block } else { Self::w_block };
                self.block_steps(be, data, b.l, 1, &mut rep, &mut res2, block)?;
                next = 2 * b.l + usize::from(b.v) + 1;
                break;
            }
        }
        rep.residual = res2.sqrt();
        Ok(rep)
    }

    /// Record the sweep's blocks from block `first` on (each W block after the layer's
    /// budget check, as the host-driven sweep makes it); `rep.stopped` when a budget ended
    /// the sweep.
    fn record_from(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        first: usize,
        stop: &dyn Fn(f64) -> bool,
        rep: &mut SweepReport,
    ) -> BResult<Vec<Recorded>> {
        let mut done: Vec<Recorded> = Vec::with_capacity(2 * self.spec.layers());
        for b in first..2 * self.spec.layers() - 1 {
            let (l, v) = (b / 2, b % 2 == 1);
            if !v && stop(self.passes) {
                rep.stopped = true;
                break;
            }
            let report = REPORT.at(b);
            let passes = self.passes;
            let prev = done.last().map(|r| r.report);
            let ts = if v {
                self.v_record(be, data, l, (prev, report))?
            } else {
                self.w_record(be, data, l, (prev, report))?
            };
            done.push(Recorded {
                v,
                l,
                ts,
                report,
                passes,
            });
        }
        Ok(done)
    }
}
