//! Checkpoints of a run, so a killed run loses at most `train.checkpoint_seconds` of
//! work: the full solver state at a *safe point* (the end of an epoch of prox-SGD/Adam, an
//! iteration of prox-GD/APG, an outer iteration of the ALM, or a phase), written
//! atomically as one safetensors file (the matrices, with the scalars, counters and
//! records as JSON in its metadata), and read back to resume. Every matrix and scalar
//! the next safe point depends on is saved (weights, optimiser moments, the ALM's `V`,
//! `U`, `Λ`, best W, ρ, ε, block steps, the minibatch order and the RNG position, budget
//! counters); workspaces that each step recomputes are not. Scalars are stored as their
//! f64 bits, so on the CPU a resumed run is the uninterrupted one, bit for bit.

use super::Record;
use crate::backend::{BResult, Backend};
use crate::config::Method;
use crate::problem::Params;
use crate::{Error, Result};
use ndarray::Array2;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Bump when the layout of a checkpoint changes.
const CHECKPOINT_VERSION: u64 = 1;

/// The state of a run at a safe point.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SolverState {
    pub method: String,
    /// The phase to continue (`sgd`, `adam`, `gd`, `apg`, `alm`), or `done`.
    pub phase: String,
    /// False at a phase boundary: the phase starts afresh from the parameters `p`.
    pub started: bool,
    pub passes: f64,
    pub seconds: f64,
    /// Passes at the last record (the record cadence).
    pub last_at: f64,
    pub records: Vec<Record>,
    /// Phase scalars (stored as their bits: exact, and `inf` survives).
    pub scalars: BTreeMap<String, f64>,
    pub counters: BTreeMap<String, u64>,
    pub mats: BTreeMap<String, Array2<f32>>,
    /// The minibatch order of prox-SGD/Adam.
    pub order: Vec<u32>,
}

/// A checkpoint that is missing a piece the phase needs, or does not fit the problem.
fn bad(what: impl std::fmt::Display) -> Error {
    Error::Refused(format!("cannot resume: the checkpoint {what}"))
}

impl SolverState {
    /// Where the state stands, for a "resuming" notice.
    pub fn summary(&self) -> String {
        let (phase, records, passes) = (&self.phase, self.records.len(), self.passes);
        format!("phase {phase}, {records} records, {passes:.4} passes")
    }

    /// Refuse a state written by another method, or in a phase `method` does not have.
    pub fn check_method(&self, method: Method) -> Result<()> {
        if self.method != method.as_str() {
            return Err(Error::Refused(format!(
                "cannot resume: the checkpoint is of method {}, the configuration's is {method}",
                self.method
            )));
        }
        let phases: &[&str] = match method {
            Method::ProxSgd => &["sgd"],
            Method::ProxAdam => &["adam"],
            Method::ProxGd => &["gd"],
            Method::ProxApg => &["apg"],
            Method::Alm => &["alm"],
            Method::WarmAlm => &["sgd", "alm"],
        };
        if self.phase != "done" && !phases.contains(&self.phase.as_str()) {
            return Err(Error::Refused(format!(
                "cannot resume: the checkpoint's phase `{}` is not one of {method}",
                self.phase
            )));
        }
        Ok(())
    }

    /// A state of `phase`, begun.
    pub fn phase(phase: &str) -> Self {
        SolverState {
            phase: phase.to_string(),
            started: true,
            ..Default::default()
        }
    }

    pub fn put(&mut self, name: &str, v: f64) -> &mut Self {
        self.scalars.insert(name.to_string(), v);
        self
    }

    pub fn count(&mut self, name: &str, v: u64) -> &mut Self {
        self.counters.insert(name.to_string(), v);
        self
    }

    pub fn get(&self, name: &str) -> Result<f64> {
        self.scalars
            .get(name)
            .copied()
            .ok_or_else(|| bad(format_args!("has no scalar `{name}`")))
    }

    pub fn counter(&self, name: &str) -> Result<u64> {
        self.counters
            .get(name)
            .copied()
            .ok_or_else(|| bad(format_args!("has no counter `{name}`")))
    }

    /// Download matrix `m` as `name`.
    pub fn put_mat<B: Backend>(&mut self, be: &B, name: &str, m: &B::Mat) -> BResult<()> {
        self.mats.insert(name.to_string(), be.download(m)?);
        Ok(())
    }

    /// Upload `name` into `m`, which must have its shape.
    pub fn get_mat<B: Backend>(&self, be: &B, name: &str, m: &mut B::Mat) -> Result<()> {
        let host = self
            .mats
            .get(name)
            .ok_or_else(|| bad(format_args!("has no matrix `{name}`")))?;
        let want = be.shape(m);
        if host.dim() != want {
            return Err(bad(format_args!(
                "matrix `{name}` is {}×{}, the problem's is {}×{}",
                host.nrows(),
                host.ncols(),
                want.0,
                want.1
            )));
        }
        be.write(m, host.view())?;
        Ok(())
    }

