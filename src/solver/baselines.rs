//! method §7: the baselines on (P0), with the same data, model, initialisation and measures
//! as the ALM. prox-SGD (optional momentum) and prox-Adam: a minibatch step, then row
//! group soft-thresholding with threshold `λ·lr`; prox-GD: full-batch proximal gradient
//! with Armijo backtracking. The warm start of `warm+alm` is prox-SGD (`solver::train`).

use super::slots::{
    Readback, DISCARD, GD_D2_B, GD_D2_W, GD_GDOT_B, GD_GDOT_W, GD_LOSS, GD_TRIAL_LOSS,
};
use super::{Budget, Recorder};
use crate::backend::{BResult, Backend};
use crate::config::{AdamConfig, Config, GdConfig};
use crate::problem::{DeviceData, Net, Params, Spec};
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Per-layer optimiser state: momentum / Adam moments and prox shrink scratch.
struct OptState<B: Backend> {
    m: Params<B>,
    v: Params<B>,
    shrink: Vec<B::Mat>,
}

impl<B: Backend> OptState<B> {
    fn new(be: &B, spec: &Spec) -> BResult<Self> {
        let shrink = (0..spec.layers())
            .map(|l| {
                let (r, c) = spec.shrink_shape(l);
                be.zeros(r, c)
            })
            .collect::<BResult<Vec<_>>>()?;
        Ok(OptState {
            m: Params::zeros_like(be, spec)?,
            v: Params::zeros_like(be, spec)?,
            shrink,
        })
    }
}

/// SGD with momentum: `m ← μm + g`, `x ← x − lr·m`.
fn heavy_ball<B: Backend>(
    be: &B,
    x: &mut B::Mat,
    m: &mut B::Mat,
    g: &B::Mat,
    lr: f32,
    mu: f32,
) -> BResult<()> {
    be.scale(m, mu)?;
    be.axpy(m, 1.0, g)?;
    be.axpy(x, -lr, m)
}

/// Minibatch prox-SGD (`adam = None`) or prox-Adam, one record per epoch (throttled by the
/// recorder's cadence), until the budget is spent.
#[allow(clippy::too_many_arguments)]
pub fn prox_sgd<B: Backend>(
    be: &B,
    spec: &Spec,
    cfg: &Config,
    adam: Option<&AdamConfig>,
    data: &DeviceData<B>,
    p: &mut Params<B>,
    budget: &mut Budget,
    rec: &mut Recorder<'_, B>,
) -> BResult<()> {
    let n = data.n;
    let batch = match adam {
        Some(a) => a.batch,
        None => cfg.sgd.batch,
    }
    .clamp(1, n);
    let (phase, lr) = match adam {
        Some(a) => ("adam", a.lr as f32),
        None => ("sgd", cfg.sgd.lr as f32),
    };
    let momentum = cfg.sgd.momentum as f32;
    let rest = n % batch;
    // Workspaces for full batches and for the last, shorter one: allocated once.
    let (d, m) = (spec.sizes[0], spec.sizes[spec.layers()]);
    let mut full = (
        Net::new(be, spec, batch)?,
        be.zeros(d, batch)?,
        be.zeros(m, batch)?,
    );
    let mut tail = if rest > 0 {
        Some((
            Net::new(be, spec, rest)?,
            be.zeros(d, rest)?,
            be.zeros(m, rest)?,
        ))
    } else {
        None
    };
    let mut opt = OptState::new(be, spec)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.train.seed);
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut step: u32 = 0;
    let layers = spec.layers();
    let thresh = spec.lambda * lr;
    let mut epoch = 0;
    while !budget.spent() {
        order.shuffle(&mut rng);
        for chunk in order.chunks(batch) {
            let (net, xb, yb) = if chunk.len() == batch {
                &mut full
            } else {
                tail.as_mut().expect("tail exists")
            };
            be.gather_cols(xb, &data.x, chunk)?;
            be.gather_cols(yb, &data.y, chunk)?;
            net.forward(be, spec, p, xb)?;
            net.backward(be, spec, p, xb, yb, DISCARD.slot())?;
            budget.passes += net.forward_passes(spec, n) + net.backward_passes(spec, n);
            step += 1;
            for l in 0..layers {
                match adam {
                    Some(a) => {
                        let (b1, b2, eps) = (a.beta1 as f32, a.beta2 as f32, a.eps as f32);
                        be.adam_update(
                            &mut p.w[l],
                            &net.grad.w[l],
                            &mut opt.m.w[l],
                            &mut opt.v.w[l],
                            lr,
                            b1,
                            b2,
                            eps,
                            step,
                        )?;
                        be.adam_update(
                            &mut p.b[l],
                            &net.grad.b[l],
                            &mut opt.m.b[l],
                            &mut opt.v.b[l],
                            lr,
                            b1,
                            b2,
                            eps,
                            step,
                        )?;
                    }
                    None if momentum > 0.0 => {
                        heavy_ball(
                            be,
                            &mut p.w[l],
                            &mut opt.m.w[l],
                            &net.grad.w[l],
                            lr,
                            momentum,
                        )?;
                        heavy_ball(
                            be,
                            &mut p.b[l],
                            &mut opt.m.b[l],
                            &net.grad.b[l],
                            lr,
                            momentum,
                        )?;
                    }
                    None => {
                        be.axpy(&mut p.w[l], -lr, &net.grad.w[l])?;
                        be.axpy(&mut p.b[l], -lr, &net.grad.b[l])?;
                    }
                }
                // method §7: the prox of the group penalty with threshold λ·lr.
                be.group_prox(
                    &mut p.w[l],
                    thresh,
                    spec.axes[l],
                    &mut opt.shrink[l],
                    DISCARD.slot(),
                )?;
            }
            if budget.spent() {
                break;
            }
        }
        epoch += 1;
        if rec.due(budget) {
            rec.record(be, p, data, budget, phase, epoch, |_| {})?;
        }
    }
    if rec.records.last().map(|r| r.passes) != Some(budget.passes) {
        rec.record(be, p, data, budget, phase, epoch, |_| {})?;
    }
    Ok(())
}

