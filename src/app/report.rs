//! What the commands return and how it prints: the final tables of `train`, `compare` and
//! `eval`, the compare.json / model.json metrics object, the live progress bar with its
//! record message (the record sink that also writes metrics.jsonl), and the backend
//! counters line of `--verbose`.

use super::io_err;
use crate::backend::{Counters, SweepCounters};
use crate::config::{Config, Method, Task};
use crate::model::ModelMeta;
use crate::output::{fmt_sig, MetricsLog, Table};
use crate::solver::measures::Measures;
use crate::solver::{Record, RunResult};
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

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

/// `a-b-c` for layer sizes.
pub(super) fn sizes_str(sizes: &[usize]) -> String {
    sizes
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("-")
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
pub(super) struct Sink<'a> {
    cfg: &'a Config,
    task: Task,
    bar: ProgressBar,
    log: MetricsLog,
    err: Option<std::io::Error>,
}

impl<'a> Sink<'a> {
    /// A sink writing the metrics log at `log_path`, with a progress bar labelled
    /// `prefix` (hidden when `quiet`).
    pub(super) fn new(
        cfg: &'a Config,
        task: Task,
        log_path: &Path,
        quiet: bool,
        prefix: &str,
    ) -> Result<Self> {
        let log = MetricsLog::create(log_path).map_err(io_err(log_path))?;
        Ok(Sink {
            cfg,
            task,
            bar: progress_bar(cfg, quiet, prefix),
            log,
            err: None,
        })
    }

    pub(super) fn see(&mut self, r: &Record) {
        self.bar
            .set_position(bar_position(self.cfg, r).min(self.bar.length().unwrap_or(u64::MAX)));
        self.bar.set_message(record_message(self.task, r));
        if self.err.is_none() {
            if let Err(e) = self.log.push(r) {
                self.err = Some(e);
            }
        }
    }

    pub(super) fn finish(mut self) -> Result<()> {
        self.bar.finish_and_clear();
        let path = self.log.path().to_path_buf();
        if let Some(e) = self.err.take() {
            return Err(Error::io(path, e));
        }
        self.log.finish().map_err(io_err(&path))
    }
}

/// The final figures of a run, as saved in model.json's `metrics` and in compare.json.
pub(super) fn run_metrics(res: &RunResult, device: &str) -> serde_json::Value {
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
        "diverged": res.diverged.as_ref().map(|d| d.to_string()),
    })
}

/// The counters line of `--verbose`: the backend's work between `before` and `after`, per
/// record (outer iteration of the ALM, epoch / iteration of the baselines), and per inner
/// sweep of the ALM (method §6) on its own, the unit a GPU's round trips are counted in.
pub(super) fn counters_report(
    before: Counters,
    after: Counters,
    records: usize,
    sweeps: SweepCounters,
) -> String {
    let all = after.since(before);
    let k = records.max(1) as f64;
    let mut line = format!(
        "backend counters: {} dispatches, {} readbacks, {} submits; per outer iteration/epoch ({records} records): {:.1} dispatches, {:.1} readbacks, {:.1} submits",
        all.dispatches,
        all.readbacks,
        all.submits,
        all.dispatches as f64 / k,
        all.readbacks as f64 / k,
        all.submits as f64 / k
    );
    if sweeps.sweeps > 0 {
        let n = sweeps.sweeps as f64;
        let w = sweeps.work;
        let _ = write!(
            line,
            "; per inner sweep ({} sweeps, their own measures included): {:.1} dispatches, {:.1} readbacks, {:.1} submits",
            sweeps.sweeps,
            w.dispatches as f64 / n,
            w.readbacks as f64 / n,
            w.submits as f64 / n
        );
    }
    line
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
        if let Some(d) = &r.diverged {
            let _ = writeln!(
                s,
                "!!! DIVERGED at {} {} ({} passes); the model is the last finite state (train.keep_diverged) !!!",
                d.phase,
                d.iter,
                fmt_sig(d.passes, 4)
            );
        }
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

    /// What follows the table: the counters line (`--verbose`) and where the run went.
    pub fn footer(&self) -> String {
        let mut s = footer(
            self.counters.as_deref(),
            "model, metrics.jsonl and config.toml",
            &self.out_dir,
        );
        // method §9: at a λ where (P0) prefers a nonempty network, no group reaches zero;
        // the frontier is found by `path`, so say so instead of leaving a dense net unexplained.
        if self.result.final_measures.zero_rows.iter().all(|&z| z == 0) {
            let _ = writeln!(
                s,
                "no group reached zero at this λ (dense network): `sparse-alm path` finds the smallest accurate network (method §9)"
            );
        }
        s
    }
}

