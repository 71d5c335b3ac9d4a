//! The backend trait: exactly the operations of method §5b, over backend-owned tensor
//! handles. The solver (method §4, §6) and the baselines (method §7) are written once against
//! this trait; the CPU backend (`cpu/`, ndarray + BLAS) is the reference twin of every
//! GPU kernel (`gpu/`, WGSL through wgpu).
//!
//! Conventions shared by every implementation:
//! - A matrix holds one sample per **column** (the method's notation) and is row-major `rows×cols`.
//!   Vectors (biases, shrink factors) are `n×1` matrices, except column-group shrink factors
//!   which are `1×d`.
//! - Outputs are `&mut`, inputs `&`: Rust's borrow rules then forbid an output aliasing an
//!   input, which is also what a GPU binding (read vs read_write) requires.
//! - Reductions never return a value directly: they write into a *scalar slot* of the
//!   backend's small register file, and [`Backend::read_slots`] reads any set of slots in
//!   one readback. This is how an Armijo trial costs one readback (method §5b: the host
//!   decides from a few scalars).
//! - Host transfers of whole tensors (`upload`, `write`, `download`) are for data, model
//!   I/O and tests; the solver only moves parameter-sized matrices that way (best-W
//!   bookkeeping, optional exact blocks), never anything that grows with `N`.

pub mod cpu;
mod error;
pub mod gpu;
pub mod ladder;
pub mod shape;

pub use error::{BResult, BackendError};
use ndarray::{Array2, ArrayView2};

/// Index of a scalar slot in the backend's register file (`0..NUM_SLOTS`).
pub type Slot = usize;
/// Number of scalar slots every backend provides.
pub const NUM_SLOTS: usize = 512;

/// Which groups the `‖·‖_{2,1}` penalty uses for a weight matrix (method §1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Axis {
    /// One group per row: a neuron's incoming weights. A zero row removes the neuron.
    Rows,
    /// One group per column: an input feature (W₁) or a last hidden neuron (W_L).
    Cols,
}

/// The constraint residual's scalars (method §3) and the gradients its caller reads.
#[derive(Clone, Copy, Debug)]
pub struct Residual {
    /// Penalty `ρ`.
    pub rho: f32,
    /// Leaky ReLU slope `α`.
    pub alpha: f32,
    /// `1/N`.
    pub inv_n: f32,
    pub write: Grads,
}

/// Which gradients [`Backend::constraint_residual`] writes; the other matrix is left as
/// it was. Each block of the sweep reads one of them (method §6), and each written matrix
/// is one more pass over memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grads {
    /// `G_U` only (a W block, or the next layer's piece in a V block).
    U,
    /// `G_V` only (a V block's own layer).
    V,
    /// Both (the KKT measure).
    Both,
}

impl Grads {
    pub fn u(self) -> bool {
        self != Grads::V
    }
    pub fn v(self) -> bool {
        self != Grads::U
    }
}

/// Which matrix of a hidden layer's constraint `V = σ(U)` a trial step moves
/// ([`Backend::step_value`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Moved {
    /// The pre-activation `U` (a V-block trial moves the next layer's `U`).
    U,
    /// The activation `V` (a V-block trial's own block).
    V,
}

/// The operands of a V-block trial step (method §6): `base + a·dir` moves `V` (`moved =
/// Moved::V`, `other` = `U`) or `U` (`other` = `V`) of a constraint whose multipliers are
/// `lam`.
#[derive(Clone, Copy, Debug)]
pub struct VStep<'a, M> {
    pub base: &'a M,
    pub a: f32,
    pub dir: &'a M,
    pub moved: Moved,
    pub other: &'a M,
    pub lam: &'a M,
}

/// Candidate steps one ladder trial evaluates (method §6): `t` and `t/2`. A block's first
/// trial, at twice its last accepted step, is most often rejected and the halved one
/// accepted; evaluated together they share one pass over the trial's operands and one
/// readback, and the block takes the first that passes, as sequential backtracking would.
pub const LADDER: usize = 2;

