//! Orchestration of the CLI commands (`train`, `compare`, `eval`, `info`): configuration →
//! device → data → solver → outputs. The binary (`main.rs`) only parses arguments, calls
//! these functions and prints what they return; everything here returns
//! [`crate::Result`], so it is testable without a process.
//!
//! Each command body is written once, generic over [`Backend`], and dispatched on the
//! [`Device`] actually opened (GPU when one is found, else the CPU reference backend).

use crate::backend::cpu::CpuBackend;
use crate::backend::BackendError;
use crate::backend::{Backend, Counters};
use crate::config::{load_config, Config, DataSource, DeviceChoice, Method, Task};
use crate::data::{self, Dataset, EvalSpec, LoadedData, Preprocess};
use crate::model::{self, ModelMeta, Network};
use crate::output::{default_out_dir, fmt_sig, write_atomic, write_json, MetricsLog, Table};
use crate::problem::{Params, Spec};
use crate::solver::measures::{empty_network_p0, DeviceData, Evaluator, Measures};
use crate::solver::{self, Record, RunResult};
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------
// Devices
// ---------------------------------------------------------------------------------------

/// The backend a command runs on.
pub enum Device {
    Cpu(CpuBackend<f32>),
    Gpu(Box<gpu_glue::Gpu>),
}

/// Run `$body` with `$be` bound to the concrete backend inside a [`Device`].
macro_rules! with_backend {
    ($dev:expr, $be:ident => $body:expr) => {
        match $dev {
            Device::Cpu($be) => $body,
            Device::Gpu(g) => {
                let $be: &gpu_glue::Gpu = &**g;
                $body
            }
        }
    };
}

impl Device {
    /// The backend's own description (adapter name and driver for a GPU).
    pub fn name(&self) -> String {
        with_backend!(self, be => be.name())
    }

    pub fn counters(&self) -> Counters {
        with_backend!(self, be => be.counters())
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }
}

/// The GPU backend, isolated so the rest of this file does not depend on its constructor.
mod gpu_glue {
    use crate::backend::gpu::{self, GpuBackend, GpuOptions};
    use crate::backend::BackendError;

    pub type Gpu = GpuBackend;

    /// Open the GPU the environment selects (`GpuOptions::from_env`).
    pub fn open() -> Result<Gpu, BackendError> {
        GpuBackend::new(GpuOptions::from_env())
    }

    /// A software rasteriser (llvmpipe, SwiftShader, WARP): wgpu reports it as a `Cpu`
    /// device, and the BLAS backend is much faster than emulated compute shaders.
    pub fn is_software(g: &Gpu) -> bool {
        g.adapter_info().device_type == "Cpu"
    }

    /// True when the user named an adapter (`WGPU_ADAPTER_NAME`): `auto` then honours it
    /// even if it is a software one.
    pub fn adapter_requested() -> bool {
        GpuOptions::from_env().adapter_name.is_some()
    }

    /// One line per adapter (with its limits), as the GPU module describes it.
    pub fn adapters() -> Vec<String> {
        gpu::list_adapters().iter().map(|a| a.to_string()).collect()
    }
}

/// Open the backend `choice` asks for. `auto` falls back to the CPU when no GPU can be
/// opened and reports that through `notice` (one line); `gpu` fails instead.
pub fn open_device(choice: DeviceChoice, notice: &mut dyn FnMut(&str)) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu(CpuBackend::new())),
        DeviceChoice::Gpu => match gpu_glue::open() {
            Ok(g) => Ok(Device::Gpu(Box::new(g))),
            Err(BackendError::NoAdapter(why)) => Err(Error::Backend(BackendError::NoAdapter(format!(
                "{why}; --device gpu needs a GPU (use --device auto to fall back to the CPU, or --device cpu)"
            )))),
            Err(e) => Err(Error::Backend(e)),
        },
        DeviceChoice::Auto => match gpu_glue::open() {
            Ok(g) if gpu_glue::is_software(&g) && !gpu_glue::adapter_requested() => {
                let cpu = CpuBackend::<f32>::new();
                notice(&format!(
                    "note: the GPU adapter found is a software renderer ({}); running on {} (--device gpu forces it)",
                    g.adapter_info().name,
                    cpu.name()
                ));
                Ok(Device::Cpu(cpu))
            }
            Ok(g) => Ok(Device::Gpu(Box::new(g))),
            Err(e) => {
                let cpu = CpuBackend::<f32>::new();
                notice(&format!("note: no usable GPU ({e}); running on {}", cpu.name()));
                Ok(Device::Cpu(cpu))
            }
        },
    }
}

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// How much a command prints while it runs (its final report is returned, not printed).
#[derive(Clone, Copy, Debug, Default)]
pub struct Verbosity {
    /// No progress bars, no header line.
    pub quiet: bool,
    /// Backend counters after the run.
    pub verbose: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))
}

