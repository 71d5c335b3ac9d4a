//! Group sparsity on the CPU (method §3): the group soft-thresholding prox and the group
//! norms behind the penalty, the twins of `shaders/group_prox.wgsl`. Norms accumulate in
//! `f64`; the prox's sums are those of the shrunken groups (`‖group‖ · factor`).

use super::{kernels, not_contiguous, slice_mut, CpuMat, Real};
use crate::backend::{Axis, BResult};
use ndarray::Array2;

/// Soft-threshold every group of `w` in place, `w ← w·max(0, 1 − thresh/‖w‖₂)` (a zero
/// group stays zero), with the factors written to `shrink`; returns `[Σ‖group‖₂ after the
/// prox, number of zero groups after it]`.
pub(super) fn prox<F: Real>(
    w: &mut CpuMat<F>,
    thresh: f32,
    axis: Axis,
    shrink: &mut CpuMat<F>,
) -> BResult<[f64; 2]> {
    let th = thresh as f64;
    let norms = norm_list(&w.0, axis)?;
    let (mut sum, mut zeros) = (0.0f64, 0usize);
    let cols = w.0.ncols().max(1);
    let ws = slice_mut(w)?;
    let fs = slice_mut(shrink)?;
    for (g, &norm) in norms.iter().enumerate() {
        let f = if norm > th { 1.0 - th / norm } else { 0.0 };
        fs[g] = F::of64(f);
        let after = norm * f;
        sum += after;
        if after == 0.0 {
            zeros += 1;
        }
    }
    match axis {
        Axis::Rows => ws
            .chunks_mut(cols)
            .zip(fs.iter())
            .for_each(|(row, &f)| row.iter_mut().for_each(|x| *x = *x * f)),
        Axis::Cols => ws.chunks_mut(cols).for_each(|row| {
            row.iter_mut()
                .zip(fs.iter())
                .for_each(|(x, &f)| *x = *x * f)
        }),
    }
    Ok([sum, zeros as f64])
}

/// `[Σ‖group‖₂, number of groups that are exactly zero]` of `w`.
pub(super) fn norms<F: Real>(w: &CpuMat<F>, axis: Axis) -> BResult<[f64; 2]> {
    let (mut sum, mut zeros) = (0.0f64, 0usize);
    for norm in norm_list(&w.0, axis)? {
        sum += norm;
        if norm == 0.0 {
            zeros += 1;
        }
    }
    Ok([sum, zeros as f64])
}

/// The Euclidean norm of every group of `w` (rows or columns), accumulated in `f64`.
/// Column norms are summed row by row, so `w` is read once, in memory order.
fn norm_list<F: Real>(w: &Array2<F>, axis: Axis) -> BResult<Vec<f64>> {
    let ws = w.as_slice().ok_or_else(not_contiguous)?;
    let cols = w.ncols().max(1);
    Ok(match axis {
        Axis::Rows => ws
            .chunks(cols)
            .map(|row| kernels::sq_sum(row).sqrt())
            .collect(),
        Axis::Cols => {
            let mut acc = vec![0.0f64; w.ncols()];
            for row in ws.chunks(cols) {
                for (a, &x) in acc.iter_mut().zip(row) {
                    *a += x.f64() * x.f64();
                }
            }
            acc.into_iter().map(f64::sqrt).collect()
        }
    })
}
