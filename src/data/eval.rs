//! The loaders of `sparse-alm eval` and `predict`: one data set in any supported format,
//! read for a trained model (its inputs by name, its outputs and classes) and
//! preprocessed as at training. `predict` needs no targets.

use super::csv::{read_columns, Columns};
use super::labels::{one_hot, resolve_labels};
use super::limits::escape_path;
use super::sources::{
    read_csv_set, read_idx_set, read_npy_features, read_npy_set, to_columns, RawSet, RawTargets,
};
use super::Task;
use super::{DataError, Dataset, EvalSpec};
use ndarray::Array2;
use std::path::{Path, PathBuf};

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
            .map(|p| escape_path(p))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Err(DataError::Invalid(format!(
        "{}: expected exactly one IDX images file and one labels file in the directory, found images [{}] and labels [{}]; give them as `IMAGES,LABELS`",
        escape_path(dir),
        list(&images),
        list(&labels)
    )))
}

/// The CSV target column(s) of a model: `label` for a classifier that stored none.
fn csv_target(spec: &EvalSpec) -> Vec<String> {
    if spec.target.is_empty() && spec.task == Task::Classification {
        vec!["label".to_string()]
    } else {
        spec.target.clone()
    }
}

/// The model's feature names, when CSV columns are to be matched by them.
fn by_name(spec: &EvalSpec) -> Option<&[String]> {
    (!spec.feature_names.is_empty()).then_some(spec.feature_names.as_slice())
}

fn is_csv(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Features and targets from any supported data argument (see [`load_for_eval`]).
fn read_with_targets(path: &Path, spec: &EvalSpec) -> Result<RawSet, DataError> {
    let s = path.to_string_lossy().to_string();
    Ok(if let Some((a, b)) = s.split_once(',') {
        let (a, b) = (Path::new(a.trim()), Path::new(b.trim()));
        if a.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
            read_npy_set(a, b, spec.task)?
        } else {
            read_idx_set(a, b)?
        }
    } else if path.is_dir() {
        let (a, b) = find_idx_pair(path)?;
        read_idx_set(&a, &b)?
    } else if is_csv(path) {
        read_csv_set(path, &csv_target(spec), spec.task, by_name(spec))?
    } else {
        return Err(DataError::Invalid(format!(
            "{}: unrecognised data; give a .csv file, `X.npy,Y.npy`, `IMAGES,LABELS` (IDX) or a directory with one IDX images and one labels file",
            escape_path(path)
        )));
    })
}

/// The model reads `spec.n_inputs` features: data with another count (by position) is
/// refused before anything is computed.
fn check_inputs(path: &Path, d: usize, spec: &EvalSpec) -> Result<(), DataError> {
    if d == spec.n_inputs {
        return Ok(());
    }
    Err(DataError::Shape {
        path: path.to_path_buf(),
        msg: format!("has {d} features but the model expects {}", spec.n_inputs),
    })
}

/// For `sparse-alm eval MODEL DATA`. `path` may be:
/// - a `.csv` file (target column(s) as in `spec.target`, `label` when empty); when the
///   model stored its feature names, the features are the columns of those names, in the
///   model's order (other columns ignored, a missing one an error naming it); otherwise
///   every non-target column, by position;
/// - `X.npy,Y.npy` (two paths joined by a comma, the first ending in `.npy`);
/// - `IMAGES,LABELS` (two IDX files, gzipped or not);
/// - a directory holding exactly one IDX images file and one labels file (names
///   containing `images`/`idx3` and `labels`/`idx1`).
///
/// The raw features then go through `spec.preprocess` (and regression targets through
/// its target standardisation, so losses compare with training and errors are reported in
/// the target's units), and `d`/`m` are checked against the model.
pub fn load_for_eval(path: &Path, spec: &EvalSpec) -> Result<Dataset, DataError> {
    let raw = read_with_targets(path, spec)?;
    check_inputs(&raw.path, raw.x.nrows(), spec)?;
    let mut ds = match raw.targets {
        RawTargets::Labels(l) => {
            if spec.task != Task::Classification {
                return Err(DataError::Invalid(format!(
                    "{}: class labels given to a regression model",
                    escape_path(&l.path)
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
                target_std: None,
            }
        }
        RawTargets::Values(y) => {
            if spec.task != Task::Regression {
                return Err(DataError::Invalid(format!(
                    "{}: real targets given to a classification model",
                    escape_path(&raw.path)
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
            let mut y = y;
            spec.preprocess.apply_targets(&mut y);
            Dataset {
                x: raw.x,
                y,
                labels: None,
                task: spec.task,
                feature_names: raw.feature_names,
                class_names: Vec::new(),
                target_std: spec.preprocess.target_std.clone(),
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

/// For `sparse-alm predict MODEL DATA`: the model's input features of every sample
/// (`d × N`), preprocessed as at training. `path` is what [`load_for_eval`] reads, where
/// a CSV file need not have the target column(s) (they are ignored when present), or a
/// single `X.npy`. CSV columns are matched by the model's feature names as in
/// [`load_for_eval`].
pub fn load_for_predict(path: &Path, spec: &EvalSpec) -> Result<Array2<f32>, DataError> {
    let single = !path.to_string_lossy().contains(',');
    let mut x = if single && is_csv(path) {
        let target = csv_target(spec);
        let cols = Columns {
            target: &target,
            task: None,
            features: by_name(spec),
        };
        let t = read_columns(path, &cols)?;
        let d = t.feature_names.len();
        to_columns(t.features, t.n, d)
    } else if single
        && path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        read_npy_features(path)?
    } else {
        read_with_targets(path, spec)?.x
    };
    check_inputs(path, x.nrows(), spec)?;
    spec.preprocess.apply(&mut x);
    Ok(x)
}
