//! `sparse-alm predict MODEL DATA [--out FILE]`: a saved (or exported) model's predictions
//! for every sample of a data file, as CSV: the class label and one score per class
//! (classification), or the predicted value of each target in the target's own units
//! (regression). Data columns are matched by the model's feature names (method §9: a
//! compact model reads only its kept features); targets in the data are not needed.

use crate::config::Task;
use crate::data::{self, EvalSpec, Preprocess};
use crate::model::{self, ModelMeta};
use crate::output::write_atomic;
use crate::{Error, Result};
use ndarray::Array2;
use std::path::{Path, PathBuf};

/// What `predict` needs.
#[derive(Clone, Debug)]
pub struct PredictOptions {
    /// A run directory, a path point, an export, `model.safetensors` or `model.json`.
    pub model: PathBuf,
    /// A data argument as `eval` takes it (a CSV file need not hold the target), or a
    /// single `X.npy`.
    pub data: PathBuf,
    /// Write the CSV here (atomically) instead of returning it for standard output.
    pub out: Option<PathBuf>,
}

/// What `predict` produced.
#[derive(Clone, Debug)]
pub struct PredictReport {
    pub samples: usize,
    pub columns: Vec<String>,
    /// The predictions as CSV (header and one row per sample), when not written to a file.
    pub csv: Option<String>,
    /// The file written, with `--out`.
    pub out: Option<PathBuf>,
}

impl PredictReport {
    /// The line printed after writing a file.
    pub fn summary(&self) -> String {
        match &self.out {
            Some(p) => format!(
                "wrote {} predictions ({}) to {}\n",
                self.samples,
                self.columns.join(", "),
                p.display()
            ),
            None => String::new(),
        }
    }
}

/// The model's predictions for every sample: column names and one row of cells per
/// sample (the CSV `predict` prints).
#[derive(Clone, Debug, PartialEq)]
pub struct Predictions {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// `sparse-alm predict`.
pub fn predict(opts: &PredictOptions) -> Result<PredictReport> {
    let p = predictions(&opts.model, &opts.data)?;
    let csv = to_csv(&p)?;
    let report = |csv, out| PredictReport {
        samples: p.rows.len(),
        columns: p.columns.clone(),
        csv,
        out,
    };
    match &opts.out {
        Some(path) => {
            write_atomic(path, csv.as_bytes()).map_err(|e| Error::io(path, e))?;
            Ok(report(None, Some(path.clone())))
        }
        None => Ok(report(Some(csv), None)),
    }
}

/// What reading data for the model saved at `model_path` needs: its stored
/// preprocessing (refused by field when invalid), sizes, task, targets and names. `eval`
/// and `predict` read data the same way through this.
pub(super) fn eval_spec(meta: &ModelMeta, model_path: &Path) -> Result<EvalSpec> {
    let preprocess: Preprocess = serde_json::from_value(meta.preprocess.clone()).map_err(|e| {
        Error::Invalid(format!("{}: field `preprocess`: {e}", model_path.display()))
    })?;
    Ok(EvalSpec {
        task: meta.task,
        target: meta.target.clone(),
        n_inputs: meta.sizes[0],
        n_outputs: meta.sizes[meta.sizes.len() - 1],
        class_names: meta.class_names.clone(),
        feature_names: meta.feature_names.clone(),
        preprocess,
    })
}

/// Loads the model, reads the data for it and runs the network on the host.
pub fn predictions(model_path: &Path, data_path: &Path) -> Result<Predictions> {
    let (net, meta) = model::load(model_path)?;
    let spec = eval_spec(&meta, model_path)?;
    let (preprocess, m) = (&spec.preprocess, spec.n_outputs);
    let x = data::load_for_predict(data_path, &spec)?;
    let mut y = net.try_forward(x.view())?;
    Ok(match meta.task {
        Task::Classification => {
            let classes: Vec<String> = if meta.class_names.len() == m {
                meta.class_names.clone()
            } else {
                (0..m).map(|k| k.to_string()).collect()
            };
            let label = meta
                .target
                .first()
                .cloned()
                .unwrap_or_else(|| "label".into());
            classify(&y, label, &classes)
        }
        Task::Regression => {
            preprocess.restore_targets(&mut y);
            let names: Vec<String> = if meta.target.len() == m {
                meta.target.clone()
            } else {
                (0..m).map(|k| format!("y{k}")).collect()
            };
            Predictions {
                columns: names,
                rows: y
                    .columns()
                    .into_iter()
                    .map(|c| c.iter().map(f32::to_string).collect())
                    .collect(),
            }
        }
    })
}

/// Label (first maximal output, the rule of the error count) and every class's score.
fn classify(y: &Array2<f32>, label: String, classes: &[String]) -> Predictions {
    let mut columns = vec![label];
    columns.extend(classes.iter().map(|c| format!("score_{c}")));
    let rows = y
        .columns()
        .into_iter()
        .map(|c| {
            let best = (1..c.len()).fold(0, |b, i| if c[i] > c[b] { i } else { b });
            let mut row = vec![classes[best].clone()];
            row.extend(c.iter().map(f32::to_string));
            row
        })
        .collect();
    Predictions { columns, rows }
}

/// RFC 4180 text (fields quoted where needed: class labels may hold commas).
fn to_csv(p: &Predictions) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let err = |e: csv::Error| Error::Invalid(format!("cannot format the predictions: {e}"));
    w.write_record(&p.columns).map_err(err)?;
    for r in &p.rows {
        w.write_record(r).map_err(err)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| Error::Invalid(format!("cannot format the predictions: {e}")))?;
    String::from_utf8(bytes).map_err(|e| Error::Invalid(format!("predictions: {e}")))
}
