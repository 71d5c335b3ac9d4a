//! The solvers: the inexact ALM (method §4 outer loop in `alm.rs`, §6 inner block solver and
//! its exact blocks in `inner/`), the baselines of method §7 (`baselines.rs`, with the
//! Armijo prox-gradient step on (P0) they share with the ALM's P0 steps in `prox_grad.rs`),
//! the measures of method §5 (`measures.rs`), the divergence rule (`divergence.rs`) and
//! the checkpoints a run writes and resumes from (`checkpoint.rs`). All of them are written once against [`Backend`]
//! and read back only scalars, from the slot layout of `slots.rs`; this module owns what
//! they share: the run record, the work budget and the clock, and [`train`], which runs
//! one method from one initialisation.

pub mod alm;
pub mod baselines;
pub mod checkpoint;
pub mod divergence;
pub mod inner;
pub mod measures;
pub mod prox_grad;
pub mod slots;

use crate::backend::{BResult, Backend, SweepCounters};
use crate::config::{Config, Method};
use crate::model::Network;
use crate::problem::{DeviceData, Params, Spec};
use crate::{Error, Result};
use checkpoint::{Checkpoints, SolverState};
pub use divergence::Divergence;
use measures::{Evaluator, Measures};
use std::time::{Duration, Instant};

/// One line of `metrics.jsonl`: every method §5 measure at one outer iteration / epoch.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Record {
    pub method: String,
    /// `sgd`, `adam`, `gd`, `apg`, `alm` (warm+alm has an `sgd` then an `alm` phase).
    pub phase: String,
    /// Outer iteration (ALM), epoch (SGD/Adam) or iteration (GD/APG), counted within the
    /// phase.
    pub iter: usize,
    /// Work so far in passes (method §5).
    pub passes: f64,
    /// Wall time of the method so far (measurements excluded).
    pub seconds: f64,
    pub p0: f64,
    pub loss: f64,
    pub reg: f64,
    pub train_error: f64,
    pub test_error: Option<f64>,
    pub zero_rows: Vec<usize>,
    /// `cert` of method §5, relative to its value at the shared initialisation.
    pub cert: f64,
    /// (P0) of the model the method would return now (the ALM returns its best W).
    pub best_p0: f64,
    /// ALM only: `‖H‖/‖σ(U)‖` (the P0-steps variant: at the inner solution, before its
    /// feasible restart).
    pub feas: Option<f64>,
    /// ALM only: the Lagrangian's prox-gradient mapping relative to its start value.
    pub kkt: Option<f64>,
    pub rho: Option<f64>,
    /// ALM only: inner sweeps in this outer iteration.
    pub sweeps: Option<usize>,
}

impl Record {
    fn from_measures(m: &Measures, cert0: f64) -> Self {
        Record {
            p0: m.p0,
            loss: m.loss,
            reg: m.reg,
            train_error: m.train_error,
            test_error: m.test_error,
            zero_rows: m.zero_rows.clone(),
            cert: m.cert_abs / cert0,
            best_p0: m.p0,
            ..Default::default()
        }
    }
}

/// A stopwatch that is paused while measures are evaluated, so `seconds` is the method's
/// own time only (every method is measured the same way, at different cadences).
#[derive(Clone, Debug)]
pub struct Clock {
    acc: Duration,
    since: Option<Instant>,
}

impl Clock {
    pub fn started() -> Self {
        Clock::resumed(0.0)
    }
    /// A running clock that has already counted `seconds` (a resumed run).
    pub fn resumed(seconds: f64) -> Self {
        Clock {
            acc: Duration::from_secs_f64(seconds.max(0.0)),
            since: Some(Instant::now()),
        }
    }
    pub fn pause(&mut self) {
        if let Some(s) = self.since.take() {
            self.acc += s.elapsed();
        }
    }
    pub fn resume(&mut self) {
        if self.since.is_none() {
            self.since = Some(Instant::now());
        }
    }
    pub fn seconds(&self) -> f64 {
        (self.acc + self.since.map(|s| s.elapsed()).unwrap_or_default()).as_secs_f64()
    }
}

