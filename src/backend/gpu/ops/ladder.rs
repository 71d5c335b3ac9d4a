//! The walker of `shaders/ladder.wgsl`: a ladder decided on the device (method §6,
//! `backend/ladder.rs`). Pairs go four per dispatch (a block moves three or four: one
//! dispatch per block), chunk by chunk (a destination and its
//! candidates have one shape, hence one chunking); every dispatch decides for itself from
//! the same slots, so the decision needs no dispatch of its own. A ladder that fails also
//! zeroes the workgroup counts of the dispatches recorded after it (they are conditional,
//! `recorder.rs`): the host redoes that work after its readback.

use crate::backend::gpu::params::Params;
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::recorder::COND_CAP;
use crate::backend::gpu::storage::GpuMat;
use crate::backend::gpu::{lock, BResult, GpuBackend};
use crate::backend::ladder::LadderTest;
use crate::backend::LADDER;

/// (state, candidate 0, candidate 1) pairs one `ladder_select` dispatch copies.
const PAIRS_PER_DISPATCH: usize = 4;

impl GpuBackend {
    pub(super) fn ladder(
        &self,
        pairs: &mut [(&mut GpuMat, [&GpuMat; LADDER])],
        test: &LadderTest,
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        // The trials' sums must be in the slots before any dispatch reads them.
        self.finalize_pending(&mut st)?;
        let mut params = Params::ladder(test);
        // A failed ladder voids what is recorded after it until the next submit: the
        // dispatches from this entry of the conditional arena on (`recorder.rs`).
        params.ld[4] = st.cond_cpu.len() as u32 / 3;
        params.ld[5] = COND_CAP;
        let dummy = st.dummy.clone();
        let slots = st.slots.clone();
        let cond = st.cond_buf.clone();
        for group in pairs.chunks(PAIRS_PER_DISPATCH) {
            let chunks = group.iter().map(|(d, _)| d.chunks.len()).max().unwrap_or(0);
            for k in 0..chunks {
                // Per pair: (state, candidate 0, candidate 1) buffers of chunk k, and the
                // length; an absent pair (or chunk) copies nothing.
                let part = |i: usize| {
                    group.get(i).and_then(|(d, c)| {
                        let len = d.rows * d.chunks.get(k)?.cols;
                        let b = |m: &GpuMat| m.chunks[k].buf.clone();
                        Some(([b(d), b(c[0]), b(c[1])], len))
                    })
                };
                let parts: [_; PAIRS_PER_DISPATCH] = std::array::from_fn(part);
                let Some(any) = parts.iter().flatten().next().cloned() else {
                    continue;
                };
                // An absent pair writes the dummy and reads a present pair's candidates
                // (read-only bindings may repeat a buffer; a written one may not).
                let filled = parts.map(|p| {
                    p.unwrap_or_else(|| {
                        let [_, x, y] = any.0.clone();
                        ([dummy.clone(), x, y], 0)
                    })
                });
                let lens = filled.each_ref().map(|f| f.1);
                let mut p = params.sized(lens[0], lens[1]);
                p.ld[8] = lens[2] as u32;
                p.ld[9] = lens[3] as u32;
                let mut bufs: Vec<&wgpu::Buffer> = filled.iter().flat_map(|f| &f.0).collect();
                bufs.push(&slots);
                bufs.push(&cond);
                let n = lens.into_iter().max().unwrap_or(0).max(1);
                let groups = [
                    n.div_ceil(super::WG).min(self.caps.ew_x).max(1) as u32,
                    1,
                    1,
                ];
                self.dispatch(
                    &mut st,
                    K::LadderSelect,
                    bytemuck::bytes_of(&p),
                    &bufs,
                    groups,
                )?;
            }
        }
        st.conditional = true;
        Ok(())
    }
}
