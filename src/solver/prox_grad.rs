//! One Armijo proximal-gradient step on (P0) itself (method §7), written once for the three
//! methods that take it: prox-GD, prox-APG (from the extrapolated point) and the ALM's
//! "P0 steps" variant (from the ALM's W). Each caller owns its step-size rule; this module
//! owns the trial, the sufficient-decrease test, the trial's (P0) value, and the group
//! mask that keeps zero groups at zero when a caller refits a fixed support (method §9).

use super::slots::{
    Readback, D2, GDOT, GD_LOSS, GD_STEP_B, GD_STEP_W, GD_TRIAL_LOSS, GD_TRIAL_PENALTY, GROUP_SUM,
};
use super::Budget;
use crate::backend::{Axis, BResult, Backend};
use crate::config::GdConfig;
use crate::problem::{DeviceData, Net, Params, Spec};

/// Halvings before a step gives up: the point is then stationary to float precision.
const MAX_HALVINGS: usize = 60;
/// Relative slack of the sufficient-decrease test, in units of the backend's epsilon (the
/// losses compared are reductions over all samples; on an f32 device an exact step
/// could otherwise be rejected forever).
const ARMIJO_SLACK_EPS: f64 = 8.0;

/// What a full-batch proximal-gradient method (prox-GD, prox-APG) is told besides the
/// problem.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ProxGradOptions {
    /// The first trial step.
    pub step0: f64,
    /// Groups that are zero at the start stay zero (a refit on a selected support, method
    /// §9: rows may die further, never revive). The prox alone does not guarantee it: a
    /// zero group revives when its gradient norm exceeds λ (method §3).
    pub keep_zero_groups: bool,
}

impl From<&GdConfig> for ProxGradOptions {
    fn from(gd: &GdConfig) -> Self {
        ProxGradOptions {
            step0: gd.step0,
            keep_zero_groups: false,
        }
    }
}

/// Per layer, a `W`-shaped 0/1 mask of the groups that were nonzero when it was made.
/// Applying it is an elementwise product (`mul_leaky_deriv` with slope 0 multiplies by
/// `[mask > 0]` exactly), so it needs no kernel of its own.
pub struct GroupMask<B: Backend> {
    mask: Vec<B::Mat>,
}

impl<B: Backend> GroupMask<B> {
    /// The mask of `p`'s nonzero groups. Parameter-sized transfers, once per run.
    pub fn of_live_groups(be: &B, spec: &Spec, p: &Params<B>) -> BResult<Self> {
        let mut mask = Vec::with_capacity(spec.layers());
        for (l, w) in p.w.iter().enumerate() {
            let mut host = be.download(w)?;
            match spec.axes[l] {
                Axis::Rows => {
                    for mut row in host.rows_mut() {
                        let live = row.iter().any(|&v| v != 0.0);
                        row.fill(if live { 1.0 } else { 0.0 });
                    }
                }
                Axis::Cols => {
                    for mut col in host.columns_mut() {
                        let live = col.iter().any(|&v| v != 0.0);
                        col.fill(if live { 1.0 } else { 0.0 });
                    }
                }
            }
            mask.push(be.upload(host.view())?);
        }
        Ok(GroupMask { mask })
    }

    /// Zero the groups of layer `l`'s `w` that the mask marks dead.
    pub fn apply(&self, be: &B, l: usize, w: &mut B::Mat) -> BResult<()> {
        be.mul_leaky_deriv(w, &self.mask[l], 0.0)
    }
}

/// An accepted trial: its step, and its loss and penalty (their sum is (P0) at the new
/// point, by the trial's own forward pass).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accepted {
    pub t: f64,
    pub loss: f64,
    /// `λ Σ‖W_l⁺‖_{2,1}`.
    pub reg: f64,
}

impl Accepted {
    /// (P0) at the accepted point.
    pub fn p0(&self) -> f64 {
        self.loss + self.reg
    }
}

/// The workspaces of one Armijo proximal-gradient step, allocated once per run. After an
/// accepted [`ProxGradStep::step`], `trial` holds the new point and `trial_net` its
/// forward pass, for the caller to swap in.
pub struct ProxGradStep<B: Backend> {
    pub trial: Params<B>,
    pub trial_net: Net<B>,
    diff: Params<B>,
    shrink: Vec<B::Mat>,
    mask: Option<GroupMask<B>>,
}

impl<B: Backend> ProxGradStep<B> {
    /// Workspaces for `n` samples; `mask` (if any) is applied to every trial.
    pub fn new(be: &B, spec: &Spec, n: usize, mask: Option<GroupMask<B>>) -> BResult<Self> {
        let shrink = (0..spec.layers())
            .map(|l| {
                let (r, c) = spec.shrink_shape(l);
                be.zeros(r, c)
            })
            .collect::<BResult<Vec<_>>>()?;
        Ok(ProxGradStep {
            trial: Params::zeros_like(be, spec)?,
            trial_net: Net::new(be, spec, n)?,
            diff: Params::zeros_like(be, spec)?,
            shrink,
            mask,
        })
    }

