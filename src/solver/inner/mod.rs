//! method §6: the inner solver. The lifted state `(W, b, V, U, Λ)` of method §2 on the device,
//! and one Gauss–Seidel sweep of block proximal gradient over
//! `W_1,b_1 | V_1 | W_2,b_2 | … | V_{L−1} | W_L,b_L`, each block with its own step and
//! Armijo backtracking.
//!
//! Trials are matmul-free (method §6): a W-trial's pre-activation is
//! `diag(s)(U − b1ᵀ − tB) + b⁺1ᵀ` with `B = ∇W·V_{l−1}` computed once per step and `s`
//! the row shrink factors; a V-trial's next pre-activation is `U_{l+1} − t·W_{l+1}G_V` with
//! `W_{l+1}G_V` computed once. Each trial costs elementwise work; two candidate steps
//! share one pass over the operands and ONE scalar readback (`blocks.rs`, [`LADDER`]);
//! a trial's point is written and its constraint value summed in the same pass
//! (`w_trial_value`, `step_value`), and each block's residual writes only the gradient the
//! block reads. A trial also writes, at its point, the gradient the next block of that layer
//! reads (a W trial `G_V` for the V block; a V trial `G_U` for the W blocks of its own and
//! the next layer): once accepted it is that block's gradient, and the block skips its
//! residual pass ([`Known`]).
//! Column-grouped layers (method §1 options) cannot use the shrink trick and pay a matmul per
//! trial. The block steps are in `blocks.rs`; the optional exact blocks in `exact.rs`.

mod blocks;
pub mod exact;
mod speculate;

use super::slots::{
    self, Readback, Values, DISCARD, GROUP_SUM, H2, LAGRANGIAN_PENALTY, LAM_H, LOSS, RES, SIGMA2,
};
use crate::backend::ladder::PieceAt;
use crate::backend::{BResult, Backend, Grads, Residual, Slot, LADDER};
use crate::problem::{DeviceData, Params, Spec};
use exact::ExactWork;

/// Relative slack in the Armijo tests, in units of the backend's epsilon: the values
/// compared are reductions over up to millions of terms; on an f32 device their rounding
/// is ~1e-7 relative, and a slack below that would reject exact steps forever.
const ARMIJO_SLACK_EPS: f64 = 8.0;
/// Backtracking gives up after this many halvings (the block then keeps its point).
const MAX_BACKTRACK: usize = 40;
// Ladders of candidates never run past the last trial.
const _: () = assert!(MAX_BACKTRACK.is_multiple_of(LADDER));

/// The lifted state and its workspaces, allocated once per problem.
pub struct Lifted<B: Backend> {
    pub spec: Spec,
    pub n: usize,
    pub p: Params<B>,
    /// `V_l`, hidden layers `l = 1..L−1` (index `l−1`).
    pub v: Vec<B::Mat>,
    /// `U_l`, `l = 1..L` (index `l−1`); `u[L−1]` is the network output.
    pub u: Vec<B::Mat>,
    /// `Λ_l`, hidden layers.
    pub lam: Vec<B::Mat>,
    pub rho: f64,
    /// Current block steps (W blocks per layer, V blocks per hidden layer).
    pub step_w: Vec<f64>,
    pub step_v: Vec<f64>,
    /// Passes spent (method §5), charged by every matmul the solver issues.
    pub passes: f64,
    // workspaces (public for the gradient tests)
    /// Hidden-layer scratch (the adjoint recursion, the exact `V` block).
    pub scratch: Vec<B::Mat>,
    pub gu: Vec<B::Mat>,
    pub gv: Vec<B::Mat>,
    pub g: Params<B>,
    pub bmat: Vec<B::Mat>,
    /// The trials' workspaces, one set per candidate of a ladder trial.
    pub cand: [Candidate<B>; LADDER],
    /// Workspaces of the optional exact blocks (method §6); `None` = all blocks by
    /// proximal gradient.
    pub exact: Option<ExactWork<B>>,
    /// Record whole sweeps, each ladder decided on the device (`speculate.rs`) where the
    /// sweep allows it; set from [`Backend::prefers_recorded_sweeps`].
    pub record: bool,
    known: Known,
    /// Where the next block's backtracking starts, after a recorded ladder failed (its
    /// next ladder recorded again, or its remaining ladders decided on the host).
    resume: Option<Resume>,
    /// Per block of the sweep (`W_l` at `2l`, `V_l` at `2l + 1`): a ladder of it has
    /// passed in a recorded sweep, so its step is a measured one, not the initial guess
    /// (`speculate.rs`).
    stepped: Vec<bool>,
}