/// Work and time budget shared by the phases of one run.
#[derive(Clone, Debug)]
pub struct Budget {
    pub max_passes: f64,
    pub max_seconds: f64,
    pub passes: f64,
    pub clock: Clock,
    /// Stop once a record's `cert` is at most this (0: never; a refit's target, method §9).
    pub cert_target: f64,
    /// A record reached `cert_target`.
    pub cert_met: bool,
}

impl Budget {
    pub fn new(max_passes: f64, max_seconds: f64) -> Self {
        Budget {
            max_passes,
            max_seconds,
            passes: 0.0,
            clock: Clock::started(),
            cert_target: 0.0,
            cert_met: false,
        }
    }
    pub fn spent(&self) -> bool {
        self.cert_met || self.passes >= self.max_passes || self.clock.seconds() >= self.max_seconds
    }
}

/// What every phase needs to record its progress: the evaluator, the shared `cert`
/// normaliser, the sink for records, a record cadence, and the divergence watch: every
/// record's (P0) and loss must be finite and (P0) below `p0_limit`.
pub struct Recorder<'a, B: Backend> {
    pub eval: &'a mut Evaluator<B>,
    pub cert0: f64,
    pub method: String,
    pub sink: &'a mut dyn FnMut(&Record),
    pub records: Vec<Record>,
    /// Minimum passes between two records of the baselines (keeps measuring cheap on
    /// large data; the ALM records every outer iteration).
    pub min_interval: f64,
    last_at: f64,
    /// (P0) above this is divergence ([`divergence::EXPLODE_FACTOR`] times its scale;
    /// infinite: only non-finite values are).
    pub p0_limit: f64,
    /// The parameters of the last record that passed the divergence watch (kept only when
    /// a diverged run is to return its last finite state, `train.keep_diverged`).
    pub last_good: Option<Params<B>>,
    /// Where and when to write checkpoints, and the state to resume from.
    pub checkpoints: Option<Checkpoints>,
    /// The ALM's inner sweeps and their backend work (`--verbose`).
    pub sweeps: SweepCounters,
}

impl<'a, B: Backend> Recorder<'a, B> {
    pub fn new(
        eval: &'a mut Evaluator<B>,
        cert0: f64,
        method: Method,
        min_interval: f64,
        sink: &'a mut dyn FnMut(&Record),
    ) -> Self {
        Recorder {
            eval,
            cert0,
            method: method.to_string(),
            sink,
            records: Vec::new(),
            min_interval,
            last_at: f64::NEG_INFINITY,
            p0_limit: f64::INFINITY,
            last_good: None,
            checkpoints: None,
            sweeps: SweepCounters::default(),
        }
    }

    /// The resume state if it continues `phase` (begun there; a phase-boundary state is
    /// consumed too, and the phase then starts afresh from the restored parameters).
    pub fn take_resume(&mut self, phase: &str) -> Option<SolverState> {
        let c = self.checkpoints.as_mut()?;
        if c.resume.as_ref().is_some_and(|s| s.phase == phase) {
            c.resume.take().filter(|s| s.started)
        } else {
            None
        }
    }

    /// The phase the resume state continues, if any is left.
    pub fn resume_phase(&self) -> Option<&str> {
        self.checkpoints
            .as_ref()?
            .resume
            .as_ref()
            .map(|s| s.phase.as_str())
    }

    /// Whether a phase should write a checkpoint at this safe point (every
    /// `train.checkpoint_seconds`).
    pub fn checkpoint_due(&self) -> bool {
        self.checkpoints
            .as_ref()
            .is_some_and(|c| c.resume.is_none() && c.due(self.records.len()))
    }

    /// Write `state` (a phase's own part, filled in here with the budget, the record
    /// cadence and the records so far), with the clock paused.
    pub fn checkpoint(
        &mut self,
        be: &B,
        budget: &mut Budget,
        mut state: SolverState,
    ) -> Result<()> {
        let Some(c) = self.checkpoints.as_mut() else {
            return Ok(());
        };
        be.sync()?;
        budget.clock.pause();
        if let Some(good) = &self.last_good {
            state.put_params(be, "good", good)?;
        }
        state.method = self.method.clone();
        state.passes = budget.passes;
        state.seconds = budget.clock.seconds();
        state.count("cert_met", u64::from(budget.cert_met));
        state.last_at = self.last_at;
        state.records = self.records.clone();
        let written = c.write(&state);
        budget.clock.resume();
        written
    }

