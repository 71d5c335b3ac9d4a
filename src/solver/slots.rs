//! The layout of the backend's scalar register file (method §5b: reductions write *slots*,
//! the host reads a few of them in one readback). Every slot the measures, the ALM, the
//! inner solver and the baselines write is assigned here, as a named range sized for the
//! largest network a configuration admits ([`MAX_LAYERS`]); the ranges are laid end to
//! end, and a compile-time check proves them pairwise disjoint and inside
//! [`NUM_SLOTS`]. The one range written by several users on purpose is [`DISCARD`].
//!
//! [`Readback`] asks for slots by these names and returns their values by the same names,
//! so no caller indexes a readback by position.

use crate::backend::ladder::{self, REPORT_LEN};
use crate::backend::BackendError;
use crate::backend::{BResult, Backend, Slot, LADDER, NUM_SLOTS};
use crate::config::MAX_HIDDEN;

/// Most weight layers a network can have: the hidden layers plus the output layer.
pub const MAX_LAYERS: usize = MAX_HIDDEN + 1;

/// `per` consecutive slots for each of `count` units (layers, or one block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub start: Slot,
    /// Slots per unit: as many as the backend operation that fills one unit writes.
    pub per: usize,
    /// Units the range holds (layers, or 1).
    pub count: usize,
}

impl Range {
    /// The range that follows `prev`.
    const fn after(prev: Range, per: usize, count: usize) -> Range {
        Range {
            start: prev.end(),
            per,
            count,
        }
    }

    /// One past the last slot.
    pub const fn end(self) -> Slot {
        self.start + self.per * self.count
    }

    /// The first slot of unit `i` (layer `i`).
    pub const fn at(self, i: usize) -> Slot {
        assert!(i < self.count, "slot range: unit out of range");
        self.start + i * self.per
    }

    /// Slot `k` of unit `i`.
    pub const fn part(self, i: usize, k: usize) -> Slot {
        assert!(k < self.per, "slot range: part out of range");
        self.at(i) + k
    }

    /// The first slot of a one-unit range.
    pub const fn slot(self) -> Slot {
        self.at(0)
    }
}

// ---- what the backend writes into one unit -----------------------------------------------

/// Order of the three sums of `constraint_residual` / `constraint_value` (method §3):
/// `‖H‖²`, `⟨Λ, H⟩`, `‖σ(U)‖²`. For the output layer a "piece" unit holds the loss
/// in its first slot instead ([`LOSS`]).
pub const H2: usize = ladder::PIECE_H2;
pub const LAM_H: usize = ladder::PIECE_LAM_H;
pub const SIGMA2: usize = 2;
/// The loss in the first slot of an output layer's piece unit.
pub const LOSS: usize = 0;
/// Order of the two sums of `group_prox` / `group_norms`: `Σ‖group‖₂`, zero groups.
pub const GROUP_SUM: usize = 0;
pub const GROUP_ZEROS: usize = 1;
/// Order of the two sums of `step_diff`: `⟨∇, Δ⟩`, `‖Δ‖²`.
pub const GDOT: usize = 0;
pub const D2: usize = 1;
/// Order of the four sums of `prox_step`: `group_prox`'s two ([`GROUP_SUM`],
/// [`GROUP_ZEROS`]), then `⟨∇, Δ⟩`, `‖Δ‖²` over the block's `W` and `b`.
pub const STEP_GDOT: usize = ladder::STEP_GDOT;
pub const STEP_D2: usize = ladder::STEP_D2;

// ---- the layout ------------------------------------------------------------------------------

const ORIGIN: Range = Range {
    start: 0,
    per: 0,
    count: 0,
};

// Shared sink.
/// Sums nobody reads: the group prox inside prox-gradient mappings and prox-SGD's /
/// prox-Adam's prox steps, the loss of the adjoint-multiplier setup and of prox-SGD's backprop.
/// Shared on purpose: it is only ever written, so its writers cannot disturb one another.
pub const DISCARD: Range = Range::after(ORIGIN, 2, 1);

// The measures of method §5 (`measures.rs`, one readback per evaluation).
/// Training loss (backprop's loss slot).
pub const TRAIN_LOSS: Range = Range::after(DISCARD, 1, 1);
/// Misclassified training columns.
pub const TRAIN_ERRORS: Range = Range::after(TRAIN_LOSS, 1, 1);
pub const TEST_LOSS: Range = Range::after(TRAIN_ERRORS, 1, 1);
pub const TEST_ERRORS: Range = Range::after(TEST_LOSS, 1, 1);
/// Per layer: `group_norms` of `W_l` (penalty and zero groups).
pub const PENALTY: Range = Range::after(TEST_ERRORS, 2, MAX_LAYERS);
/// Per layer: `‖W − prox_λ(W − ∇W)‖²` of `cert`.
pub const CERT_W: Range = Range::after(PENALTY, 1, MAX_LAYERS);
/// Per layer: `‖∇b‖²` of `cert`.
pub const CERT_B: Range = Range::after(CERT_W, 1, MAX_LAYERS);

