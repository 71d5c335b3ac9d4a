//! Class labels: raw labels as read (numbers or texts, with where each came from, for
//! messages) → class indices and names, checked against `data.classes` or a trained
//! model's classes; and one-hot targets.

use super::DataError;
use ndarray::Array2;
use std::path::{Path, PathBuf};

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
    pub(super) fn numeric_from(path: &Path, values: Vec<f64>) -> RawLabels {
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
pub(super) fn resolve_labels(
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

pub(super) fn one_hot(labels: &[u32], m: usize) -> Array2<f32> {
    let mut y = Array2::zeros((m, labels.len()));
    for (j, &c) in labels.iter().enumerate() {
        if (c as usize) < m {
            y[[c as usize, j]] = 1.0;
        }
    }
    y
}
