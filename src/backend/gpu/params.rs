//! The uniform parameter blocks the shaders read, and one named constructor per use, so that
//! which scalar goes in which lane (`f0.x`, `f0.y`, `flags & 2`, …) is written once, next to
//! the layout, instead of as a positional array at each call.
//!
//! The layouts are `#[repr(C)]` mirrors of `struct Params` in `shaders/common.wgsl` and of
//! `struct MatmulParams` in `shaders/matmul.wgsl`; a constructor sets the kernel's scalars
//! and flags, and the segment walkers of `ops/` then add the geometry ([`Params::sized`],
//! [`Params::bind`]).

use crate::backend::ladder::{LadderModel, LadderTest, PieceAt};
use bytemuck::{Pod, Zeroable};

/// Uniform block of every non-matmul kernel (`struct Params` in `shaders/common.wgsl`).
/// Operand `k`'s element `(i, j)` of a column segment is at `base[k] + i * ld[k] + j`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct Params {
    pub rows: u32,
    pub cols: u32,
    pub part_off: u32,
    pub flags: u32,
    pub base: [u32; 12],
    pub ld: [u32; 12],
    pub f: [f32; 8],
}

/// `flags` bit 0, a per-kernel switch: accumulate (`finalize` into the slots, `row_sq` into
/// the scratch vector), apply the prox (fused group kernels), add the bias (matmul).
fn switch(on: bool) -> u32 {
    on as u32
}

/// `flags` bit 1: add `β·out` (row sums, matmuls) when `β ≠ 0`; without it the old output
/// is never read (it may hold NaN).
fn beta_flag(beta: f32) -> u32 {
    ((beta != 0.0) as u32) << 1
}

impl Params {
    /// No scalars (dot, squared norm, error count).
    pub(crate) fn plain() -> Self {
        Zeroable::zeroed()
    }

    fn scalars(f: &[f32]) -> Self {
        let mut p = Self::plain();
        p.f[..f.len()].copy_from_slice(f);
        p
    }

    /// The segment's extent: `rows × cols`.
    pub(crate) fn sized(mut self, rows: usize, cols: usize) -> Self {
        self.rows = rows as u32;
        self.cols = cols as u32;
        self
    }

    /// Operand `q` starts at element `base` of its buffer, with row stride `ld`.
    pub(crate) fn bind(&mut self, q: usize, base: usize, ld: usize) {
        self.base[q] = base as u32;
        self.ld[q] = ld as u32;
    }

    /// `axpby`: `f0 = (a, b)`.
    pub(crate) fn axpby(a: f32, b: f32) -> Self {
        Self::scalars(&[a, b])
    }

    /// `axpy`: `f0.x = a`.
    pub(crate) fn axpy(a: f32) -> Self {
        Self::scalars(&[a])
    }

    /// `scale`: `f0.x = a`.
    pub(crate) fn scale(a: f32) -> Self {
        Self::scalars(&[a])
    }

    /// `fill`: `f0.x = value`.
    pub(crate) fn fill(value: f32) -> Self {
        Self::scalars(&[value])
    }

    /// `leaky_relu`, `mul_leaky_deriv`: `f0.x = α`.
    pub(crate) fn leaky(alpha: f32) -> Self {
        Self::scalars(&[alpha])
    }

    /// `w_trial_preact`: `f0.x = t`.
    pub(crate) fn w_trial(t: f32) -> Self {
        Self::scalars(&[t])
    }

    /// `adam_update`: `f0 = (lr, β₁, β₂, ε)`, `f1.xy` = the bias corrections
    /// `(1 − β₁^t, 1 − β₂^t)` of step `t = max(step, 1)`.
    pub(crate) fn adam(lr: f32, beta1: f32, beta2: f32, eps: f32, step: u32) -> Self {
        let s = step.max(1) as i32;
        let bc1 = 1.0 - beta1.powi(s);
        let bc2 = 1.0 - beta2.powi(s);
        Self::scalars(&[lr, beta1, beta2, eps, bc1, bc2])
    }

