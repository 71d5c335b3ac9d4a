//! The data types handed to the rest of the program: datasets (one sample per column),
//! the preprocessing saved with a model, the loaded train/test pair, and what `eval`
//! needs to know about a model to read data for it.

use super::Task;
use ndarray::{Array2, Axis};

/// Matrices hold one sample per COLUMN (the method's notation).
#[derive(Clone, Debug, PartialEq)]
pub struct Dataset {
    /// `d × N` features.
    pub x: Array2<f32>,
    /// `m × N`: one-hot for classification, targets for regression.
    pub y: Array2<f32>,
    /// Class index per sample (classification).
    pub labels: Option<Vec<u32>>,
    pub task: Task,
    pub feature_names: Vec<String>,
    /// Classification: one per output row, e.g. "0".."9".
    pub class_names: Vec<String>,
    /// Regression targets standardised per output: the std each output was divided by
    /// (`y` is then in standard units). Errors are reported multiplied back into the
    /// target's own units, so they read as the data's MSE whatever the scaling.
    pub target_std: Option<Vec<f32>>,
}

impl Dataset {
    /// The data set reading only the input features `inputs` (in that order).
    pub fn with_inputs(&self, inputs: &[usize]) -> Dataset {
        let mut out = self.clone();
        if inputs.len() != self.d() {
            out.x = self.x.select(Axis(0), inputs);
            out.feature_names = inputs
                .iter()
                .filter_map(|&i| self.feature_names.get(i).cloned())
                .collect();
        }
        out
    }

    /// Number of samples (columns).
    pub fn n(&self) -> usize {
        self.x.ncols()
    }
    /// Number of features (rows of `x`).
    pub fn d(&self) -> usize {
        self.x.nrows()
    }
    /// Number of outputs (rows of `y`).
    pub fn m(&self) -> usize {
        self.y.nrows()
    }
    /// The samples at `cols`, in that order (used for splits and minibatches).
    pub fn select(&self, cols: &[usize]) -> Dataset {
        Dataset {
            x: self.x.select(Axis(1), cols),
            y: self.y.select(Axis(1), cols),
            labels: self
                .labels
                .as_ref()
                .map(|l| cols.iter().map(|&i| l[i]).collect()),
            task: self.task,
            feature_names: self.feature_names.clone(),
            class_names: self.class_names.clone(),
            target_std: self.target_std.clone(),
        }
    }
}

/// What was done to raw features (and regression targets), saved with the model so
/// `eval` repeats it and a prediction can be returned in the target's units.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// Raw features are divided by this first.
    #[serde(default = "one")]
    pub feature_scale: f64,
    /// Per-feature mean of the (scaled) training features, subtracted when standardising.
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    /// Per-feature std of the (scaled) training features (0 replaced by 1).
    #[serde(default)]
    pub std: Option<Vec<f32>>,
    /// Regression: per-output mean of the training targets, subtracted before training.
    #[serde(default)]
    pub target_mean: Option<Vec<f32>>,
    /// Regression: per-output std of the training targets (0 replaced by 1); the network
    /// predicts `(y − target_mean) / target_std`.
    #[serde(default)]
    pub target_std: Option<Vec<f32>>,
}

fn one() -> f64 {
    1.0
}

/// The identity: raw features in, raw targets out.
impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            feature_scale: 1.0,
            mean: None,
            std: None,
            target_mean: None,
            target_std: None,
        }
    }
}

/// Population mean and std per row of `a` (`k × N`), std 0 (a constant row) replaced by 1
/// so the row passes through centred.
fn row_stats(a: &Array2<f32>) -> (Vec<f32>, Vec<f32>) {
    let n = a.ncols().max(1) as f64;
    let mut mean = Vec::with_capacity(a.nrows());
    let mut std = Vec::with_capacity(a.nrows());
    for row in a.rows() {
        let mu = row.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = row.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n;
        let sd = var.sqrt() as f32;
        mean.push(mu as f32);
        std.push(if sd > 0.0 && sd.is_finite() { sd } else { 1.0 });
    }
    (mean, std)
}

/// `(v − mean) / std` per row, in place.
fn standardise_rows(a: &mut Array2<f32>, mean: &[f32], std: &[f32]) {
    for ((mut row, &mu), &sd) in a.rows_mut().into_iter().zip(mean).zip(std) {
        let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
        row.mapv_inplace(|v| (v - mu) / sd);
    }
}

impl Preprocess {
    /// Apply to raw `d × N` features in place: divide by `feature_scale`, then standardise
    /// with the saved statistics when present. A length mismatch leaves rows beyond the
    /// statistics untouched (callers check `d` first, [`Preprocess::check`]).
    pub fn apply(&self, x: &mut Array2<f32>) {
        if self.feature_scale != 1.0 {
            let s = self.feature_scale as f32;
            x.mapv_inplace(|v| v / s);
        }
        if let (Some(mean), Some(std)) = (&self.mean, &self.std) {
            standardise_rows(x, mean, std);
        }
    }

