//! Run configuration: TOML → [`RawConfig`] (unchecked, every field optional) → [`Config`]
//! (validated, defaults filled in). Every validation error names the offending field
//! (`alm.rho0`, `data.test_fraction`, …) and, for a file, the file.
//!
//! The checked structs below are what the rest of the program reads; their defaults are
//! the measured defaults of SPEC §6 and `shared/reference/prototype-results.md`.

use crate::backend::{Axis, LossKind};
use std::path::PathBuf;

// ---------------------------------------------------------------------------------------
// Checked parameters
// ---------------------------------------------------------------------------------------

/// Classification (one-hot targets, error = 1 − accuracy) or regression (error = MSE).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    Classification,
    Regression,
}

/// Where the data comes from (SPEC-independent; issue 2 "Data").
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub enum DataSource {
    /// CSV with a header row; `target` names the label/target column(s).
    Csv { path: PathBuf, target: Vec<String>, test_path: Option<PathBuf> },
    /// NPY features (`N×d`, one sample per row as NumPy stores it) and targets (`N` or `N×m`).
    Npy { x: PathBuf, y: PathBuf, test_x: Option<PathBuf>, test_y: Option<PathBuf> },
    /// MNIST-format IDX (optionally gzipped) images + labels; optional separate test files.
    Idx {
        images: PathBuf,
        labels: PathBuf,
        test_images: Option<PathBuf>,
        test_labels: Option<PathBuf>,
    },
    /// The synthetic teacher of `prototype-results.md`.
    Teacher(TeacherParams),
}

/// The synthetic teacher problem (regression).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TeacherParams {
    /// Teacher layer sizes, input first (`[50, 40, 20, 1]`).
    pub sizes: Vec<usize>,
    /// Zero rows per hidden teacher layer (`[10, 5]`).
    pub zero_rows: Vec<usize>,
    pub n_train: usize,
    pub n_test: usize,
    /// Std of the Gaussian noise added to the standardised targets.
    pub noise: f64,
    /// Std of the teacher biases (`0.1`).
    pub bias_std: f64,
    pub seed: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DataConfig {
    pub source: DataSource,
    pub task: Task,
    /// Fraction held out for test when no separate test set is given (0 allowed).
    pub test_fraction: f64,
    /// Stratify the split by class (classification only).
    pub stratify: bool,
    /// Standardise features with the training set's mean/std.
    pub standardize: bool,
    /// Divide raw features by this (e.g. 255 for IDX images); 1 = none.
    pub feature_scale: f64,
    /// Use at most this many training samples (0 = all), taken after the split.
    pub max_train: usize,
    pub split_seed: u64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ModelConfig {
    /// Hidden layer widths (input and output sizes come from the data).
    pub hidden: Vec<usize>,
    /// Leaky ReLU slope, `0 < α < 1` (SPEC §1).
    pub alpha: f64,
    pub loss: LossKind,
    /// Groups of W₁: rows (neurons, default) or columns (input features).
    pub input_groups: Axis,
    /// Groups of W_L: rows (as in the paper, default) or columns (never removes an output).
    pub output_groups: Axis,
    pub init_seed: u64,
}

/// The training methods (SPEC §4 and §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Method {
    #[serde(rename = "alm")]
    Alm,
    #[serde(rename = "prox-sgd")]
    ProxSgd,
    #[serde(rename = "prox-adam")]
    ProxAdam,
    #[serde(rename = "prox-gd")]
    ProxGd,
    #[serde(rename = "warm+alm")]
    WarmAlm,
}

impl Method {
    pub const ALL: [Method; 5] =
        [Method::Alm, Method::ProxSgd, Method::ProxAdam, Method::ProxGd, Method::WarmAlm];
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Alm => "alm",
            Method::ProxSgd => "prox-sgd",
            Method::ProxAdam => "prox-adam",
            Method::ProxGd => "prox-gd",
            Method::WarmAlm => "warm+alm",
        }
    }
    pub fn parse(s: &str) -> Option<Method> {
        Method::ALL.into_iter().find(|m| m.as_str() == s.trim())
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which backend runs the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceChoice {
    Auto,
    Gpu,
    Cpu,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct TrainConfig {
    pub method: Method,
    /// λ of (P0).
    pub lambda: f64,
    /// Seed for minibatch order (init has its own, `model.init_seed`).
    pub seed: u64,
    /// Work budget in passes (SPEC §5); `f64::INFINITY` = none.
    pub max_passes: f64,
    /// Wall-time budget in seconds; `f64::INFINITY` = none.
    pub max_seconds: f64,
    pub device: DeviceChoice,
}

/// SPEC §4 and §6 parameters of the ALM.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AlmConfig {
    /// ρ0 from a random start (SPEC §6: 3).
    pub rho0: f64,
    /// ρ0 after a warm start (SPEC §6: 30).
    pub rho0_warm: f64,
    pub gamma: f64,
    pub tau: f64,
    pub eps0: f64,
    pub theta: f64,
    pub eps_min: f64,
    pub inner_cap: usize,
    /// Armijo steps per block per sweep (`k`, SPEC §6: 1–3).
    pub block_steps: usize,
    pub max_outer: usize,
    /// Stop when the relative KKT residual (SPEC §5) falls below this.
    pub kkt_tol: f64,
    /// Exact `V_{L−1}` and `(W_L, b_L)` blocks (SPEC §6; squared loss only).
    pub exact_blocks: bool,
}

/// SPEC §7 baselines.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct SgdConfig {
    pub lr: f64,
    pub momentum: f64,
    pub batch: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub batch: usize,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct GdConfig {
    /// Initial step of the Armijo backtracking.
    pub step0: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct WarmConfig {
    /// Passes of prox-SGD before the ALM polish (prototype: 200 of 300).
    pub passes: f64,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct CompareConfig {
    pub methods: Vec<Method>,
    /// Pass counts at which (P0) is recorded for the (P0)-vs-passes table.
    pub pass_checkpoints: Vec<f64>,
    /// Seconds at which (P0) is recorded for the (P0)-vs-time table.
    pub time_checkpoints: Vec<f64>,
}

/// A whole validated run configuration.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Config {
    pub data: DataConfig,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub alm: AlmConfig,
    pub sgd: SgdConfig,
    pub adam: AdamConfig,
    pub gd: GdConfig,
    pub warm: WarmConfig,
    pub compare: CompareConfig,
}

/// A configuration error; `field` is the dotted TOML path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    Parse { file: String, msg: String },
    #[error("{}config field `{field}`: {msg}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Field { file: Option<String>, field: String, msg: String },
}
