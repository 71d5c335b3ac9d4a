//! The three matmuls of method §3 (`shaders/matmul.wgsl`: `W V + b1ᵀ`, `G Vᵀ`, `Wᵀ G`), tiled
//! over the operands' column chunks. The inner dimension is walked chunk by chunk (β applies
//! to the first piece, the others add), and a block whose grid would exceed the device's
//! workgroup limit is split. A weight gradient `G Vᵀ` has few output tiles and a long inner
//! dimension (the samples): it is split along K across workgroups into a scratch buffer,
//! and a second kernel adds the partial products into C. An output of at most 16 rows (an
//! output layer's classes) runs on a 16×128 tile instead of 64×64, one of at most 4 rows
//! (a regression target) and a split product of at most 64 elements one invocation per
//! element (`matmul_row`). CPU adapters run the 64×64 tile with 8×8 blocks per invocation
//! (`matmul_8x8`), GPUs with 4×4 (`matmul`); a CPU adapter with 8-lane subgroups
//! (lavapipe) runs every product on `matmul_sg` (`shaders/matmul_sg.wgsl`). All of them
//! add each element's products in the same order, so they agree bit for bit. A weight
//! gradient carries its bias gradient as a last column of ones (`weight_grads`).

use super::TILE;
use crate::backend::gpu::adapter::WideTile;
use crate::backend::gpu::params::{MatmulParams, ONES_COLUMN, SUM_TO_BIAS};
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::recorder::State;
use crate::backend::gpu::storage::{segments, GpuMat};
use crate::backend::gpu::{lock, BResult, GpuBackend};

/// Output tiles below which a product's inner dimension is split: the workgroups a split
/// product aims for.
const SPLIT_TILES: usize = 32;
/// Least inner-dimension length per slice, and most slices.
const SPLIT_MIN_K: usize = 256;
const SPLIT_MAX: usize = 32;

/// K slices for an `m × n` output over `k`: 1 (no split) unless the output has few tiles and
/// `k` is long. Tiles are counted at 64×64 whichever kernel runs (also `matmul_sg`'s
/// 16×32), so every kernel splits a product alike and gives the same bits.
fn k_slices(m: usize, n: usize, k: usize) -> usize {
    let tiles = m.div_ceil(TILE) * n.div_ceil(TILE);
    // An empty output (no rows or columns) has nothing to split.
    if tiles == 0 || tiles >= SPLIT_TILES || k < 2 * SPLIT_MIN_K {
        return 1;
    }
    (k / SPLIT_MIN_K)
        .min(SPLIT_TILES.div_ceil(tiles))
        .min(SPLIT_MAX)
}

/// Outputs of at most this many rows (an output layer) run on the narrow tile.
const NARROW_ROWS: usize = 16;
/// The narrow tile's columns.
const NARROW_COLS: usize = 128;

/// Outputs of at most this many rows run one invocation per element (`matmul_row`), a
/// row of [`ROW_COLS`] columns per workgroup.
const ROW_ROWS: usize = 4;
const ROW_COLS: usize = 64;

/// `matmul_sg`'s tile (rows, columns): one subgroup of 8 lanes.
const SG_ROWS: usize = 16;
const SG_COLS: usize = 32;

/// The kernel for an `m`-row output of layout `kern` (one of the three wide ones), and its
/// tile (rows, columns): on a CPU adapter with 8-lane subgroups `matmul_sg` for every
/// output; else one element per invocation when `m` is at most [`ROW_ROWS`], the narrow
/// variant when `m` is at most [`NARROW_ROWS`], and the wide tile (with 8×8 blocks per
/// invocation on CPU adapters) above.
fn tiled(kern: K, m: usize, wide: WideTile) -> (K, usize, usize) {
    // The variant of `kern`'s layout among `[NN, NT, TN]`.
    let pick = |v: [K; 3]| match kern {
        K::MatmulNN => v[0],
        K::MatmulNT => v[1],
        K::MatmulTN => v[2],
        k => k,
    };
    if wide == WideTile::Subgroup8 {
        let sg = pick([K::MatmulSgNN, K::MatmulSgNT, K::MatmulSgTN]);
        (sg, SG_ROWS, SG_COLS)
    } else if m > NARROW_ROWS {
        let kern = if wide == WideTile::Cpu8x8 {
            pick([K::Matmul8x8NN, K::Matmul8x8NT, K::Matmul8x8TN])
        } else {
            kern
        };
        (kern, TILE, TILE)
    } else if m <= ROW_ROWS {
        let row = pick([K::MatmulRowNN, K::MatmulRowNT, K::MatmulRowTN]);
        (row, 1, ROW_COLS)
    } else {
        let narrow = pick([K::MatmulNarrowNN, K::MatmulNarrowNT, K::MatmulNarrowTN]);
        (narrow, NARROW_ROWS, NARROW_COLS)
    }
}

