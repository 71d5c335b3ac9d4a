//! The [`Backend`] operations of the GPU backend: shape checks, segment walks over column
//! chunks, and dispatch recording.

use super::kernels::{MatmulParams, Params, K};
use super::{kernel_err, lock, BResult, GpuBackend, GpuMat, State, PART_CAP};
use crate::backend::{Axis, Backend, Counters, LossKind, Slot, NUM_SLOTS};
use crate::error::BackendError;
use ndarray::{Array2, ArrayView2};
use std::sync::atomic::Ordering;

/// Workgroup width of the 1-D/2-D kernels.
const WG: usize = 256;
/// Matmul output tile.
const TILE: usize = 64;

/// A maximal column range lying inside one chunk of every operand.
struct Seg {
    j0: usize,
    len: usize,
    /// Per operand: (chunk index, column offset inside the chunk).
    at: [(usize, usize); 8],
}

/// Segments of operands sharing the column axis (all have `mats[0].cols` columns).
fn segments(mats: &[&GpuMat]) -> Vec<Seg> {
    let cols = mats[0].cols;
    let mut out = Vec::new();
    let mut ci = [0usize; 8];
    let mut j = 0;
    while j < cols {
        let mut end = cols;
        let mut at = [(0usize, 0usize); 8];
        for (k, m) in mats.iter().enumerate() {
            while m.chunks[ci[k]].col0 + m.chunks[ci[k]].cols <= j {
                ci[k] += 1;
            }
            let c = &m.chunks[ci[k]];
            end = end.min(c.col0 + c.cols);
            at[k] = (ci[k], j - c.col0);
        }
        out.push(Seg {
            j0: j,
            len: end - j,
            at,
        });
        j = end;
    }
    out
}

fn shape_err(op: &str, msg: String) -> BackendError {
    BackendError::Shape { op: op.into(), msg }
}

fn same(op: &str, what: &str, a: &GpuMat, b: (usize, usize)) -> BResult<()> {
    if (a.rows, a.cols) == b {
        Ok(())
    } else {
        Err(shape_err(
            op,
            format!("{what} is {}×{}, expected {}×{}", a.rows, a.cols, b.0, b.1),
        ))
    }
}

fn check_slots(op: &str, slot: Slot, n: usize) -> BResult<()> {
    if slot + n <= NUM_SLOTS {
        Ok(())
    } else {
        Err(shape_err(
            op,
            format!("slots {slot}..{} out of range (0..{NUM_SLOTS})", slot + n),
        ))
    }
}

fn grid(len: usize, rows: usize, cx: usize, cy: usize) -> [u32; 3] {
    [len.div_ceil(WG).min(cx) as u32, rows.min(cy) as u32, 1]
}

/// A reduction in progress: where the next partials go, and which slots receive the sums.
struct Red {
    off: u32,
    accumulate: bool,
    slot: Slot,
    k: u32,
    scale: [f32; 4],
}

impl Red {
    fn new(slot: Slot, k: u32, scale: [f32; 4]) -> Self {
        Red {
            off: 0,
            accumulate: false,
            slot,
            k,
            scale,
        }
    }
}

impl GpuBackend {
    /// Record a stage-1 reduction dispatch, finalizing first if the partials would overflow.
    fn red_dispatch(
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
        if red.off + n > PART_CAP {
            self.finalize(st, red)?;
        }
        p.part_off = red.off;
        let partials = st.partials.clone();
        let mut all: Vec<&wgpu::Buffer> = bufs.to_vec();
        all.push(&partials);
        self.dispatch(st, k, bytemuck::bytes_of(&p), &all, groups)?;
        red.off += n;
        Ok(())
    }

    /// Stage 2: sum the pending partials into the reduction's slots.
    fn finalize(&self, st: &mut State, red: &mut Red) -> BResult<()> {
        let mut p = Params::new(red.k as usize, red.off as usize);
        p.flags = red.accumulate as u32;
        p.base[0] = red.slot as u32;
        p.f[..4].copy_from_slice(&red.scale);
        let (partials, slots) = (st.partials.clone(), st.slots.clone());
        self.dispatch(
            st,
            K::Finalize,
            bytemuck::bytes_of(&p),
            &[&partials, &slots],
            [1, 1, 1],
        )?;
        red.off = 0;
        red.accumulate = true;
        Ok(())
    }

