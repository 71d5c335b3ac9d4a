//! Value ranges and cross-field rules that the types cannot express. Each failure names
//! its dotted field (`train.lambda: must be finite and ≥ 0, got -1`); loading then says
//! whether the value came from the file or from `--set`.

use super::{Config, ConfigError, Task, MAX_HIDDEN};
use crate::backend::LossKind;
use crate::settings::{in_range, Range};

impl Config {
    /// Check every value range and cross-field rule; the first failure names its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_model()?;
        self.data.validate()?;
        let (m, t, a, c) = (&self.model, &self.train, &self.alm, &self.compare);
        t.check_ranges("train")?;
        a.check_ranges("alm")?;
        self.sgd.check_ranges("sgd")?;
        self.adam.check_ranges("adam")?;
        self.gd.check_ranges("gd")?;
        self.warm.check_ranges("warm")?;
        c.check_ranges("compare")?;
        let cs = t.checkpoint_seconds;
        ensure!(cs >= 0.0, "train.checkpoint_seconds" => "must be ≥ 0 (or inf for phase ends only), got {cs}");
        let (g, e0, emin) = (a.gamma, a.eps0, a.eps_min);
        ensure!(g.is_finite() && g > 1.0, "alm.gamma" => "must be greater than 1, got {g}");
        ensure!(emin <= e0, "alm.eps_min" => "must not exceed alm.eps0 = {e0}, got {emin}");
        ensure!(!c.methods.is_empty(), "compare.methods" => "needs at least one method");
        for (field, v) in [
            ("compare.pass_checkpoints", &c.pass_checkpoints),
            ("compare.time_checkpoints", &c.time_checkpoints),
        ] {
            for (i, &x) in v.iter().enumerate() {
                in_range(&format!("{field}[{i}]"), x, Range::Positive)?;
                let prev = if i > 0 { v[i - 1] } else { 0.0 };
                ensure!(x > prev, "{field}[{i}]" => "must be increasing, got {x} after {prev}");
            }
        }
        let ok = m.loss != LossKind::SoftmaxCe || self.data.task == Task::Classification;
        ensure!(ok, "model.loss" => "softmax-ce needs a classification task (data.task = \"classification\")");
        let ok = !a.exact_blocks || m.loss == LossKind::Squared;
        ensure!(ok, "alm.exact_blocks" => "exact blocks need model.loss = \"squared\"");
        self.path.validate()
    }

    /// The model's rules (checked first, even when `[data]` is wrong).
    pub(super) fn validate_model(&self) -> Result<(), ConfigError> {
        let m = &self.model;
        let n = m.hidden.len();
        ensure!(n > 0, "model.hidden" => "needs at least one hidden layer, got []");
        // The backends' scalar slot layout (backend::NUM_SLOTS) is sized for MAX_HIDDEN.
        ensure!(n <= MAX_HIDDEN, "model.hidden" => "at most {MAX_HIDDEN} hidden layers are supported, got {n}");
        for (i, &h) in m.hidden.iter().enumerate() {
            ensure!(h >= 1, "model.hidden[{i}]" => "layer width must be at least 1, got {h}");
        }
        m.check_ranges("model")
    }
}
