//! Column gathers for minibatches (method §7, `shaders/gather.wgsl`): the indices go into the
//! gather-index arena, written to the device with the next submit like the uniforms, and
//! every (out chunk, src chunk) pair gets one dispatch that copies the columns it holds.

use super::grid;
use crate::backend::gpu::params::Params;
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::recorder::UNIFORM_ARENA;
use crate::backend::gpu::storage::GpuMat;
use crate::backend::gpu::{lock, BResult, GpuBackend};

impl GpuBackend {
    /// `out[:, j] ← src[:, idx[j]]` (indices checked by the caller's contract).
    pub(super) fn gather(&self, out: &mut GpuMat, src: &GpuMat, idx: &[u32]) -> BResult<()> {
        if idx.is_empty() || src.rows == 0 {
            return Ok(());
        }
        let mut st = lock(&self.st);
        let cap = (st.idx_buf.size() / 4) as usize;
        if st.idx_cpu.len() + idx.len() > cap {
            self.flush(&mut st)?;
            if idx.len() > cap {
                st.idx_buf = self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("gather index arena"),
                    size: (idx.len().next_power_of_two() * 4) as u64,
                    usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                });
            }
        }
        let mut ioff = st.idx_cpu.len();
        st.idx_cpu.extend_from_slice(idx);
        let idx_buf = st.idx_buf.clone();
        for oc in &out.chunks {
            for sc in &src.chunks {
                if st.uni_cpu.len() as u64 + self.uni_stride > UNIFORM_ARENA {
                    // The submit below writes (and then clears) the index arena: append the
                    // indices again for the dispatches still to come.
                    self.flush(&mut st)?;
                    ioff = st.idx_cpu.len();
                    st.idx_cpu.extend_from_slice(idx);
                }
                let p = Params::gather(src.rows, oc.cols, sc.col0, sc.cols, ioff + oc.col0);
                let g = grid(oc.cols, src.rows, self.caps.ew_x, self.caps.ew_y);
                self.dispatch(
                    &mut st,
                    K::Gather,
                    bytemuck::bytes_of(&p),
                    &[&oc.buf, &sc.buf, &idx_buf],
                    g,
                )?;
            }
        }
        Ok(())
    }
}
