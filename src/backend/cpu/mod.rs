//! The CPU reference backend: one ndarray twin per GPU kernel, same names and argument order
//! as the trait (method §5b). Generic over the float type so the gradient tests can run the
//! very same solver code in `f64` (finite differences in `f32` are too coarse), while
//! `CpuBackend<f32>` is a production backend in its own right.
//!
//! Matmuls go through `ndarray::linalg::general_mat_mul`, which ndarray's `blas` feature
//! routes to the system OpenBLAS for `f32`/`f64` (`build.rs`). Reductions accumulate in
//! `f64` whatever `F` is, so slot values are as exact as the inputs allow. Arguments are
//! checked by the operation contracts of `shape.rs`, shared with the GPU backend; the
//! losses live in `loss.rs`.

mod loss;

use super::{shape, Axis, BResult, Backend, BackendError, Counters, LossKind, Slot, NUM_SLOTS};
use loss::{argmax, loss_and_grad};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2, Axis as NdAxis, Zip};
use num_traits::{Float, FromPrimitive, ToPrimitive};
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

/// Float types the CPU backend runs in.
pub trait Real:
    ndarray::LinalgScalar
    + Float
    + FromPrimitive
    + ToPrimitive
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    fn of(x: f32) -> Self {
        Self::from_f32(x).expect("f32 converts to every Real")
    }
    fn of64(x: f64) -> Self {
        Self::from_f64(x).expect("f64 converts to every Real")
    }
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
}
impl Real for f32 {}
impl Real for f64 {}

/// A CPU-owned matrix. The field is public so tests can inspect values directly.
#[derive(Clone, Debug, PartialEq)]
pub struct CpuMat<F>(pub Array2<F>);

/// The CPU backend. Not `Sync`: its scalar register file is a `RefCell`, like a device's
/// slot buffer owned by one queue.
pub struct CpuBackend<F: Real = f32> {
    slots: RefCell<Vec<f64>>,
    ops: Cell<u64>,
    reads: Cell<u64>,
    _f: PhantomData<F>,
}

impl<F: Real> Default for CpuBackend<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Real> CpuBackend<F> {
    pub fn new() -> Self {
        CpuBackend {
            slots: RefCell::new(vec![0.0; NUM_SLOTS]),
            ops: Cell::new(0),
            reads: Cell::new(0),
            _f: PhantomData,
        }
    }

    /// Wrap an existing array (tests, f64 host code).
    pub fn wrap(&self, a: Array2<F>) -> CpuMat<F> {
        CpuMat(a)
    }

    fn tick(&self) {
        self.ops.set(self.ops.get() + 1);
    }

    /// Write `vals` into the slots `slot..slot + vals.len()` (in range by the contract).
    fn set(&self, slot: Slot, vals: &[f64]) -> BResult<()> {
        let mut s = self.slots.borrow_mut();
        let n = s.len();
        s.get_mut(slot..slot + vals.len())
            .ok_or_else(|| BackendError::Shape {
                op: "slot".into(),
                msg: format!("slot {slot} out of range (0..{n})"),
            })?
            .copy_from_slice(vals);
        Ok(())
    }
}

/// A `CpuMat` built from a view may be strided; the fused loops need contiguous storage.
fn not_contiguous() -> BackendError {
    BackendError::Shape {
        op: "layout".into(),
        msg: "matrix is not contiguous".into(),
    }
}

fn slice<F>(m: &CpuMat<F>) -> BResult<&[F]> {
    m.0.as_slice_memory_order().ok_or_else(not_contiguous)
}

fn slice_mut<F>(m: &mut CpuMat<F>) -> BResult<&mut [F]> {
    m.0.as_slice_memory_order_mut().ok_or_else(not_contiguous)
}

/// σ(u) = max(u, αu) (method §1).
#[inline]
fn sigma<F: Real>(u: F, alpha: F) -> F {
    if u > F::zero() {
        u
    } else {
        alpha * u
    }
}

