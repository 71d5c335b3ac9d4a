//! The prologue every command shares, written once: configuration → data → device →
//! problem. [`Setup`] is the host side (resolved configuration, loaded data, opened
//! device, output directory) and writes what a run leaves beside its metrics (model files,
//! the resolved configuration). [`Problem`] is one backend's side: the spec, the shared He
//! initialisation, the data on the device and the empty network's (P0), built once and run
//! by every method, whether from `train`, `compare`, the tests or the benches.

use super::device::{open_device, Device};
use super::report::{run_metrics, sizes_str, Sink};
use super::{io_err, memory, outdir, Notice, Verbosity};
use crate::backend::{BResult, Backend};
use crate::config::{load_config, Config, DataSource, Method};
use crate::data::available_memory;
use crate::data::{self, Dataset, LoadedData};
use crate::model::{self, ModelMeta, Network};
use crate::output::{default_out_dir, write_atomic};
use crate::problem::{DeviceData, Spec};
use crate::solver::checkpoint::Checkpoints;
use crate::solver::measures::empty_network_p0;
use crate::solver::{self, Record, RunResult};
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// Which command a setup serves: it decides which methods run (and so the memory needed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// `train.method`.
    Train,
    /// Every method of `compare.methods`, one after another.
    Compare,
    /// `path.selector` along the grid, then the refits of `path.polisher` (method §9).
    Path,
}

impl Command {
    fn methods(self, cfg: &Config) -> Vec<Method> {
        match self {
            Command::Train => vec![cfg.train.method],
            Command::Compare => cfg.compare.methods.clone(),
            Command::Path => {
                let (warm, polisher) = cfg.path.polisher.phases();
                let mut methods = vec![cfg.path.selector, polisher];
                if warm {
                    methods.push(Method::ProxSgd);
                }
                methods
            }
        }
    }
}

