//! The data types handed to the rest of the program: datasets (one sample per column),
//! the preprocessing saved with a model, the loaded train/test pair, and what `eval`
//! needs to know about a model to read data for it.

use crate::config::Task;
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
}

impl Dataset {
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
        }
    }
}

/// What was done to raw features, saved with the model so `eval` repeats it.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Preprocess {
    /// Raw features are divided by this first.
    pub feature_scale: f64,
    /// Per-feature mean of the (scaled) training features, subtracted when standardising.
    pub mean: Option<Vec<f32>>,
    /// Per-feature std of the (scaled) training features (0 replaced by 1).
    pub std: Option<Vec<f32>>,
}

impl Default for Preprocess {
    fn default() -> Self {
        Preprocess {
            feature_scale: 1.0,
            mean: None,
            std: None,
        }
    }
}

impl Preprocess {
    /// Apply to raw `d × N` features in place: divide by `feature_scale`, then standardise
    /// with the saved statistics when present. A length mismatch leaves rows beyond the
    /// statistics untouched (callers check `d` first).
    pub fn apply(&self, x: &mut Array2<f32>) {
        if self.feature_scale != 1.0 {
            let s = self.feature_scale as f32;
            x.mapv_inplace(|v| v / s);
        }
        if let (Some(mean), Some(std)) = (&self.mean, &self.std) {
            for ((mut row, &mu), &sd) in x.rows_mut().into_iter().zip(mean).zip(std) {
                let sd = if sd > 0.0 && sd.is_finite() { sd } else { 1.0 };
                row.mapv_inplace(|v| (v - mu) / sd);
            }
        }
    }

    /// Statistics of `x` (`d × N`, already scaled): population mean and std per feature,
    /// with std 0 (a constant feature) replaced by 1 so the feature passes through centred.
    pub(super) fn standardizer(feature_scale: f64, x: &Array2<f32>) -> Preprocess {
        let n = x.ncols().max(1) as f64;
        let mut mean = Vec::with_capacity(x.nrows());
        let mut std = Vec::with_capacity(x.nrows());
        for row in x.rows() {
            let mu = row.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = row.iter().map(|&v| (v as f64 - mu).powi(2)).sum::<f64>() / n;
            mean.push(mu as f32);
            std.push(if var > 0.0 { var.sqrt() as f32 } else { 1.0 });
        }
        Preprocess {
            feature_scale,
            mean: Some(mean),
            std: Some(std),
        }
    }
}

/// Train and test sets after split and preprocessing.
#[derive(Clone, Debug)]
pub struct LoadedData {
    pub train: Dataset,
    /// May have 0 columns (`test_fraction = 0` and no test file).
    pub test: Dataset,
    pub preprocess: Preprocess,
    /// One line for logs: source, sizes, split.
    pub description: String,
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
    pub preprocess: Preprocess,
}