/// `a/b/c` for a list of counts.
pub fn slash_list(v: &[usize]) -> String {
    if v.is_empty() {
        return "-".into();
    }
    v.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// An error figure as the tables show it: % for classification, MSE for regression.
pub fn fmt_error(task: Task, e: Option<f64>) -> String {
    match (task, e) {
        (_, None) => "-".into(),
        (Task::Classification, Some(e)) => format!("{:.2}%", 100.0 * e),
        (Task::Regression, Some(e)) => fmt_sig(e, 4),
    }
}

fn sizes_str(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("-")
}

fn network_sizes(cfg: &Config, d: usize, m: usize) -> Vec<usize> {
    let mut s = vec![d];
    s.extend(&cfg.model.hidden);
    s.push(m);
    s
}

/// Progress bar over the run's budget: passes when finite, else seconds, else a spinner.
fn progress_bar(cfg: &Config, quiet: bool, prefix: &str) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let t = &cfg.train;
    let (pb, unit) = if t.max_passes.is_finite() {
        (
            ProgressBar::new(t.max_passes.ceil().max(1.0) as u64),
            "passes",
        )
    } else if t.max_seconds.is_finite() {
        (ProgressBar::new(t.max_seconds.ceil().max(1.0) as u64), "s")
    } else {
        (ProgressBar::new_spinner(), "")
    };
    let template = if unit.is_empty() {
        "{prefix:>10} {spinner} {elapsed_precise} {msg}".to_string()
    } else {
        format!("{{prefix:>10}} [{{bar:30}}] {{pos}}/{{len}} {unit} {{elapsed_precise}} {{msg}}")
    };
    if let Ok(style) = ProgressStyle::with_template(&template) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb.set_prefix(prefix.to_string());
    pb
}

/// Live figures of one record for the progress bar message.
fn record_message(task: Task, r: &Record) -> String {
    let mut s = format!(
        "{} p0 {} test {} zero {} cert {}",
        r.phase,
        fmt_sig(r.p0, 4),
        fmt_error(task, r.test_error),
        slash_list(&r.zero_rows),
        fmt_sig(r.cert, 2)
    );
    if let (Some(f), Some(k), Some(rho)) = (r.feas, r.kkt, r.rho) {
        let _ = write!(
            s,
            " feas {} kkt {} ρ {}",
            fmt_sig(f, 2),
            fmt_sig(k, 2),
            fmt_sig(rho, 3)
        );
    }
    s
}

fn bar_position(cfg: &Config, r: &Record) -> u64 {
    let v = if cfg.train.max_passes.is_finite() {
        r.passes
    } else {
        r.seconds
    };
    v.max(0.0).floor() as u64
}

/// The record sink of one run: progress bar + metrics log; the log's first write error is
/// kept and reported after the run (a sink cannot fail the solver mid-run).
struct Sink<'a> {
    cfg: &'a Config,
    task: Task,
    bar: ProgressBar,
    log: MetricsLog,
    err: Option<std::io::Error>,
}

