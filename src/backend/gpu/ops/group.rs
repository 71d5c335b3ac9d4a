//! Group sparsity (`shaders/group_prox.wgsl`): group norms and the group soft-thresholding
//! prox of method §3. A weight matrix in one chunk (the usual case) takes one fused pass; a
//! chunked one goes through a per-group scratch vector: squared norms chunk by chunk, then
//! the factors (and sums), then the scaling.

use super::reduce::{Red, Sums};
use super::{grid, WG};
use crate::backend::gpu::params::Params;
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::recorder::State;
use crate::backend::gpu::storage::{segments, GpuMat};
use crate::backend::gpu::{lock, BResult, GpuBackend};
use crate::backend::{Axis, Slot};

impl GpuBackend {
    /// Make the group scratch vector hold at least `n` floats.
    fn scratch(&self, st: &mut State, n: usize) {
        let need = (n.max(1) * 4) as u64;
        if st.scratch.size() < need {
            st.scratch = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("group scratch"),
                size: need.next_power_of_two(),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
        }
    }

    /// scratch[g] ← ‖group g‖² for every group of `w` along `axis`.
    fn group_sq(&self, st: &mut State, w: &GpuMat, axis: Axis) -> BResult<usize> {
        let groups = match axis {
            Axis::Rows => w.rows,
            Axis::Cols => w.cols,
        };
        self.scratch(st, groups);
        let scratch = st.scratch.clone();
        if axis == Axis::Rows && w.cols == 0 && groups > 0 {
            self.encoder(st)
                .clear_buffer(&scratch, 0, Some(groups as u64 * 4));
        }
        for (t, seg) in segments(&[w]).iter().enumerate() {
            let (c, off) = seg.at[0];
            let bufs = [&w.chunks[c].buf, &scratch];
            // Row norms add up over column segments; column norms lie in one segment each.
            let (k, accumulate, g) = match axis {
                Axis::Rows => (K::RowSq, t > 0, [w.rows.min(self.caps.rows) as u32, 1, 1]),
                Axis::Cols => (
                    K::ColSq,
                    false,
                    [seg.len.div_ceil(WG).min(self.caps.ew_x) as u32, 1, 1],
                ),
            };
            let mut p = Params::group_sq(seg.j0, accumulate).sized(w.rows, seg.len);
            p.bind(0, off, w.chunks[c].cols);
            self.dispatch(st, k, bytemuck::bytes_of(&p), &bufs, g)?;
        }
        Ok(groups)
    }

    /// Single-chunk group kernels: norms (and with `thresh`, the prox with factors written
    /// to `factors`) in one pass, then the sums into `slot, slot+1`.
    fn group_fused(
        &self,
        st: &mut State,
        w: &GpuMat,
        axis: Axis,
        thresh: Option<f32>,
        factors: &wgpu::Buffer,
        slot: Slot,
    ) -> BResult<()> {
        let mut red = Red::new(Sums::at(slot, 2));
        let mut p = Params::group_fused(thresh).sized(w.rows, w.cols);
        p.bind(0, 0, w.cols);
        let (k, g) = match axis {
            Axis::Rows if self.caps.thread_per_row => (
                K::RowsFusedThread,
                [w.rows.div_ceil(WG).min(self.caps.rows) as u32, 1, 1],
            ),
            Axis::Rows => (
                K::RowsFused,
                [w.rows.min(self.caps.rows).min(4096) as u32, 1, 1],
            ),
            Axis::Cols => (
                K::ColsFused,
                [
                    w.cols.div_ceil(WG).min(self.caps.red_x * self.caps.red_y) as u32,
                    1,
                    1,
                ],
            ),
        };
        self.red_dispatch(st, &mut red, k, p, &[&w.chunks[0].buf, factors], g)?;
        self.finalize(st, &mut red)
    }

