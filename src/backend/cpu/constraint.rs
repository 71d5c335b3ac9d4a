//! The fused kernels of the constraint `V = σ(U)` (method §3 and §6) on contiguous
//! slices: the residual (gradients and the three sums `‖H‖², ⟨Λ,H⟩, ‖σ(U)‖²`), the value
//! (the sums alone), and the two trial kernels that write a moved point and value it in
//! the same pass (`step_value` for a V trial, `w_trial_value` for a W trial). Each runs in
//! the [`piece_len`] pieces of `kernels.rs`, so a fused kernel's sums are those of the
//! separate kernels, bit for bit; for `f32` the residual, the value and the two-candidate
//! ladders have AVX2 / AVX-512 versions in `simd.rs`.

use super::kernels::{add, dsigma, lane_total, piece_len, sigma, sq_chunk, LANES};
use super::Real;
use crate::backend::Grads;
use rayon::prelude::*;

/// The constraint residual's scalars (method §3): penalty `ρ`, slope `α`, `1/N`, and the
/// gradients to write.
#[derive(Clone, Copy, Debug)]
pub struct ResidualScalars<F> {
    pub rho: F,
    pub al: F,
    pub inv_n: F,
    pub write: Grads,
}

/// Element `(u, v, λ)` of the fused residual (method §3): `[G_U, G_V]` and the element's
/// terms `[H², ΛH, σ(U)²]` of the three sums. The one definition of the formula: the
/// loops here and the tails of `simd.rs` call it.
#[inline(always)]
pub fn residual_elem<F: Real>(u: F, v: F, l: F, k: ResidualScalars<F>) -> ([F; 2], [f64; 3]) {
    let su = sigma(u, k.al);
    let hv = v - su;
    let sv = l + k.rho * hv;
    let out = [-(sv * dsigma(u, k.al)) * k.inv_n, sv * k.inv_n];
    (
        out,
        [hv.f64() * hv.f64(), l.f64() * hv.f64(), su.f64() * su.f64()],
    )
}

/// Element `(u, v, λ)`'s terms of the constraint value's three sums (as [`residual_elem`]).
#[inline(always)]
pub fn value_elem<F: Real>(u: F, v: F, l: F, al: F) -> [f64; 3] {
    let su = sigma(u, al);
    let hv = (v - su).f64();
    [hv * hv, l.f64() * hv, su.f64() * su.f64()]
}

/// The residual's inputs `[U, V, Λ]` over one range (`V` and `Λ` at least as long as `U`).
pub type Uvl<'a, F> = [&'a [F]; 3];

/// The residual's outputs `[G_U, G_V]`; an unwritten one is never touched (it may be empty).
pub type GradsOut<'a, F> = [&'a mut [F]; 2];

/// One chunk of [`constraint_residual`], writing `G_U` when `WU` and `G_V` when `WV`.
#[inline(always)]
fn residual_imp<F: Real, const WU: bool, const WV: bool>(
    [us, vs, ls]: Uvl<'_, F>,
    k: ResidualScalars<F>,
    [gus, gvs]: GradsOut<'_, F>,
) -> [f64; 3] {
    let n = us.len();
    match (WU, WV) {
        (true, true) => lane_sums!(n, 3, [us, vs, ls], [gus, gvs], |i| {
            let (o, terms) = residual_elem(us[i], vs[i], ls[i], k);
            (gus[i], gvs[i]) = (o[0], o[1]);
            terms
        }),
        (true, false) => lane_sums!(n, 3, [us, vs, ls], [gus], |i| {
            let (o, terms) = residual_elem(us[i], vs[i], ls[i], k);
            gus[i] = o[0];
            terms
        }),
        (false, true) => lane_sums!(n, 3, [us, vs, ls], [gvs], |i| {
            let (o, terms) = residual_elem(us[i], vs[i], ls[i], k);
            gvs[i] = o[1];
            terms
        }),
        // Nothing to write: the value's loop.
        (false, false) => value_imp(us, vs, ls, k.al),
    }
}