/// σ'(u) = 1 if u > 0 else α (method §1).
#[inline]
fn dsigma<F: Real>(u: F, alpha: F) -> F {
    if u > F::zero() {
        F::one()
    } else {
        alpha
    }
}

/// `Σ x²`, accumulated in `f64`.
fn sq_sum<'a, F: Real>(xs: impl Iterator<Item = &'a F>) -> f64 {
    xs.fold(0.0f64, |a, &x| a + x.f64() * x.f64())
}

impl<F: Real> Backend for CpuBackend<F> {
    type Mat = CpuMat<F>;

    fn name(&self) -> String {
        format!("CPU (ndarray + OpenBLAS, {})", std::any::type_name::<F>())
    }

    fn zeros(&self, rows: usize, cols: usize) -> BResult<CpuMat<F>> {
        Ok(CpuMat(Array2::zeros((rows, cols))))
    }

    fn upload(&self, host: ArrayView2<f32>) -> BResult<CpuMat<F>> {
        Ok(CpuMat(host.as_standard_layout().mapv(F::of)))
    }

    fn write(&self, dst: &mut CpuMat<F>, host: ArrayView2<f32>) -> BResult<()> {
        shape::write(self, dst, host.dim())?;
        Zip::from(&mut dst.0)
            .and(&host)
            .for_each(|d, &h| *d = F::of(h));
        Ok(())
    }

    fn download(&self, m: &CpuMat<F>) -> BResult<Array2<f32>> {
        Ok(m.0.mapv(|x| x.to_f32().unwrap_or(f32::NAN)))
    }

    fn shape(&self, m: &CpuMat<F>) -> (usize, usize) {
        m.0.dim()
    }

    fn copy(&self, dst: &mut CpuMat<F>, src: &CpuMat<F>) -> BResult<()> {
        shape::copy(self, dst, src)?;
        self.tick();
        dst.0.assign(&src.0);
        Ok(())
    }

    fn fill(&self, dst: &mut CpuMat<F>, value: f32) -> BResult<()> {
        self.tick();
        dst.0.fill(F::of(value));
        Ok(())
    }

    fn gather_cols(&self, out: &mut CpuMat<F>, src: &CpuMat<F>, idx: &[u32]) -> BResult<()> {
        shape::gather_cols(self, out, src, idx)?;
        self.tick();
        for (j, &k) in idx.iter().enumerate() {
            out.0.column_mut(j).assign(&src.0.column(k as usize));
        }
        Ok(())
    }

    fn matmul_nn(
        &self,
        c: &mut CpuMat<F>,
        a: &CpuMat<F>,
        b: &CpuMat<F>,
        bias: Option<&CpuMat<F>>,
        beta: f32,
    ) -> BResult<()> {
        shape::matmul_nn(self, c, a, b, bias)?;
        self.tick();
        if beta == 0.0 {
            // beta = 0 must ignore C even if it holds NaN (trait contract).
            c.0.fill(F::zero());
        }
        general_mat_mul(F::one(), &a.0, &b.0, F::of(beta), &mut c.0);
        if let Some(bias) = bias {
            c.0.zip_mut_with(&bias.0, |c, &b| *c = *c + b);
        }
        Ok(())
    }

    fn matmul_nt(&self, c: &mut CpuMat<F>, a: &CpuMat<F>, b: &CpuMat<F>, beta: f32) -> BResult<()> {
        shape::matmul_nt(self, c, a, b)?;
        self.tick();
        if beta == 0.0 {
            c.0.fill(F::zero());
        }
        general_mat_mul(F::one(), &a.0, &b.0.t(), F::of(beta), &mut c.0);
        Ok(())
    }

