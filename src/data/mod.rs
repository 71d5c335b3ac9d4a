//! Data loading: CSV, NPY, IDX(.gz) files and the synthetic teacher problem → a
//! [`Dataset`] with one sample per **column** (the method's notation), split into train and test,
//! scaled/standardised, with one-hot targets for classification. Also the matching
//! loader for `sparse-alm eval` ([`load_for_eval`]), which repeats the saved
//! [`Preprocess`] so a model sees test data exactly as it saw its training data.
//!
//! Every error names the file and, for text, the 1-based line (the header is line 1) and
//! the column; for binary files, the sample index. Input text quoted in a message is
//! escaped ([`escape`]), and every read is bounded (`limits`): regular files only, sizes
//! declared in a file checked before anything is allocated.
//!
//! Classification labels: numbers (non-negative integers, written `3` or `3.0`) or, when
//! the first label of a CSV file is not a number, arbitrary strings. The sorted distinct
//! values become the classes, in order (labels 1, 2, 3 make classes 0, 1, 2; labels 5, 10,
//! 100 make three classes), and their texts are the class names saved with a model. With
//! `data.classes = k` integer labels are instead the class indices themselves, `0..k`.
//!
//! Layout: `settings` (the `[data]` section of a config: task, source, preprocessing,
//! and their rules), `dataset` (the types handed out), `sources` (each format read into a
//! raw set, with the file readers `csv`, `npy`, `idx` and the generator `teacher`),
//! `labels` (raw labels → class indices, one-hot), `split`, `load` (read → targets →
//! split → preprocess → describe), `eval` (one file set for a trained model) and `limits`
//! (read bounds, escaping).

mod csv;
mod dataset;
mod eval;
mod idx;
mod labels;
mod limits;
mod load;
mod npy;
mod settings;
mod sources;
mod split;
mod teacher;

pub use dataset::{Dataset, EvalSpec, LoadedData, Preprocess};
pub use eval::{load_for_eval, load_for_predict};
pub use limits::{available_memory, escape, human_bytes, read_limit, MAX_READ_BYTES};
pub(crate) use limits::{read_regular, ReadError};
pub use load::load;
pub(crate) use settings::{settle_source, GivenKeys};
pub use settings::{DataConfig, DataSource, Task, TeacherParams};
pub(crate) use split::split_indices;

use limits::escape_path;
use std::path::{Path, PathBuf};

/// A data error; every variant names the file, and text errors the line and column.
/// Text taken from the input (values, column names, labels) is shown escaped.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read", escape_path(path))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A read bound was hit: not a regular file, or more bytes than the read limit.
    #[error("{}: {msg}", escape_path(path))]
    Limit { path: PathBuf, msg: String },
    #[error("{}: {msg}", escape_path(path))]
    Empty { path: PathBuf, msg: String },
    #[error(
        "{}: line {line}: expected {expected} fields (as in the header), found {found}",
        escape_path(path)
    )]
    Ragged {
        path: PathBuf,
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error(
        "{}: line {line}, column `{}`: cannot parse `{}` as a number",
        escape_path(path),
        escape(column),
        escape(value)
    )]
    Parse {
        path: PathBuf,
        line: usize,
        column: String,
        value: String,
    },
    #[error(
        "{}: {at}: non-finite value `{}` (NaN and infinities are not allowed)",
        escape_path(path),
        escape(value)
    )]
    NonFinite {
        path: PathBuf,
        at: String,
        value: String,
    },
    #[error("{}: {at}: label `{}` {reason}", escape_path(path), escape(value))]
    Label {
        path: PathBuf,
        at: String,
        value: String,
        reason: String,
    },
    #[error(
        "{}: target column `{}` not found; available columns: {available}",
        escape_path(path),
        escape(name)
    )]
    MissingTarget {
        path: PathBuf,
        name: String,
        available: String,
    },
    /// Columns a trained model reads by name that the file lacks.
    #[error(
        "{}: missing column{} {} (the model's input features, model.json `feature_names`); available columns: {available}",
        escape_path(path),
        if missing.len() == 1 { "" } else { "s" },
        quoted_list(missing)
    )]
    MissingColumns {
        path: PathBuf,
        missing: Vec<String>,
        available: String,
    },
    #[error("{}: {msg}", escape_path(path))]
    Shape { path: PathBuf, msg: String },
    #[error("{}: {msg}", escape_path(path))]
    Format { path: PathBuf, msg: String },
    #[error(
        "{}: unsupported NPY dtype `{}` (supported: <f4, <f8, <i4, <i8, |u1; little-endian)",
        escape_path(path),
        escape(dtype)
    )]
    NpyDtype { path: PathBuf, dtype: String },
    #[error("{0}")]
    Invalid(String),
}

/// `a`, `b`, `c` (escaped, capped at 20 names).
fn quoted_list(names: &[String]) -> String {
    const SHOW: usize = 20;
    let shown: Vec<String> = names
        .iter()
        .take(SHOW)
        .map(|n| format!("`{}`", escape(n)))
        .collect();
    if names.len() > SHOW {
        format!("{}, … ({} in all)", shown.join(", "), names.len())
    } else {
        shown.join(", ")
    }
}

impl DataError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// A bounded read's failure on `path`.
    pub(crate) fn read(path: &Path, e: ReadError) -> Self {
        match e {
            ReadError::Io(source) => DataError::io(path, source),
            other => DataError::Limit {
                path: path.to_path_buf(),
                msg: other.explain(),
            },
        }
    }
}
