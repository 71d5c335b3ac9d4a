//! The losses of method §1 and their gradients (`shaders/loss.wgsl`), averaged over the `N`
//! columns: the kernels sum, and `finalize` applies the `1/N`. (The classification-error
//! count of the same file is a plain reduction.)

use super::reduce::Sums;
use crate::backend::gpu::params::Params;
use crate::backend::gpu::pipelines::K;
use crate::backend::gpu::storage::GpuMat;
use crate::backend::gpu::{BResult, GpuBackend};
use crate::backend::{LossKind, Slot};

impl GpuBackend {
    /// An output-layer trial written and its loss summed (`w_trial_loss_*`, `step_loss_*`:
    /// `kernels` = the squared and the softmax one) over `mats = [U, Y, out, B or D]` and
    /// the per-row `rows_of`, with step `t` (or `a`); as [`GpuBackend::loss_reduce`], the
    /// softmax kernels walk each column themselves.
    pub(super) fn trial_loss_reduce(
        &self,
        kernels: (K, K),
        kind: LossKind,
        mats: &[&GpuMat],
        rows_of: &[&GpuMat],
        t: f32,
        slot: Slot,
    ) -> BResult<()> {
        let (k, per_column) = match kind {
            LossKind::Squared => (kernels.0, false),
            LossKind::SoftmaxCe => (kernels.1, true),
        };
        let inv_n = 1.0 / mats[0].cols.max(1) as f32;
        let (p, sums) = (Params::trial_loss(inv_n, t), Sums::mean(slot, inv_n));
        self.reduce_rows(k, mats, rows_of, p, sums, per_column)
    }

    /// `slot ← ℓ(Ŷ, Y)` over `mats = [Ŷ, Y]`, or with `mats = [Ŷ, Y, G]` also `G ← ∂ℓ/∂Ŷ`.
    /// The softmax kernels walk each column themselves (one invocation per column).
    pub(super) fn loss_reduce(&self, mats: &[&GpuMat], kind: LossKind, slot: Slot) -> BResult<()> {
        let grad = mats.len() == 3;
        let inv_n = 1.0 / mats[0].cols.max(1) as f32;
        let (k, per_column) = match (kind, grad) {
            (LossKind::Squared, false) => (K::LossSq, false),
            (LossKind::Squared, true) => (K::LossGradSq, false),
            (LossKind::SoftmaxCe, false) => (K::LossCe, true),
            (LossKind::SoftmaxCe, true) => (K::LossGradCe, true),
        };
        self.reduce(
            k,
            mats,
            Params::loss(inv_n),
            Sums::mean(slot, inv_n),
            per_column,
        )
    }
}
