//! The library's aggregate error type. Each room owns its own error enum (data, config,
//! model, and `crate::backend::BackendError`); this one only wraps them so callers can `?`
//! across rooms, and the binary turns it into an `anyhow` report. Every variant names what
//! the user must fix: a file and line, a config field, a kernel.

use crate::backend::BackendError;
use std::path::PathBuf;

/// The crate-wide error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
    /// A command-line argument the command refuses (an output directory that is not
    /// empty): the user's to fix, like a config or data error.
    #[error("{0}")]
    Usage(String),
    /// Part of a command failed after the rest was done and saved (a method of `compare`):
    /// exit 1.
    #[error("{0}")]
    Failed(String),
    /// The run stopped on request after writing its checkpoint (resume with
    /// `train --resume`): exit 1.
    #[error("the run stopped after writing its checkpoint {}", .0.display())]
    Interrupted(PathBuf),
    /// A method's iterates diverged (method §5 measures non-finite or exploding): exit 1.
    #[error(transparent)]
    Diverged(#[from] Box<crate::solver::Divergence>),
    /// The command as given was refused before it started, and the user must change how
    /// it is called (a non-empty output directory without `--force`, a run needing more
    /// memory than there is): exit 2, like a config error.
    #[error("{0}")]
    Refused(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