/// Where one candidate of a ladder trial goes ([`Backend::step_value_ladder`],
/// [`Backend::w_trial_value_ladder`]): its point, the gradient the trial writes there, and
/// the first of its three value slots.
#[derive(Debug)]
pub struct TrialOut<'a, M> {
    pub out: &'a mut M,
    pub grad: &'a mut M,
    pub slot: Slot,
}

/// The operands of a matmul-free W trial (method §6, row groups):
/// `diag(shrink)(u − b_old 1ᵀ − t·bmat) + b_new 1ᵀ`, with `bmat = ∇W · V_{l−1}`.
#[derive(Clone, Copy, Debug)]
pub struct WTrial<'a, M> {
    pub u: &'a M,
    pub b_old: &'a M,
    pub b_new: &'a M,
    pub bmat: &'a M,
    pub shrink: &'a M,
    pub t: f32,
}

/// The smooth loss ℓ of method §1, always averaged over the `N` columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossKind {
    /// `(1/N)‖Ŷ − Y‖²`, the paper's setting; gradient `2(Ŷ − Y)/N`.
    Squared,
    /// `(1/N) Σ_j [logsumexp(ŷ_j) − ⟨y_j, ŷ_j⟩]` over columns; gradient `(softmax(Ŷ) − Y)/N`.
    SoftmaxCe,
}

/// Work counters a backend keeps, printed with `--verbose` (dispatches and readbacks per
/// sweep: the cost model of method §5b counts both).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Kernel launches (GPU dispatches; CPU: operations executed).
    pub dispatches: u64,
    /// Device→host scalar readbacks (`read_slots` calls).
    pub readbacks: u64,
    /// Command-buffer submissions (GPU only).
    pub submits: u64,
}

impl Counters {
    /// The work counted between `before` and `self` (a later reading).
    pub fn since(self, before: Counters) -> Counters {
        Counters {
            dispatches: self.dispatches.saturating_sub(before.dispatches),
            readbacks: self.readbacks.saturating_sub(before.readbacks),
            submits: self.submits.saturating_sub(before.submits),
        }
    }

    /// `self + other`, counter by counter.
    pub fn plus(self, other: Counters) -> Counters {
        Counters {
            dispatches: self.dispatches + other.dispatches,
            readbacks: self.readbacks + other.readbacks,
            submits: self.submits + other.submits,
        }
    }
}

/// The inner sweeps' share of a run's backend work (method §6), for `--verbose`: the
/// sweeps run and what they cost together, the sweep's own measures (its residual, the
/// trials' values) included and the outer loop's (KKT, ‖H‖, records) not.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SweepCounters {
    pub sweeps: u64,
    pub work: Counters,
}

impl SweepCounters {
    /// Count one sweep, whose work is what the counters read `after` it less `before`.
    pub fn add_sweep(&mut self, before: Counters, after: Counters) {
        self.sweeps += 1;
        self.work = self.work.plus(after.since(before));
    }

    /// Both tallies together (runs of several methods).
    pub fn plus(self, other: SweepCounters) -> SweepCounters {
        SweepCounters {
            sweeps: self.sweeps + other.sweeps,
            work: self.work.plus(other.work),
        }
    }
}

/// [`Backend::prox_step_ladder`] as its single operations in turn: the trait's default,
/// and where a backend's fused version does not apply.
#[allow(clippy::type_complexity)]
pub fn prox_step_ladder_in_turn<B: Backend + ?Sized>(
    be: &B,
    new: [(&mut B::Mat, &mut B::Mat, &mut B::Mat); LADDER],
    old: (&B::Mat, &B::Mat),
    grad: (&B::Mat, &B::Mat),
    t_thresh: [(f32, f32); LADDER],
    axis: Axis,
    slots: [Slot; LADDER],
) -> BResult<()> {
    for ((new, tt), slot) in new.into_iter().zip(t_thresh).zip(slots) {
        be.prox_step(new, old, grad, tt, axis, slot)?;
    }
    Ok(())
}