    /// `constraint_residual`: `f0 = (ρ, α, inv_n)`; `flags` bit 0 = write `G_U`, bit 1 =
    /// write `G_V`.
    pub(crate) fn residual(r: crate::backend::Residual) -> Self {
        let mut p = Self::scalars(&[r.rho, r.alpha, r.inv_n]);
        p.flags = u32::from(r.write.u()) | (u32::from(r.write.v()) << 1);
        p
    }

    /// `constraint_value`: `f0.y = α` (the lane `constraint_residual` reads it from).
    pub(crate) fn constraint_value(alpha: f32) -> Self {
        Self::scalars(&[0.0, alpha])
    }

    /// `step_value`: `f0 = (a, α, moved_v, ρ)`, `f1.x = inv_n`; `flags` bit 1: the
    /// gradient written is `G_V` (else `G_U`).
    pub(crate) fn step_value(a: f32, moved_v: bool, r: crate::backend::Residual) -> Self {
        let moved_v = if moved_v { 1.0 } else { 0.0 };
        let mut p = Self::scalars(&[a, r.alpha, moved_v, r.rho, r.inv_n]);
        p.flags = u32::from(r.write == crate::backend::Grads::V) << 1;
        p
    }

    /// `step_value_pair`: [`Params::step_value`] with steps `a` (candidate 1's in `f1.y`).
    pub(crate) fn step_value_pair(a: [f32; 2], moved_v: bool, r: crate::backend::Residual) -> Self {
        let mut p = Self::step_value(a[0], moved_v, r);
        p.f[5] = a[1];
        p
    }

    /// `w_trial_value`: `f0 = (t, α, ρ, inv_n)`; `flags` as [`Params::step_value`].
    pub(crate) fn w_trial_value(t: f32, r: crate::backend::Residual) -> Self {
        let mut p = Self::scalars(&[t, r.alpha, r.rho, r.inv_n]);
        p.flags = u32::from(r.write == crate::backend::Grads::V) << 1;
        p
    }

    /// `w_trial_value_pair`: [`Params::w_trial_value`] of candidate 0, `f1.x` = candidate
    /// 1's step.
    pub(crate) fn w_trial_value_pair(t: [f32; 2], r: crate::backend::Residual) -> Self {
        let mut p = Self::w_trial_value(t[0], r);
        p.f[4] = t[1];
        p
    }

    /// `multiplier_update`: `f0 = (ρ, α)`.
    pub(crate) fn multiplier_update(rho: f32, alpha: f32) -> Self {
        Self::scalars(&[rho, alpha])
    }

    /// The losses and their gradients: `f0.x = 1/N`.
    pub(crate) fn loss(inv_n: f32) -> Self {
        Self::scalars(&[inv_n])
    }

    /// The output layer's trial losses (`w_trial_loss_*`, `step_loss_*`): `f0.x = 1/N`,
    /// `f0.y` = the W trial's step `t` or the V trial's `a`.
    pub(crate) fn trial_loss(inv_n: f32, t: f32) -> Self {
        Self::scalars(&[inv_n, t])
    }

    /// `row_sum`: `out` is operand 1 at offset 0 with stride 1; `f0.x = β`, added only when
    /// non-zero.
    pub(crate) fn row_sum(beta: f32) -> Self {
        let mut p = Self::scalars(&[beta]);
        p.flags = beta_flag(beta);
        p.bind(1, 0, 1);
        p
    }

