//! Two-stage reductions (`shaders/reduce.wgsl`): stage-1 kernels (`dot`, `sq_norm`, the
//! constraint residual of `shaders/residual.wgsl`, the losses, the group norms) write one vec4
//! of partial sums per workgroup, and `finalize` sums them into scalar slots. Also the
//! bias-gradient row sums, which reduce along rows into a matrix instead of a slot.

use super::{grid, WG};
use crate::backend::gpu::params::Params;
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::recorder::{PendingSum, State, MAX_PENDING, PART_CAP};
use crate::backend::gpu::storage::{segments, GpuMat};
use crate::backend::gpu::{kernel_err, lock, BResult, GpuBackend};
use crate::backend::{Backend, Slot};

/// Where a reduction's sums go: slots `slot..slot + k`, lane `q` scaled by `scale[q]`.
#[derive(Clone, Copy, Debug)]
pub(super) struct Sums {
    slot: Slot,
    k: u32,
    scale: [f32; 4],
}

impl Sums {
    /// `k` plain sums into `slot..slot + k`.
    pub(super) fn at(slot: Slot, k: u32) -> Self {
        Sums {
            slot,
            k,
            scale: [1.0; 4],
        }
    }

    /// One sum times `inv_n` into `slot` (a mean over the `N` columns).
    pub(super) fn mean(slot: Slot, inv_n: f32) -> Self {
        Sums {
            slot,
            k: 1,
            scale: [inv_n, 1.0, 1.0, 1.0],
        }
    }
}

/// A reduction's matrices, and per-row vectors (`rows(mats[0]) × 1`, one chunk) bound
/// after them.
struct Operands<'a> {
    mats: &'a [&'a GpuMat],
    rows_of: &'a [&'a GpuMat],
}

/// A reduction in progress: which slots receive its sums, and whether they add to them
/// (after its first part went to stage 2).
pub(super) struct Red {
    accumulate: bool,
    sums: Sums,
}

impl Red {
    pub(super) fn new(sums: Sums) -> Self {
        Red {
            accumulate: false,
            sums,
        }
    }
}

