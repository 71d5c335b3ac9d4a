//! The network (method §1): sizes, α, weights and biases; its initialisation, a host
//! reference forward pass, the sparsity measures (zero groups, live neurons, the
//! `‖·‖_{2,1}` penalty) and the errors of its files. `io` owns the on-disk format
//! ([`save`], [`load`], [`ModelMeta`]); `compact` removes dead neurons (method §9).

pub mod compact;
mod io;

pub use io::{load, save, save_with, ModelMeta};

use std::path::PathBuf;

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::backend::Axis;

/// The `model.json` format this build writes and the only one it reads.
pub const FORMAT_VERSION: u32 = 1;
/// File names inside a run directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
pub const META_FILE: &str = "model.json";

/// Errors reading, writing or validating a model. Each names the file and the tensor or
/// field at fault, because the user's fix is always "this file, this entry".
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON")]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: field `{field}`: {msg}")]
    Meta {
        path: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{path}: unknown format_version {found} (this program reads version {supported})")]
    FormatVersion {
        path: PathBuf,
        found: String,
        supported: u32,
    },
    #[error("{path}: not a safetensors file: {msg}")]
    Safetensors { path: PathBuf, msg: String },
    #[error("{path}: tensor `{tensor}` is missing")]
    MissingTensor { path: PathBuf, tensor: String },
    #[error("{path}: tensor `{tensor}` has shape {found:?}, expected {expected:?} (from sizes in model.json)")]
    TensorShape {
        path: PathBuf,
        tensor: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path}: tensor `{tensor}` has dtype {found}, expected F32")]
    TensorDtype {
        path: PathBuf,
        tensor: String,
        found: String,
    },
    #[error("{path}: tensor `{tensor}` has a non-finite value ({value}) at flat index {index}")]
    NonFinite {
        path: PathBuf,
        tensor: String,
        index: usize,
        value: f32,
    },
    #[error("{path}: expected a run directory, {WEIGHTS_FILE} or {META_FILE}")]
    BadPath { path: PathBuf },
    /// An in-memory network that is inconsistent (layer shapes, α, or meta.sizes), found
    /// before anything is written or while evaluating.
    #[error("invalid network: {0}")]
    Invalid(String),
}

pub(crate) type MResult<T> = Result<T, ModelError>;

/// A leaky ReLU network (method §1): hidden layers use σ(u)=max(u,αu), output linear.
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    pub alpha: f32,
    /// `W_l`: `n_l × n_{l−1}`, index 0 is layer 1.
    pub w: Vec<Array2<f32>>,
    /// `b_l`: `n_l × 1` (a column, so `W A + b` broadcasts over samples).
    pub b: Vec<Array2<f32>>,
}

/// σ(u) = max(u, αu) for 0 < α < 1 (method §1).
#[inline]
fn leaky(u: f32, alpha: f32) -> f32 {
    if u > 0.0 {
        u
    } else {
        alpha * u
    }
}

/// A group is zero only when every entry is exactly ±0; a NaN keeps it nonzero, so a
/// diverged weight is never reported as pruned.
fn all_zero<'a>(it: impl IntoIterator<Item = &'a f32>) -> bool {
    it.into_iter().all(|&v| v == 0.0)
}

