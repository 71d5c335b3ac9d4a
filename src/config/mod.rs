//! Run configuration. Each setting is defined once, here: its type, its doc and its
//! default (the `Default` impls, the measured defaults of method §6 and
//! the numpy prototype's measurements); serde reads and writes the TOML layout from
//! these same structs. `load` turns a file (or the built-in default) plus `--set`
//! overrides into a [`Config`]; `validate` checks value ranges and cross-field rules.
//! Every error names its dotted field (`alm.rho0`, `data.test_fraction`, …) and where the
//! value came from: the file, or the `--set` override that supplied it.

/// Return a field error: `bail!("data.{key}" => "required by source = \"{name}\"")`;
/// the field and the message are both format strings.
macro_rules! bail {
    ($field:literal => $($msg:tt)+) => {
        return Err(ConfigError::field(format!($field), format!($($msg)+)))
    };
}

/// [`bail!`] unless `ok`: `ensure!(ok, "alm.gamma" => "must be greater than 1, got {g}")`.
macro_rules! ensure {
    ($ok:expr, $field:literal => $($msg:tt)+) => {
        let ok: bool = $ok;
        if !ok {
            bail!($field => $($msg)+)
        }
    };
}

mod load;
mod validate;

pub use load::{config_from_str, load_config};

use crate::backend::{Axis, LossKind};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::PathBuf;

/// The built-in default configuration (the digits problem), used when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/digits.toml");

/// Most hidden layers a network may have (the solver's scalar-slot layout holds 10 layers).
pub const MAX_HIDDEN: usize = 9;

