//! Run configuration. Each setting is defined once, here (the `[data]` section in
//! `data`, beside the readers it drives): its type, its doc and its default (the
//! `section!` tables of `settings`, the measured defaults of method §6 and the
//! numpy prototype's measurements); serde reads and writes the TOML layout from these
//! same structs. `load` turns a file (or the built-in default) plus `--set` overrides
//! into a [`Config`]; `validate` checks value ranges and cross-field rules. Every error
//! names its dotted field (`alm.rho0`, `data.test_fraction`, …) and where the value came
//! from: the file, or the `--set` override that supplied it.

mod load;
mod validate;

pub use crate::data::{DataConfig, DataSource, Task, TeacherParams};
pub use crate::settings::ConfigError;
pub use load::{config_from_str, load_config};

use crate::backend::{Axis, LossKind};
use serde::{Deserialize, Serialize};

/// The built-in default configuration (the digits problem), used when no file is given.
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/digits.toml");

/// Most hidden layers a network may have (the solver's scalar-slot layout holds 10 layers).
pub const MAX_HIDDEN: usize = 9;

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
