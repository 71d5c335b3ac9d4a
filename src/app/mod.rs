//! Orchestration of the CLI commands (`train`, `compare`, `eval`, `info`): configuration →
//! data → device → problem → solver → outputs. The binary (`main.rs`) only parses
//! arguments, calls these functions and prints what they return; everything here returns
//! [`crate::Result`], so it is testable without a process.
//!
//! - `device`: which backend runs ([`Device`], [`open_device`] and its `auto` fallback,
//!   the `with_backend!` dispatch that lets each command body be written once, generic
//!   over [`Backend`](crate::backend::Backend)), and [`info`];
//! - [`setup`]: the shared prologue, config → data → device → problem, built once;
//! - `train`, `compare`, `eval`: the commands;
//! - `path` (with `path_report` and `plot`): the sparsity–accuracy frontier of method §9;
//! - `export`, `predict`: a trained model compacted for use elsewhere, and its
//!   predictions on a data file;
//! - `outdir`: the output directory (refusal of a non-empty one, `--force`);
//! - [`memory`]: the memory a run needs, checked before anything big is allocated;
//! - [`report`]: what the commands return and how it prints (tables, progress bar,
//!   metrics JSON, counters).

mod compare;
mod device;
mod eval;
mod export;
pub mod memory;
mod outdir;
mod path;
pub mod path_report;
mod path_state;
mod plot;
mod predict;
pub mod report;
pub mod setup;
mod train;

pub use compare::{compare, CompareOptions};
pub use device::{info, open_device, Device};
pub use eval::eval;
pub use export::{export, ExportOptions, ExportReport};
pub use path::{path, PathOptions};
pub use path_report::{PathPoint, PathReport};
pub use predict::{predict, predictions, PredictOptions, PredictReport, Predictions};
pub use report::{
    fmt_error, slash_list, CompareReport, EvalReport, MethodFailure, MethodOutcome, TrainReport,
};
pub use setup::{Command, OutDir, Problem, RunArgs, Setup};
pub use train::{train, TrainOptions};

use crate::Error;
use std::path::Path;

/// How much a command prints while it runs (its final report is returned, not printed).
#[derive(Clone, Copy, Debug, Default)]
pub struct Verbosity {
    /// No progress bars, no header line.
    pub quiet: bool,
    /// Backend counters after the run.
    pub verbose: bool,
}

/// A line a command wants shown while it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// Normal output (header lines); suppressed by `--quiet`.
    Info(String),
    /// A one-line warning for stderr (device fallback); always shown.
    Warn(String),
}

/// An I/O error on `path`, as the crate error.
fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}
