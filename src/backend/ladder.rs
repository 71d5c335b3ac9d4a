//! method §6 without a readback per block: a ladder trial's Armijo decision as data
//! ([`LadderTest`]), the one function that decides it ([`LadderTest::decide`], used by the
//! host after a readback and by the CPU twin of [`Backend::ladder_select`]), and the
//! report a decision leaves in the slots.
//!
//! Why: a sweep's blocks wait for each other only through their ladders' outcomes (which
//! candidate becomes the state). When the device decides and swaps in the chosen
//! candidate itself, the host can record a whole sweep and read every block's report back
//! once at its end (`solver/inner/speculate.rs`). A ladder whose two candidates both fail
//! needs more halvings, which only the host runs: its report says so, every later block
//! of the sweep skips its swap (the state stays where that block left it), and the host
//! resumes there with sequential backtracking. The WGSL twin of `decide` is
//! `shaders/ladder.wgsl`, in `f32`.
//!
//! [`Backend::ladder_select`]: super::Backend::ladder_select

use super::{Slot, LADDER};

/// Slots per block report: the decision, the block's squared gradient mapping at its
/// first candidate, and the values of the (up to two) pieces at the accepted point.
pub const REPORT_LEN: usize = 4;
/// Report slot: the accepted candidate (`0..LADDER`), [`FAILED`] or [`SKIPPED`].
pub const REPORT_DECISION: usize = 0;
/// Report slot: `‖Δ‖²/t²` of candidate 0 (W), `N²‖G_V‖²` (V): the sweep residual's term.
pub const REPORT_MAP2: usize = 1;
/// Report slots: the pieces' values at the accepted candidate (unchanged otherwise).
pub const REPORT_VALUE: usize = 2;
/// Decision: no candidate of the ladder passed (the host backtracks further).
pub const FAILED: usize = LADDER;
/// Decision: an earlier block of the sweep failed; this one did not decide.
pub const SKIPPED: usize = LADDER + 1;

/// Order of a hidden piece's sums ([`super::Backend::constraint_residual`] and the trial
/// kernels): `‖H‖²`, `⟨Λ, H⟩`, `‖σ(U)‖²`; an output piece holds the loss in its first slot.
pub const PIECE_H2: usize = 0;
pub const PIECE_LAM_H: usize = 1;
/// Order of [`super::Backend::prox_step`]'s sums used here: the trial's `Σ‖group‖`, then
/// (after the zero-group count) `⟨∇, Δ⟩` and `‖Δ‖²`.
pub const STEP_GROUP_SUM: usize = 0;
pub const STEP_GDOT: usize = 2;
pub const STEP_D2: usize = 3;

/// Where a decision reads a piece's value at the current point.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PieceAt {
    /// The piece's sums, from this slot on (a residual pass wrote them).
    Sums(Slot),
    /// A value slot of an earlier decision's report (the trial that moved the piece).
    Value(Slot),
    /// A value the host holds.
    Host(f64),
}

/// One piece of the block's smooth value (method §3): a hidden layer's constraint part
/// `(⟨Λ,H⟩ + ρ/2‖H‖²)/N` or the output layer's loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LadderPiece {
    pub hidden: bool,
    /// The value at the current point.
    pub now: PieceAt,
    /// Each candidate's sums.
    pub cand: [Slot; LADDER],
}

/// The block-specific part of the sufficient-decrease test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum LadderModel {
    /// A W block's prox-gradient test: each candidate's `prox_step` sums, the current
    /// weights' `group_norms` sums, and `λ`.
    W {
        step: [Slot; LADDER],
        penalty: PieceAt,
        lambda: f64,
    },
    /// A V block's gradient test, with `‖G_V‖²` at this slot.
    V { grad_sq: Slot },
}

/// One ladder's Armijo test (method §6): candidates at steps `ts` (decreasing), the first
/// that passes is taken, as sequential backtracking would.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LadderTest {
    /// One piece (W block) or two (V block: its layer and the next).
    pub pieces: [Option<LadderPiece>; 2],
    pub model: LadderModel,
    pub ts: [f64; LADDER],
    /// Candidates evaluated (`1..=LADDER`; a column-grouped W block evaluates one).
    pub width: usize,
    pub rho: f64,
    /// Samples `N`.
    pub n: f64,
    /// The tests' slack relative to the values compared (`8ε` of the backend).
    pub slack: f64,
    /// The report of the sweep's previous recorded block, `None` for the first: once a
    /// block failed, the later ones skip.
    pub prev: Option<Slot>,
    /// Where this decision's report goes ([`REPORT_LEN`] slots).
    pub report: Slot,
}