    /// Elementwise kernel over segments of `mats` (bound first, in order) plus
    /// single-chunk broadcast operands `extra` (bound after, addressed by row).
    fn elementwise(&self, k: K, mats: &[&GpuMat], extra: &[&GpuMat], f: [f32; 8]) -> BResult<()> {
        let mut st = lock(&self.st);
        let rows = mats[0].rows;
        for seg in segments(mats) {
            let mut p = Params::new(rows, seg.len);
            p.f = f;
            let mut bufs: Vec<&wgpu::Buffer> = Vec::with_capacity(mats.len() + extra.len());
            for (q, m) in mats.iter().enumerate() {
                let (c, off) = seg.at[q];
                p.base[q] = off as u32;
                p.ld[q] = m.chunks[c].cols as u32;
                bufs.push(&m.chunks[c].buf);
            }
            for (q, e) in extra.iter().enumerate() {
                p.base[mats.len() + q] = 0;
                p.ld[mats.len() + q] = e.chunks[0].cols as u32;
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

    /// Two-stage reduction kernel over segments of `mats`; sums go to `slot..slot+k`.
    /// `per_column`: the kernel loops over rows itself (one invocation per column).
    #[allow(clippy::too_many_arguments)]
    fn reduce(
        &self,
        kern: K,
        mats: &[&GpuMat],
        f: [f32; 8],
        slot: Slot,
        k: u32,
        scale: [f32; 4],
        per_column: bool,
    ) -> BResult<()> {
        let mut st = lock(&self.st);
        let rows = mats[0].rows;
        let mut red = Red::new(slot, k, scale);
        for seg in segments(mats) {
            let mut p = Params::new(rows, seg.len);
            p.f = f;
            let mut bufs: Vec<&wgpu::Buffer> = Vec::with_capacity(mats.len());
            for (q, m) in mats.iter().enumerate() {
                let (c, off) = seg.at[q];
                p.base[q] = off as u32;
                p.ld[q] = m.chunks[c].cols as u32;
                bufs.push(&m.chunks[c].buf);
            }
            let g = if per_column {
                if rows == 0 {
                    continue;
                }
                [seg.len.div_ceil(WG).min(self.caps.ew_x) as u32, 1, 1]
            } else {
                grid(seg.len, rows, self.caps.red_x, self.caps.red_y)
            };
            self.red_dispatch(&mut st, &mut red, kern, p, &bufs, g)?;
        }
        self.finalize(&mut st, &mut red)
    }

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
            let mut p = Params::new(w.rows, seg.len);
            p.base[0] = off as u32;
            p.ld[0] = w.chunks[c].cols as u32;
            p.base[1] = seg.j0 as u32;
            let bufs = [&w.chunks[c].buf, &scratch];
            match axis {
                Axis::Rows => {
                    p.flags = (t > 0) as u32;
                    let g = [w.rows.min(self.caps.rows) as u32, 1, 1];
                    self.dispatch(st, K::RowSq, bytemuck::bytes_of(&p), &bufs, g)?;
                }
                Axis::Cols => {
                    let g = [seg.len.div_ceil(WG).min(self.caps.ew_x) as u32, 1, 1];
                    self.dispatch(st, K::ColSq, bytemuck::bytes_of(&p), &bufs, g)?;
                }
            }
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
        let mut red = Red::new(slot, 2, [1.0; 4]);
        let mut p = Params::new(w.rows, w.cols);
        p.ld[0] = w.cols as u32;
        p.flags = thresh.is_some() as u32;
        p.f[0] = thresh.unwrap_or(0.0);
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

    /// One matmul dispatch over an `m × n × k` block, split if the grid is too large.
    #[allow(clippy::too_many_arguments)]
    fn mm_block(
        &self,
        st: &mut State,
        kern: K,
        ta: bool,
        tb: bool,
        mut mp: MatmulParams,
        a: &wgpu::Buffer,
        b: &wgpu::Buffer,
        c: &wgpu::Buffer,
        bias: Option<&wgpu::Buffer>,
    ) -> BResult<()> {
        let (m, n) = (mp.m as usize, mp.n as usize);
        if m == 0 || n == 0 {
            return Ok(());
        }
        let maxg = self.limits.max_compute_workgroups_per_dimension as usize;
        let (bm, bn) = (maxg * TILE, maxg * TILE);
        let dummy = st.dummy.clone();
        let bias_buf = bias.unwrap_or(&dummy);
        let base = mp;
        let mut i = 0;
        while i < m {
            let mi = bm.min(m - i);
            let mut j = 0;
            while j < n {
                let nj = bn.min(n - j);
                mp.m = mi as u32;
                mp.n = nj as u32;
                mp.a_base = base.a_base + (if ta { i } else { i * base.lda as usize }) as u32;
                mp.b_base = base.b_base + (if tb { j * base.ldb as usize } else { j }) as u32;
                mp.c_base = base.c_base + (i * base.ldc as usize + j) as u32;
                mp.bias_base = base.bias_base + i as u32;
                let g = [nj.div_ceil(TILE) as u32, mi.div_ceil(TILE) as u32, 1];
                self.dispatch(st, kern, bytemuck::bytes_of(&mp), &[a, b, c, bias_buf], g)?;
                j += nj;
            }
            i += mi;
        }
        Ok(())
    }

    fn write_chunks(&self, dst: &GpuMat, host: ArrayView2<f32>) -> BResult<()> {
        for ch in &dst.chunks {
            if dst.rows * ch.cols == 0 {
                continue;
            }
            let sub = host.slice(ndarray::s![.., ch.col0..ch.col0 + ch.cols]);
            match sub.as_slice() {
                Some(s) => self.queue.write_buffer(&ch.buf, 0, bytemuck::cast_slice(s)),
                None => {
                    let v: Vec<f32> = sub.iter().copied().collect();
                    self.queue
                        .write_buffer(&ch.buf, 0, bytemuck::cast_slice(&v));
                }
            }
        }
        Ok(())
    }
}

impl Backend for GpuBackend {
    type Mat = GpuMat;

    fn name(&self) -> String {
        format!(
            "GPU {} ({:?}, {})",
            self.info.name, self.info.backend, self.info.driver
        )
    }

    fn zeros(&self, rows: usize, cols: usize) -> BResult<GpuMat> {
        self.alloc("zeros", rows, cols, None)
    }

    fn upload(&self, host: ArrayView2<f32>) -> BResult<GpuMat> {
        let (r, c) = host.dim();
        self.alloc("upload", r, c, Some(&host))
    }

    fn write(&self, dst: &mut GpuMat, host: ArrayView2<f32>) -> BResult<()> {
        same("write", "host", dst, host.dim()).map_err(|_| {
            shape_err(
                "write",
                format!("host {:?} vs device {}×{}", host.dim(), dst.rows, dst.cols),
            )
        })?;
        let mut st = lock(&self.st);
        // Queue writes land before the next submission: submit what was recorded first.
        self.flush(&mut st)?;
        self.set_current("write");
        self.write_chunks(dst, host)?;
        self.check_async("write")
    }

    fn download(&self, m: &GpuMat) -> BResult<Array2<f32>> {
        let mut out = Array2::<f32>::zeros((m.rows, m.cols));
        let mut st = lock(&self.st);
        self.flush(&mut st)?;
        for ch in &m.chunks {
            let bytes = (m.rows * ch.cols * 4) as u64;
            if bytes == 0 {
                continue;
            }
            let need_new = st.dl_staging.as_ref().is_none_or(|s| s.size() < bytes);
            if need_new {
                st.dl_staging = Some(self.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("download staging"),
                    size: bytes,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                }));
            }
            let staging = st.dl_staging.clone().expect("staging set above");
            self.encoder(&mut st)
                .copy_buffer_to_buffer(&ch.buf, 0, &staging, 0, bytes);
            st.batch.push("download");
            self.flush(&mut st)?;
            let raw = self.map_read(&staging, bytes, "download")?;
            let vals: &[f32] = bytemuck::cast_slice(&raw);
            let mut sub = out.slice_mut(ndarray::s![.., ch.col0..ch.col0 + ch.cols]);
            for (d, s) in sub.iter_mut().zip(vals) {
                *d = *s;
            }
        }
        Ok(out)
    }

    fn shape(&self, m: &GpuMat) -> (usize, usize) {
        (m.rows, m.cols)
    }

    fn copy(&self, dst: &mut GpuMat, src: &GpuMat) -> BResult<()> {
        same("copy", "dst", dst, (src.rows, src.cols))?;
        let mut st = lock(&self.st);
        let enc = self.encoder(&mut st);
        for (d, s) in dst.chunks.iter().zip(&src.chunks) {
            let bytes = (src.rows * s.cols * 4) as u64;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(&s.buf, 0, &d.buf, 0, bytes);
            }
        }
        st.batch.push("copy");
        self.check_async("copy")
    }

