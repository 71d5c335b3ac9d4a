//! `sparse-alm path`: the sparsity–accuracy frontier of method §9. A warm-started,
//! ascending λ path *selects* supports; each distinct support is *compacted*, *refitted*
//! at a small `λ_r`, *certified* and evaluated on a validation split carved from the
//! training data before the path starts; a point is recommended by the one-standard-error
//! rule on that split. Points are saved as they are made (`points/<k>/`, `path.json`,
//! `path.csv`), so an interrupted or failing path keeps everything already done, and
//! `path --resume DIR` continues it from the step it had reached (`path_state`).

use super::device::with_backend;
use super::eval::host_error;
use super::path_report::{self, PathPoint, PathReport};
use super::path_state::PathState;
use super::setup::{Command, RunArgs, Setup};
use super::{io_err, Notice};
use crate::backend::{Backend, LossKind};
use crate::config::{Config, ConfigError, Method, Task};
use crate::data::Dataset;
use crate::model::compact::{compact, Compacted};
use crate::model::{self, Network};
use crate::output::MetricsLog;
use crate::problem::{DeviceData, Params, Spec};
use crate::solver::measures::{empty_network_p0, Evaluator};
use crate::solver::{self, Record, RunOptions};
use crate::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

/// What `path` needs besides the configuration (the `[path]` section holds the rest).
#[derive(Clone, Debug, Default)]
pub struct PathOptions {
    pub run: RunArgs,
    /// Test hook: stop (with [`Error::Interrupted`]) after saving the state of this many
    /// selection steps, as a process killed there would have.
    #[doc(hidden)]
    pub stop_after: Option<u64>,
}

/// Least samples on either side of the validation split.
const MIN_SPLIT: usize = 2;

/// `sparse-alm path`.
pub fn path(opts: &PathOptions, say: &mut dyn FnMut(Notice)) -> Result<PathReport> {
    let setup = Setup::start(Command::Path, &opts.run, say)?;
    let resume = match &opts.run.resume {
        None => None,
        Some(dir) => {
            let state = PathState::load(dir)?;
            say(Notice::Info(format!(
                "resuming {}: {} selection steps and {} points done, {} λ values to go",
                dir.display(),
                state.steps,
                state.points.len(),
                state.todo.len()
            )));
            Some(state)
        }
    };
    let cfg = &setup.cfg;
    let grid = cfg.path.grid()?;
    let (fit, val) = carve_validation(cfg, &setup.data.train)?;
    let lambda_r = refit_lambda(cfg, &fit);
    say(Notice::Info(format!(
        "{} | path λ {} ({} values) | selector {} × {} passes | polisher {} at λ_r {} | validation {} of {} training samples",
        setup.header("path"),
        cfg.path.lambdas,
        grid.len(),
        cfg.path.selector,
        cfg.path.passes,
        cfg.path.polisher,
        crate::output::fmt_sig(lambda_r, 3),
        val.n(),
        setup.data.train.n()
    )));
    let run = PathRun {
        setup: &setup,
        fit,
        val,
        grid,
        lambda_r,
        quiet: opts.run.verbosity.quiet,
        stop_after: opts.stop_after,
    };
    let points = with_backend!(&setup.device, be => run.run(be, resume, say))?;
    let report = PathReport::new(setup.out_dir.clone(), cfg.data.task, points, lambda_r);
    report.write()?;
    PathState::remove(&setup.out_dir)?;
    Ok(report)
}

/// Split the training data into the part the path fits and the validation part it
/// chooses on (stratified for classification, seeded by `train.seed`).
fn carve_validation(cfg: &Config, train: &Dataset) -> Result<(Dataset, Dataset)> {
    let n = train.n();
    let f = cfg.path.validation_fraction;
    let n_val = (f * n as f64).round() as usize;
    if n_val < MIN_SPLIT || n - n_val.min(n) < MIN_SPLIT {
        return Err(Error::Config(ConfigError::field(
            "path.validation_fraction",
            format!(
                "{f} of {n} training samples leaves {n_val} for validation and {} to fit; each needs at least {MIN_SPLIT}",
                n.saturating_sub(n_val)
            ),
        )));
    }
    let strata = match cfg.data.task {
        Task::Classification => train.labels.as_deref(),
        Task::Regression => None,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.train.seed ^ 0x005E_ED0F_7A11);
    let (kept, taken) = crate::data::split_indices(n, n_val, strata, &mut rng);
    Ok((train.select(&kept), train.select(&taken)))
}

