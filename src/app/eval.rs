//! `sparse-alm eval MODEL DATA`: a saved model's measures (method §5) on a data file, read
//! with the model's own preprocessing and target mapping.

use super::device::{open_device, with_backend};
use super::predict::eval_spec;
use super::report::EvalReport;
use super::Notice;
use crate::backend::{BResult, Backend};
use crate::config::{DeviceChoice, Task};
use crate::data::{self, Dataset};
use crate::model::{self, Network};
use crate::problem::{DeviceData, Params, Spec};
use crate::solver::measures::{Evaluator, Measures};
use crate::{Error, Result};
use std::path::Path;

/// `sparse-alm eval MODEL DATA`.
pub fn eval(
    model_path: &Path,
    data_path: &Path,
    device: DeviceChoice,
    say: &mut dyn FnMut(Notice),
) -> Result<EvalReport> {
    let (net, meta) = model::load(model_path)?;
    let espec = eval_spec(&meta, model_path)?;
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

fn eval_on<B: Backend>(be: &B, spec: &Spec, net: &Network, ds: &Dataset) -> BResult<Measures> {
    let dd = DeviceData::upload(be, ds, &ds.select(&[]))?;
    let mut ev = Evaluator::new(be, spec, &dd)?;
    let p = Params::upload(be, net)?;
    ev.measure(be, &p, &dd)
}

/// Host-side error of `net` on `ds` (1 − accuracy, or MSE in the target's units) and its
/// standard error over samples, for the one-standard-error rule.
pub(super) fn host_error(net: &Network, ds: &Dataset) -> (f64, f64) {
    let n = ds.n();
    if n == 0 {
        return (f64::NAN, f64::NAN);
    }
    let yhat = net.forward(ds.x.view());
    let per: Vec<f64> = match (&ds.task, &ds.labels) {
        (Task::Classification, Some(labels)) => (0..n)
            .map(|j| {
                let col = yhat.column(j);
                let best = (0..col.len())
                    .max_by(|&a, &b| col[a].total_cmp(&col[b]))
                    .unwrap_or(0);
                f64::from(u8::from(best as u32 != labels[j]))
            })
            .collect(),
        _ => {
            let m = ds.m().max(1);
            (0..n)
                .map(|j| {
                    (0..ds.m())
                        .map(|i| {
                            let s = ds
                                .target_std
                                .as_ref()
                                .and_then(|s| s.get(i).copied())
                                .unwrap_or(1.0);
                            let d = f64::from(s * (yhat[[i, j]] - ds.y[[i, j]]));
                            d * d
                        })
                        .sum::<f64>()
                        / m as f64
                })
                .collect()
        }
    };
    let mean = per.iter().sum::<f64>() / n as f64;
    let var = per.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / (n.max(2) - 1) as f64;
    (mean, (var / n as f64).sqrt())
}
