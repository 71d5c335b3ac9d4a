//! The loader of `sparse-alm eval`: one data set in any supported format, read for a
//! trained model (its inputs, outputs and classes) and preprocessed as at training.

use super::labels::{one_hot, resolve_labels};
use super::limits::escape_path;
use super::sources::{read_csv_set, read_idx_set, read_npy_set, RawTargets};
use super::{DataError, Dataset, EvalSpec};
use crate::config::Task;
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

/// For `sparse-alm eval MODEL DATA`. `path` may be:
/// - a `.csv` file (target column(s) as in `spec.target`, `label` when empty);
/// - `X.npy,Y.npy` (two paths joined by a comma, the first ending in `.npy`);
/// - `IMAGES,LABELS` (two IDX files, gzipped or not);
/// - a directory holding exactly one IDX images file and one labels file (names
///   containing `images`/`idx3` and `labels`/`idx1`).
///
/// The raw features then go through `spec.preprocess` (and regression targets through
/// its target standardisation, so losses compare with training and errors are reported in
/// the target's units), and `d`/`m` are checked against the model.
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
            escape_path(path)
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