// The KKT evaluation of the ALM (`alm::kkt`, one readback).
/// Per layer: the piece sums at the point (hidden: constraint sums, output: loss).
pub const KKT_PIECE: Range = Range::after(CERT_B, 3, MAX_LAYERS);
/// Per layer: `‖W − prox_λ(W − ∇_W L)‖²`.
pub const KKT_MAP_W: Range = Range::after(KKT_PIECE, 1, MAX_LAYERS);
/// Per layer: `‖∇_b L‖²`.
pub const KKT_MAP_B: Range = Range::after(KKT_MAP_W, 1, MAX_LAYERS);
/// Per hidden layer: `‖∇_V L‖²`.
pub const KKT_GRAD_V: Range = Range::after(KKT_MAP_B, 1, MAX_HIDDEN);

// The inner solver (`inner/`).
/// Per layer: the piece sums of layer `l` at the current point (the ALM's `‖H‖`, the
/// V block's current value, [`crate::solver::inner::Lifted::lagrangian`]).
pub const RES: Range = Range::after(KKT_GRAD_V, 3, MAX_LAYERS);
/// Per layer: the penalty of `W_l` inside `Lifted::lagrangian`.
pub const LAGRANGIAN_PENALTY: Range = Range::after(RES, 2, MAX_LAYERS);
/// W block: the piece sums at the current point.
pub const W_PHI: Range = Range::after(LAGRANGIAN_PENALTY, 3, 1);
/// W block: `group_norms` of the current `W_l`.
pub const W_PENALTY: Range = Range::after(W_PHI, 2, 1);
/// Sets of ladder-candidate slots in the trial ranges below: a block whose step is far off
/// records this many ladders before one readback (`inner/blocks.rs`); a ladder of set `j`
/// writes candidate `c`'s sums at unit `j·LADDER + c` ([`cand_slots`]).
pub const TRIAL_SETS: usize = 4;
/// W block trial, per ladder candidate: the `prox_step` sums (the trial's penalty and
/// its step's model terms).
pub const W_TRIAL_STEP: Range = Range::after(W_PENALTY, 4, LADDER * TRIAL_SETS);
/// W block trial, per candidate: the piece sums at the trial pre-activation.
pub const W_TRIAL_PHI: Range = Range::after(W_TRIAL_STEP, 3, LADDER * TRIAL_SETS);
/// V block: the current piece sums of the next layer.
pub const V_PHI_NEXT: Range = Range::after(W_TRIAL_PHI, 3, 1);
/// V block trial, per ladder candidate: the piece sums of layer `l` and of the next
/// layer at the trial.
/// Each unit holds a fourth slot: in trial set 0's candidate 0, `‖G_V‖²` ([`V_GRAD_SQ`]),
/// next to that candidate's sums so that a backend may sum it in the same pass.
pub const V_TRIAL_PHI: Range = Range::after(V_PHI_NEXT, 4, LADDER * TRIAL_SETS);
/// V block: `‖G_V‖²` (written with the block's first ladder).
pub const V_GRAD_SQ: Slot = V_TRIAL_PHI.part(0, 3);
pub const V_TRIAL_PHI_NEXT: Range = Range::after(V_TRIAL_PHI, 3, LADDER * TRIAL_SETS);

/// The first slots of a ladder's candidates in trial set `set` of `range`.
pub const fn cand_slots(range: Range, set: usize) -> [Slot; LADDER] {
    let mut s = [0; LADDER];
    let mut c = 0;
    while c < LADDER {
        s[c] = range.at(set * LADDER + c);
        c += 1;
    }
    s
}

// The Armijo proximal-gradient step on (P0) (`prox_grad.rs`, one readback per trial),
// taken by prox-GD, prox-APG and the ALM's P0 steps.
/// Loss at the step's start point (backprop's loss slot).
pub const GD_LOSS: Range = Range::after(V_TRIAL_PHI_NEXT, 1, 1);
/// Loss at the trial point.
pub const GD_TRIAL_LOSS: Range = Range::after(GD_LOSS, 1, 1);
/// Per layer: the trial's `step_diff` sums of `W` and of `b`.
pub const GD_STEP_W: Range = Range::after(GD_TRIAL_LOSS, 2, MAX_LAYERS);
pub const GD_STEP_B: Range = Range::after(GD_STEP_W, 2, MAX_LAYERS);
/// Per layer: the sums of the trial's group prox (its penalty; zero groups unread).
pub const GD_TRIAL_PENALTY: Range = Range::after(GD_STEP_B, 2, MAX_LAYERS);

// A sweep recorded whole (`inner/speculate.rs`, one readback per sweep).
/// Per block (`W_l` at `2l`, `V_l` at `2l + 1`): the report of its device-decided ladder.
pub const REPORT: Range = Range::after(GD_TRIAL_PENALTY, REPORT_LEN, 2 * MAX_LAYERS);

