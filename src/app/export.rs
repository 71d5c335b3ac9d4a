//! `sparse-alm export RUN_OR_POINT --out DIR`: a trained model compacted (method §9: dead
//! neurons and unused inputs physically removed, the function unchanged) and written as
//! `model.safetensors` + `model.json` that describe everything a user elsewhere needs:
//! layer list and activations, input preprocessing and feature names, class labels or
//! target scaling. The export is an ordinary model for `eval` and `predict`
//! ([`crate::model::load`] reads the [`ModelMeta`] fields and ignores the description).
//!
//! ONNX is not written: no well-kept Rust crate writes ONNX graphs without pulling in
//! protobuf code generation, and the two files here are enough for `examples/predict.py`.

use super::report::sizes_str;
use crate::backend::LossKind;
use crate::config::Task;
use crate::data::Preprocess;
use crate::model::compact::{compact, Compacted};
use crate::model::{self, ModelMeta, Network, META_FILE, WEIGHTS_FILE};
use crate::output::Table;
use crate::{Error, Result};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// The files an export writes, and the only ones `--force` replaces.
pub const EXPORT_FILES: [&str; 2] = [WEIGHTS_FILE, META_FILE];

/// What `export` needs.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    /// A run directory, a path point directory, `model.safetensors` or `model.json`.
    pub model: PathBuf,
    pub out: PathBuf,
    /// Write into a directory that is not empty (replacing only [`EXPORT_FILES`]).
    pub force: bool,
}

/// What `export` did.
#[derive(Clone, Debug)]
pub struct ExportReport {
    pub source: PathBuf,
    pub out: PathBuf,
    pub padded_sizes: Vec<usize>,
    pub sizes: Vec<usize>,
    pub padded_params: usize,
    pub params: usize,
    /// Names (or indices, when the model stored none) of the inputs kept.
    pub inputs: Vec<String>,
    /// Largest relative difference between the padded and the exported network's outputs
    /// on random inputs, after reading the export back: the check that the files say what
    /// was meant.
    pub max_diff: f32,
}

impl ExportReport {
    pub fn render(&self) -> String {
        let mut t = Table::new(["export", ""]);
        t.row(["from".to_string(), self.source.display().to_string()]);
        t.row(["to".to_string(), self.out.display().to_string()]);
        t.row([
            "network".to_string(),
            format!(
                "{} (padded {})",
                sizes_str(&self.sizes),
                sizes_str(&self.padded_sizes)
            ),
        ]);
        t.row([
            "parameters".to_string(),
            format!("{} (padded {})", self.params, self.padded_params),
        ]);
        const SHOW: usize = 8;
        let mut inputs = self
            .inputs
            .iter()
            .take(SHOW)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if self.inputs.len() > SHOW {
            inputs.push_str(&format!(", … ({} in all)", self.inputs.len()));
        }
        t.row(["inputs".to_string(), inputs]);
        t.row([
            "check".to_string(),
            format!(
                "outputs equal to the padded network's within {:.1e} (relative; reloaded, 256 random inputs)",
                self.max_diff
            ),
        ]);
        t.row(["files".to_string(), EXPORT_FILES.join(", ")]);
        t.render()
    }
}

/// `sparse-alm export`.
pub fn export(opts: &ExportOptions) -> Result<ExportReport> {
    let (net, meta) = model::load(&opts.model)?;
    check_out_dir(&opts.model, &opts.out, opts.force)?;
    let c = compact(&net, meta.input_groups);
    if let Some(h) = c.kept_neurons.iter().position(Vec::is_empty) {
        return Err(model::ModelError::Invalid(format!(
            "{}: hidden layer {} has no live neuron, so the network is a constant; nothing to export",
            opts.model.display(),
            h + 1
        ))
        .into());
    }
    let (exported, extra) = export_meta(&meta, &c, &opts.model)?;
    model::save_with(&opts.out, &c.net, &exported, &extra)?;
    // Read the files back and compare them with the padded network: what a user loads
    // must be the function that was trained.
    let (back, back_meta) = model::load(&opts.out)?;
    let max_diff = max_output_diff(&net, &back, &c.kept_inputs);
    if max_diff.is_nan() || max_diff > 1e-3 {
        return Err(Error::Invalid(format!(
            "{}: the exported network differs from the padded one by {max_diff} (a bug; please report it)",
            opts.out.display()
        )));
    }
    let inputs = if back_meta.feature_names.is_empty() {
        c.kept_inputs.iter().map(|i| format!("#{i}")).collect()
    } else {
        back_meta.feature_names.clone()
    };
    Ok(ExportReport {
        source: opts.model.clone(),
        out: opts.out.clone(),
        padded_sizes: net.sizes(),
        sizes: back.sizes(),
        padded_params: net.param_count(),
        params: back.param_count(),
        inputs,
        max_diff,
    })
}