/// [`residual_imp`] for `k.write` through [`simd_dispatch`] (the compiler's vectorisation):
/// one monomorphic copy per writing variant, each compiled twice.
pub(super) fn generic_residual_chunk<F: Real>(
    uvl: Uvl<'_, F>,
    k: ResidualScalars<F>,
    g: GradsOut<'_, F>,
) -> [f64; 3] {
    macro_rules! variant {
        ($wu:literal, $wv:literal) => {{
            #[inline(always)]
            fn imp<F: Real>(uvl: Uvl<'_, F>, k: ResidualScalars<F>, g: GradsOut<'_, F>) -> [f64; 3] {
                residual_imp::<F, $wu, $wv>(uvl, k, g)
            }
            simd_dispatch!(imp::<F>(uvl: Uvl<'_, F>, k: ResidualScalars<F>, g: GradsOut<'_, F>) -> [f64; 3])
        }};
    }
    match k.write {
        Grads::U => variant!(true, false),
        Grads::V => variant!(false, true),
        Grads::Both => variant!(true, true),
    }
}

/// One chunk of [`constraint_residual`]: the hand-vectorised kernel where `F` has one
/// (`simd.rs`), else the generic loop.
fn residual_chunk<F: Real>(uvl: Uvl<'_, F>, k: ResidualScalars<F>, g: GradsOut<'_, F>) -> [f64; 3] {
    let [gu, gv] = g;
    match F::fast_residual(uvl, k, [&mut *gu, &mut *gv]) {
        Some(sums) => sums,
        None => generic_residual_chunk(uvl, k, [gu, gv]),
    }
}

/// The fused constraint residual of method §3 over `(u, v, λ)`: writes `G_U` and/or
/// `G_V` as `k.write` says; returns `[‖H‖², ⟨Λ,H⟩, ‖σ(U)‖²]`.
pub fn constraint_residual<F: Real>(
    [us, vs, ls]: Uvl<'_, F>,
    k: ResidualScalars<F>,
    [gus, gvs]: GradsOut<'_, F>,
) -> [f64; 3] {
    let n = us.len();
    let (vs, ls, gus, gvs) = (&vs[..n], &ls[..n], &mut gus[..n], &mut gvs[..n]);
    let piece = piece_len(n);
    if n <= piece {
        return residual_chunk([us, vs, ls], k, [gus, gvs]);
    }
    let parts: Vec<[f64; 3]> = us
        .par_chunks(piece)
        .zip(vs.par_chunks(piece))
        .zip(ls.par_chunks(piece))
        .zip(gus.par_chunks_mut(piece))
        .zip(gvs.par_chunks_mut(piece))
        .map(|((((u, v), l), gu), gv)| residual_chunk([u, v, l], k, [gu, gv]))
        .collect();
    parts.into_iter().fold([0.0; 3], add)
}

#[inline(always)]
fn value_imp<F: Real>(us: &[F], vs: &[F], ls: &[F], al: F) -> [f64; 3] {
    let (vs, ls) = (&vs[..us.len()], &ls[..us.len()]);
    lane_sums!(us.len(), 3, [us, vs, ls], [], |i| {
        value_elem(us[i], vs[i], ls[i], al)
    })
}

/// [`value_imp`] through [`simd_dispatch`] (the compiler's vectorisation).
pub(super) fn generic_value_chunk<F: Real>(us: &[F], vs: &[F], ls: &[F], al: F) -> [f64; 3] {
    simd_dispatch!(value_imp::<F>(us: &[F], vs: &[F], ls: &[F], al: F) -> [f64; 3])
}

/// One chunk of [`constraint_value`]: hand-vectorised where `F` has it, else generic.
fn value_chunk<F: Real>(us: &[F], vs: &[F], ls: &[F], al: F) -> [f64; 3] {
    F::fast_value(us, vs, ls, al).unwrap_or_else(|| generic_value_chunk(us, vs, ls, al))
}

/// The three sums of [`constraint_residual`] without writing anything.
pub fn constraint_value<F: Real>(us: &[F], vs: &[F], ls: &[F], al: F) -> [f64; 3] {
    let (vs, ls) = (&vs[..us.len()], &ls[..us.len()]);
    par_sum!(us.len(), 3, |lo, hi| value_chunk(
        &us[lo..hi],
        &vs[lo..hi],
        &ls[lo..hi],
        al
    ))
}

/// A V trial's step (method §6): `base + a·dir` moves `V` when `moved_v`, else `U`; `other`
/// is the constraint's other matrix, `ls` its multipliers, `k` the residual's scalars
/// (`k.write` names the one gradient written at the moved point).
#[derive(Clone, Copy)]
pub struct Step<'a, F> {
    pub base: &'a [F],
    pub a: F,
    pub dir: &'a [F],
    pub moved_v: bool,
    pub other: &'a [F],
    pub ls: &'a [F],
    pub k: ResidualScalars<F>,
}

