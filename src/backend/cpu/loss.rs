//! The CPU twins of `shaders/loss.wgsl`: both losses of method §1 with their gradients, and
//! the argmax the error count compares.

use super::Real;
use crate::backend::LossKind;
use ndarray::{Array2, Zip};

/// Index of the largest entry of a column.
pub(super) fn argmax<F: Real>(col: ndarray::ArrayView1<F>) -> usize {
    // First index wins ties (the GPU kernel's rule too).
    let mut best = 0;
    for (i, &v) in col.iter().enumerate().skip(1) {
        if v > col[best] {
            best = i;
        }
    }
    best
}

/// ℓ and optionally ∂ℓ/∂Ŷ for both losses of method §1, averaged over columns.
pub(super) fn loss_and_grad<F: Real>(
    yhat: &Array2<F>,
    y: &Array2<F>,
    kind: LossKind,
    mut g: Option<&mut Array2<F>>,
) -> f64 {
    let n = yhat.ncols().max(1) as f64;
    let inv_n = F::of64(1.0 / n);
    match kind {
        LossKind::Squared => {
            let g_ok = g.as_ref().is_none_or(|g| g.is_standard_layout());
            if let (Some(ps), Some(ts), true) = (yhat.as_slice(), y.as_slice(), g_ok) {
                let gs = g.as_deref_mut().and_then(|g| g.as_slice_mut());
                return super::kernels::squared_loss(ps, ts, gs, inv_n) / n;
            }
            let mut acc = 0.0f64;
            match g.as_deref_mut() {
                Some(g) => Zip::from(g).and(yhat).and(y).for_each(|g, &p, &t| {
                    let r = p - t;
                    acc += r.f64() * r.f64();
                    *g = (r + r) * inv_n;
                }),
                None => Zip::from(yhat).and(y).for_each(|&p, &t| {
                    let r = (p - t).f64();
                    acc += r * r;
                }),
            }
            acc / n
        }
        LossKind::SoftmaxCe => {
            let mut acc = 0.0f64;
            for j in 0..yhat.ncols() {
                let col = yhat.column(j);
                let mx = col.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
                let z: f64 = col.iter().map(|&v| (v - mx).f64().exp()).sum();
                let lse = mx.f64() + z.ln();
                let ty: f64 = col
                    .iter()
                    .zip(y.column(j))
                    .map(|(&p, &t)| p.f64() * t.f64())
                    .sum();
                let ysum: f64 = y.column(j).iter().map(|&t| t.f64()).sum();
                // ℓ_j = Σ_i y_i (lse − ŷ_i) = lse·Σy − ⟨y, ŷ⟩ (Σy = 1 for one-hot targets).
                acc += lse * ysum - ty;
                if let Some(g) = g.as_deref_mut() {
                    for i in 0..yhat.nrows() {
                        let p = (yhat[[i, j]].f64() - lse).exp();
                        g[[i, j]] = F::of64((p * ysum - y[[i, j]].f64()) / n);
                    }
                }
            }
            acc / n
        }
    }
}
