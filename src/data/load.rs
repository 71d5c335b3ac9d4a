//! [`load`]: the data a `[data]` config describes, in five steps: read the raw sets,
//! resolve their targets, split off the test set, preprocess, describe.

use super::dataset::{Dataset, LoadedData, Preprocess};
use super::labels::{class_warnings, one_hot, resolve_labels};
use super::limits::{available_memory, escape, escape_path, human_bytes};
use super::sources::{read_csv_set, read_idx_set, read_npy_set, teacher_sets, RawSet, RawTargets};
use super::{split, DataError};
use super::{DataConfig, DataSource, Task};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::path::PathBuf;

/// Load, split and preprocess the data a config describes.
pub fn load(cfg: &DataConfig) -> Result<LoadedData, DataError> {
    let (train, test, what) = read(cfg)?;
    let mut warnings = Vec::new();
    let (all, test) = targets(cfg, train, test, &what, &mut warnings)?;
    let (mut train, mut test, split_note) = split_sets(cfg, all, test, &what)?;
    let preprocess = preprocess(cfg, &mut train, &mut test);
    let description = describe(cfg, &what, &train, &test, &split_note);
    Ok(LoadedData {
        train,
        test,
        preprocess,
        description,
        warnings,
    })
}

/// The raw training set, the separate test set if one is given, and what to call the
/// data in messages.
fn read(cfg: &DataConfig) -> Result<(RawSet, Option<RawSet>, String), DataError> {
    let task = cfg.task;
    let (train, test, what) = match &cfg.source {
        DataSource::Teacher(p) => {
            let (train, test) = teacher_sets(p);
            let what = format!("teacher {:?} (seed {}, noise {})", p.sizes, p.seed, p.noise);
            (train, Some(test), what)
        }
        DataSource::Csv {
            path,
            target,
            test_path,
        } => {
            let tr = read_csv_set(path, target, task, None)?;
            let te = test_path
                .as_ref()
                .map(|p| read_csv_set(p, target, task, None))
                .transpose()?;
            (tr, te, escape_path(path))
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
            (tr, te, escape_path(x))
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
                    escape_path(labels)
                )));
            }
            let tr = read_idx_set(images, labels)?;
            let te = match (test_images, test_labels) {
                (Some(a), Some(b)) => Some(read_idx_set(a, b)?),
                _ => None,
            };
            (tr, te, escape_path(images))
        }
    };
    if let Some(te) = &test {
        if te.x.nrows() != train.x.nrows() {
            return Err(DataError::Shape {
                path: te.path.clone(),
                msg: format!(
                    "test set has {} features but the training set {} has {}",
                    te.x.nrows(),
                    escape_path(&train.path),
                    train.x.nrows()
                ),
            });
        }
    }
    Ok((train, test, what))
}

/// Targets → datasets: labels are resolved over train and test together (one class
/// list for both; at least two classes, a warning for a class of one sample), regression
/// targets checked to have as many outputs in both.
fn targets(
    cfg: &DataConfig,
    train: RawSet,
    test: Option<RawSet>,
    what: &str,
    warnings: &mut Vec<String>,
) -> Result<(Dataset, Option<Dataset>), DataError> {
    let task = cfg.task;
    Ok(match (train.targets, test) {
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
                    path: train.path.clone(),
                    msg: "no labels".into(),
                });
            }
            let te_idx = if idx.len() > 1 { idx.pop() } else { None };
            let tr_idx = idx.pop().unwrap_or_default();
            let mut seen = vec![false; m];
            for &c in tr_idx.iter().chain(te_idx.iter().flatten()) {
                seen[c as usize] = true;
            }
            let present: Vec<&String> = names
                .iter()
                .zip(&seen)
                .filter(|p| *p.1)
                .map(|p| p.0)
                .collect();
            if present.len() < 2 {
                return Err(DataError::Invalid(format!(
                    "{}: every label is `{}`; classification needs at least two classes (is the label column right, or is this a regression task?)",
                    escape_path(&l.path),
                    present.first().map(|s| escape(s)).unwrap_or_default()
                )));
            }
            let n_all = tr_idx.len() + te_idx.as_ref().map_or(0, Vec::len);
            let onehot_bytes = m as u128 * n_all as u128 * 4;
            if let Some(avail) = available_memory().filter(|&a| onehot_bytes > u128::from(a)) {
                return Err(DataError::Invalid(format!(
                    "{}: one-hot targets of {m} classes × {n_all} samples need {}, more than the {} of memory available",
                    escape_path(&l.path),
                    human_bytes(onehot_bytes),
                    human_bytes(u128::from(avail))
                )));
            }
            let sets_idx: Vec<&[u32]> = std::iter::once(tr_idx.as_slice())
                .chain(te_idx.as_deref())
                .collect();
            warnings.extend(class_warnings(&l.path, &names, &sets_idx));
            let mk = |x: Array2<f32>, lab: Vec<u32>, fnames: Vec<String>| Dataset {
                y: one_hot(&lab, m),
                x,
                labels: Some(lab),
                task,
                feature_names: fnames,
                class_names: names.clone(),
                target_std: None,
            };
            let test = match (te_x, te_idx, te_names) {
                (Some(x), Some(li), Some(fnames)) => Some(mk(x, li, fnames)),
                _ => None,
            };
            (mk(train.x, tr_idx, train.feature_names), test)
        }
        (RawTargets::Values(y), te) => {
            let mk = |x, y, fnames| Dataset {
                x,
                y,
                labels: None,
                task,
                feature_names: fnames,
                class_names: Vec::new(),
                target_std: None,
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
                            path: PathBuf::from(what),
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
            (mk(train.x, y, train.feature_names), test)
        }
    })
}