    fn fill(&self, dst: &mut GpuMat, value: f32) -> BResult<()> {
        self.elementwise(K::Fill, &[dst], &[], [value, 0., 0., 0., 0., 0., 0., 0.])
    }

    fn gather_cols(&self, out: &mut GpuMat, src: &GpuMat, idx: &[u32]) -> BResult<()> {
        let op = "gather_cols";
        if (out.rows, out.cols) != (src.rows, idx.len()) {
            return Err(shape_err(
                op,
                format!(
                    "out is {}×{}, expected {}×{}",
                    out.rows,
                    out.cols,
                    src.rows,
                    idx.len()
                ),
            ));
        }
        if let Some(&bad) = idx.iter().find(|&&j| j as usize >= src.cols) {
            return Err(shape_err(
                op,
                format!("index {bad} out of range for {} columns", src.cols),
            ));
        }
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
                if st.uni_cpu.len() as u64 + self.uni_stride > super::UNIFORM_ARENA {
                    // The submit below writes (and then clears) the index arena: append the
                    // indices again for the dispatches still to come.
                    self.flush(&mut st)?;
                    ioff = st.idx_cpu.len();
                    st.idx_cpu.extend_from_slice(idx);
                }
                let mut p = Params::new(src.rows, oc.cols);
                p.base[0] = 0;
                p.ld[0] = oc.cols as u32;
                p.base[1] = sc.col0 as u32;
                p.base[2] = sc.cols as u32;
                p.base[3] = (ioff + oc.col0) as u32;
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

    fn matmul_nn(
        &self,
        c: &mut GpuMat,
        a: &GpuMat,
        b: &GpuMat,
        bias: Option<&GpuMat>,
        beta: f32,
    ) -> BResult<()> {
        let op = "matmul_nn";
        let (m, k, n) = (a.rows, a.cols, b.cols);
        if b.rows != k || (c.rows, c.cols) != (m, n) {
            return Err(shape_err(
                op,
                format!(
                    "A {}×{} · B {}×{} → C {}×{}",
                    a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
                ),
            ));
        }
        if let Some(bv) = bias {
            same(op, "bias", bv, (m, 1))?;
        }
        let mut st = lock(&self.st);
        // k-segments: A's column chunks (a single empty one when k = 0).
        let psegs: Vec<(usize, usize, usize)> = if k == 0 {
            vec![(0, 0, 0)]
        } else {
            a.chunks
                .iter()
                .enumerate()
                .map(|(i, ch)| (ch.col0, ch.cols, i))
                .collect()
        };
        for seg in segments(&[b, c]) {
            let (bc, boff) = seg.at[0];
            let (cc, coff) = seg.at[1];
            for (t, &(p0, plen, ac)) in psegs.iter().enumerate() {
                let beta_t = if t == 0 { beta } else { 1.0 };
                let use_bias = t == 0 && bias.is_some();
                let ldb = b.chunks[bc].cols;
                let mp = MatmulParams {
                    m: m as u32,
                    n: seg.len as u32,
                    k: plen as u32,
                    flags: (use_bias as u32) | (((beta_t != 0.0) as u32) << 1),
                    lda: a.chunks[ac].cols as u32,
                    ldb: ldb as u32,
                    ldc: c.chunks[cc].cols as u32,
                    a_base: 0,
                    b_base: (p0 * ldb + boff) as u32,
                    c_base: coff as u32,
                    bias_base: 0,
                    _pad0: 0,
                    beta: beta_t,
                    _pad1: [0.0; 3],
                };
                let bias_buf = if use_bias {
                    bias.map(|bv| &bv.chunks[0].buf)
                } else {
                    None
                };
                self.mm_block(
                    &mut st,
                    K::MatmulNN,
                    false,
                    false,
                    mp,
                    &a.chunks[ac].buf,
                    &b.chunks[bc].buf,
                    &c.chunks[cc].buf,
                    bias_buf,
                )?;
            }
        }
        Ok(())
    }

    fn matmul_nt(&self, c: &mut GpuMat, a: &GpuMat, b: &GpuMat, beta: f32) -> BResult<()> {
        let op = "matmul_nt";
        let (m, k, n) = (a.rows, a.cols, b.rows);
        if b.cols != k || (c.rows, c.cols) != (m, n) {
            return Err(shape_err(
                op,
                format!(
                    "A {}×{} · Bᵀ ({}×{}) → C {}×{}",
                    a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
                ),
            ));
        }
        let mut st = lock(&self.st);
        // k-segments: common refinement of A's and B's chunks.
        let psegs: Vec<(usize, usize, (usize, usize), (usize, usize))> = if k == 0 {
            vec![(0, 0, (0, 0), (0, 0))]
        } else {
            segments(&[a, b])
                .iter()
                .map(|s| (s.j0, s.len, s.at[0], s.at[1]))
                .collect()
        };
        for cch in &c.chunks {
            let (j0, nj) = (cch.col0, cch.cols);
            for (t, &(_p0, plen, (ac, aoff), (bc, boff))) in psegs.iter().enumerate() {
                let beta_t = if t == 0 { beta } else { 1.0 };
                let ldb = b.chunks[bc].cols;
                let mp = MatmulParams {
                    m: m as u32,
                    n: nj as u32,
                    k: plen as u32,
                    flags: ((beta_t != 0.0) as u32) << 1,
                    lda: a.chunks[ac].cols as u32,
                    ldb: ldb as u32,
                    ldc: cch.cols as u32,
                    a_base: aoff as u32,
                    b_base: (j0 * ldb + boff) as u32,
                    c_base: 0,
                    bias_base: 0,
                    _pad0: 0,
                    beta: beta_t,
                    _pad1: [0.0; 3],
                };
                self.mm_block(
                    &mut st,
                    K::MatmulNT,
                    false,
                    true,
                    mp,
                    &a.chunks[ac].buf,
                    &b.chunks[bc].buf,
                    &cch.buf,
                    None,
                )?;
            }
        }
        Ok(())
    }

    fn matmul_tn(&self, c: &mut GpuMat, a: &GpuMat, b: &GpuMat, beta: f32) -> BResult<()> {
        let op = "matmul_tn";
        let (k, m, n) = (a.rows, a.cols, b.cols);
        if b.rows != k || (c.rows, c.cols) != (m, n) {
            return Err(shape_err(
                op,
                format!(
                    "Aᵀ ({}×{}) · B {}×{} → C {}×{}",
                    a.rows, a.cols, b.rows, b.cols, c.rows, c.cols
                ),
            ));
        }
        let mut st = lock(&self.st);
        for ach in &a.chunks {
            let (i0, mi) = (ach.col0, ach.cols);
            for seg in segments(&[b, c]) {
                let (bc, boff) = seg.at[0];
                let (cc, coff) = seg.at[1];
                let ldc = c.chunks[cc].cols;
                let mp = MatmulParams {
                    m: mi as u32,
                    n: seg.len as u32,
                    k: k as u32,
                    flags: ((beta != 0.0) as u32) << 1,
                    lda: ach.cols as u32,
                    ldb: b.chunks[bc].cols as u32,
                    ldc: ldc as u32,
                    a_base: 0,
                    b_base: boff as u32,
                    c_base: (i0 * ldc + coff) as u32,
                    bias_base: 0,
                    _pad0: 0,
                    beta,
                    _pad1: [0.0; 3],
                };
                self.mm_block(
                    &mut st,
                    K::MatmulTN,
                    true,
                    false,
                    mp,
                    &ach.buf,
                    &b.chunks[bc].buf,
                    &c.chunks[cc].buf,
                    None,
                )?;
            }
        }
        Ok(())
    }

    fn row_sum(&self, out: &mut GpuMat, a: &GpuMat, beta: f32) -> BResult<()> {
        same("row_sum", "out", out, (a.rows, 1))?;
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
            let mut p = Params::new(a.rows, seg.len);
            p.base[0] = off as u32;
            p.ld[0] = a.chunks[c].cols as u32;
            p.base[1] = 0;
            p.ld[1] = 1;
            p.flags = ((beta_t != 0.0) as u32) << 1;
            p.f[0] = beta_t;
            let g = [a.rows.min(self.caps.rows) as u32, 1, 1];
            let bufs = [&a.chunks[c].buf, &out.chunks[0].buf];
            self.dispatch(&mut st, K::RowSum, bytemuck::bytes_of(&p), &bufs, g)?;
        }
        Ok(())
    }

