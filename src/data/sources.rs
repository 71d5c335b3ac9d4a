//! Reading each source into a raw set: features (`d × N`, unscaled) and targets (values
//! or raw labels), before targets are resolved, the data split and preprocessed.

use super::labels::RawLabels;
use super::limits::escape_path;
use super::{csv, idx, npy, teacher, DataError};
use super::{Task, TeacherParams};
use ndarray::{s, Array2};
use std::path::{Path, PathBuf};

pub(super) enum RawTargets {
    /// `m × N` regression targets.
    Values(Array2<f32>),
    Labels(RawLabels),
}

pub(super) struct RawSet {
    /// The file named in messages about the set.
    pub path: PathBuf,
    /// `d × N`, unscaled.
    pub x: Array2<f32>,
    pub feature_names: Vec<String>,
    pub targets: RawTargets,
}

/// Row-major `n × d` → `d × n` in standard layout.
pub(super) fn to_columns(rows: Vec<f32>, n: usize, d: usize) -> Array2<f32> {
    let a = Array2::from_shape_vec((n, d), rows).unwrap_or_else(|_| Array2::zeros((n, d)));
    a.reversed_axes().as_standard_layout().into_owned()
}

/// A CSV file's features and targets; `features` names the feature columns in the order
/// wanted (a trained model's inputs), `None` takes every other column in file order.
pub(super) fn read_csv_set(
    path: &Path,
    target: &[String],
    task: Task,
    features: Option<&[String]>,
) -> Result<RawSet, DataError> {
    let cols = csv::Columns {
        target,
        task: Some(task),
        features,
    };
    let t = csv::read_columns(path, &cols)?;
    let d = t.feature_names.len();
    let x = to_columns(t.features, t.n, d);
    let targets = match t.targets {
        csv::CsvTargets::Values(v) => RawTargets::Values(to_columns(v, t.n, t.target_names.len())),
        csv::CsvTargets::Labels(l) => RawTargets::Labels(l),
        csv::CsvTargets::Skipped => unreachable!("targets are read when a task is given"),
    };
    Ok(RawSet {
        path: path.to_path_buf(),
        x,
        feature_names: t.feature_names,
        targets,
    })
}

/// An NPY feature array (`n × d`, or `n` for one feature) as `d × n`, checked finite.
pub(super) fn read_npy_features(xp: &Path) -> Result<Array2<f32>, DataError> {
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
    Ok(to_columns(
        xa.data.iter().map(|&v| v as f32).collect(),
        n,
        d,
    ))
}

pub(super) fn read_npy_set(xp: &Path, yp: &Path, task: Task) -> Result<RawSet, DataError> {
    let x = read_npy_features(xp)?;
    let (d, n) = x.dim();
    let ya = npy::read_npy(yp)?;
    if ya.shape[0] != n {
        return Err(DataError::Shape {
            path: yp.to_path_buf(),
            msg: format!(
                "has {} samples but {} has {n}",
                ya.shape[0],
                escape_path(xp)
            ),
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

pub(super) fn read_idx_set(ip: &Path, lp: &Path) -> Result<RawSet, DataError> {
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
                escape_path(ip)
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

/// The teacher's train and test sets (the first `n_train` samples train).
pub(super) fn teacher_sets(p: &TeacherParams) -> (RawSet, RawSet) {
    let (x, y) = teacher::generate(p);
    let names: Vec<String> = (0..x.nrows()).map(|i| format!("x{i}")).collect();
    let set = |a: usize, b: usize| RawSet {
        path: PathBuf::from("<teacher>"),
        x: x.slice(s![.., a..b]).to_owned(),
        feature_names: names.clone(),
        targets: RawTargets::Values(y.slice(s![.., a..b]).to_owned()),
    };
    (set(0, p.n_train), set(p.n_train, x.ncols()))
}