/// Full-batch proximal gradient on (P0) with Armijo backtracking (each trial starts at
/// twice the last accepted step; one readback per trial).
#[allow(clippy::too_many_arguments)]
pub fn prox_gd<B: Backend>(
    be: &B,
    spec: &Spec,
    gd: &GdConfig,
    data: &DeviceData<B>,
    p: &mut Params<B>,
    budget: &mut Budget,
    rec: &mut Recorder<'_, B>,
) -> BResult<()> {
    let n = data.n;
    let layers = spec.layers();
    let lam = spec.lambda as f64;
    let mut net = Net::new(be, spec, n)?;
    let mut trial_net = Net::new(be, spec, n)?;
    let mut trial = Params::zeros_like(be, spec)?;
    let mut diff = Params::zeros_like(be, spec)?;
    let mut opt = OptState::new(be, spec)?;
    let fwd = net.forward_passes(spec, n);
    let bwd = net.backward_passes(spec, n);
    net.forward(be, spec, p, &data.x)?;
    budget.passes += fwd;
    let mut t_last = gd.step0 / 2.0;
    let mut iter = 0;
    while !budget.spent() {
        net.backward(be, spec, p, &data.x, &data.y, GD_LOSS.slot())?;
        budget.passes += bwd;
        let mut t = 2.0 * t_last;
        let mut phi = None;
        let mut moved = false;
        for _ in 0..60 {
            for l in 0..layers {
                be.axpby(&mut trial.w[l], 1.0, &p.w[l], -(t as f32), &net.grad.w[l])?;
                be.group_prox(
                    &mut trial.w[l],
                    (lam * t) as f32,
                    spec.axes[l],
                    &mut opt.shrink[l],
                    DISCARD.slot(),
                )?;
                be.axpby(&mut trial.b[l], 1.0, &p.b[l], -(t as f32), &net.grad.b[l])?;
                be.axpby(&mut diff.w[l], 1.0, &trial.w[l], -1.0, &p.w[l])?;
                be.axpby(&mut diff.b[l], 1.0, &trial.b[l], -1.0, &p.b[l])?;
            }
            // ℓ(trial), then ⟨∇, Δ⟩ and ‖Δ‖² per layer: one readback per trial.
            let mut rb = Readback::new();
            rb.slot(GD_TRIAL_LOSS.slot());
            trial_net.forward(be, spec, &trial, &data.x)?;
            budget.passes += fwd;
            be.loss(trial_net.output(), &data.y, spec.loss, GD_TRIAL_LOSS.slot())?;
            for l in 0..layers {
                be.dot(&net.grad.w[l], &diff.w[l], GD_GDOT_W.at(l))?;
                be.dot(&net.grad.b[l], &diff.b[l], GD_GDOT_B.at(l))?;
                be.sq_norm(&diff.w[l], GD_D2_W.at(l))?;
                be.sq_norm(&diff.b[l], GD_D2_B.at(l))?;
                rb.slot(GD_GDOT_W.at(l))
                    .slot(GD_GDOT_B.at(l))
                    .slot(GD_D2_W.at(l))
                    .slot(GD_D2_B.at(l));
            }
            if phi.is_none() {
                rb.slot(GD_LOSS.slot());
            }
            let v = rb.read(be)?;
            let phi_now = *phi.get_or_insert_with(|| v.get(GD_LOSS.slot()));
            let (mut gdot, mut d2) = (0.0, 0.0);
            for l in 0..layers {
                gdot += v.get(GD_GDOT_W.at(l)) + v.get(GD_GDOT_B.at(l));
                d2 += v.get(GD_D2_W.at(l)) + v.get(GD_D2_B.at(l));
            }
            let slack = 8.0 * be.epsilon() * phi_now.abs();
            if v.get(GD_TRIAL_LOSS.slot()) <= phi_now + gdot + d2 / (2.0 * t) + slack {
                std::mem::swap(p, &mut trial);
                std::mem::swap(&mut net, &mut trial_net);
                t_last = t;
                moved = true;
                break;
            }
            t *= 0.5;
        }
        iter += 1;
        if !moved || rec.due(budget) {
            rec.record(be, p, data, budget, "gd", iter, |_| {})?;
        }
        if !moved {
            // No decrease at any step: a stationary point to float precision.
            break;
        }
    }
    if rec.records.last().map(|r| r.passes) != Some(budget.passes) {
        rec.record(be, p, data, budget, "gd", iter, |_| {})?;
    }
    Ok(())
}
