//! The mathematics of method §1–§3 written once over the [`Backend`] trait: the problem's
//! data on the device, the network's parameters on the device, the true forward pass and
//! backprop of (P0) (§1, used by every method and by the measures of §5), the unit-step
//! prox-gradient mapping, and the flop accounting that defines a *pass* (§5).
//!
//! The lifted model's state and its block updates live in `solver/` (§4, §6); what is here
//! is shared by the ALM and the baselines.

use crate::backend::{Axis, BResult, Backend, LossKind, Slot};
use crate::data::Dataset;
use crate::data::Task;
use crate::model::Network;

/// The fixed data of a (P0) instance (method §1).
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Layer sizes `[n0, …, nL]`.
    pub sizes: Vec<usize>,
    /// Leaky ReLU slope α.
    pub alpha: f32,
    /// Group penalty weight λ.
    pub lambda: f32,
    pub loss: LossKind,
    /// Group axis per layer (`axes[l]` for `W_{l+1}`): rows by default; columns of W₁
    /// (feature selection) or of W_L (never removes an output) as options.
    pub axes: Vec<Axis>,
}

impl Spec {
    pub fn new(
        sizes: Vec<usize>,
        alpha: f32,
        lambda: f32,
        loss: LossKind,
        input: Axis,
        output: Axis,
    ) -> Self {
        let layers = sizes.len() - 1;
        let mut axes = vec![Axis::Rows; layers];
        axes[0] = input;
        if layers > 1 {
            axes[layers - 1] = output;
        } else if output == Axis::Cols {
            axes[0] = Axis::Cols;
        }
        Spec {
            sizes,
            alpha,
            lambda,
            loss,
            axes,
        }
    }

    /// Number of weight layers `L`.
    pub fn layers(&self) -> usize {
        self.sizes.len() - 1
    }

    /// Multiply-adds of layer `l` (0-based) per sample: `n_{l+1}·n_l`.
    pub fn layer_macs(&self, l: usize) -> f64 {
        (self.sizes[l] * self.sizes[l + 1]) as f64
    }

    /// Fraction of one full forward pass that a matmul of layer `l` over `cols` of the
    /// `n` samples costs (method §5: a pass is the matmul work of one full-data forward pass).
    pub fn pass_fraction(&self, l: usize, cols: usize, n: usize) -> f64 {
        let total: f64 = (0..self.layers()).map(|k| self.layer_macs(k)).sum();
        self.layer_macs(l) / total * cols as f64 / n as f64
    }

    /// Shape of the shrink-factor vector for layer `l`.
    pub fn shrink_shape(&self, l: usize) -> (usize, usize) {
        match self.axes[l] {
            Axis::Rows => (self.sizes[l + 1], 1),
            Axis::Cols => (1, self.sizes[l]),
        }
    }
}

/// The problem's data on the device: the training set every method fits and measures,
/// and the held-out test set (absent when empty) that only the measures read.
pub struct DeviceData<B: Backend> {
    pub x: B::Mat,
    pub y: B::Mat,
    pub x_test: Option<B::Mat>,
    pub y_test: Option<B::Mat>,
    pub n: usize,
    pub n_test: usize,
    pub task: Task,
    /// Regression targets standardised per output: the std of each (see
    /// [`Dataset::target_std`]); the measures report errors in the target's units.
    pub target_std: Option<Vec<f32>>,
}

impl<B: Backend> DeviceData<B> {
    pub fn upload(be: &B, train: &Dataset, test: &Dataset) -> BResult<Self> {
        let has_test = test.n() > 0;
        Ok(DeviceData {
            x: be.upload(train.x.view())?,
            y: be.upload(train.y.view())?,
            x_test: if has_test {
                Some(be.upload(test.x.view())?)
            } else {
                None
            },
            y_test: if has_test {
                Some(be.upload(test.y.view())?)
            } else {
                None
            },
            n: train.n(),
            n_test: test.n(),
            task: train.task,
            target_std: train.target_std.clone(),
        })
    }
}

/// Network parameters `(W_l, b_l)` on the device.
pub struct Params<B: Backend> {
    pub w: Vec<B::Mat>,
    pub b: Vec<B::Mat>,
}

impl<B: Backend> Params<B> {
    pub fn upload(be: &B, net: &Network) -> BResult<Self> {
        let w = net
            .w
            .iter()
            .map(|w| be.upload(w.view()))
            .collect::<BResult<Vec<_>>>()?;
        let b = net
            .b
            .iter()
            .map(|b| be.upload(b.view()))
            .collect::<BResult<Vec<_>>>()?;
        Ok(Params { w, b })
    }

    pub fn zeros_like(be: &B, spec: &Spec) -> BResult<Self> {
        let mut w = Vec::new();
        let mut b = Vec::new();
        for l in 0..spec.layers() {
            w.push(be.zeros(spec.sizes[l + 1], spec.sizes[l])?);
            b.push(be.zeros(spec.sizes[l + 1], 1)?);
        }
        Ok(Params { w, b })
    }

    /// `self ← other` (device copies; parameter-sized, used for best-W bookkeeping).
    pub fn assign(&mut self, be: &B, other: &Params<B>) -> BResult<()> {
        for (d, s) in self.w.iter_mut().zip(&other.w) {
            be.copy(d, s)?;
        }
        for (d, s) in self.b.iter_mut().zip(&other.b) {
            be.copy(d, s)?;
        }
        Ok(())
    }

