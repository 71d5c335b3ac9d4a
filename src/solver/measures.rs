//! method §5: the measures every run reports, computed the same way for every method:
//! (P0) by a true forward pass, loss, penalty, train/test error, zero groups per layer and
//! the stationarity certificate `cert` of (P0) itself. All of it costs one scalar readback.
//! `feas` and `kkt` belong to the ALM and are computed in `alm.rs`. When regression
//! targets were standardised (`DeviceData::target_std`), the loss and (P0) stay in standard
//! units and the train/test errors are reported in the target's own units.

use super::slots::{
    self, Readback, CERT_B, CERT_W, DISCARD, GROUP_SUM, GROUP_ZEROS, PENALTY, TEST_ERRORS,
    TEST_LOSS, TRAIN_ERRORS, TRAIN_LOSS,
};
use crate::backend::{BResult, Backend, LossKind};
use crate::data::Task;
use crate::problem::{prox_mapping_sq, DeviceData, Net, Params, Spec};
use ndarray::Array2;

/// The measures of method §5 at one point.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct Measures {
    /// (P0) = loss + reg by a true forward pass.
    pub p0: f64,
    pub loss: f64,
    /// λ Σ‖W_l‖_{2,1}.
    pub reg: f64,
    /// 1 − accuracy (classification) or MSE (regression).
    pub train_error: f64,
    pub test_error: Option<f64>,
    /// Exactly-zero groups per layer.
    pub zero_rows: Vec<usize>,
    /// ‖(W,b) − prox_λ((W,b) − ∇ℓ)‖ (absolute; `solver` divides by its value at the init).
    pub cert_abs: f64,
}

/// How regression errors are brought back to the target's own units when the targets
/// were standardised per output by `s_k` (the loss and (P0) stay in standard units).
enum ErrorScale<B: Backend> {
    /// Classification, or targets in their own units: MSE = loss / m.
    Identity,
    /// One std for every output (always so for one output): MSE = s²·loss / m.
    Uniform(f64),
    /// Stds differing per output: MSE = ‖S(Ŷ − Y)‖² / (N·m) with `S = diag(s)`, measured
    /// as the squared loss of `S·Ŷ` against `S·Y` (`S·Y` computed once).
    PerOutput {
        s: B::Mat,
        sy: B::Mat,
        sy_test: Option<B::Mat>,
        /// `S·Ŷ` workspaces, train and test.
        tmp: B::Mat,
        tmp_test: Option<B::Mat>,
    },
}

impl<B: Backend> ErrorScale<B> {
    fn new(be: &B, data: &DeviceData<B>) -> BResult<Self> {
        let Some(std) = data
            .target_std
            .as_deref()
            .filter(|_| data.task == Task::Regression)
        else {
            return Ok(ErrorScale::Identity);
        };
        if std.iter().all(|&v| v == std[0]) {
            let s = f64::from(std.first().copied().unwrap_or(1.0));
            return Ok(ErrorScale::Uniform(s * s));
        }
        let m = std.len();
        let s = be.upload(Array2::from_diag(&ndarray::Array1::from(std.to_vec())).view())?;
        let scaled = |y: &B::Mat| -> BResult<B::Mat> {
            let (_, n) = be.shape(y);
            let mut out = be.zeros(m, n)?;
            be.matmul_nn(&mut out, &s, y, None, 0.0)?;
            Ok(out)
        };
        let sy = scaled(&data.y)?;
        let sy_test = data.y_test.as_ref().map(scaled).transpose()?;
        let tmp = be.zeros(m, data.n)?;
        let tmp_test = match &data.y_test {
            Some(_) => Some(be.zeros(m, data.n_test)?),
            None => None,
        };
        Ok(ErrorScale::PerOutput {
            s,
            sy,
            sy_test,
            tmp,
            tmp_test,
        })
    }
}

/// Evaluates [`Measures`] with workspaces allocated once.
pub struct Evaluator<B: Backend> {
    pub spec: Spec,
    train: Net<B>,
    test: Option<Net<B>>,
    tmp1: Vec<B::Mat>,
    tmp2: Vec<B::Mat>,
    shrink: Vec<B::Mat>,
    scale: ErrorScale<B>,
}

impl<B: Backend> Evaluator<B> {
    pub fn new(be: &B, spec: &Spec, data: &DeviceData<B>) -> BResult<Self> {
        slots::check_layers(spec.layers())?;
        let mut tmp1 = Vec::new();
        let mut tmp2 = Vec::new();
        let mut shrink = Vec::new();
        for l in 0..spec.layers() {
            tmp1.push(be.zeros(spec.sizes[l + 1], spec.sizes[l])?);
            tmp2.push(be.zeros(spec.sizes[l + 1], spec.sizes[l])?);
            let (r, c) = spec.shrink_shape(l);
            shrink.push(be.zeros(r, c)?);
        }
        Ok(Evaluator {
            spec: spec.clone(),
            train: Net::new(be, spec, data.n)?,
            test: if data.n_test > 0 {
                Some(Net::new(be, spec, data.n_test)?)
            } else {
                None
            },
            tmp1,
            tmp2,
            shrink,
            scale: ErrorScale::new(be, data)?,
        })
    }

