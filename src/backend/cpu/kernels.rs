//! The CPU backend's elementwise and reduction loops over contiguous slices, written so the
//! compiler vectorises them: every reduction keeps [`LANES`] independent `f64`
//! accumulators per sum (a single running sum is one long dependency chain, several
//! times slower than the memory it reads), and every fused step reads and writes each
//! array once (method §3: one pass over `(U, V, Λ)`). Results differ from a sequential
//! sum only by the order of the additions.
//!
//! The reductions walk their slices in fixed blocks of [`LANES`] elements borrowed as
//! arrays, so the loop body has no bounds checks and the 8 lanes become vector
//! instructions; each is compiled twice, for the baseline x86-64 (SSE2) and for AVX2, and
//! the AVX2 copy runs when the CPU has it ([`simd_dispatch`]). The copies do the same
//! additions in the same order (Rust never contracts `a·b + c` into an FMA by itself), so
//! the result does not depend on which copy ran.
//!
//! Large arrays are split into [`PAR_CHUNK`]-element pieces run on rayon's pool, whose
//! partial sums are added in chunk order, so a result does not depend on the number of
//! threads. Matmuls run on OpenBLAS's own threads (`blas.rs`), never inside this pool.

use super::Real;
use crate::backend::Grads;
use rayon::prelude::*;

/// Independent accumulators per sum (8 `f64` = one AVX-512 register).
pub const LANES: usize = 8;
/// Elements per parallel task: below this, a loop runs on the calling thread (a pool
/// hand-off costs a few microseconds, a 64k-element pass about as much).
pub const PAR_CHUNK: usize = 1 << 16;

/// `K` sums over `0..n` of the slices named in `[reads]` and `[writes]` (all at least `n`
/// long): the body computes element `i`'s `K` terms (and may write the `writes` at `i`).
/// Lane `i % LANES` accumulates element `i`. Inside the full blocks every slice is
/// re-borrowed as a `[_; LANES]` array and `i` runs over `0..LANES`, so the body's indexing
/// needs no bounds checks and vectorises; the tail (fewer than `LANES` elements) runs
/// element by element into the same lanes. A macro, not a function taking a closure, so
/// the body is always inlined into the loop.
macro_rules! lane_sums {
    ($n:expr, $k:literal, [$($r:ident),*], [$($w:ident),*], |$i:ident| $body:block) => {{
        let n: usize = $n;
        let mut acc = [[0.0f64; LANES]; $k];
        let full = n - n % LANES;
        let mut i0 = 0;
        while i0 < full {
            $(let $r: &[_; LANES] = (&$r[i0..i0 + LANES]).try_into().unwrap();)*
            $(let $w: &mut [_; LANES] = (&mut $w[i0..i0 + LANES]).try_into().unwrap();)*
            for $i in 0..LANES {
                let t: [f64; $k] = $body;
                for q in 0..$k {
                    acc[q][$i] += t[q];
                }
            }
            i0 += LANES;
        }
        {
            $(let $r = &$r[full..n];)*
            $(let $w = &mut $w[full..n];)*
            for $i in 0..n - full {
                let t: [f64; $k] = $body;
                for q in 0..$k {
                    acc[q][$i] += t[q];
                }
            }
        }
        acc.map(|a| lane_total(&a))
    }};
}

/// Call `imp(args)` through a copy compiled for AVX2 when the CPU has it (checked once per
/// process by the standard library, then a cached load), else the baseline copy. `imp` is
/// `#[inline(always)]`, so each copy is the whole loop compiled for its instruction set.
macro_rules! simd_dispatch {
    ($imp:ident::<$f:ident>($($a:ident : $t:ty),*) -> $r:ty) => {{
        #[cfg(target_arch = "x86_64")]
        {
            #[target_feature(enable = "avx2,fma")]
            fn avx2<$f: Real>($($a: $t),*) -> $r {
                $imp($($a),*)
            }
            if std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
            {
                // SAFETY: the CPU supports AVX2 and FMA, checked just above.
                return unsafe { avx2::<$f>($($a),*) };
            }
        }
        $imp($($a),*)
    }};
}

/// The sum of one accumulator's lanes, pairwise in a fixed order.
#[inline(always)]
pub fn lane_total(a: &[f64; LANES]) -> f64 {
    ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]))
}

fn add<const K: usize>(mut a: [f64; K], b: [f64; K]) -> [f64; K] {
    for q in 0..K {
        a[q] += b[q];
    }
    a
}

/// σ(u) = max(u, αu) (method §1).
#[inline(always)]
pub fn sigma<F: Real>(u: F, alpha: F) -> F {
    if u > F::zero() {
        u
    } else {
        alpha * u
    }
}

/// σ'(u) = 1 if u > 0 else α (method §1).
#[inline(always)]
pub fn dsigma<F: Real>(u: F, alpha: F) -> F {
    if u > F::zero() {
        F::one()
    } else {
        alpha
    }
}

