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
    Csv {
        path: PathBuf,
        target: Vec<String>,
        test_path: Option<PathBuf>,
    },
    /// NPY features (`N×d`, one sample per row as NumPy stores it) and targets (`N` or `N×m`).
    Npy {
        x: PathBuf,
        y: PathBuf,
        test_x: Option<PathBuf>,
        test_y: Option<PathBuf>,
    },
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
    /// Number of classes when known in advance (classification); labels must be below it.
    /// `None`: one more than the largest integer label seen (or the number of distinct
    /// string labels).
    pub classes: Option<usize>,
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
    pub const ALL: [Method; 5] = [
        Method::Alm,
        Method::ProxSgd,
        Method::ProxAdam,
        Method::ProxGd,
        Method::WarmAlm,
    ];
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

/// Most hidden layers a network may have (the solver's scalar-slot layout holds 10 layers).
pub const MAX_HIDDEN: usize = 9;

/// A configuration error; `field` is the dotted TOML path.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    Parse { file: String, msg: String },
    #[error("{}config field `{field}`: {msg}", file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default())]
    Field {
        file: Option<String>,
        field: String,
        msg: String,
    },
}

// ---------------------------------------------------------------------------------------
// Raw (unchecked) TOML structs
// ---------------------------------------------------------------------------------------
//
// Every field is optional so that a missing key takes its default, and every struct denies
// unknown fields so that a typo (`alm.rhoo`) is reported instead of silently ignored.
// Enumerations are kept as strings here and parsed during validation, so an unknown name
// is reported with its field and the list of accepted names.

use serde::{Deserialize, Serialize};
use std::path::Path;

/// One target column name or several (`target = "label"` or `target = ["y1", "y2"]`).
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The whole file, section by section (each section is deserialised on its own so that an
/// error can name its section).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<RawData>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<RawModel>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train: Option<RawTrain>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alm: Option<RawAlm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sgd: Option<RawSgd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adam: Option<RawAdam>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gd: Option<RawGd>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warm: Option<RawWarm>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compare: Option<RawCompare>,
}

/// `[data]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawData {
    /// "csv" | "npy" | "idx" | "teacher"; inferred from the keys present when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<OneOrMany>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub images: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_images: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_labels: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub test_fraction: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stratify: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub standardize: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature_scale: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_train: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub classes: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub teacher: Option<RawTeacher>,
}

/// `[data.teacher]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTeacher {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sizes: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zero_rows: Option<Vec<usize>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_train: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n_test: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub noise: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bias_std: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

/// `[model]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hidden: Option<Vec<i64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_groups: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_groups: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_seed: Option<u64>,
}

/// `[train]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrain {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lambda: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_passes: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// `[alm]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rho0: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rho0_warm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gamma: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tau: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps0: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub theta: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps_min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_cap: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block_steps: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_outer: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kkt_tol: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact_blocks: Option<bool>,
}

/// `[sgd]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawSgd {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
}

/// `[adam]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdam {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beta2: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<i64>,
}

/// `[gd]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawGd {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub step0: Option<f64>,
}

/// `[warm]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawWarm {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passes: Option<f64>,
}

/// `[compare]`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pass_checkpoints: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_checkpoints: Option<Vec<f64>>,
}

// ---------------------------------------------------------------------------------------
// Loading: file or built-in default → overrides → per-section deserialisation → validation
// ---------------------------------------------------------------------------------------

/// The built-in default configuration (the digits problem), used when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("../configs/digits.toml");

const SECTIONS: [&str; 9] = [
    "data", "model", "train", "alm", "sgd", "adam", "gd", "warm", "compare",
];

/// How relative data paths are resolved. A config file's paths are relative to the file
/// (so a config works from any working directory); paths given with `--set` are relative
/// to the working directory (where the user typed them); the built-in default's paths are
/// tried from the working directory and then from the crate's `configs/` folder, so
/// `cargo run` finds `data/digits.csv` from anywhere inside the checkout.
enum Base {
    File(PathBuf),
    BuiltIn,
}

