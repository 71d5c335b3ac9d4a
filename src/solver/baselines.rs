//! method §7: the baselines on (P0), with the same data, model, initialisation and measures
//! as the ALM. prox-SGD (optional momentum) and prox-Adam: a minibatch step, then row
//! group soft-thresholding with threshold `λ·lr`; prox-GD: full-batch proximal gradient
//! with Armijo backtracking; prox-APG: accelerated proximal gradient with monotone
//! restart. The two full-batch methods share one Armijo step (`prox_grad.rs`) and can
//! keep zero groups at zero for a refit. The warm start of `warm+alm` is prox-SGD
//! (`solver::train`).

use super::checkpoint::SolverState;
use super::prox_grad::{p0_at, GroupMask, ProxGradOptions, ProxGradStep};
use super::slots::{DISCARD, GD_LOSS};
use super::{Budget, Recorder};
use crate::backend::{BResult, Backend};
use crate::config::{AdamConfig, Config};
use crate::problem::{DeviceData, Net, Params, Spec};
use crate::Result;
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
) -> Result<()> {
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
    if let Some(s) = rec.take_resume(phase) {
        s.get_params(be, "p", p)?;
        s.get_params(be, "m", &mut opt.m)?;
        s.get_params(be, "v", &mut opt.v)?;
        if s.order.len() != n {
            return Err(crate::Error::Refused(format!(
                "cannot resume: the checkpoint's minibatch order has {} samples, the data {n}",
                s.order.len()
            )));
        }
        let pos = (u128::from(s.counter("rng.hi")?) << 64) | u128::from(s.counter("rng.lo")?);
        rng.set_word_pos(pos);
        epoch = s.counter("epoch")? as usize;
        step = s.counter("step")? as u32;
        order = s.order;
    }
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
        if rec.checkpoint_due() {
            let mut s = SolverState::phase(phase);
            s.put_params(be, "p", p)?;
            s.put_params(be, "m", &opt.m)?;
            s.put_params(be, "v", &opt.v)?;
            s.order = order.clone();
            let pos = rng.get_word_pos();
            s.count("rng.hi", (pos >> 64) as u64)
                .count("rng.lo", pos as u64)
                .count("epoch", epoch as u64)
                .count("step", u64::from(step));
            rec.checkpoint(be, budget, s)?;
        }
    }
    rec.record_final(be, p, data, budget, phase, epoch)?;
    Ok(())
}

/// Full-batch proximal gradient on (P0) with Armijo backtracking (each trial starts at
/// twice the last accepted step; one readback per trial).
#[allow(clippy::too_many_arguments)]
pub fn prox_gd<B: Backend>(
    be: &B,
    spec: &Spec,
    opts: impl Into<ProxGradOptions>,
    data: &DeviceData<B>,
    p: &mut Params<B>,
    budget: &mut Budget,
    rec: &mut Recorder<'_, B>,
) -> Result<()> {
    let opts = opts.into();
    let n = data.n;
    let mut net = Net::new(be, spec, n)?;
    let mask = zero_group_mask(be, spec, &opts, p)?;
    let mut ps = ProxGradStep::new(be, spec, n, mask)?;
    let bwd = net.backward_passes(spec, n);
    let mut t_last = opts.step0 / 2.0;
    let mut iter = 0;
    if let Some(s) = rec.take_resume("gd") {
        // The forward pass at p was charged before the checkpoint; it is redone, not
        // charged again.
        s.get_params(be, "p", p)?;
        t_last = s.get("t_last")?;
        iter = s.counter("iter")? as usize;
    } else {
        budget.passes += net.forward_passes(spec, n);
    }
    net.forward(be, spec, p, &data.x)?;
    while !budget.spent() {
        net.backward(be, spec, p, &data.x, &data.y, GD_LOSS.slot())?;
        budget.passes += bwd;
        let accepted = ps.step(be, spec, data, p, &net.grad, 2.0 * t_last, budget)?;
        if let Some(acc) = accepted {
            std::mem::swap(p, &mut ps.trial);
            std::mem::swap(&mut net, &mut ps.trial_net);
            t_last = acc.t;
        }
        iter += 1;
        if accepted.is_none() || rec.due(budget) {
            rec.record(be, p, data, budget, "gd", iter, |_| {})?;
        }
        if accepted.is_none() {
            // No decrease at any step: a stationary point to float precision.
            break;
        }
        if rec.checkpoint_due() {
            let mut s = SolverState::phase("gd");
            s.put_params(be, "p", p)?;
            s.put("t_last", t_last).count("iter", iter as u64);
            rec.checkpoint(be, budget, s)?;
        }
    }
    rec.record_final(be, p, data, budget, "gd", iter)?;
    Ok(())
}

/// The mask of `p`'s nonzero groups when the options ask to keep zero groups at zero.
fn zero_group_mask<B: Backend>(
    be: &B,
    spec: &Spec,
    opts: &ProxGradOptions,
    p: &Params<B>,
) -> BResult<Option<GroupMask<B>>> {
    opts.keep_zero_groups
        .then(|| GroupMask::of_live_groups(be, spec, p))
        .transpose()
}