/// Chunks of `PAR_CHUNK` elements, in parallel when there is more than one.
macro_rules! par_sum {
    ($n:expr, $k:literal, |$lo:ident, $hi:ident| $body:expr) => {{
        let n: usize = $n;
        if n <= PAR_CHUNK {
            let ($lo, $hi) = (0usize, n);
            $body
        } else {
            let parts: Vec<[f64; $k]> = (0..n.div_ceil(PAR_CHUNK))
                .into_par_iter()
                .map(|c| {
                    let ($lo, $hi) = (c * PAR_CHUNK, ((c + 1) * PAR_CHUNK).min(n));
                    $body
                })
                .collect();
            parts.into_iter().fold([0.0f64; $k], add)
        }
    }};
}

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

/// One chunk of [`constraint_residual`], writing `G_U` when `WU` and `G_V` when `WV`.
#[inline(always)]
fn residual_imp<F: Real, const WU: bool, const WV: bool>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    gus: &mut [F],
    gvs: &mut [F],
) -> [f64; 3] {
    lane_sums!(us.len(), 3, [us, vs, ls], [gus, gvs], |i| {
        let (o, terms) = residual_elem(us[i], vs[i], ls[i], k);
        if WU {
            gus[i] = o[0];
        }
        if WV {
            gvs[i] = o[1];
        }
        terms
    })
}

/// The three writing variants of [`residual_imp`], each a function [`simd_dispatch`] can
/// compile twice.
macro_rules! residual_variant {
    ($name:ident, $wu:literal, $wv:literal) => {
        #[inline(always)]
        fn $name<F: Real>(
            us: &[F],
            vs: &[F],
            ls: &[F],
            k: ResidualScalars<F>,
            gus: &mut [F],
            gvs: &mut [F],
        ) -> [f64; 3] {
            residual_imp::<F, $wu, $wv>(us, vs, ls, k, gus, gvs)
        }
    };
}
residual_variant!(residual_u, true, false);
residual_variant!(residual_v, false, true);
residual_variant!(residual_both, true, true);

