//! Class labels: raw labels as read (numbers or texts, with where each came from, for
//! messages) → class indices and names, checked against `data.classes` or a trained
//! model's classes; and one-hot targets.

use super::limits::{escape, escape_path};
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
            Locate::Lines(lines, col) => format!("line {}, column `{}`", lines[i], escape(col)),
            Locate::Samples => format!("sample {i} (0-based)"),
        }
    }
    /// The label column for messages (`label` for binary files).
    fn column(&self) -> String {
        match &self.locate {
            Locate::Lines(_, col) => escape(col),
            Locate::Samples => "label".into(),
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

/// A numeric label as text: integers without a decimal point (`3.0` → `3`), so class
/// names read as the labels were meant.
fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Largest class count one-hot targets may have (the output layer's width).
const MAX_CLASSES: usize = 1 << 20;

/// Turn raw labels into class indices; returns one index list per set and the class
/// names. `known`: the class names a model was trained with (eval): labels must name one
/// of them. Otherwise `classes` (config, `data.classes`) makes integer labels the class
/// indices `0..classes`; without it the sorted distinct label values over all sets given
/// (train first) are the classes, numbers in numeric order, texts in text order.
pub(super) fn resolve_labels(
    sets: &[&RawLabels],
    classes: Option<usize>,
    known: Option<&[String]>,
) -> Result<(Vec<Vec<u32>>, Vec<String>), DataError> {
    let known_numeric = known.map(|k| k.iter().enumerate().all(|(i, s)| *s == i.to_string()));
    // Integer labels are indices when the model's classes are 0..k, or data.classes is set.
    let bound = match known {
        Some(k) if known_numeric == Some(true) => Some(k.len()),
        Some(_) => None,
        None => classes,
    };
    let mut distinct_num = std::collections::BTreeSet::new();
    let mut distinct_text = std::collections::BTreeSet::new();
    for set in sets {
        match &set.kind {
            LabelKind::Numeric(v) => {
                if known_numeric == Some(false) {
                    // A model with named classes: match by the label's text.
                    continue;
                }
                for (i, &x) in v.iter().enumerate() {
                    check_number(set, i, x, bound, known.is_some())?;
                    if bound.is_none() {
                        // Finite and non-negative: the bits order as the numbers do.
                        distinct_num.insert(x.to_bits());
                    }
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
    let has_numeric = sets.iter().any(|s| matches!(s.kind, LabelKind::Numeric(_)));
    if !distinct_text.is_empty() && has_numeric && known.is_none() {
        return Err(DataError::Invalid(format!(
            "{}: labels are text but {} has numeric labels",
            escape_path(&sets[0].path),
            sets.iter()
                .find(|s| matches!(s.kind, LabelKind::Numeric(_)))
                .map(|s| escape_path(&s.path))
                .unwrap_or_default()
        )));
    }
    // Numeric labels that are not indices: their sorted distinct values, by value.
    let values: Vec<f64> = distinct_num.iter().map(|&b| f64::from_bits(b)).collect();
    let names: Vec<String> = match known {
        Some(k) => k.to_vec(),
        None if !distinct_text.is_empty() => {
            let names: Vec<String> = distinct_text.into_iter().collect();
            if let Some(c) = classes {
                if names.len() > c {
                    return Err(DataError::Invalid(format!(
                        "{}: {} distinct labels but data.classes = {c}",
                        escape_path(&sets[0].path),
                        names.len()
                    )));
                }
            }
            names
        }
        None => match classes {
            Some(k) => (0..k).map(|i| i.to_string()).collect(),
            None => values.iter().map(|&v| fmt_num(v)).collect(),
        },
    };
    if names.len() > MAX_CLASSES {
        return Err(DataError::Invalid(format!(
            "{}: {} classes, more than the {MAX_CLASSES} supported (one output per class); is the label column `{}` a class label?",
            escape_path(&sets[0].path),
            names.len(),
            sets[0].column()
        )));
    }
    let mut out = Vec::with_capacity(sets.len());
    for set in sets {
        let idx: Vec<u32> = match &set.kind {
            LabelKind::Numeric(v) if bound.is_some() => v.iter().map(|&x| x as u32).collect(),
            LabelKind::Numeric(v) if known.is_none() => v
                .iter()
                .map(|&x| values.partition_point(|&u| u < x) as u32)
                .collect(),
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
                                format!(
                                    "is not one of the model's classes ({})",
                                    list_names(&names)
                                ),
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
                                format!("is not one of the classes ({})", list_names(&names)),
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

/// Check one numeric label: finite, a non-negative integer, and below `bound` (the
/// model's class count, or `data.classes`) when there is one.
fn check_number(
    set: &RawLabels,
    i: usize,
    x: f64,
    bound: Option<usize>,
    model: bool,
) -> Result<(), DataError> {
    let s = fmt_num(x);
    if !x.is_finite() {
        return Err(set.err(i, s, "is not a finite number"));
    }
    if x < 0.0 {
        return Err(set.err(
            i,
            s,
            "is negative; numeric class labels must be integers 0, 1, … (or use text labels)",
        ));
    }
    if x.fract() != 0.0 {
        return Err(set.err(
            i,
            s,
            "is not an integer; class labels must be integers 0, 1, … (or text)",
        ));
    }
    if let Some(b) = bound {
        if x >= b as f64 {
            let why = if model {
                format!("is out of range: the model has {b} classes (0..{})", b - 1)
            } else {
                format!(
                    "is out of range: data.classes = {b} allows 0..{} (leave data.classes unset to use the label values as class names)",
                    b - 1
                )
            };
            return Err(set.err(i, s, why));
        }
    }
    Ok(())
}

/// Class names for a message, escaped, at most 20 of them.
fn list_names(names: &[String]) -> String {
    const SHOW: usize = 20;
    let shown: Vec<String> = names.iter().take(SHOW).map(|n| escape(n)).collect();
    if names.len() > SHOW {
        format!("{}, … ({} classes in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// Class sizes and the warnings they call for: a class with fewer than 2 samples cannot
/// be in both the training and the test set (training still proceeds; the stratified
/// split handles any class size).
pub(super) fn class_warnings(path: &Path, names: &[String], sets: &[&[u32]]) -> Vec<String> {
    let mut count = vec![0usize; names.len()];
    for set in sets {
        for &c in *set {
            if let Some(k) = count.get_mut(c as usize) {
                *k += 1;
            }
        }
    }
    let few: Vec<String> = names
        .iter()
        .zip(&count)
        .filter(|(_, &k)| k < 2)
        .map(|(n, k)| format!("`{}` ({k})", escape(n)))
        .collect();
    if few.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "warning: {}: {} fewer than 2 samples: {}; such a class cannot be both learned and tested (training proceeds)",
        escape_path(path),
        if few.len() == 1 { "a class has" } else { "classes have" },
        few.join(", ")
    )]
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