/// A split product of at most this many output elements runs one invocation per element
/// (`matmul_row`, whatever its rows) instead of on a tile.
const THIN_MAX: usize = 64;

/// A matmul operand: its buffer, row stride and first element.
type Operand<'a> = (&'a wgpu::Buffer, usize, usize);

impl GpuBackend {
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
        let (kern, tm, tn) = tiled(kern, m, self.caps.wide);
        let (bm, bn) = (maxg * tm, maxg * tn);
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
                mp.flags = base.flags;
                if j + nj < n {
                    // A weight gradient's ones column is the product's last column.
                    mp.flags &= !(ONES_COLUMN | SUM_TO_BIAS);
                }
                mp.a_base = base.a_base + (if ta { i } else { i * base.lda as usize }) as u32;
                mp.b_base = base.b_base + (if tb { j * base.ldb as usize } else { j }) as u32;
                mp.c_base = base.c_base + (i * base.ldc as usize + j) as u32;
                mp.bias_base = base.bias_base + i as u32;
                let g = [nj.div_ceil(tn) as u32, mi.div_ceil(tm) as u32, 1];
                self.dispatch(st, kern, bytemuck::bytes_of(&mp), &[a, b, c, bias_buf], g)?;
                j += nj;
            }
            i += mi;
        }
        Ok(())
    }

    /// `C ← A·Bᵀ + β·C` for an `m × n` output over `k`, split into `slices` along K:
    /// the partial products into the split scratch, then their sum into `c` (row stride
    /// `ldc`, from element 0). With `sum`, C's last column is `A·1`, stored into `sum`.
    #[allow(clippy::too_many_arguments)]
    fn mm_nt_split(
        &self,
        st: &mut State,
        (m, n, k): (usize, usize, usize),
        slices: usize,
        beta: f32,
        a: Operand<'_>,
        b: Operand<'_>,
        (c, ldc): (&wgpu::Buffer, usize),
        sum: Option<&wgpu::Buffer>,
    ) -> BResult<()> {
        let kslice = k.div_ceil(slices).next_multiple_of(16);
        let slices = k.div_ceil(kslice);
        let part = m * n;
        let need = (slices * part * 4) as u64;
        if st.split.size() < need {
            st.split = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("split-K partials"),
                size: need.next_power_of_two(),
                usage: wgpu::BufferUsages::STORAGE,
                mapped_at_creation: false,
            });
        }
        let (scratch, dummy) = (st.split.clone(), st.dummy.clone());
        let mut mp = MatmulParams::new(m, n, k, 0.0)
            .strides(a.1, b.1, n)
            .bases(a.2, b.2, 0)
            .split_k(kslice, part);
        if sum.is_some() {
            mp = mp.ones_column(false);
        }
        let (kern, g) = if part <= THIN_MAX && self.caps.wide != WideTile::Subgroup8 {
            let g = [n.div_ceil(ROW_COLS) as u32, m as u32, slices as u32];
            (K::MatmulRowNT, g)
        } else {
            let (kern, tm, tn) = tiled(K::MatmulNT, m, self.caps.wide);
            (
                kern,
                [n.div_ceil(tn) as u32, m.div_ceil(tm) as u32, slices as u32],
            )
        };
        let bufs = [a.0, b.0, &scratch, &dummy];
        self.dispatch(st, kern, bytemuck::bytes_of(&mp), &bufs, g)?;
        let mut sp = MatmulParams::new(m, n, slices, beta)
            .strides(0, 0, ldc)
            .split_k(0, part);
        if sum.is_some() {
            sp = sp.ones_column(true);
        }
        let g = [n.div_ceil(16) as u32, m.div_ceil(16) as u32, 1];
        let bufs = [&scratch, c, sum.unwrap_or(&dummy)];
        self.dispatch(st, K::SumSlices, bytemuck::bytes_of(&sp), &bufs, g)
    }

    /// `C ← A·B + bias·1ᵀ + β·C`.
    pub(super) fn mm_nn(
        &self,
        c: &mut GpuMat,
        a: &GpuMat,
        b: &GpuMat,
        bias: Option<&GpuMat>,
        beta: f32,
    ) -> BResult<()> {
        let (m, k) = (a.rows, a.cols);
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
                let mp = MatmulParams::new(m, seg.len, plen, beta_t)
                    .strides(a.chunks[ac].cols, ldb, c.chunks[cc].cols)
                    .bases(0, p0 * ldb + boff, coff)
                    .with_bias(use_bias);
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

    /// `C ← A·Bᵀ + β·C`; with `sum`, also `sum ← A·1 + β·sum` in the same product: the
    /// first column chunk of C gets a last column of ones' products (a weight gradient
    /// `G Xᵀ` and its bias gradient `G 1` read `G` once, in one dispatch).
    pub(super) fn mm_nt(
        &self,
        c: &mut GpuMat,
        a: &GpuMat,
        b: &GpuMat,
        beta: f32,
        sum: Option<&mut GpuMat>,
    ) -> BResult<()> {
        let (m, k) = (a.rows, a.cols);
        let sum = sum.map(|s| &s.chunks[0].buf);
        let mut st = lock(&self.st);
        // k-segments: common refinement of A's and B's chunks, as (length, (A chunk,
        // offset), (B chunk, offset)).
        type KSeg = (usize, (usize, usize), (usize, usize));
        let psegs: Vec<KSeg> = if k == 0 {
            vec![(0, (0, 0), (0, 0))]
        } else {
            segments(&[a, b])
                .iter()
                .map(|s| (s.len, s.at[0], s.at[1]))
                .collect()
        };
        for (ci, cch) in c.chunks.iter().enumerate() {
            let sum = sum.filter(|_| ci == 0);
            let (j0, nj) = (cch.col0, cch.cols);
            // The ones column, when there is one, is column `nj` of this chunk's product.
            let n_out = nj + sum.is_some() as usize;
            for (t, &(plen, (ac, aoff), (bc, boff))) in psegs.iter().enumerate() {
                let beta_t = if t == 0 { beta } else { 1.0 };
                let ldb = b.chunks[bc].cols;
                let slices = k_slices(m, n_out, plen);
                if slices > 1 {
                    let a_op = (&a.chunks[ac].buf, a.chunks[ac].cols, aoff);
                    let b_op = (&b.chunks[bc].buf, ldb, j0 * ldb + boff);
                    let c_op = (&cch.buf, cch.cols);
                    let dims = (m, n_out, plen);
                    self.mm_nt_split(&mut st, dims, slices, beta_t, a_op, b_op, c_op, sum)?;
                    continue;
                }
                let mut mp = MatmulParams::new(m, n_out, plen, beta_t)
                    .strides(a.chunks[ac].cols, ldb, cch.cols)
                    .bases(aoff, j0 * ldb + boff, 0);
                if sum.is_some() {
                    mp = mp.ones_column(true);
                }
                self.mm_block(
                    &mut st,
                    K::MatmulNT,
                    false,
                    true,
                    mp,
                    &a.chunks[ac].buf,
                    &b.chunks[bc].buf,
                    &cch.buf,
                    sum,
                )?;
            }
        }
        Ok(())
    }

    /// `C ← Aᵀ·B + β·C`.
    pub(super) fn mm_tn(&self, c: &mut GpuMat, a: &GpuMat, b: &GpuMat, beta: f32) -> BResult<()> {
        let k = a.rows;
        let mut st = lock(&self.st);
        for ach in &a.chunks {
            let (i0, mi) = (ach.col0, ach.cols);
            for seg in segments(&[b, c]) {
                let (bc, boff) = seg.at[0];
                let (cc, coff) = seg.at[1];
                let ldc = c.chunks[cc].cols;
                let mp = MatmulParams::new(mi, seg.len, k, beta)
                    .strides(ach.cols, b.chunks[bc].cols, ldc)
                    .bases(0, boff, i0 * ldc + coff);
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
}