/// Load a configuration: `path` (or the built-in digits default when `None`), then the
/// `key=value` overrides of `sets` (dotted keys, TOML values, bare strings allowed), then
/// defaults and validation.
pub fn load_config(path: Option<&Path>, sets: &[String]) -> Result<Config, ConfigError> {
    let (text, file, base) = match path {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ConfigError::Parse {
                file: p.display().to_string(),
                msg: format!("cannot read config file: {e}"),
            })?;
            let dir = p.parent().map(Path::to_path_buf).unwrap_or_default();
            (text, Some(p.display().to_string()), Base::File(dir))
        }
        None => (DEFAULT_CONFIG.to_string(), None, Base::BuiltIn),
    };
    let mut table: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        file: file
            .clone()
            .unwrap_or_else(|| "<built-in default config>".into()),
        msg: e.to_string(),
    })?;
    let mut overridden = Vec::new();
    for s in sets {
        overridden.push(apply_override(&mut table, s)?);
    }
    let raw = raw_from_table(table, file.as_deref())?;
    Checker {
        file,
        base,
        overridden,
    }
    .check(raw)
}

/// Parse a TOML string (e.g. a saved resolved config) without touching the file system.
/// Relative paths are kept as written.
pub fn config_from_str(text: &str, sets: &[String]) -> Result<Config, ConfigError> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: "<string>".into(),
        msg: e.to_string(),
    })?;
    let mut overridden = Vec::new();
    for s in sets {
        overridden.push(apply_override(&mut table, s)?);
    }
    let raw = raw_from_table(table, None)?;
    Checker {
        file: None,
        base: Base::File(PathBuf::new()),
        overridden,
    }
    .check(raw)
}