impl Sink<'_> {
    fn see(&mut self, r: &Record) {
        self.bar
            .set_position(bar_position(self.cfg, r).min(self.bar.length().unwrap_or(u64::MAX)));
        self.bar.set_message(record_message(self.task, r));
        if self.err.is_none() {
            if let Err(e) = self.log.push(r) {
                self.err = Some(e);
            }
        }
    }

    fn finish(mut self) -> Result<()> {
        self.bar.finish_and_clear();
        let path = self.log.path().to_path_buf();
        if let Some(e) = self.err.take() {
            return Err(Error::io(path, e));
        }
        self.log.finish().map_err(io_err(&path))
    }
}

/// Run one method on device data with a progress bar and a metrics log at `log_path`.
#[allow(clippy::too_many_arguments)]
fn run_method<B: Backend>(
    be: &B,
    cfg: &Config,
    method: Method,
    spec: &Spec,
    dd: &DeviceData<B>,
    init: &Network,
    empty_p0: f64,
    task: Task,
    log_path: &Path,
    quiet: bool,
) -> Result<RunResult> {
    let log = MetricsLog::create(log_path).map_err(io_err(log_path))?;
    let mut sink = Sink {
        cfg,
        task,
        bar: progress_bar(cfg, quiet, method.as_str()),
        log,
        err: None,
    };
    let res = solver::train(
        be,
        cfg,
        method,
        spec,
        dd,
        init,
        empty_p0,
        &mut |r: &Record| sink.see(r),
    );
    let finished = sink.finish();
    let res = res?;
    finished?;
    Ok(res)
}

/// The final figures of a run, as saved in model.json's `metrics` and in compare.json.
fn run_metrics(res: &RunResult, device: &str) -> serde_json::Value {
    let m = &res.final_measures;
    json!({
        "method": res.method.as_str(),
        "p0": m.p0,
        "loss": m.loss,
        "reg": m.reg,
        "train_error": m.train_error,
        "test_error": m.test_error,
        "zero_rows": m.zero_rows,
        "live_neurons": res.net.live_neurons(),
        "cert": res.cert,
        "cert_abs": m.cert_abs,
        "passes": res.passes,
        "seconds": res.seconds,
        "empty_p0": res.empty_p0,
        "worse_than_empty": res.worse_than_empty(),
        "device": device,
    })
}

fn csv_target(cfg: &Config) -> Vec<String> {
    match &cfg.data.source {
        DataSource::Csv { target, .. } => target.clone(),
        _ => Vec::new(),
    }
}

fn model_meta(cfg: &Config, data: &LoadedData, res: &RunResult, device: &str) -> Result<ModelMeta> {
    Ok(ModelMeta {
        format_version: model::FORMAT_VERSION,
        sizes: res.net.sizes(),
        alpha: cfg.model.alpha,
        lambda: cfg.train.lambda,
        loss: cfg.model.loss,
        input_groups: cfg.model.input_groups,
        output_groups: cfg.model.output_groups,
        task: cfg.data.task,
        method: res.method.as_str().to_string(),
        seed: cfg.train.seed,
        init_seed: cfg.model.init_seed,
        target: csv_target(cfg),
        class_names: data.train.class_names.clone(),
        preprocess: serde_json::to_value(&data.preprocess)
            .map_err(|e| Error::Invalid(format!("cannot serialise the preprocessing: {e}")))?,
        metrics: run_metrics(res, device),
        created_unix: crate::output::unix_now(),
        program_version: env!("CARGO_PKG_VERSION").to_string(),
    })
}

/// Save the network and its metadata into `dir`.
fn save_model(
    dir: &Path,
    cfg: &Config,
    data: &LoadedData,
    res: &RunResult,
    device: &str,
) -> Result<()> {
    let meta = model_meta(cfg, data, res, device)?;
    model::save(dir, &res.net, &meta)?;
    Ok(())
}

fn write_config(dir: &Path, cfg: &Config) -> Result<()> {
    let path = dir.join("config.toml");
    let text = format!(
        "# resolved configuration of this run (sparse-alm {})\n{}",
        env!("CARGO_PKG_VERSION"),
        cfg.to_toml()
    );
    write_atomic(&path, text.as_bytes()).map_err(io_err(&path))
}

