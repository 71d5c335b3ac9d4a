//! sparse-alm: train sparse leaky ReLU networks by the inexact augmented Lagrangian method
//! of `docs/method.md` (Liu, Liu & Chen, JMLR 2023), with the inner phase on a GPU (wgpu/WGSL) or
//! on the CPU reference backend (ndarray + BLAS).
//!
//! Data flows one way: [`data`] → [`problem`] → [`solver`] → [`backend`] → kernels; results
//! come back as a few scalars and a trained [`model::Network`].

// Declared first: its `named!`, `section!`, `bail!` and `ensure!` macros serve `config`
// and `data`.
#[macro_use]
mod settings;

pub mod app;
pub mod backend;
pub mod config;
pub mod data;
pub mod error;
pub mod model;
pub mod output;
pub mod problem;
pub mod solver;

pub use error::{Error, Result};