    /// `finalize` of the pending reductions `sums` (at most 8), in order: reduction `e`'s
    /// partials end at `ld[e]` (and start where the previous one's end, the first at 0),
    /// `base[e]` = `slot | k << 16 | accumulate << 20`, `f[e]` = its lane-0 scale.
    pub(crate) fn finalize(sums: &[crate::backend::gpu::recorder::PendingSum]) -> Self {
        assert!(sums.len() <= 8, "finalize takes at most 8 reductions");
        let mut p = Self::plain().sized(sums.len(), 0);
        for (e, s) in sums.iter().enumerate() {
            p.ld[e] = s.end;
            p.base[e] = s.slot | s.k << 16 | u32::from(s.accumulate) << 20;
            p.f[e] = s.scale0;
        }
        p
    }

    /// `ladder_select` of `test` (the layout is in `shaders/ladder.wgsl`'s header); the
    /// walker adds the two pairs' lengths (`rows`, `cols`).
    pub(crate) fn ladder(test: &LadderTest) -> Self {
        // Where a current value is: mode, slot, host value's bits.
        let at = |a: PieceAt| match a {
            PieceAt::Sums(s) => (0u32, s as u32, 0u32),
            PieceAt::Value(s) => (1, s as u32, 0),
            PieceAt::Host(v) => (2, 0, (v as f32).to_bits()),
        };
        let mut p = Self::plain();
        p.part_off = test.report as u32;
        let mut flags = (test.prev.is_some() as u32) << 1 | (test.width as u32) << 11;
        for (k, piece) in test.pieces.iter().enumerate() {
            let Some(piece) = piece else { continue };
            let (mode, slot, host) = at(piece.now);
            let (hidden_bit, mode_bit) = if k == 0 { (2, 5) } else { (4, 7) };
            flags |= (piece.hidden as u32) << hidden_bit | mode << mode_bit;
            if k == 1 {
                flags |= 1 << 3;
            }
            p.base[k] = slot;
            p.ld[k] = host;
            p.base[2 + 2 * k] = piece.cand[0] as u32;
            p.base[3 + 2 * k] = piece.cand[1] as u32;
        }
        match test.model {
            LadderModel::W {
                step,
                penalty,
                lambda,
            } => {
                let (mode, slot, host) = at(penalty);
                flags |= 1 | mode << 9;
                p.base[6] = step[0] as u32;
                p.base[7] = step[1] as u32;
                p.base[8] = slot;
                p.ld[2] = host;
                p.f[4] = lambda as f32;
            }
            LadderModel::V { grad_sq } => p.base[6] = grad_sq as u32,
        }
        p.base[9] = test.prev.unwrap_or(0) as u32;
        p.flags = flags;
        p.f[0] = test.ts[0] as f32;
        p.f[1] = test.ts[1] as f32;
        p.f[2] = test.rho as f32;
        p.f[3] = test.n as f32;
        p.f[5] = test.slack as f32;
        p
    }

    /// `row_sq`, `col_sq`: the segment starts at global column `first_col`; row norms add to
    /// the scratch vector when `accumulate` (every column segment after the first).
    pub(crate) fn group_sq(first_col: usize, accumulate: bool) -> Self {
        let mut p = Self::plain();
        p.base[1] = first_col as u32;
        p.flags = switch(accumulate);
        p
    }

    /// `scale_rows`, `scale_cols`: the segment starts at global column `first_col`.
    pub(crate) fn scale_groups(first_col: usize) -> Self {
        Self::group_sq(first_col, false)
    }

    /// The fused single-chunk group kernels: with `Some(threshold)` the prox (`f0.x` =
    /// threshold), with `None` only the norms.
    pub(crate) fn group_fused(thresh: Option<f32>) -> Self {
        let mut p = Self::scalars(&[thresh.unwrap_or(0.0)]);
        p.flags = switch(thresh.is_some());
        p
    }

    /// The prox-step kernels: `f0 = (threshold, −t)`.
    pub(crate) fn prox_step(t: f32, thresh: f32) -> Self {
        Self::scalars(&[thresh, -t])
    }

    /// The prox-step pair kernels: candidate `c`'s threshold and `−t` in `f[2c]`, `f[2c+1]`.
    pub(crate) fn prox_step_pair(t: [f32; 2], thresh: [f32; 2]) -> Self {
        Self::scalars(&[thresh[0], -t[0], thresh[1], -t[1]])
    }

