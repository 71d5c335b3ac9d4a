//! Data loading: CSV, NPY, IDX(.gz) files and the synthetic teacher problem → a
//! [`Dataset`] with one sample per **column** (the method's notation), split into train and test,
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
//!
//! Layout: `dataset` (the types handed out), `sources` (each format read into a raw set,
//! with the file readers `csv`, `npy`, `idx` and the generator `teacher`), `labels` (raw
//! labels → class indices, one-hot), `split`, `load` (read → targets → split →
//! preprocess → describe) and `eval` (one file set for a trained model).

mod csv;
mod dataset;
mod eval;
mod idx;
mod labels;
mod load;
mod npy;
mod sources;
mod split;
mod teacher;

pub use dataset::{Dataset, EvalSpec, LoadedData, Preprocess};
pub use eval::load_for_eval;
pub use load::load;

use std::path::{Path, PathBuf};

/// A data error; every variant names the file, and text errors the line and column.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{}: cannot read", path.display())]
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
