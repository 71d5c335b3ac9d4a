//! The `sparse-alm` command line: argument parsing and printing only; the commands live
//! in [`sparse_alm::app`].

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use sparse_alm::app::{
    self, CompareOptions, ExportOptions, Notice, PathOptions, PredictOptions, RunArgs,
    TrainOptions, Verbosity,
};
use sparse_alm::config::DeviceChoice;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// Train sparse leaky ReLU networks by an inexact augmented Lagrangian method (and the
/// proximal baselines), on a GPU (wgpu) or the CPU.
#[derive(Parser, Debug)]
#[command(name = "sparse-alm", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
#[allow(clippy::large_enum_variant)] // parsed once per process
enum Command {
    /// Train one network (default: the built-in digits problem, method warm+alm).
    Train(TrainArgs),
    /// Run several methods from one shared initialisation and tabulate them.
    Compare(CompareArgs),
    /// The sparsity–accuracy frontier: select supports on a λ path, compact, refit at a
    /// small λ_r, certify, and recommend the smallest accurate network.
    Path(PathArgs),
    /// Evaluate a saved model on a data file.
    Eval(EvalArgs),
    /// Compact a saved model and write it, self-described, for use elsewhere.
    Export(ExportArgs),
    /// A saved model's predictions for every sample of a data file, as CSV.
    Predict(PredictArgs),
    /// List GPU adapters and the CPU backend.
    Info,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DeviceArg {
    Auto,
    Gpu,
    Cpu,
}

impl DeviceArg {
    fn as_str(self) -> &'static str {
        match self {
            DeviceArg::Auto => "auto",
            DeviceArg::Gpu => "gpu",
            DeviceArg::Cpu => "cpu",
        }
    }
    fn choice(self) -> DeviceChoice {
        match self {
            DeviceArg::Auto => DeviceChoice::Auto,
            DeviceArg::Gpu => DeviceChoice::Gpu,
            DeviceArg::Cpu => DeviceChoice::Cpu,
        }
    }
}

/// Flags shared by train and compare; each becomes a `--set` override, so the config's
/// validation reports bad values by field name.
#[derive(Args, Debug, Default)]
struct Overrides {
    /// Override a config value: `--set train.lambda=1e-3`, `--set model.hidden=[64,32]`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// Output directory (default: runs/<UTC timestamp>); refused when not empty.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Run in a non-empty --out directory: first remove the files an earlier run of this
    /// tool wrote there (models, metrics, config, compare.json, method folders), nothing else.
    #[arg(long)]
    force: bool,
    /// Where to run: auto (GPU if found, else CPU), gpu or cpu (train.device).
    #[arg(long, value_enum)]
    device: Option<DeviceArg>,
    /// Work budget in passes (train.max_passes).
    #[arg(long, value_name = "P", allow_hyphen_values = true)]
    passes: Option<String>,
    /// Wall-time budget in seconds (train.max_seconds).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    seconds: Option<String>,
    /// Standardise the features with the training set's mean and std (data.standardize;
    /// the default for CSV data).
    #[arg(long, overrides_with = "no_standardize")]
    standardize: bool,
    /// Leave the features as they are, after data.feature_scale (data.standardize = false).
    #[arg(long, overrides_with = "standardize")]
    no_standardize: bool,
    /// Print backend counters (dispatches, readbacks, submits).
    #[arg(long, short)]
    verbose: bool,
    /// No header line and no progress bars.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// Config file (TOML); default: the built-in digits configuration.
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Overrides,
    /// CSV data file (data.path; sets data.source = csv).
    #[arg(long, value_name = "FILE")]
    data: Option<String>,
    /// Target column of the CSV (data.target).
    #[arg(long, value_name = "COL")]
    target: Option<String>,
    /// classification or regression (data.task).
    #[arg(long)]
    task: Option<String>,
    /// Hidden layer widths, comma separated: `64,32` (model.hidden).
    #[arg(long, value_name = "W1,W2,..")]
    hidden: Option<String>,
    /// Group penalty weight λ (train.lambda).
    #[arg(long, allow_hyphen_values = true)]
    lambda: Option<String>,
    /// Fraction held out for testing (data.test_fraction).
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    test_fraction: Option<String>,
    /// alm, prox-sgd, prox-adam, prox-gd, prox-apg or warm+alm (train.method).
    #[arg(long, value_name = "M")]
    method: Option<String>,
    /// Seed of the minibatch order (train.seed).
    #[arg(long, value_name = "N", allow_hyphen_values = true)]
    seed: Option<String>,
    /// Seconds between checkpoints; 0 = every epoch/iteration, inf = phase ends only
    /// (train.checkpoint_seconds).
    #[arg(long, value_name = "S", allow_hyphen_values = true)]
    checkpoint_seconds: Option<String>,
    /// Continue the interrupted run in DIR from its checkpoint (with DIR/config.toml).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct PathArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// Selection grid MIN:MAX:COUNT, geometric and ascending (path.lambdas).
    #[arg(long, value_name = "MIN:MAX:COUNT")]
    lambdas: Option<String>,
    /// Any training method, used to select supports (path.selector).
    #[arg(long, value_name = "M")]
    selector: Option<String>,
    /// sgd+apg (default), sgd+gd, gd, apg, alm or warm+alm (path.polisher).
    #[arg(long, value_name = "P")]
    polisher: Option<String>,
    /// Refit λ_r (path.lambda_refit; default 1e-3, scaled for softmax-ce).
    #[arg(long, value_name = "L", allow_hyphen_values = true)]
    lambda_refit: Option<String>,
    /// Share of the training data held out to choose among points (path.validation_fraction).
    #[arg(long, value_name = "F", allow_hyphen_values = true)]
    validation_fraction: Option<String>,
}

