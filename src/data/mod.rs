//! Data loading: CSV, NPY, IDX(.gz) files and the synthetic teacher problem → a
//! [`Dataset`] with one sample per **column** (SPEC notation), split into train and test,
//! scaled/standardised, with one-hot targets for classification. Also the matching
//! loader for `sparse-alm eval` ([`load_for_eval`]), which repeats the saved
//! [`Preprocess`] so a model sees test data exactly as it saw its training data.
//!
//! Every error names the file and, for text, the 1-based line (the header is line 1) and
//! the column; for binary files, the sample index.
//!
//! Classification labels: integers `0, 1, …` (written `3` or `3.0`), or, when the first
//! label of a CSV file is not a number, arbitrary strings mapped to their sorted order
//! (class names are then those strings). Integer labels give `max + 1` classes (over train
//! and test) unless `data.classes` fixes the count.

mod csv;
mod idx;
mod npy;
mod split;
mod teacher;

use crate::config::{DataConfig, DataSource, Task};
use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};

/// A data error; every variant names the file, and text errors the line and column.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {msg}", path.display())]
    Empty { path: PathBuf, msg: String },
    #[error("{}: line {line}: expected {expected} fields (as in the header), found {found}", path.display())]
    Ragged {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("{}: line {line}, column `{column}`: cannot parse `{value}` as a number", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: String,
        value: String,
    },
    #[error("{}: {at}: non-finite value `{value}` (NaN and infinities are not allowed)", path.display())]
    NonFinite {
        path: PathBuf,
        at: String,
        value: String,
    },
    #[error("{}: {at}: label `{value}` {reason}", path.display())]
    Label {
        path: PathBuf,
        at: String,
        value: String,
        reason: String,
    },
    #[error("{}: target column `{name}` not found; available columns: {available}", path.display())]
    MissingTarget {
        path: PathBuf,
        name: String,
        available: String,
    },
    #[error("{}: {msg}", path.display())]
    Shape { path: PathBuf, msg: String },
    #[error("{}: {msg}", path.display())]
    Format { path: PathBuf, msg: String },
    #[error("{}: unsupported NPY dtype `{dtype}` (supported: <f4, <f8, <i4, <i8, |u1; little-endian)", path.display())]
    NpyDtype { path: PathBuf, dtype: String },
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Matrices hold one sample per COLUMN (SPEC notation).
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
    fn standardizer(feature_scale: f64, x: &Array2<f32>) -> Preprocess {
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

// ---------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------

pub(crate) enum LabelKind {
    Numeric(Vec<f64>),
    Text(Vec<String>),
}

/// How to point at a label in an error message.
pub(crate) enum Locate {
    /// File line per label, and the column name.
    Lines(Vec<usize>, String),
    /// Binary file: 0-based sample index.
    Samples,
}

pub(crate) struct RawLabels {
    pub path: PathBuf,
    pub kind: LabelKind,
    pub locate: Locate,
}

impl RawLabels {
    fn at(&self, i: usize) -> String {
        match &self.locate {
            Locate::Lines(lines, col) => format!("line {}, column `{col}`", lines[i]),
            Locate::Samples => format!("sample {i} (0-based)"),
        }
    }
    fn len(&self) -> usize {
        match &self.kind {
            LabelKind::Numeric(v) => v.len(),
            LabelKind::Text(v) => v.len(),
        }
    }
    fn err(&self, i: usize, value: String, reason: impl Into<String>) -> DataError {
        DataError::Label {
            path: self.path.clone(),
            at: self.at(i),
            value,
            reason: reason.into(),
        }
    }
    fn numeric_from(path: &Path, values: Vec<f64>) -> RawLabels {
        RawLabels {
            path: path.to_path_buf(),
            kind: LabelKind::Numeric(values),
            locate: Locate::Samples,
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Turn raw labels into class indices. `known`: the class names a model was trained with
/// (eval) — labels must name one of them. Otherwise `classes` (config) bounds integer
/// labels, or the count is inferred over all sets given (train first).
fn resolve_labels(
    sets: &[&RawLabels],
    classes: Option<usize>,
    known: Option<&[String]>,
) -> Result<(Vec<Vec<u32>>, Vec<String>), DataError> {
    let numeric_names = |k: usize| (0..k).map(|i| i.to_string()).collect::<Vec<_>>();
    let known_numeric = known.map(|k| k.iter().enumerate().all(|(i, s)| *s == i.to_string()));
    // Check integer labels; the bound (if any) comes from the model or the config.
    let bound = match known {
        Some(k) if known_numeric == Some(true) => Some(k.len()),
        Some(_) => None,
        None => classes,
    };
    let mut max_label = None::<u32>;
    let mut distinct_text = std::collections::BTreeSet::new();
    for set in sets {
        match &set.kind {
            LabelKind::Numeric(v) => {
                if known_numeric == Some(false) {
                    // A model with named classes: match by the label's text.
                    continue;
                }
                for (i, &x) in v.iter().enumerate() {
                    let s = fmt_num(x);
                    if !x.is_finite() {
                        return Err(set.err(i, s, "is not a finite number"));
                    }
                    if x < 0.0 {
                        return Err(set.err(
                            i,
                            s,
                            "is negative; class labels must be integers 0, 1, …",
                        ));
                    }
                    if x.fract() != 0.0 {
                        return Err(set.err(
                            i,
                            s,
                            "is not an integer; class labels must be integers 0, 1, …",
                        ));
                    }
                    if let Some(b) = bound {
                        if x >= b as f64 {
                            let why = if known.is_some() {
                                format!("is out of range: the model has {b} classes (0..{})", b - 1)
                            } else {
                                format!("is out of range: data.classes = {b} allows 0..{}", b - 1)
                            };
                            return Err(set.err(i, s, why));
                        }
                    }
                    if x > u32::MAX as f64 {
                        return Err(set.err(i, s, "is too large"));
                    }
                    max_label = Some(max_label.map_or(x as u32, |m: u32| m.max(x as u32)));
                }
            }
            LabelKind::Text(v) => {
                if known_numeric == Some(true) {
                    let i = v
                        .iter()
                        .position(|s| s.parse::<f64>().is_err())
                        .unwrap_or(0);
                    return Err(set.err(
                        i,
                        v.get(i).cloned().unwrap_or_default(),
                        "is not a number, but the model's classes are integers",
                    ));
                }
                distinct_text.extend(v.iter().cloned());
            }
        }
    }
    let names: Vec<String> = match known {
        Some(k) => k.to_vec(),
        None if !distinct_text.is_empty() => {
            if sets.iter().any(|s| matches!(s.kind, LabelKind::Numeric(_))) {
                return Err(DataError::Invalid(format!(
                    "{}: labels are text but {} has numeric labels",
                    sets[0].path.display(),
                    sets.iter()
                        .find(|s| matches!(s.kind, LabelKind::Numeric(_)))
                        .map(|s| s.path.display().to_string())
                        .unwrap_or_default()
                )));
            }
            let names: Vec<String> = distinct_text.into_iter().collect();
            if let Some(c) = classes {
                if names.len() > c {
                    return Err(DataError::Invalid(format!(
                        "{}: {} distinct labels but data.classes = {c}",
                        sets[0].path.display(),
                        names.len()
                    )));
                }
            }
            names
        }
        None => numeric_names(classes.unwrap_or_else(|| max_label.map_or(0, |m| m as usize + 1))),
    };
    let mut out = Vec::with_capacity(sets.len());
    for set in sets {
        let idx: Vec<u32> = match &set.kind {
            LabelKind::Numeric(v) if known_numeric != Some(false) => {
                v.iter().map(|&x| x as u32).collect()
            }
            LabelKind::Numeric(v) => {
                let mut r = Vec::with_capacity(v.len());
                for (i, &x) in v.iter().enumerate() {
                    let s = fmt_num(x);
                    match names.iter().position(|n| *n == s) {
                        Some(k) => r.push(k as u32),
                        None => {
                            return Err(set.err(
                                i,
                                s,
                                format!("is not one of the model's classes ({})", names.join(", ")),
                            ))
                        }
                    }
                }
                r
            }
            LabelKind::Text(v) => {
                let mut r = Vec::with_capacity(v.len());
                for (i, s) in v.iter().enumerate() {
                    match names
                        .binary_search(s)
                        .ok()
                        .or_else(|| names.iter().position(|n| n == s))
                    {
                        Some(k) => r.push(k as u32),
                        None => {
                            return Err(set.err(
                                i,
                                s.clone(),
                                format!("is not one of the classes ({})", names.join(", ")),
                            ))
                        }
                    }
                }
                r
            }
        };
        debug_assert_eq!(idx.len(), set.len());
        out.push(idx);
    }
    Ok((out, names))
}

fn one_hot(labels: &[u32], m: usize) -> Array2<f32> {
    let mut y = Array2::zeros((m, labels.len()));
    for (j, &c) in labels.iter().enumerate() {
        if (c as usize) < m {
            y[[c as usize, j]] = 1.0;
        }
    }
    y
}

// ---------------------------------------------------------------------------------------
// Raw reads: every source becomes features (d × N, unscaled) and targets
// ---------------------------------------------------------------------------------------

enum RawTargets {
    /// `m × N` regression targets.
    Values(Array2<f32>),
    Labels(RawLabels),
}

struct RawSet {
    path: PathBuf,
    x: Array2<f32>,
    feature_names: Vec<String>,
    targets: RawTargets,
}

/// Row-major `n × d` → `d × n` in standard layout.
fn to_columns(rows: Vec<f32>, n: usize, d: usize) -> Array2<f32> {
    let a = Array2::from_shape_vec((n, d), rows).unwrap_or_else(|_| Array2::zeros((n, d)));
    a.reversed_axes().as_standard_layout().into_owned()
}

fn read_csv_set(path: &Path, target: &[String], task: Task) -> Result<RawSet, DataError> {
    let t = csv::read_csv(path, target, task)?;
    let d = t.feature_names.len();
    let x = to_columns(t.features, t.n, d);
    let targets = match t.targets {
        csv::CsvTargets::Values(v) => RawTargets::Values(to_columns(v, t.n, t.target_names.len())),
        csv::CsvTargets::Labels(l) => RawTargets::Labels(l),
    };
    Ok(RawSet {
        path: path.to_path_buf(),
        x,
        feature_names: t.feature_names,
        targets,
    })
}

fn read_npy_set(xp: &Path, yp: &Path, task: Task) -> Result<RawSet, DataError> {
    let xa = npy::read_npy(xp)?;
    let (n, d) = match xa.shape[..] {
        [n, d] => (n, d),
        [n] => (n, 1),
        _ => unreachable!("read_npy returns 1-D or 2-D"),
    };
    if n == 0 || d == 0 {
        return Err(DataError::Empty {
            path: xp.to_path_buf(),
            msg: format!("empty feature array (shape {:?})", xa.shape),
        });
    }
    if let Some(k) = xa
        .data
        .iter()
        .position(|v| !v.is_finite() || !(*v as f32).is_finite())
    {
        return Err(DataError::NonFinite {
            path: xp.to_path_buf(),
            at: format!("sample {} (0-based), feature {}", k / d, k % d),
            value: xa.data[k].to_string(),
        });
    }
    let x = to_columns(xa.data.iter().map(|&v| v as f32).collect(), n, d);
    let ya = npy::read_npy(yp)?;
    if ya.shape[0] != n {
        return Err(DataError::Shape {
            path: yp.to_path_buf(),
            msg: format!("has {} samples but {} has {n}", ya.shape[0], xp.display()),
        });
    }
    let m = if ya.shape.len() == 2 { ya.shape[1] } else { 1 };
    let targets = match task {
        Task::Classification => {
            if m != 1 {
                return Err(DataError::Shape {
                    path: yp.to_path_buf(),
                    msg: format!("classification needs one label per sample (shape ({n},) or ({n}, 1)), got {:?}", ya.shape),
                });
            }
            RawTargets::Labels(RawLabels::numeric_from(yp, ya.data))
        }
        Task::Regression => {
            if m == 0 {
                return Err(DataError::Empty {
                    path: yp.to_path_buf(),
                    msg: "no target columns".into(),
                });
            }
            if let Some(k) = ya
                .data
                .iter()
                .position(|v| !v.is_finite() || !(*v as f32).is_finite())
            {
                return Err(DataError::NonFinite {
                    path: yp.to_path_buf(),
                    at: format!("sample {} (0-based), target {}", k / m, k % m),
                    value: ya.data[k].to_string(),
                });
            }
            RawTargets::Values(to_columns(
                ya.data.iter().map(|&v| v as f32).collect(),
                n,
                m,
            ))
        }
    };
    Ok(RawSet {
        path: xp.to_path_buf(),
        x,
        feature_names: (0..d).map(|i| format!("x{i}")).collect(),
        targets,
    })
}

fn read_idx_set(ip: &Path, lp: &Path) -> Result<RawSet, DataError> {
    let im = idx::read_idx(ip)?;
    if im.dims.len() < 2 {
        return Err(DataError::Shape {
            path: ip.to_path_buf(),
            msg: format!("expected an images file (3 dimensions: count, rows, cols), got dimensions {:?}; is this the labels file?", im.dims),
        });
    }
    let n = im.dims[0];
    let d: usize = im.dims[1..].iter().product();
    if n == 0 || d == 0 {
        return Err(DataError::Empty {
            path: ip.to_path_buf(),
            msg: format!("no images (dimensions {:?})", im.dims),
        });
    }
    let lb = idx::read_idx(lp)?;
    if lb.dims.len() != 1 {
        return Err(DataError::Shape {
            path: lp.to_path_buf(),
            msg: format!(
                "expected a labels file (1 dimension), got dimensions {:?}",
                lb.dims
            ),
        });
    }
    if lb.dims[0] != n {
        return Err(DataError::Shape {
            path: lp.to_path_buf(),
            msg: format!(
                "has {} labels but {} has {n} images",
                lb.dims[0],
                ip.display()
            ),
        });
    }
    let x = to_columns(im.data.iter().map(|&b| b as f32).collect(), n, d);
    let names = if im.dims.len() == 3 {
        let c = im.dims[2];
        (0..d).map(|k| format!("px{}_{}", k / c, k % c)).collect()
    } else {
        (0..d).map(|k| format!("x{k}")).collect()
    };
    let labels = RawLabels::numeric_from(lp, lb.data.iter().map(|&b| b as f64).collect());
    Ok(RawSet {
        path: ip.to_path_buf(),
        x,
        feature_names: names,
        targets: RawTargets::Labels(labels),
    })
}

// ---------------------------------------------------------------------------------------
// load
// ---------------------------------------------------------------------------------------

/// Load, split and preprocess the data a config describes.
pub fn load(cfg: &DataConfig) -> Result<LoadedData, DataError> {
    let task = cfg.task;
    let (train_raw, test_raw, what) = match &cfg.source {
        DataSource::Teacher(p) => {
            let (x, y) = teacher::generate(p);
            let names: Vec<String> = (0..x.nrows()).map(|i| format!("x{i}")).collect();
            let cut = p.n_train;
            let n = x.ncols();
            let mk = |a: usize, b: usize| RawSet {
                path: PathBuf::from("<teacher>"),
                x: x.slice(ndarray::s![.., a..b]).to_owned(),
                feature_names: names.clone(),
                targets: RawTargets::Values(y.slice(ndarray::s![.., a..b]).to_owned()),
            };
            let what = format!("teacher {:?} (seed {}, noise {})", p.sizes, p.seed, p.noise);
            (mk(0, cut), Some(mk(cut, n)), what)
        }
        DataSource::Csv {
            path,
            target,
            test_path,
        } => {
            let tr = read_csv_set(path, target, task)?;
            let te = test_path
                .as_ref()
                .map(|p| read_csv_set(p, target, task))
                .transpose()?;
            (tr, te, path.display().to_string())
        }
        DataSource::Npy {
            x,
            y,
            test_x,
            test_y,
        } => {
            let tr = read_npy_set(x, y, task)?;
            let te = match (test_x, test_y) {
                (Some(a), Some(b)) => Some(read_npy_set(a, b, task)?),
                _ => None,
            };
            (tr, te, x.display().to_string())
        }
        DataSource::Idx {
            images,
            labels,
            test_images,
            test_labels,
        } => {
            if task != Task::Classification {
                return Err(DataError::Invalid(format!(
                    "{}: IDX data are class labels; set data.task = \"classification\"",
                    labels.display()
                )));
            }
            let tr = read_idx_set(images, labels)?;
            let te = match (test_images, test_labels) {
                (Some(a), Some(b)) => Some(read_idx_set(a, b)?),
                _ => None,
            };
            (tr, te, images.display().to_string())
        }
    };
    if let Some(te) = &test_raw {
        if te.x.nrows() != train_raw.x.nrows() {
            return Err(DataError::Shape {
                path: te.path.clone(),
                msg: format!(
                    "test set has {} features but the training set {} has {}",
                    te.x.nrows(),
                    train_raw.path.display(),
                    train_raw.x.nrows()
                ),
            });
        }
    }
    // Targets → full datasets.
    let (mut train_all, test_given) = match (train_raw.targets, test_raw) {
        (RawTargets::Labels(l), te) => {
            let (te_x, te_l, te_names) = match te {
                Some(RawSet {
                    x,
                    targets: RawTargets::Labels(tl),
                    feature_names,
                    ..
                }) => (Some(x), Some(tl), Some(feature_names)),
                Some(_) => unreachable!("train and test are read with the same task"),
                None => (None, None, None),
            };
            let mut sets = vec![&l];
            if let Some(tl) = &te_l {
                sets.push(tl);
            }
            let (mut idx, names) = resolve_labels(&sets, cfg.classes, None)?;
            let m = names.len();
            if m == 0 {
                return Err(DataError::Empty {
                    path: train_raw.path.clone(),
                    msg: "no labels".into(),
                });
            }
            let te_idx = if idx.len() > 1 { idx.pop() } else { None };
            let tr_idx = idx.pop().unwrap_or_default();
            let mk = |x: Array2<f32>, lab: Vec<u32>, fnames: Vec<String>| Dataset {
                y: one_hot(&lab, m),
                x,
                labels: Some(lab),
                task,
                feature_names: fnames,
                class_names: names.clone(),
            };
            let test = match (te_x, te_idx, te_names) {
                (Some(x), Some(li), Some(fnames)) => Some(mk(x, li, fnames)),
                _ => None,
            };
            (mk(train_raw.x, tr_idx, train_raw.feature_names), test)
        }
        (RawTargets::Values(y), te) => {
            let mk = |x, y, fnames| Dataset {
                x,
                y,
                labels: None,
                task,
                feature_names: fnames,
                class_names: Vec::new(),
            };
            let test = match te {
                Some(RawSet {
                    x,
                    targets: RawTargets::Values(ty),
                    feature_names,
                    ..
                }) => {
                    if ty.nrows() != y.nrows() {
                        return Err(DataError::Shape {
                            path: PathBuf::from(&what),
                            msg: format!(
                                "test set has {} targets but the training set has {}",
                                ty.nrows(),
                                y.nrows()
                            ),
                        });
                    }
                    Some(mk(x, ty, feature_names))
                }
                Some(_) => unreachable!("train and test are read with the same task"),
                None => None,
            };
            (mk(train_raw.x, y, train_raw.feature_names), test)
        }
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.split_seed);
    let stratify = cfg.stratify && task == Task::Classification;
    let n_all = train_all.n();
    let mut split_note = String::new();
    let mut test = match test_given {
        Some(t) => {
            split_note.push_str("separate test set");
            t
        }
        None => {
            let n_test = (cfg.test_fraction * n_all as f64 - 1e-9).ceil().max(0.0) as usize;
            if n_test >= n_all {
                return Err(DataError::Invalid(format!(
                    "{what}: {n_all} samples leave none for training with data.test_fraction = {}",
                    cfg.test_fraction
                )));
            }
            let strata = if stratify {
                train_all.labels.as_deref()
            } else {
                None
            };
            let (keep, take) = split::split_indices(n_all, n_test, strata, &mut rng);
            split_note = format!(
                "{}split, test_fraction {}, seed {}",
                if stratify { "stratified " } else { "" },
                cfg.test_fraction,
                cfg.split_seed
            );
            let test = train_all.select(&take);
            train_all = train_all.select(&keep);
            test
        }
    };
    let mut train = train_all;
    if cfg.max_train > 0 && cfg.max_train < train.n() {
        let strata = if stratify { train.labels.clone() } else { None };
        let n = train.n();
        let (_, keep) = split::split_indices(n, cfg.max_train, strata.as_deref(), &mut rng);
        train = train.select(&keep);
        split_note.push_str(&format!(", training set capped at {}", cfg.max_train));
    }
    // Preprocess: scale, then standardise with training statistics.
    let mut pre = Preprocess {
        feature_scale: cfg.feature_scale,
        mean: None,
        std: None,
    };
    pre.apply(&mut train.x);
    if cfg.standardize {
        let st = Preprocess::standardizer(1.0, &train.x);
        st.apply(&mut train.x);
        pre.mean = st.mean;
        pre.std = st.std;
    }
    pre.apply(&mut test.x);
    let description = format!(
        "{what}: {} train / {} test samples, {} features, {}; {split_note}{}{}",
        train.n(),
        test.n(),
        train.d(),
        match task {
            Task::Classification => format!("{} classes", train.m()),
            Task::Regression => format!("{} targets", train.m()),
        },
        if cfg.feature_scale != 1.0 {
            format!(", features / {}", cfg.feature_scale)
        } else {
            String::new()
        },
        if cfg.standardize {
            ", standardised"
        } else {
            ""
        },
    );
    Ok(LoadedData {
        train,
        test,
        preprocess: pre,
        description,
    })
}

// ---------------------------------------------------------------------------------------
// eval
// ---------------------------------------------------------------------------------------

fn find_idx_pair(dir: &Path) -> Result<(PathBuf, PathBuf), DataError> {
    let entries = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, e))?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for e in entries.flatten() {
        let p = e.path();
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        if !p.is_file() {
            continue;
        }
        if name.contains("images") || name.contains("idx3") {
            images.push(p);
        } else if name.contains("labels") || name.contains("idx1") {
            labels.push(p);
        }
    }
    images.sort();
    labels.sort();
    if images.len() == 1 && labels.len() == 1 {
        return Ok((images.remove(0), labels.remove(0)));
    }
    let list = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(DataError::Invalid(format!(
        "{}: expected exactly one IDX images file and one labels file in the directory, found images [{}] and labels [{}]; give them as `IMAGES,LABELS`",
        dir.display(),
        list(&images),
        list(&labels)
    )))
}

/// For `sparse-alm eval MODEL DATA`. `path` may be:
/// - a `.csv` file (target column(s) as in `spec.target`, `label` when empty);
/// - `X.npy,Y.npy` (two paths joined by a comma, the first ending in `.npy`);
/// - `IMAGES,LABELS` (two IDX files, gzipped or not);
/// - a directory holding exactly one IDX images file and one labels file (names
///   containing `images`/`idx3` and `labels`/`idx1`).
///
/// The raw features then go through `spec.preprocess`, and `d`/`m` are checked against
/// the model.
pub fn load_for_eval(path: &Path, spec: &EvalSpec) -> Result<Dataset, DataError> {
    let s = path.to_string_lossy().to_string();
    let raw = if let Some((a, b)) = s.split_once(',') {
        let (a, b) = (Path::new(a.trim()), Path::new(b.trim()));
        if a.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
            read_npy_set(a, b, spec.task)?
        } else {
            read_idx_set(a, b)?
        }
    } else if path.is_dir() {
        let (a, b) = find_idx_pair(path)?;
        read_idx_set(&a, &b)?
    } else if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let target = if spec.target.is_empty() {
            vec!["label".to_string()]
        } else {
            spec.target.clone()
        };
        read_csv_set(path, &target, spec.task)?
    } else {
        return Err(DataError::Invalid(format!(
            "{}: unrecognised data for eval; give a .csv file, `X.npy,Y.npy`, `IMAGES,LABELS` (IDX) or a directory with one IDX images and one labels file",
            path.display()
        )));
    };
    if raw.x.nrows() != spec.n_inputs {
        return Err(DataError::Shape {
            path: raw.path.clone(),
            msg: format!(
                "has {} features but the model expects {}",
                raw.x.nrows(),
                spec.n_inputs
            ),
        });
    }
    let mut ds = match raw.targets {
        RawTargets::Labels(l) => {
            if spec.task != Task::Classification {
                return Err(DataError::Invalid(format!(
                    "{}: class labels given to a regression model",
                    l.path.display()
                )));
            }
            let known: Vec<String> = if spec.class_names.len() == spec.n_outputs {
                spec.class_names.clone()
            } else {
                (0..spec.n_outputs).map(|i| i.to_string()).collect()
            };
            let (mut idx, names) = resolve_labels(&[&l], None, Some(&known))?;
            let lab = idx.pop().unwrap_or_default();
            Dataset {
                y: one_hot(&lab, spec.n_outputs),
                x: raw.x,
                labels: Some(lab),
                task: spec.task,
                feature_names: raw.feature_names,
                class_names: names,
            }
        }
        RawTargets::Values(y) => {
            if spec.task != Task::Regression {
                return Err(DataError::Invalid(format!(
                    "{}: real targets given to a classification model",
                    raw.path.display()
                )));
            }
            if y.nrows() != spec.n_outputs {
                return Err(DataError::Shape {
                    path: raw.path.clone(),
                    msg: format!(
                        "has {} targets but the model has {} outputs",
                        y.nrows(),
                        spec.n_outputs
                    ),
                });
            }
            Dataset {
                x: raw.x,
                y,
                labels: None,
                task: spec.task,
                feature_names: raw.feature_names,
                class_names: Vec::new(),
            }
        }
    };
    if let Some(mean) = &spec.preprocess.mean {
        if mean.len() != ds.d() {
            return Err(DataError::Shape {
                path: raw.path.clone(),
                msg: format!(
                    "the model's standardisation has {} features, the data {}",
                    mean.len(),
                    ds.d()
                ),
            });
        }
    }
    spec.preprocess.apply(&mut ds.x);
    Ok(ds)
}
