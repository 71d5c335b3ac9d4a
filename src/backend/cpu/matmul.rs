//! The CPU backend's matmuls (method §3: `W V + b1ᵀ`, `G Vᵀ`, `Wᵀ G`): single-threaded
//! OpenBLAS calls (`blas.rs`), split over rayon's threads along an output dimension when
//! the product is large enough to pay for the hand-off. Every part is an ordinary
//! row-major BLAS call on a strided view (no transposed copies): `NN` and `TN` split the
//! sample columns of `C`, `NT` (whose reduction runs over the samples) splits the rows of
//! `C`. Each output element is computed by one call, whatever the split.

use super::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::{s, Array2, ArrayView2, ArrayViewMut2};
use rayon::prelude::*;

/// Multiply-adds below which a product runs on the calling thread alone.
const PAR_MACS: usize = 1 << 21;
/// Narrowest part worth giving a thread (a BLAS micro-kernel works on 16–64 columns).
const MIN_PART: usize = 64;

/// Number of parts for a product of `macs` multiply-adds along a dimension of `len`.
fn parts(macs: usize, len: usize) -> usize {
    if macs < PAR_MACS {
        return 1;
    }
    rayon::current_num_threads().min(len / MIN_PART).max(1)
}

/// `[lo, hi)` of part `i` of `p` over `len`, on multiples of 16 where possible.
fn bounds(i: usize, p: usize, len: usize) -> (usize, usize) {
    let step = len.div_ceil(p).next_multiple_of(16);
    ((i * step).min(len), ((i + 1) * step).min(len))
}

/// `C ← A·B + beta·C` with `A`, `B` any views (`A` may be a transposed view), splitting
/// the columns of `C` and `B`.
fn by_cols<F: Real>(c: &mut Array2<F>, a: ArrayView2<F>, b: ArrayView2<F>, beta: F) {
    let (m, n) = c.dim();
    let p = parts(m * n * a.ncols(), n);
    if p == 1 {
        general_mat_mul(F::one(), &a, &b, beta, c);
        return;
    }
    let mut views: Vec<(ArrayViewMut2<F>, ArrayView2<F>)> = Vec::with_capacity(p);
    let mut rest = c.view_mut();
    let mut taken = 0;
    for i in 0..p {
        let (_, hi) = bounds(i, p, n);
        if hi == taken {
            continue;
        }
        let (part, tail) = rest.split_at(ndarray::Axis(1), hi - taken);
        views.push((part, b.slice(s![.., taken..hi])));
        rest = tail;
        taken = hi;
    }
    views
        .into_par_iter()
        .for_each(|(mut cp, bp)| general_mat_mul(F::one(), &a, &bp, beta, &mut cp));
}

/// `C ← A·Bᵀ + beta·C`, splitting the rows of `C` and `A`.
fn by_rows_nt<F: Real>(c: &mut Array2<F>, a: ArrayView2<F>, b: ArrayView2<F>, beta: F) {
    let (m, n) = c.dim();
    let p = parts(m * n * a.ncols(), m);
    if p == 1 {
        general_mat_mul(F::one(), &a, &b.t(), beta, c);
        return;
    }
    let mut views: Vec<(ArrayViewMut2<F>, ArrayView2<F>)> = Vec::with_capacity(p);
    let mut rest = c.view_mut();
    let mut taken = 0;
    for i in 0..p {
        let (_, hi) = bounds(i, p, m);
        if hi == taken {
            continue;
        }
        let (part, tail) = rest.split_at(ndarray::Axis(0), hi - taken);
        views.push((part, a.slice(s![taken..hi, ..])));
        rest = tail;
        taken = hi;
    }
    views
        .into_par_iter()
        .for_each(|(mut cp, ap)| general_mat_mul(F::one(), &ap, &b.t(), beta, &mut cp));
}

/// `C ← A·B + beta·C`. With `beta = 0`, `C` is not read (BLAS's contract), so NaN in it
/// does not propagate.
pub fn nn<F: Real>(c: &mut Array2<F>, a: &Array2<F>, b: &Array2<F>, beta: F) {
    by_cols(c, a.view(), b.view(), beta);
}

/// `C ← A·Bᵀ + beta·C`.
pub fn nt<F: Real>(c: &mut Array2<F>, a: &Array2<F>, b: &Array2<F>, beta: F) {
    by_rows_nt(c, a.view(), b.view(), beta);
}

/// `C ← Aᵀ·B + beta·C`.
pub fn tn<F: Real>(c: &mut Array2<F>, a: &Array2<F>, b: &Array2<F>, beta: F) {
    by_cols(c, a.t(), b.view(), beta);
}
