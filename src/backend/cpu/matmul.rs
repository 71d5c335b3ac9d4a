//! The CPU backend's matmuls (method §3: `W V + b1ᵀ`, `G Vᵀ`, `Wᵀ G`): each one BLAS call
//! on OpenBLAS's own threads (`blas.rs` says why they, not rayon, own the matmul threads),
//! on row-major arrays or their transposed views, so no operand is copied: ndarray hands
//! BLAS the transpose flag. OpenBLAS splits a product over the output, never over the
//! reduction, so each output element is one dot product in one fixed order.

use super::Real;
use ndarray::linalg::general_mat_mul;
use ndarray::Array2;

/// `C ← A·B + beta·C`. With `beta = 0`, `C` is not read (BLAS's contract), so NaN in it
/// does not propagate.
pub fn nn<F: Real>(c: &mut Array2<F>, a: &Array2<F>, b: &Array2<F>, beta: F) {
    general_mat_mul(F::one(), a, b, beta, c);
}

/// `C ← A·Bᵀ + beta·C`.
pub fn nt<F: Real>(c: &mut Array2<F>, a: &Array2<F>, b: &Array2<F>, beta: F) {
    general_mat_mul(F::one(), a, &b.t(), beta, c);
}

/// `C ← Aᵀ·B + beta·C`.
pub fn tn<F: Real>(c: &mut Array2<F>, a: &Array2<F>, b: &Array2<F>, beta: F) {
    general_mat_mul(F::one(), &a.t(), b, beta, c);
}