    fn axpby(&self, out: &mut GpuMat, a: f32, x: &GpuMat, b: f32, y: &GpuMat) -> BResult<()> {
        same("axpby", "y", y, (x.rows, x.cols))?;
        same("axpby", "out", out, (x.rows, x.cols))?;
        self.elementwise(K::Axpby, &[out, x, y], &[], [a, b, 0., 0., 0., 0., 0., 0.])
    }

    fn axpy(&self, y: &mut GpuMat, a: f32, x: &GpuMat) -> BResult<()> {
        same("axpy", "y", y, (x.rows, x.cols))?;
        self.elementwise(K::Axpy, &[y, x], &[], [a, 0., 0., 0., 0., 0., 0., 0.])
    }

    fn scale(&self, x: &mut GpuMat, a: f32) -> BResult<()> {
        self.elementwise(K::Scale, &[x], &[], [a, 0., 0., 0., 0., 0., 0., 0.])
    }

    fn leaky_relu(&self, out: &mut GpuMat, u: &GpuMat, alpha: f32) -> BResult<()> {
        same("leaky_relu", "out", out, (u.rows, u.cols))?;
        self.elementwise(
            K::LeakyRelu,
            &[out, u],
            &[],
            [alpha, 0., 0., 0., 0., 0., 0., 0.],
        )
    }

