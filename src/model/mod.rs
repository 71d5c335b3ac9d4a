//! The network (method §1): sizes, α, weights and biases; its initialisation, a host
//! reference forward pass, the sparsity measures (zero groups, live neurons, the
//! `‖·‖_{2,1}` penalty), and the on-disk format: `model.safetensors` (tensors `w1`,`b1`,…,
//! f32, biases 1-D) beside `model.json` ([`ModelMeta`]). Everything that reads or writes a
//! trained model goes through [`save`] and [`load`], which validate so that a damaged or
//! mismatched file is reported by name instead of producing a silently wrong network.

pub mod compact;

use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::backend::{Axis, LossKind};
use crate::config::Task;

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

type MResult<T> = Result<T, ModelError>;

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

/// Metadata saved beside the weights as model.json.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct ModelMeta {
    /// [`FORMAT_VERSION`]; checked first on load so a future format fails clearly.
    pub format_version: u32,
    pub sizes: Vec<usize>,
    pub alpha: f64,
    pub lambda: f64,
    pub loss: LossKind,
    pub input_groups: Axis,
    pub output_groups: Axis,
    pub task: Task,
    pub method: String,
    pub seed: u64,
    pub init_seed: u64,
    pub target: Vec<String>,
    pub class_names: Vec<String>,
    /// The input features in the order the network reads them (empty in files written
    /// before names were stored); `eval` and `predict` match data columns by these.
    #[serde(default)]
    pub feature_names: Vec<String>,
    /// `data::Preprocess` serialised by the caller (keeps model.rs independent of data).
    pub preprocess: serde_json::Value,
    /// Final measures, free-form object.
    pub metrics: serde_json::Value,
    pub created_unix: u64,
    pub program_version: String,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes DIR/model.safetensors (tensors "w1","b1",… f32; b as 1-D) and DIR/model.json,
/// each atomically (output::write_atomic). Creates DIR.
///
/// Refuses a network that `load` would reject (inconsistent shapes, α outside (0,1),
/// `meta.sizes` ≠ the network's sizes, non-finite weights), so a saved model always loads.
/// The weights are written first: a run killed between the two writes leaves a stale or
/// missing model.json, which `load` reports, rather than new metadata describing old weights.
pub fn save(dir: &Path, net: &Network, meta: &ModelMeta) -> Result<(), ModelError> {
    save_with(dir, net, meta, &serde_json::Map::new())
}