    fn matmul_tn(&self, c: &mut CpuMat<F>, a: &CpuMat<F>, b: &CpuMat<F>, beta: f32) -> BResult<()> {
        shape::matmul_tn(self, c, a, b)?;
        self.tick();
        if beta == 0.0 {
            c.0.fill(F::zero());
        }
        general_mat_mul(F::one(), &a.0.t(), &b.0, F::of(beta), &mut c.0);
        Ok(())
    }

    fn row_sum(&self, out: &mut CpuMat<F>, a: &CpuMat<F>, beta: f32) -> BResult<()> {
        shape::row_sum(self, out, a)?;
        self.tick();
        let beta = F::of(beta);
        for (i, row) in a.0.rows().into_iter().enumerate() {
            let s = row.iter().fold(0.0f64, |acc, &x| acc + x.f64());
            let old = if beta == F::zero() {
                F::zero()
            } else {
                beta * out.0[[i, 0]]
            };
            out.0[[i, 0]] = F::of64(s) + old;
        }
        Ok(())
    }

    fn axpby(
        &self,
        out: &mut CpuMat<F>,
        a: f32,
        x: &CpuMat<F>,
        b: f32,
        y: &CpuMat<F>,
    ) -> BResult<()> {
        shape::axpby(self, out, x, y)?;
        self.tick();
        let (a, b) = (F::of(a), F::of(b));
        Zip::from(&mut out.0)
            .and(&x.0)
            .and(&y.0)
            .for_each(|o, &x, &y| *o = a * x + b * y);
        Ok(())
    }

    fn axpy(&self, y: &mut CpuMat<F>, a: f32, x: &CpuMat<F>) -> BResult<()> {
        shape::axpy(self, y, x)?;
        self.tick();
        y.0.scaled_add(F::of(a), &x.0);
        Ok(())
    }

    fn scale(&self, x: &mut CpuMat<F>, a: f32) -> BResult<()> {
        self.tick();
        let a = F::of(a);
        x.0.mapv_inplace(|v| a * v);
        Ok(())
    }

    fn leaky_relu(&self, out: &mut CpuMat<F>, u: &CpuMat<F>, alpha: f32) -> BResult<()> {
        shape::leaky_relu(self, out, u)?;
        self.tick();
        let al = F::of(alpha);
        Zip::from(&mut out.0)
            .and(&u.0)
            .for_each(|o, &u| *o = sigma(u, al));
        Ok(())
    }

    fn mul_leaky_deriv(&self, d: &mut CpuMat<F>, u: &CpuMat<F>, alpha: f32) -> BResult<()> {
        shape::mul_leaky_deriv(self, d, u)?;
        self.tick();
        let al = F::of(alpha);
        Zip::from(&mut d.0)
            .and(&u.0)
            .for_each(|d, &u| *d = *d * dsigma(u, al));
        Ok(())
    }

    fn constraint_residual(
        &self,
        u: &CpuMat<F>,
        v: &CpuMat<F>,
        lam: &CpuMat<F>,
        rho: f32,
        alpha: f32,
        inv_n: f32,
        h: &mut CpuMat<F>,
        s: &mut CpuMat<F>,
        gu: &mut CpuMat<F>,
        gv: &mut CpuMat<F>,
        slot: Slot,
    ) -> BResult<()> {
        shape::constraint_residual(self, u, v, lam, h, s, gu, gv, slot)?;
        self.tick();
        let (rho, al, inv_n) = (F::of(rho), F::of(alpha), F::of(inv_n));
        let (mut hh, mut lh, mut ss) = (0.0f64, 0.0f64, 0.0f64);
        let (hs, ss_, gus, gvs) = (slice_mut(h)?, slice_mut(s)?, slice_mut(gu)?, slice_mut(gv)?);
        let (us, vs, ls) = (slice(u)?, slice(v)?, slice(lam)?);
        for i in 0..us.len() {
            let (u, v, l) = (us[i], vs[i], ls[i]);
            let su = sigma(u, al);
            let hv = v - su;
            let sv = l + rho * hv;
            hs[i] = hv;
            ss_[i] = sv;
            gus[i] = -(sv * dsigma(u, al)) * inv_n;
            gvs[i] = sv * inv_n;
            hh += hv.f64() * hv.f64();
            lh += l.f64() * hv.f64();
            ss += su.f64() * su.f64();
        }
        self.set(slot, &[hh, lh, ss])
    }

