//! The walker of the elementwise kernels (`shaders/elementwise.wgsl`: axpby and friends,
//! leaky ReLU and its derivative, the multiplier update, the matmul-free W-trial
//! pre-activation of method §6; and Adam of `shaders/optim.wgsl`): one dispatch per column
//! segment of the operands.

use super::grid;
use crate::backend::gpu::params::Params;
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::storage::{segments, GpuMat};
use crate::backend::gpu::{lock, BResult, GpuBackend};

impl GpuBackend {
    /// Elementwise kernel `k` with scalars `params` over segments of `mats` (bound first, in
    /// order) plus single-chunk broadcast operands `extra` (bound after, addressed by row).
    pub(super) fn elementwise(
        &self,
        k: K,
        mats: &[&GpuMat],
        extra: &[&GpuMat],
        params: Params,
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        let rows = mats[0].rows;
        for seg in segments(mats) {
            let mut p = params.sized(rows, seg.len);
            let mut bufs: Vec<&wgpu::Buffer> = Vec::with_capacity(mats.len() + extra.len());
            for (q, m) in mats.iter().enumerate() {
                let (c, off) = seg.at[q];
                p.bind(q, off, m.chunks[c].cols);
                bufs.push(&m.chunks[c].buf);
            }
            for (q, e) in extra.iter().enumerate() {
                p.bind(mats.len() + q, 0, e.chunks[0].cols);
                bufs.push(&e.chunks[0].buf);
            }
            self.dispatch(
                &mut st,
                k,
                bytemuck::bytes_of(&p),
                &bufs,
                grid(seg.len, rows, self.caps.ew_x, self.caps.ew_y),
            )?;
        }
        Ok(())
    }
}
