//! CSV reader: a header row names the columns; the target column(s) are pulled out and
//! every other column is a feature. Plain comma-separated values without embedded commas
//! (surrounding double quotes are stripped); blank lines are skipped but still counted,
//! so reported line numbers match an editor's (1-based, the header is line 1).

use super::labels::{LabelKind, Locate, RawLabels};
use super::DataError;
use crate::config::Task;
use std::path::Path;

/// Targets as read: numbers for regression, label texts for classification.
pub(crate) enum CsvTargets {
    /// `n × m` row-major.
    Values(Vec<f32>),
    Labels(RawLabels),
}

pub(crate) struct CsvTable {
    /// `n × d` row-major (one sample per row, as in the file).
    pub features: Vec<f32>,
    pub n: usize,
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    pub targets: CsvTargets,
}

fn clean(field: &str) -> &str {
    let f = field.trim();
    f.strip_prefix('"')
        .and_then(|g| g.strip_suffix('"'))
        .unwrap_or(f)
        .trim()
}

/// List column names for an error message, capped so a 785-column header stays readable.
fn list_columns(names: &[String]) -> String {
    const SHOW: usize = 20;
    let shown: Vec<&str> = names.iter().take(SHOW).map(String::as_str).collect();
    if names.len() > SHOW {
        format!("{}, … ({} columns in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

pub(crate) fn read_csv(path: &Path, target: &[String], task: Task) -> Result<CsvTable, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Format {
        path: path.to_path_buf(),
        msg: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let mut lines = text
        .split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)));
    let header = loop {
        match lines.next() {
            Some((_, l)) if l.trim().is_empty() => continue,
            Some((_, l)) => break l,
            None => {
                return Err(DataError::Empty {
                    path: path.to_path_buf(),
                    msg: "empty file: no header row".into(),
                })
            }
        }
    };
    let columns: Vec<String> = header.split(',').map(|c| clean(c).to_string()).collect();
    let mut target_idx = Vec::with_capacity(target.len());
    for t in target {
        match columns.iter().position(|c| c == t.trim()) {
            Some(i) => target_idx.push(i),
            None => {
                return Err(DataError::MissingTarget {
                    path: path.to_path_buf(),
                    name: t.clone(),
                    available: list_columns(&columns),
                })
            }
        }
    }
    let feature_idx: Vec<usize> = (0..columns.len())
        .filter(|i| !target_idx.contains(i))
        .collect();
    if feature_idx.is_empty() {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            msg: format!(
                "no feature columns (the only columns are the targets {})",
                list_columns(&columns)
            ),
        });
    }
    let feature_names: Vec<String> = feature_idx.iter().map(|&i| columns[i].clone()).collect();
    let d = feature_idx.len();
    let m = target_idx.len();
    let mut features = Vec::new();
    let mut values = Vec::new();
    let mut label_text = Vec::new();
    let mut label_lines = Vec::new();
    let mut numeric_labels: Option<bool> = None;
    let mut n = 0usize;
    let mut row: Vec<&str> = Vec::with_capacity(columns.len());
    let parse = |s: &str, line: usize, col: usize| -> Result<f32, DataError> {
        let v: f64 = s.parse().map_err(|_| DataError::Parse {
            path: path.to_path_buf(),
            line,
            column: columns[col].clone(),
            value: s.to_string(),
        })?;
        if !v.is_finite() || !(v as f32).is_finite() {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                at: format!("line {line}, column `{}`", columns[col]),
                value: s.to_string(),
            });
        }
        Ok(v as f32)
    };
    for (line, l) in lines {
        if l.trim().is_empty() {
            continue;
        }
        row.clear();
        row.extend(l.split(',').map(clean));
        if row.len() != columns.len() {
            return Err(DataError::Ragged {
                path: path.to_path_buf(),
                line,
                expected: columns.len(),
                found: row.len(),
            });
        }
        for &j in &feature_idx {
            features.push(parse(row[j], line, j)?);
        }
        match task {
            Task::Regression => {
                for &j in &target_idx {
                    values.push(parse(row[j], line, j)?);
                }
            }
            Task::Classification => {
                let s = row[target_idx[0]];
                let is_num = s.parse::<f64>().is_ok();
                let mode = *numeric_labels.get_or_insert(is_num);
                if mode && !is_num {
                    return Err(DataError::Label {
                        path: path.to_path_buf(),
                        at: format!("line {line}, column `{}`", columns[target_idx[0]]),
                        value: s.to_string(),
                        reason: "is not a number, but earlier labels are numeric".into(),
                    });
                }
                label_text.push(s.to_string());
                label_lines.push(line);
            }
        }
        n += 1;
    }
    if n == 0 {
        return Err(DataError::Empty {
            path: path.to_path_buf(),
            msg: "no data rows after the header".into(),
        });
    }
    debug_assert_eq!(features.len(), n * d);
    let targets = match task {
        Task::Regression => {
            debug_assert_eq!(values.len(), n * m);
            CsvTargets::Values(values)
        }
        Task::Classification => {
            let kind = if numeric_labels == Some(true) {
                LabelKind::Numeric(
                    label_text
                        .iter()
                        .map(|s| s.parse::<f64>().unwrap_or(f64::NAN))
                        .collect(),
                )
            } else {
                LabelKind::Text(label_text)
            };
            CsvTargets::Labels(RawLabels {
                path: path.to_path_buf(),
                kind,
                locate: Locate::Lines(label_lines, columns[target_idx[0]].clone()),
            })
        }
    };
    Ok(CsvTable {
        features,
        n,
        feature_names,
        target_names: target_idx.iter().map(|&i| columns[i].clone()).collect(),
        targets,
    })
}