    pub fn download(&self, be: &B, alpha: f32) -> BResult<Network> {
        Ok(Network {
            alpha,
            w: self
                .w
                .iter()
                .map(|m| be.download(m))
                .collect::<BResult<_>>()?,
            b: self
                .b
                .iter()
                .map(|m| be.download(m))
                .collect::<BResult<_>>()?,
        })
    }
}

/// Workspace for the true forward pass and backprop of (P0) over a fixed number of columns.
/// Allocated once per problem and data set; never reallocated in a loop.
pub struct Net<B: Backend> {
    /// Columns this workspace serves.
    pub cols: usize,
    /// Pre-activations `U_l` (`l = 1..L`; `u[L-1]` is Ŷ).
    pub u: Vec<B::Mat>,
    /// Activations `A_l = σ(U_l)` (`l = 1..L−1`).
    pub a: Vec<B::Mat>,
    /// Backprop adjoints `δ_l` (`l = 1..L`).
    pub delta: Vec<B::Mat>,
    /// Gradients of ℓ w.r.t. `(W_l, b_l)`.
    pub grad: Params<B>,
}

impl<B: Backend> Net<B> {
    pub fn new(be: &B, spec: &Spec, cols: usize) -> BResult<Self> {
        let l = spec.layers();
        let mut u = Vec::new();
        let mut a = Vec::new();
        let mut delta = Vec::new();
        for k in 0..l {
            u.push(be.zeros(spec.sizes[k + 1], cols)?);
            delta.push(be.zeros(spec.sizes[k + 1], cols)?);
            if k + 1 < l {
                a.push(be.zeros(spec.sizes[k + 1], cols)?);
            }
        }
        Ok(Net {
            cols,
            u,
            a,
            delta,
            grad: Params::zeros_like(be, spec)?,
        })
    }

    /// The true forward pass of method §1: `A_0 = X`, `U_l = W_l A_{l−1} + b_l 1ᵀ`,
    /// `A_l = σ(U_l)`; `u[L−1] = Ŷ`.
    pub fn forward(&mut self, be: &B, spec: &Spec, p: &Params<B>, x: &B::Mat) -> BResult<()> {
        let layers = spec.layers();
        for l in 0..layers {
            let input = if l == 0 { x } else { &self.a[l - 1] };
            be.matmul_nn(&mut self.u[l], &p.w[l], input, Some(&p.b[l]), 0.0)?;
            if l + 1 < layers {
                be.leaky_relu(&mut self.a[l], &self.u[l], spec.alpha)?;
            }
        }
        Ok(())
    }

    /// Ŷ after [`Net::forward`].
    pub fn output(&self) -> &B::Mat {
        self.u.last().expect("at least one layer")
    }

    /// Backprop of ℓ after [`Net::forward`] (method §3 with `Λ` = adjoint, §7): fills
    /// `grad` and `delta`; writes ℓ into `loss_slot`.
    pub fn backward(
        &mut self,
        be: &B,
        spec: &Spec,
        p: &Params<B>,
        x: &B::Mat,
        y: &B::Mat,
        loss_slot: Slot,
    ) -> BResult<()> {
        let layers = spec.layers();
        be.loss_grad(
            &self.u[layers - 1],
            y,
            spec.loss,
            &mut self.delta[layers - 1],
            loss_slot,
        )?;
        for l in (0..layers).rev() {
            let input = if l == 0 { x } else { &self.a[l - 1] };
            be.weight_grads(
                &mut self.grad.w[l],
                &mut self.grad.b[l],
                &self.delta[l],
                input,
            )?;
            if l > 0 {
                let (lo, hi) = self.delta.split_at_mut(l);
                be.matmul_tn(&mut lo[l - 1], &p.w[l], &hi[0], 0.0)?;
                be.mul_leaky_deriv(&mut lo[l - 1], &self.u[l - 1], spec.alpha)?;
            }
        }
        Ok(())
    }

    /// Passes (method §5) of one forward over this workspace's columns out of `n`.
    pub fn forward_passes(&self, spec: &Spec, n: usize) -> f64 {
        (0..spec.layers())
            .map(|l| spec.pass_fraction(l, self.cols, n))
            .sum()
    }

    /// Passes of one backward (weight gradients for every layer, adjoints for l ≥ 2).
    pub fn backward_passes(&self, spec: &Spec, n: usize) -> f64 {
        (0..spec.layers())
            .map(|l| spec.pass_fraction(l, self.cols, n) * if l > 0 { 2.0 } else { 1.0 })
            .sum()
    }
}

/// `slot ← ‖W − prox_λ(W − G)‖²`: the W part of a unit-step proximal-gradient mapping
/// (method §5, both `cert` with `G = ∇ℓ` and `kkt` with `G = ∇_W L`). `scratch` is two
/// W-shaped matrices and the group shrink vector; the group prox's own two sums go to
/// `discard`, `discard + 1` (nobody reads them; the caller picks slots that nothing else
/// is waiting on).
#[allow(clippy::too_many_arguments)]
pub fn prox_mapping_sq<B: Backend>(
    be: &B,
    w: &B::Mat,
    g: &B::Mat,
    lambda: f32,
    axis: Axis,
    scratch: (&mut B::Mat, &mut B::Mat, &mut B::Mat),
    slot: Slot,
    discard: Slot,
) -> BResult<()> {
    let (step, diff, shrink) = scratch;
    be.axpby(step, 1.0, w, -1.0, g)?;
    be.group_prox(step, lambda, axis, shrink, discard)?;
    be.axpby(diff, 1.0, w, -1.0, step)?;
    be.sq_norm(diff, slot)
}
