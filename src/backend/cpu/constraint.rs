//! The fused kernels of the constraint `V = σ(U)` (method §3 and §6) on contiguous
//! slices: the residual (gradients and the three sums `‖H‖², ⟨Λ,H⟩, ‖σ(U)‖²`), the value
//! (the sums alone), and the two trial kernels that write a moved point and value it in
//! the same pass (`step_value` for a V trial, `w_trial_value` for a W trial). Each runs in
//! the [`PAR_CHUNK`] pieces of `kernels.rs`, so a fused kernel's sums are those of the
//! separate kernels, bit for bit; the `f32` residual and value have AVX2 versions in
//! `simd.rs`.

use super::kernels::{add, dsigma, lane_total, sigma, sq_chunk, LANES, PAR_CHUNK};
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

/// One chunk of [`constraint_residual`], writing `G_U` when `WU` and `G_V` when `WV`; an
/// unwritten slice is never touched (it may be empty).
#[inline(always)]
fn residual_imp<F: Real, const WU: bool, const WV: bool>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    gus: &mut [F],
    gvs: &mut [F],
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
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    gus: &mut [F],
    gvs: &mut [F],
) -> [f64; 3] {
    macro_rules! variant {
        ($wu:literal, $wv:literal) => {{
            #[inline(always)]
            fn imp<F: Real>(
                us: &[F],
                vs: &[F],
                ls: &[F],
                k: ResidualScalars<F>,
                gus: &mut [F],
                gvs: &mut [F],
            ) -> [f64; 3] {
                residual_imp::<F, $wu, $wv>(us, vs, ls, k, gus, gvs)
            }
            simd_dispatch!(imp::<F>(
                us: &[F], vs: &[F], ls: &[F], k: ResidualScalars<F>, gus: &mut [F], gvs: &mut [F]
            ) -> [f64; 3])
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
fn residual_chunk<F: Real>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    gus: &mut [F],
    gvs: &mut [F],
) -> [f64; 3] {
    match F::fast_residual(us, vs, ls, k, gus, gvs) {
        Some(sums) => sums,
        None => generic_residual_chunk(us, vs, ls, k, gus, gvs),
    }
}

/// The fused constraint residual of method §3 over `(u, v, λ)`: writes `G_U` and/or
/// `G_V` as `k.write` says; returns `[‖H‖², ⟨Λ,H⟩, ‖σ(U)‖²]`.
pub fn constraint_residual<F: Real>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    gus: &mut [F],
    gvs: &mut [F],
) -> [f64; 3] {
    let n = us.len();
    let (vs, ls, gus, gvs) = (&vs[..n], &ls[..n], &mut gus[..n], &mut gvs[..n]);
    if n <= PAR_CHUNK {
        return residual_chunk(us, vs, ls, k, gus, gvs);
    }
    let parts: Vec<[f64; 3]> = us
        .par_chunks(PAR_CHUNK)
        .zip(vs.par_chunks(PAR_CHUNK))
        .zip(ls.par_chunks(PAR_CHUNK))
        .zip(gus.par_chunks_mut(PAR_CHUNK))
        .zip(gvs.par_chunks_mut(PAR_CHUNK))
        .map(|((((u, v), l), gu), gv)| residual_chunk(u, v, l, k, gu, gv))
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
fn residual_one<F: Real>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    g: &mut [F],
) -> [f64; 3] {
    match k.write {
        Grads::V => residual_chunk(us, vs, ls, k, &mut [], g),
        Grads::U | Grads::Both => {
            let k = ResidualScalars {
                write: Grads::U,
                ..k
            };
            residual_chunk(us, vs, ls, k, g, &mut [])
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
fn step_axpy<F: Real>(out: &mut [F], base: &[F], a: F, dir: &[F]) {
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
        residual_one(s.other, out, s.ls, s.k, g)
    } else {
        residual_one(out, s.other, s.ls, s.k, g)
    }
}

/// [`Backend::step_value`](crate::backend::Backend::step_value): chunks of
/// [`PAR_CHUNK`] as [`constraint_value`] takes them, so the sums are the ones
/// `axpby` followed by `constraint_value` gives, and `g` what `constraint_residual`
/// writes at the moved point, bit for bit.
pub fn step_value<F: Real>(out: &mut [F], g: &mut [F], s: Step<'_, F>) -> [f64; 3] {
    let n = out.len();
    let g = &mut g[..n];
    let part = |lo: usize, o: &mut [F], g: &mut [F]| {
        let chunk = s.at(lo, lo + o.len());
        step_value_chunk(o, g, chunk)
    };
    if n <= PAR_CHUNK {
        return part(0, out, g);
    }
    let parts: Vec<[f64; 3]> = out
        .par_chunks_mut(PAR_CHUNK)
        .zip(g.par_chunks_mut(PAR_CHUNK))
        .enumerate()
        .map(|(c, (o, g))| part(c * PAR_CHUNK, o, g))
        .collect();
    parts.into_iter().fold([0.0; 3], add)
}

/// One candidate's outputs of a ladder trial: the point and the gradient written there.
pub type Out<'a, F> = (&'a mut [F], &'a mut [F]);

/// Run `chunk(lo, [out₀, grad₀], [out₁, grad₁])` over the [`PAR_CHUNK`] pieces of two
/// candidates' outputs (in parallel when there is more than one) and add the pieces' `K`
/// sums in chunk order: the pieces and the order of [`step_value`] and
/// [`w_trial_value`], so each candidate's sums are theirs, bit for bit.
fn ladder_chunks<F: Real, const K: usize>(
    [(o0, g0), (o1, g1)]: [Out<'_, F>; 2],
    chunk: impl Fn(usize, Out<'_, F>, Out<'_, F>) -> [f64; K] + Sync,
) -> [f64; K] {
    let n = o0.len();
    let (g0, o1, g1) = (&mut g0[..n], &mut o1[..n], &mut g1[..n]);
    if n <= PAR_CHUNK {
        return chunk(0, (o0, g0), (o1, g1));
    }
    let parts: Vec<[f64; K]> = o0
        .par_chunks_mut(PAR_CHUNK)
        .zip(g0.par_chunks_mut(PAR_CHUNK))
        .zip(o1.par_chunks_mut(PAR_CHUNK))
        .zip(g1.par_chunks_mut(PAR_CHUNK))
        .enumerate()
        .map(|(c, (((o0, g0), o1), g1))| chunk(c * PAR_CHUNK, (o0, g0), (o1, g1)))
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
        // Moving V, the candidates share U's σ and σ': one hand-vectorised pass for both.
        let fast = (s.moved_v && s.k.write != Grads::V)
            .then(|| {
                let (bd, ul) = ((chunk.base, chunk.dir), (chunk.other, chunk.ls));
                F::fast_step_pair_v(bd, ul, a, s.k, [&mut *o0, &mut *o1], [&mut *g0, &mut *g1])
            })
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
/// definition of the formula, for `w_trial_preact` and `w_trial_value`.
fn w_trial_rows<F: Real>(out: &mut [F], lo: usize, us: &[F], bs: &[F], r: TrialRows<'_, F>) {
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

/// `Backend::w_trial_preact` over flat row-major slices, in [`PAR_CHUNK`] pieces.
pub fn w_trial_preact<F: Real>(out: &mut [F], us: &[F], bs: &[F], r: TrialRows<'_, F>) {
    let n = out.len();
    let (us, bs) = (&us[..n], &bs[..n]);
    if n <= PAR_CHUNK {
        return w_trial_rows(out, 0, us, bs, r);
    }
    out.par_chunks_mut(PAR_CHUNK)
        .enumerate()
        .for_each(|(c, o)| {
            let lo = c * PAR_CHUNK;
            w_trial_rows(o, lo, &us[lo..lo + o.len()], &bs[lo..lo + o.len()], r);
        });
}

/// `Backend::w_trial_value` over flat row-major slices: each [`PAR_CHUNK`] piece of the
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
    let chunk = |c: usize, o: &mut [F], g: &mut [F]| {
        let (lo, hi) = (c * PAR_CHUNK, c * PAR_CHUNK + o.len());
        w_trial_rows(o, lo, &us[lo..hi], &bs[lo..hi], r);
        residual_one(o, &vs[lo..hi], &ls[lo..hi], k, g)
    };
    if n <= PAR_CHUNK {
        return chunk(0, out, g);
    }
    let parts: Vec<[f64; 3]> = out
        .par_chunks_mut(PAR_CHUNK)
        .zip(g.par_chunks_mut(PAR_CHUNK))
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
        w_trial_rows(o0, lo, us, bs, rows[0]);
        let [x0, x1, x2] = residual_one(o0, vs, ls, k, g0);
        w_trial_rows(o1, lo, us, bs, rows[1]);
        let [y0, y1, y2] = residual_one(o1, vs, ls, k, g1);
        [x0, x1, x2, y0, y1, y2]
    });
    let [x0, x1, x2, y0, y1, y2] = sums;
    [[x0, x1, x2], [y0, y1, y2]]
}

#[cfg(test)]
mod tests {
    use super::super::kernels::map3;
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect()
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The residual a trial's gradient must equal: `constraint_residual` at `(u, v)`,
    /// writing the gradient `write` names (the other output NaN-filled and ignored).
    fn residual_at(
        u: &[f32],
        v: &[f32],
        lam: &[f32],
        k: ResidualScalars<f32>,
    ) -> (Vec<f32>, [f64; 3]) {
        let n = u.len();
        let (mut gu, mut gv) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        let sums = constraint_residual(u, v, lam, k, &mut gu, &mut gv);
        (if k.write == Grads::V { gv } else { gu }, sums)
    }

    /// The fused W trial writes the pre-activation of the separate kernel's formula, the
    /// residual's `G_V` there and the sums `constraint_value` takes of it, bit for bit,
    /// also when a row straddles a parallel chunk.
    #[test]
    fn w_trial_value_is_preact_then_residual_bit_for_bit() {
        let k = ResidualScalars {
            rho: 3.0,
            al: 0.1,
            inv_n: 1.0 / 7.0,
            write: Grads::V,
        };
        for (rows, cols) in [(1usize, 1usize), (3, 63), (5, 65), (2, 257), (7, 13_001)] {
            let n = rows * cols;
            let (u, b, v, lam) = (data(n, 5), data(n, 6), data(n, 7), data(n, 8));
            let (sh, bo, bn) = (data(rows, 9), data(rows, 10), data(rows, 11));
            let r = TrialRows {
                cols,
                shrink: &sh,
                b_old: &bo,
                b_new: &bn,
                t: 0.3f32,
            };
            let want: Vec<f32> = (0..n)
                .map(|k| {
                    let i = k / cols;
                    sh[i] * (u[k] - bo[i] - r.t * b[k]) + bn[i]
                })
                .collect();
            let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            let fused = w_trial_value(&mut out, &mut g, &u, &b, r, (&v, &lam), k);
            assert_eq!(bits(&out), bits(&want), "{rows}×{cols}");
            let (want_g, res_sums) = residual_at(&want, &v, &lam, k);
            assert_eq!(bits(&g), bits(&want_g), "G_V, {rows}×{cols}");
            let apart = constraint_value(&want, &v, &lam, 0.1);
            assert_eq!(res_sums.map(f64::to_bits), apart.map(f64::to_bits));
            assert_eq!(
                fused.map(f64::to_bits),
                apart.map(f64::to_bits),
                "{rows}×{cols}"
            );
            let r2 = TrialRows { t: 0.2, ..r };
            let moved = w_trial_value(&mut out, &mut g, &u, &b, r2, (&v, &lam), k);
            assert_ne!(moved.map(f64::to_bits), apart.map(f64::to_bits));
            assert_ne!(bits(&g), bits(&want_g));
        }
    }

    /// The fused V trial writes what `axpby(out, 1, base, a, dir)` writes, the residual's
    /// `G_U` at the moved point and the sums `constraint_value` takes there, bit for bit:
    /// the solver's iterates do not depend on the fusion. Sizes around the lanes and past
    /// a parallel chunk.
    #[test]
    fn step_value_is_axpby_then_residual_bit_for_bit() {
        let k = ResidualScalars {
            rho: 2.5,
            al: 0.1,
            inv_n: 1.0 / 9.0,
            write: Grads::U,
        };
        for n in [1usize, 63, 65, 257, PAR_CHUNK + 4097] {
            let (base, dir, other, lam) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
            let a = -0.37f32;
            let mut moved = vec![0.0f32; n];
            map3(&mut moved, &base, &dir, |_, x, y| 1.0 * x + a * y);
            for moved_v in [false, true] {
                let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                let step = Step {
                    base: &base,
                    a,
                    dir: &dir,
                    moved_v,
                    other: &other,
                    ls: &lam,
                    k,
                };
                let fused = step_value(&mut out, &mut g, step);
                assert_eq!(bits(&out), bits(&moved), "out, n = {n}");
                let (u, v) = if moved_v {
                    (&other, &moved)
                } else {
                    (&moved, &other)
                };
                let (want_g, _) = residual_at(u, v, &lam, k);
                assert_eq!(bits(&g), bits(&want_g), "G_U, n = {n}");
                let apart = constraint_value(u, v, &lam, k.al);
                assert_eq!(fused.map(f64::to_bits), apart.map(f64::to_bits), "n = {n}");
                // ... and the comparison can fail: another step moves the sums.
                let other_step = step_value(&mut out, &mut g, Step { a: a * 0.5, ..step });
                assert_ne!(other_step.map(f64::to_bits), apart.map(f64::to_bits));
            }
        }
    }

    /// The ladder forms are the single operations candidate by candidate, bit for bit: the
    /// pass moving V (hand-vectorised where the CPU has it), the generic pairs (moving U,
    /// or writing G_V), `Σ dir²` as `sq_sum` sums it, and the W ladder; sizes around the
    /// 8-lane blocks, a row boundary inside a block, and past a chunk.
    #[test]
    fn ladders_are_the_single_operations_bit_for_bit() {
        use super::super::kernels::sq_sum;
        let a = [-0.37f32, -0.185];
        for n in [1usize, 63, 65, 257, PAR_CHUNK + 4097] {
            let (base, dir, other, lam) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
            for (moved_v, write) in [(true, Grads::U), (false, Grads::U), (true, Grads::V)] {
                let k = ResidualScalars {
                    rho: 2.5,
                    al: 0.1,
                    inv_n: 1.0 / 9.0,
                    write,
                };
                let step = Step {
                    base: &base,
                    a: 0.0,
                    dir: &dir,
                    moved_v,
                    other: &other,
                    ls: &lam,
                    k,
                };
                let mut m: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; n]);
                let [o0, g0, o1, g1] = &mut m;
                let (sums, sq) = step_value_ladder([(o0, g0), (o1, g1)], step, a, true);
                for c in 0..2 {
                    let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                    let one = step_value(&mut out, &mut g, Step { a: a[c], ..step });
                    let what = format!("n = {n}, moved_v = {moved_v}, {write:?}, candidate {c}");
                    assert_eq!(bits(&m[2 * c]), bits(&out), "out, {what}");
                    assert_eq!(bits(&m[2 * c + 1]), bits(&g), "grad, {what}");
                    assert_eq!(sums[c].map(f64::to_bits), one.map(f64::to_bits), "{what}");
                }
                assert_eq!(sq.to_bits(), sq_sum(&dir).to_bits(), "n = {n}");
            }
        }
        // The W ladder: `cols` not a multiple of 8 puts row boundaries inside blocks.
        for (rows, cols) in [
            (1usize, 1usize),
            (3, 21),
            (5, 13),
            (2, PAR_CHUNK / 2 + 2049),
        ] {
            let n = rows * cols;
            let (us, bs, vs, ls) = (data(n, 5), data(n, 6), data(n, 7), data(n, 8));
            let per_row = |seed| data(rows, seed);
            let (b_old, b_new, b_new2, shrink, shrink2) = (
                per_row(9),
                per_row(10),
                per_row(11),
                per_row(12),
                per_row(13),
            );
            let row = |b_new, shrink, t| TrialRows {
                cols,
                shrink,
                b_old: &b_old,
                b_new,
                t,
            };
            let r = [row(&b_new, &shrink, 0.3f32), row(&b_new2, &shrink2, 0.15)];
            let k = ResidualScalars {
                rho: 2.5,
                al: 0.1,
                inv_n: 1.0 / 9.0,
                write: Grads::V,
            };
            let mut m: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; n]);
            let [o0, g0, o1, g1] = &mut m;
            let sums = w_trial_value_ladder([(o0, g0), (o1, g1)], &us, &bs, r, (&vs, &ls), k);
            for c in 0..2 {
                let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                let one = w_trial_value(&mut out, &mut g, &us, &bs, r[c], (&vs, &ls), k);
                assert_eq!(bits(&m[2 * c]), bits(&out), "W out, n = {n}, {c}");
                assert_eq!(bits(&m[2 * c + 1]), bits(&g), "W grad, n = {n}, {c}");
                assert_eq!(
                    sums[c].map(f64::to_bits),
                    one.map(f64::to_bits),
                    "W, n = {n}"
                );
            }
            assert_ne!(sums[0].map(f64::to_bits), sums[1].map(f64::to_bits));
        }
    }
}
