//! The walker of `shaders/ladder.wgsl`: a ladder decided on the device (method §6,
//! `backend/ladder.rs`). Pairs go two per dispatch, chunk by chunk (a destination and its
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
        for two in pairs.chunks(2) {
            let chunks = two.iter().map(|(d, _)| d.chunks.len()).max().unwrap_or(0);
            for k in 0..chunks {
                // Per pair: (state, candidate 0, candidate 1) buffers of chunk k, and the
                // length; an absent pair (or chunk) copies nothing.
                let part = |i: usize| {
                    two.get(i).and_then(|(d, c)| {
                        let len = d.rows * d.chunks.get(k)?.cols;
                        let b = |m: &GpuMat| m.chunks[k].buf.clone();
                        Some(([b(d), b(c[0]), b(c[1])], len))
                    })
                };
                let (a, b) = (part(0), part(1));
                let Some(any) = a.clone().or_else(|| b.clone()) else {
                    continue;
                };
                // An absent pair writes the dummy and reads the present pair's candidates
                // (read-only bindings may repeat a buffer; a written one may not).
                let fill = |p: Option<([wgpu::Buffer; 3], usize)>| {
                    p.unwrap_or_else(|| {
                        let [_, x, y] = any.0.clone();
                        ([dummy.clone(), x, y], 0)
                    })
                };
                let ((ba, na), (bb, nb)) = (fill(a), fill(b));
                let p = params.sized(na, nb);
                let bufs = [
                    &ba[0], &ba[1], &ba[2], &bb[0], &bb[1], &bb[2], &slots, &cond,
                ];
                let n = na.max(nb).max(1);
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