impl Network {
    /// `[n0, n1, …, nL]`.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = Vec::with_capacity(self.w.len() + 1);
        if let Some(w0) = self.w.first() {
            s.push(w0.ncols());
        }
        s.extend(self.w.iter().map(|w| w.nrows()));
        s
    }

    /// `L`, the number of weight layers.
    pub fn layers(&self) -> usize {
        self.w.len()
    }

    /// He init (std = sqrt(2/((1+α²)·fan_in)), b = 0), ChaCha8Rng seeded, layer by layer
    /// row-major draws.
    ///
    /// The `(1+α²)` factor is the leaky-ReLU correction that keeps activation variance
    /// constant through depth. One RNG stream over all layers makes the network a pure
    /// function of `(sizes, α, seed)`, so CPU and GPU runs start from identical weights.
    pub fn he_init(sizes: &[usize], alpha: f32, seed: u64) -> Network {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut w = Vec::with_capacity(sizes.len().saturating_sub(1));
        let mut b = Vec::with_capacity(sizes.len().saturating_sub(1));
        let a = f64::from(alpha);
        for pair in sizes.windows(2) {
            let (fan_in, fan_out) = (pair[0], pair[1]);
            let std = (2.0 / ((1.0 + a * a) * fan_in.max(1) as f64)).sqrt();
            // `from_shape_simple_fn` fills in logical row-major order.
            let m = Array2::from_shape_simple_fn((fan_out, fan_in), || {
                let z: f64 = StandardNormal.sample(&mut rng);
                (z * std) as f32
            });
            w.push(m);
            b.push(Array2::zeros((fan_out, 1)));
        }
        Network { alpha, w, b }
    }

    /// The empty network (method §1): all weights and biases zero. It predicts 0 for every
    /// input, and its (P0) value is the baseline every result is compared with.
    pub fn zeros(sizes: &[usize], alpha: f32) -> Network {
        let w = sizes
            .windows(2)
            .map(|p| Array2::zeros((p[1], p[0])))
            .collect();
        let b = sizes.windows(2).map(|p| Array2::zeros((p[1], 1))).collect();
        Network { alpha, w, b }
    }

    /// Checks that consecutive layers chain, biases are `n_l × 1` and `0 < α < 1`.
    pub fn validate(&self) -> MResult<()> {
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(ModelError::Invalid(format!(
                "alpha = {} is not in (0, 1)",
                self.alpha
            )));
        }
        if self.w.is_empty() {
            return Err(ModelError::Invalid("no layers".into()));
        }
        if self.w.len() != self.b.len() {
            return Err(ModelError::Invalid(format!(
                "{} weight matrices but {} biases",
                self.w.len(),
                self.b.len()
            )));
        }
        for l in 0..self.w.len() {
            let (r, c) = self.w[l].dim();
            if l > 0 && c != self.w[l - 1].nrows() {
                return Err(ModelError::Invalid(format!(
                    "W{} is {r}×{c} but layer {} has {} neurons",
                    l + 1,
                    l,
                    self.w[l - 1].nrows()
                )));
            }
            if self.b[l].dim() != (r, 1) {
                return Err(ModelError::Invalid(format!(
                    "b{} is {:?}, expected ({r}, 1)",
                    l + 1,
                    self.b[l].dim()
                )));
            }
        }
        Ok(())
    }

    /// Host reference forward pass with ndarray (x: n0 × N, one sample per column) → Ŷ
    /// (nL × N).
    ///
    /// Panics if `x` has the wrong number of rows: callers validate data against the
    /// model first (use [`Network::try_forward`] where the input is not yet checked).
    pub fn forward(&self, x: ArrayView2<f32>) -> Array2<f32> {
        match self.try_forward(x) {
            Ok(y) => y,
            Err(e) => panic!("Network::forward: {e}"),
        }
    }

    /// [`Network::forward`] that reports a shape mismatch instead of panicking.
    pub fn try_forward(&self, x: ArrayView2<f32>) -> MResult<Array2<f32>> {
        self.validate()?;
        let n0 = self.w[0].ncols();
        if x.nrows() != n0 {
            return Err(ModelError::Invalid(format!(
                "input has {} features, the network expects {n0}",
                x.nrows()
            )));
        }
        let last = self.w.len() - 1;
        let mut a = x.to_owned();
        for (l, (w, b)) in self.w.iter().zip(&self.b).enumerate() {
            let mut u = w.dot(&a);
            u += b; // (n_l×1) broadcasts over the N columns
            if l < last {
                let alpha = self.alpha;
                u.mapv_inplace(|v| leaky(v, alpha));
            }
            a = u;
        }
        Ok(a)
    }

    /// Zero groups per layer (exact zeros, ‖group‖ == 0), groups by `axes[l]` (rows or
    /// columns). Layers beyond `axes.len()` use rows, the default of method §1.
    pub fn zero_groups(&self, axes: &[Axis]) -> Vec<usize> {
        self.w
            .iter()
            .enumerate()
            .map(|(l, w)| match axes.get(l).copied().unwrap_or(Axis::Rows) {
                Axis::Rows => w.rows().into_iter().filter(|r| all_zero(r)).count(),
                Axis::Cols => w.columns().into_iter().filter(|c| all_zero(c)).count(),
            })
            .collect()
    }

    /// Live neurons per hidden layer (`L−1` entries): neuron `i` of hidden layer `l` is
    /// live iff row `i` of `W_l` is nonzero AND column `i` of `W_{l+1}` is nonzero.
    ///
    /// Bias rule: a neuron whose incoming row is zero outputs the constant `σ(b_i)` for
    /// every input, whatever its bias; it is counted dead, because pruning it and adding
    /// `σ(b_i)·W_{l+1}[:, i]` to `b_{l+1}` leaves the function exactly unchanged. So the
    /// count is the width of the smallest equivalent network obtained by removing neurons
    /// one at a time, per layer (no cascade: a neuron fed only by dead neurons is still
    /// counted live if its row is nonzero).
    pub fn live_neurons(&self) -> Vec<usize> {
        (0..self.w.len().saturating_sub(1))
            .map(|l| {
                let (w_in, w_out) = (&self.w[l], &self.w[l + 1]);
                (0..w_in.nrows())
                    .filter(|&i| {
                        !all_zero(w_in.row(i)) && i < w_out.ncols() && !all_zero(w_out.column(i))
                    })
                    .count()
            })
            .collect()
    }

    /// Σ_l ‖W_l‖_{2,1} with the given group axes (f64 accumulation, so the penalty is
    /// reproducible to ~1e-12 whatever the matrix size). Layers beyond `axes.len()` use
    /// rows.
    pub fn penalty(&self, axes: &[Axis]) -> f64 {
        let norm = |it: ndarray::ArrayView1<f32>| {
            it.iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt()
        };
        self.w
            .iter()
            .enumerate()
            .map(|(l, w)| match axes.get(l).copied().unwrap_or(Axis::Rows) {
                Axis::Rows => w.rows().into_iter().map(norm).sum::<f64>(),
                Axis::Cols => w.columns().into_iter().map(norm).sum::<f64>(),
            })
            .sum()
    }

    /// Number of trainable scalars: `Σ_l n_l·n_{l−1} + n_l`.
    pub fn param_count(&self) -> usize {
        self.w
            .iter()
            .zip(&self.b)
            .map(|(w, b)| w.len() + b.len())
            .sum()
    }
}