/// Where a block's backtracking starts in a recorded sweep, after a ladder recorded with
/// the device's decision failed or where the step is still the initial guess: the next
/// step to try, the trials spent, the first candidate's squared gradient mapping (the
/// block's term of the sweep residual; `None` before any ladder), and, when the host
/// decides the rest, how many ladders it records before each readback
/// (`slots::TRIAL_SETS` where the step is far off: `speculate.rs`).
#[derive(Clone, Copy, Debug)]
struct Resume {
    t: f64,
    trials: usize,
    map2: Option<f64>,
    ladders: usize,
}

/// One ladder candidate's workspaces (method §6): what a trial writes, swapped into the
/// state when the candidate is accepted.
pub struct Candidate<B: Backend> {
    /// A W trial's `(W, b)` and its group shrink factors; `diff` is scratch of the KKT
    /// measure's prox mapping (`alm.rs`), a W trial's step `Δ` is never stored.
    pub trial: Params<B>,
    pub diff: Params<B>,
    pub shrink: Vec<B::Mat>,
    /// Per layer: a W trial's pre-activation, or the next layer's `U` of a V trial.
    pub u: Vec<B::Mat>,
    /// Per hidden layer: a V trial's `V`.
    pub v: Vec<B::Mat>,
    /// Per hidden layer: the gradients the trials write at their point, `G_U` (V trials)
    /// and `G_V` (W trials).
    pub gu: Vec<B::Mat>,
    pub gv: Vec<B::Mat>,
}

impl<B: Backend> Candidate<B> {
    fn new(be: &B, spec: &Spec, n: usize) -> BResult<Self> {
        let layers = spec.layers();
        let mut c = Candidate {
            trial: Params::zeros_like(be, spec)?,
            diff: Params::zeros_like(be, spec)?,
            shrink: Vec::new(),
            u: Vec::new(),
            v: Vec::new(),
            gu: Vec::new(),
            gv: Vec::new(),
        };
        for l in 0..layers {
            let r = spec.sizes[l + 1];
            c.u.push(be.zeros(r, n)?);
            let (sr, sc) = spec.shrink_shape(l);
            c.shrink.push(be.zeros(sr, sc)?);
            if l + 1 < layers {
                for vec in [&mut c.v, &mut c.gu, &mut c.gv] {
                    vec.push(be.zeros(r, n)?);
                }
            }
        }
        Ok(c)
    }
}

/// Which hidden-layer gradient workspaces hold the gradient at the current point (with
/// the current `ρ` and `Λ`), with where the value of the layer's piece there is (on the
/// host, or in a recorded decision's report): left by the block that computed them or by
/// the accepted trial that wrote them, and read by the next block instead of a residual
/// pass. Within a sweep this follows the blocks; across sweeps only through
/// [`Lifted::next_sweep`], since anything else may have changed the state.
#[derive(Clone, Debug, Default)]
struct Known {
    /// `gu[l]` holds `G_U` of hidden layer `l`.
    gu: Vec<Option<PieceAt>>,
    /// `gv[l]` holds the direct `G_V = S/N` of hidden layer `l`.
    gv: Vec<Option<PieceAt>>,
}

impl Known {
    fn none(hidden: usize) -> Self {
        Known {
            gu: vec![None; hidden],
            gv: vec![None; hidden],
        }
    }

    /// Nothing known (in place: called at every sweep's start).
    fn forget(&mut self) {
        self.gu.fill(None);
        self.gv.fill(None);
    }
}

/// One Armijo step of a block: (moved, squared gradient mapping, trials).
type BlockStep<B> = fn(&mut Lifted<B>, &B, &DeviceData<B>, usize) -> BResult<(bool, f64, usize)>;

/// What one sweep reports.
#[derive(Clone, Copy, Debug, Default)]
pub struct SweepReport {
    /// Norm of the blocks' gradient mappings at their first step (W: `‖Δ‖/t`,
    /// V: `N‖G_V‖`, as in the `kkt` of method §5).
    pub residual: f64,
    pub trials: usize,
    pub rejected_blocks: usize,
    /// The sweep ended early because `stop` said so.
    pub stopped: bool,
}