/// Refuses an output directory that holds anything unless `force`, and always the
/// directory the model is read from (the export would replace the model it came from).
fn check_out_dir(model: &Path, out: &Path, force: bool) -> Result<()> {
    if out.exists() && !out.is_dir() {
        return Err(Error::Usage(format!(
            "--out {}: exists and is not a directory",
            out.display()
        )));
    }
    let model_dir = if model.is_dir() {
        model.to_path_buf()
    } else {
        model
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    };
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if out.is_dir() && same(out, &model_dir) {
        return Err(Error::Usage(format!(
            "--out {}: is the directory of the model being exported; choose another",
            out.display()
        )));
    }
    if !out.is_dir() || force {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(out).map_err(|e| Error::io(out, e))?;
    if entries.next().is_some() {
        return Err(Error::Usage(format!(
            "--out {}: directory is not empty (use --force to replace {} there)",
            out.display(),
            EXPORT_FILES.join(" and ")
        )));
    }
    Ok(())
}

/// The exported model's metadata: sizes, feature names and preprocessing cut to the kept
/// inputs; and the self-description written beside it in model.json.
fn export_meta(
    meta: &ModelMeta,
    c: &Compacted,
    source: &Path,
) -> Result<(ModelMeta, Map<String, Value>)> {
    let pre: Preprocess = serde_json::from_value(meta.preprocess.clone())
        .map_err(|e| Error::Invalid(format!("{}: field `preprocess`: {e}", source.display())))?;
    let pre = pre.select_features(&c.kept_inputs);
    let mut out = meta.clone();
    out.sizes = c.net.sizes();
    out.preprocess = serde_json::to_value(&pre)
        .map_err(|e| Error::Invalid(format!("cannot serialise the preprocessing: {e}")))?;
    if !meta.feature_names.is_empty() {
        out.feature_names = c
            .kept_inputs
            .iter()
            .map(|&i| meta.feature_names[i].clone())
            .collect();
    }
    out.created_unix = crate::output::unix_now();
    out.program_version = env!("CARGO_PKG_VERSION").to_string();

    let layers = out.sizes.len() - 1;
    let layer_list: Vec<Value> = out
        .sizes
        .windows(2)
        .enumerate()
        .map(|(l, p)| {
            json!({
                "weight": format!("w{}", l + 1),
                "bias": format!("b{}", l + 1),
                "inputs": p[0],
                "outputs": p[1],
                "activation": if l + 1 < layers { "leaky_relu" } else { "linear" },
            })
        })
        .collect();
    let outputs = match meta.task {
        Task::Classification => {
            let scores = match meta.loss {
                LossKind::SoftmaxCe => "logits (softmax gives class probabilities)",
                LossKind::Squared => "scores fitted to one-hot targets",
            };
            format!(
                "classification: output k is the {scores} of class_names[k]; the predicted label is class_names[argmax] (first index on ties)"
            )
        }
        Task::Regression => "regression: y = output * preprocess.target_std + preprocess.target_mean per target (the targets named in `target`; without target_mean/target_std the output is y itself)".to_string(),
    };
    let mut extra = Map::new();
    extra.insert("activation".into(), json!("leaky_relu"));
    extra.insert("output_activation".into(), json!("linear"));
    extra.insert("layers".into(), Value::Array(layer_list));
    extra.insert(
        "usage".into(),
        json!({
            "input": "one sample = the features named in feature_names, in that order (matched by name); x = (raw / preprocess.feature_scale - preprocess.mean) / preprocess.std (no mean/std: no standardisation)",
            "hidden": "h_l = max(u_l, alpha * u_l) with u_l = w_l h_(l-1) + b_l, h_0 = x; w_l is outputs x inputs (row-major f32), b_l has one entry per output",
            "output": format!("out = w_L h_(L-1) + b_L (linear); {outputs}"),
        }),
    );
    extra.insert(
        "compaction".into(),
        json!({
            "source": source.display().to_string(),
            "padded_sizes": meta.sizes,
            "kept_inputs": c.kept_inputs,
            "kept_neurons": c.kept_neurons,
            "metrics_from": "the padded network, which computes the same function",
        }),
    );
    Ok((out, extra))
}

/// Largest `|padded(x) − compact(x[kept])| / (1 + |padded(x)|)` over 256 random
/// standard-normal inputs (seed 0).
fn max_output_diff(padded: &Network, compact: &Network, kept_inputs: &[usize]) -> f32 {
    let d = padded.sizes()[0];
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let x = Array2::from_shape_simple_fn((d, 256), || {
        let z: f64 = StandardNormal.sample(&mut rng);
        z as f32
    });
    let xc = x.select(ndarray::Axis(0), kept_inputs);
    match (padded.try_forward(x.view()), compact.try_forward(xc.view())) {
        (Ok(a), Ok(b)) if a.dim() == b.dim() => a
            .iter()
            .zip(b.iter())
            .map(|(u, v)| (u - v).abs() / (1.0 + u.abs()))
            // NaN stays NaN (and fails the caller's check).
            .fold(0.0f32, |m, v| if v.is_nan() || v > m { v } else { m }),
        _ => f32::INFINITY,
    }
}
