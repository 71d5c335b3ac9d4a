//! Data loading (stub, being written).
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Other(String),
}