    /// `prox_factor` over `groups` squared norms: `f0.x` = threshold.
    pub(crate) fn prox_factor(groups: usize, thresh: f32) -> Self {
        Self::scalars(&[thresh]).sized(groups, 0)
    }

    /// `norm_stats` over `groups` squared norms.
    pub(crate) fn norm_stats(groups: usize) -> Self {
        Self::plain().sized(groups, 0)
    }

    /// `gather_cols` for one (out segment, src chunk) pair: `out_cols` columns of `rows`
    /// rows; the src chunk holds global columns `src_col0 .. src_col0 + src_cols`; the
    /// segment's indices start at `idx_off` in the index arena.
    pub(crate) fn gather(
        rows: usize,
        out_cols: usize,
        src_col0: usize,
        src_cols: usize,
        idx_off: usize,
    ) -> Self {
        let mut p = Self::plain().sized(rows, out_cols);
        p.bind(0, 0, out_cols);
        p.base[1] = src_col0 as u32;
        p.base[2] = src_cols as u32;
        p.base[3] = idx_off as u32;
        p
    }
}

/// Uniform block of `matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub a_base: u32,
    pub b_base: u32,
    pub c_base: u32,
    pub bias_base: u32,
    pub kslice: u32,
    pub beta: f32,
    pub c_slice: u32,
    pub _pad1: [f32; 2],
}

impl MatmulParams {
    /// `C[m×n] ← A·B (over k) + β·C`; `β·C` is added only when `β ≠ 0`.
    pub(crate) fn new(m: usize, n: usize, k: usize, beta: f32) -> Self {
        MatmulParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            flags: beta_flag(beta),
            beta,
            ..Zeroable::zeroed()
        }
    }

    /// Row strides of A, B and C.
    pub(crate) fn strides(mut self, lda: usize, ldb: usize, ldc: usize) -> Self {
        self.lda = lda as u32;
        self.ldb = ldb as u32;
        self.ldc = ldc as u32;
        self
    }

    /// First elements of A, B and C in their buffers.
    pub(crate) fn bases(mut self, a: usize, b: usize, c: usize) -> Self {
        self.a_base = a as u32;
        self.b_base = b as u32;
        self.c_base = c as u32;
        self
    }

    /// Split K: workgroup `z` sums `kslice` of it into the scratch partial at `z·c_slice`.
    pub(crate) fn split_k(mut self, kslice: usize, c_slice: usize) -> Self {
        self.kslice = kslice as u32;
        self.c_slice = c_slice as u32;
        self
    }

    /// Add `bias·1ᵀ` (the bias buffer from element 0).
    pub(crate) fn with_bias(mut self, bias: bool) -> Self {
        self.flags |= switch(bias);
        self
    }

    /// C's last column is the product with a column of ones (`A·1`, B not read there);
    /// with `to_bias`, that column is stored into the bias buffer (from element
    /// `bias_base`, `+ β·bias`) instead of C.
    pub(crate) fn ones_column(mut self, to_bias: bool) -> Self {
        self.flags |= ONES_COLUMN | if to_bias { SUM_TO_BIAS } else { 0 };
        self
    }
}

/// `MatmulParams::flags` bits of a weight gradient's fused bias gradient.
pub(crate) const ONES_COLUMN: u32 = 4;
pub(crate) const SUM_TO_BIAS: u32 = 8;

/// Bytes every uniform slice is bound with (≥ both parameter blocks).
pub(crate) const UNIFORM_BIND_SIZE: u64 = 160;
const _: () = assert!(std::mem::size_of::<Params>() as u64 <= UNIFORM_BIND_SIZE);
const _: () = assert!(std::mem::size_of::<MatmulParams>() as u64 <= UNIFORM_BIND_SIZE);
