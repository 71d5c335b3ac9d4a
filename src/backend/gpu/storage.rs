//! Device matrices: a [`GpuMat`] is a list of column chunks, each `rows × cols_c` row-major
//! in its own buffer, so that no buffer exceeds the storage binding limit (or the
//! `max_chunk_bytes` test hook). This file plans the chunks, allocates them, moves whole
//! matrices between host and device, and walks *segments*: maximal column ranges lying inside
//! one chunk of every operand, which is what the kernels of `ops/` are dispatched over.

use super::{kernel_err, lock, BResult, GpuBackend};
use crate::backend::BackendError;
use ndarray::{Array2, ArrayView2};
use std::fmt;

/// Byte caps of one column chunk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChunkLimits {
    /// What the device allows in one binding (a single column may not exceed it).
    pub(crate) device: u64,
    /// What a chunk may hold: `device`, or less under the `max_chunk_bytes` test hook.
    pub(crate) chunk: u64,
}

impl ChunkLimits {
    pub(crate) fn new(limits: &wgpu::Limits, max_chunk_bytes: Option<u64>) -> Self {
        let device = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            & !3;
        let chunk = match max_chunk_bytes {
            Some(c) => c.clamp(4, device.max(4)),
            None => device,
        };
        ChunkLimits { device, chunk }
    }
}

/// One column chunk of a [`GpuMat`]: columns `col0 .. col0 + cols`, row-major.
pub(crate) struct Chunk {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) col0: usize,
    pub(crate) cols: usize,
}

/// A device matrix: `rows × cols`, stored as column chunks (one chunk unless the matrix
/// exceeds the storage binding limit).
pub struct GpuMat {
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) chunks: Vec<Chunk>,
}

impl GpuMat {
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Number of column chunks (buffers) holding the matrix.
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }
}

impl fmt::Debug for GpuMat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GpuMat({}×{}, {} chunk(s))",
            self.rows,
            self.cols,
            self.chunks.len()
        )
    }
}

/// A maximal column range lying inside one chunk of every operand.
pub(crate) struct Seg {
    pub(crate) j0: usize,
    pub(crate) len: usize,
    /// Per operand: (chunk index, column offset inside the chunk).
    pub(crate) at: [(usize, usize); 8],
}

/// Segments of operands sharing the column axis (all have `mats[0].cols` columns).
pub(crate) fn segments(mats: &[&GpuMat]) -> Vec<Seg> {
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

impl GpuBackend {
    /// Bytes of one column chunk at most (storage binding limit, or the test hook).
    pub fn chunk_limit(&self) -> u64 {
        self.chunk_limits.chunk
    }

    /// Column chunk widths for a `rows × cols` matrix.
    fn plan(&self, op: &str, rows: usize, cols: usize) -> BResult<Vec<usize>> {
        if rows == 0 || cols == 0 {
            return Ok(vec![cols]);
        }
        let col_bytes = rows as u64 * 4;
        if col_bytes > self.chunk_limits.device {
            return Err(BackendError::Shape {
                op: op.into(),
                msg: format!(
                    "one column of {rows} rows ({col_bytes} bytes) exceeds the device's storage \
                     binding limit of {} bytes",
                    self.chunk_limits.device
                ),
            });
        }
        let per = (self.chunk_limits.chunk / col_bytes).max(1) as usize;
        let n = cols.div_ceil(per);
        let w = cols.div_ceil(n);
        let mut v = Vec::with_capacity(n);
        let mut left = cols;
        while left > 0 {
            let c = w.min(left);
            v.push(c);
            left -= c;
        }
        Ok(v)
    }

    pub(crate) fn alloc(
        &self,
        op: &str,
        rows: usize,
        cols: usize,
        host: Option<&ndarray::ArrayView2<f32>>,
    ) -> BResult<GpuMat> {
        let plan = self.plan(op, rows, cols)?;
        // Cached bind groups hold their buffers: a new problem's allocation lets go of them.
        lock(&self.st).bind_groups.clear();
        self.errors.set_current("alloc");
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut chunks = Vec::with_capacity(plan.len());
        let mut col0 = 0;
        for c in plan {
            let size = ((rows * c * 4) as u64).max(4);
            let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("matrix chunk"),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: host.is_some(),
            });
            if let Some(h) = host {
                {
                    let mut view = buf
                        .get_mapped_range_mut(..)
                        .map_err(|e| kernel_err(op, format!("mapped range: {e}")))?;
                    let sub = h.slice(ndarray::s![.., col0..col0 + c]);
                    let owned;
                    let data: &[f32] = match sub.as_slice() {
                        Some(s) => s,
                        None => {
                            owned = sub.iter().copied().collect::<Vec<f32>>();
                            &owned
                        }
                    };
                    view.slice(..data.len() * 4)
                        .copy_from_slice(bytemuck::cast_slice(data));
                }
                buf.unmap();
            }
            chunks.push(Chunk { buf, col0, cols: c });
            col0 += c;
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(kernel_err(op, format!("allocating {rows}×{cols}: {e}")));
        }
        self.errors.check(op)?;
        Ok(GpuMat { rows, cols, chunks })
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

    /// Overwrite `dst` with `host` (same shape, checked by the caller's contract).
    pub(crate) fn write_host(&self, dst: &GpuMat, host: ArrayView2<f32>) -> BResult<()> {
        let mut st = lock(&self.st);
        // Queue writes land before the next submission: submit what was recorded first.
        self.flush(&mut st)?;
        self.errors.set_current("write");
        self.write_chunks(dst, host)?;
        self.errors.check("write")
    }

    /// Read a whole matrix back, one staging copy and map per chunk.
    pub(crate) fn download_chunks(&self, m: &GpuMat) -> BResult<Array2<f32>> {
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

    /// `dst ← src` (same shape, checked by the caller's contract) by buffer copies.
    pub(crate) fn copy_chunks(&self, dst: &GpuMat, src: &GpuMat) -> BResult<()> {
        let mut st = lock(&self.st);
        let enc = self.encoder(&mut st);
        for (d, s) in dst.chunks.iter().zip(&src.chunks) {
            let bytes = (src.rows * s.cols * 4) as u64;
            if bytes > 0 {
                enc.copy_buffer_to_buffer(&s.buf, 0, &d.buf, 0, bytes);
            }
        }
        st.batch.push("copy");
        self.errors.check("copy")
    }
}
