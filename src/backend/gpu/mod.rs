//! GPU backend (stub, being written).
