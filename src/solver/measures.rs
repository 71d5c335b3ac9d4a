//! SPEC §5: the measures every run reports, computed the same way for every method:
//! (P0) by a true forward pass, loss, penalty, train/test error, zero groups per layer and
//! the stationarity certificate `cert` of (P0) itself. All of it costs one scalar readback.
//! `feas` and `kkt` belong to the ALM and are computed in `alm.rs`.

use crate::backend::{BResult, Backend, LossKind, Slot};
use crate::config::Task;
use crate::data::Dataset;
use crate::problem::{prox_mapping_sq, Net, Params, Spec};
use ndarray::Array2;

/// Training and test data on the device.
pub struct DeviceData<B: Backend> {
    pub x: B::Mat,
    pub y: B::Mat,
    pub x_test: Option<B::Mat>,
    pub y_test: Option<B::Mat>,
    pub n: usize,
    pub n_test: usize,
    pub task: Task,
}

impl<B: Backend> DeviceData<B> {
    pub fn upload(be: &B, train: &Dataset, test: &Dataset) -> BResult<Self> {
        let has_test = test.n() > 0;
        Ok(DeviceData {
            x: be.upload(train.x.view())?,
            y: be.upload(train.y.view())?,
            x_test: if has_test {
                Some(be.upload(test.x.view())?)
            } else {
                None
            },
            y_test: if has_test {
                Some(be.upload(test.y.view())?)
            } else {
                None
            },
            n: train.n(),
            n_test: test.n(),
            task: train.task,
        })
    }
}

/// The measures of SPEC §5 at one point.
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

const S_LOSS: Slot = 0;
const S_ERR: Slot = 1;
const S_TLOSS: Slot = 2;
const S_TERR: Slot = 3;
const S_REG: Slot = 16; // + 2l: Σ‖group‖, zero groups
const S_CERT: Slot = 96; // + 2l: ‖W − prox(W − ∇W)‖², ‖∇b‖²

/// Evaluates [`Measures`] with workspaces allocated once.
pub struct Evaluator<B: Backend> {
    pub spec: Spec,
    train: Net<B>,
    test: Option<Net<B>>,
    tmp1: Vec<B::Mat>,
    tmp2: Vec<B::Mat>,
    shrink: Vec<B::Mat>,
}

impl<B: Backend> Evaluator<B> {
    pub fn new(be: &B, spec: &Spec, data: &DeviceData<B>) -> BResult<Self> {
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
        })
    }

    /// All measures at `p`, in one readback.
    pub fn measure(&mut self, be: &B, p: &Params<B>, data: &DeviceData<B>) -> BResult<Measures> {
        let spec = &self.spec;
        let layers = spec.layers();
        self.train.forward(be, spec, p, &data.x)?;
        self.train.backward(be, spec, p, &data.x, &data.y, S_LOSS)?;
        let classify = data.task == Task::Classification;
        if classify {
            be.count_errors(self.train.output(), &data.y, S_ERR)?;
        }
        if let (Some(net), Some(xt), Some(yt)) = (self.test.as_mut(), &data.x_test, &data.y_test) {
            net.forward(be, spec, p, xt)?;
            be.loss(net.output(), yt, spec.loss, S_TLOSS)?;
            if classify {
                be.count_errors(net.output(), yt, S_TERR)?;
            }
        }
        for l in 0..layers {
            be.group_norms(&p.w[l], spec.axes[l], S_REG + 2 * l)?;
            // cert: W − prox_λ(W − ∇W) with unit step (SPEC §5); biases are unpenalised.
            let scratch = (&mut self.tmp1[l], &mut self.tmp2[l], &mut self.shrink[l]);
            prox_mapping_sq(
                be,
                &p.w[l],
                &self.train.grad.w[l],
                spec.lambda,
                spec.axes[l],
                scratch,
                S_CERT + 2 * l,
            )?;
            be.sq_norm(&self.train.grad.b[l], S_CERT + 2 * l + 1)?;
        }
        let mut slots = vec![S_LOSS, S_ERR, S_TLOSS, S_TERR];
        for l in 0..layers {
            slots.extend([
                S_REG + 2 * l,
                S_REG + 2 * l + 1,
                S_CERT + 2 * l,
                S_CERT + 2 * l + 1,
            ]);
        }
        let v = be.read_slots(&slots)?;
        let m = spec.sizes[layers] as f64;
        let err = |loss: f64, wrong: f64, n: usize| {
            if classify {
                wrong / n.max(1) as f64
            } else {
                // MSE over all entries; with squared loss ℓ = (1/N)‖Ŷ−Y‖² = m·MSE.
                loss / m
            }
        };
        let mut reg = 0.0;
        let mut cert2 = 0.0;
        let mut zero_rows = Vec::new();
        for l in 0..layers {
            let k = 4 + 4 * l;
            reg += v[k];
            zero_rows.push(v[k + 1].round() as usize);
            cert2 += v[k + 2] + v[k + 3];
        }
        let reg = spec.lambda as f64 * reg;
        Ok(Measures {
            p0: v[0] + reg,
            loss: v[0],
            reg,
            train_error: err(v[0], v[1], data.n),
            test_error: self.test.as_ref().map(|_| err(v[2], v[3], data.n_test)),
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

/// (P0) of the empty network (SPEC §1): all `W = 0`, so Ŷ is the constant output bias
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
