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