/// The output directory a command writes to.
#[derive(Clone, Copy, Debug)]
pub enum OutDir<'a> {
    /// A new run: `path` (`None`: `runs/<timestamp>`), which must be empty unless `force`.
    New { path: Option<&'a Path>, force: bool },
    /// The directory of an earlier run that this one continues (`--resume`).
    Resume(&'a Path),
}

/// The arguments every run command (`train`, `compare`, `path`) takes.
#[derive(Clone, Debug, Default)]
pub struct RunArgs {
    /// Config file (`None`: the built-in digits default; `compare` requires one).
    pub config: Option<PathBuf>,
    /// `key=value` overrides, applied in order (flags already turned into these).
    pub sets: Vec<String>,
    /// Output directory (`None`: `runs/<timestamp>`).
    pub out: Option<PathBuf>,
    /// Run in a non-empty output directory, removing the tool's files of an earlier run.
    pub force: bool,
    /// Continue the interrupted run in this directory, with its `config.toml`.
    pub resume: Option<PathBuf>,
    pub verbosity: Verbosity,
}

/// A command's host side, resolved once.
pub struct Setup {
    pub cfg: Config,
    pub data: LoadedData,
    pub device: Device,
    pub out_dir: PathBuf,
}

impl Setup {
    /// Resolve the configuration (`config`, or the built-in default, then `sets` in
    /// order), check the output directory (`out`, default `runs/<timestamp>`: refused when
    /// not empty unless `force`), load the data, estimate the memory the `command`'s runs
    /// need and refuse what cannot fit (the host copies before the device is opened,
    /// everything else after, see [`memory`]), open the device (its fallback notice goes
    /// to `say`), then prepare the output directory (with `force`, remove the tool's files
    /// of an earlier run) and write the resolved `config.toml` into it, in that order, so
    /// the first thing wrong is the one reported and nothing is removed for a run that
    /// cannot start. The configuration is written first so that a run killed at any
    /// moment leaves it beside its metrics.
    /// `out: OutDir::Resume(dir)` continues the run in `dir` instead: `config` is its
    /// `config.toml`, the directory is neither checked nor cleared, and the configuration
    /// is not written again.
    pub fn open(
        command: Command,
        config: Option<&Path>,
        sets: &[String],
        out: OutDir<'_>,
        say: &mut dyn FnMut(Notice),
    ) -> Result<Self> {
        let cfg = load_config(config, sets)?;
        let (out_dir, force, resume) = match out {
            OutDir::New { path, force } => (
                path.map(Path::to_path_buf)
                    .unwrap_or_else(|| default_out_dir(Path::new("runs"))),
                force,
                false,
            ),
            OutDir::Resume(dir) => (dir.to_path_buf(), false, true),
        };
        if !resume {
            outdir::check(&out_dir, force)?;
        }
        let data = load_data(&cfg)?;
        for w in &data.warnings {
            say(Notice::Warn(w.clone()));
        }
        let spec = solver::spec_for(&cfg, data.train.d(), data.train.m());
        let needs = memory::needs(
            &spec.sizes,
            data.train.n(),
            data.test.n(),
            &cfg,
            &command.methods(&cfg),
        );
        memory::check_host_early(&needs)?;
        let device = open_device(cfg.train.device, &mut |s| say(Notice::Warn(s.to_string())))?;
        memory::check_host(&needs, Some(device.placement()), available_memory())?;
        if let Some((adapter, limit)) = device.buffer_limit() {
            memory::check_device(&needs, &adapter, limit, None)?;
        }
        let setup = Setup {
            cfg,
            data,
            device,
            out_dir,
        };
        if !resume {
            outdir::prepare(&setup.out_dir, force, say)?;
            setup.write_config()?;
        }
        Ok(setup)
    }

    /// The run `args` describe: a new one ([`Setup::open`]), or with `resume` the
    /// interrupted run in that directory, with its own `config.toml` (run flags beside
    /// `--resume` are refused: they would silently not apply).
    pub fn start(command: Command, args: &RunArgs, say: &mut dyn FnMut(Notice)) -> Result<Self> {
        let Some(dir) = &args.resume else {
            let out = OutDir::New {
                path: args.out.as_deref(),
                force: args.force,
            };
            return Setup::open(command, args.config.as_deref(), &args.sets, out, say);
        };
        if args.config.is_some() || !args.sets.is_empty() || args.out.is_some() || args.force {
            return Err(Error::Refused(format!(
                "--resume {} continues that run with its own config.toml; it takes no \
                 config file, --set, --out, --force or other run flags",
                dir.display()
            )));
        }
        let config = dir.join("config.toml");
        if !config.is_file() {
            return Err(Error::Refused(format!(
                "cannot resume {}: it holds no config.toml (not an output directory of a run)",
                dir.display()
            )));
        }
        Setup::open(command, Some(&config), &[], OutDir::Resume(dir), say)
    }

    /// The header line of a command: data, network, `what` runs, device, λ.
    pub fn header(&self, what: &str) -> String {
        let spec = solver::spec_for(&self.cfg, self.data.train.d(), self.data.train.m());
        format!(
            "{} | net {} | {what} | device {} | λ {}",
            self.data.description,
            sizes_str(&spec.sizes),
            self.device.name(),
            self.cfg.train.lambda
        )
    }

    /// The problem on backend `be` (which must be the one inside [`Setup::device`]).
    pub fn problem<B: Backend>(&self, be: &B) -> BResult<Problem<B>> {
        Problem::new(be, &self.cfg, &self.data.train, &self.data.test)
    }

    /// Save a run's network and its metadata into `dir`.
    pub fn save_model(&self, dir: &Path, res: &RunResult, device: &str) -> Result<()> {
        let meta = self.model_meta(res, device)?;
        model::save(dir, &res.net, &meta)?;
        Ok(())
    }

    fn model_meta(&self, res: &RunResult, device: &str) -> Result<ModelMeta> {
        let inputs: Vec<usize> = (0..self.data.train.d()).collect();
        self.meta_for(
            &res.net,
            self.cfg.train.lambda,
            res.method.as_str(),
            &inputs,
            run_metrics(res, device),
        )
    }

    /// The metadata of `net`, a network trained at `lambda` by `method` on the input
    /// features `inputs` (indices into the data's features: a compact network of method
    /// §9 reads only its kept features, and its preprocessing and names are cut to match).
    pub fn meta_for(
        &self,
        net: &Network,
        lambda: f64,
        method: &str,
        inputs: &[usize],
        metrics: serde_json::Value,
    ) -> Result<ModelMeta> {
        let cfg = &self.cfg;
        let pre = self.data.preprocess.select_features(inputs);
        let names = &self.data.train.feature_names;
        Ok(ModelMeta {
            format_version: model::FORMAT_VERSION,
            sizes: net.sizes(),
            alpha: cfg.model.alpha,
            lambda,
            loss: cfg.model.loss,
            input_groups: cfg.model.input_groups,
            output_groups: cfg.model.output_groups,
            task: cfg.data.task,
            method: method.to_string(),
            seed: cfg.train.seed,
            init_seed: cfg.model.init_seed,
            target: csv_target(cfg),
            class_names: self.data.train.class_names.clone(),
            feature_names: inputs
                .iter()
                .filter_map(|&i| names.get(i).cloned())
                .collect(),
            preprocess: serde_json::to_value(&pre)
                .map_err(|e| Error::Invalid(format!("cannot serialise the preprocessing: {e}")))?,
            metrics,
            created_unix: crate::output::unix_now(),
            program_version: env!("CARGO_PKG_VERSION").to_string(),
        })
    }

    /// `config.toml` in the output directory: the resolved configuration of the run.
    pub fn write_config(&self) -> Result<()> {
        let path = self.out_dir.join("config.toml");
        let text = format!(
            "# resolved configuration of this run (sparse-alm {})\n{}",
            env!("CARGO_PKG_VERSION"),
            self.cfg.to_toml()
        );
        write_atomic(&path, text.as_bytes()).map_err(io_err(&path))
    }
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

fn csv_target(cfg: &Config) -> Vec<String> {
    match &cfg.data.source {
        DataSource::Csv { target, .. } => target.clone(),
        _ => Vec::new(),
    }
}

/// One problem on one backend, shared by every method run on it: they all start from the
/// same initialisation and are flagged against the same empty network (method §1, §7).
pub struct Problem<B: Backend> {
    pub spec: Spec,
    /// The He initialisation of `model.init_seed`.
    pub init: Network,
    pub data: DeviceData<B>,
    /// (P0) of the empty network (method §1).
    pub empty_p0: f64,
}

impl<B: Backend> Problem<B> {
    /// The problem `cfg` poses on `train` (and `test`, measured only), uploaded to `be`.
    pub fn new(be: &B, cfg: &Config, train: &Dataset, test: &Dataset) -> BResult<Self> {
        let spec = solver::spec_for(cfg, train.d(), train.m());
        let data = DeviceData::upload(be, train, test)?;
        let init = Network::he_init(&spec.sizes, cfg.model.alpha as f32, cfg.model.init_seed);
        let empty_p0 = empty_network_p0(&train.y, cfg.model.loss);
        Ok(Problem {
            spec,
            init,
            data,
            empty_p0,
        })
    }

    /// Run `method` from the shared initialisation with the budget of `cfg.train`; `sink`
    /// sees every record as it is made.
    pub fn run(
        &self,
        be: &B,
        cfg: &Config,
        method: Method,
        sink: &mut dyn FnMut(&Record),
    ) -> Result<RunResult> {
        self.run_with(be, cfg, method, sink, None)
    }

    /// [`Problem::run`] writing `checkpoints` (and resuming from the state they carry).
    pub fn run_with(
        &self,
        be: &B,
        cfg: &Config,
        method: Method,
        sink: &mut dyn FnMut(&Record),
        checkpoints: Option<Checkpoints>,
    ) -> Result<RunResult> {
        solver::train(
            be,
            cfg,
            method,
            &self.spec,
            &self.data,
            &self.init,
            self.empty_p0,
            &solver::RunOptions::default(),
            sink,
            checkpoints,
        )
    }

    /// [`Problem::run_with`] with a progress bar and the metrics log at `log_path` (a
    /// resumed run's earlier records are written to it again first).
    pub(super) fn run_logged(
        &self,
        be: &B,
        cfg: &Config,
        method: Method,
        log_path: &Path,
        quiet: bool,
        checkpoints: Option<Checkpoints>,
    ) -> Result<RunResult> {
        let mut sink = Sink::new(cfg, cfg.data.task, log_path, quiet, method.as_str())?;
        let res = self.run_with(be, cfg, method, &mut |r: &Record| sink.see(r), checkpoints);
        let finished = sink.finish();
        let res = res?;
        finished?;
        Ok(res)
    }
}