    fn mul_leaky_deriv(&self, d: &mut GpuMat, u: &GpuMat, alpha: f32) -> BResult<()> {
        same("mul_leaky_deriv", "d", d, (u.rows, u.cols))?;
        self.elementwise(
            K::MulLeakyDeriv,
            &[d, u],
            &[],
            [alpha, 0., 0., 0., 0., 0., 0., 0.],
        )
    }

    fn constraint_residual(
        &self,
        u: &GpuMat,
        v: &GpuMat,
        lam: &GpuMat,
        rho: f32,
        alpha: f32,
        inv_n: f32,
        h: &mut GpuMat,
        s: &mut GpuMat,
        gu: &mut GpuMat,
        gv: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        let op = "constraint_residual";
        let d = (u.rows, u.cols);
        for (name, m) in [
            ("v", v),
            ("lam", lam),
            ("h", &*h),
            ("s", &*s),
            ("gu", &*gu),
            ("gv", &*gv),
        ] {
            same(op, name, m, d)?;
        }
        check_slots(op, slot, 3)?;
        self.reduce(
            K::Residual,
            &[u, v, lam, h, s, gu, gv],
            [rho, alpha, inv_n, 0., 0., 0., 0., 0.],
            slot,
            3,
            [1.0; 4],
            false,
        )
    }