    /// The preprocessing of the input features `inputs` only (indices, in order): what a
    /// compact network that reads those features needs (method §9).
    pub fn select_features(&self, inputs: &[usize]) -> Preprocess {
        let cut = |v: &Option<Vec<f32>>| {
            v.as_ref()
                .map(|v| inputs.iter().filter_map(|&i| v.get(i).copied()).collect())
        };
        Preprocess {
            mean: cut(&self.mean),
            std: cut(&self.std),
            ..self.clone()
        }
    }

    /// Raw `m × N` regression targets → the standard units the network was trained in.
    pub fn apply_targets(&self, y: &mut Array2<f32>) {
        if let (Some(mean), Some(std)) = (&self.target_mean, &self.target_std) {
            standardise_rows(y, mean, std);
        }
    }

    /// The network's `m × N` outputs → the target's own units (`ŷ·std + mean`), the
    /// inverse of [`Preprocess::apply_targets`].
    pub fn restore_targets(&self, y: &mut Array2<f32>) {
        if let (Some(mean), Some(std)) = (&self.target_mean, &self.target_std) {
            for ((mut row, &mu), &sd) in y.rows_mut().into_iter().zip(mean).zip(std) {
                let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
                row.mapv_inplace(|v| v * sd + mu);
            }
        }
    }

    /// Statistics of `x` (`d × N`, already scaled): population mean and std per feature,
    /// with std 0 (a constant feature) replaced by 1 so the feature passes through centred.
    pub(super) fn standardizer(feature_scale: f64, x: &Array2<f32>) -> Preprocess {
        let (mean, std) = row_stats(x);
        Preprocess {
            feature_scale,
            mean: Some(mean),
            std: Some(std),
            ..Default::default()
        }
    }

    /// Per-output statistics of `m × N` training targets, as `(target_mean, target_std)`.
    pub(super) fn target_stats(y: &Array2<f32>) -> (Vec<f32>, Vec<f32>) {
        row_stats(y)
    }

    /// Whether this preprocessing can be applied to `d` inputs and `m` outputs: the scale
    /// positive and finite, statistics finite, stds positive, lengths `d` and `m`, means
    /// and stds given together. A failure names the field (`std[3]`) and what is wrong,
    /// so a damaged `model.json` is refused instead of producing NaN losses.
    pub fn check(&self, d: usize, m: usize) -> Result<(), (String, String)> {
        let fs = self.feature_scale;
        if !(fs.is_finite() && fs > 0.0) {
            return Err((
                "feature_scale".into(),
                format!("must be positive and finite, got {fs}"),
            ));
        }
        let pairs = [
            ("mean", &self.mean, "std", &self.std, d, "input features"),
            (
                "target_mean",
                &self.target_mean,
                "target_std",
                &self.target_std,
                m,
                "outputs",
            ),
        ];
        for (mean_name, mean, std_name, std, len, what) in pairs {
            match (mean, std) {
                (None, None) => {}
                (Some(_), None) => {
                    return Err((
                        std_name.into(),
                        format!("missing while {mean_name} is given"),
                    ))
                }
                (None, Some(_)) => {
                    return Err((
                        mean_name.into(),
                        format!("missing while {std_name} is given"),
                    ))
                }
                (Some(mu), Some(sd)) => {
                    for (name, v) in [(mean_name, mu), (std_name, sd)] {
                        if v.len() != len {
                            return Err((
                                name.into(),
                                format!("has {} entries, the model has {len} {what}", v.len()),
                            ));
                        }
                    }
                    if let Some(i) = mu.iter().position(|v| !v.is_finite()) {
                        return Err((
                            format!("{mean_name}[{i}]"),
                            format!("is {}, not finite", mu[i]),
                        ));
                    }
                    if let Some(i) = sd.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
                        return Err((
                            format!("{std_name}[{i}]"),
                            format!("is {}, must be positive and finite", sd[i]),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Train and test sets after split and preprocessing.
#[derive(Clone, Debug)]
pub struct LoadedData {
    pub train: Dataset,
    /// May have 0 columns (`test_fraction = 0` and no test file).
    pub test: Dataset,
    pub preprocess: Preprocess,
    /// One line for logs: source, sizes, split and the preprocessing that ran.
    pub description: String,
    /// Warnings for the user (e.g. a class with a single sample), one line each.
    pub warnings: Vec<String>,
}

/// What `eval` needs to know about the model to read data for it.
#[derive(Clone, Debug)]
pub struct EvalSpec {
    pub task: Task,
    /// CSV target column(s); empty means `label` for classification.
    pub target: Vec<String>,
    pub n_inputs: usize,
    pub n_outputs: usize,
    pub class_names: Vec<String>,
    /// The model's input features by name, in its order: CSV columns are matched by
    /// these (reordered columns give the same result, extra ones are ignored). Empty: by
    /// position (models saved before names were stored).
    pub feature_names: Vec<String>,
    pub preprocess: Preprocess,
}
