//! The CPU backend's elementwise and reduction loops over contiguous slices, written so the
//! compiler vectorises them: every reduction keeps [`LANES`] independent `f64`
//! accumulators per sum (a single running sum is one long dependency chain, several
//! times slower than the memory it reads), and every fused step reads and writes each
//! array once (method §3: one pass over `(U, V, Λ)`). Results differ from a sequential
//! sum only by the order of the additions.
//!
//! Large arrays are split into [`PAR_CHUNK`]-element pieces run on rayon's pool, whose
//! partial sums are added in chunk order, so a result does not depend on the number of
//! threads. Matmuls run on OpenBLAS's own threads (`blas.rs`), never inside this pool.

use super::Real;
use rayon::prelude::*;

/// Independent accumulators per sum (8 `f64` = one AVX-512 register).
pub const LANES: usize = 8;
/// Elements per parallel task: below this, a loop runs on the calling thread (a pool
/// hand-off costs a few microseconds, a 64k-element pass about as much).
pub const PAR_CHUNK: usize = 1 << 16;

/// `K` sums over `0..n`: the body computes element `i`'s `K` terms (and may write outputs
/// at `i`). Lane `i % LANES` accumulates element `i`. A macro, not a function taking a
/// closure, so the body is always inlined into the loop (measured: as a closure call it
/// was not, and cost half of an ALM run).
macro_rules! lane_sums {
    ($n:expr, $k:literal, |$i:ident| $body:block) => {{
        let n: usize = $n;
        let mut acc = [[0.0f64; LANES]; $k];
        let mut i0 = 0;
        while i0 < n {
            let m = LANES.min(n - i0);
            for l in 0..m {
                let $i = i0 + l;
                let t: [f64; $k] = $body;
                for q in 0..$k {
                    acc[q][l] += t[q];
                }
            }
            i0 += LANES;
        }
        let mut out = [0.0f64; $k];
        for q in 0..$k {
            // Pairwise over the lanes: fixed order.
            let a = &acc[q];
            out[q] = ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
        }
        out
    }};
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

/// The fused constraint residual of method §3 over `(u, v, λ)`: writes `H`, `S`, `G_U`,
/// `G_V`; returns `[‖H‖², ⟨Λ,H⟩, ‖σ(U)‖²]`.
#[allow(clippy::too_many_arguments)]
pub fn constraint_residual<F: Real>(
    us: &[F],
    vs: &[F],
    ls: &[F],
    rho: F,
    al: F,
    inv_n: F,
    hs: &mut [F],
    ss: &mut [F],
    gus: &mut [F],
    gvs: &mut [F],
) -> [f64; 3] {
    let n = us.len();
    let one =
        |us: &[F], vs: &[F], ls: &[F], hs: &mut [F], ss: &mut [F], gus: &mut [F], gvs: &mut [F]| {
            let m = us.len();
            let (vs, ls, hs, ss, gus, gvs) = (
                &vs[..m],
                &ls[..m],
                &mut hs[..m],
                &mut ss[..m],
                &mut gus[..m],
                &mut gvs[..m],
            );
            lane_sums!(m, 3, |i| {
                let (u, v, l) = (us[i], vs[i], ls[i]);
                let su = sigma(u, al);
                let hv = v - su;
                let sv = l + rho * hv;
                hs[i] = hv;
                ss[i] = sv;
                gus[i] = -(sv * dsigma(u, al)) * inv_n;
                gvs[i] = sv * inv_n;
                [hv.f64() * hv.f64(), l.f64() * hv.f64(), su.f64() * su.f64()]
            })
        };
    if n <= PAR_CHUNK {
        return one(us, vs, ls, hs, ss, gus, gvs);
    }
    let parts: Vec<[f64; 3]> = us
        .par_chunks(PAR_CHUNK)
        .zip(vs.par_chunks(PAR_CHUNK))
        .zip(ls.par_chunks(PAR_CHUNK))
        .zip(hs.par_chunks_mut(PAR_CHUNK))
        .zip(ss.par_chunks_mut(PAR_CHUNK))
        .zip(gus.par_chunks_mut(PAR_CHUNK))
        .zip(gvs.par_chunks_mut(PAR_CHUNK))
        .map(|((((((u, v), l), h), s), gu), gv)| one(u, v, l, h, s, gu, gv))
        .collect();
    parts.into_iter().fold([0.0; 3], add)
}

/// The three sums of [`constraint_residual`] without writing anything.
pub fn constraint_value<F: Real>(us: &[F], vs: &[F], ls: &[F], al: F) -> [f64; 3] {
    let (vs, ls) = (&vs[..us.len()], &ls[..us.len()]);
    par_sum!(us.len(), 3, |lo, hi| {
        let (us, vs, ls) = (&us[lo..hi], &vs[lo..hi], &ls[lo..hi]);
        lane_sums!(us.len(), 3, |i| {
            let su = sigma(us[i], al);
            let hv = (vs[i] - su).f64();
            [hv * hv, ls[i].f64() * hv, su.f64() * su.f64()]
        })
    })
}

/// `⟨a, b⟩`.
pub fn dot<F: Real>(a: &[F], b: &[F]) -> f64 {
    let b = &b[..a.len()];
    par_sum!(a.len(), 1, |lo, hi| {
        let (a, b) = (&a[lo..hi], &b[lo..hi]);
        lane_sums!(a.len(), 1, |i| { [a[i].f64() * b[i].f64()] })
    })[0]
}

/// `Σ a²`.
pub fn sq_sum<F: Real>(a: &[F]) -> f64 {
    par_sum!(a.len(), 1, |lo, hi| {
        let a = &a[lo..hi];
        lane_sums!(a.len(), 1, |i| { [a[i].f64() * a[i].f64()] })
    })[0]
}

/// `Σ a` (serial: used on rows).
pub fn sum<F: Real>(a: &[F]) -> f64 {
    lane_sums!(a.len(), 1, |i| { [a[i].f64()] })[0]
}

/// `Σ (p − t)²` (the squared loss without its `1/N`), optionally writing `g = 2(p − t)·inv_n`.
pub fn squared_loss<F: Real>(p: &[F], t: &[F], g: Option<&mut [F]>, inv_n: F) -> f64 {
    let t = &t[..p.len()];
    match g {
        Some(g) => {
            let g = &mut g[..p.len()];
            lane_sums!(p.len(), 1, |i| {
                let r = p[i] - t[i];
                g[i] = (r + r) * inv_n;
                [r.f64() * r.f64()]
            })[0]
        }
        None => lane_sums!(p.len(), 1, |i| {
            let r = (p[i] - t[i]).f64();
            [r * r]
        })[0],
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