    fn constraint_value(
        &self,
        u: &GpuMat,
        v: &GpuMat,
        lam: &GpuMat,
        alpha: f32,
        slot: Slot,
    ) -> BResult<()> {
        let op = "constraint_value";
        same(op, "v", v, (u.rows, u.cols))?;
        same(op, "lam", lam, (u.rows, u.cols))?;
        check_slots(op, slot, 3)?;
        self.reduce(
            K::ConstraintValue,
            &[u, v, lam],
            [0., alpha, 0., 0., 0., 0., 0., 0.],
            slot,
            3,
            [1.0; 4],
            false,
        )
    }

    fn multiplier_update(&self, lam: &mut GpuMat, h: &GpuMat, rho: f32) -> BResult<()> {
        same("multiplier_update", "lam", lam, (h.rows, h.cols))?;
        self.elementwise(K::Axpy, &[lam, h], &[], [rho, 0., 0., 0., 0., 0., 0., 0.])
    }

    fn group_prox(
        &self,
        w: &mut GpuMat,
        thresh: f32,
        axis: Axis,
        shrink: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        let op = "group_prox";
        let want = match axis {
            Axis::Rows => (w.rows, 1),
            Axis::Cols => (1, w.cols),
        };
        same(op, "shrink", shrink, want)?;
        check_slots(op, slot, 2)?;
        let mut st = lock(&self.st);
        if w.chunks.len() == 1 && shrink.chunks.len() == 1 {
            let f = &shrink.chunks[0].buf;
            return self.group_fused(&mut st, w, axis, Some(thresh), f, slot);
        }
        let groups = self.group_sq(&mut st, w, axis)?;
        let scratch = st.scratch.clone();
        let mut red = Red::new(slot, 2, [1.0; 4]);
        let mut p = Params::new(groups, 0);
        p.f[0] = thresh;
        let g = [groups.div_ceil(WG).min(self.caps.red_x) as u32, 1, 1];
        self.red_dispatch(&mut st, &mut red, K::ProxFactor, p, &[&scratch], g)?;
        self.finalize(&mut st, &mut red)?;
        for seg in segments(&[w]) {
            let (c, off) = seg.at[0];
            let mut p = Params::new(w.rows, seg.len);
            p.base[0] = off as u32;
            p.ld[0] = w.chunks[c].cols as u32;
            p.base[1] = seg.j0 as u32;
            let k = if axis == Axis::Rows {
                K::ScaleRows
            } else {
                K::ScaleCols
            };
            let g = grid(seg.len, w.rows, self.caps.ew_x, self.caps.ew_y);
            self.dispatch(
                &mut st,
                k,
                bytemuck::bytes_of(&p),
                &[&w.chunks[c].buf, &scratch],
                g,
            )?;
        }
        let enc = self.encoder(&mut st);
        for ch in &shrink.chunks {
            let n = (shrink.rows * ch.cols) as u64;
            if n > 0 {
                enc.copy_buffer_to_buffer(&scratch, ch.col0 as u64 * 4, &ch.buf, 0, n * 4);
            }
        }
        self.check_async(op)
    }

