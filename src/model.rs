//! The network (stub, being written).
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("{0}")]
    Other(String),
}