impl PathArgs {
    /// `--passes` is per λ here (path.passes), not the run's budget.
    fn sets(&self) -> Vec<String> {
        let mut sets = self.train.sets();
        if let Some(p) = &self.train.common.passes {
            sets.retain(|s| !s.starts_with("train.max_passes="));
            sets.push(format!("path.passes={p}"));
        }
        if let Some(l) = &self.lambdas {
            sets.push(format!("path.lambdas={}", quoted(l)));
        }
        if let Some(m) = &self.selector {
            sets.push(format!("path.selector={}", quoted(m)));
        }
        if let Some(p) = &self.polisher {
            sets.push(format!("path.polisher={}", quoted(p)));
        }
        if let Some(l) = &self.lambda_refit {
            sets.push(format!("path.lambda_refit={l}"));
        }
        if let Some(f) = &self.validation_fraction {
            sets.push(format!("path.validation_fraction={f}"));
        }
        sets
    }
}

#[derive(Args, Debug)]
struct CompareArgs {
    /// Config file (TOML).
    #[arg(required_unless_present = "resume")]
    config: Option<PathBuf>,
    #[command(flatten)]
    common: Overrides,
    /// Comma-separated methods (compare.methods), e.g. `alm,prox-sgd,warm+alm`.
    #[arg(long, value_name = "M1,M2,..")]
    methods: Option<String>,
    /// Continue the interrupted comparison in DIR (with DIR/config.toml): finished methods
    /// are restored from their checkpoints, the interrupted one continues from its own.
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct EvalArgs {
    /// Run directory, model.safetensors or model.json.
    model: PathBuf,
    /// Data: a .csv file, `X.npy,Y.npy`, `IMAGES,LABELS` (IDX) or a directory of IDX files.
    data: PathBuf,
    /// Where to run: auto, gpu or cpu.
    #[arg(long, value_enum, default_value = "auto")]
    device: DeviceArg,
}

#[derive(Args, Debug)]
struct ExportArgs {
    /// Run directory, path point directory, model.safetensors or model.json.
    model: PathBuf,
    /// Output directory (created; must be empty unless --force).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Write into a non-empty directory, replacing model.safetensors and model.json there.
    #[arg(long)]
    force: bool,
}

#[derive(Args, Debug)]
struct PredictArgs {
    /// Run directory, export, model.safetensors or model.json.
    model: PathBuf,
    /// Data: a .csv file (columns matched by the model's feature names; no target
    /// needed), X.npy, `X.npy,Y.npy`, `IMAGES,LABELS` or a directory of IDX files.
    data: PathBuf,
    /// Write the predictions to this CSV file (atomically) instead of standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

/// A TOML string literal, so any text (a path like `1.csv`, a column named `true`) stays
/// a string when it reaches the config.
fn quoted(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `64,32` → `[64,32]` (the config reports bad widths by field name).
fn list(s: &str) -> String {
    format!(
        "[{}]",
        s.trim().trim_start_matches('[').trim_end_matches(']')
    )
}

fn method_list(s: &str) -> String {
    let items: Vec<String> = s
        .split(',')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .map(quoted)
        .collect();
    format!("[{}]", items.join(", "))
}

impl Overrides {
    fn sets(&self) -> Vec<String> {
        let mut sets = self.sets.clone();
        if let Some(d) = self.device {
            sets.push(format!("train.device={}", quoted(d.as_str())));
        }
        if let Some(p) = &self.passes {
            sets.push(format!("train.max_passes={p}"));
        }
        if let Some(s) = &self.seconds {
            sets.push(format!("train.max_seconds={s}"));
        }
        if self.standardize {
            sets.push("data.standardize=true".into());
        }
        if self.no_standardize {
            sets.push("data.standardize=false".into());
        }
        sets
    }

    fn verbosity(&self) -> Verbosity {
        Verbosity {
            quiet: self.quiet,
            verbose: self.verbose,
        }
    }

    /// The run arguments of `train`, `compare` and `path`, with their own `sets`.
    fn run_args(
        &self,
        config: &Option<PathBuf>,
        sets: Vec<String>,
        resume: &Option<PathBuf>,
    ) -> RunArgs {
        RunArgs {
            config: config.clone(),
            sets,
            out: self.out.clone(),
            force: self.force,
            resume: resume.clone(),
            verbosity: self.verbosity(),
        }
    }
}

impl TrainArgs {
    fn sets(&self) -> Vec<String> {
        let mut sets = self.common.sets();
        if let Some(d) = &self.data {
            sets.push("data.source=\"csv\"".into());
            sets.push(format!("data.path={}", quoted(d)));
        }
        if let Some(t) = &self.target {
            sets.push(format!("data.target={}", quoted(t)));
        }
        if let Some(t) = &self.task {
            sets.push(format!("data.task={}", quoted(t)));
        }
        if let Some(h) = &self.hidden {
            sets.push(format!("model.hidden={}", list(h)));
        }
        if let Some(l) = &self.lambda {
            sets.push(format!("train.lambda={l}"));
        }
        if let Some(f) = &self.test_fraction {
            sets.push(format!("data.test_fraction={f}"));
        }
        if let Some(m) = &self.method {
            sets.push(format!("train.method={}", quoted(m)));
        }
        if let Some(s) = &self.seed {
            sets.push(format!("train.seed={s}"));
        }
        if let Some(s) = &self.checkpoint_seconds {
            sets.push(format!("train.checkpoint_seconds={s}"));
        }
        sets
    }
}

/// Standard output went away (`sparse-alm train | head -1`): not a failure of the command,
/// so the binary stops printing and exits quietly.
#[derive(Debug, thiserror::Error)]
#[error("standard output is closed")]
struct PipeClosed;

/// `text` as it may reach a terminal: control characters other than newlines and tabs
/// written as escapes (`\u{1b}`), so no input quoted in a message can drive the terminal.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() && c != '\n' && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Write `text` to stdout; a closed pipe becomes [`PipeClosed`] instead of a panic.
fn out(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(printable(text).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(PipeClosed.into()),
        r => r.context("cannot write to standard output"),
    }
}

/// Write a line to stderr; nothing to do if that fails too.
fn err_line(text: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{}", printable(text));
}

/// Prints a command's notices: header lines to stdout (unless quiet), warnings to stderr.
/// A closed stdout silences the header lines; the command runs on (its outputs are files).
fn printer(quiet: bool) -> impl FnMut(Notice) {
    let mut closed = false;
    move |n| match n {
        Notice::Info(s) => {
            if !quiet && !closed {
                closed = out(&format!("{s}\n")).is_err();
            }
        }
        Notice::Warn(s) => err_line(&s),
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train(a) => {
            let opts = TrainOptions {
                run: a.common.run_args(&a.config, a.sets(), &a.resume),
                stop: None,
            };
            let report = app::train(&opts, &mut printer(a.common.quiet)).context("train failed")?;
            out(&format!("\n{}{}", report.table(), report.footer()))?;
        }
        Command::Compare(a) => {
            let mut sets = a.common.sets();
            if let Some(m) = &a.methods {
                sets.push(format!("compare.methods={}", method_list(m)));
            }
            let opts = CompareOptions {
                run: a.common.run_args(&a.config, sets, &a.resume),
                stop: None,
            };
            let report =
                app::compare(&opts, &mut printer(a.common.quiet)).context("compare failed")?;
            out(&format!("\n{}{}", report.render(), report.footer()))?;
            if let Some(e) = report.failure() {
                return Err(e.into());
            }
        }
        Command::Path(a) => {
            let t = &a.train;
            let opts = PathOptions {
                run: t.common.run_args(&t.config, a.sets(), &t.resume),
                stop_after: None,
            };
            let quiet = a.train.common.quiet;
            let report = app::path(&opts, &mut printer(quiet)).context("path failed")?;
            out(&format!("\n{}", report.footer()))?;
        }
        Command::Eval(a) => {
            let report = app::eval(&a.model, &a.data, a.device.choice(), &mut printer(false))
                .with_context(|| {
                    format!(
                        "eval of {} on {} failed",
                        a.model.display(),
                        a.data.display()
                    )
                })?;
            out(&report.render())?;
        }
        Command::Export(a) => {
            let opts = ExportOptions {
                model: a.model.clone(),
                out: a.out.clone(),
                force: a.force,
            };
            let report = app::export(&opts)
                .with_context(|| format!("export of {} failed", a.model.display()))?;
            out(&report.render())?;
        }
        Command::Predict(a) => {
            let opts = PredictOptions {
                model: a.model.clone(),
                data: a.data.clone(),
                out: a.out.clone(),
            };
            let report = app::predict(&opts).with_context(|| {
                format!(
                    "predict of {} on {} failed",
                    a.model.display(),
                    a.data.display()
                )
            })?;
            out(report.csv.as_deref().unwrap_or_default())?;
            out(&report.summary())?;
        }
        Command::Info => out(&app::info())?,
    }
    Ok(())
}

/// The error chain joined by `: ` (anyhow's alternate format). No error type of the
/// library repeats its source in its own message, so nothing is printed twice.
fn error_message(err: &anyhow::Error) -> String {
    format!("{err:#}")
}

/// 2 for what the user must fix in their input (config, data, model files), 1 otherwise.
fn exit_code(err: &anyhow::Error) -> u8 {
    use sparse_alm::Error;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<Error>() {
            return match e {
                Error::Config(_)
                | Error::Data(_)
                | Error::Model(_)
                | Error::Usage(_)
                | Error::Refused(_) => 2,
                _ => 1,
            };
        }
    }
    1
}

fn main() -> ExitCode {
    // Mesa's Vulkan/GL drivers print "XDG_RUNTIME_DIR is invalid or not set" on every
    // adapter enumeration of a headless machine; give them a directory so the CLI's output
    // stays clean. Done first, while the process is still single-threaded.
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        std::env::set_var("XDG_RUNTIME_DIR", std::env::temp_dir());
    }
    let cli = Cli::parse();
    // This thread runs the solver: it takes its share of the CPU backend's parallel loops
    // (before any other parallel work, so the pool is built this way).
    sparse_alm::backend::cpu::adopt_current_thread();
    // Fits in one process (`path`, `compare`) reuse each other's freed pages.
    sparse_alm::backend::cpu::retain_freed_memory();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.downcast_ref::<PipeClosed>().is_some() => ExitCode::SUCCESS,
        Err(e) => {
            let msg = printable(&error_message(&e));
            let mut stderr = std::io::stderr().lock();
            let _ = if stderr.is_terminal() {
                writeln!(stderr, "\x1b[1;31merror\x1b[0m: {msg}")
            } else {
                writeln!(stderr, "error: {msg}")
            };
            ExitCode::from(exit_code(&e))
        }
    }
}