/// method §9: `λ_r` = `path.lambda_refit`, else 1e-3 for the squared loss and, for other
/// losses, 1e-3 scaled by the ratio of the empty network's losses.
fn refit_lambda(cfg: &Config, fit: &Dataset) -> f64 {
    if let Some(l) = cfg.path.lambda_refit {
        return l;
    }
    let base = 1e-3;
    match cfg.model.loss {
        LossKind::Squared => base,
        other => {
            let sq = empty_network_p0(&fit.y, LossKind::Squared);
            let own = empty_network_p0(&fit.y, other);
            if sq > 0.0 && own.is_finite() && own > 0.0 {
                base * own / sq
            } else {
                base
            }
        }
    }
}

/// The grid's step ratio (10 for a one-value grid), used to extend the path past its end.
fn grid_ratio(grid: &[f64]) -> f64 {
    match grid {
        [.., a, b] if b > a => b / a,
        _ => 10.0,
    }
}

/// The fixed parts of one path run.
struct PathRun<'a> {
    setup: &'a Setup,
    fit: Dataset,
    val: Dataset,
    grid: Vec<f64>,
    lambda_r: f64,
    quiet: bool,
    stop_after: Option<u64>,
}

impl PathRun<'_> {
    fn spec(&self, sizes: Vec<usize>, lambda: f64) -> Spec {
        let m = &self.setup.cfg.model;
        Spec::new(
            sizes,
            m.alpha as f32,
            lambda as f32,
            m.loss,
            m.input_groups,
            m.output_groups,
        )
    }

    fn bar(&self, len: u64) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        if let Ok(style) = ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} λ {elapsed_precise} {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix("path");
        bar
    }

    /// The path from its start, or from `resume`; the state is saved after every step.
    fn run<B: Backend>(
        &self,
        be: &B,
        resume: Option<PathState>,
        say: &mut dyn FnMut(Notice),
    ) -> Result<Vec<PathPoint>> {
        let cfg = &self.setup.cfg;
        let out = &self.setup.out_dir;
        let test = &self.setup.data.test;
        let dense = solver::spec_for(cfg, self.fit.d(), self.fit.m());
        let data = DeviceData::upload(be, &self.fit, test)?;
        let empty_sel = empty_network_p0(&self.fit.y, cfg.model.loss);
        let init = Network::he_init(&dense.sizes, cfg.model.alpha as f32, cfg.model.init_seed);
        // One certificate normaliser for every refit: the dense He initialisation's
        // certificate at λ_r, so the points' `cert` compare (method §5, §9).
        let cert0 = {
            let spec_r = self.spec(dense.sizes.clone(), self.lambda_r);
            let mut ev = Evaluator::new(be, &spec_r, &data)?;
            ev.measure(be, &Params::upload(be, &init)?, &data)?.cert_abs
        };
        let sel_log_path = out.join("selection.jsonl");
        let (mut st, mut sel_log) = match resume {
            Some(st) => {
                let log = MetricsLog::resume(&sel_log_path, st.selection_records);
                (st, log.map_err(io_err(&sel_log_path))?)
            }
            None => {
                let st = PathState::start(&self.grid, cfg.path.extend, cfg.path.refine, &init);
                let log = MetricsLog::create(&sel_log_path).map_err(io_err(&sel_log_path))?;
                (st, log)
            }
        };
        let mut net = st.net()?;
        let bar = self.bar(st.steps + st.todo.len() as u64);
        bar.set_position(st.steps);
        let task = cfg.data.task;
        bar.suspend(|| {
            say(Notice::Info(path_report::header_row(task)));
            for (index, point) in st.points.iter().enumerate() {
                say(Notice::Info(path_report::row(task, index, point)));
            }
        });
        // The λ schedule: the grid, then (while the support is not empty) up to
        // `path.extend` more values at the grid's ratio; a step that loses more than half
        // of the live neurons is retried from the previous weights at the geometric
        // midpoint, at most `path.refine` times in all, so the frontier has no large gaps.
        let ratio = grid_ratio(&self.grid);
        let mut done = st.points.last().is_some_and(|p| p.live_total == 0);
        while !done {
            let Some(lambda) = st.todo.pop_front() else {
                break;
            };
            bar.set_message(format!(
                "selecting at λ {}",
                crate::output::fmt_sig(lambda, 3)
            ));
            let started = Instant::now();
            let res = self.select(
                be,
                &data,
                &net,
                lambda,
                empty_sel,
                &mut sel_log,
                &sel_log_path,
            )?;
            let c = compact(&res.net, cfg.model.input_groups);
            let live: usize = c.live().iter().sum();
            let refine = st.prev.is_some_and(|(prev_lambda, prev_live)| {
                st.refine_left > 0 && 2 * live < prev_live && lambda / prev_lambda > 1.05
            });
            if let (true, Some((prev_lambda, _))) = (refine, st.prev) {
                st.refine_left -= 1;
                st.todo.push_front(lambda);
                st.todo.push_front((prev_lambda * lambda).sqrt());
                bar.inc_length(1);
            } else {
                bar.inc(1);
                st.steps += 1;
                net = res.net.clone();
                st.set_net(&net);
                st.prev = Some((lambda, live));
                if st.todo.is_empty() && !c.is_empty() && st.extend_left > 0 {
                    st.extend_left -= 1;
                    st.todo.push_back(lambda * ratio);
                    bar.inc_length(1);
                }
                let support = (c.kept_inputs.clone(), c.kept_neurons.clone());
                if st.last_support.as_ref() != Some(&support) {
                    st.last_support = Some(support);
                    bar.set_message(format!("refitting {live} live"));
                    let index = st.points.len();
                    let mut point = self.point(be, &c, lambda, index, cert0, &res)?;
                    // The point's wall time: its selection at λ and its refit.
                    point.seconds = started.elapsed().as_secs_f64();
                    bar.suspend(|| say(Notice::Info(path_report::row(task, index, &point))));
                    st.points.push(point);
                    path_report::write_files(out, task, &st.points, self.lambda_r)?;
                    done = c.is_empty();
                }
            }
            sel_log.finish().map_err(io_err(&sel_log_path))?;
            st.selection_records = sel_log.len();
            st.save(out)?;
            if self.stop_after.is_some_and(|k| st.steps >= k) {
                return Err(Error::Interrupted(PathState::path(out)));
            }
        }
        bar.finish_and_clear();
        sel_log.finish().map_err(io_err(&sel_log_path))?;
        Ok(st.points)
    }

    /// The selector at `lambda` from `net`, its records appended to `selection.jsonl`.
    #[allow(clippy::too_many_arguments)]
    fn select<B: Backend>(
        &self,
        be: &B,
        data: &DeviceData<B>,
        net: &Network,
        lambda: f64,
        empty_p0: f64,
        log: &mut MetricsLog,
        log_path: &std::path::Path,
    ) -> Result<solver::RunResult> {
        let cfg = &self.setup.cfg;
        let mut sel_cfg = cfg.clone();
        sel_cfg.train.lambda = lambda;
        sel_cfg.train.max_passes = cfg.path.passes;
        let spec = self.spec(net.sizes(), lambda);
        let mut log_err = None;
        let mut sink = |r: &Record| {
            if let Err(e) = log.push(&SelectionRecord { lambda, record: r }) {
                log_err.get_or_insert(e);
            }
        };
        let (opts, selector) = (RunOptions::default(), cfg.path.selector);
        let res = solver::train(
            be, &sel_cfg, selector, &spec, data, net, empty_p0, &opts, &mut sink, None,
        )
        .map_err(|e| {
            Error::Invalid(format!(
                "the selector {} failed at λ = {lambda}: {e}",
                cfg.path.selector
            ))
        })?;
        match log_err {
            Some(e) => Err(Error::io(log_path, e)),
            None => Ok(res),
        }
    }

    /// Refit, certify, evaluate and save one compact support; a failed refit is a point
    /// with its reason, not an error of the path.
    fn point<B: Backend>(
        &self,
        be: &B,
        c: &Compacted,
        lambda: f64,
        index: usize,
        cert0: f64,
        sel: &solver::RunResult,
    ) -> Result<PathPoint> {
        let cfg = &self.setup.cfg;
        let names = &self.setup.data.train.feature_names;
        let fit = self.fit.with_inputs(&c.kept_inputs);
        let val = self.val.with_inputs(&c.kept_inputs);
        let test = self.setup.data.test.with_inputs(&c.kept_inputs);
        let empty_r = empty_network_p0(&fit.y, cfg.model.loss);
        let live = c.live();
        let mut point = PathPoint {
            lambda,
            lambda_refit: self.lambda_r,
            live_total: live.iter().sum(),
            live,
            kept_inputs: c.kept_inputs.len(),
            kept_input_names: if c.kept_inputs.len() < self.fit.d() {
                c.kept_inputs
                    .iter()
                    .filter_map(|&i| names.get(i).cloned())
                    .collect()
            } else {
                Vec::new()
            },
            empty_p0_refit: empty_r,
            selected_test_error: sel.final_measures.test_error,
            ..Default::default()
        };
        let started = Instant::now();
        if c.is_empty() {
            // A constant network: nothing to refit or certify.
            self.evaluate(&mut point, &c.net, &fit, &val, &test);
            point.seconds = started.elapsed().as_secs_f64();
            return Ok(point);
        }
        let dir_name = format!("points/{index}");
        let dir = self.setup.out_dir.join(&dir_name);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        match self.refit(be, c, &fit, &test, cert0, &dir) {
            Ok((net, res)) => {
                self.evaluate(&mut point, &net, &fit, &val, &test);
                point.p0_refit = Some(res.final_measures.p0);
                point.cert = Some(res.cert);
                point.passes = res.passes;
                let mut metrics = super::report::run_metrics(&res, &self.setup.device.name());
                metrics["val_error"] = serde_json::json!(point.val_error);
                metrics["selection_lambda"] = serde_json::json!(lambda);
                let method = format!("path:{}+{}", cfg.path.selector, cfg.path.polisher);
                let meta =
                    self.setup
                        .meta_for(&net, self.lambda_r, &method, &c.kept_inputs, metrics)?;
                match model::save(&dir, &net, &meta) {
                    Ok(()) => point.model_dir = dir_name,
                    Err(e) => point.failed = Some(format!("{e}")),
                }
            }
            Err(e) => point.failed = Some(format!("refit failed: {e}")),
        }
        point.seconds = started.elapsed().as_secs_f64();
        Ok(point)
    }

    fn evaluate(
        &self,
        point: &mut PathPoint,
        net: &Network,
        fit: &Dataset,
        val: &Dataset,
        test: &Dataset,
    ) {
        let finite = |x: f64| x.is_finite().then_some(x);
        point.train_error = finite(host_error(net, fit).0);
        let (v, se) = host_error(net, val);
        point.val_error = finite(v);
        point.val_se = finite(se);
        point.test_error = finite(host_error(net, test).0);
    }

    /// The polisher of method §9 on the compact network at `λ_r`: optionally prox-SGD
    /// for `path.sgd_passes`, then the certifying method until `cert ≤ path.cert_target`
    /// or `path.refit_passes` in all. Zero groups stay zero (rows may die, never revive).
    fn refit<B: Backend>(
        &self,
        be: &B,
        c: &Compacted,
        fit: &Dataset,
        test: &Dataset,
        cert0: f64,
        dir: &std::path::Path,
    ) -> Result<(Network, solver::RunResult)> {
        let cfg = &self.setup.cfg;
        let spec = self.spec(c.net.sizes(), self.lambda_r);
        let data = DeviceData::upload(be, fit, test)?;
        let empty = empty_network_p0(&fit.y, cfg.model.loss);
        let log_path = dir.join("metrics.jsonl");
        let mut log = MetricsLog::create(&log_path).map_err(io_err(&log_path))?;
        let mut log_err = None;
        // Passes of the phases before the current one, so the log reads as one run.
        let offset = std::cell::Cell::new(0.0);
        let mut sink = |r: &Record| {
            let mut r = r.clone();
            r.passes += offset.get();
            if let Err(e) = log.push(&r) {
                log_err.get_or_insert(e);
            }
        };
        let (sgd_first, method) = cfg.path.polisher.phases();
        let opts = RunOptions {
            cert0: Some(cert0),
            cert_target: cfg.path.cert_target,
            keep_zero_groups: true,
        };
        let mut rcfg = cfg.clone();
        rcfg.train.lambda = self.lambda_r;
        let mut start = c.net.clone();
        let mut spent = 0.0;
        let mut seconds = 0.0;
        if sgd_first && cfg.path.sgd_passes > 0.0 {
            rcfg.train.max_passes = cfg.path.sgd_passes.min(cfg.path.refit_passes);
            let sgd_opts = RunOptions {
                cert_target: 0.0,
                ..opts
            };
            let sgd = Method::ProxSgd;
            let res = solver::train(
                be, &rcfg, sgd, &spec, &data, &start, empty, &sgd_opts, &mut sink, None,
            )?;
            start = res.net;
            spent = res.passes;
            seconds = res.seconds;
        }
        rcfg.train.max_passes = (cfg.path.refit_passes - spent).max(1.0);
        offset.set(spent);
        let mut res = solver::train(
            be, &rcfg, method, &spec, &data, &start, empty, &opts, &mut sink, None,
        )?;
        res.passes += spent;
        res.seconds += seconds;
        log.finish().map_err(io_err(&log_path))?;
        if let Some(e) = log_err {
            return Err(Error::io(&log_path, e));
        }
        if !res.final_measures.p0.is_finite() {
            return Err(Error::Invalid(format!(
                "(P0) is not finite after the refit ({}); try a smaller sgd.lr",
                res.final_measures.p0
            )));
        }
        Ok((res.net.clone(), res))
    }
}