/// Apply one `key=value` override to the TOML tree; returns the dotted key.
fn apply_override(table: &mut toml::Table, set: &str) -> Result<String, ConfigError> {
    let field_err = |field: &str, msg: String| ConfigError::Field {
        file: None,
        field: field.to_string(),
        msg,
    };
    let Some((key, val)) = set.split_once('=') else {
        return Err(field_err(
            set.trim(),
            format!("override `{set}` is not of the form key=value"),
        ));
    };
    let key = key.trim();
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if key.is_empty() || parts.iter().any(|p| p.is_empty()) {
        return Err(field_err(key, format!("override `{set}` has an empty key")));
    }
    let val = val.trim();
    // A value is TOML when it parses as one (`3`, `[64, 32]`, `true`, `"x"`), else a bare
    // string (`data.path=my.csv`), so file names need no quoting on a command line.
    let value = toml::from_str::<toml::Table>(&format!("v = {val}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(val.to_string()));
    let mut cur = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = match entry {
            toml::Value::Table(t) => t,
            _ => {
                return Err(field_err(
                    &parts[..=i].join("."),
                    format!(
                        "override `{set}`: `{}` is not a table",
                        parts[..=i].join(".")
                    ),
                ))
            }
        };
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(parts.join("."))
}

/// Turn a serde error of section `section` into a field error naming the dotted field:
/// toml reports the path inside the section as "in `a.b`" and unknown keys by name.
fn section_error(file: Option<&str>, section: &str, err: toml::de::Error) -> ConfigError {
    let msg = err.to_string();
    let msg = msg.trim();
    let (body, inner) = match msg.rsplit_once("\nin `") {
        Some((body, rest)) => (
            body.trim().to_string(),
            Some(rest.trim_end_matches('`').to_string()),
        ),
        None => (msg.to_string(), None),
    };
    let mut field = section.to_string();
    if let Some(inner) = &inner {
        field = format!("{field}.{inner}");
    }
    if let Some(rest) = body.strip_prefix("unknown field `") {
        if let Some((name, _)) = rest.split_once('`') {
            field = format!("{field}.{name}");
            return ConfigError::Field {
                file: file.map(str::to_string),
                field,
                msg: format!("unknown key ({body})"),
            };
        }
    }
    ConfigError::Field {
        file: file.map(str::to_string),
        field,
        msg: body,
    }
}

fn raw_from_table(table: toml::Table, file: Option<&str>) -> Result<RawConfig, ConfigError> {
    let mut raw = RawConfig::default();
    for (key, value) in table {
        if !SECTIONS.contains(&key.as_str()) {
            return Err(ConfigError::Field {
                file: file.map(str::to_string),
                field: key.clone(),
                msg: format!(
                    "unknown section or key `{key}`; expected one of {}",
                    SECTIONS.join(", ")
                ),
            });
        }
        if !value.is_table() {
            return Err(ConfigError::Field {
                file: file.map(str::to_string),
                field: key.clone(),
                msg: format!("`{key}` must be a table (`[{key}]`)"),
            });
        }
        macro_rules! section {
            ($slot:expr) => {
                $slot = Some(value.try_into().map_err(|e| section_error(file, &key, e))?)
            };
        }
        match key.as_str() {
            "data" => section!(raw.data),
            "model" => section!(raw.model),
            "train" => section!(raw.train),
            "alm" => section!(raw.alm),
            "sgd" => section!(raw.sgd),
            "adam" => section!(raw.adam),
            "gd" => section!(raw.gd),
            "warm" => section!(raw.warm),
            _ => section!(raw.compare),
        }
    }
    Ok(raw)
}

/// Lexically clean `a/b/../c` → `a/c` so resolved paths print readably.
fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// Validation with the context needed to name the file and resolve paths.
struct Checker {
    file: Option<String>,
    base: Base,
    overridden: Vec<String>,
}

impl Checker {
    fn err(&self, field: &str, msg: impl Into<String>) -> ConfigError {
        ConfigError::Field {
            file: self.file.clone(),
            field: field.to_string(),
            msg: msg.into(),
        }
    }

    fn resolve(&self, field: &str, p: &str) -> PathBuf {
        let path = PathBuf::from(p);
        if path.is_absolute() {
            return normalize(&path);
        }
        let from_cli = self
            .overridden
            .iter()
            .any(|k| field == k || field.starts_with(&format!("{k}.")));
        if from_cli {
            return normalize(&path);
        }
        match &self.base {
            Base::File(dir) => normalize(&dir.join(&path)),
            Base::BuiltIn => {
                // The default is written relative to `configs/`; from a working directory
                // it is more natural to look for `data/…` directly.
                let stripped: PathBuf = path
                    .components()
                    .skip_while(|c| matches!(c, std::path::Component::ParentDir))
                    .collect();
                let manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("configs")
                    .join(&path);
                let candidates = [path.clone(), stripped.clone(), manifest];
                candidates
                    .iter()
                    .map(|c| normalize(c))
                    .find(|c| c.exists())
                    .unwrap_or_else(|| normalize(&stripped))
            }
        }
    }

    fn positive(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if v.is_finite() && v > 0.0 {
            Ok(v)
        } else {
            Err(self.err(field, format!("must be positive and finite, got {v}")))
        }
    }

    fn open_unit(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if v > 0.0 && v < 1.0 {
            Ok(v)
        } else {
            Err(self.err(field, format!("must be in (0, 1), got {v}")))
        }
    }

    fn half_open_unit(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if (0.0..1.0).contains(&v) {
            Ok(v)
        } else {
            Err(self.err(field, format!("must be in [0, 1), got {v}")))
        }
    }

    fn count(&self, field: &str, v: i64) -> Result<usize, ConfigError> {
        if v >= 1 {
            Ok(v as usize)
        } else {
            Err(self.err(field, format!("must be at least 1, got {v}")))
        }
    }

    /// A budget: positive, `inf` meaning none.
    fn budget(&self, field: &str, v: f64) -> Result<f64, ConfigError> {
        if v > 0.0 && !v.is_nan() {
            Ok(v)
        } else {
            Err(self.err(
                field,
                format!("must be positive (or inf for no limit), got {v}"),
            ))
        }
    }

    fn check(&self, raw: RawConfig) -> Result<Config, ConfigError> {
        let model = self.check_model(raw.model.unwrap_or_default())?;
        let data = self.check_data(raw.data.unwrap_or_default())?;
        let train = self.check_train(raw.train.unwrap_or_default())?;
        let alm = self.check_alm(raw.alm.unwrap_or_default())?;
        let s = raw.sgd.unwrap_or_default();
        let sgd = SgdConfig {
            lr: self.positive("sgd.lr", s.lr.unwrap_or(0.02))?,
            momentum: self.half_open_unit("sgd.momentum", s.momentum.unwrap_or(0.9))?,
            batch: self.count("sgd.batch", s.batch.unwrap_or(128))?,
        };
        let a = raw.adam.unwrap_or_default();
        let adam = AdamConfig {
            lr: self.positive("adam.lr", a.lr.unwrap_or(1e-3))?,
            beta1: self.half_open_unit("adam.beta1", a.beta1.unwrap_or(0.9))?,
            beta2: self.half_open_unit("adam.beta2", a.beta2.unwrap_or(0.999))?,
            eps: self.positive("adam.eps", a.eps.unwrap_or(1e-8))?,
            batch: self.count("adam.batch", a.batch.unwrap_or(128))?,
        };
        let gd = GdConfig {
            step0: self.positive("gd.step0", raw.gd.unwrap_or_default().step0.unwrap_or(1.0))?,
        };
        let passes = raw.warm.unwrap_or_default().passes.unwrap_or(200.0);
        if !(passes.is_finite() && passes >= 0.0) {
            return Err(self.err(
                "warm.passes",
                format!("must be finite and ≥ 0, got {passes}"),
            ));
        }
        let warm = WarmConfig { passes };
        let compare = self.check_compare(raw.compare.unwrap_or_default())?;

        // Cross-field rules.
        if model.loss == LossKind::SoftmaxCe && data.task != Task::Classification {
            return Err(self.err(
                "model.loss",
                "softmax-ce needs a classification task (data.task = \"classification\")",
            ));
        }
        if alm.exact_blocks && model.loss != LossKind::Squared {
            return Err(self.err(
                "alm.exact_blocks",
                "exact blocks need model.loss = \"squared\"",
            ));
        }
        Ok(Config {
            data,
            model,
            train,
            alm,
            sgd,
            adam,
            gd,
            warm,
            compare,
        })
    }

    fn check_model(&self, m: RawModel) -> Result<ModelConfig, ConfigError> {
        let hidden_raw = m.hidden.unwrap_or_else(|| vec![100, 100]);
        if hidden_raw.is_empty() {
            return Err(self.err("model.hidden", "needs at least one hidden layer, got []"));
        }
        if hidden_raw.len() > MAX_HIDDEN {
            // The backends' scalar slot layout (backend::NUM_SLOTS) is sized for this.
            return Err(self.err(
                "model.hidden",
                format!(
                    "at most {MAX_HIDDEN} hidden layers are supported, got {}",
                    hidden_raw.len()
                ),
            ));
        }
        let mut hidden = Vec::with_capacity(hidden_raw.len());
        for (i, &h) in hidden_raw.iter().enumerate() {
            if h < 1 {
                return Err(self.err(
                    &format!("model.hidden[{i}]"),
                    format!("layer width must be at least 1, got {h}"),
                ));
            }
            hidden.push(h as usize);
        }
        let alpha = self.open_unit("model.alpha", m.alpha.unwrap_or(0.1))?;
        let loss = match m.loss.as_deref().unwrap_or("squared") {
            "squared" => LossKind::Squared,
            "softmax-ce" => LossKind::SoftmaxCe,
            other => {
                return Err(self.err(
                    "model.loss",
                    format!("unknown loss `{other}`; expected squared or softmax-ce"),
                ))
            }
        };
        let axis = |field: &str, v: Option<String>| -> Result<Axis, ConfigError> {
            match v.as_deref().unwrap_or("rows") {
                "rows" | "row" => Ok(Axis::Rows),
                "cols" | "col" | "columns" => Ok(Axis::Cols),
                other => Err(self.err(
                    field,
                    format!("unknown grouping `{other}`; expected rows or cols"),
                )),
            }
        };
        Ok(ModelConfig {
            hidden,
            alpha,
            loss,
            input_groups: axis("model.input_groups", m.input_groups)?,
            output_groups: axis("model.output_groups", m.output_groups)?,
            init_seed: m.init_seed.unwrap_or(0),
        })
    }

    fn check_data(&self, d: RawData) -> Result<DataConfig, ConfigError> {
        let source_name = match d.source.clone() {
            Some(s) => s,
            None if d.teacher.is_some() => "teacher".into(),
            None if d.images.is_some() => "idx".into(),
            None if d.x.is_some() => "npy".into(),
            None if d.path.is_some() => "csv".into(),
            None => {
                return Err(self.err(
                    "data.source",
                    "missing; set source = \"csv\" | \"npy\" | \"idx\" | \"teacher\" (or data.path for a CSV file)",
                ))
            }
        };
        let need = |field: &str, v: &Option<String>| -> Result<PathBuf, ConfigError> {
            match v {
                Some(p) if !p.trim().is_empty() => Ok(self.resolve(&format!("data.{field}"), p)),
                _ => Err(self.err(
                    &format!("data.{field}"),
                    format!("required by source = \"{source_name}\""),
                )),
            }
        };
        let opt = |field: &str, v: &Option<String>| -> Option<PathBuf> {
            v.as_ref()
                .filter(|p| !p.trim().is_empty())
                .map(|p| self.resolve(&format!("data.{field}"), p))
        };
        // Keys that belong to another source are most likely a mistake: say so, unless the
        // source itself was switched on the command line (then the file's keys for its
        // own source are expected leftovers).
        let switched = self
            .overridden
            .iter()
            .any(|k| k == "data.source" || k == "data");
        let stray = |fields: &[(&str, bool)]| -> Result<(), ConfigError> {
            match fields.iter().find(|(_, present)| *present && !switched) {
                Some((f, _)) => Err(self.err(
                    &format!("data.{f}"),
                    format!("not used by source = \"{source_name}\""),
                )),
                None => Ok(()),
            }
        };
        let source = match source_name.as_str() {
            "csv" => {
                stray(&[
                    ("x", d.x.is_some()),
                    ("images", d.images.is_some()),
                    ("teacher", d.teacher.is_some()),
                ])?;
                let target = d
                    .target
                    .clone()
                    .map(OneOrMany::into_vec)
                    .unwrap_or_else(|| vec!["label".into()]);
                if target.is_empty() || target.iter().any(|t| t.trim().is_empty()) {
                    return Err(self.err("data.target", "needs at least one non-empty column name"));
                }
                DataSource::Csv {
                    path: need("path", &d.path)?,
                    target,
                    test_path: opt("test_path", &d.test_path),
                }
            }
            "npy" => {
                stray(&[
                    ("path", d.path.is_some()),
                    ("images", d.images.is_some()),
                    ("teacher", d.teacher.is_some()),
                ])?;
                let test_x = opt("test_x", &d.test_x);
                let test_y = opt("test_y", &d.test_y);
                if test_x.is_some() != test_y.is_some() {
                    return Err(self.err(
                        if test_x.is_some() {
                            "data.test_y"
                        } else {
                            "data.test_x"
                        },
                        "data.test_x and data.test_y must be given together",
                    ));
                }
                DataSource::Npy {
                    x: need("x", &d.x)?,
                    y: need("y", &d.y)?,
                    test_x,
                    test_y,
                }
            }
            "idx" => {
                stray(&[
                    ("path", d.path.is_some()),
                    ("x", d.x.is_some()),
                    ("teacher", d.teacher.is_some()),
                ])?;
                let test_images = opt("test_images", &d.test_images);
                let test_labels = opt("test_labels", &d.test_labels);
                if test_images.is_some() != test_labels.is_some() {
                    return Err(self.err(
                        if test_images.is_some() {
                            "data.test_labels"
                        } else {
                            "data.test_images"
                        },
                        "data.test_images and data.test_labels must be given together",
                    ));
                }
                DataSource::Idx {
                    images: need("images", &d.images)?,
                    labels: need("labels", &d.labels)?,
                    test_images,
                    test_labels,
                }
            }
            "teacher" => {
                stray(&[
                    ("path", d.path.is_some()),
                    ("x", d.x.is_some()),
                    ("images", d.images.is_some()),
                ])?;
                DataSource::Teacher(self.check_teacher(d.teacher.clone().unwrap_or_default())?)
            }
            other => {
                return Err(self.err(
                    "data.source",
                    format!("unknown source `{other}`; expected csv, npy, idx or teacher"),
                ))
            }
        };
        let default_task = if matches!(source, DataSource::Teacher(_)) {
            "regression"
        } else {
            "classification"
        };
        let task = match d.task.as_deref().unwrap_or(default_task) {
            "classification" => Task::Classification,
            "regression" => Task::Regression,
            other => {
                return Err(self.err(
                    "data.task",
                    format!("unknown task `{other}`; expected classification or regression"),
                ))
            }
        };
        if matches!(source, DataSource::Teacher(_)) && task != Task::Regression {
            return Err(self.err("data.task", "the teacher problem is a regression task"));
        }
        if task == Task::Classification {
            if let DataSource::Csv { target, .. } = &source {
                if target.len() != 1 {
                    return Err(self.err(
                        "data.target",
                        format!(
                            "classification needs exactly one label column, got {}",
                            target.len()
                        ),
                    ));
                }
            }
        }
        let test_fraction = d.test_fraction.unwrap_or(0.2);
        if !(0.0..1.0).contains(&test_fraction) {
            return Err(self.err(
                "data.test_fraction",
                format!("must be in [0, 1), got {test_fraction}"),
            ));
        }
        let feature_scale = self.positive("data.feature_scale", d.feature_scale.unwrap_or(1.0))?;
        if let Some(c) = d.classes {
            if c < 2 {
                return Err(self.err("data.classes", format!("must be at least 2, got {c}")));
            }
            if task != Task::Classification {
                return Err(self.err("data.classes", "only meaningful for classification"));
            }
        }
        Ok(DataConfig {
            source,
            task,
            test_fraction,
            stratify: d.stratify.unwrap_or(true),
            standardize: d.standardize.unwrap_or(false),
            feature_scale,
            max_train: d.max_train.unwrap_or(0),
            split_seed: d.split_seed.unwrap_or(0),
            classes: d.classes,
        })
    }

    fn check_teacher(&self, t: RawTeacher) -> Result<TeacherParams, ConfigError> {
        let sizes = t.sizes.unwrap_or_else(|| vec![50, 40, 20, 1]);
        if sizes.len() < 2 || sizes.contains(&0) {
            return Err(self.err(
                "data.teacher.sizes",
                format!("needs at least two positive layer sizes (input first), got {sizes:?}"),
            ));
        }
        let zero_rows = t.zero_rows.unwrap_or_else(|| {
            let mut z = vec![10, 5];
            z.resize(sizes.len() - 2, 0);
            z
        });
        if zero_rows.len() != sizes.len() - 2 {
            return Err(self.err(
                "data.teacher.zero_rows",
                format!(
                    "needs one count per hidden teacher layer ({}), got {}",
                    sizes.len() - 2,
                    zero_rows.len()
                ),
            ));
        }
        for (i, (&z, &n)) in zero_rows.iter().zip(&sizes[1..]).enumerate() {
            if z >= n {
                return Err(self.err(
                    &format!("data.teacher.zero_rows[{i}]"),
                    format!("must be below the layer width {n}, got {z}"),
                ));
            }
        }
        let n_train = t.n_train.unwrap_or(5000);
        if n_train == 0 {
            return Err(self.err("data.teacher.n_train", "must be at least 1, got 0"));
        }
        let noise = t.noise.unwrap_or(0.05);
        if !(noise.is_finite() && noise >= 0.0) {
            return Err(self.err(
                "data.teacher.noise",
                format!("must be finite and ≥ 0, got {noise}"),
            ));
        }
        let bias_std = t.bias_std.unwrap_or(0.1);
        if !(bias_std.is_finite() && bias_std >= 0.0) {
            return Err(self.err(
                "data.teacher.bias_std",
                format!("must be finite and ≥ 0, got {bias_std}"),
            ));
        }
        Ok(TeacherParams {
            sizes,
            zero_rows,
            n_train,
            n_test: t.n_test.unwrap_or(1000),
            noise,
            bias_std,
            seed: t.seed.unwrap_or(0),
        })
    }

    fn check_train(&self, t: RawTrain) -> Result<TrainConfig, ConfigError> {
        let method_name = t.method.unwrap_or_else(|| "warm+alm".into());
        let method = Method::parse(&method_name).ok_or_else(|| {
            self.err(
                "train.method",
                format!(
                    "unknown method `{method_name}`; expected one of {}",
                    method_list()
                ),
            )
        })?;
        let lambda = t.lambda.unwrap_or(1e-3);
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(self.err(
                "train.lambda",
                format!("must be finite and ≥ 0, got {lambda}"),
            ));
        }
        let device = match t.device.as_deref().unwrap_or("auto") {
            "auto" => DeviceChoice::Auto,
            "gpu" => DeviceChoice::Gpu,
            "cpu" => DeviceChoice::Cpu,
            other => {
                return Err(self.err(
                    "train.device",
                    format!("unknown device `{other}`; expected auto, gpu or cpu"),
                ))
            }
        };
        Ok(TrainConfig {
            method,
            lambda,
            seed: t.seed.unwrap_or(0),
            max_passes: self.budget("train.max_passes", t.max_passes.unwrap_or(300.0))?,
            max_seconds: self
                .budget("train.max_seconds", t.max_seconds.unwrap_or(f64::INFINITY))?,
            device,
        })
    }

    fn check_alm(&self, a: RawAlm) -> Result<AlmConfig, ConfigError> {
        let gamma = a.gamma.unwrap_or(2.0);
        if !(gamma.is_finite() && gamma > 1.0) {
            return Err(self.err("alm.gamma", format!("must be greater than 1, got {gamma}")));
        }
        let eps0 = self.positive("alm.eps0", a.eps0.unwrap_or(0.3))?;
        let eps_min = self.positive("alm.eps_min", a.eps_min.unwrap_or(1e-6))?;
        if eps_min > eps0 {
            return Err(self.err(
                "alm.eps_min",
                format!("must not exceed alm.eps0 = {eps0}, got {eps_min}"),
            ));
        }
        let kkt_tol = a.kkt_tol.unwrap_or(1e-6);
        if !(kkt_tol.is_finite() && kkt_tol >= 0.0) {
            return Err(self.err(
                "alm.kkt_tol",
                format!("must be finite and ≥ 0, got {kkt_tol}"),
            ));
        }
        Ok(AlmConfig {
            rho0: self.positive("alm.rho0", a.rho0.unwrap_or(3.0))?,
            rho0_warm: self.positive("alm.rho0_warm", a.rho0_warm.unwrap_or(30.0))?,
            gamma,
            tau: self.open_unit("alm.tau", a.tau.unwrap_or(0.9))?,
            eps0,
            theta: self.open_unit("alm.theta", a.theta.unwrap_or(0.3))?,
            eps_min,
            inner_cap: self.count("alm.inner_cap", a.inner_cap.unwrap_or(20))?,
            block_steps: self.count("alm.block_steps", a.block_steps.unwrap_or(1))?,
            max_outer: self.count("alm.max_outer", a.max_outer.unwrap_or(10000))?,
            kkt_tol,
            exact_blocks: a.exact_blocks.unwrap_or(false),
        })
    }

    fn check_compare(&self, c: RawCompare) -> Result<CompareConfig, ConfigError> {
        let names = c
            .methods
            .unwrap_or_else(|| Method::ALL.iter().map(|m| m.as_str().to_string()).collect());
        if names.is_empty() {
            return Err(self.err("compare.methods", "needs at least one method"));
        }
        let mut methods = Vec::new();
        for (i, n) in names.iter().enumerate() {
            let m = Method::parse(n).ok_or_else(|| {
                self.err(
                    &format!("compare.methods[{i}]"),
                    format!("unknown method `{n}`; expected one of {}", method_list()),
                )
            })?;
            methods.push(m);
        }
        let checkpoints = |field: &str, v: Vec<f64>| -> Result<Vec<f64>, ConfigError> {
            for (i, &x) in v.iter().enumerate() {
                if !(x.is_finite() && x > 0.0) {
                    return Err(self.err(
                        &format!("{field}[{i}]"),
                        format!("must be positive and finite, got {x}"),
                    ));
                }
                if i > 0 && x <= v[i - 1] {
                    return Err(self.err(
                        &format!("{field}[{i}]"),
                        format!("must be increasing, got {x} after {}", v[i - 1]),
                    ));
                }
            }
            Ok(v)
        };
        Ok(CompareConfig {
            methods,
            pass_checkpoints: checkpoints(
                "compare.pass_checkpoints",
                c.pass_checkpoints
                    .unwrap_or_else(|| vec![10.0, 30.0, 100.0, 200.0, 300.0]),
            )?,
            time_checkpoints: checkpoints(
                "compare.time_checkpoints",
                c.time_checkpoints.unwrap_or_default(),
            )?,
        })
    }
}

fn method_list() -> String {
    Method::ALL
        .iter()
        .map(|m| m.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Paths are written absolute: a saved config lives in a run's output folder, where
/// relative paths would resolve against the wrong directory.
fn path_str(p: &Path) -> Option<String> {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    Some(normalize(&abs).display().to_string())
}

impl Config {
    /// The resolved configuration as TOML in the file layout (every key explicit, paths
    /// resolved), so a run's saved config reproduces it with `--config`.
    pub fn to_toml(&self) -> String {
        let d = &self.data;
        let mut data = RawData {
            task: Some(match d.task {
                Task::Classification => "classification".into(),
                Task::Regression => "regression".into(),
            }),
            test_fraction: Some(d.test_fraction),
            stratify: Some(d.stratify),
            standardize: Some(d.standardize),
            feature_scale: Some(d.feature_scale),
            max_train: Some(d.max_train),
            split_seed: Some(d.split_seed),
            classes: d.classes,
            ..Default::default()
        };
        match &d.source {
            DataSource::Csv {
                path,
                target,
                test_path,
            } => {
                data.source = Some("csv".into());
                data.path = path_str(path);
                data.target = Some(OneOrMany::Many(target.clone()));
                data.test_path = test_path.as_deref().and_then(path_str);
            }
            DataSource::Npy {
                x,
                y,
                test_x,
                test_y,
            } => {
                data.source = Some("npy".into());
                data.x = path_str(x);
                data.y = path_str(y);
                data.test_x = test_x.as_deref().and_then(path_str);
                data.test_y = test_y.as_deref().and_then(path_str);
            }
            DataSource::Idx {
                images,
                labels,
                test_images,
                test_labels,
            } => {
                data.source = Some("idx".into());
                data.images = path_str(images);
                data.labels = path_str(labels);
                data.test_images = test_images.as_deref().and_then(path_str);
                data.test_labels = test_labels.as_deref().and_then(path_str);
            }
            DataSource::Teacher(t) => {
                data.source = Some("teacher".into());
                data.teacher = Some(RawTeacher {
                    sizes: Some(t.sizes.clone()),
                    zero_rows: Some(t.zero_rows.clone()),
                    n_train: Some(t.n_train),
                    n_test: Some(t.n_test),
                    noise: Some(t.noise),
                    bias_std: Some(t.bias_std),
                    seed: Some(t.seed),
                });
            }
        }
        let axis = |a: Axis| match a {
            Axis::Rows => "rows".to_string(),
            Axis::Cols => "cols".to_string(),
        };
        let m = &self.model;
        let t = &self.train;
        let a = &self.alm;
        let raw = RawConfig {
            data: Some(data),
            model: Some(RawModel {
                hidden: Some(m.hidden.iter().map(|&h| h as i64).collect()),
                alpha: Some(m.alpha),
                loss: Some(match m.loss {
                    LossKind::Squared => "squared".into(),
                    LossKind::SoftmaxCe => "softmax-ce".into(),
                }),
                input_groups: Some(axis(m.input_groups)),
                output_groups: Some(axis(m.output_groups)),
                init_seed: Some(m.init_seed),
            }),
            train: Some(RawTrain {
                method: Some(t.method.as_str().into()),
                lambda: Some(t.lambda),
                seed: Some(t.seed),
                max_passes: Some(t.max_passes),
                max_seconds: Some(t.max_seconds),
                device: Some(
                    match t.device {
                        DeviceChoice::Auto => "auto",
                        DeviceChoice::Gpu => "gpu",
                        DeviceChoice::Cpu => "cpu",
                    }
                    .into(),
                ),
            }),
            alm: Some(RawAlm {
                rho0: Some(a.rho0),
                rho0_warm: Some(a.rho0_warm),
                gamma: Some(a.gamma),
                tau: Some(a.tau),
                eps0: Some(a.eps0),
                theta: Some(a.theta),
                eps_min: Some(a.eps_min),
                inner_cap: Some(a.inner_cap as i64),
                block_steps: Some(a.block_steps as i64),
                max_outer: Some(a.max_outer as i64),
                kkt_tol: Some(a.kkt_tol),
                exact_blocks: Some(a.exact_blocks),
            }),
            sgd: Some(RawSgd {
                lr: Some(self.sgd.lr),
                momentum: Some(self.sgd.momentum),
                batch: Some(self.sgd.batch as i64),
            }),
            adam: Some(RawAdam {
                lr: Some(self.adam.lr),
                beta1: Some(self.adam.beta1),
                beta2: Some(self.adam.beta2),
                eps: Some(self.adam.eps),
                batch: Some(self.adam.batch as i64),
            }),
            gd: Some(RawGd {
                step0: Some(self.gd.step0),
            }),
            warm: Some(RawWarm {
                passes: Some(self.warm.passes),
            }),
            compare: Some(RawCompare {
                methods: Some(
                    self.compare
                        .methods
                        .iter()
                        .map(|m| m.as_str().to_string())
                        .collect(),
                ),
                pass_checkpoints: Some(self.compare.pass_checkpoints.clone()),
                time_checkpoints: Some(self.compare.time_checkpoints.clone()),
            }),
        };
        toml::to_string(&raw).unwrap_or_else(|e| format!("# could not serialise the config: {e}\n"))
    }
}