/// [`save`] with `extra` top-level entries in model.json beside the [`ModelMeta`] fields
/// (an export's self-description: activations, layer list, compaction); [`load`] reads
/// the [`ModelMeta`] fields and ignores them. An entry may not replace a meta field.
pub fn save_with(
    dir: &Path,
    net: &Network,
    meta: &ModelMeta,
    extra: &serde_json::Map<String, serde_json::Value>,
) -> Result<(), ModelError> {
    net.validate()?;
    if meta.sizes != net.sizes() {
        return Err(ModelError::Invalid(format!(
            "meta.sizes {:?} differ from the network's sizes {:?}",
            meta.sizes,
            net.sizes()
        )));
    }
    if !(meta.alpha > 0.0 && meta.alpha < 1.0 && meta.lambda.is_finite()) {
        return Err(ModelError::Invalid(format!(
            "meta.alpha = {} must be in (0, 1) and meta.lambda = {} finite",
            meta.alpha, meta.lambda
        )));
    }
    let wpath = dir.join(WEIGHTS_FILE);
    let mpath = dir.join(META_FILE);

    // Little-endian bytes built by hand: safetensors is LE by definition, and this avoids
    // any alignment or endianness assumption about the host.
    let mut bufs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::with_capacity(2 * net.layers());
    for (l, (w, b)) in net.w.iter().zip(&net.b).enumerate() {
        for (name, m, shape) in [
            (format!("w{}", l + 1), w, vec![w.nrows(), w.ncols()]),
            (format!("b{}", l + 1), b, vec![b.nrows()]),
        ] {
            let mut bytes = Vec::with_capacity(m.len() * 4);
            // `iter()` visits in logical row-major order whatever the memory layout.
            for (i, &v) in m.iter().enumerate() {
                if !v.is_finite() {
                    return Err(ModelError::NonFinite {
                        path: wpath,
                        tensor: name,
                        index: i,
                        value: v,
                    });
                }
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            bufs.push((name, shape, bytes));
        }
    }
    let st = safetensors_bytes(&bufs);
    let json_err = |source| ModelError::Json {
        path: mpath.clone(),
        source,
    };
    // Without extras the struct is written directly, keeping its field order.
    let mut js = if extra.is_empty() {
        serde_json::to_vec_pretty(meta).map_err(json_err)?
    } else {
        let mut value = serde_json::to_value(meta).map_err(json_err)?;
        if let Some(obj) = value.as_object_mut() {
            for (k, v) in extra {
                if obj.insert(k.clone(), v.clone()).is_some() {
                    return Err(ModelError::Invalid(format!(
                        "model.json entry `{k}` would replace a metadata field"
                    )));
                }
            }
        }
        serde_json::to_vec_pretty(&value).map_err(json_err)?
    };
    js.push(b'\n');

    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    crate::output::write_atomic(&wpath, &st).map_err(io_err(&wpath))?;
    crate::output::write_atomic(&mpath, &js).map_err(io_err(&mpath))?;
    Ok(())
}

/// The safetensors file of `tensors` (name, shape, little-endian f32 bytes), written
/// here rather than by `safetensors::serialize` so the header is the same bytes on every
/// run (that function takes the `__metadata__` as a `HashMap`, whose order changes from
/// process to process): a JSON object with its keys in sorted order, padded with spaces to
/// a multiple of 8 bytes, after its length as a little-endian u64; then the tensors' data
/// in the order given. `load` reads it back through the `safetensors` crate.
fn safetensors_bytes(tensors: &[(String, Vec<usize>, Vec<u8>)]) -> Vec<u8> {
    use serde_json::{json, Value};
    use std::collections::BTreeMap;
    let mut header: BTreeMap<String, Value> = BTreeMap::new();
    let info: BTreeMap<&str, String> = [
        ("format", "sparse-alm".to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
    ]
    .into_iter()
    .collect();
    header.insert("__metadata__".into(), json!(info));
    let mut offset = 0usize;
    for (name, shape, bytes) in tensors {
        let end = offset + bytes.len();
        let mut entry: BTreeMap<&str, Value> = BTreeMap::new();
        entry.insert("dtype", json!("F32"));
        entry.insert("shape", json!(shape));
        entry.insert("data_offsets", json!([offset, end]));
        header.insert(name.clone(), json!(entry));
        offset = end;
    }
    // Serialising string keys and numbers cannot fail.
    let mut head = serde_json::to_vec(&header).unwrap_or_default();
    while head.len() % 8 != 0 {
        head.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for (_, _, bytes) in tensors {
        out.extend_from_slice(bytes);
    }
    out
}

/// Reads a model file within the read bounds (a regular file, at most the read limit).
fn read_file(path: &Path) -> MResult<Vec<u8>> {
    crate::data::read_regular(path, crate::data::read_limit()).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e.into_io(),
    })
}

/// Resolves a user path to `(weights, meta)`: a directory holds `model.safetensors` and
/// `model.json`; a `.safetensors` or `.json` file has the other as a same-stem sibling.
fn resolve(path: &Path) -> MResult<(PathBuf, PathBuf)> {
    if path.is_dir() {
        return Ok((path.join(WEIGHTS_FILE), path.join(META_FILE)));
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Ok((path.to_path_buf(), path.with_extension("json"))),
        Some("json") => Ok((path.with_extension("safetensors"), path.to_path_buf())),
        // A missing directory: report the file we would have read in it.
        None if !path.exists() => Ok((path.join(WEIGHTS_FILE), path.join(META_FILE))),
        _ => Err(ModelError::BadPath {
            path: path.to_path_buf(),
        }),
    }
}

/// Parses and validates model.json: the version is checked on the raw JSON before the
/// typed parse, so a newer file fails with "unknown format_version" rather than a
/// confusing missing-field error.
fn read_meta(mpath: &Path) -> MResult<ModelMeta> {
    let text = read_file(mpath)?;
    let v: serde_json::Value =
        serde_json::from_slice(&text).map_err(|source| ModelError::Json {
            path: mpath.to_path_buf(),
            source,
        })?;
    let meta_err = |field: &str, msg: String| ModelError::Meta {
        path: mpath.to_path_buf(),
        field: field.into(),
        msg,
    };
    match v.get("format_version") {
        None => return Err(meta_err("format_version", "missing".into())),
        Some(fv) if fv.as_u64() == Some(u64::from(FORMAT_VERSION)) => {}
        Some(fv) => {
            return Err(ModelError::FormatVersion {
                path: mpath.to_path_buf(),
                found: fv.to_string(),
                supported: FORMAT_VERSION,
            })
        }
    }
    let meta: ModelMeta = serde_json::from_value(v).map_err(|source| ModelError::Json {
        path: mpath.to_path_buf(),
        source,
    })?;
    if meta.sizes.len() < 2 {
        return Err(meta_err(
            "sizes",
            format!(
                "{:?} needs at least an input and an output size",
                meta.sizes
            ),
        ));
    }
    if let Some(i) = meta.sizes.iter().position(|&n| n == 0) {
        return Err(meta_err(
            "sizes",
            format!("{:?} has a zero at position {i}", meta.sizes),
        ));
    }
    if !(meta.alpha > 0.0 && meta.alpha < 1.0) {
        return Err(meta_err(
            "alpha",
            format!("{} is not in (0, 1)", meta.alpha),
        ));
    }
    // The preprocessing is applied to every input: a zero scale or a NaN statistic would
    // turn every loss into NaN, so it is refused here, by field.
    // Data columns are matched by these names: a wrong count or a repeated name would
    // feed the network the wrong features.
    let d0 = meta.sizes[0];
    if !meta.feature_names.is_empty() && meta.feature_names.len() != d0 {
        return Err(meta_err(
            "feature_names",
            format!(
                "has {} names, the model has {d0} inputs",
                meta.feature_names.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some(dup) = meta.feature_names.iter().find(|n| !seen.insert(n.as_str())) {
        return Err(meta_err(
            "feature_names",
            format!("`{}` appears more than once", crate::data::escape(dup)),
        ));
    }
    let pre: crate::data::Preprocess = serde_json::from_value(meta.preprocess.clone())
        .map_err(|e| meta_err("preprocess", e.to_string()))?;
    let (d, m) = (meta.sizes[0], meta.sizes[meta.sizes.len() - 1]);
    if let Err((field, msg)) = pre.check(d, m) {
        return Err(meta_err(&format!("preprocess.{field}"), msg));
    }
    Ok(meta)
}

/// `path` may be the run directory, model.safetensors or model.json (the other file is
/// its sibling). Validates: json parses, format_version known, every tensor present with
/// the shape meta.sizes implies, dtype f32, no NaN/inf, alpha in (0,1), the stored
/// preprocessing usable (scale positive and finite, statistics finite, stds positive,
/// one per input or output). Errors name the
/// file and the tensor/field. Extra tensors are ignored (room for future additions).
pub fn load(path: &Path) -> Result<(Network, ModelMeta), ModelError> {
    let (wpath, mpath) = resolve(path)?;
    let meta = read_meta(&mpath)?;
    let bytes = read_file(&wpath)?;
    let st =
        safetensors::SafeTensors::deserialize(&bytes).map_err(|e| ModelError::Safetensors {
            path: wpath.clone(),
            msg: e.to_string(),
        })?;

    let read = |name: String, expected: Vec<usize>| -> MResult<Vec<f32>> {
        let t = st.tensor(&name).map_err(|_| ModelError::MissingTensor {
            path: wpath.clone(),
            tensor: name.clone(),
        })?;
        if t.dtype() != safetensors::Dtype::F32 {
            return Err(ModelError::TensorDtype {
                path: wpath.clone(),
                tensor: name,
                found: format!("{:?}", t.dtype()),
            });
        }
        if t.shape() != expected.as_slice() {
            return Err(ModelError::TensorShape {
                path: wpath.clone(),
                tensor: name,
                expected,
                found: t.shape().to_vec(),
            });
        }
        let vals: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if let Some((index, &value)) = vals.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(ModelError::NonFinite {
                path: wpath.clone(),
                tensor: name,
                index,
                value,
            });
        }
        Ok(vals)
    };

    let mut w = Vec::with_capacity(meta.sizes.len() - 1);
    let mut b = Vec::with_capacity(meta.sizes.len() - 1);
    for (l, pair) in meta.sizes.windows(2).enumerate() {
        let (n_in, n_out) = (pair[0], pair[1]);
        let wv = read(format!("w{}", l + 1), vec![n_out, n_in])?;
        let bv = read(format!("b{}", l + 1), vec![n_out])?;
        let shape_err = |e: ndarray::ShapeError| ModelError::Invalid(e.to_string());
        w.push(Array2::from_shape_vec((n_out, n_in), wv).map_err(shape_err)?);
        b.push(Array2::from_shape_vec((n_out, 1), bv).map_err(shape_err)?);
    }
    let net = Network {
        alpha: meta.alpha as f32,
        w,
        b,
    };
    // α close to 1 can round to 1.0 in f32; report it against the field it came from.
    net.validate().map_err(|e| ModelError::Meta {
        path: mpath.clone(),
        field: "alpha".into(),
        msg: e.to_string(),
    })?;
    Ok((net, meta))
}
