//! CSV reader (RFC 4180, through the `csv` crate): a header row names the columns (names
//! must be unique); the target column(s) are pulled out and every other column is a
//! feature, or, for a trained model, the features are the columns it names, in its order
//! ([`Columns::features`]: other columns are ignored, a missing one is an error naming
//! it). Quoted fields may hold commas, doubled quotes and line breaks; whitespace
//! around a field is ignored. Blank lines are skipped but still counted, so reported line
//! numbers match an editor's (1-based, the header is line 1; a record spanning lines is
//! reported at its first).

use super::labels::{LabelKind, Locate, RawLabels};
use super::limits::{escape, read_limit, read_regular};
use super::DataError;
use super::Task;
use std::path::Path;

/// Targets as read: numbers for regression, label texts for classification.
pub(crate) enum CsvTargets {
    /// `n × m` row-major.
    Values(Vec<f32>),
    Labels(RawLabels),
    /// Not read ([`Columns::task`] `None`).
    Skipped,
}

/// Which columns of a file to read, and as what.
pub(crate) struct Columns<'a> {
    /// The target column(s).
    pub target: &'a [String],
    /// `Some(task)`: the targets must be present and are read for `task`. `None`: target
    /// columns are skipped where present (predictions need no targets).
    pub task: Option<Task>,
    /// The feature columns by name, in the order wanted (a trained model's inputs);
    /// `None`: every column that is not a target, in file order.
    pub features: Option<&'a [String]>,
}

pub(crate) struct CsvTable {
    /// `n × d` row-major (one sample per row, as in the file).
    pub features: Vec<f32>,
    pub n: usize,
    pub feature_names: Vec<String>,
    pub target_names: Vec<String>,
    pub targets: CsvTargets,
}

/// A field as read: surrounding whitespace trimmed, and quotes that the CSV parser left
/// (a quoted field after a space, `a, "b"`) stripped.
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
    let shown: Vec<String> = names.iter().take(SHOW).map(|n| escape(n)).collect();
    if names.len() > SHOW {
        format!("{}, … ({} columns in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

/// A record's fields, cleaned; `None` for a blank line.
fn fields(rec: &csv::StringRecord) -> Option<Vec<&str>> {
    let row: Vec<&str> = rec.iter().map(clean).collect();
    if row.len() == 1 && row[0].is_empty() {
        return None;
    }
    Some(row)
}

/// 1-based line numbers of byte offsets, asked in increasing order. Counted from the
/// text itself: the `csv` crate's own count leaves out the blank lines it skips.
struct Lines<'a> {
    text: &'a [u8],
    byte: usize,
    line: usize,
}

impl Lines<'_> {
    fn at(&mut self, rec: &csv::StringRecord) -> usize {
        let mut byte = rec.position().map_or(self.byte, |p| p.byte() as usize);
        byte = byte.clamp(self.byte, self.text.len());
        // The position of a record after blank lines is that of the blank lines (skipped
        // as part of reading it): a record never starts with a line break.
        while matches!(self.text.get(byte), Some(b'\n' | b'\r')) {
            byte += 1;
        }
        self.line += self.text[self.byte..byte]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.byte = byte;
        self.line
    }
}

/// Column names that occur more than once, each with its 1-based column numbers.
fn duplicates(columns: &[String]) -> Vec<(String, Vec<usize>)> {
    let mut seen: std::collections::BTreeMap<&str, Vec<usize>> = Default::default();
    for (i, c) in columns.iter().enumerate() {
        seen.entry(c).or_default().push(i + 1);
    }
    let mut dups: Vec<(String, Vec<usize>)> = seen
        .into_iter()
        .filter(|(_, at)| at.len() > 1)
        .map(|(c, at)| (c.to_string(), at))
        .collect();
    dups.sort_by_key(|(_, at)| at[0]);
    dups
}