impl<'a, F> Step<'a, F> {
    /// The step over elements `lo..hi` (one chunk).
    fn at(self, lo: usize, hi: usize) -> Self {
        Step {
            base: &self.base[lo..hi],
            dir: &self.dir[lo..hi],
            other: &self.other[lo..hi],
            ls: &self.ls[lo..hi],
            ..self
        }
    }
}

/// The residual of one chunk writing the one gradient `k.write` names into `g` (a trial's
/// gradient: `Grads::Both` is refused by the operation's contract and writes `G_U`). Its
/// sums are [`value_chunk`]'s, bit for bit.
fn residual_one<F: Real>(uvl: Uvl<'_, F>, k: ResidualScalars<F>, g: &mut [F]) -> [f64; 3] {
    match k.write {
        Grads::V => residual_chunk(uvl, k, [&mut [], g]),
        Grads::U | Grads::Both => {
            let k = ResidualScalars {
                write: Grads::U,
                ..k
            };
            residual_chunk(uvl, k, [g, &mut []])
        }
    }
}

#[inline(always)]
fn step_imp<F: Real>(out: &mut [F], base: &[F], a: F, dir: &[F]) {
    let (base, dir) = (&base[..out.len()], &dir[..out.len()]);
    for i in 0..out.len() {
        out[i] = F::one() * base[i] + a * dir[i];
    }
}

/// `out ← 1·base + a·dir`, vectorised by the compiler ([`simd_dispatch`]).
pub(super) fn step_axpy<F: Real>(out: &mut [F], base: &[F], a: F, dir: &[F]) {
    simd_dispatch!(step_imp::<F>(out: &mut [F], base: &[F], a: F, dir: &[F]) -> ())
}

/// `out ← base + a·dir` (the expression `axpby(out, 1, base, a, dir)` evaluates, so the
/// same bits) on one chunk, then the residual at the moved point while it is in cache:
/// the value sums and the gradient `g`.
fn step_value_chunk<F: Real>(out: &mut [F], g: &mut [F], s: Step<'_, F>) -> [f64; 3] {
    let n = out.len();
    let (base, dir) = (&s.base[..n], &s.dir[..n]);
    step_axpy(out, base, s.a, dir);
    let out = &*out;
    if s.moved_v {
        residual_one([s.other, out, s.ls], s.k, g)
    } else {
        residual_one([out, s.other, s.ls], s.k, g)
    }
}

/// [`Backend::step_value`](crate::backend::Backend::step_value): chunks of
/// [`piece_len`] as [`constraint_value`] takes them, so the sums are the ones
/// `axpby` followed by `constraint_value` gives, and `g` what `constraint_residual`
/// writes at the moved point, bit for bit.
pub fn step_value<F: Real>(out: &mut [F], g: &mut [F], s: Step<'_, F>) -> [f64; 3] {
    let n = out.len();
    let g = &mut g[..n];
    let part = |lo: usize, o: &mut [F], g: &mut [F]| {
        let chunk = s.at(lo, lo + o.len());
        step_value_chunk(o, g, chunk)
    };
    let piece = piece_len(n);
    if n <= piece {
        return part(0, out, g);
    }
    let parts: Vec<[f64; 3]> = out
        .par_chunks_mut(piece)
        .zip(g.par_chunks_mut(piece))
        .enumerate()
        .map(|(c, (o, g))| part(c * piece, o, g))
        .collect();
    parts.into_iter().fold([0.0; 3], add)
}

/// One candidate's outputs of a ladder trial: the point and the gradient written there.
pub type Out<'a, F> = (&'a mut [F], &'a mut [F]);

