//! Solvers (stub, being written).