    fn constraint_value(
        &self,
        u: &CpuMat<F>,
        v: &CpuMat<F>,
        lam: &CpuMat<F>,
        alpha: f32,
        slot: Slot,
    ) -> BResult<()> {
        shape::constraint_value(self, u, v, lam, slot)?;
        self.tick();
        let al = F::of(alpha);
        let (mut hh, mut lh, mut ss) = (0.0f64, 0.0f64, 0.0f64);
        Zip::from(&u.0)
            .and(&v.0)
            .and(&lam.0)
            .for_each(|&u, &v, &l| {
                let su = sigma(u, al);
                let hv = (v - su).f64();
                hh += hv * hv;
                lh += l.f64() * hv;
                ss += su.f64() * su.f64();
            });
        self.set(slot, &[hh, lh, ss])
    }

    fn multiplier_update(&self, lam: &mut CpuMat<F>, h: &CpuMat<F>, rho: f32) -> BResult<()> {
        shape::multiplier_update(self, lam, h)?;
        self.tick();
        lam.0.scaled_add(F::of(rho), &h.0);
        Ok(())
    }

    fn group_prox(
        &self,
        w: &mut CpuMat<F>,
        thresh: f32,
        axis: Axis,
        shrink: &mut CpuMat<F>,
        slot: Slot,
    ) -> BResult<()> {
        shape::group_prox(self, w, axis, shrink, slot)?;
        let nd = match axis {
            Axis::Rows => NdAxis(0),
            Axis::Cols => NdAxis(1),
        };
        self.tick();
        let th = thresh as f64;
        let (mut sum, mut zeros) = (0.0f64, 0usize);
        for (g, mut lane) in w.0.axis_iter_mut(nd).enumerate() {
            let norm = sq_sum(lane.iter()).sqrt();
            // prox(w) = w·max(0, 1 − λt/‖w‖) (method §3); a zero group stays zero.
            let f = if norm > th { 1.0 - th / norm } else { 0.0 };
            let ff = F::of64(f);
            lane.mapv_inplace(|x| x * ff);
            match axis {
                Axis::Rows => shrink.0[[g, 0]] = ff,
                Axis::Cols => shrink.0[[0, g]] = ff,
            }
            let after = norm * f;
            sum += after;
            if after == 0.0 {
                zeros += 1;
            }
        }
        self.set(slot, &[sum, zeros as f64])
    }

    fn group_norms(&self, w: &CpuMat<F>, axis: Axis, slot: Slot) -> BResult<()> {
        shape::group_norms(slot)?;
        self.tick();
        let nd = match axis {
            Axis::Rows => NdAxis(0),
            Axis::Cols => NdAxis(1),
        };
        let (mut sum, mut zeros) = (0.0f64, 0usize);
        for lane in w.0.axis_iter(nd) {
            let norm = sq_sum(lane.iter()).sqrt();
            sum += norm;
            if norm == 0.0 {
                zeros += 1;
            }
        }
        self.set(slot, &[sum, zeros as f64])
    }

    fn w_trial_preact(
        &self,
        out: &mut CpuMat<F>,
        u: &CpuMat<F>,
        b_old: &CpuMat<F>,
        b_new: &CpuMat<F>,
        bmat: &CpuMat<F>,
        shrink: &CpuMat<F>,
        t: f32,
    ) -> BResult<()> {
        shape::w_trial_preact(self, out, u, b_old, b_new, bmat, shrink)?;
        let r = u.0.nrows();
        self.tick();
        let t = F::of(t);
        for i in 0..r {
            let (s, bo, bn) = (shrink.0[[i, 0]], b_old.0[[i, 0]], b_new.0[[i, 0]]);
            Zip::from(out.0.row_mut(i))
                .and(u.0.row(i))
                .and(bmat.0.row(i))
                .for_each(|o, &u, &b| *o = s * (u - bo - t * b) + bn);
        }
        Ok(())
    }