/// Backend counters as a one-line report, with averages per record (outer iteration of
/// the ALM, epoch / iteration of the baselines).
fn counters_report(before: Counters, after: Counters, records: usize) -> String {
    let d = after.dispatches.saturating_sub(before.dispatches);
    let r = after.readbacks.saturating_sub(before.readbacks);
    let s = after.submits.saturating_sub(before.submits);
    let k = records.max(1) as f64;
    format!(
        "backend counters: {d} dispatches, {r} readbacks, {s} submits; per outer iteration/epoch ({records} records): {:.1} dispatches, {:.1} readbacks, {:.1} submits",
        d as f64 / k,
        r as f64 / k,
        s as f64 / k
    )
}

fn load_data(cfg: &Config) -> Result<LoadedData> {
    let data = data::load(&cfg.data)?;
    if data.train.n() == 0 {
        return Err(Error::Invalid(format!(
            "{}: no training samples",
            data.description
        )));
    }
    Ok(data)
}

// ---------------------------------------------------------------------------------------
// train
// ---------------------------------------------------------------------------------------

/// What `train` needs besides the configuration.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Config file (`None`: the built-in digits default).
    pub config: Option<PathBuf>,
    /// `key=value` overrides, applied in order (flags already turned into these).
    pub sets: Vec<String>,
    /// Output directory (`None`: `runs/<timestamp>`).
    pub out: Option<PathBuf>,
    pub verbosity: Verbosity,
}

/// The outcome of `train`, printed by the binary.
pub struct TrainReport {
    pub out_dir: PathBuf,
    pub device: String,
    pub task: Task,
    pub result: RunResult,
    /// Backend counters line (`--verbose`).
    pub counters: Option<String>,
}

impl TrainReport {
    /// The final table: one measure per row.
    pub fn table(&self) -> String {
        let r = &self.result;
        let m = &r.final_measures;
        let mut t = Table::new(["measure", "value"]);
        t.row(["method".to_string(), r.method.to_string()]);
        t.row(["p0".to_string(), fmt_sig(m.p0, 5)]);
        t.row(["loss".to_string(), fmt_sig(m.loss, 5)]);
        t.row(["reg".to_string(), fmt_sig(m.reg, 5)]);
        let what = if self.task == Task::Classification {
            "error"
        } else {
            "MSE"
        };
        t.row([
            format!("train {what}"),
            fmt_error(self.task, Some(m.train_error)),
        ]);
        t.row([format!("test {what}"), fmt_error(self.task, m.test_error)]);
        t.row(["zero rows per layer".to_string(), slash_list(&m.zero_rows)]);
        t.row([
            "live neurons per hidden layer".to_string(),
            slash_list(&r.net.live_neurons()),
        ]);
        t.row(["cert (relative)".to_string(), fmt_sig(r.cert, 3)]);
        t.row(["passes".to_string(), fmt_sig(r.passes, 4)]);
        t.row(["seconds".to_string(), fmt_sig(r.seconds, 3)]);
        t.row(["empty-network p0".to_string(), fmt_sig(r.empty_p0, 5)]);
        let mut s = t.render();
        if r.worse_than_empty() {
            let _ = writeln!(
                s,
                "!!! WORSE THAN THE EMPTY NETWORK: p0 {} > {} (all weights zero) !!!",
                fmt_sig(m.p0, 5),
                fmt_sig(r.empty_p0, 5)
            );
        }
        s
    }
}