    /// The checkpoint at the end of a phase: `p`, to start `next` from (`done`: the
    /// run's result).
    pub fn phase_end(
        &mut self,
        be: &B,
        budget: &mut Budget,
        next: &str,
        p: &Params<B>,
    ) -> Result<()> {
        if self.checkpoints.is_none() {
            return Ok(());
        }
        let mut state = SolverState::phase(next);
        state.started = false;
        state.put_params(be, "p", p)?;
        self.checkpoint(be, budget, state)
    }

    /// Keep a copy of the parameters of every record that passes the divergence watch,
    /// starting from `p` now.
    pub fn keep_last_good(&mut self, be: &B, spec: &Spec, p: &Params<B>) -> BResult<()> {
        let mut good = Params::zeros_like(be, spec)?;
        good.assign(be, p)?;
        self.last_good = Some(good);
        Ok(())
    }

    /// The divergence error of this method at `phase`/`iter`, `what` saying what was seen
    /// (the fix is filled in by [`train`], which knows the configuration).
    pub fn diverged(&self, phase: &str, iter: usize, budget: &Budget, what: String) -> Error {
        Error::Diverged(Box::new(Divergence {
            method: self.method.clone(),
            phase: phase.to_string(),
            iter,
            passes: budget.passes,
            what,
            fix: String::new(),
        }))
    }

    /// Divergence when the scalar `name` = `value` (already read back by the caller) is
    /// not finite, or, for a (P0) value (`is_p0`), above `p0_limit`.
    #[allow(clippy::too_many_arguments)]
    pub fn watch(
        &self,
        phase: &str,
        iter: usize,
        budget: &Budget,
        name: &str,
        value: f64,
        is_p0: bool,
    ) -> Result<()> {
        let limit = if is_p0 { self.p0_limit } else { f64::INFINITY };
        match divergence::judge(name, value, limit) {
            Some(what) => Err(self.diverged(phase, iter, budget, what)),
            None => Ok(()),
        }
    }

    /// Whether a baseline should record now (always true when the budget is spent).
    pub fn due(&self, budget: &Budget) -> bool {
        budget.spent() || budget.passes - self.last_at >= self.min_interval
    }

    /// Measure `p` with the clock paused and emit a record; `fill` adds phase-specific
    /// fields. Returns the measures, or stops the method with [`Error::Diverged`] when
    /// (P0) or the loss is not finite or (P0) exceeds `p0_limit` (the record is still
    /// emitted, so the metrics log shows where it went wrong).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        be: &B,
        p: &Params<B>,
        data: &DeviceData<B>,
        budget: &mut Budget,
        phase: &str,
        iter: usize,
        fill: impl FnOnce(&mut Record),
    ) -> Result<Measures> {
        // Work a GPU has only recorded so far belongs to the method's time.
        be.sync()?;
        budget.clock.pause();
        let m = self.eval.measure(be, p, data)?;
        let mut r = Record::from_measures(&m, self.cert0);
        r.method = self.method.clone();
        r.phase = phase.to_string();
        r.iter = iter;
        r.passes = budget.passes;
        r.seconds = budget.clock.seconds();
        fill(&mut r);
        if r.cert <= budget.cert_target {
            budget.cert_met = true;
        }
        (self.sink)(&r);
        self.records.push(r);
        self.last_at = budget.passes;
        self.watch(phase, iter, budget, "(P0)", m.p0, true)?;
        self.watch(phase, iter, budget, "the loss", m.loss, false)?;
        if let Some(good) = self.last_good.as_mut() {
            good.assign(be, p)?;
        }
        budget.clock.resume();
        Ok(m)
    }

    /// The closing record of a baseline: `p` is recorded unless the last record was
    /// taken at the budget's current pass count, so every run's log ends at its work.
    pub fn record_final(
        &mut self,
        be: &B,
        p: &Params<B>,
        data: &DeviceData<B>,
        budget: &mut Budget,
        phase: &str,
        iter: usize,
    ) -> Result<()> {
        if self.records.last().map(|r| r.passes) != Some(budget.passes) {
            self.record(be, p, data, budget, phase, iter, |_| {})?;
        }
        Ok(())
    }
}

