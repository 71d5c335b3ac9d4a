//! The backend's error type. It lives with the backend (not in the crate's aggregate
//! `error.rs`) so that `backend/` depends on nothing above it: the crate error wraps this
//! one, never the other way round.

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

/// The result type of every backend operation.
pub type BResult<T> = Result<T, BackendError>;