impl<B: Backend> Lifted<B> {
    /// Allocate the state for `spec` and `n` samples, starting at parameters `p`;
    /// `V`, `U`, `Λ` are set by [`Lifted::init_feasible`].
    pub fn new(be: &B, spec: &Spec, n: usize, p: &Params<B>, rho: f64) -> BResult<Self> {
        slots::check_layers(spec.layers())?;
        let layers = spec.layers();
        let mut st = Lifted {
            spec: spec.clone(),
            n,
            p: Params::zeros_like(be, spec)?,
            v: Vec::new(),
            u: Vec::new(),
            lam: Vec::new(),
            rho,
            step_w: vec![1.0; layers],
            step_v: vec![n as f64; layers - 1],
            passes: 0.0,
            scratch: Vec::new(),
            gu: Vec::new(),
            gv: Vec::new(),
            g: Params::zeros_like(be, spec)?,
            bmat: Vec::new(),
            cand: [Candidate::new(be, spec, n)?, Candidate::new(be, spec, n)?],
            exact: None,
            record: be.prefers_recorded_sweeps(),
            known: Known::none(layers - 1),
            resume: None,
            stepped: vec![false; 2 * layers - 1],
        };
        st.p.assign(be, p)?;
        for l in 0..layers {
            let r = spec.sizes[l + 1];
            st.u.push(be.zeros(r, n)?);
            st.gu.push(be.zeros(r, n)?);
            st.bmat.push(be.zeros(r, n)?);
            if l + 1 < layers {
                for vec in [&mut st.v, &mut st.lam, &mut st.scratch, &mut st.gv] {
                    vec.push(be.zeros(r, n)?);
                }
            }
        }
        Ok(st)
    }

    /// Switch the `V_{L−1}` and `(W_L, b_L)` blocks to their exact solutions (method §6;
    /// squared loss, at least one hidden layer).
    pub fn enable_exact(&mut self, be: &B) -> BResult<()> {
        let layers = self.spec.layers();
        if layers >= 2 && self.spec.loss == crate::backend::LossKind::Squared {
            self.exact = Some(ExactWork::new(
                be,
                self.spec.sizes[layers - 1],
                self.spec.sizes[layers],
            )?);
        }
        Ok(())
    }

    fn frac(&self, l: usize) -> f64 {
        self.spec.pass_fraction(l, self.n, self.n)
    }

    /// Recompute every `U_l = W_l V_{l−1} + b_l 1ᵀ` from scratch (method §4: no drift).
    pub fn recompute_u(&mut self, be: &B, x: &B::Mat) -> BResult<()> {
        for l in 0..self.spec.layers() {
            let input = if l == 0 { x } else { &self.v[l - 1] };
            be.matmul_nn(&mut self.u[l], &self.p.w[l], input, Some(&self.p.b[l]), 0.0)?;
            self.passes += self.frac(l);
        }
        Ok(())
    }

    /// method §4 init: `V = forward pass of W` (feasible, `H = 0`) and the adjoint
    /// multipliers `Λ_{L−1} = −N W_Lᵀ ∂ℓ/∂Ŷ`, `Λ_l = W_{l+1}ᵀ(Λ_{l+1} ⊙ σ'(U_{l+1}))`.
    pub fn init_feasible(&mut self, be: &B, data: &DeviceData<B>) -> BResult<()> {
        let layers = self.spec.layers();
        let alpha = self.spec.alpha;
        for l in 0..layers {
            let input = if l == 0 { &data.x } else { &self.v[l - 1] };
            be.matmul_nn(&mut self.u[l], &self.p.w[l], input, Some(&self.p.b[l]), 0.0)?;
            self.passes += self.frac(l);
            if l + 1 < layers {
                be.leaky_relu(&mut self.v[l], &self.u[l], alpha)?;
            }
        }
        self.adjoint_multipliers(be, &data.y)
    }