    /// One step from `x`, whose loss the caller's backprop wrote into `GD_LOSS` and whose
    /// gradient is `grad`. Trials `t0, t0/2, …`: `x⁺ = prox_{λt}(x − t∇ℓ)` for the weights,
    /// a plain gradient step for the (unpenalised) biases, accepted when
    /// `ℓ(x⁺) ≤ ℓ(x) + ⟨∇ℓ, x⁺ − x⟩ + ‖x⁺ − x‖²/(2t)`. Each trial costs one forward pass
    /// (charged to `budget`) and one readback. `None`: no step of `MAX_HALVINGS` halvings
    /// decreased (P0), i.e. `x` is stationary to float precision.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        be: &B,
        spec: &Spec,
        data: &DeviceData<B>,
        x: &Params<B>,
        grad: &Params<B>,
        t0: f64,
        budget: &mut Budget,
    ) -> BResult<Option<Accepted>> {
        let layers = spec.layers();
        let lam = spec.lambda as f64;
        let fwd = self.trial_net.forward_passes(spec, data.n);
        let mut t = t0;
        let mut phi = None;
        for _ in 0..MAX_HALVINGS {
            for l in 0..layers {
                let w = &mut self.trial.w[l];
                be.axpby(w, 1.0, &x.w[l], -(t as f32), &grad.w[l])?;
                let pen = GD_TRIAL_PENALTY.at(l);
                be.group_prox(w, (lam * t) as f32, spec.axes[l], &mut self.shrink[l], pen)?;
                if let Some(mask) = &self.mask {
                    mask.apply(be, l, w)?;
                    be.group_norms(w, spec.axes[l], pen)?;
                }
                be.axpby(&mut self.trial.b[l], 1.0, &x.b[l], -(t as f32), &grad.b[l])?;
                // The model terms ⟨∇, Δ⟩ and ‖Δ‖², read with the loss below.
                let (dw, db) = (&mut self.diff.w[l], &mut self.diff.b[l]);
                be.step_diff(dw, w, &x.w[l], &grad.w[l], GD_STEP_W.at(l))?;
                be.step_diff(db, &self.trial.b[l], &x.b[l], &grad.b[l], GD_STEP_B.at(l))?;
            }
            // ℓ(trial), then ⟨∇, Δ⟩, ‖Δ‖² and the penalty per layer: one readback.
            let mut rb = Readback::new();
            rb.slot(GD_TRIAL_LOSS.slot());
            self.trial_net.forward(be, spec, &self.trial, &data.x)?;
            budget.passes += fwd;
            be.loss(
                self.trial_net.output(),
                &data.y,
                spec.loss,
                GD_TRIAL_LOSS.slot(),
            )?;
            for l in 0..layers {
                for step in [GD_STEP_W, GD_STEP_B] {
                    rb.slot(step.part(l, GDOT)).slot(step.part(l, D2));
                }
                rb.slot(GD_TRIAL_PENALTY.part(l, GROUP_SUM));
            }
            if phi.is_none() {
                rb.slot(GD_LOSS.slot());
            }
            let v = rb.read(be)?;
            let phi_x = *phi.get_or_insert_with(|| v.get(GD_LOSS.slot()));
            let (mut gdot, mut d2, mut pen) = (0.0, 0.0, 0.0);
            for l in 0..layers {
                gdot += v.get(GD_STEP_W.part(l, GDOT)) + v.get(GD_STEP_B.part(l, GDOT));
                d2 += v.get(GD_STEP_W.part(l, D2)) + v.get(GD_STEP_B.part(l, D2));
                pen += v.get(GD_TRIAL_PENALTY.part(l, GROUP_SUM));
            }
            let loss = v.get(GD_TRIAL_LOSS.slot());
            let slack = ARMIJO_SLACK_EPS * be.epsilon() * phi_x.abs();
            if loss <= phi_x + gdot + d2 / (2.0 * t) + slack {
                return Ok(Some(Accepted {
                    t,
                    loss,
                    reg: lam * pen,
                }));
            }
            t *= 0.5;
        }
        Ok(None)
    }
}

/// (P0) at `p` from `net`, which holds the forward pass of `p`: the loss of its output
/// plus the penalty. Elementwise work and one readback.
pub fn p0_at<B: Backend>(
    be: &B,
    spec: &Spec,
    data: &DeviceData<B>,
    p: &Params<B>,
    net: &Net<B>,
) -> BResult<f64> {
    let mut rb = Readback::new();
    be.loss(net.output(), &data.y, spec.loss, GD_LOSS.slot())?;
    rb.slot(GD_LOSS.slot());
    for (l, w) in p.w.iter().enumerate() {
        be.group_norms(w, spec.axes[l], GD_TRIAL_PENALTY.at(l))?;
        rb.slot(GD_TRIAL_PENALTY.part(l, GROUP_SUM));
    }
    let v = rb.read(be)?;
    let pen: f64 = (0..p.w.len())
        .map(|l| v.get(GD_TRIAL_PENALTY.part(l, GROUP_SUM)))
        .sum();
    Ok(v.get(GD_LOSS.slot()) + spec.lambda as f64 * pen)
}