/// Run `chunk(lo, [out₀, grad₀], [out₁, grad₁])` over the [`piece_len`] pieces of two
/// candidates' outputs (in parallel when there is more than one) and add the pieces' `K`
/// sums in chunk order: the pieces and the order of [`step_value`] and
/// [`w_trial_value`], so each candidate's sums are theirs, bit for bit.
fn ladder_chunks<F: Real, const K: usize>(
    [(o0, g0), (o1, g1)]: [Out<'_, F>; 2],
    chunk: impl Fn(usize, Out<'_, F>, Out<'_, F>) -> [f64; K] + Sync,
) -> [f64; K] {
    let n = o0.len();
    let (g0, o1, g1) = (&mut g0[..n], &mut o1[..n], &mut g1[..n]);
    let piece = piece_len(n);
    if n <= piece {
        return chunk(0, (o0, g0), (o1, g1));
    }
    let parts: Vec<[f64; K]> = o0
        .par_chunks_mut(piece)
        .zip(g0.par_chunks_mut(piece))
        .zip(o1.par_chunks_mut(piece))
        .zip(g1.par_chunks_mut(piece))
        .enumerate()
        .map(|(c, (((o0, g0), o1), g1))| chunk(c * piece, (o0, g0), (o1, g1)))
        .collect();
    parts.into_iter().fold([0.0; K], add)
}

/// Two candidates of [`step_value`] (steps `a`, candidate `c` into `outs[c]`) in one pass
/// over the chunks: each chunk of the operands is read from memory once, and the second
/// candidate reads it again from cache. With `dir_sq`, also `Σ dir²` as
/// [`kernels::sq_sum`](super::kernels::sq_sum) sums it. Returns each candidate's sums and
/// `Σ dir²` (0 without `dir_sq`); all equal to the separate calls', bit for bit.
pub fn step_value_ladder<F: Real>(
    outs: [Out<'_, F>; 2],
    s: Step<'_, F>,
    a: [F; 2],
    dir_sq: bool,
) -> ([[f64; 3]; 2], f64) {
    let sums = ladder_chunks(outs, |lo, (o0, g0), (o1, g1)| {
        let chunk = s.at(lo, lo + o0.len());
        // One hand-vectorised pass for both candidates where there is one (writing G_U);
        // moving V, they also share U's σ and σ'.
        let (bd, ol) = ((chunk.base, chunk.dir), (chunk.other, chunk.ls));
        let (outs, grads) = ([&mut *o0, &mut *o1], [&mut *g0, &mut *g1]);
        let fast = (s.k.write != Grads::V)
            .then(|| F::fast_step_pair(s.moved_v, bd, ol, a, s.k, outs, grads))
            .flatten();
        let [[x0, x1, x2], [y0, y1, y2]] = fast.unwrap_or_else(|| {
            [
                step_value_chunk(o0, g0, Step { a: a[0], ..chunk }),
                step_value_chunk(o1, g1, Step { a: a[1], ..chunk }),
            ]
        });
        let q = if dir_sq { sq_chunk(chunk.dir)[0] } else { 0.0 };
        [x0, x1, x2, y0, y1, y2, q]
    });
    let [x0, x1, x2, y0, y1, y2, q] = sums;
    ([[x0, x1, x2], [y0, y1, y2]], q)
}

/// The rows of a W trial (`diag(shrink)(u − b_old 1ᵀ − t·bmat) + b_new 1ᵀ`, method §6):
/// one factor and two biases per row of a `cols`-wide matrix.
#[derive(Clone, Copy)]
pub struct TrialRows<'a, F> {
    pub cols: usize,
    pub shrink: &'a [F],
    pub b_old: &'a [F],
    pub b_new: &'a [F],
    pub t: F,
}

/// The W trial's pre-activation at flat positions `lo..lo + out.len()`: the one
/// definition of the formula, for `w_trial_preact`, `w_trial_value` and the tails of
/// `simd::w_trial_pair_v`.
pub(super) fn w_trial_rows<F: Real>(
    out: &mut [F],
    lo: usize,
    us: &[F],
    bs: &[F],
    r: TrialRows<'_, F>,
) {
    let n = out.len();
    let (us, bs) = (&us[..n], &bs[..n]);
    let mut k = 0;
    while k < n {
        let i = (lo + k) / r.cols;
        let end = ((i + 1) * r.cols - lo).min(n);
        let (s, bo, bn, t) = (r.shrink[i], r.b_old[i], r.b_new[i], r.t);
        let (out, us, bs) = (&mut out[k..end], &us[k..end], &bs[k..end]);
        row_segment(out, us, bs, (s, bo, bn, t));
        k = end;
    }
}

#[inline(always)]
fn row_imp<F: Real>(out: &mut [F], us: &[F], bs: &[F], row: (F, F, F, F)) {
    let (s, bo, bn, t) = row;
    let (us, bs) = (&us[..out.len()], &bs[..out.len()]);
    for q in 0..out.len() {
        out[q] = s * (us[q] - bo - t * bs[q]) + bn;
    }
}

/// One row segment of [`w_trial_rows`] (`row` = shrink, old and new bias, step),
/// vectorised by the compiler ([`simd_dispatch`]).
fn row_segment<F: Real>(out: &mut [F], us: &[F], bs: &[F], row: (F, F, F, F)) {
    simd_dispatch!(row_imp::<F>(out: &mut [F], us: &[F], bs: &[F], row: (F, F, F, F)) -> ())
}

/// `Backend::w_trial_preact` over flat row-major slices, in [`piece_len`] pieces.
pub fn w_trial_preact<F: Real>(out: &mut [F], us: &[F], bs: &[F], r: TrialRows<'_, F>) {
    let n = out.len();
    let (us, bs) = (&us[..n], &bs[..n]);
    let piece = piece_len(n);
    if n <= piece {
        return w_trial_rows(out, 0, us, bs, r);
    }
    out.par_chunks_mut(piece).enumerate().for_each(|(c, o)| {
        let lo = c * piece;
        w_trial_rows(o, lo, &us[lo..lo + o.len()], &bs[lo..lo + o.len()], r);
    });
}

/// `Backend::w_trial_value` over flat row-major slices: each [`piece_len`] piece of the
/// trial pre-activation is written and then its residual taken while in cache (the value
/// sums and the gradient `k.write` names, into `g`); the pieces are those of
/// [`constraint_value`], so the sums equal its sums over the written `out`, bit for bit.
pub fn w_trial_value<F: Real>(
    out: &mut [F],
    g: &mut [F],
    us: &[F],
    bs: &[F],
    r: TrialRows<'_, F>,
    (vs, ls): (&[F], &[F]),
    k: ResidualScalars<F>,
) -> [f64; 3] {
    let n = out.len();
    let (us, bs, vs, ls, g) = (&us[..n], &bs[..n], &vs[..n], &ls[..n], &mut g[..n]);
    let piece = piece_len(n);
    let chunk = |c: usize, o: &mut [F], g: &mut [F]| {
        let (lo, hi) = (c * piece, c * piece + o.len());
        w_trial_rows(o, lo, &us[lo..hi], &bs[lo..hi], r);
        residual_one([o, &vs[lo..hi], &ls[lo..hi]], k, g)
    };
    if n <= piece {
        return chunk(0, out, g);
    }
    let parts: Vec<[f64; 3]> = out
        .par_chunks_mut(piece)
        .zip(g.par_chunks_mut(piece))
        .enumerate()
        .map(|(c, (o, g))| chunk(c, o, g))
        .collect();
    parts.into_iter().fold([0.0; 3], add)
}

/// Two candidates of [`w_trial_value`] (`rows[c]` into `outs[c]`, sharing `us`, `bs`,
/// `vs`, `ls`) in one pass over the chunks, as [`step_value_ladder`] does: each
/// candidate's sums equal the separate call's, bit for bit.
pub fn w_trial_value_ladder<F: Real>(
    outs: [Out<'_, F>; 2],
    us: &[F],
    bs: &[F],
    rows: [TrialRows<'_, F>; 2],
    (vs, ls): (&[F], &[F]),
    k: ResidualScalars<F>,
) -> [[f64; 3]; 2] {
    let sums = ladder_chunks(outs, |lo, (o0, g0), (o1, g1)| {
        let hi = lo + o0.len();
        let (us, bs, vs, ls) = (&us[lo..hi], &bs[lo..hi], &vs[lo..hi], &ls[lo..hi]);
        // Writing G_V (a hidden layer's trial), one hand-vectorised pass for both.
        let fast = (k.write == Grads::V)
            .then(|| {
                let (outs, grads) = ([&mut *o0, &mut *o1], [&mut *g0, &mut *g1]);
                F::fast_w_trial_pair_v((us, bs), (vs, ls), (lo, rows), k, outs, grads)
            })
            .flatten();
        let [[x0, x1, x2], [y0, y1, y2]] = fast.unwrap_or_else(|| {
            w_trial_rows(o0, lo, us, bs, rows[0]);
            let x = residual_one([o0, vs, ls], k, g0);
            w_trial_rows(o1, lo, us, bs, rows[1]);
            [x, residual_one([o1, vs, ls], k, g1)]
        });
        [x0, x1, x2, y0, y1, y2]
    });
    let [x0, x1, x2, y0, y1, y2] = sums;
    [[x0, x1, x2], [y0, y1, y2]]
}

#[cfg(test)]
mod tests;