/// The outcome of one method's run.
#[derive(Clone, Debug)]
pub struct RunResult {
    pub method: Method,
    /// The returned network (the ALM's best W by true (P0); the baselines' last iterate).
    pub net: Network,
    /// Measures of the returned network.
    pub final_measures: Measures,
    /// `cert` of the returned network, relative to the initialisation's.
    pub cert: f64,
    pub records: Vec<Record>,
    pub passes: f64,
    pub seconds: f64,
    /// (P0) of the empty network (method §1), for the "worse than empty" flag.
    pub empty_p0: f64,
    /// The run diverged and `net` is its last finite state (`train.keep_diverged`).
    pub diverged: Option<Divergence>,
    /// The ALM's inner sweeps and their backend work (none for the baselines; a resumed
    /// run counts only the sweeps since the resume).
    pub sweeps: SweepCounters,
}

impl RunResult {
    /// method §1: flag results worse than the empty network.
    pub fn worse_than_empty(&self) -> bool {
        self.final_measures.p0 > self.empty_p0
    }
}

/// Build the problem spec of a config for data with `d` inputs and `m` outputs.
pub fn spec_for(cfg: &Config, d: usize, m: usize) -> Spec {
    let mut sizes = vec![d];
    sizes.extend(&cfg.model.hidden);
    sizes.push(m);
    Spec::new(
        sizes,
        cfg.model.alpha as f32,
        cfg.train.lambda as f32,
        cfg.model.loss,
        cfg.model.input_groups,
        cfg.model.output_groups,
    )
}

/// How a run starts and stops besides its method and budget: the defaults are a plain
/// `train`; a refit on a selected support (method §9) sets all three.
#[derive(Clone, Copy, Debug, Default)]
pub struct RunOptions {
    /// The `cert` normaliser (absolute certificate at a reference point); `None`: the
    /// certificate at `init`, as method §5 defines it for a run from the initialisation.
    pub cert0: Option<f64>,
    /// Stop once `cert` ≤ this (0: run the whole budget).
    pub cert_target: f64,
    /// Zero groups of `init` stay zero (prox-GD and prox-APG).
    pub keep_zero_groups: bool,
}