/// The counters line (if any) and the "saved … to DIR" line.
fn footer(counters: Option<&str>, what: &str, dir: &Path) -> String {
    let mut s = String::new();
    if let Some(c) = counters {
        let _ = writeln!(s, "{c}");
    }
    let _ = writeln!(s, "saved {what} to {}", dir.display());
    s
}

/// One method of a `compare`: its result, or why it has none.
pub enum MethodOutcome {
    Done(Box<RunResult>),
    Failed(MethodFailure),
}

/// A method of a `compare` that stopped with an error (divergence, a runtime error); the
/// other methods run on and are saved as usual.
pub struct MethodFailure {
    pub method: Method,
    /// The error, as the binary would print it.
    pub reason: String,
}

impl MethodOutcome {
    pub fn method(&self) -> Method {
        match self {
            MethodOutcome::Done(r) => r.method,
            MethodOutcome::Failed(f) => f.method,
        }
    }

    pub fn result(&self) -> Option<&RunResult> {
        match self {
            MethodOutcome::Done(r) => Some(r),
            MethodOutcome::Failed(_) => None,
        }
    }
}

/// The outcome of `compare`, printed by the binary.
pub struct CompareReport {
    pub out_dir: PathBuf,
    pub device: String,
    pub task: Task,
    pub empty_p0: f64,
    /// Every method of `compare.methods`, in order.
    pub outcomes: Vec<MethodOutcome>,
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
    /// The methods that have a result.
    pub fn results(&self) -> impl Iterator<Item = &RunResult> {
        self.outcomes.iter().filter_map(MethodOutcome::result)
    }

    /// The methods that failed.
    pub fn failures(&self) -> impl Iterator<Item = &MethodFailure> {
        self.outcomes.iter().filter_map(|o| match o {
            MethodOutcome::Failed(f) => Some(f),
            MethodOutcome::Done(_) => None,
        })
    }

    /// An error (exit 1) when any method failed, naming them; `None` when all succeeded.
    /// The binary returns it after printing the report, so what succeeded is shown and
    /// saved first.
    pub fn failure(&self) -> Option<Error> {
        let failed: Vec<&str> = self.failures().map(|f| f.method.as_str()).collect();
        if failed.is_empty() {
            return None;
        }
        Some(Error::Failed(format!(
            "{} of {} methods failed ({}); the other results are saved in {}",
            failed.len(),
            self.outcomes.len(),
            failed.join(", "),
            self.out_dir.display()
        )))
    }

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
        for o in &self.outcomes {
            let r = match o {
                MethodOutcome::Done(r) => r,
                MethodOutcome::Failed(f) => {
                    let mut row = vec![f.method.to_string()];
                    row.extend(std::iter::repeat_n("-".to_string(), 8));
                    row.push("FAILED".to_string());
                    t.row(row);
                    continue;
                }
            };
            let m = &r.final_measures;
            let mut flags = Vec::new();
            if r.diverged.is_some() {
                flags.push("DIVERGED (last finite state)");
            }
            if r.worse_than_empty() {
                flags.push("WORSE THAN EMPTY");
            }
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
                flags.join(", "),
            ]);
        }
        let mut s = t.render();
        for f in self.failures() {
            let _ = writeln!(s, "{} FAILED: {}", f.method, f.reason);
        }
        s
    }

    fn checkpoint_table(&self, cols: &[f64], unit: &str, key: &dyn Fn(&Record) -> f64) -> String {
        let mut headers = vec![format!("(P0) at {unit}")];
        headers.extend(cols.iter().map(|&c| checkpoint_label(c)));
        let mut t = Table::new(headers);
        for r in self.results() {
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

    /// What follows [`CompareReport::render`]: the counters line and where the runs went.
    pub fn footer(&self) -> String {
        footer(
            self.counters.as_deref(),
            "compare.json, metrics-<method>.jsonl and <method>/ models",
            &self.out_dir,
        )
    }

    /// compare.json: one object per method; a failed method's has its reason under
    /// `failed` instead of figures.
    pub fn to_json(&self) -> serde_json::Value {
        let arr: Vec<serde_json::Value> = self
            .outcomes
            .iter()
            .map(|o| {
                let r = match o {
                    MethodOutcome::Done(r) => r,
                    MethodOutcome::Failed(f) => {
                        return json!({
                            "method": f.method.as_str(),
                            "failed": f.reason,
                            "empty_p0": self.empty_p0,
                            "device": self.device,
                        })
                    }
                };
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