/// `sparse-alm train`. `say` receives the progress notices and the header line (the
/// binary prints them); the final report is returned.
pub fn train(opts: &TrainOptions, say: &mut dyn FnMut(Notice)) -> Result<TrainReport> {
    let cfg = load_config(opts.config.as_deref(), &opts.sets)?;
    let data = load_data(&cfg)?;
    let device = open_device(cfg.train.device, &mut |s| say(Notice::Warn(s.to_string())))?;
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(Path::new("runs")));
    create_dir(&out_dir)?;
    let sizes = network_sizes(&cfg, data.train.d(), data.train.m());
    say(Notice::Info(format!(
        "{} | net {} | method {} | device {} | λ {}",
        data.description,
        sizes_str(&sizes),
        cfg.train.method,
        device.name(),
        cfg.train.lambda
    )));
    let before = device.counters();
    let result =
        with_backend!(&device, be => train_on(be, &cfg, &data, &out_dir, opts.verbosity.quiet))?;
    let after = device.counters();
    let device_name = device.name();
    save_model(&out_dir, &cfg, &data, &result, &device_name)?;
    write_config(&out_dir, &cfg)?;
    let counters = opts
        .verbosity
        .verbose
        .then(|| counters_report(before, after, result.records.len()));
    Ok(TrainReport {
        out_dir,
        device: device_name,
        task: cfg.data.task,
        result,
        counters,
    })
}

fn train_on<B: Backend>(
    be: &B,
    cfg: &Config,
    data: &LoadedData,
    out_dir: &Path,
    quiet: bool,
) -> Result<RunResult> {
    let (d, m) = (data.train.d(), data.train.m());
    let spec = solver::spec_for(cfg, d, m);
    let dd = DeviceData::upload(be, &data.train, &data.test)?;
    let init = Network::he_init(&spec.sizes, cfg.model.alpha as f32, cfg.model.init_seed);
    let empty = empty_network_p0(&data.train.y, cfg.model.loss);
    let log = out_dir.join("metrics.jsonl");
    run_method(
        be,
        cfg,
        cfg.train.method,
        &spec,
        &dd,
        &init,
        empty,
        cfg.data.task,
        &log,
        quiet,
    )
}

/// A line a command wants shown while it runs.
#[derive(Clone, Debug, PartialEq)]
pub enum Notice {
    /// Normal output (header lines); suppressed by `--quiet`.
    Info(String),
    /// A one-line warning for stderr (device fallback); always shown.
    Warn(String),
}

// ---------------------------------------------------------------------------------------
// compare
// ---------------------------------------------------------------------------------------

#[derive(Clone, Debug, Default)]
pub struct CompareOptions {
    pub config: PathBuf,
    pub sets: Vec<String>,
    pub out: Option<PathBuf>,
    pub verbosity: Verbosity,
}

/// The outcome of `compare`, printed by the binary.
pub struct CompareReport {
    pub out_dir: PathBuf,
    pub device: String,
    pub task: Task,
    pub empty_p0: f64,
    pub results: Vec<RunResult>,
    /// Pass checkpoints within the budget.
    pub pass_checkpoints: Vec<f64>,
    pub time_checkpoints: Vec<f64>,
    pub counters: Option<String>,
}

/// `best_p0` of the last record at or before `at` (by `key`), if any.
fn checkpoint_value(records: &[Record], at: f64, key: impl Fn(&Record) -> f64) -> Option<f64> {
    let tol = 1e-9 * at.abs().max(1.0);
    records
        .iter()
        .filter(|r| key(r) <= at + tol)
        .last()
        .map(|r| r.best_p0)
}

fn checkpoint_label(x: f64) -> String {
    fmt_sig(x, 3)
}

impl CompareReport {
    /// The main table, one row per method.
    pub fn table(&self) -> String {
        let mut t = Table::new([
            "method",
            "p0",
            "train err",
            "test err",
            "zero rows",
            "live",
            "cert",
            "passes",
            "seconds",
            "flag",
        ]);
        for r in &self.results {
            let m = &r.final_measures;
            t.row([
                r.method.to_string(),
                fmt_sig(m.p0, 4),
                fmt_error(self.task, Some(m.train_error)),
                fmt_error(self.task, m.test_error),
                slash_list(&m.zero_rows),
                slash_list(&r.net.live_neurons()),
                fmt_sig(r.cert, 3),
                fmt_sig(r.passes, 4),
                fmt_sig(r.seconds, 3),
                if r.worse_than_empty() {
                    "WORSE THAN EMPTY".to_string()
                } else {
                    String::new()
                },
            ]);
        }
        t.render()
    }