    /// A list of matrices as `name.0`, `name.1`, …
    pub fn put_mats<B: Backend>(&mut self, be: &B, name: &str, ms: &[B::Mat]) -> BResult<()> {
        for (i, m) in ms.iter().enumerate() {
            self.put_mat(be, &format!("{name}.{i}"), m)?;
        }
        Ok(())
    }

    pub fn get_mats<B: Backend>(&self, be: &B, name: &str, ms: &mut [B::Mat]) -> Result<()> {
        for (i, m) in ms.iter_mut().enumerate() {
            self.get_mat(be, &format!("{name}.{i}"), m)?;
        }
        Ok(())
    }

    /// Parameters as `name.w.*`, `name.b.*`.
    pub fn put_params<B: Backend>(&mut self, be: &B, name: &str, p: &Params<B>) -> BResult<()> {
        self.put_mats(be, &format!("{name}.w"), &p.w)?;
        self.put_mats(be, &format!("{name}.b"), &p.b)
    }

    pub fn get_params<B: Backend>(&self, be: &B, name: &str, p: &mut Params<B>) -> Result<()> {
        self.get_mats(be, &format!("{name}.w"), &mut p.w)?;
        self.get_mats(be, &format!("{name}.b"), &mut p.b)
    }

    /// A list of scalars as `name.0`, `name.1`, …
    pub fn put_list(&mut self, name: &str, vs: &[f64]) {
        for (i, &v) in vs.iter().enumerate() {
            self.put(&format!("{name}.{i}"), v);
        }
    }

    pub fn get_list(&self, name: &str, vs: &mut [f64]) -> Result<()> {
        for (i, v) in vs.iter_mut().enumerate() {
            *v = self.get(&format!("{name}.{i}"))?;
        }
        Ok(())
    }

    /// The safetensors bytes of this state.
    fn to_bytes(&self) -> Result<Vec<u8>> {
        let bits = |m: &BTreeMap<String, f64>| -> BTreeMap<String, u64> {
            m.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect()
        };
        let meta = serde_json::json!({
            "version": CHECKPOINT_VERSION,
            "method": self.method,
            "phase": self.phase,
            "started": self.started,
            "passes": self.passes.to_bits(),
            "seconds": self.seconds.to_bits(),
            "last_at": self.last_at.to_bits(),
            "records": self.records,
            "scalars": bits(&self.scalars),
            "counters": self.counters,
        });
        let mut data: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = self
            .mats
            .iter()
            .map(|(name, m)| {
                let bytes: Vec<u8> = m.iter().flat_map(|v| v.to_le_bytes()).collect();
                (
                    name.clone(),
                    safetensors::Dtype::F32,
                    vec![m.nrows(), m.ncols()],
                    bytes,
                )
            })
            .collect();
        data.push((
            "order".to_string(),
            safetensors::Dtype::U32,
            vec![self.order.len()],
            self.order.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ));
        let views = data
            .iter()
            .map(|(name, dtype, shape, bytes)| {
                safetensors::tensor::TensorView::new(*dtype, shape.clone(), bytes)
                    .map(|v| (name.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::Invalid(format!("checkpoint tensor: {e}")))?;
        let info = HashMap::from([("state".to_string(), meta.to_string())]);
        safetensors::serialize(views, Some(info))
            .map_err(|e| Error::Invalid(format!("cannot serialise the checkpoint: {e}")))
    }

    /// A state from the bytes of a checkpoint file.
    fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| e.to_string())?;
        let (_, header) =
            safetensors::SafeTensors::read_metadata(bytes).map_err(|e| e.to_string())?;
        let text = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get("state"))
            .ok_or("no `state` in its metadata")?;
        let meta: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        if meta["version"].as_u64() != Some(CHECKPOINT_VERSION) {
            return Err(format!(
                "has format version {}, this program reads {CHECKPOINT_VERSION}",
                meta["version"]
            ));
        }
        let f = |k: &str| {
            meta[k]
                .as_u64()
                .map(f64::from_bits)
                .ok_or(format!("no `{k}`"))
        };
        let s = |k: &str| {
            meta[k]
                .as_str()
                .map(str::to_string)
                .ok_or(format!("no `{k}`"))
        };
        let scalars: BTreeMap<String, u64> =
            serde_json::from_value(meta["scalars"].clone()).map_err(|e| e.to_string())?;
        let mut state = SolverState {
            method: s("method")?,
            phase: s("phase")?,
            started: meta["started"].as_bool().ok_or("no `started`")?,
            passes: f("passes")?,
            seconds: f("seconds")?,
            last_at: f("last_at")?,
            records: serde_json::from_value(meta["records"].clone()).map_err(|e| e.to_string())?,
            scalars: scalars
                .into_iter()
                .map(|(k, v)| (k, f64::from_bits(v)))
                .collect(),
            counters: serde_json::from_value(meta["counters"].clone())
                .map_err(|e| e.to_string())?,
            ..Default::default()
        };
        for (name, t) in st.tensors() {
            let shape = t.shape();
            match (name.as_str(), t.dtype(), shape) {
                ("order", safetensors::Dtype::U32, [_]) => {
                    state.order = t
                        .data()
                        .chunks_exact(4)
                        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                }
                (_, safetensors::Dtype::F32, &[r, c]) => {
                    let v: Vec<f32> = t
                        .data()
                        .chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    let m = Array2::from_shape_vec((r, c), v).map_err(|e| e.to_string())?;
                    state.mats.insert(name.clone(), m);
                }
                _ => return Err(format!("unexpected tensor `{name}` ({:?})", t.dtype())),
            }
        }
        Ok(state)
    }
}