/// [`Backend::w_trial_value_ladder`] as its single operations in turn: the trait's
/// default, and where a backend's fused version does not apply.
pub fn w_trial_value_ladder_in_turn<B: Backend + ?Sized>(
    be: &B,
    outs: [TrialOut<'_, B::Mat>; LADDER],
    trials: [WTrial<'_, B::Mat>; LADDER],
    v_lam: (&B::Mat, &B::Mat),
    r: Residual,
) -> BResult<()> {
    shape::w_trial_value_ladder(be, &outs, &trials, v_lam, &r)?;
    for (o, trial) in outs.into_iter().zip(trials) {
        be.w_trial_value(o.out, o.grad, trial, v_lam, r, o.slot)?;
    }
    Ok(())
}

/// [`Backend::step_value_ladder`] as its single operations in turn: the trait's default,
/// and where a backend's fused version does not apply.
pub fn step_value_ladder_in_turn<B: Backend + ?Sized>(
    be: &B,
    outs: [TrialOut<'_, B::Mat>; LADDER],
    steps: [VStep<'_, B::Mat>; LADDER],
    r: Residual,
    dir_sq: Option<Slot>,
) -> BResult<()> {
    shape::step_value_ladder(be, &outs, &steps, &r, dir_sq)?;
    if let Some(slot) = dir_sq {
        be.sq_norm(steps[0].dir, slot)?;
    }
    for (o, step) in outs.into_iter().zip(steps) {
        be.step_value(o.out, o.grad, step, r, o.slot)?;
    }
    Ok(())
}

/// The operations of method §5b. Every method has a CPU twin of the same name and argument
/// order in `cpu/`, and a WGSL kernel in `shaders/`. Both implementations check their
/// arguments against the one contract per operation in [`shape`], so a misuse gives the same
/// [`BackendError::Shape`] message on either backend.
pub trait Backend {
    /// A device-owned matrix.
    type Mat;

    /// Human-readable description (for `GPU` the adapter name and driver).
    fn name(&self) -> String;

    // ---- memory -------------------------------------------------------------------------
    /// A new `rows×cols` matrix of zeros.
    fn zeros(&self, rows: usize, cols: usize) -> BResult<Self::Mat>;
    /// A new matrix holding `host`.
    fn upload(&self, host: ArrayView2<f32>) -> BResult<Self::Mat>;
    /// Overwrite `dst` (same shape) with `host`, reusing its storage.
    fn write(&self, dst: &mut Self::Mat, host: ArrayView2<f32>) -> BResult<()>;
    /// Read a whole matrix back (model I/O, tests; never in the solver's hot loop).
    fn download(&self, m: &Self::Mat) -> BResult<Array2<f32>>;
    /// `(rows, cols)`.
    fn shape(&self, m: &Self::Mat) -> (usize, usize);
    /// `dst ← src` (same shape).
    fn copy(&self, dst: &mut Self::Mat, src: &Self::Mat) -> BResult<()>;
    /// `dst ← value` everywhere.
    fn fill(&self, dst: &mut Self::Mat, value: f32) -> BResult<()>;
    /// `out[:, j] ← src[:, idx[j]]` for `j < idx.len()` (minibatches, method §7).
    /// `out` has `idx.len()` columns.
    fn gather_cols(&self, out: &mut Self::Mat, src: &Self::Mat, idx: &[u32]) -> BResult<()>;

    // ---- matmuls (method §3: W V + b1ᵀ, G Vᵀ, Wᵀ G) -----------------------------------------
    /// `C ← A·B + bias·1ᵀ + beta·C` (`bias` is `rows(C)×1`; `beta = 0` ignores old `C`,
    /// even if it holds NaN).
    fn matmul_nn(
        &self,
        c: &mut Self::Mat,
        a: &Self::Mat,
        b: &Self::Mat,
        bias: Option<&Self::Mat>,
        beta: f32,
    ) -> BResult<()>;
    /// `C ← A·Bᵀ + beta·C` (weight gradients `G_U V_{l−1}ᵀ`).
    fn matmul_nt(&self, c: &mut Self::Mat, a: &Self::Mat, b: &Self::Mat, beta: f32) -> BResult<()>;
    /// `C ← Aᵀ·B + beta·C` (back-propagated `W_{l+1}ᵀ G_U`).
    fn matmul_tn(&self, c: &mut Self::Mat, a: &Self::Mat, b: &Self::Mat, beta: f32) -> BResult<()>;
    /// `out ← A·1 + beta·out` (bias gradients `G_U 1`; `out` is `rows(A)×1`).
    fn row_sum(&self, out: &mut Self::Mat, a: &Self::Mat, beta: f32) -> BResult<()>;
    /// `gw ← G·Xᵀ` and `gb ← G·1`: a layer's weight and bias gradients (method §3) from `G`
    /// (`g`, `m × N`) and the layer's input `X` (`input`, `k × N`). The GPU computes both
    /// in one product, the bias as the product with a column of ones, so `G` is read once
    /// and no dispatch is spent on the sum; by default, the two operations in turn.
    fn weight_grads(
        &self,
        gw: &mut Self::Mat,
        gb: &mut Self::Mat,
        g: &Self::Mat,
        input: &Self::Mat,
    ) -> BResult<()> {
        self.matmul_nt(gw, g, input, 0.0)?;
        self.row_sum(gb, g, 0.0)
    }

    // ---- elementwise ----------------------------------------------------------------------
    /// `out ← a·x + b·y`.
    fn axpby(
        &self,
        out: &mut Self::Mat,
        a: f32,
        x: &Self::Mat,
        b: f32,
        y: &Self::Mat,
    ) -> BResult<()>;
    /// `y ← y + a·x`.
    fn axpy(&self, y: &mut Self::Mat, a: f32, x: &Self::Mat) -> BResult<()>;
    /// `x ← a·x`.
    fn scale(&self, x: &mut Self::Mat, a: f32) -> BResult<()>;
    /// `out ← σ(u)`, leaky ReLU `max(u, αu)` (method §1).
    fn leaky_relu(&self, out: &mut Self::Mat, u: &Self::Mat, alpha: f32) -> BResult<()>;
    /// `d ← d ⊙ σ'(u)` (backprop; `σ'(u) = 1` if `u > 0` else `α`).
    fn mul_leaky_deriv(&self, d: &mut Self::Mat, u: &Self::Mat, alpha: f32) -> BResult<()>;

    // ---- the constraint residual kernel (method §3) -----------------------------------------
    /// The fused pass over `(U, V, Λ)`: with `H = V − σ(U)` and `S = Λ + ρH`, writes
    /// `G_U = −(S ⊙ σ'(U))·inv_n` and/or `G_V = S·inv_n` (the direct V gradient), as
    /// `r.write` says, and the slots `slot` ← `‖H‖²`, `slot+1` ← `⟨Λ, H⟩`, `slot+2` ←
    /// `‖σ(U)‖²`. `H` and `S` are not stored: no caller reads them (the multiplier update
    /// recomputes `H`), and each stored matrix is one more pass over memory.
    #[allow(clippy::too_many_arguments)]
    fn constraint_residual(
        &self,
        u: &Self::Mat,
        v: &Self::Mat,
        lam: &Self::Mat,
        r: Residual,
        gu: &mut Self::Mat,
        gv: &mut Self::Mat,
        slot: Slot,
    ) -> BResult<()>;
    /// The same three sums as [`Backend::constraint_residual`] without writing any matrix:
    /// the value of a trial point (method §6). `slot` ← `‖H‖²`, `slot+1` ← `⟨Λ,H⟩`,
    /// `slot+2` ← `‖σ(U)‖²`.
    fn constraint_value(
        &self,
        u: &Self::Mat,
        v: &Self::Mat,
        lam: &Self::Mat,
        alpha: f32,
        slot: Slot,
    ) -> BResult<()>;
    /// A V-block trial of method §6 in one pass: `out ← base + a·dir` (what
    /// [`Backend::axpby`]`(out, 1, base, a, dir)` writes, bit for bit), then the residual
    /// at the moved point (`out` is `U` and `other` is `V` when `moved` is [`Moved::U`],
    /// the other way round for [`Moved::V`]): the three sums of
    /// [`Backend::constraint_value`] into `slot..slot + 3`, and into `grad` the one
    /// gradient `r.write` names ([`Grads::U`] or [`Grads::V`]), as
    /// [`Backend::constraint_residual`] writes it. An accepted trial's gradient is the
    /// next block's, which then needs no residual pass of its own.
    fn step_value(
        &self,
        out: &mut Self::Mat,
        grad: &mut Self::Mat,
        step: VStep<'_, Self::Mat>,
        r: Residual,
        slot: Slot,
    ) -> BResult<()>;
    /// The candidates of one V trial (method §6), moving the same matrices by different
    /// steps: each what [`Backend::step_value`] with `steps[c]` into `outs[c]` writes, bit
    /// for bit, and with `dir_sq` the sum
    /// [`Backend::sq_norm`] takes of the (shared) direction into that slot. The default
    /// runs them one by one; a backend overrides it to read operands the candidates share
    /// once.
    fn step_value_ladder(
        &self,
        outs: [TrialOut<'_, Self::Mat>; LADDER],
        steps: [VStep<'_, Self::Mat>; LADDER],
        r: Residual,
        dir_sq: Option<Slot>,
    ) -> BResult<()> {
        step_value_ladder_in_turn(self, outs, steps, r, dir_sq)
    }
    /// A prox-gradient trial's model terms (method §6 and §7) in one pass: `diff ← new −
    /// old` (what [`Backend::axpby`]`(diff, 1, new, −1, old)` writes, bit for bit),
    /// `slot` ← `⟨g, diff⟩` and `slot + 1` ← `‖diff‖²` (the sums [`Backend::dot`] and
    /// [`Backend::sq_norm`] take of it).
    fn step_diff(
        &self,
        diff: &mut Self::Mat,
        new: &Self::Mat,
        old: &Self::Mat,
        g: &Self::Mat,
        slot: Slot,
    ) -> BResult<()>;
    /// Multiplier update `Λ ← Λ + ρH`, `H = V − σ(U)` (method §4), with `H` computed
    /// exactly as [`Backend::constraint_residual`] computes it.
    fn multiplier_update(
        &self,
        lam: &mut Self::Mat,
        u: &Self::Mat,
        v: &Self::Mat,
        rho: f32,
        alpha: f32,
    ) -> BResult<()>;

    // ---- group sparsity (method §3 prox, §6 matmul-free trials) --------------------------------
    /// Group soft-thresholding in place: each group `w ← w·max(0, 1 − thresh/‖w‖₂)`.
    /// `shrink` receives the factors (`rows×1` for `Axis::Rows`, `1×cols` for `Axis::Cols`);
    /// `slot` ← `Σ‖group‖₂` after the prox, `slot+1` ← number of zero groups after the prox.
    fn group_prox(
        &self,
        w: &mut Self::Mat,
        thresh: f32,
        axis: Axis,
        shrink: &mut Self::Mat,
        slot: Slot,
    ) -> BResult<()>;
    /// One prox-gradient candidate of a layer's block `(W, b)` at step `t` (method §6), in
    /// one pass where the backend can: `new.0 ← prox(old.0 − t·grad.0)` with threshold
    /// `thresh` on `axis`'s groups (what [`Backend::axpby`]`(new.0, 1, old.0, −t, grad.0)`
    /// then [`Backend::group_prox`] write, bit for bit, factors into `new.2`), `new.1 ←
    /// old.1 − t·grad.1` (axpby's), and the slots `slot`, `slot+1` ← group_prox's sums of
    /// `new.0` (`Σ‖group‖₂`, zero groups), `slot+2` ← `⟨grad, Δ⟩` and `slot+3` ← `‖Δ‖²`
    /// with `Δ = new − old` (the sums [`Backend::step_diff`] takes of `W`, plus those it
    /// takes of `b`). `Δ` is not stored: the trial needs only its two sums.
    fn prox_step(
        &self,
        new: (&mut Self::Mat, &mut Self::Mat, &mut Self::Mat),
        old: (&Self::Mat, &Self::Mat),
        grad: (&Self::Mat, &Self::Mat),
        t_thresh: (f32, f32),
        axis: Axis,
        slot: Slot,
    ) -> BResult<()>;
    /// A W ladder's candidates (method §6): candidate `c` is what [`Backend::prox_step`]
    /// with `t_thresh[c]` into `new[c]` and `slots[c]` writes, bit for bit. The default
    /// runs them one by one (the CPU twin); a backend overrides it to read the operands the
    /// candidates share once.
    #[allow(clippy::type_complexity)]
    fn prox_step_ladder(
        &self,
        new: [(&mut Self::Mat, &mut Self::Mat, &mut Self::Mat); LADDER],
        old: (&Self::Mat, &Self::Mat),
        grad: (&Self::Mat, &Self::Mat),
        t_thresh: [(f32, f32); LADDER],
        axis: Axis,
        slots: [Slot; LADDER],
    ) -> BResult<()> {
        prox_step_ladder_in_turn(self, new, old, grad, t_thresh, axis, slots)
    }
    /// `slot` ← `Σ‖group‖₂`, `slot+1` ← number of groups that are exactly zero.
    fn group_norms(&self, w: &Self::Mat, axis: Axis, slot: Slot) -> BResult<()>;
    /// The matmul-free W-trial pre-activation of method §6 (row groups):
    /// `out ← diag(s)(U − b_old 1ᵀ − t·B) + b_new 1ᵀ`, with `B = ∇W · V_{l−1}`.
    #[allow(clippy::too_many_arguments)]
    fn w_trial_preact(
        &self,
        out: &mut Self::Mat,
        u: &Self::Mat,
        b_old: &Self::Mat,
        b_new: &Self::Mat,
        bmat: &Self::Mat,
        shrink: &Self::Mat,
        t: f32,
    ) -> BResult<()>;
    /// A hidden layer's W trial in one pass (method §6): `out` ← the pre-activation
    /// [`Backend::w_trial_preact`] writes (bit for bit), then the residual at
    /// `(out, v, lam)` (`v_lam`): the three sums of [`Backend::constraint_value`] into
    /// `slot..slot + 3` and the gradient `r.write` names into `grad`, as in
    /// [`Backend::step_value`].
    fn w_trial_value(
        &self,
        out: &mut Self::Mat,
        grad: &mut Self::Mat,
        trial: WTrial<'_, Self::Mat>,
        v_lam: (&Self::Mat, &Self::Mat),
        r: Residual,
        slot: Slot,
    ) -> BResult<()>;
    /// The candidates of one hidden layer's W trial (method §6), sharing `u`, `b_old` and
    /// `bmat`: each what [`Backend::w_trial_value`] with `trials[c]` into `outs[c]` writes,
    /// bit for bit. The
    /// default runs them one by one; a backend overrides it to read operands the
    /// candidates share once.
    fn w_trial_value_ladder(
        &self,
        outs: [TrialOut<'_, Self::Mat>; LADDER],
        trials: [WTrial<'_, Self::Mat>; LADDER],
        v_lam: (&Self::Mat, &Self::Mat),
        r: Residual,
    ) -> BResult<()> {
        w_trial_value_ladder_in_turn(self, outs, trials, v_lam, r)
    }

    // ---- losses (method §1) -------------------------------------------------------------------
    /// `slot` ← `ℓ(Ŷ, Y)` (mean over columns).
    fn loss(&self, yhat: &Self::Mat, y: &Self::Mat, kind: LossKind, slot: Slot) -> BResult<()>;
    /// `g ← ∂ℓ/∂Ŷ`, and `slot` ← `ℓ(Ŷ, Y)`.
    fn loss_grad(
        &self,
        yhat: &Self::Mat,
        y: &Self::Mat,
        kind: LossKind,
        g: &mut Self::Mat,
        slot: Slot,
    ) -> BResult<()>;
    /// The output layer's W trial in one pass (method §6): `out` ← the pre-activation
    /// [`Backend::w_trial_preact`] writes, and `slot` ← its loss as [`Backend::loss`] sums it.
    /// The default runs the two in turn (the CPU twin of `shaders/loss.wgsl:w_trial_loss_*`).
    fn w_trial_loss(
        &self,
        out: &mut Self::Mat,
        w: WTrial<'_, Self::Mat>,
        y: &Self::Mat,
        kind: LossKind,
        slot: Slot,
    ) -> BResult<()> {
        let WTrial {
            u,
            b_old,
            b_new,
            bmat,
            shrink,
            t,
        } = w;
        self.w_trial_preact(out, u, b_old, b_new, bmat, shrink, t)?;
        self.loss(out, y, kind, slot)
    }
    /// The output layer's V trial in one pass (method §6): `out ← base + a·dir` (as
    /// [`Backend::axpby`] with `1, a`), and `slot` ← its loss as [`Backend::loss`] sums it.
    /// The default runs the two in turn (the CPU twin of `shaders/loss.wgsl:step_loss_*`).
    fn step_loss(
        &self,
        out: &mut Self::Mat,
        (base, a, dir): (&Self::Mat, f32, &Self::Mat),
        y: &Self::Mat,
        kind: LossKind,
        slot: Slot,
    ) -> BResult<()> {
        self.axpby(out, 1.0, base, a, dir)?;
        self.loss(out, y, kind, slot)
    }
    /// `slot` ← number of columns whose argmax differs between `yhat` and `y` (first index
    /// wins ties, both sides).
    fn count_errors(&self, yhat: &Self::Mat, y: &Self::Mat, slot: Slot) -> BResult<()>;

    // ---- reductions ---------------------------------------------------------------------------
    /// `slot` ← `⟨a, b⟩` (Frobenius).
    fn dot(&self, a: &Self::Mat, b: &Self::Mat, slot: Slot) -> BResult<()>;
    /// `slot` ← `‖a‖²`.
    fn sq_norm(&self, a: &Self::Mat, slot: Slot) -> BResult<()>;
    /// Read the given slots in one readback.
    fn read_slots(&self, slots: &[Slot]) -> BResult<Vec<f64>>;

    // ---- a ladder decided on the device (method §6, `ladder.rs`) -----------------------------
    /// Decide `test` from the slots ([`ladder::LadderTest::decide`]), write its report into
    /// `test.report..+REPORT_LEN`, and, when a candidate `c` passed, `dst ← cands[c]` for
    /// every `(dst, cands)` of `pairs` (the swap the host would make); otherwise nothing
    /// moves. GPU: in `f32`, every dispatch deciding for itself (no readback). When no
    /// candidate passed, the work recorded after this call until the next submission
    /// (readback, download, write, sync) may be skipped, its outputs unspecified: the
    /// caller redoes it after reading the report (`solver/inner/speculate.rs`).
    fn ladder_select(
        &self,
        pairs: &mut [(&mut Self::Mat, [&Self::Mat; LADDER])],
        test: &ladder::LadderTest,
    ) -> BResult<()>;
    /// Whether the solver should record whole sweeps with [`Backend::ladder_select`]
    /// instead of reading back each ladder: where a readback stalls a device queue (GPU),
    /// not where it is a memory read (CPU).
    fn prefers_recorded_sweeps(&self) -> bool {
        false
    }

    // ---- optimiser updates for the baselines (method §7) ---------------------------------------
    /// Adam step: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
    /// `w ← w − lr·m̂/(√v̂ + eps)` with bias corrections for step `step ≥ 1`.
    #[allow(clippy::too_many_arguments)]
    fn adam_update(
        &self,
        w: &mut Self::Mat,
        g: &Self::Mat,
        m: &mut Self::Mat,
        v: &mut Self::Mat,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        step: u32,
    ) -> BResult<()>;

    // ---- bookkeeping --------------------------------------------------------------------------
    /// Machine epsilon of the backend's arithmetic: Armijo tests allow a slack of a few
    /// of these relative to the values compared (reductions round; an exact step must not
    /// be rejected forever), and no more (an f64 run must stay monotone to ~1e-15).
    fn epsilon(&self) -> f64 {
        f32::EPSILON as f64
    }
    /// Wait for all submitted work (timing). CPU: no-op.
    fn sync(&self) -> BResult<()> {
        Ok(())
    }
    /// Work counters since creation.
    fn counters(&self) -> Counters {
        Counters::default()
    }
}