/// Hold out the test set (unless one was given), then cap the training set; both draws
/// come from one RNG seeded by `data.split_seed` and are stratified by class for
/// classification. Returns train, test and a note for the description.
fn split_sets(
    cfg: &DataConfig,
    mut all: Dataset,
    test: Option<Dataset>,
    what: &str,
) -> Result<(Dataset, Dataset, String), DataError> {
    let task = cfg.task;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.split_seed);
    let stratify = cfg.stratify && task == Task::Classification;
    let n_all = all.n();
    let mut split_note = String::new();
    let test = match test {
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
                all.labels.as_deref()
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
            let test = all.select(&take);
            all = all.select(&keep);
            test
        }
    };
    let mut train = all;
    if cfg.max_train > 0 && cfg.max_train < train.n() {
        let strata = if stratify { train.labels.clone() } else { None };
        let n = train.n();
        let (_, keep) = split::split_indices(n, cfg.max_train, strata.as_deref(), &mut rng);
        train = train.select(&keep);
        split_note.push_str(&format!(", training set capped at {}", cfg.max_train));
    }
    Ok((train, test, split_note))
}

/// Scale both sets, then standardise with the training set's statistics: features when
/// `data.standardize`, regression targets when `data.standardize_targets`. Returns what
/// was done, for `eval` to repeat.
fn preprocess(cfg: &DataConfig, train: &mut Dataset, test: &mut Dataset) -> Preprocess {
    let mut pre = Preprocess {
        feature_scale: cfg.feature_scale,
        ..Preprocess::default()
    };
    pre.apply(&mut train.x);
    if cfg.standardize {
        let st = Preprocess::standardizer(1.0, &train.x);
        st.apply(&mut train.x);
        pre.mean = st.mean;
        pre.std = st.std;
    }
    pre.apply(&mut test.x);
    if cfg.standardize_targets && cfg.task == Task::Regression {
        let (mean, std) = Preprocess::target_stats(&train.y);
        pre.target_mean = Some(mean);
        pre.target_std = Some(std.clone());
        for ds in [&mut *train, &mut *test] {
            pre.apply_targets(&mut ds.y);
            ds.target_std = Some(std.clone());
        }
    }
    pre
}

/// One line for logs: source, sizes, split and the preprocessing that ran.
fn describe(
    cfg: &DataConfig,
    what: &str,
    train: &Dataset,
    test: &Dataset,
    split_note: &str,
) -> String {
    let task = cfg.task;
    let outputs = match task {
        Task::Classification => {
            let names = &train.class_names;
            let numbered = names.iter().enumerate().all(|(i, s)| *s == i.to_string());
            if numbered || names.len() > 10 {
                format!("{} classes", train.m())
            } else {
                // Names with separators in them are quoted, so the list stays readable.
                let quote = names
                    .iter()
                    .any(|n| n.is_empty() || n.contains(|c: char| c == ',' || c.is_whitespace()));
                let shown: Vec<String> = names
                    .iter()
                    .map(|n| {
                        if quote {
                            format!("`{}`", escape(n))
                        } else {
                            escape(n)
                        }
                    })
                    .collect();
                format!("{} classes ({})", train.m(), shown.join(", "))
            }
        }
        Task::Regression => format!("{} targets", train.m()),
    };
    let mut steps = Vec::new();
    if cfg.feature_scale != 1.0 {
        steps.push(format!("features / {}", cfg.feature_scale));
    }
    if cfg.standardize {
        steps.push("features standardised".to_string());
    }
    if train.target_std.is_some() {
        steps.push("targets standardised (errors in target units)".to_string());
    }
    if steps.is_empty() {
        steps.push("no preprocessing".to_string());
    }
    format!(
        "{what}: {} train / {} test samples, {} features, {outputs}; {split_note}; {}",
        train.n(),
        test.n(),
        train.d(),
        steps.join(", ")
    )
}