/// A selection record with the λ it was made at (`selection.jsonl`).
#[derive(serde::Serialize)]
struct SelectionRecord<'a> {
    lambda: f64,
    #[serde(flatten)]
    record: &'a Record,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn the_validation_split_is_disjoint_stratified_and_refuses_tiny_sets() {
        let n = 50;
        let labels: Vec<u32> = (0..n).map(|i| (i % 5) as u32).collect();
        let ds = Dataset {
            x: Array2::from_shape_fn((2, n), |(r, c)| (r * n + c) as f32),
            y: Array2::zeros((5, n)),
            labels: Some(labels),
            task: Task::Classification,
            feature_names: vec!["a".into(), "b".into()],
            class_names: (0..5).map(|c| c.to_string()).collect(),
            target_std: None,
        };
        let mut cfg = Config::default();
        cfg.data.task = Task::Classification;
        let (fit, val) = carve_validation(&cfg, &ds).unwrap();
        assert_eq!((fit.n(), val.n()), (40, 10));
        // Column 0 of x is the sample index: the two parts share no sample.
        let mut seen: Vec<f32> = fit
            .x
            .row(0)
            .iter()
            .chain(val.x.row(0).iter())
            .copied()
            .collect();
        seen.sort_by(f32::total_cmp);
        seen.dedup();
        assert_eq!(seen.len(), n);
        for c in 0..5 {
            let k = val
                .labels
                .as_ref()
                .unwrap()
                .iter()
                .filter(|&&l| l == c)
                .count();
            assert_eq!(k, 2, "class {c}");
        }
        cfg.path.validation_fraction = 0.01;
        let err = carve_validation(&cfg, &ds).unwrap_err().to_string();
        assert!(err.contains("path.validation_fraction"), "{err}");
    }
}