    fn checkpoint_table(&self, cols: &[f64], unit: &str, key: &dyn Fn(&Record) -> f64) -> String {
        let mut headers = vec![format!("(P0) at {unit}")];
        headers.extend(cols.iter().map(|&c| checkpoint_label(c)));
        let mut t = Table::new(headers);
        for r in &self.results {
            let mut row = vec![r.method.to_string()];
            for &c in cols {
                row.push(
                    checkpoint_value(&r.records, c, key)
                        .map(|v| fmt_sig(v, 4))
                        .unwrap_or_else(|| "-".into()),
                );
            }
            t.row(row);
        }
        t.render()
    }

    /// (P0) (best so far) versus passes, one row per method.
    pub fn passes_table(&self) -> String {
        self.checkpoint_table(&self.pass_checkpoints, "passes", &|r: &Record| r.passes)
    }

    /// (P0) (best so far) versus seconds, one row per method.
    pub fn time_table(&self) -> String {
        self.checkpoint_table(&self.time_checkpoints, "seconds", &|r: &Record| r.seconds)
    }

    /// Everything the binary prints after the runs.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "empty network (all weights zero): p0 {}",
            fmt_sig(self.empty_p0, 5)
        );
        let _ = writeln!(s);
        s.push_str(&self.table());
        if !self.pass_checkpoints.is_empty() {
            let _ = writeln!(s);
            s.push_str(&self.passes_table());
        }
        if !self.time_checkpoints.is_empty() {
            let _ = writeln!(s);
            s.push_str(&self.time_table());
        }
        s
    }

    /// compare.json: one object per method.
    pub fn to_json(&self) -> serde_json::Value {
        let arr: Vec<serde_json::Value> = self
            .results
            .iter()
            .map(|r| {
                let mut v = run_metrics(r, &self.device);
                let cp = |cols: &[f64], key: &dyn Fn(&Record) -> f64| -> Vec<serde_json::Value> {
                    cols.iter().map(|&c| json!({ "at": c, "best_p0": checkpoint_value(&r.records, c, key) })).collect()
                };
                v["checkpoints"] = json!({
                    "passes": cp(&self.pass_checkpoints, &|r: &Record| r.passes),
                    "seconds": cp(&self.time_checkpoints, &|r: &Record| r.seconds),
                });
                v
            })
            .collect();
        serde_json::Value::Array(arr)
    }
}

/// `sparse-alm compare`: every method of `compare.methods` from one shared initialisation.
pub fn compare(opts: &CompareOptions, say: &mut dyn FnMut(Notice)) -> Result<CompareReport> {
    let cfg = load_config(Some(&opts.config), &opts.sets)?;
    let data = load_data(&cfg)?;
    let device = open_device(cfg.train.device, &mut |s| say(Notice::Warn(s.to_string())))?;
    let out_dir = opts
        .out
        .clone()
        .unwrap_or_else(|| default_out_dir(Path::new("runs")));
    create_dir(&out_dir)?;
    let sizes = network_sizes(&cfg, data.train.d(), data.train.m());
    let methods: Vec<String> = cfg.compare.methods.iter().map(|m| m.to_string()).collect();
    say(Notice::Info(format!(
        "{} | net {} | methods {} | device {} | λ {}",
        data.description,
        sizes_str(&sizes),
        methods.join(","),
        device.name(),
        cfg.train.lambda
    )));
    let before = device.counters();
    let (results, empty_p0) = with_backend!(&device, be => compare_on(be, &cfg, &data, &out_dir, opts.verbosity.quiet, say))?;
    let after = device.counters();
    let device_name = device.name();
    for r in &results {
        save_model(
            &out_dir.join(r.method.as_str()),
            &cfg,
            &data,
            r,
            &device_name,
        )?;
    }
    write_config(&out_dir, &cfg)?;
    let mut pass_checkpoints: Vec<f64> = cfg
        .compare
        .pass_checkpoints
        .iter()
        .copied()
        .filter(|&c| c <= cfg.train.max_passes)
        .collect();
    if pass_checkpoints.is_empty() && cfg.train.max_passes.is_finite() {
        // A budget below every checkpoint: show (P0) at the budget itself.
        pass_checkpoints.push(cfg.train.max_passes);
    }
    let time_checkpoints = if cfg.compare.time_checkpoints.is_empty() {
        let slowest = results.iter().map(|r| r.seconds).fold(0.0f64, f64::max);
        if slowest > 0.0 {
            (1..=5).map(|k| slowest * k as f64 / 5.0).collect()
        } else {
            Vec::new()
        }
    } else {
        cfg.compare.time_checkpoints.clone()
    };
    let records: usize = results.iter().map(|r| r.records.len()).sum();
    let counters = opts
        .verbosity
        .verbose
        .then(|| counters_report(before, after, records));
    let report = CompareReport {
        out_dir: out_dir.clone(),
        device: device_name,
        task: cfg.data.task,
        empty_p0,
        results,
        pass_checkpoints,
        time_checkpoints,
        counters,
    };
    let path = out_dir.join("compare.json");
    write_json(&path, &report.to_json()).map_err(io_err(&path))?;
    Ok(report)
}

