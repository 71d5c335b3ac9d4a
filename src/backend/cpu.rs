//! The CPU reference backend: one ndarray twin per GPU kernel, same names and argument order
//! as the trait (SPEC §5b). Generic over the float type so the gradient tests can run the
//! very same solver code in `f64` (finite differences in `f32` are too coarse), while
//! `CpuBackend<f32>` is a production backend in its own right.
//!
//! Matmuls go through `ndarray::linalg::general_mat_mul`, which ndarray's `blas` feature
//! routes to the system OpenBLAS for `f32`/`f64` (`build.rs`). Reductions accumulate in
//! `f64` whatever `F` is, so slot values are as exact as the inputs allow.

use super::{Axis, BResult, Backend, Counters, LossKind, Slot, NUM_SLOTS};
use crate::error::BackendError;
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

    fn set(&self, slot: Slot, v: f64) -> BResult<()> {
        let mut s = self.slots.borrow_mut();
        let n = s.len();
        *s.get_mut(slot).ok_or_else(|| BackendError::Shape {
            op: "slot".into(),
            msg: format!("slot {slot} out of range (0..{n})"),
        })? = v;
        Ok(())
    }
}

fn same(op: &str, a: (usize, usize), b: (usize, usize)) -> BResult<()> {
    if a == b {
        Ok(())
    } else {
        Err(BackendError::Shape {
            op: op.into(),
            msg: format!("{a:?} vs {b:?}"),
        })
    }
}

fn slice<F>(m: &CpuMat<F>) -> BResult<&[F]> {
    m.0.as_slice_memory_order()
        .ok_or_else(|| BackendError::Shape {
            op: "layout".into(),
            msg: "matrix is not contiguous".into(),
        })
}

fn slice_mut<F>(m: &mut CpuMat<F>) -> BResult<&mut [F]> {
    m.0.as_slice_memory_order_mut()
        .ok_or_else(|| BackendError::Shape {
            op: "layout".into(),
            msg: "matrix is not contiguous".into(),
        })
}

fn dims<F>(m: &CpuMat<F>) -> (usize, usize) {
    m.0.dim()
}

/// σ(u) = max(u, αu) (SPEC §1).
#[inline]
fn sigma<F: Real>(u: F, alpha: F) -> F {
    if u > F::zero() {
        u
    } else {
        alpha * u
    }
}

/// σ'(u) = 1 if u > 0 else α (SPEC §1).
#[inline]
fn dsigma<F: Real>(u: F, alpha: F) -> F {
    if u > F::zero() {
        F::one()
    } else {
        alpha
    }
}