    fn group_norms(&self, w: &GpuMat, axis: Axis, slot: Slot) -> BResult<()> {
        check_slots("group_norms", slot, 2)?;
        let mut st = lock(&self.st);
        if w.chunks.len() == 1 {
            let dummy = st.dummy.clone();
            return self.group_fused(&mut st, w, axis, None, &dummy, slot);
        }
        let groups = self.group_sq(&mut st, w, axis)?;
        let scratch = st.scratch.clone();
        let mut red = Red::new(slot, 2, [1.0; 4]);
        let p = Params::new(groups, 0);
        let g = [groups.div_ceil(WG).min(self.caps.red_x) as u32, 1, 1];
        self.red_dispatch(&mut st, &mut red, K::NormStats, p, &[&scratch], g)?;
        self.finalize(&mut st, &mut red)
    }

    fn w_trial_preact(
        &self,
        out: &mut GpuMat,
        u: &GpuMat,
        b_old: &GpuMat,
        b_new: &GpuMat,
        bmat: &GpuMat,
        shrink: &GpuMat,
        t: f32,
    ) -> BResult<()> {
        let op = "w_trial_preact";
        let d = (u.rows, u.cols);
        same(op, "out", out, d)?;
        same(op, "bmat", bmat, d)?;
        for (name, m) in [("b_old", b_old), ("b_new", b_new), ("shrink", shrink)] {
            same(op, name, m, (u.rows, 1))?;
        }
        self.elementwise(
            K::WTrialPreact,
            &[out, u, bmat],
            &[b_old, b_new, shrink],
            [t, 0., 0., 0., 0., 0., 0., 0.],
        )
    }

    fn loss(&self, yhat: &GpuMat, y: &GpuMat, kind: LossKind, slot: Slot) -> BResult<()> {
        same("loss", "y", y, (yhat.rows, yhat.cols))?;
        check_slots("loss", slot, 1)?;
        let inv_n = 1.0 / yhat.cols.max(1) as f32;
        let f = [inv_n, 0., 0., 0., 0., 0., 0., 0.];
        let scale = [inv_n, 1.0, 1.0, 1.0];
        match kind {
            LossKind::Squared => self.reduce(K::LossSq, &[yhat, y], f, slot, 1, scale, false),
            LossKind::SoftmaxCe => self.reduce(K::LossCe, &[yhat, y], f, slot, 1, scale, true),
        }
    }