/// [`residual_imp`] through [`simd_dispatch`] (the compiler's vectorisation).
pub(super) fn generic_residual_chunk<F: Real>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    k: ResidualScalars<F>,
    gus: &mut [F],
    gvs: &mut [F],
) -> [f64; 3] {
    match k.write {
        Grads::U => simd_dispatch!(residual_u::<F>(
            us: &[F], vs: &[F], ls: &[F], k: ResidualScalars<F>, gus: &mut [F], gvs: &mut [F]
        ) -> [f64; 3]),
        Grads::V => simd_dispatch!(residual_v::<F>(
            us: &[F], vs: &[F], ls: &[F], k: ResidualScalars<F>, gus: &mut [F], gvs: &mut [F]
        ) -> [f64; 3]),
        Grads::Both => simd_dispatch!(residual_both::<F>(
            us: &[F], vs: &[F], ls: &[F], k: ResidualScalars<F>, gus: &mut [F], gvs: &mut [F]
        ) -> [f64; 3]),
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
/// is the constraint's other matrix, `ls` its multipliers, `al` the slope.
#[derive(Clone, Copy)]
pub struct Step<'a, F> {
    pub base: &'a [F],
    pub a: F,
    pub dir: &'a [F],
    pub moved_v: bool,
    pub other: &'a [F],
    pub ls: &'a [F],
    pub al: F,
}

/// `out ← base + a·dir` (the expression `axpby(out, 1, base, a, dir)` evaluates, so the
/// same bits) on one chunk, then the chunk's constraint value sums at the moved point
/// while it is still in cache.
fn step_value_chunk<F: Real>(out: &mut [F], s: Step<'_, F>) -> [f64; 3] {
    let n = out.len();
    let (base, dir) = (&s.base[..n], &s.dir[..n]);
    for i in 0..n {
        out[i] = F::one() * base[i] + s.a * dir[i];
    }
    if s.moved_v {
        value_chunk(s.other, out, s.ls, s.al)
    } else {
        value_chunk(out, s.other, s.ls, s.al)
    }
}

/// [`Backend::step_value`](crate::backend::Backend::step_value): chunks of
/// [`PAR_CHUNK`] as [`constraint_value`] takes them, so the sums are the ones
/// `axpby` followed by `constraint_value` gives, bit for bit.
pub fn step_value<F: Real>(out: &mut [F], s: Step<'_, F>) -> [f64; 3] {
    let n = out.len();
    let part = |lo: usize, o: &mut [F]| {
        let hi = lo + o.len();
        let chunk = Step {
            base: &s.base[lo..hi],
            dir: &s.dir[lo..hi],
            other: &s.other[lo..hi],
            ls: &s.ls[lo..hi],
            ..s
        };
        step_value_chunk(o, chunk)
    };
    if n <= PAR_CHUNK {
        return part(0, out);
    }
    let parts: Vec<[f64; 3]> = out
        .par_chunks_mut(PAR_CHUNK)
        .enumerate()
        .map(|(c, o)| part(c * PAR_CHUNK, o))
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
/// trial pre-activation is written and then valued while in cache; the pieces are those
/// of [`constraint_value`], so the sums equal its sums over the written `out`, bit for bit.
pub fn w_trial_value<F: Real>(
    out: &mut [F],
    us: &[F],
    bs: &[F],
    r: TrialRows<'_, F>,
    (vs, ls): (&[F], &[F]),
    al: F,
) -> [f64; 3] {
    let n = out.len();
    let (us, bs, vs, ls) = (&us[..n], &bs[..n], &vs[..n], &ls[..n]);
    let chunk = |c: usize, o: &mut [F]| {
        let (lo, hi) = (c * PAR_CHUNK, c * PAR_CHUNK + o.len());
        w_trial_rows(o, lo, &us[lo..hi], &bs[lo..hi], r);
        value_chunk(o, &vs[lo..hi], &ls[lo..hi], al)
    };
    if n <= PAR_CHUNK {
        return chunk(0, out);
    }
    let parts: Vec<[f64; 3]> = out
        .par_chunks_mut(PAR_CHUNK)
        .enumerate()
        .map(|(c, o)| chunk(c, o))
        .collect();
    parts.into_iter().fold([0.0; 3], add)
}

#[inline(always)]
fn dot_imp<F: Real>(a: &[F], b: &[F]) -> [f64; 1] {
    let b = &b[..a.len()];
    lane_sums!(a.len(), 1, [a, b], [], |i| { [a[i].f64() * b[i].f64()] })
}

fn dot_chunk<F: Real>(a: &[F], b: &[F]) -> [f64; 1] {
    simd_dispatch!(dot_imp::<F>(a: &[F], b: &[F]) -> [f64; 1])
}

/// `⟨a, b⟩`.
pub fn dot<F: Real>(a: &[F], b: &[F]) -> f64 {
    let b = &b[..a.len()];
    par_sum!(a.len(), 1, |lo, hi| dot_chunk(&a[lo..hi], &b[lo..hi]))[0]
}

#[inline(always)]
fn sq_imp<F: Real>(a: &[F]) -> [f64; 1] {
    lane_sums!(a.len(), 1, [a], [], |i| { [a[i].f64() * a[i].f64()] })
}

fn sq_chunk<F: Real>(a: &[F]) -> [f64; 1] {
    simd_dispatch!(sq_imp::<F>(a: &[F]) -> [f64; 1])
}

/// `Σ a²`.
pub fn sq_sum<F: Real>(a: &[F]) -> f64 {
    par_sum!(a.len(), 1, |lo, hi| sq_chunk(&a[lo..hi]))[0]
}

#[inline(always)]
fn sum_imp<F: Real>(a: &[F]) -> [f64; 1] {
    lane_sums!(a.len(), 1, [a], [], |i| { [a[i].f64()] })
}

fn sum_chunk<F: Real>(a: &[F]) -> [f64; 1] {
    simd_dispatch!(sum_imp::<F>(a: &[F]) -> [f64; 1])
}

/// `Σ a` (serial: used on rows).
pub fn sum<F: Real>(a: &[F]) -> f64 {
    sum_chunk(a)[0]
}

#[inline(always)]
fn sq_loss_grad_imp<F: Real>(p: &[F], t: &[F], g: &mut [F], inv_n: F) -> [f64; 1] {
    let (t, g) = (&t[..p.len()], &mut g[..p.len()]);
    lane_sums!(p.len(), 1, [p, t], [g], |i| {
        let r = p[i] - t[i];
        g[i] = (r + r) * inv_n;
        [r.f64() * r.f64()]
    })
}

fn sq_loss_grad_chunk<F: Real>(p: &[F], t: &[F], g: &mut [F], inv_n: F) -> [f64; 1] {
    simd_dispatch!(sq_loss_grad_imp::<F>(p: &[F], t: &[F], g: &mut [F], inv_n: F) -> [f64; 1])
}

#[inline(always)]
fn sq_loss_imp<F: Real>(p: &[F], t: &[F]) -> [f64; 1] {
    let t = &t[..p.len()];
    lane_sums!(p.len(), 1, [p, t], [], |i| {
        let r = (p[i] - t[i]).f64();
        [r * r]
    })
}

fn sq_loss_chunk<F: Real>(p: &[F], t: &[F]) -> [f64; 1] {
    simd_dispatch!(sq_loss_imp::<F>(p: &[F], t: &[F]) -> [f64; 1])
}

/// `Σ (p − t)²` (the squared loss without its `1/N`), optionally writing `g = 2(p − t)·inv_n`.
pub fn squared_loss<F: Real>(p: &[F], t: &[F], g: Option<&mut [F]>, inv_n: F) -> f64 {
    match g {
        Some(g) => sq_loss_grad_chunk(p, t, g, inv_n)[0],
        None => sq_loss_chunk(p, t)[0],
    }
}

/// Apply `f(out, x, y)` elementwise over three equal-length slices, in parallel chunks
/// when large.
pub fn map3<F: Real>(out: &mut [F], x: &[F], y: &[F], f: impl Fn(F, F, F) -> F + Sync) {
    let n = out.len();
    let (x, y) = (&x[..n], &y[..n]);
    let one = |o: &mut [F], x: &[F], y: &[F]| {
        let (x, y) = (&x[..o.len()], &y[..o.len()]);
        for i in 0..o.len() {
            o[i] = f(o[i], x[i], y[i]);
        }
    };
    if n <= PAR_CHUNK {
        one(out, x, y);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .zip(y.par_chunks(PAR_CHUNK))
            .for_each(|((o, x), y)| one(o, x, y));
    }
}

/// Apply `f(out, x)` elementwise, in parallel chunks when large.
pub fn map2<F: Real>(out: &mut [F], x: &[F], f: impl Fn(F, F) -> F + Sync) {
    let n = out.len();
    let x = &x[..n];
    let one = |o: &mut [F], x: &[F]| {
        let x = &x[..o.len()];
        for i in 0..o.len() {
            o[i] = f(o[i], x[i]);
        }
    };
    if n <= PAR_CHUNK {
        one(out, x);
    } else {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(o, x)| one(o, x));
    }
}

/// Apply `f(out)` elementwise, in parallel chunks when large.
pub fn map1<F: Real>(out: &mut [F], f: impl Fn(F) -> F + Sync) {
    let one = |o: &mut [F]| {
        for v in o.iter_mut() {
            *v = f(*v);
        }
    };
    if out.len() <= PAR_CHUNK {
        one(out);
    } else {
        out.par_chunks_mut(PAR_CHUNK).for_each(one);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect()
    }

    fn bits(x: &[f32]) -> Vec<u32> {
        x.iter().map(|v| v.to_bits()).collect()
    }

    /// The fused W trial writes the pre-activation of the separate kernel's formula and sums
    /// what `constraint_value` sums over it, bit for bit, also when a row straddles a
    /// parallel chunk.
    #[test]
    fn w_trial_value_is_preact_then_value_bit_for_bit() {
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
            let mut out = vec![f32::NAN; n];
            let fused = w_trial_value(&mut out, &u, &b, r, (&v, &lam), 0.1);
            assert_eq!(bits(&out), bits(&want), "{rows}×{cols}");
            let apart = constraint_value(&want, &v, &lam, 0.1);
            assert_eq!(
                fused.map(f64::to_bits),
                apart.map(f64::to_bits),
                "{rows}×{cols}"
            );
            let moved = w_trial_value(&mut out, &u, &b, TrialRows { t: 0.2, ..r }, (&v, &lam), 0.1);
            assert_ne!(moved.map(f64::to_bits), apart.map(f64::to_bits));
        }
    }

    /// The fused V trial writes what `axpby(out, 1, base, a, dir)` writes and sums what
    /// `constraint_value` sums at the moved point, bit for bit: the solver's iterates do
    /// not depend on the fusion. Sizes around the lanes and past a parallel chunk.
    #[test]
    fn step_value_is_axpby_then_value_bit_for_bit() {
        for n in [1usize, 63, 65, 257, PAR_CHUNK + 4097] {
            let (base, dir, other, lam) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
            let (a, al) = (-0.37f32, 0.1f32);
            let mut moved = vec![0.0f32; n];
            map3(&mut moved, &base, &dir, |_, x, y| 1.0 * x + a * y);
            for moved_v in [false, true] {
                let mut out = vec![f32::NAN; n];
                let step = Step {
                    base: &base,
                    a,
                    dir: &dir,
                    moved_v,
                    other: &other,
                    ls: &lam,
                    al,
                };
                let fused = step_value(&mut out, step);
                assert_eq!(bits(&out), bits(&moved), "out, n = {n}");
                let apart = if moved_v {
                    constraint_value(&other, &moved, &lam, al)
                } else {
                    constraint_value(&moved, &other, &lam, al)
                };
                assert_eq!(fused.map(f64::to_bits), apart.map(f64::to_bits), "n = {n}");
                // ... and the comparison can fail: another step moves the sums.
                let other_step = step_value(&mut out, Step { a: a * 0.5, ..step });
                assert_ne!(other_step.map(f64::to_bits), apart.map(f64::to_bits));
            }
        }
    }
}
