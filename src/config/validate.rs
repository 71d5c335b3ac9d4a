//! Value ranges and cross-field rules that the types cannot express. Each failure names
//! its dotted field (`train.lambda: must be finite and ≥ 0, got -1`); loading then says
//! whether the value came from the file or from `--set`.

use super::{Config, ConfigError, DataSource, Task, MAX_HIDDEN};
use crate::backend::LossKind;

/// The allowed range of a setting, declared beside its field (`section!`).
#[derive(Clone, Copy)]
pub(super) enum Range {
    Positive,
    NonNegative,
    /// `(0, 1)`.
    Open,
    /// `[0, 1)`.
    HalfOpen,
    /// A budget: positive, `inf` meaning none.
    Budget,
    /// A count: at least 1.
    Count,
}

pub(super) fn in_range(field: &str, v: f64, range: Range) -> Result<(), ConfigError> {
    let (ok, want) = match range {
        Range::Positive => (v.is_finite() && v > 0.0, "positive and finite"),
        Range::NonNegative => (v.is_finite() && v >= 0.0, "finite and ≥ 0"),
        Range::Open => (v > 0.0 && v < 1.0, "in (0, 1)"),
        Range::HalfOpen => ((0.0..1.0).contains(&v), "in [0, 1)"),
        Range::Budget => (v > 0.0 && !v.is_nan(), "positive (or inf for no limit)"),
        Range::Count => (v >= 1.0, "at least 1"),
    };
    ensure!(ok, "{field}" => "must be {want}, got {v}");
    Ok(())
}

impl Config {
    /// Check every value range and cross-field rule; the first failure names its field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_model()?;
        self.validate_data()?;
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

    /// The rules of `[data]` and of each source.
    fn validate_data(&self) -> Result<(), ConfigError> {
        let task = self.data.task;
        // Optional test files come in pairs; the missing one is named.
        let (a, b, has_a, has_b) = match &self.data.source {
            DataSource::Npy { test_x, test_y, .. } => (
                "data.test_x",
                "data.test_y",
                test_x.is_some(),
                test_y.is_some(),
            ),
            DataSource::Idx {
                test_images: ti,
                test_labels: tl,
                ..
            } => (
                "data.test_images",
                "data.test_labels",
                ti.is_some(),
                tl.is_some(),
            ),
            _ => ("", "", false, false),
        };
        let missing = if has_a { b } else { a };
        ensure!(has_a == has_b, "{missing}" => "{a} and {b} must be given together");
        match &self.data.source {
            DataSource::Csv { target, .. } => {
                let n = target.len();
                let named = n > 0 && target.iter().all(|t| !t.trim().is_empty());
                ensure!(named, "data.target" => "needs at least one non-empty column name");
                let ok = task != Task::Classification || n == 1;
                ensure!(ok, "data.target" => "classification needs exactly one label column, got {n}");
            }
            DataSource::Teacher(t) => {
                let (sizes, zero_rows) = (&t.sizes, &t.zero_rows);
                let ok = sizes.len() >= 2 && !sizes.contains(&0);
                ensure!(ok, "data.teacher.sizes" => "needs at least two positive layer sizes (input first), got {sizes:?}");
                let (want, got) = (sizes.len() - 2, zero_rows.len());
                ensure!(want == got, "data.teacher.zero_rows" => "needs one count per hidden teacher layer ({want}), got {got}");
                for (i, (&z, &w)) in zero_rows.iter().zip(&sizes[1..]).enumerate() {
                    ensure!(z < w, "data.teacher.zero_rows[{i}]" => "must be below the layer width {w}, got {z}");
                }
                ensure!(t.n_train >= 1, "data.teacher.n_train" => "must be at least 1, got 0");
                // Refused before generating, with the estimate, rather than aborted by the
                // allocator halfway through.
                let need = crate::data::teacher_memory_estimate(t);
                let avail = crate::data::available_memory();
                let limit = avail.map_or(u128::MAX, u128::from);
                let (n_train, n_test) = (t.n_train, t.n_test);
                ensure!(need <= limit, "data.teacher.n_train" =>
                    "generating {n_train} + {n_test} samples needs about {} of memory, more than the {} available; use fewer samples",
                    crate::data::human_bytes(need),
                    crate::data::human_bytes(limit));
                t.check_ranges("data.teacher")?;
                let ok = task == Task::Regression;
                ensure!(ok, "data.task" => "the teacher problem is a regression task");
            }
            _ => {}
        }
        let d = &self.data;
        d.check_ranges("data")?;
        if let Some(k) = d.classes {
            ensure!(k >= 2, "data.classes" => "must be at least 2, got {k}");
            let ok = task == Task::Classification;
            ensure!(ok, "data.classes" => "only meaningful for classification");
        }
        Ok(())
    }
}