    /// The adjoint multipliers of method §4 at the current `(W, U)`.
    pub fn adjoint_multipliers(&mut self, be: &B, y: &B::Mat) -> BResult<()> {
        let layers = self.spec.layers();
        if layers < 2 {
            return Ok(());
        }
        let n = self.n as f32;
        be.loss_grad(
            &self.u[layers - 1],
            y,
            self.spec.loss,
            &mut self.gu[layers - 1],
            DISCARD.slot(),
        )?;
        be.matmul_tn(
            &mut self.lam[layers - 2],
            &self.p.w[layers - 1],
            &self.gu[layers - 1],
            0.0,
        )?;
        be.scale(&mut self.lam[layers - 2], -n)?;
        self.passes += self.frac(layers - 1);
        for l in (0..layers - 2).rev() {
            // Λ_{l+1} ⊙ σ'(U_{l+1}).
            be.copy(&mut self.scratch[l + 1], &self.lam[l + 1])?;
            be.mul_leaky_deriv(&mut self.scratch[l + 1], &self.u[l + 1], self.spec.alpha)?;
            be.matmul_tn(
                &mut self.lam[l],
                &self.p.w[l + 1],
                &self.scratch[l + 1],
                0.0,
            )?;
            self.passes += self.frac(l + 1);
        }
        Ok(())
    }

    /// Value of the smooth part that depends on `U_l` (layer index `l`), from the three
    /// sums read from `slot` (hidden: `(⟨Λ,H⟩ + ρ/2‖H‖²)/N`) or the loss there (output).
    fn piece(&self, l: usize, v: &Values, slot: Slot) -> f64 {
        if l + 1 < self.spec.layers() {
            (v.get(slot + LAM_H) + 0.5 * self.rho * v.get(slot + H2)) / self.n as f64
        } else {
            v.get(slot + LOSS)
        }
    }

    /// Ask `rb` for what [`Lifted::piece`] reads of layer `l`'s sums at `slot`.
    fn ask_piece(&self, rb: &mut Readback, l: usize, slot: Slot) {
        if l + 1 < self.spec.layers() {
            rb.slot(slot + H2).slot(slot + LAM_H);
        } else {
            rb.slot(slot + LOSS);
        }
    }

    /// Compute the gradients of the piece of layer `l` at the current `(U_l, V_l)` that
    /// `write` names and write its value's sums into `slot` (3 slots): the fused constraint
    /// residual (method §3) with penalty `rho` for a hidden layer (`G_U` and/or the direct
    /// `G_V`), the loss gradient `G_U` for the output layer.
    pub(crate) fn piece_grad(
        &mut self,
        be: &B,
        l: usize,
        y: &B::Mat,
        (slot, rho): (Slot, f64),
        write: Grads,
    ) -> BResult<()> {
        if l + 1 < self.spec.layers() {
            let r = self.residual(rho, write);
            be.constraint_residual(
                &self.u[l],
                &self.v[l],
                &self.lam[l],
                r,
                &mut self.gu[l],
                &mut self.gv[l],
                slot,
            )
        } else {
            be.loss_grad(&self.u[l], y, self.spec.loss, &mut self.gu[l], slot)
        }
    }

    /// The residual's scalars with penalty `rho`, writing `write` (the one place the
    /// sweep's kernels get `α` and `1/N` from, so the trials' gradients and the residual
    /// passes they replace use the same `f32` values).
    fn residual(&self, rho: f64, write: Grads) -> Residual {
        Residual {
            rho: rho as f32,
            alpha: self.spec.alpha,
            inv_n: 1.0 / self.n as f32,
            write,
        }
    }

    /// `(‖H‖, ‖σ(U)‖)` over all hidden layers at the current point (method §4; the
    /// multiplier update recomputes `H` from `U` and `V`). Elementwise work and one readback.
    pub fn constraint_norm(&mut self, be: &B, y: &B::Mat) -> BResult<(f64, f64)> {
        let hidden = self.v.len();
        let mut rb = Readback::new();
        for l in 0..hidden {
            // The value's sums equal the residual's bit for bit; no gradient is needed.
            self.piece_value(be, l, &self.u[l], None, y, RES.at(l))?;
            rb.slot(RES.part(l, H2)).slot(RES.part(l, SIGMA2));
        }
        let v = rb.read(be)?;
        let sum = |k| {
            (0..hidden)
                .map(|l| v.get(RES.part(l, k)))
                .sum::<f64>()
                .sqrt()
        };
        Ok((sum(H2), sum(SIGMA2)))
    }