fn compare_on<B: Backend>(
    be: &B,
    cfg: &Config,
    data: &LoadedData,
    out_dir: &Path,
    quiet: bool,
    say: &mut dyn FnMut(Notice),
) -> Result<(Vec<RunResult>, f64)> {
    let spec = solver::spec_for(cfg, data.train.d(), data.train.m());
    let dd = DeviceData::upload(be, &data.train, &data.test)?;
    let init = Network::he_init(&spec.sizes, cfg.model.alpha as f32, cfg.model.init_seed);
    let empty = empty_network_p0(&data.train.y, cfg.model.loss);
    let mut results = Vec::new();
    for &method in &cfg.compare.methods {
        let log = out_dir.join(format!("metrics-{}.jsonl", method.as_str()));
        let res = run_method(
            be,
            cfg,
            method,
            &spec,
            &dd,
            &init,
            empty,
            cfg.data.task,
            &log,
            quiet,
        )?;
        say(Notice::Info(format!(
            "{:>10}: p0 {}  test {}  {} passes  {} s",
            method.as_str(),
            fmt_sig(res.final_measures.p0, 4),
            fmt_error(cfg.data.task, res.final_measures.test_error),
            fmt_sig(res.passes, 4),
            fmt_sig(res.seconds, 3)
        )));
        results.push(res);
    }
    Ok((results, empty))
}

// ---------------------------------------------------------------------------------------
// eval
// ---------------------------------------------------------------------------------------

/// The outcome of `eval`.
pub struct EvalReport {
    pub model: PathBuf,
    pub data: PathBuf,
    pub device: String,
    pub meta: ModelMeta,
    pub samples: usize,
    pub measures: Measures,
    pub zero_groups: Vec<usize>,
    pub live_neurons: Vec<usize>,
    pub params: usize,
}

impl EvalReport {
    pub fn render(&self) -> String {
        let m = &self.measures;
        let mut t = Table::new(["measure", "value"]);
        t.row(["model".to_string(), self.model.display().to_string()]);
        t.row([
            "network".to_string(),
            format!(
                "{} ({} method, λ {})",
                sizes_str(&self.meta.sizes),
                self.meta.method,
                self.meta.lambda
            ),
        ]);
        t.row([
            "data".to_string(),
            format!("{} ({} samples)", self.data.display(), self.samples),
        ]);
        t.row(["device".to_string(), self.device.clone()]);
        match self.meta.task {
            Task::Classification => {
                t.row([
                    "accuracy".to_string(),
                    format!("{:.2}%", 100.0 * (1.0 - m.train_error)),
                ]);
                t.row([
                    "error".to_string(),
                    format!("{:.2}%", 100.0 * m.train_error),
                ]);
            }
            Task::Regression => {
                t.row(["MSE".to_string(), fmt_sig(m.train_error, 5)]);
            }
        }
        t.row(["loss".to_string(), fmt_sig(m.loss, 5)]);
        t.row(["p0".to_string(), fmt_sig(m.p0, 5)]);
        t.row([
            "zero groups per layer".to_string(),
            slash_list(&self.zero_groups),
        ]);
        t.row([
            "live neurons per hidden layer".to_string(),
            slash_list(&self.live_neurons),
        ]);
        t.row(["parameters".to_string(), self.params.to_string()]);
        t.render()
    }
}