/// Accelerated proximal gradient with monotone restart (method §7). `p` is the returned
/// point `x`, and `y` the extrapolated one (starting at `x`, with `θ = 1` and step
/// `opts.step0`). Each iteration takes one Armijo prox-gradient step from `y` (forward and
/// backward at `y`, backtracking `t ← t/2`); a trial whose (P0) exceeds `x`'s is
/// discarded (`θ = 1`, `y = x`), otherwise `θ⁺ = (1 + √(1 + 4θ²))/2`,
/// `y = x⁺ + ((θ − 1)/θ⁺)(x⁺ − x)`, `x = x⁺`; then `t ← 1.5t`. So (P0) at `x` never
/// increases. Biases take the plain gradient step and are extrapolated like `W`.
#[allow(clippy::too_many_arguments)]
pub fn prox_apg<B: Backend>(
    be: &B,
    spec: &Spec,
    opts: impl Into<ProxGradOptions>,
    data: &DeviceData<B>,
    p: &mut Params<B>,
    budget: &mut Budget,
    rec: &mut Recorder<'_, B>,
) -> Result<()> {
    let opts = opts.into();
    let n = data.n;
    let layers = spec.layers();
    let mask = zero_group_mask(be, spec, &opts, p)?;
    let mut ps = ProxGradStep::new(be, spec, n, mask)?;
    // `at_y` holds the forward pass (then the backward) of `y` when `y_fresh`.
    let mut at_y = Net::new(be, spec, n)?;
    let fwd = at_y.forward_passes(spec, n);
    let bwd = at_y.backward_passes(spec, n);
    let mut y = Params::zeros_like(be, spec)?;
    let (mut y_fresh, mut f_x, mut theta, mut t, mut iter);
    if let Some(s) = rec.take_resume("apg") {
        s.get_params(be, "p", p)?;
        s.get_params(be, "y", &mut y)?;
        y_fresh = s.counter("y_fresh")? == 1;
        f_x = s.get("f_x")?;
        theta = s.get("theta")?;
        t = s.get("t")?;
        iter = s.counter("iter")? as usize;
        if y_fresh {
            // The forward pass at y was charged before the checkpoint.
            at_y.forward(be, spec, &y, &data.x)?;
        }
    } else {
        y.assign(be, p)?;
        at_y.forward(be, spec, &y, &data.x)?;
        budget.passes += fwd;
        y_fresh = true;
        // (P0) at x, by the forward pass just made (no extra work).
        f_x = p0_at(be, spec, data, p, &at_y)?;
        (theta, t) = (1.0f64, opts.step0);
        iter = 0;
    }
    while !budget.spent() {
        if !y_fresh {
            at_y.forward(be, spec, &y, &data.x)?;
            budget.passes += fwd;
        }
        at_y.backward(be, spec, &y, &data.x, &data.y, GD_LOSS.slot())?;
        budget.passes += bwd;
        let accepted = ps.step(be, spec, data, &y, &at_y.grad, t, budget)?;
        iter += 1;
        let Some(acc) = accepted else {
            // No decrease from y at any step: y is stationary to float precision.
            rec.record(be, p, data, budget, "apg", iter, |_| {})?;
            break;
        };
        t = acc.t;
        if acc.p0() > f_x {
            // Monotone restart: keep x, restart the momentum from it.
            theta = 1.0;
            y.assign(be, p)?;
            y_fresh = false;
        } else {
            let theta_next = (1.0 + (1.0 + 4.0 * theta * theta).sqrt()) / 2.0;
            let beta = (theta - 1.0) / theta_next;
            if beta == 0.0 {
                // y = x⁺ exactly: its forward pass is the trial's.
                y.assign(be, &ps.trial)?;
                std::mem::swap(&mut at_y, &mut ps.trial_net);
                y_fresh = true;
            } else {
                let (a, b) = ((1.0 + beta) as f32, -beta as f32);
                for l in 0..layers {
                    be.axpby(&mut y.w[l], a, &ps.trial.w[l], b, &p.w[l])?;
                    be.axpby(&mut y.b[l], a, &ps.trial.b[l], b, &p.b[l])?;
                }
                y_fresh = false;
            }
            std::mem::swap(p, &mut ps.trial);
            theta = theta_next;
            f_x = acc.p0();
        }
        t *= 1.5;
        if rec.due(budget) {
            rec.record(be, p, data, budget, "apg", iter, |_| {})?;
        }
        if rec.checkpoint_due() {
            let mut s = SolverState::phase("apg");
            s.put_params(be, "p", p)?;
            s.put_params(be, "y", &y)?;
            s.put("f_x", f_x).put("theta", theta).put("t", t);
            s.count("y_fresh", u64::from(y_fresh))
                .count("iter", iter as u64);
            rec.checkpoint(be, budget, s)?;
        }
    }
    rec.record_final(be, p, data, budget, "apg", iter)?;
    Ok(())
}