fn argmax<F: Real>(col: ndarray::ArrayView1<F>) -> usize {
    // First index wins ties (the GPU kernel's rule too).
    let mut best = 0;
    for (i, &v) in col.iter().enumerate().skip(1) {
        if v > col[best] {
            best = i;
        }
    }
    best
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
        same("write", dims(dst), host.dim())?;
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
        same("copy", dims(dst), dims(src))?;
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
        let (r, c) = dims(src);
        if dims(out) != (r, idx.len()) {
            return Err(BackendError::Shape {
                op: "gather_cols".into(),
                msg: format!("out {:?}, expected ({r}, {})", dims(out), idx.len()),
            });
        }
        if let Some(&bad) = idx.iter().find(|&&j| j as usize >= c) {
            return Err(BackendError::Shape {
                op: "gather_cols".into(),
                msg: format!("index {bad} out of range for {c} columns"),
            });
        }
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
        let ((m, k), (k2, n)) = (dims(a), dims(b));
        if k != k2 || dims(c) != (m, n) {
            return Err(BackendError::Shape {
                op: "matmul_nn".into(),
                msg: format!("A {:?} · B {:?} → C {:?}", dims(a), dims(b), dims(c)),
            });
        }
        if let Some(bias) = bias {
            same("matmul_nn bias", dims(bias), (m, 1))?;
        }
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
        let ((m, k), (n, k2)) = (dims(a), dims(b));
        if k != k2 || dims(c) != (m, n) {
            return Err(BackendError::Shape {
                op: "matmul_nt".into(),
                msg: format!("A {:?} · Bᵀ {:?} → C {:?}", dims(a), dims(b), dims(c)),
            });
        }
        self.tick();
        if beta == 0.0 {
            c.0.fill(F::zero());
        }
        general_mat_mul(F::one(), &a.0, &b.0.t(), F::of(beta), &mut c.0);
        Ok(())
    }

    fn matmul_tn(&self, c: &mut CpuMat<F>, a: &CpuMat<F>, b: &CpuMat<F>, beta: f32) -> BResult<()> {
        let ((k, m), (k2, n)) = (dims(a), dims(b));
        if k != k2 || dims(c) != (m, n) {
            return Err(BackendError::Shape {
                op: "matmul_tn".into(),
                msg: format!("Aᵀ {:?} · B {:?} → C {:?}", dims(a), dims(b), dims(c)),
            });
        }
        self.tick();
        if beta == 0.0 {
            c.0.fill(F::zero());
        }
        general_mat_mul(F::one(), &a.0.t(), &b.0, F::of(beta), &mut c.0);
        Ok(())
    }

    fn row_sum(&self, out: &mut CpuMat<F>, a: &CpuMat<F>, beta: f32) -> BResult<()> {
        same("row_sum", dims(out), (dims(a).0, 1))?;
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
        same("axpby", dims(x), dims(y))?;
        same("axpby", dims(out), dims(x))?;
        self.tick();
        let (a, b) = (F::of(a), F::of(b));
        Zip::from(&mut out.0)
            .and(&x.0)
            .and(&y.0)
            .for_each(|o, &x, &y| *o = a * x + b * y);
        Ok(())
    }

    fn axpy(&self, y: &mut CpuMat<F>, a: f32, x: &CpuMat<F>) -> BResult<()> {
        same("axpy", dims(y), dims(x))?;
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
        same("leaky_relu", dims(out), dims(u))?;
        self.tick();
        let al = F::of(alpha);
        Zip::from(&mut out.0)
            .and(&u.0)
            .for_each(|o, &u| *o = sigma(u, al));
        Ok(())
    }

    fn mul_leaky_deriv(&self, d: &mut CpuMat<F>, u: &CpuMat<F>, alpha: f32) -> BResult<()> {
        same("mul_leaky_deriv", dims(d), dims(u))?;
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
        let d = dims(u);
        for (name, m) in [("v", v), ("lam", lam)] {
            same(&format!("constraint_residual {name}"), dims(m), d)?;
        }
        for (name, m) in [("h", &*h), ("s", &*s), ("gu", &*gu), ("gv", &*gv)] {
            same(&format!("constraint_residual {name}"), dims(m), d)?;
        }
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
        self.set(slot, hh)?;
        self.set(slot + 1, lh)?;
        self.set(slot + 2, ss)
    }

    fn constraint_value(
        &self,
        u: &CpuMat<F>,
        v: &CpuMat<F>,
        lam: &CpuMat<F>,
        alpha: f32,
        slot: Slot,
    ) -> BResult<()> {
        same("constraint_value v", dims(v), dims(u))?;
        same("constraint_value lam", dims(lam), dims(u))?;
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
        self.set(slot, hh)?;
        self.set(slot + 1, lh)?;
        self.set(slot + 2, ss)
    }

    fn multiplier_update(&self, lam: &mut CpuMat<F>, h: &CpuMat<F>, rho: f32) -> BResult<()> {
        same("multiplier_update", dims(lam), dims(h))?;
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
        let (r, c) = dims(w);
        let (nd, want) = match axis {
            Axis::Rows => (NdAxis(0), (r, 1)),
            Axis::Cols => (NdAxis(1), (1, c)),
        };
        same("group_prox shrink", dims(shrink), want)?;
        self.tick();
        let th = thresh as f64;
        let (mut sum, mut zeros) = (0.0f64, 0usize);
        for (g, mut lane) in w.0.axis_iter_mut(nd).enumerate() {
            let norm = lane
                .iter()
                .fold(0.0f64, |a, &x| a + x.f64() * x.f64())
                .sqrt();
            // prox(w) = w·max(0, 1 − λt/‖w‖) (SPEC §3); a zero group stays zero.
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
        self.set(slot, sum)?;
        self.set(slot + 1, zeros as f64)
    }

    fn group_norms(&self, w: &CpuMat<F>, axis: Axis, slot: Slot) -> BResult<()> {
        self.tick();
        let nd = match axis {
            Axis::Rows => NdAxis(0),
            Axis::Cols => NdAxis(1),
        };
        let (mut sum, mut zeros) = (0.0f64, 0usize);
        for lane in w.0.axis_iter(nd) {
            let norm = lane
                .iter()
                .fold(0.0f64, |a, &x| a + x.f64() * x.f64())
                .sqrt();
            sum += norm;
            if norm == 0.0 {
                zeros += 1;
            }
        }
        self.set(slot, sum)?;
        self.set(slot + 1, zeros as f64)
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
        let (r, _) = dims(u);
        same("w_trial_preact out", dims(out), dims(u))?;
        same("w_trial_preact bmat", dims(bmat), dims(u))?;
        for (name, m) in [("b_old", b_old), ("b_new", b_new), ("shrink", shrink)] {
            same(&format!("w_trial_preact {name}"), dims(m), (r, 1))?;
        }
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
        same("loss", dims(yhat), dims(y))?;
        self.tick();
        self.set(slot, loss_and_grad(&yhat.0, &y.0, kind, None))
    }

    fn loss_grad(
        &self,
        yhat: &CpuMat<F>,
        y: &CpuMat<F>,
        kind: LossKind,
        g: &mut CpuMat<F>,
        slot: Slot,
    ) -> BResult<()> {
        same("loss_grad", dims(yhat), dims(y))?;
        same("loss_grad g", dims(g), dims(y))?;
        self.tick();
        self.set(slot, loss_and_grad(&yhat.0, &y.0, kind, Some(&mut g.0)))
    }

    fn count_errors(&self, yhat: &CpuMat<F>, y: &CpuMat<F>, slot: Slot) -> BResult<()> {
        same("count_errors", dims(yhat), dims(y))?;
        self.tick();
        let wrong = yhat
            .0
            .columns()
            .into_iter()
            .zip(y.0.columns())
            .filter(|(a, b)| argmax(*a) != argmax(*b))
            .count();
        self.set(slot, wrong as f64)
    }

    fn dot(&self, a: &CpuMat<F>, b: &CpuMat<F>, slot: Slot) -> BResult<()> {
        same("dot", dims(a), dims(b))?;
        self.tick();
        let mut acc = 0.0f64;
        Zip::from(&a.0)
            .and(&b.0)
            .for_each(|&x, &y| acc += x.f64() * y.f64());
        self.set(slot, acc)
    }

    fn sq_norm(&self, a: &CpuMat<F>, slot: Slot) -> BResult<()> {
        self.tick();
        let acc = a.0.iter().fold(0.0f64, |s, &x| s + x.f64() * x.f64());
        self.set(slot, acc)
    }

    fn read_slots(&self, slots: &[Slot]) -> BResult<Vec<f64>> {
        self.reads.set(self.reads.get() + 1);
        let s = self.slots.borrow();
        slots
            .iter()
            .map(|&i| {
                s.get(i).copied().ok_or_else(|| BackendError::Shape {
                    op: "read_slots".into(),
                    msg: format!("slot {i} out of range"),
                })
            })
            .collect()
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
        let d = dims(w);
        for (name, x) in [("g", g), ("m", &*m), ("v", &*v)] {
            same(&format!("adam_update {name}"), dims(x), d)?;
        }
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

/// ℓ and optionally ∂ℓ/∂Ŷ for both losses of SPEC §1, averaged over columns.
fn loss_and_grad<F: Real>(
    yhat: &Array2<F>,
    y: &Array2<F>,
    kind: LossKind,
    mut g: Option<&mut Array2<F>>,
) -> f64 {
    let n = yhat.ncols().max(1) as f64;
    let inv_n = F::of64(1.0 / n);
    match kind {
        LossKind::Squared => {
            let mut acc = 0.0f64;
            match g.as_deref_mut() {
                Some(g) => Zip::from(g).and(yhat).and(y).for_each(|g, &p, &t| {
                    let r = p - t;
                    acc += r.f64() * r.f64();
                    *g = (r + r) * inv_n;
                }),
                None => Zip::from(yhat).and(y).for_each(|&p, &t| {
                    let r = (p - t).f64();
                    acc += r * r;
                }),
            }
            acc / n
        }
        LossKind::SoftmaxCe => {
            let mut acc = 0.0f64;
            for j in 0..yhat.ncols() {
                let col = yhat.column(j);
                let mx = col.iter().fold(F::neg_infinity(), |a, &b| a.max(b));
                let z: f64 = col.iter().map(|&v| (v - mx).f64().exp()).sum();
                let lse = mx.f64() + z.ln();
                let ty: f64 = col
                    .iter()
                    .zip(y.column(j))
                    .map(|(&p, &t)| p.f64() * t.f64())
                    .sum();
                let ysum: f64 = y.column(j).iter().map(|&t| t.f64()).sum();
                // ℓ_j = Σ_i y_i (lse − ŷ_i) = lse·Σy − ⟨y, ŷ⟩ (Σy = 1 for one-hot targets).
                acc += lse * ysum - ty;
                if let Some(g) = g.as_deref_mut() {
                    for i in 0..yhat.nrows() {
                        let p = (yhat[[i, j]].f64() - lse).exp();
                        g[[i, j]] = F::of64((p * ysum - y[[i, j]].f64()) / n);
                    }
                }
            }
            acc / n
        }
    }
}