/// `sparse-alm eval MODEL DATA`.
pub fn eval(
    model_path: &Path,
    data_path: &Path,
    device: DeviceChoice,
    say: &mut dyn FnMut(Notice),
) -> Result<EvalReport> {
    let (net, meta) = model::load(model_path)?;
    let preprocess: Preprocess = serde_json::from_value(meta.preprocess.clone()).map_err(|e| {
        Error::Invalid(format!("{}: field `preprocess`: {e}", model_path.display()))
    })?;
    let (d, m) = (meta.sizes[0], meta.sizes[meta.sizes.len() - 1]);
    let espec = EvalSpec {
        task: meta.task,
        target: meta.target.clone(),
        n_inputs: d,
        n_outputs: m,
        class_names: meta.class_names.clone(),
        preprocess,
    };
    let ds = data::load_for_eval(data_path, &espec)?;
    if ds.n() == 0 {
        return Err(Error::Invalid(format!(
            "{}: no samples",
            data_path.display()
        )));
    }
    let spec = Spec::new(
        meta.sizes.clone(),
        meta.alpha as f32,
        meta.lambda as f32,
        meta.loss,
        meta.input_groups,
        meta.output_groups,
    );
    let dev = open_device(device, &mut |s| say(Notice::Warn(s.to_string())))?;
    let measures = with_backend!(&dev, be => eval_on(be, &spec, &net, &ds))?;
    Ok(EvalReport {
        model: model_path.to_path_buf(),
        data: data_path.to_path_buf(),
        device: dev.name(),
        samples: ds.n(),
        measures,
        zero_groups: net.zero_groups(&spec.axes),
        live_neurons: net.live_neurons(),
        params: net.param_count(),
        meta,
    })
}

fn eval_on<B: Backend>(be: &B, spec: &Spec, net: &Network, ds: &Dataset) -> Result<Measures> {
    let dd = DeviceData::upload(be, ds, &ds.select(&[]))?;
    let mut ev = Evaluator::new(be, spec, &dd)?;
    let p = Params::upload(be, net)?;
    Ok(ev.measure(be, &p, &dd)?)
}

// ---------------------------------------------------------------------------------------
// info
// ---------------------------------------------------------------------------------------

/// `sparse-alm info`: GPU adapters, which one `auto` picks, and the CPU backend. Never
/// fails: a missing GPU is reported, not an error.
pub fn info() -> String {
    let mut s = String::new();
    let adapters = gpu_glue::adapters();
    if adapters.is_empty() {
        let _ = writeln!(s, "GPU adapters: none found");
    } else {
        let _ = writeln!(s, "GPU adapters ({}):", adapters.len());
        for a in &adapters {
            for (i, line) in a.lines().enumerate() {
                let _ = writeln!(s, "{}{line}", if i == 0 { "  - " } else { "    " });
            }
        }
    }
    let mut why = None;
    match open_device(DeviceChoice::Auto, &mut |n| why = Some(n.to_string())) {
        Ok(dev) => {
            let _ = writeln!(s, "--device auto uses: {}", dev.name());
        }
        Err(e) => {
            let _ = writeln!(s, "--device auto uses: nothing ({e})");
        }
    }
    if let Some(w) = why {
        let _ = writeln!(s, "  ({})", w.trim_start_matches("note: "));
    }
    let _ = writeln!(s, "CPU backend: {}", CpuBackend::<f32>::new().name());
    s
}