    fn loss_grad(
        &self,
        yhat: &GpuMat,
        y: &GpuMat,
        kind: LossKind,
        g: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        same("loss_grad", "y", y, (yhat.rows, yhat.cols))?;
        same("loss_grad", "g", g, (yhat.rows, yhat.cols))?;
        check_slots("loss_grad", slot, 1)?;
        let inv_n = 1.0 / yhat.cols.max(1) as f32;
        let f = [inv_n, 0., 0., 0., 0., 0., 0., 0.];
        let scale = [inv_n, 1.0, 1.0, 1.0];
        match kind {
            LossKind::Squared => {
                self.reduce(K::LossGradSq, &[yhat, y, g], f, slot, 1, scale, false)
            }
            LossKind::SoftmaxCe => {
                self.reduce(K::LossGradCe, &[yhat, y, g], f, slot, 1, scale, true)
            }
        }
    }

    fn count_errors(&self, yhat: &GpuMat, y: &GpuMat, slot: Slot) -> BResult<()> {
        same("count_errors", "y", y, (yhat.rows, yhat.cols))?;
        check_slots("count_errors", slot, 1)?;
        self.reduce(
            K::CountErrors,
            &[yhat, y],
            [0.0; 8],
            slot,
            1,
            [1.0; 4],
            true,
        )
    }

    fn dot(&self, a: &GpuMat, b: &GpuMat, slot: Slot) -> BResult<()> {
        same("dot", "b", b, (a.rows, a.cols))?;
        check_slots("dot", slot, 1)?;
        self.reduce(K::Dot, &[a, b], [0.0; 8], slot, 1, [1.0; 4], false)
    }

    fn sq_norm(&self, a: &GpuMat, slot: Slot) -> BResult<()> {
        check_slots("sq_norm", slot, 1)?;
        self.reduce(K::SqNorm, &[a], [0.0; 8], slot, 1, [1.0; 4], false)
    }

    fn read_slots(&self, slots: &[Slot]) -> BResult<Vec<f64>> {
        if let Some(&bad) = slots.iter().find(|&&s| s >= NUM_SLOTS) {
            return Err(shape_err(
                "read_slots",
                format!("slot {bad} out of range (0..{NUM_SLOTS})"),
            ));
        }
        let mut st = lock(&self.st);
        let (src, dst) = (st.slots.clone(), st.slot_staging.clone());
        let bytes = NUM_SLOTS as u64 * 4;
        self.encoder(&mut st)
            .copy_buffer_to_buffer(&src, 0, &dst, 0, bytes);
        st.batch.push("read_slots");
        self.flush(&mut st)?;
        self.count.readbacks.fetch_add(1, Ordering::Relaxed);
        let raw = self.map_read(&dst, bytes, "read_slots")?;
        let vals: &[f32] = bytemuck::cast_slice(&raw);
        Ok(slots.iter().map(|&s| vals[s] as f64).collect())
    }

    fn adam_update(
        &self,
        w: &mut GpuMat,
        g: &GpuMat,
        m: &mut GpuMat,
        v: &mut GpuMat,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        step: u32,
    ) -> BResult<()> {
        let op = "adam_update";
        let d = (w.rows, w.cols);
        for (name, x) in [("g", g), ("m", &*m), ("v", &*v)] {
            same(op, name, x, d)?;
        }
        let s = step.max(1) as i32;
        let bc1 = 1.0 - beta1.powi(s);
        let bc2 = 1.0 - beta2.powi(s);
        self.elementwise(
            K::Adam,
            &[w, g, m, v],
            &[],
            [lr, beta1, beta2, eps, bc1, bc2, 0., 0.],
        )
    }

    fn sync(&self) -> BResult<()> {
        let mut st = lock(&self.st);
        self.flush(&mut st)?;
        drop(st);
        self.wait()
    }

    fn counters(&self) -> Counters {
        self.counters_now()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<GpuBackend>();
    is::<GpuMat>();
    let _ = kernel_err("", "");
}