    /// All measures at `p`, in one readback.
    pub fn measure(&mut self, be: &B, p: &Params<B>, data: &DeviceData<B>) -> BResult<Measures> {
        let spec = &self.spec;
        let layers = spec.layers();
        self.train.forward(be, spec, p, &data.x)?;
        self.train
            .backward(be, spec, p, &data.x, &data.y, TRAIN_LOSS.slot())?;
        let classify = data.task == Task::Classification;
        if classify {
            be.count_errors(self.train.output(), &data.y, TRAIN_ERRORS.slot())?;
        }
        // Per-output target scales: the error slots hold the loss in the target's units.
        if let ErrorScale::PerOutput { s, sy, tmp, .. } = &mut self.scale {
            be.matmul_nn(tmp, s, self.train.output(), None, 0.0)?;
            be.loss(tmp, sy, LossKind::Squared, TRAIN_ERRORS.slot())?;
        }
        if let (Some(net), Some(xt), Some(yt)) = (self.test.as_mut(), &data.x_test, &data.y_test) {
            net.forward(be, spec, p, xt)?;
            be.loss(net.output(), yt, spec.loss, TEST_LOSS.slot())?;
            if classify {
                be.count_errors(net.output(), yt, TEST_ERRORS.slot())?;
            }
            if let ErrorScale::PerOutput {
                s,
                sy_test: Some(sy),
                tmp_test: Some(tmp),
                ..
            } = &mut self.scale
            {
                be.matmul_nn(tmp, s, net.output(), None, 0.0)?;
                be.loss(tmp, sy, LossKind::Squared, TEST_ERRORS.slot())?;
            }
        }
        for l in 0..layers {
            be.group_norms(&p.w[l], spec.axes[l], PENALTY.at(l))?;
            // cert: W − prox_λ(W − ∇W) with unit step (method §5); biases are unpenalised.
            let scratch = (&mut self.tmp1[l], &mut self.tmp2[l], &mut self.shrink[l]);
            prox_mapping_sq(
                be,
                &p.w[l],
                &self.train.grad.w[l],
                spec.lambda,
                spec.axes[l],
                scratch,
                CERT_W.at(l),
                DISCARD.slot(),
            )?;
            be.sq_norm(&self.train.grad.b[l], CERT_B.at(l))?;
        }
        // Error and test slots are read even when unwritten (regression, no test set):
        // their values are then ignored.
        let mut rb = Readback::new();
        rb.slot(TRAIN_LOSS.slot())
            .slot(TRAIN_ERRORS.slot())
            .slot(TEST_LOSS.slot())
            .slot(TEST_ERRORS.slot());
        for l in 0..layers {
            rb.unit(PENALTY, l).slot(CERT_W.at(l)).slot(CERT_B.at(l));
        }
        let v = rb.read(be)?;
        let m = spec.sizes[layers] as f64;
        let err = |loss: f64, wrong: f64, n: usize| {
            if classify {
                return wrong / n.max(1) as f64;
            }
            // MSE over all entries; with squared loss ℓ = (1/N)‖Ŷ−Y‖² = m·MSE, in the
            // target's own units.
            match &self.scale {
                ErrorScale::Identity => loss / m,
                ErrorScale::Uniform(s2) => s2 * loss / m,
                ErrorScale::PerOutput { .. } => wrong / m,
            }
        };
        let mut reg = 0.0;
        let mut cert2 = 0.0;
        let mut zero_rows = Vec::new();
        for l in 0..layers {
            reg += v.get(PENALTY.part(l, GROUP_SUM));
            zero_rows.push(v.get(PENALTY.part(l, GROUP_ZEROS)).round() as usize);
            cert2 += v.get(CERT_W.at(l)) + v.get(CERT_B.at(l));
        }
        let reg = spec.lambda as f64 * reg;
        let loss = v.get(TRAIN_LOSS.slot());
        Ok(Measures {
            p0: loss + reg,
            loss,
            reg,
            train_error: err(loss, v.get(TRAIN_ERRORS.slot()), data.n),
            test_error: self.test.as_ref().map(|_| {
                err(
                    v.get(TEST_LOSS.slot()),
                    v.get(TEST_ERRORS.slot()),
                    data.n_test,
                )
            }),
            zero_rows,
            cert_abs: cert2.sqrt(),
        })
    }

    /// Passes one [`Evaluator::measure`] costs on the training data (not charged to any
    /// method's budget: every method is measured the same way).
    pub fn passes(&self) -> f64 {
        self.train.forward_passes(&self.spec, self.train.cols)
            + self.train.backward_passes(&self.spec, self.train.cols)
    }
}

/// (P0) of the empty network (method §1): all `W = 0`, so Ŷ is the constant output bias
/// `b_L`, at its optimum (biases are unpenalised): the mean target for squared loss, the
/// log class frequencies for cross-entropy. Computed once on the host from the targets.
pub fn empty_network_p0(y: &Array2<f32>, loss: LossKind) -> f64 {
    let (m, n) = y.dim();
    if n == 0 {
        return f64::NAN;
    }
    match loss {
        LossKind::Squared => {
            let mut total = 0.0;
            for i in 0..m {
                let row = y.row(i);
                let mean = row.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                total += row.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>();
            }
            total / n as f64
        }
        LossKind::SoftmaxCe => {
            // Cross-entropy of the class frequencies with themselves: their entropy.
            let mut h = 0.0;
            for i in 0..m {
                let p = y.row(i).iter().map(|&v| v as f64).sum::<f64>() / n as f64;
                if p > 0.0 {
                    h -= p * p.ln();
                }
            }
            h
        }
    }
}
