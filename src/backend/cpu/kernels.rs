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
//! Large arrays are split into pieces of [`piece_len`] elements run on rayon's pool, whose
//! partial sums are added in piece order, so a result does not depend on the number of
//! threads. Matmuls run on OpenBLAS's own threads (`blas.rs`), never inside this pool.

use super::Real;
use rayon::prelude::*;

/// Independent accumulators per sum (8 `f64` = one AVX-512 register).
pub const LANES: usize = 8;
/// Elements per parallel task, at most: below this, a loop runs on the calling thread (a
/// pool hand-off costs a few microseconds, a 64k-element pass about as much).
pub const PAR_CHUNK: usize = 1 << 16;

/// The length of the pieces an `n`-element loop is split into: `n` itself up to
/// [`PAR_CHUNK`], else an even number of equal pieces (a multiple of [`LANES`], the last
/// one shorter) of at most `PAR_CHUNK`. Equal pieces in an even number keep two threads
/// equally busy: a teacher layer (320,000 elements) in 64k pieces was five pieces, one
/// thread's three against the other's two, and a 160,000-element layer two against one.
/// The pieces depend only on `n`, so results do not depend on the thread count.
pub fn piece_len(n: usize) -> usize {
    if n <= PAR_CHUNK {
        return n.max(1);
    }
    let pieces = 2 * n.div_ceil(2 * PAR_CHUNK);
    n.div_ceil(pieces).next_multiple_of(LANES)
}

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

pub(super) fn add<const K: usize>(mut a: [f64; K], b: [f64; K]) -> [f64; K] {
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

/// Pieces of [`piece_len`] elements, in parallel when there is more than one.
macro_rules! par_sum {
    ($n:expr, $k:literal, |$lo:ident, $hi:ident| $body:expr) => {{
        let n: usize = $n;
        let piece = piece_len(n);
        if n <= piece {
            let ($lo, $hi) = (0usize, n);
            $body
        } else {
            let parts: Vec<[f64; $k]> = (0..n.div_ceil(piece))
                .into_par_iter()
                .map(|c| {
                    let ($lo, $hi) = (c * piece, ((c + 1) * piece).min(n));
                    $body
                })
                .collect();
            parts.into_iter().fold([0.0f64; $k], add)
        }
    }};
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

pub(super) fn sq_chunk<F: Real>(a: &[F]) -> [f64; 1] {
    simd_dispatch!(sq_imp::<F>(a: &[F]) -> [f64; 1])
}

/// `Σ a²`.
pub fn sq_sum<F: Real>(a: &[F]) -> f64 {
    par_sum!(a.len(), 1, |lo, hi| sq_chunk(&a[lo..hi]))[0]
}

#[inline(always)]
fn diff_imp<F: Real>(new: &[F], old: &[F], g: &[F]) -> [f64; 2] {
    let (old, g) = (&old[..new.len()], &g[..new.len()]);
    let (a, b) = (F::of(1.0), F::of(-1.0));
    lane_sums!(new.len(), 2, [new, old, g], [], |i| {
        let d = (a * new[i] + b * old[i]).f64();
        [g[i].f64() * d, d * d]
    })
}

fn diff_chunk<F: Real>(new: &[F], old: &[F], g: &[F]) -> [f64; 2] {
    simd_dispatch!(diff_imp::<F>(new: &[F], old: &[F], g: &[F]) -> [f64; 2])
}

/// `[⟨g, Δ⟩, ‖Δ‖²]` with `Δ = new − old` by `axpby`'s expression, not stored: what [`dot`]
/// and [`sq_sum`] take of the stored `Δ`, bit for bit (the same lanes and chunks).
pub fn diff_sums<F: Real>(new: &[F], old: &[F], g: &[F]) -> [f64; 2] {
    let (old, g) = (&old[..new.len()], &g[..new.len()]);
    par_sum!(new.len(), 2, |lo, hi| diff_chunk(
        &new[lo..hi],
        &old[lo..hi],
        &g[lo..hi]
    ))
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
    let piece = piece_len(n);
    if n <= piece {
        one(out, x, y);
    } else {
        out.par_chunks_mut(piece)
            .zip(x.par_chunks(piece))
            .zip(y.par_chunks(piece))
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
    let piece = piece_len(n);
    if n <= piece {
        one(out, x);
    } else {
        out.par_chunks_mut(piece)
            .zip(x.par_chunks(piece))
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
    let piece = piece_len(out.len());
    if out.len() <= piece {
        one(out);
    } else {
        out.par_chunks_mut(piece).for_each(one);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pieces are whole `LANES` blocks of at most `PAR_CHUNK`, one piece up to `PAR_CHUNK`,
    /// else an even number of equal pieces (the last one shorter by less than a block per
    /// piece); the teacher layers' sizes split evenly over two threads.
    #[test]
    fn pieces_are_even_and_equal() {
        assert_eq!(piece_len(0), 1);
        for n in [1usize, 63, 65, 257, PAR_CHUNK] {
            assert_eq!(piece_len(n), n, "{n}");
        }
        for n in [
            PAR_CHUNK + 1,
            160_000,
            320_000,
            2 * PAR_CHUNK + 7,
            15_360_000,
        ] {
            let p = piece_len(n);
            let count = n.div_ceil(p);
            assert!(p <= PAR_CHUNK && p.is_multiple_of(LANES), "{n}: {p}");
            assert_eq!(count % 2, 0, "{n}: {count} pieces of {p}");
            let last = n - (count - 1) * p;
            assert!(last + count * LANES > p, "{n}: last piece {last} of {p}");
        }
        assert_eq!((piece_len(320_000), piece_len(160_000)), (53_336, 40_000));
    }
}
