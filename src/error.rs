//! The library's error type. Each room owns its own error enum (data, config, model,
//! backend); this one wraps them so callers can `?` across rooms, and the binary turns it
//! into an `anyhow` report. Every variant names what the user must fix: a file and line,
//! a config field, a kernel.

use std::path::PathBuf;

/// Errors raised by a compute backend (CPU or GPU). `kernel` names the operation or
/// shader entry point that failed, so a device error is traceable to one kernel.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no GPU adapter found{0}")]
    NoAdapter(String),
    #[error("GPU device request failed: {0}")]
    Device(String),
    #[error("kernel `{kernel}`: {msg}")]
    Kernel { kernel: String, msg: String },
    #[error("shape mismatch in `{op}`: {msg}")]
    Shape { op: String, msg: String },
    #[error("device lost: {0}")]
    Lost(String),
}

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
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
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
