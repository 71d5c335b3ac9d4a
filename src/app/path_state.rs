//! Where a `path` run stands between two selection steps (method §9), saved atomically to
//! `path-state.json` after every step so that `path --resume DIR` continues an interrupted
//! path: the λ values still to select, the refinement and extension allowances, the last
//! support, the points made so far, how many selection records belong to them, and the
//! weights the next selection warm-starts from (as their bits: the resumed path selects
//! from exactly the network the interrupted one would have). Everything else a step needs
//! (the validation split, `λ_r`, the certificate's normaliser) is recomputed from the
//! run's `config.toml`, deterministically. The file is removed when the path completes.

use super::path_report::PathPoint;
use crate::model::Network;
use crate::{Error, Result};
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// Bump when the layout changes.
const VERSION: u32 = 1;

/// The state of a path between two steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct PathState {
    version: u32,
    /// λ values still to select, in order.
    pub todo: VecDeque<f64>,
    /// Values the path may still add past the grid's end, and midpoints it may still insert.
    pub extend_left: usize,
    pub refine_left: usize,
    /// The last accepted selection: its λ and its live neurons.
    pub prev: Option<(f64, usize)>,
    /// The last support refitted: kept inputs and neurons per hidden layer.
    pub last_support: Option<(Vec<usize>, Vec<Vec<usize>>)>,
    pub points: Vec<PathPoint>,
    /// Selection steps accepted (the progress bar's position).
    pub steps: u64,
    /// Records in `selection.jsonl` at this state.
    pub selection_records: usize,
    /// The warm start of the next selection.
    net: NetBits,
}

/// A network's parameters as their bit patterns (exact through JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct NetBits {
    alpha: u32,
    /// `(rows, cols, bits)` of each `W_l`, then of each `b_l`.
    w: Vec<(usize, usize, Vec<u32>)>,
    b: Vec<(usize, usize, Vec<u32>)>,
}

fn to_bits(m: &Array2<f32>) -> (usize, usize, Vec<u32>) {
    let (r, c) = m.dim();
    (r, c, m.iter().map(|v| v.to_bits()).collect())
}

fn from_bits((r, c, v): &(usize, usize, Vec<u32>)) -> Option<Array2<f32>> {
    let vals = v.iter().map(|&b| f32::from_bits(b)).collect();
    Array2::from_shape_vec((*r, *c), vals).ok()
}

impl PathState {
    /// The state before the first step: `grid` to select from `net`.
    pub fn start(grid: &[f64], extend: usize, refine: usize, net: &Network) -> Self {
        let mut s = PathState {
            version: VERSION,
            todo: grid.iter().copied().collect(),
            extend_left: extend,
            refine_left: refine,
            ..Default::default()
        };
        s.set_net(net);
        s
    }

    pub fn set_net(&mut self, net: &Network) {
        self.net = NetBits {
            alpha: net.alpha.to_bits(),
            w: net.w.iter().map(to_bits).collect(),
            b: net.b.iter().map(to_bits).collect(),
        };
    }

    /// The warm start of the next selection.
    pub fn net(&self) -> Result<Network> {
        let mats = |ms: &[(usize, usize, Vec<u32>)]| ms.iter().map(from_bits).collect();
        let (Some(w), Some(b)) = (mats(&self.net.w), mats(&self.net.b)) else {
            return Err(Error::Refused(
                "cannot resume: path-state.json holds a malformed network".into(),
            ));
        };
        Ok(Network {
            alpha: f32::from_bits(self.net.alpha),
            w,
            b,
        })
    }

    /// `dir/path-state.json`.
    pub fn path(dir: &Path) -> PathBuf {
        dir.join("path-state.json")
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        // Compact: the weights' bits would take a line each in pretty JSON.
        let bytes = serde_json::to_vec(self).map_err(|e| Error::Invalid(e.to_string()))?;
        crate::output::write_atomic(&path, &bytes).map_err(|e| Error::io(&path, e))
    }

    /// The state of the path in `dir`, refused when there is none or it is not one.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::Refused(format!(
                    "cannot resume {}: it holds no path-state.json (the path finished, or \
                     it never completed a step)",
                    dir.display()
                )))
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let state: PathState = serde_json::from_str(&text).map_err(|e| {
            Error::Refused(format!(
                "cannot resume: {} is not a path state of this program: {e}",
                path.display()
            ))
        })?;
        if state.version != VERSION {
            return Err(Error::Refused(format!(
                "cannot resume: {} has layout version {}, this program reads {VERSION}",
                path.display(),
                state.version
            )));
        }
        state.net()?;
        Ok(state)
    }

    /// Remove the state once the path is complete.
    pub fn remove(dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_survives_the_file_bit_for_bit() {
        let tmp = tempfile::tempdir().unwrap();
        let mut net = Network::he_init(&[3, 4, 2], 0.1, 7);
        net.w[0][[1, 2]] = f32::MIN_POSITIVE / 3.0; // subnormal
        net.b[1][[0, 0]] = -0.0;
        let mut s = PathState::start(&[1e-3, 0.1 + 0.2], 10, 4, &net);
        s.prev = Some((0.3, 5));
        s.last_support = Some((vec![0, 2], vec![vec![1, 3]]));
        s.points.push(PathPoint {
            lambda: 0.3,
            live: vec![2],
            val_error: Some(0.25),
            ..Default::default()
        });
        s.save(tmp.path()).unwrap();
        let back = PathState::load(tmp.path()).unwrap();
        assert_eq!(back, s);
        let n = back.net().unwrap();
        for (a, b) in n.w.iter().chain(&n.b).zip(net.w.iter().chain(&net.b)) {
            let bits = |m: &Array2<f32>| m.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(a), bits(b));
        }
        PathState::remove(tmp.path()).unwrap();
        let err = PathState::load(tmp.path()).unwrap_err().to_string();
        assert!(err.contains("no path-state.json"), "{err}");
        std::fs::write(PathState::path(tmp.path()), "{}").unwrap();
        assert!(PathState::load(tmp.path()).is_err());
    }
}