/// The feature columns a model reads (`names`, in its order), as indices into `columns`;
/// every missing name is reported at once.
fn named_features(
    path: &Path,
    columns: &[String],
    names: &[String],
) -> Result<Vec<usize>, DataError> {
    let mut idx = Vec::with_capacity(names.len());
    let mut missing = Vec::new();
    for name in names {
        match columns.iter().position(|c| c == name) {
            Some(i) => idx.push(i),
            None => missing.push(name.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(idx);
    }
    Err(DataError::MissingColumns {
        path: path.to_path_buf(),
        missing,
        available: list_columns(columns),
    })
}

/// The table of a CSV file: the columns `cols` chooses, parsed.
pub(crate) fn read_columns(path: &Path, cols: &Columns) -> Result<CsvTable, DataError> {
    let (target, task) = (cols.target, cols.task);
    let bytes = read_regular(path, read_limit()).map_err(|e| DataError::read(path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::Format {
        path: path.to_path_buf(),
        msg: format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let csv_err = |e: csv::Error| DataError::Format {
        path: path.to_path_buf(),
        msg: format!("malformed CSV: {e}"),
    };
    let mut lines = Lines {
        text: text.as_bytes(),
        byte: 0,
        line: 1,
    };
    let mut records = reader.records();
    let mut next = move || -> Result<Option<csv::StringRecord>, DataError> {
        records.next().transpose().map_err(csv_err)
    };
    let header_rec = loop {
        match next()? {
            Some(r) if fields(&r).is_none() => continue,
            Some(r) => break r,
            None => {
                return Err(DataError::Empty {
                    path: path.to_path_buf(),
                    msg: "empty file: no header row".into(),
                })
            }
        }
    };
    let header_line = lines.at(&header_rec);
    let columns: Vec<String> = header_rec.iter().map(|c| clean(c).to_string()).collect();
    if let Some((name, at)) = duplicates(&columns).first() {
        let at: Vec<String> = at.iter().map(usize::to_string).collect();
        return Err(DataError::Format {
            path: path.to_path_buf(),
            msg: format!(
                "line {header_line}: duplicate column name `{}` (columns {}); column names must be unique",
                escape(name),
                at.join(" and ")
            ),
        });
    }
    let mut target_idx = Vec::with_capacity(target.len());
    for t in target {
        match columns.iter().position(|c| c == t.trim()) {
            Some(i) => target_idx.push(i),
            None if task.is_none() => {}
            None => {
                return Err(DataError::MissingTarget {
                    path: path.to_path_buf(),
                    name: t.clone(),
                    available: list_columns(&columns),
                })
            }
        }
    }
    let feature_idx: Vec<usize> = match cols.features {
        Some(names) => named_features(path, &columns, names)?,
        None => (0..columns.len())
            .filter(|i| !target_idx.contains(i))
            .collect(),
    };
    if task.is_none() {
        target_idx.clear();
    }
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
                at: format!("line {line}, column `{}`", escape(&columns[col])),
                value: s.to_string(),
            });
        }
        Ok(v as f32)
    };
    while let Some(rec) = next()? {
        let Some(row) = fields(&rec) else {
            continue;
        };
        let line = lines.at(&rec);
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
            None => {}
            Some(Task::Regression) => {
                for &j in &target_idx {
                    values.push(parse(row[j], line, j)?);
                }
            }
            Some(Task::Classification) => {
                let s = row[target_idx[0]];
                let is_num = s.parse::<f64>().is_ok();
                let mode = *numeric_labels.get_or_insert(is_num);
                if mode && !is_num {
                    return Err(DataError::Label {
                        path: path.to_path_buf(),
                        at: format!("line {line}, column `{}`", escape(&columns[target_idx[0]])),
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
        None => CsvTargets::Skipped,
        Some(Task::Regression) => {
            debug_assert_eq!(values.len(), n * m);
            CsvTargets::Values(values)
        }
        Some(Task::Classification) => {
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
