//! The fused kernels of the constraint `V = σ(U)` (method §3 and §6) on contiguous
//! slices: the residual (gradients and the three sums `‖H‖², ⟨Λ,H⟩, ‖σ(U)‖²`), the value
//! (the sums alone), and the two trial kernels that write a moved point and value it in
//! the same pass (`step_value` for a V trial, `w_trial_value` for a W trial). Each runs in
//! the [`PAR_CHUNK`] pieces of `kernels.rs`, so a fused kernel's sums are those of the
//! separate kernels, bit for bit; the `f32` residual and value have AVX2 versions in
//! `simd.rs`.

use super::kernels::{add, dsigma, lane_total, sigma, LANES, PAR_CHUNK};
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

/// `out ← base + a·dir` (the expression `axpby(out, 1, base, a, dir)` evaluates, so the
/// same bits) on one chunk, then the residual at the moved point while it is in cache:
/// the value sums and the gradient `g`.
fn step_value_chunk<F: Real>(out: &mut [F], g: &mut [F], s: Step<'_, F>) -> [f64; 3] {
    let n = out.len();
    let (base, dir) = (&s.base[..n], &s.dir[..n]);
    for i in 0..n {
        out[i] = F::one() * base[i] + s.a * dir[i];
    }
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
        let hi = lo + o.len();
        let chunk = Step {
            base: &s.base[lo..hi],
            dir: &s.dir[lo..hi],
            other: &s.other[lo..hi],
            ls: &s.ls[lo..hi],
            ..s
        };
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
        for q in k..end {
            out[q] = s * (us[q] - bo - t * bs[q]) + bn;
        }
        k = end;
    }
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
}