/// Declares a setting whose values are names: the variants and their names in one list,
/// from which come serde's names, `ALL`, `as_str`, `parse` and `Display`, so a new value
/// is one line.
macro_rules! named {
    ($(#[$meta:meta])* pub enum $name:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)*
    }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)*
        }

        impl $name {
            pub const ALL: [$name; [$($text),*].len()] = [$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }
            pub fn parse(s: &str) -> Option<$name> {
                Self::ALL.into_iter().find(|v| v.as_str() == s.trim())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named! {
    /// Classification (one-hot targets, error = 1 − accuracy) or regression (error = MSE).
    pub enum Task {
        Classification = "classification",
        Regression = "regression",
    }
}

/// Declares a config section once: each field's doc, type, default and (after `=>`) its
/// allowed range together. The struct derives serde with `#[serde(default)]`, so an absent
/// key takes its default; `check_ranges` checks the declared ranges.
macro_rules! section {
    ($(#[$meta:meta])* pub struct $name:ident {
        $($(#[$fmeta:meta])* pub $field:ident: $ty:ty = $default:expr $(=> $range:ident)?,)*
    }) => {
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(default)]
        $(#[$meta])*
        pub struct $name { $($(#[$fmeta])* pub $field: $ty,)* }

        impl Default for $name {
            fn default() -> Self {
                $name { $($field: $default,)* }
            }
        }

        impl $name {
            /// The ranges declared beside the fields; errors name `{section}.{field}`.
            #[allow(unused_variables)]
            fn check_ranges(&self, section: &str) -> Result<(), ConfigError> {
                $($(
                    let field = format!("{section}.{}", stringify!($field));
                    let range = $crate::config::validate::Range::$range;
                    $crate::config::validate::in_range(&field, self.$field as f64, range)?;
                )?)*
                Ok(())
            }
        }
    };
}

/// Where the data comes from: `source = "csv" | "npy" | "idx" | "teacher"` in `[data]`,
/// beside the source's own keys. Loading infers a missing tag from the keys present and
/// checks the required paths before serde reads this.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum DataSource {
    /// CSV with a header row; `target` names the label/target column(s).
    Csv {
        path: PathBuf,
        /// `target = "label"` (the default) or `target = ["y1", "y2"]`.
        #[serde(default = "default_target", deserialize_with = "one_or_many")]
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
    /// The synthetic teacher problem (a random sparse leaky ReLU net), parameters in `[data.teacher]`.
    Teacher(#[serde(with = "teacher_table")] TeacherParams),
}

fn default_target() -> Vec<String> {
    vec!["label".into()]
}

/// One column name or a list of them.
fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    })
}

/// The teacher's parameters are a table of their own (`[data.teacher]`) rather than keys
/// beside `source`, so a teacher config reads like the problem it generates.
mod teacher_table {
    use super::TeacherParams;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Nested<T> {
        #[serde(default)]
        teacher: T,
    }

    pub fn serialize<S: Serializer>(t: &TeacherParams, s: S) -> Result<S::Ok, S::Error> {
        Nested { teacher: t }.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TeacherParams, D::Error> {
        Ok(Nested::<TeacherParams>::deserialize(d)?.teacher)
    }
}

impl DataSource {
    /// The source's files present, by key.
    fn paths_mut(&mut self) -> Vec<(&'static str, &mut PathBuf)> {
        let (required, optional) = match self {
            DataSource::Csv {
                path, test_path, ..
            } => (vec![("path", path)], vec![("test_path", test_path)]),
            DataSource::Npy {
                x,
                y,
                test_x,
                test_y,
            } => (
                vec![("x", x), ("y", y)],
                vec![("test_x", test_x), ("test_y", test_y)],
            ),
            DataSource::Idx {
                images,
                labels,
                test_images: ti,
                test_labels: tl,
            } => (
                vec![("images", images), ("labels", labels)],
                vec![("test_images", ti), ("test_labels", tl)],
            ),
            DataSource::Teacher(_) => (Vec::new(), Vec::new()),
        };
        let optional = optional
            .into_iter()
            .filter_map(|(k, p)| Some((k, p.as_mut()?)));
        required.into_iter().chain(optional).collect()
    }
}

section! {
    /// The synthetic teacher problem (regression).
    #[serde(deny_unknown_fields)]
    pub struct TeacherParams {
        /// Teacher layer sizes, input first.
        pub sizes: Vec<usize> = vec![50, 40, 20, 1],
        /// Zero rows per hidden teacher layer (when only `sizes` is given, this default is
        /// cut or padded with zeros to one count per hidden layer).
        pub zero_rows: Vec<usize> = vec![10, 5],
        pub n_train: usize = 5000,
        pub n_test: usize = 1000,
        /// Std of the Gaussian noise added to the standardised targets.
        pub noise: f64 = 0.05 => NonNegative,
        /// Std of the teacher biases.
        pub bias_std: f64 = 0.1 => NonNegative,
        pub seed: u64 = 0,
    }
}

section! {
    /// `[data]`. Unknown keys are reported by the source's variant (serde cannot combine
    /// `deny_unknown_fields` with the flattened source). The teacher needs no files, so it
    /// is the one source with a complete default; a loaded config always names its source.
    pub struct DataConfig {
        #[serde(flatten)]
        pub source: DataSource = DataSource::Teacher(TeacherParams::default()),
        /// Default: regression for the teacher, classification for files.
        pub task: Task = Task::Regression,
        /// Fraction held out for test when no separate test set is given (0 allowed).
        pub test_fraction: f64 = 0.2 => HalfOpen,
        /// Stratify the split by class (classification only).
        pub stratify: bool = true,
        /// Standardise features with the training set's mean/std. Default when the key
        /// is absent: true for CSV files (tabular columns in their own units), false for
        /// IDX images (scaled by `feature_scale` instead), NPY arrays and the teacher.
        pub standardize: bool = false,
        /// Regression: standardise each target with the training set's mean/std; the
        /// loss and (P0) are then in standard units, reported errors in the target's own.
        /// Default when absent: true for CSV and NPY files, false for the teacher (whose
        /// targets are standardised by construction).
        pub standardize_targets: bool = false,
        /// Divide raw features by this (e.g. 255 for IDX images); 1 = none.
        pub feature_scale: f64 = 1.0 => Positive,
        /// Use at most this many training samples (0 = all), taken after the split.
        pub max_train: usize = 0,
        pub split_seed: u64 = 0,
        /// Number of classes when known in advance (classification): integer labels are
        /// then the class indices and must be below it (string labels: at most this many).
        /// `None`: the sorted distinct label values are the classes.
        pub classes: Option<usize> = None,
    }
}

/// [`Axis`] as written in a config: `rows` (or `row`), `cols` (or `col`, `columns`).
#[derive(Serialize, Deserialize)]
#[serde(remote = "Axis", rename_all = "lowercase")]
enum AxisName {
    #[serde(alias = "row")]
    Rows,
    #[serde(alias = "col", alias = "columns")]
    Cols,
}

section! {
    #[serde(deny_unknown_fields)]
    pub struct ModelConfig {
        /// Hidden layer widths (input and output sizes come from the data).
        pub hidden: Vec<usize> = vec![100, 100],
        /// Leaky ReLU slope, `0 < α < 1` (method §1).
        pub alpha: f64 = 0.1 => Open,
        pub loss: LossKind = LossKind::Squared,
        /// Groups of W₁: rows (neurons) or columns (input features).
        #[serde(with = "AxisName")]
        pub input_groups: Axis = Axis::Rows,
        /// Groups of W_L: rows (as in the paper) or columns (never removes an output).
        #[serde(with = "AxisName")]
        pub output_groups: Axis = Axis::Rows,
        pub init_seed: u64 = 0,
    }
}

named! {
    /// The training methods (method §4 and §7).
    pub enum Method {
        Alm = "alm",
        ProxSgd = "prox-sgd",
        ProxAdam = "prox-adam",
        ProxGd = "prox-gd",
        ProxApg = "prox-apg",
        WarmAlm = "warm+alm",
    }
}

named! {
    /// The ALM's outer iteration (method §4; the variant of method §7).
    pub enum AlmVariant {
        /// method §4 as written: inner sweeps, multiplier update, ρ rule.
        Plain = "plain",
        /// method §7 "P0 steps with a feasible restart": after the inner sweeps and the ρ
        /// rule, `alm.p0_steps` Armijo prox-gradient steps on (P0) from the ALM's W, then
        /// `V` = forward pass and `Λ` = the adjoint multipliers.
        P0Steps = "p0-steps",
    }
}

named! {
    /// Which backend runs the work.
    pub enum DeviceChoice {
        Auto = "auto",
        Gpu = "gpu",
        Cpu = "cpu",
    }
}

section! {
    #[serde(deny_unknown_fields)]
    pub struct TrainConfig {
        pub method: Method = Method::WarmAlm,
        /// λ of (P0).
        pub lambda: f64 = 1e-3 => NonNegative,
        /// Seed for minibatch order (init has its own, `model.init_seed`).
        pub seed: u64 = 0,
        /// Work budget in passes (method §5); `inf` = none.
        pub max_passes: f64 = 300.0 => Budget,
        /// Wall-time budget in seconds; `inf` = none.
        pub max_seconds: f64 = f64::INFINITY => Budget,
        pub device: DeviceChoice = DeviceChoice::Auto,
        /// When a method diverges ((P0) or the loss non-finite, or above 1e6 times its
        /// scale), save the last finite state as the result (with a warning) instead of
        /// stopping with an error and writing no model.
        pub keep_diverged: bool = false,
        /// Seconds between two checkpoints of `train` (the full solver state, written
        /// atomically to `checkpoint.safetensors`; also at the end of each phase), for
        /// `train --resume`; 0 = at every epoch/iteration, `inf` = at phase ends only.
        pub checkpoint_seconds: f64 = 30.0,
    }
}

section! {
    /// method §4 and §6 parameters of the ALM.
    #[serde(deny_unknown_fields)]
    pub struct AlmConfig {
        /// ρ0 from a random start (method §6).
        pub rho0: f64 = 3.0 => Positive,
        /// ρ0 after a warm start (method §6).
        pub rho0_warm: f64 = 30.0 => Positive,
        pub gamma: f64 = 2.0,
        pub tau: f64 = 0.9 => Open,
        pub eps0: f64 = 0.3 => Positive,
        pub theta: f64 = 0.3 => Open,
        pub eps_min: f64 = 1e-6 => Positive,
        pub inner_cap: usize = 20 => Count,
        /// Armijo steps per block per sweep (`k`, method §6: 1–3).
        pub block_steps: usize = 1 => Count,
        pub max_outer: usize = 10000 => Count,
        /// Stop when the relative KKT residual (method §5) falls below this.
        pub kkt_tol: f64 = 1e-6 => NonNegative,
        /// Exact `V_{L−1}` and `(W_L, b_L)` blocks (method §6; squared loss only).
        pub exact_blocks: bool = false,
        /// The outer iteration: `p0-steps` (measured better: lower `cert` at equal (P0))
        /// or `plain` (method §4 as written).
        pub variant: AlmVariant = AlmVariant::P0Steps,
        /// Armijo prox-gradient steps on (P0) per outer iteration of the `p0-steps` variant.
        pub p0_steps: usize = 3 => Count,
    }
}

section! {
    /// method §7 baselines.
    #[serde(deny_unknown_fields)]
    pub struct SgdConfig {
        pub lr: f64 = 0.02 => Positive,
        pub momentum: f64 = 0.9 => HalfOpen,
        pub batch: usize = 128 => Count,
    }
}

section! {
    #[serde(deny_unknown_fields)]
    pub struct AdamConfig {
        pub lr: f64 = 1e-3 => Positive,
        pub beta1: f64 = 0.9 => HalfOpen,
        pub beta2: f64 = 0.999 => HalfOpen,
        pub eps: f64 = 1e-8 => Positive,
        pub batch: usize = 128 => Count,
    }
}

section! {
    /// prox-GD and prox-APG (method §7).
    #[serde(deny_unknown_fields)]
    pub struct GdConfig {
        /// Initial step of the Armijo backtracking (prox-GD's first trial, APG's `t`).
        pub step0: f64 = 1.0 => Positive,
    }
}

section! {
    #[serde(deny_unknown_fields)]
    pub struct WarmConfig {
        /// Passes of prox-SGD before the ALM polish (prototype: 200 of 300).
        pub passes: f64 = 200.0 => NonNegative,
    }
}

section! {
    #[serde(deny_unknown_fields)]
    pub struct CompareConfig {
        pub methods: Vec<Method> = Method::ALL.to_vec(),
        /// Pass counts at which (P0) is recorded for the (P0)-vs-passes table.
        pub pass_checkpoints: Vec<f64> = vec![10.0, 30.0, 100.0, 200.0, 300.0],
        /// Seconds at which (P0) is recorded for the (P0)-vs-time table.
        pub time_checkpoints: Vec<f64> = Vec::new(),
    }
}

mod path;
pub use path::{parse_grid, PathConfig, Polisher};

/// A whole run configuration, section by section as in the file. `Config::default()` is
/// every section's default (the teacher problem); the CLI's default is [`DEFAULT_CONFIG`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    pub path: PathConfig,
}

/// A configuration error; `field` is the dotted TOML path. A value given with `--set`
/// is blamed on that override (`set`), any other on the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {msg}")]
    Parse { file: String, msg: String },
    #[error(
        "{}config field `{field}`{}: {msg}",
        file.as_ref().map(|f| format!("{f}: ")).unwrap_or_default(),
        set.as_ref().map(|s| format!(" (from --set {s})")).unwrap_or_default()
    )]
    Field {
        file: Option<String>,
        set: Option<String>,
        field: String,
        msg: String,
    },
}

impl ConfigError {
    /// An error of `field`, not yet located in a file or override.
    pub(crate) fn field(field: impl Into<String>, msg: impl Into<String>) -> Self {
        ConfigError::Field {
            file: None,
            set: None,
            field: field.into(),
            msg: msg.into(),
        }
    }
}

impl Config {
    /// The resolved configuration as TOML in the file layout (every key explicit), so a
    /// run's saved config reproduces it with `--config`. Paths are written absolute: a
    /// saved config lives in a run's output folder, where relative paths would resolve
    /// against the wrong directory.
    pub fn to_toml(&self) -> String {
        let mut c = self.clone();
        for (_, p) in c.data.source.paths_mut() {
            *p = load::absolute(p);
        }
        toml::to_string(&c).unwrap_or_else(|e| format!("# could not serialise the config: {e}\n"))
    }
}