/// Every range above; the compile-time check below runs over this list.
const ALL: [Range; 27] = [
    DISCARD,
    TRAIN_LOSS,
    TRAIN_ERRORS,
    TEST_LOSS,
    TEST_ERRORS,
    PENALTY,
    CERT_W,
    CERT_B,
    KKT_PIECE,
    KKT_MAP_W,
    KKT_MAP_B,
    KKT_GRAD_V,
    RES,
    LAGRANGIAN_PENALTY,
    W_PHI,
    W_PENALTY,
    W_TRIAL_STEP,
    W_TRIAL_PHI,
    V_PHI_NEXT,
    V_TRIAL_PHI,
    V_TRIAL_PHI_NEXT,
    GD_LOSS,
    GD_TRIAL_LOSS,
    GD_STEP_W,
    GD_STEP_B,
    GD_TRIAL_PENALTY,
    REPORT,
];

/// True when no two ranges share a slot and all end at or before `limit`.
const fn disjoint_within(ranges: &[Range], limit: usize) -> bool {
    let mut i = 0;
    while i < ranges.len() {
        let a = ranges[i];
        if a.end() > limit || a.per * a.count == 0 {
            return false;
        }
        let mut j = i + 1;
        while j < ranges.len() {
            let b = ranges[j];
            if a.start < b.end() && b.start < a.end() {
                return false;
            }
            j += 1;
        }
        i += 1;
    }
    true
}

const _: () = assert!(
    disjoint_within(&ALL, NUM_SLOTS),
    "scalar slot ranges overlap or exceed NUM_SLOTS"
);

/// Refuse a network with more layers than the layout holds (a model file may name any
/// number; the configuration admits at most [`MAX_HIDDEN`] hidden layers).
pub fn check_layers(layers: usize) -> BResult<()> {
    if layers <= MAX_LAYERS {
        Ok(())
    } else {
        Err(BackendError::Shape {
            op: "scalar slots".into(),
            msg: format!(
                "a network of {layers} weight layers; the slot layout holds at most {MAX_LAYERS}"
            ),
        })
    }
}

// ---- readback by name --------------------------------------------------------------------------

/// The slots one readback asks for.
#[derive(Clone, Debug, Default)]
pub struct Readback {
    slots: Vec<Slot>,
}

impl Readback {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ask for `slot`.
    pub fn slot(&mut self, slot: Slot) -> &mut Self {
        self.slots.push(slot);
        self
    }

    /// Ask for every slot of unit `i` of `range`.
    pub fn unit(&mut self, range: Range, i: usize) -> &mut Self {
        let first = range.at(i);
        self.slots.extend(first..first + range.per);
        self
    }

    /// Read every slot asked for, in one readback.
    pub fn read<B: Backend>(&self, be: &B) -> BResult<Values> {
        Ok(Values {
            vals: be.read_slots(&self.slots)?,
            slots: self.slots.clone(),
        })
    }
}

/// The values of one [`Readback`], looked up by slot.
#[derive(Clone, Debug)]
pub struct Values {
    slots: Vec<Slot>,
    vals: Vec<f64>,
}

impl Values {
    /// The value read from `slot`. Asking for a slot the readback did not request is a
    /// bug in the caller (never a consequence of input), hence the panic.
    pub fn get(&self, slot: Slot) -> f64 {
        let i = self
            .slots
            .iter()
            .position(|&s| s == slot)
            .unwrap_or_else(|| panic!("slot {slot} was not part of this readback"));
        self.vals[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_fits_and_ranges_are_disjoint() {
        assert!(disjoint_within(&ALL, NUM_SLOTS));
        let last = ALL.iter().map(|r| r.end()).max().unwrap();
        assert_eq!(last, REPORT.end(), "ALL lists every range");
        let total: usize = ALL.iter().map(|r| r.per * r.count).sum();
        assert_eq!(total, last, "the ranges tile 0..{last} without gaps");
    }

    #[test]
    fn overlap_is_detected() {
        let a = Range {
            start: 0,
            per: 3,
            count: 2,
        };
        let b = Range {
            start: 5,
            per: 1,
            count: 1,
        };
        assert!(!disjoint_within(&[a, b], NUM_SLOTS));
        assert!(disjoint_within(&[a, Range::after(a, 1, 1)], NUM_SLOTS));
        assert!(!disjoint_within(&[a], 5));
    }

    #[test]
    fn readback_returns_values_by_slot() {
        let be = crate::backend::cpu::CpuBackend::<f64>::new();
        let m = be.upload(ndarray::array![[3.0f32]].view()).unwrap();
        be.sq_norm(&m, CERT_B.at(2)).unwrap();
        be.dot(&m, &m, TRAIN_LOSS.slot()).unwrap();
        let v = Readback::new()
            .slot(TRAIN_LOSS.slot())
            .slot(CERT_B.at(2))
            .read(&be)
            .unwrap();
        assert_eq!(v.get(CERT_B.at(2)), 9.0);
        assert_eq!(v.get(TRAIN_LOSS.slot()), 9.0);
    }
}