/// What a decision found (its report).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Decision {
    /// The accepted candidate, [`FAILED`] or [`SKIPPED`].
    pub choice: usize,
    pub map2: f64,
    /// The pieces' values at the accepted candidate, else at the current point.
    pub values: [f64; 2],
}

impl LadderTest {
    /// Decide from the slot values `s` in `f64`, exactly as the host's backtracking loop
    /// tests a ladder.
    pub fn decide(&self, s: impl Fn(Slot) -> f64) -> Decision {
        let at = |p: PieceAt, hidden: bool| match p {
            PieceAt::Sums(slot) => self.piece(hidden, slot, &s),
            PieceAt::Value(slot) => s(slot),
            PieceAt::Host(v) => v,
        };
        let pieces = self.pieces.iter().flatten();
        let now: Vec<f64> = pieces.clone().map(|p| at(p.now, p.hidden)).collect();
        let mut values = [0.0; 2];
        values[..now.len()].copy_from_slice(&now);
        let alive = self
            .prev
            .is_none_or(|p| (s(p + REPORT_DECISION) as usize) < LADDER);
        let phi = now.iter().sum::<f64>();
        let mut out = Decision {
            choice: if alive { FAILED } else { SKIPPED },
            map2: 0.0,
            values,
        };
        for (c, &t) in self.ts.iter().enumerate().take(self.width) {
            let new: Vec<f64> = pieces
                .clone()
                .map(|p| self.piece(p.hidden, p.cand[c], &s))
                .collect();
            let phi_new = new.iter().sum::<f64>();
            let pass = match self.model {
                LadderModel::W {
                    step,
                    penalty,
                    lambda,
                } => {
                    let (gd, d2) = (s(step[c] + STEP_GDOT), s(step[c] + STEP_D2));
                    if c == 0 {
                        out.map2 = d2 / (t * t);
                    }
                    // Smooth part by the quadratic model, plus the penalty (which the prox
                    // step never worsens against the model): F(x⁺) ≤ F(x) when accepted.
                    let reg_old = lambda * at(penalty, false);
                    let reg_new = lambda * s(step[c] + STEP_GROUP_SUM);
                    let model = phi + gd + d2 / (2.0 * t);
                    let slack = self.slack * (phi.abs() + reg_old.abs());
                    phi_new <= model + slack && phi_new + reg_new <= phi + reg_old + slack
                }
                LadderModel::V { grad_sq } => {
                    let g2 = s(grad_sq);
                    out.map2 = self.n * self.n * g2;
                    phi_new <= phi - 0.5 * t * g2 + self.slack * phi.abs()
                }
            };
            if alive && pass && out.choice == FAILED {
                out.choice = c;
                out.values[..new.len()].copy_from_slice(&new);
            }
        }
        out
    }

    /// A piece's value from its sums at `slot`.
    fn piece(&self, hidden: bool, slot: Slot, s: &impl Fn(Slot) -> f64) -> f64 {
        if hidden {
            (s(slot + PIECE_LAM_H) + 0.5 * self.rho * s(slot + PIECE_H2)) / self.n
        } else {
            s(slot)
        }
    }

    /// Every slot [`LadderTest::decide`] reads (for a readback or a range check).
    pub fn reads(&self) -> Vec<Slot> {
        let mut r = Vec::new();
        let sums = |r: &mut Vec<Slot>, hidden: bool, slot: Slot| {
            if hidden {
                r.extend([slot + PIECE_H2, slot + PIECE_LAM_H]);
            } else {
                r.push(slot);
            }
        };
        let at = |r: &mut Vec<Slot>, p: PieceAt, hidden: bool| match p {
            PieceAt::Sums(slot) => sums(r, hidden, slot),
            PieceAt::Value(slot) => r.push(slot),
            PieceAt::Host(_) => {}
        };
        for p in self.pieces.iter().flatten() {
            at(&mut r, p.now, p.hidden);
            for &c in &p.cand[..self.width] {
                sums(&mut r, p.hidden, c);
            }
        }
        match self.model {
            LadderModel::W { step, penalty, .. } => {
                at(&mut r, penalty, false);
                for s in &step[..self.width] {
                    r.extend([s + STEP_GROUP_SUM, s + STEP_GDOT, s + STEP_D2]);
                }
            }
            LadderModel::V { grad_sq } => r.push(grad_sq),
        }
        if let Some(p) = self.prev {
            r.push(p + REPORT_DECISION);
        }
        r
    }
}
