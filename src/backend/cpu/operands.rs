//! The CPU matrix handle and its views: a [`CpuMat`] as slices, and the operands of the
//! constraint kernels (`constraint.rs`) built from the trait's arguments.

use super::{constraint, gather, Real};
use crate::backend::{BResult, BackendError, Moved, Residual, VStep, WTrial};
use ndarray::Array2;

/// A CPU-owned matrix. The array is public so tests can inspect values directly; change
/// it only through the backend (which drops the sample-major copy `gather.rs` keeps for
/// minibatch gathers).
#[derive(Clone, Debug, PartialEq)]
pub struct CpuMat<F>(pub Array2<F>, pub(super) gather::SampleMajor<F>);

impl<F> CpuMat<F> {
    pub(super) fn new(a: Array2<F>) -> Self {
        CpuMat(a, gather::SampleMajor::default())
    }

    /// Mutable access to the array: drops the cached sample-major copy.
    pub(super) fn arr(&mut self) -> &mut Array2<F> {
        self.1.clear();
        &mut self.0
    }
}

/// Every `CpuMat` is in standard (row-major, contiguous) layout: `zeros`, `upload` and
/// `wrap` make it so and no operation changes a layout.
pub(super) fn not_contiguous() -> BackendError {
    BackendError::Shape {
        op: "layout".into(),
        msg: "matrix is not contiguous".into(),
    }
}

/// The residual's scalars in the backend's float type.
pub(super) fn scalars<F: Real>(r: Residual) -> constraint::ResidualScalars<F> {
    constraint::ResidualScalars {
        rho: F::of(r.rho),
        al: F::of(r.alpha),
        inv_n: F::of(r.inv_n),
        write: r.write,
    }
}

/// A V trial's operands as slices.
pub(super) fn step_operands<'a, F: Real>(
    s: &VStep<'a, CpuMat<F>>,
    r: Residual,
) -> BResult<constraint::Step<'a, F>> {
    Ok(constraint::Step {
        base: slice(s.base)?,
        a: F::of(s.a),
        dir: slice(s.dir)?,
        moved_v: s.moved == Moved::V,
        other: slice(s.other)?,
        ls: slice(s.lam)?,
        k: scalars(r),
    })
}

/// The per-row operands of a W trial.
pub(super) fn trial_rows<'a, F: Real>(
    w: &WTrial<'a, CpuMat<F>>,
) -> BResult<constraint::TrialRows<'a, F>> {
    Ok(constraint::TrialRows {
        cols: w.u.0.ncols(),
        shrink: slice(w.shrink)?,
        b_old: slice(w.b_old)?,
        b_new: slice(w.b_new)?,
        t: F::of(w.t),
    })
}

pub(super) fn slice<F>(m: &CpuMat<F>) -> BResult<&[F]> {
    m.0.as_slice().ok_or_else(not_contiguous)
}

pub(super) fn slice_mut<F>(m: &mut CpuMat<F>) -> BResult<&mut [F]> {
    m.arr().as_slice_mut().ok_or_else(not_contiguous)
}