    /// The value sums of layer `l`'s piece at pre-activation `u` (and `V_l` = `v` for a
    /// hidden layer) into `slot`.
    fn piece_value(
        &self,
        be: &B,
        l: usize,
        u: &B::Mat,
        v: Option<&B::Mat>,
        y: &B::Mat,
        slot: Slot,
    ) -> BResult<()> {
        if l + 1 < self.spec.layers() {
            be.constraint_value(
                u,
                v.unwrap_or(&self.v[l]),
                &self.lam[l],
                self.spec.alpha,
                slot,
            )
        } else {
            be.loss(u, y, self.spec.loss, slot)
        }
    }

    /// One Gauss–Seidel sweep over all blocks, `k` Armijo steps per block (method §6).
    /// `stop(passes)` is asked before each block with the passes this state has spent
    /// since its last charge; a `true` ends the sweep early (work budgets).
    pub fn sweep(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        k: usize,
        stop: &dyn Fn(f64) -> bool,
    ) -> BResult<SweepReport> {
        self.known.forget();
        self.next_sweep(be, data, k, stop)
    }

    /// [`Lifted::sweep`] that starts from the gradients the previous sweep left (a V
    /// trial's `G_U` is the next sweep's first gradient of that layer). Only right after
    /// a sweep, with nothing changed in between: the inner loop of method §6.
    pub fn next_sweep(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        k: usize,
        stop: &dyn Fn(f64) -> bool,
    ) -> BResult<SweepReport> {
        if self.can_record(k) {
            return self.recorded_sweep(be, data, stop);
        }
        let layers = self.spec.layers();
        let mut rep = SweepReport::default();
        let mut res2 = 0.0;
        for l in 0..layers {
            if stop(self.passes) {
                rep.stopped = true;
                break;
            }
            if !(l + 1 == layers && self.exact_block(be, data, Self::exact_w_last)?) {
                self.block_steps(be, data, l, k, &mut rep, &mut res2, Self::w_block)?;
            }
            if l + 2 == layers && self.exact_block(be, data, Self::exact_v_last)? {
                continue;
            }
            if l + 1 < layers {
                self.block_steps(be, data, l, k, &mut rep, &mut res2, Self::v_block)?;
            }
        }
        rep.residual = res2.sqrt();
        Ok(rep)
    }

    /// Up to `k` Armijo steps of one block (method §6); the first step's squared gradient
    /// mapping goes into the sweep residual, and a rejected step ends the block's turn.
    #[allow(clippy::too_many_arguments)]
    fn block_steps(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        l: usize,
        k: usize,
        rep: &mut SweepReport,
        res2: &mut f64,
        block: BlockStep<B>,
    ) -> BResult<()> {
        for step in 0..k {
            let (moved, map2, trials) = block(self, be, data, l)?;
            rep.trials += trials;
            if step == 0 {
                *res2 += map2;
            }
            if !moved {
                rep.rejected_blocks += 1;
                break;
            }
        }
        Ok(())
    }

    /// Run an exact block when exact blocks are on; `false` when they are off.
    fn exact_block(
        &mut self,
        be: &B,
        data: &DeviceData<B>,
        solve: fn(&mut Self, &B, &DeviceData<B>, &mut ExactWork<B>) -> BResult<()>,
    ) -> BResult<bool> {
        let Some(mut ex) = self.exact.take() else {
            return Ok(false);
        };
        // The exact blocks use the workspaces and move the last layers.
        self.known.forget();
        let r = solve(self, be, data, &mut ex);
        self.exact = Some(ex);
        r.map(|()| true)
    }

    /// `L_ρ` at the current point (method §3), one readback. For tests and logging.
    pub fn lagrangian(&mut self, be: &B, y: &B::Mat) -> BResult<f64> {
        let layers = self.spec.layers();
        let mut rb = Readback::new();
        for l in 0..layers {
            self.piece_value(be, l, &self.u[l], None, y, RES.at(l))?;
            be.group_norms(&self.p.w[l], self.spec.axes[l], LAGRANGIAN_PENALTY.at(l))?;
            self.ask_piece(&mut rb, l, RES.at(l));
            rb.slot(LAGRANGIAN_PENALTY.part(l, GROUP_SUM));
        }
        let v = rb.read(be)?;
        let mut total = 0.0;
        for l in 0..layers {
            total += self.piece(l, &v, RES.at(l));
            total += self.spec.lambda as f64 * v.get(LAGRANGIAN_PENALTY.part(l, GROUP_SUM));
        }
        Ok(total)
    }
}