/// Run `method` from `init` on device data, with the budget of `cfg.train` and the start
/// and stop options of `opts` (`RunOptions::default()` for a plain run). `sink` sees
/// every record as it is made (progress bar, metrics log). `checkpoints`, if any, are
/// written every `train.checkpoint_seconds` and at the end of each phase, and the run
/// resumes from the state they carry. A diverging method stops at the record (or ALM
/// sweep) that shows it, with [`Error::Diverged`] naming the likely fix; with
/// `train.keep_diverged` it returns its last finite state instead.
#[allow(clippy::too_many_arguments)]
pub fn train<B: Backend>(
    be: &B,
    cfg: &Config,
    method: Method,
    spec: &Spec,
    data: &DeviceData<B>,
    init: &Network,
    empty_p0: f64,
    opts: &RunOptions,
    sink: &mut dyn FnMut(&Record),
    checkpoints: Option<Checkpoints>,
) -> Result<RunResult> {
    let mut eval = Evaluator::new(be, spec, data)?;
    let mut p = Params::upload(be, init)?;
    let m0 = eval.measure(be, &p, data)?;
    let cert0 = opts.cert0.unwrap_or(m0.cert_abs);
    let cert0 = if cert0 > 0.0 { cert0 } else { 1.0 };
    let mut budget = Budget::new(cfg.train.max_passes, cfg.train.max_seconds);
    budget.cert_target = opts.cert_target;
    // A record cadence that gives ~150 points over a finite budget.
    let interval = if cfg.train.max_passes.is_finite() {
        cfg.train.max_passes / 150.0
    } else {
        0.0
    };
    let mut rec = Recorder::new(&mut eval, cert0, method, interval, sink);
    let scale = empty_p0.max(m0.p0);
    if scale.is_finite() && scale > 0.0 {
        rec.p0_limit = divergence::EXPLODE_FACTOR * scale;
    }
    if cfg.train.keep_diverged {
        rec.keep_last_good(be, spec, &p)?;
    }
    rec.checkpoints = checkpoints;
    let resume = rec.checkpoints.as_ref().and_then(|c| c.resume.as_ref());
    if let Some(state) = resume {
        state.check_method(method)?;
        state.get_params(be, "p", &mut p)?;
        if let Some(good) = rec.last_good.as_mut() {
            state.get_params(be, "good", good)?;
        }
        budget.passes = state.passes;
        budget.clock = Clock::resumed(state.seconds);
        budget.cert_met = state.counters.get("cert_met") == Some(&1);
        rec.last_at = state.last_at;
        rec.records = state.records.clone();
        for r in &rec.records {
            (rec.sink)(r);
        }
    }
    let outcome = if rec.resume_phase() == Some("done") {
        Ok(())
    } else {
        run_method(
            be,
            cfg,
            method,
            spec,
            data,
            opts,
            &mut p,
            &mut budget,
            &mut rec,
        )
        .and_then(|()| rec.phase_end(be, &mut budget, "done", &p))
    };
    let diverged = match outcome {
        Ok(()) => None,
        Err(Error::Diverged(mut d)) => {
            d.fix = divergence::fix_for(cfg, method, &d.phase);
            match rec.last_good.take() {
                Some(good) => {
                    p.assign(be, &good)?;
                    Some(*d)
                }
                None => return Err(Error::Diverged(d)),
            }
        }
        Err(e) => return Err(e),
    };
    be.sync()?;
    budget.clock.pause();
    let final_measures = rec.eval.measure(be, &p, data)?;
    let net = p.download(be, spec.alpha)?;
    Ok(RunResult {
        method,
        net,
        cert: final_measures.cert_abs / cert0,
        final_measures,
        records: std::mem::take(&mut rec.records),
        passes: budget.passes,
        seconds: budget.clock.seconds(),
        empty_p0,
        diverged,
        sweeps: rec.sweeps,
    })
}

/// The phases of `method` on `p`, under one budget.
#[allow(clippy::too_many_arguments)]
fn run_method<B: Backend>(
    be: &B,
    cfg: &Config,
    method: Method,
    spec: &Spec,
    data: &DeviceData<B>,
    opts: &RunOptions,
    p: &mut Params<B>,
    budget: &mut Budget,
    rec: &mut Recorder<'_, B>,
) -> Result<()> {
    let gd = prox_grad::ProxGradOptions {
        step0: cfg.gd.step0,
        keep_zero_groups: opts.keep_zero_groups,
    };
    match method {
        Method::Alm => alm::run(be, spec, &cfg.alm, cfg.alm.rho0, data, p, budget, rec),
        Method::ProxSgd => baselines::prox_sgd(be, spec, cfg, None, data, p, budget, rec),
        Method::ProxAdam => {
            baselines::prox_sgd(be, spec, cfg, Some(&cfg.adam), data, p, budget, rec)
        }
        Method::ProxGd => baselines::prox_gd(be, spec, gd, data, p, budget, rec),
        Method::ProxApg => baselines::prox_apg(be, spec, gd, data, p, budget, rec),
        Method::WarmAlm => {
            // A checkpoint of the ALM phase skips the warm start (its parameters are the
            // ones restored).
            if rec.resume_phase() != Some("alm") {
                let mut warm = budget.clone();
                warm.max_passes = cfg.warm.passes.min(budget.max_passes);
                let warmed = baselines::prox_sgd(be, spec, cfg, None, data, p, &mut warm, rec);
                budget.passes = warm.passes;
                budget.clock = warm.clock;
                budget.cert_met = warm.cert_met;
                warmed?;
                if budget.spent() {
                    return Ok(());
                }
                rec.phase_end(be, budget, "alm", p)?;
            }
            alm::run(be, spec, &cfg.alm, cfg.alm.rho0_warm, data, p, budget, rec)
        }
    }
}