impl GpuBackend {
    /// Record a stage-1 reduction dispatch; when the partials would overflow, the part of
    /// `red` recorded so far and every pending reduction go to stage 2 first.
    pub(super) fn red_dispatch(
        &self,
        st: &mut State,
        red: &mut Red,
        k: K,
        mut p: Params,
        bufs: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> BResult<()> {
        let n = groups[0] * groups[1] * groups[2];
        if n == 0 {
            return Ok(());
        }
        if n > PART_CAP {
            return Err(kernel_err(
                k.name(),
                format!("{n} partial sums exceed the capacity {PART_CAP}"),
            ));
        }
        if st.part_next + n > PART_CAP {
            self.finalize(st, red)?;
            self.finalize_pending(st)?;
        }
        p.part_off = st.part_next;
        let partials = st.partials.clone();
        let mut all: Vec<&wgpu::Buffer> = bufs.to_vec();
        all.push(&partials);
        self.dispatch(st, k, bytemuck::bytes_of(&p), &all, groups)?;
        st.part_next += n;
        Ok(())
    }

    /// End `red`'s stage 1: its sums go to its slots with the next stage-2 dispatch, which
    /// runs once [`MAX_PENDING`] reductions wait (or the slots are read). Reductions
    /// recorded one after another thus share one `finalize` instead of one each.
    pub(super) fn finalize(&self, st: &mut State, red: &mut Red) -> BResult<()> {
        let s = red.sums;
        debug_assert!(
            s.scale[1..].iter().all(|&x| x == 1.0),
            "only lane 0 is scaled"
        );
        st.pending.push(PendingSum {
            end: st.part_next,
            slot: s.slot as u32,
            k: s.k,
            scale0: s.scale[0],
            accumulate: red.accumulate,
        });
        red.accumulate = true;
        if st.pending.len() == MAX_PENDING {
            self.finalize_pending(st)?;
        }
        Ok(())
    }

    /// Stage 2 of every pending reduction, in order, in one dispatch; frees the partials.
    pub(crate) fn finalize_pending(&self, st: &mut State) -> BResult<()> {
        if st.pending.is_empty() {
            return Ok(());
        }
        let p = Params::finalize(&st.pending);
        let (partials, slots) = (st.partials.clone(), st.slots.clone());
        self.dispatch(
            st,
            K::Finalize,
            bytemuck::bytes_of(&p),
            &[&partials, &slots],
            [1, 1, 1],
        )?;
        st.pending.clear();
        st.part_next = 0;
        Ok(())
    }

    /// Two-stage reduction kernel `kern` with scalars `params` over segments of `mats`.
    /// `per_column`: the kernel loops over rows itself (one invocation per column).
    pub(super) fn reduce(
        &self,
        kern: K,
        mats: &[&GpuMat],
        params: Params,
        sums: Sums,
        per_column: bool,
    ) -> BResult<()> {
        self.reduce_rows(kern, mats, &[], params, sums, per_column)
    }

    /// [`GpuBackend::reduce`] with per-row vectors `rows_of` (`rows(mats[0]) × 1`, one
    /// chunk) bound after the matrices, as operands `mats.len()..`.
    pub(super) fn reduce_rows(
        &self,
        kern: K,
        mats: &[&GpuMat],
        rows_of: &[&GpuMat],
        params: Params,
        sums: Sums,
        per_column: bool,
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        let mut red = Red::new(sums);
        let ops = Operands { mats, rows_of };
        self.stage1(&mut st, &mut red, kern, ops, params, per_column)?;
        self.finalize(&mut st, &mut red)
    }

    /// A two-candidate stage 1 (`kern` writes candidate 0's partials, then candidate 1's
    /// after all of them) of `mats` (one chunk each, `mats[0]`'s shape), the two sums then
    /// pending for `sums[0]` and `sums[1]`.
    pub(super) fn reduce_pair(
        &self,
        kern: K,
        mats: &[&GpuMat],
        params: Params,
        sums: [Sums; 2],
    ) -> BResult<()> {
        let (rows, cols) = (mats[0].rows, mats[0].cols);
        let g = grid(cols, rows, self.caps.red_x, self.caps.red_y);
        let mut p = params.sized(rows, cols);
        p.bind(0, 0, cols);
        let bufs: Vec<&wgpu::Buffer> = mats.iter().map(|m| &m.chunks[0].buf).collect();
        self.pair_dispatch(kern, p, &bufs, g, sums)
    }

    /// One dispatch of a two-candidate stage 1 over `bufs` (the partials bound after them)
    /// on grid `g`: candidate 0's partials, then candidate 1's after all of them, the two
    /// sums then pending for `sums[0]` and `sums[1]`.
    pub(super) fn pair_dispatch(
        &self,
        kern: K,
        mut p: Params,
        bufs: &[&wgpu::Buffer],
        g: [u32; 3],
        sums: [Sums; 2],
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        let n = g[0] * g[1] * g[2];
        if 2 * n > PART_CAP {
            let msg = format!("2 × {n} partial sums exceed the capacity {PART_CAP}");
            return Err(kernel_err(kern.name(), msg));
        }
        // Both candidates' partials and pending sums must fit before any stage 2.
        if st.part_next + 2 * n > PART_CAP || st.pending.len() + 2 > MAX_PENDING {
            self.finalize_pending(&mut st)?;
        }
        p.part_off = st.part_next;
        let partials = st.partials.clone();
        let mut all = bufs.to_vec();
        all.push(&partials);
        self.dispatch(&mut st, kern, bytemuck::bytes_of(&p), &all, g)?;
        for s in sums {
            st.part_next += n;
            self.finalize(&mut st, &mut Red::new(s))?;
        }
        Ok(())
    }

    /// `step_diff`'s sums of each `[new, old, g]` in `sets`, without storing `Δ`, added
    /// into `slot, slot + 1` by one finalize.
    pub(super) fn diff_sums(&self, sets: &[[&GpuMat; 3]], slot: Slot) -> BResult<()> {
        let mut st = lock(&self.st);
        let mut red = Red::new(Sums::at(slot, 2));
        for set in sets {
            let ops = Operands {
                mats: set,
                rows_of: &[],
            };
            self.stage1(&mut st, &mut red, K::DiffSums, ops, Params::plain(), false)?;
        }
        self.finalize(&mut st, &mut red)
    }

    /// Record `kern`'s stage-1 dispatches over the column segments of `ops` into `red`.
    fn stage1(
        &self,
        st: &mut State,
        red: &mut Red,
        kern: K,
        Operands { mats, rows_of }: Operands<'_>,
        params: Params,
        per_column: bool,
    ) -> BResult<()> {
        let rows = mats[0].rows;
        for seg in segments(mats) {
            let mut p = params.sized(rows, seg.len);
            let mut bufs: Vec<&wgpu::Buffer> = Vec::with_capacity(mats.len() + rows_of.len());
            for (q, m) in mats.iter().enumerate() {
                let (c, off) = seg.at[q];
                p.bind(q, off, m.chunks[c].cols);
                bufs.push(&m.chunks[c].buf);
            }
            for (q, e) in rows_of.iter().enumerate() {
                p.bind(mats.len() + q, 0, e.chunks[0].cols);
                bufs.push(&e.chunks[0].buf);
            }
            let g = if per_column {
                if rows == 0 {
                    continue;
                }
                [seg.len.div_ceil(WG).min(self.caps.ew_x) as u32, 1, 1]
            } else {
                grid(seg.len, rows, self.caps.red_x, self.caps.red_y)
            };
            self.red_dispatch(st, red, kern, p, &bufs, g)?;
        }
        Ok(())
    }

    /// `out ← A·1 + β·out`, one workgroup per row, column segment by column segment (β
    /// applies to the first segment only; the others add).
    pub(super) fn row_sums(&self, out: &mut GpuMat, a: &GpuMat, beta: f32) -> BResult<()> {
        if a.cols == 0 {
            return if beta == 0.0 {
                self.fill(out, 0.0)
            } else {
                self.scale(out, beta)
            };
        }
        let mut st = lock(&self.st);
        for (t, seg) in segments(&[a]).iter().enumerate() {
            let (c, off) = seg.at[0];
            let beta_t = if t == 0 { beta } else { 1.0 };
            let mut p = Params::row_sum(beta_t).sized(a.rows, seg.len);
            p.bind(0, off, a.chunks[c].cols);
            let g = [a.rows.min(self.caps.rows) as u32, 1, 1];
            let bufs = [&a.chunks[c].buf, &out.chunks[0].buf];
            self.dispatch(&mut st, K::RowSum, bytemuck::bytes_of(&p), &bufs, g)?;
        }
        Ok(())
    }
}