    fn loss(&self, yhat: &CpuMat<F>, y: &CpuMat<F>, kind: LossKind, slot: Slot) -> BResult<()> {
        shape::loss(self, yhat, y, slot)?;
        self.tick();
        self.set(slot, &[loss_and_grad(&yhat.0, &y.0, kind, None)])
    }

    fn loss_grad(
        &self,
        yhat: &CpuMat<F>,
        y: &CpuMat<F>,
        kind: LossKind,
        g: &mut CpuMat<F>,
        slot: Slot,
    ) -> BResult<()> {
        shape::loss_grad(self, yhat, y, g, slot)?;
        self.tick();
        self.set(slot, &[loss_and_grad(&yhat.0, &y.0, kind, Some(&mut g.0))])
    }

    fn count_errors(&self, yhat: &CpuMat<F>, y: &CpuMat<F>, slot: Slot) -> BResult<()> {
        shape::count_errors(self, yhat, y, slot)?;
        self.tick();
        let wrong = yhat
            .0
            .columns()
            .into_iter()
            .zip(y.0.columns())
            .filter(|(a, b)| argmax(*a) != argmax(*b))
            .count();
        self.set(slot, &[wrong as f64])
    }

    fn dot(&self, a: &CpuMat<F>, b: &CpuMat<F>, slot: Slot) -> BResult<()> {
        shape::dot(self, a, b, slot)?;
        self.tick();
        let mut acc = 0.0f64;
        Zip::from(&a.0)
            .and(&b.0)
            .for_each(|&x, &y| acc += x.f64() * y.f64());
        self.set(slot, &[acc])
    }

    fn sq_norm(&self, a: &CpuMat<F>, slot: Slot) -> BResult<()> {
        shape::sq_norm(slot)?;
        self.tick();
        self.set(slot, &[sq_sum(a.0.iter())])
    }

    fn read_slots(&self, slots: &[Slot]) -> BResult<Vec<f64>> {
        shape::read_slots(slots)?;
        self.reads.set(self.reads.get() + 1);
        let s = self.slots.borrow();
        Ok(slots.iter().map(|&i| s[i]).collect())
    }

    fn adam_update(
        &self,
        w: &mut CpuMat<F>,
        g: &CpuMat<F>,
        m: &mut CpuMat<F>,
        v: &mut CpuMat<F>,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        step: u32,
    ) -> BResult<()> {
        shape::adam_update(self, w, g, m, v)?;
        self.tick();
        let step = step.max(1) as i32;
        let bc1 = F::of(1.0 - beta1.powi(step));
        let bc2 = F::of(1.0 - beta2.powi(step));
        let (b1, b2, lr, eps) = (F::of(beta1), F::of(beta2), F::of(lr), F::of(eps));
        Zip::from(&mut w.0)
            .and(&g.0)
            .and(&mut m.0)
            .and(&mut v.0)
            .for_each(|w, &g, m, v| {
                *m = b1 * *m + (F::one() - b1) * g;
                *v = b2 * *v + (F::one() - b2) * g * g;
                let mh = *m / bc1;
                let vh = *v / bc2;
                *w = *w - lr * mh / (vh.sqrt() + eps);
            });
        Ok(())
    }

    fn epsilon(&self) -> f64 {
        F::epsilon().f64()
    }

    fn counters(&self) -> Counters {
        Counters {
            dispatches: self.ops.get(),
            readbacks: self.reads.get(),
            submits: 0,
        }
    }
}