    /// The prox `w ← w·max(0, 1 − thresh/‖w‖)` per group, factors into `shrink`, sums
    /// (`Σ‖group‖`, zero groups) after the prox into `slot, slot+1`.
    pub(super) fn prox_groups(
        &self,
        w: &mut GpuMat,
        thresh: f32,
        axis: Axis,
        shrink: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        if w.chunks.len() == 1 && shrink.chunks.len() == 1 {
            let f = &shrink.chunks[0].buf;
            return self.group_fused(&mut st, w, axis, Some(thresh), f, slot);
        }
        let groups = self.group_sq(&mut st, w, axis)?;
        let scratch = st.scratch.clone();
        let mut red = Red::new(Sums::at(slot, 2));
        let p = Params::prox_factor(groups, thresh);
        let g = [groups.div_ceil(WG).min(self.caps.red_x) as u32, 1, 1];
        self.red_dispatch(&mut st, &mut red, K::ProxFactor, p, &[&scratch], g)?;
        self.finalize(&mut st, &mut red)?;
        let k = match axis {
            Axis::Rows => K::ScaleRows,
            Axis::Cols => K::ScaleCols,
        };
        for seg in segments(&[w]) {
            let (c, off) = seg.at[0];
            let mut p = Params::scale_groups(seg.j0).sized(w.rows, seg.len);
            p.bind(0, off, w.chunks[c].cols);
            let g = grid(seg.len, w.rows, self.caps.ew_x, self.caps.ew_y);
            let bufs = [&w.chunks[c].buf, &scratch];
            self.dispatch(&mut st, k, bytemuck::bytes_of(&p), &bufs, g)?;
        }
        let enc = self.encoder(&mut st);
        for ch in &shrink.chunks {
            let n = (shrink.rows * ch.cols) as u64;
            if n > 0 {
                enc.copy_buffer_to_buffer(&scratch, ch.col0 as u64 * 4, &ch.buf, 0, n * 4);
            }
        }
        self.errors.check("group_prox")
    }

    /// [`crate::backend::Backend::prox_step`] for row groups with every operand in one
    /// chunk: one pass (a workgroup or an invocation per row), then the four sums.
    pub(super) fn prox_step_rows(
        &self,
        (w_new, b_new): (&GpuMat, &GpuMat),
        shrink: &GpuMat,
        (w, b): (&GpuMat, &GpuMat),
        (gw, gb): (&GpuMat, &GpuMat),
        (t, thresh): (f32, f32),
        slot: Slot,
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        let mut red = Red::new(Sums::at(slot, 4));
        let mut p = Params::prox_step(t, thresh).sized(w.rows, w.cols);
        p.bind(0, 0, w.cols);
        let (k, g) = if self.caps.thread_per_row {
            let g = w.rows.div_ceil(WG).min(self.caps.rows);
            (K::ProxStepRowsThread, [g as u32, 1, 1])
        } else {
            let g = w.rows.min(self.caps.rows).min(4096);
            (K::ProxStepRows, [g as u32, 1, 1])
        };
        let bufs = [w_new, shrink, w, gw, b_new, b, gb].map(|m| &m.chunks[0].buf);
        self.red_dispatch(&mut st, &mut red, k, p, &bufs, g)?;
        self.finalize(&mut st, &mut red)
    }

    /// [`GpuBackend::prox_step_rows`] of two candidates (`new[c]`, steps `t_thresh[c]`,
    /// sums into `slots[c]`) in one pass over the operands they share.
    #[allow(clippy::type_complexity)]
    pub(super) fn prox_step_rows_pair(
        &self,
        new: [(&GpuMat, &GpuMat, &GpuMat); 2],
        (w, b): (&GpuMat, &GpuMat),
        (gw, gb): (&GpuMat, &GpuMat),
        t_thresh: [(f32, f32); 2],
        slots: [Slot; 2],
    ) -> BResult<()> {
        let (k, g) = if self.caps.thread_per_row {
            let g = w.rows.div_ceil(WG).min(self.caps.rows);
            (K::ProxStepRowsThreadPair, [g as u32, 1, 1])
        } else {
            let g = w.rows.min(self.caps.rows).min(4096);
            (K::ProxStepRowsPair, [g as u32, 1, 1])
        };
        let ts = t_thresh.map(|x| x.0);
        let thr = t_thresh.map(|x| x.1);
        let mut p = Params::prox_step_pair(ts, thr).sized(w.rows, w.cols);
        p.bind(0, 0, w.cols);
        let [(w0, b0, s0), (w1, b1, s1)] = new;
        let bufs = [w0, s0, w, gw, b0, b, gb, w1, s1, b1].map(|m| &m.chunks[0].buf);
        self.pair_dispatch(k, p, &bufs, g, slots.map(|s| Sums::at(s, 4)))
    }

    /// `slot ← Σ‖group‖₂`, `slot+1 ←` number of zero groups.
    pub(super) fn norm_groups(&self, w: &GpuMat, axis: Axis, slot: Slot) -> BResult<()> {
        let mut st = lock(&self.st);
        if w.chunks.len() == 1 {
            let dummy = st.dummy.clone();
            return self.group_fused(&mut st, w, axis, None, &dummy, slot);
        }
        let groups = self.group_sq(&mut st, w, axis)?;
        let scratch = st.scratch.clone();
        let mut red = Red::new(Sums::at(slot, 2));
        let p = Params::norm_stats(groups);
        let g = [groups.div_ceil(WG).min(self.caps.red_x) as u32, 1, 1];
        self.red_dispatch(&mut st, &mut red, K::NormStats, p, &[&scratch], g)?;
        self.finalize(&mut st, &mut red)
    }
}