/// The checkpoint file of an output directory.
pub fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("checkpoint.safetensors")
}

/// Read the checkpoint at `path`.
pub fn load(path: &Path) -> Result<SolverState> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    SolverState::from_bytes(&bytes).map_err(|e| {
        Error::Refused(format!(
            "cannot resume: {} is not a checkpoint of this program: {e}",
            path.display()
        ))
    })
}

/// A test hook: where a run stops with [`Error::Interrupted`], right after writing its
/// checkpoint, as a process killed there would have (minus the work since).
#[derive(Clone, Debug, PartialEq)]
pub enum Stop {
    /// At the first safe point once this many records are made.
    AfterRecords(usize),
    /// At the end of the phase before `phase` (`done`: the end of the run).
    AtPhaseEnd(String),
}

/// When and where a run writes checkpoints, and the state it resumes from.
#[derive(Debug)]
pub struct Checkpoints {
    pub path: PathBuf,
    /// Seconds between two checkpoints (0: at every safe point; `inf`: at phase ends only).
    pub every: f64,
    last: Instant,
    /// The state to continue from; each phase takes it when it starts.
    pub resume: Option<SolverState>,
    /// Test hook: where to stop.
    pub stop: Option<Stop>,
}

impl Checkpoints {
    pub fn new(path: PathBuf, every: f64) -> Self {
        Checkpoints {
            path,
            every,
            last: Instant::now(),
            resume: None,
            stop: None,
        }
    }

    pub fn resuming(mut self, state: SolverState) -> Self {
        self.resume = Some(state);
        self
    }

    /// Whether a checkpoint is due at a safe point, `records` made so far.
    pub(crate) fn due(&self, records: usize) -> bool {
        matches!(self.stop, Some(Stop::AfterRecords(n)) if records >= n)
            || self.last.elapsed().as_secs_f64() >= self.every
    }

    /// Write `state` atomically; then stop if the test hook asks to.
    pub(crate) fn write(&mut self, state: &SolverState) -> Result<()> {
        let bytes = state.to_bytes()?;
        crate::output::write_atomic(&self.path, &bytes).map_err(|e| Error::io(&self.path, e))?;
        self.last = Instant::now();
        let stop = match &self.stop {
            Some(Stop::AfterRecords(n)) => state.records.len() >= *n,
            Some(Stop::AtPhaseEnd(p)) => !state.started && state.phase == *p,
            None => false,
        };
        if stop {
            return Err(Error::Interrupted(self.path.clone()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_the_file_bit_for_bit() {
        let mut s = SolverState::phase("alm");
        s.method = "warm+alm".into();
        s.passes = 0.1 + 0.2;
        s.seconds = 1.5;
        s.last_at = f64::NEG_INFINITY;
        s.put("h_prev", f64::INFINITY)
            .put("rho", 30.000000000000004);
        s.count("k", 7).count("rng.lo", u64::MAX);
        s.mats.insert(
            "p.w.0".into(),
            Array2::from_shape_fn((2, 3), |(i, j)| (i * 3 + j) as f32 * 0.1 - 0.25),
        );
        s.order = vec![3, 0, 2, 1, u32::MAX];
        s.records.push(Record {
            method: "warm+alm".into(),
            phase: "sgd".into(),
            iter: 2,
            passes: 4.0 / 3.0,
            p0: 0.123456789012345,
            zero_rows: vec![1, 2],
            test_error: Some(0.25),
            ..Default::default()
        });
        let back = SolverState::from_bytes(&s.to_bytes().unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.passes.to_bits(), s.passes.to_bits());
    }

    #[test]
    fn a_foreign_file_is_refused() {
        assert!(SolverState::from_bytes(b"not a checkpoint").is_err());
    }
}
