//! The CPU reference backend: one ndarray twin per GPU kernel, same names and argument order
//! as the trait (method §5b). Generic over the float type so the gradient tests can run the
//! very same solver code in `f64` (finite differences in `f32` are too coarse), while
//! `CpuBackend<f32>` is a production backend in its own right.
//!
//! Matmuls go through `ndarray::linalg::general_mat_mul`, which ndarray's `blas` feature
//! routes to the system OpenBLAS for `f32`/`f64` (`build.rs`); `blas.rs` picks OpenBLAS's
//! kernels and threads (OpenBLAS threads the matmuls, rayon the elementwise loops). The
//! elementwise and reduction loops (`kernels.rs`, the constraint's in `constraint.rs`) are fused, vectorised and parallel for
//! large arrays; the two the ALM's sweep spends most time in have hand-written AVX2
//! versions for `f32` (`simd.rs`, bit for bit the same sums). Reductions accumulate in `f64` whatever `F` is, so slot values are as
//! exact as the inputs allow. Arguments are checked by the operation contracts of
//! `shape.rs`, shared with the GPU backend; the matrix handle and the kernels' operands
//! live in `operands.rs`, the losses in `loss.rs`, the group prox and norms in `group.rs`,
//! the minibatch gather in `gather.rs`.

mod blas;
mod gather;
mod heap;
#[macro_use]
mod kernels;
mod constraint;
mod group;
mod loss;
mod matmul;
mod operands;
mod real;
#[cfg(target_arch = "x86_64")]
mod simd;

use super::ladder::LadderTest;
use super::{
    shape, Axis, BResult, Backend, BackendError, Counters, LossKind, Residual, Slot, TrialOut,
    VStep, WTrial, LADDER, NUM_SLOTS,
};
pub use blas::adopt_current_thread;
pub use heap::retain_freed_memory;
use kernels::{dsigma, sigma};
use loss::{argmax, loss_and_grad};
use ndarray::{Array2, ArrayView2, Zip};
pub use operands::CpuMat;
use operands::{not_contiguous, scalars, slice, slice_mut, step_operands, trial_rows};
use rayon::prelude::*;
pub use real::Real;
use std::cell::{Cell, RefCell};
use std::marker::PhantomData;

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
        blas::set_threads();
        CpuBackend {
            slots: RefCell::new(vec![0.0; NUM_SLOTS]),
            ops: Cell::new(0),
            reads: Cell::new(0),
            _f: PhantomData,
        }
    }

    /// Wrap an existing array (tests, f64 host code).
    pub fn wrap(&self, a: Array2<F>) -> CpuMat<F> {
        CpuMat::new(a.as_standard_layout().into_owned())
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

impl<F: Real> Backend for CpuBackend<F> {
    type Mat = CpuMat<F>;

    fn name(&self) -> String {
        format!(
            "CPU (ndarray + OpenBLAS {} kernels, {} threads, {})",
            blas::core_name(),
            blas::threads(),
            std::any::type_name::<F>()
        )
    }

    fn zeros(&self, rows: usize, cols: usize) -> BResult<CpuMat<F>> {
        Ok(CpuMat::new(Array2::zeros((rows, cols))))
    }

    fn upload(&self, host: ArrayView2<f32>) -> BResult<CpuMat<F>> {
        Ok(CpuMat::new(host.as_standard_layout().mapv(F::of)))
    }

    fn write(&self, dst: &mut CpuMat<F>, host: ArrayView2<f32>) -> BResult<()> {
        shape::write(self, dst, host.dim())?;
        Zip::from(dst.arr())
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
        slice_mut(dst)?.copy_from_slice(slice(src)?);
        Ok(())
    }

    fn fill(&self, dst: &mut CpuMat<F>, value: f32) -> BResult<()> {
        self.tick();
        dst.arr().fill(F::of(value));
        Ok(())
    }

    fn gather_cols(&self, out: &mut CpuMat<F>, src: &CpuMat<F>, idx: &[u32]) -> BResult<()> {
        shape::gather_cols(self, out, src, idx)?;
        self.tick();
        let rows = src.0.nrows();
        let t = src.1.get_or_build(&src.0);
        gather::gather(slice_mut(out)?, t, rows, idx);
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
        let cols = c.0.ncols();
        match bias {
            // C ← bias·1ᵀ, then C ← A·B + C: the bias costs one write pass, no extra read.
            Some(bias) if beta == 0.0 => {
                let bs = slice(bias)?;
                slice_mut(c)?
                    .chunks_mut(cols.max(1))
                    .zip(bs)
                    .for_each(|(row, &b)| row.fill(b));
                matmul::nn(c.arr(), &a.0, &b.0, F::one());
            }
            Some(bias) => {
                matmul::nn(c.arr(), &a.0, &b.0, F::of(beta));
                let bs = slice(bias)?;
                slice_mut(c)?
                    .chunks_mut(cols.max(1))
                    .zip(bs)
                    .for_each(|(row, &b)| row.iter_mut().for_each(|c| *c = *c + b));
            }
            // beta = 0: BLAS does not read C, so NaN there is ignored (trait contract).
            None => matmul::nn(c.arr(), &a.0, &b.0, F::of(beta)),
        }
        Ok(())
    }

    fn matmul_nt(&self, c: &mut CpuMat<F>, a: &CpuMat<F>, b: &CpuMat<F>, beta: f32) -> BResult<()> {
        shape::matmul_nt(self, c, a, b)?;
        self.tick();
        matmul::nt(c.arr(), &a.0, &b.0, F::of(beta));
        Ok(())
    }

    fn matmul_tn(&self, c: &mut CpuMat<F>, a: &CpuMat<F>, b: &CpuMat<F>, beta: f32) -> BResult<()> {
        shape::matmul_tn(self, c, a, b)?;
        self.tick();
        matmul::tn(c.arr(), &a.0, &b.0, F::of(beta));
        Ok(())
    }

    fn row_sum(&self, out: &mut CpuMat<F>, a: &CpuMat<F>, beta: f32) -> BResult<()> {
        shape::row_sum(self, out, a)?;
        self.tick();
        let beta = F::of(beta);
        let cols = a.0.ncols().max(1);
        let one = |o: &mut F, row: &[F]| {
            let s = F::of64(kernels::sum(row));
            *o = if beta == F::zero() { s } else { s + beta * *o };
        };
        let (os, rs) = (slice_mut(out)?, slice(a)?);
        if a.0.ncols() == 0 {
            // No samples: each sum is 0 (the row walk below would visit no row).
            os.iter_mut().for_each(|o| one(o, &[]));
        } else if rs.len() > kernels::PAR_CHUNK {
            os.par_iter_mut()
                .zip(rs.par_chunks(cols))
                .for_each(|(o, r)| one(o, r));
        } else {
            os.iter_mut()
                .zip(rs.chunks(cols))
                .for_each(|(o, r)| one(o, r));
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
        kernels::map3(slice_mut(out)?, slice(x)?, slice(y)?, |_, x, y| {
            a * x + b * y
        });
        Ok(())
    }

    fn axpy(&self, y: &mut CpuMat<F>, a: f32, x: &CpuMat<F>) -> BResult<()> {
        shape::axpy(self, y, x)?;
        self.tick();
        let a = F::of(a);
        kernels::map2(slice_mut(y)?, slice(x)?, |y, x| y + a * x);
        Ok(())
    }

    fn scale(&self, x: &mut CpuMat<F>, a: f32) -> BResult<()> {
        self.tick();
        let a = F::of(a);
        kernels::map1(slice_mut(x)?, |v| a * v);
        Ok(())
    }

    fn leaky_relu(&self, out: &mut CpuMat<F>, u: &CpuMat<F>, alpha: f32) -> BResult<()> {
        shape::leaky_relu(self, out, u)?;
        self.tick();
        let al = F::of(alpha);
        kernels::map2(slice_mut(out)?, slice(u)?, |_, u| sigma(u, al));
        Ok(())
    }

    fn mul_leaky_deriv(&self, d: &mut CpuMat<F>, u: &CpuMat<F>, alpha: f32) -> BResult<()> {
        shape::mul_leaky_deriv(self, d, u)?;
        self.tick();
        let al = F::of(alpha);
        kernels::map2(slice_mut(d)?, slice(u)?, |d, u| d * dsigma(u, al));
        Ok(())
    }

    fn constraint_residual(
        &self,
        u: &CpuMat<F>,
        v: &CpuMat<F>,
        lam: &CpuMat<F>,
        r: Residual,
        gu: &mut CpuMat<F>,
        gv: &mut CpuMat<F>,
        slot: Slot,
    ) -> BResult<()> {
        shape::constraint_residual(self, u, v, lam, gu, gv, slot)?;
        self.tick();
        let (us, vs, ls) = (slice(u)?, slice(v)?, slice(lam)?);
        let (gu, gv) = (slice_mut(gu)?, slice_mut(gv)?);
        let sums = constraint::constraint_residual([us, vs, ls], scalars(r), [gu, gv]);
        self.set(slot, &sums)
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
        let sums = constraint::constraint_value(slice(u)?, slice(v)?, slice(lam)?, F::of(alpha));
        self.set(slot, &sums)
    }

    fn step_value(
        &self,
        out: &mut CpuMat<F>,
        grad: &mut CpuMat<F>,
        s: VStep<'_, CpuMat<F>>,
        r: Residual,
        slot: Slot,
    ) -> BResult<()> {
        shape::step_value(self, out, grad, &s, &r, slot)?;
        self.tick();
        let step = step_operands(&s, r)?;
        let sums = constraint::step_value(slice_mut(out)?, slice_mut(grad)?, step);
        self.set(slot, &sums)
    }

    fn step_value_ladder(
        &self,
        outs: [TrialOut<'_, CpuMat<F>>; LADDER],
        steps: [VStep<'_, CpuMat<F>>; LADDER],
        r: Residual,
        dir_sq: Option<Slot>,
    ) -> BResult<()> {
        shape::step_value_ladder(self, &outs, &steps, &r, dir_sq)?;
        self.tick();
        let ([o0, o1], [s0, s1]) = (outs, steps);
        let step = step_operands(&s0, r)?;
        let outs = [
            (slice_mut(o0.out)?, slice_mut(o0.grad)?),
            (slice_mut(o1.out)?, slice_mut(o1.grad)?),
        ];
        let a = [F::of(s0.a), F::of(s1.a)];
        let (sums, sq) = constraint::step_value_ladder(outs, step, a, dir_sq.is_some());
        self.set(o0.slot, &sums[0])?;
        self.set(o1.slot, &sums[1])?;
        match dir_sq {
            Some(slot) => self.set(slot, &[sq]),
            None => Ok(()),
        }
    }

    fn multiplier_update(
        &self,
        lam: &mut CpuMat<F>,
        u: &CpuMat<F>,
        v: &CpuMat<F>,
        rho: f32,
        alpha: f32,
    ) -> BResult<()> {
        shape::multiplier_update(self, lam, u, v)?;
        self.tick();
        let (rho, al) = (F::of(rho), F::of(alpha));
        kernels::map3(slice_mut(lam)?, slice(u)?, slice(v)?, |l, u, v| {
            l + rho * (v - sigma(u, al))
        });
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
        self.tick();
        self.set(slot, &group::prox(w, thresh, axis, shrink)?)
    }

    fn prox_step(
        &self,
        (w_new, b_new, shrink): (&mut CpuMat<F>, &mut CpuMat<F>, &mut CpuMat<F>),
        (w, b): (&CpuMat<F>, &CpuMat<F>),
        (gw, gb): (&CpuMat<F>, &CpuMat<F>),
        (t, thresh): (f32, f32),
        axis: Axis,
        slot: Slot,
    ) -> BResult<()> {
        shape::prox_step(self, (w_new, b_new, shrink), (w, b), (gw, gb), axis, slot)?;
        self.tick();
        // axpby's expression (a = 1, b = −t), the group prox, axpby for b, then
        // step_diff's sums of W and of b (added as the solver added them).
        let (one, step) = (F::of(1.0), F::of(-t));
        let axpby = |x: F, y: F| one * x + step * y;
        kernels::map3(slice_mut(w_new)?, slice(w)?, slice(gw)?, |_, x, y| {
            axpby(x, y)
        });
        let [norms, zeros] = group::prox(w_new, thresh, axis, shrink)?;
        kernels::map3(slice_mut(b_new)?, slice(b)?, slice(gb)?, |_, x, y| {
            axpby(x, y)
        });
        let [gdot_w, d2_w] = kernels::diff_sums(slice(w_new)?, slice(w)?, slice(gw)?);
        let [gdot_b, d2_b] = kernels::diff_sums(slice(b_new)?, slice(b)?, slice(gb)?);
        self.set(slot, &[norms, zeros, gdot_w + gdot_b, d2_w + d2_b])
    }

    fn group_norms(&self, w: &CpuMat<F>, axis: Axis, slot: Slot) -> BResult<()> {
        shape::group_norms(slot)?;
        self.tick();
        self.set(slot, &group::norms(w, axis)?)
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
        self.tick();
        let w = WTrial {
            u,
            b_old,
            b_new,
            bmat,
            shrink,
            t,
        };
        constraint::w_trial_preact(slice_mut(out)?, slice(u)?, slice(bmat)?, trial_rows(&w)?);
        Ok(())
    }

    fn w_trial_value(
        &self,
        out: &mut CpuMat<F>,
        grad: &mut CpuMat<F>,
        w: WTrial<'_, CpuMat<F>>,
        (v, lam): (&CpuMat<F>, &CpuMat<F>),
        r: Residual,
        slot: Slot,
    ) -> BResult<()> {
        shape::w_trial_value(self, (out, grad), &w, (v, lam), &r, slot)?;
        self.tick();
        let rows = trial_rows(&w)?;
        let (us, bs) = (slice(w.u)?, slice(w.bmat)?);
        let vl = (slice(v)?, slice(lam)?);
        let (o, g) = (slice_mut(out)?, slice_mut(grad)?);
        let sums = constraint::w_trial_value(o, g, us, bs, rows, vl, scalars(r));
        self.set(slot, &sums)
    }

    fn w_trial_value_ladder(
        &self,
        outs: [TrialOut<'_, CpuMat<F>>; LADDER],
        trials: [WTrial<'_, CpuMat<F>>; LADDER],
        (v, lam): (&CpuMat<F>, &CpuMat<F>),
        r: Residual,
    ) -> BResult<()> {
        shape::w_trial_value_ladder(self, &outs, &trials, (v, lam), &r)?;
        self.tick();
        let ([o0, o1], [w0, w1]) = (outs, trials);
        let rows = [trial_rows(&w0)?, trial_rows(&w1)?];
        let (us, bs) = (slice(w0.u)?, slice(w0.bmat)?);
        let vl = (slice(v)?, slice(lam)?);
        let outs = [
            (slice_mut(o0.out)?, slice_mut(o0.grad)?),
            (slice_mut(o1.out)?, slice_mut(o1.grad)?),
        ];
        let sums = constraint::w_trial_value_ladder(outs, us, bs, rows, vl, scalars(r));
        self.set(o0.slot, &sums[0])?;
        self.set(o1.slot, &sums[1])
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
        self.set(slot, &[loss_and_grad(&yhat.0, &y.0, kind, Some(g.arr()))])
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
        let acc = kernels::dot(slice(a)?, slice(b)?);
        self.set(slot, &[acc])
    }

    fn step_diff(
        &self,
        diff: &mut CpuMat<F>,
        new: &CpuMat<F>,
        old: &CpuMat<F>,
        g: &CpuMat<F>,
        slot: Slot,
    ) -> BResult<()> {
        shape::step_diff(self, diff, new, old, g, slot)?;
        self.tick();
        // axpby's expression with a = 1, b = −1, then dot's and sq_norm's sums of it, which
        // `diff_sums` takes in one pass (bit for bit).
        let (a, b) = (F::of(1.0), F::of(-1.0));
        kernels::map3(slice_mut(diff)?, slice(new)?, slice(old)?, |_, x, y| {
            a * x + b * y
        });
        self.set(
            slot,
            &kernels::diff_sums(slice(new)?, slice(old)?, slice(g)?),
        )
    }

    fn sq_norm(&self, a: &CpuMat<F>, slot: Slot) -> BResult<()> {
        shape::sq_norm(slot)?;
        self.tick();
        self.set(slot, &[kernels::sq_sum(slice(a)?)])
    }

    fn read_slots(&self, slots: &[Slot]) -> BResult<Vec<f64>> {
        shape::read_slots(slots)?;
        self.reads.set(self.reads.get() + 1);
        let s = self.slots.borrow();
        Ok(slots.iter().map(|&i| s[i]).collect())
    }

    fn ladder_select(
        &self,
        pairs: &mut [(&mut CpuMat<F>, [&CpuMat<F>; LADDER])],
        test: &LadderTest,
    ) -> BResult<()> {
        shape::ladder_select(self, pairs, test)?;
        self.tick();
        let d = {
            let s = self.slots.borrow();
            test.decide(|i| s[i])
        };
        let report = [d.choice as f64, d.map2, d.values[0], d.values[1]];
        self.set(test.report, &report)?;
        if d.choice < LADDER {
            for (dst, cands) in pairs.iter_mut() {
                slice_mut(dst)?.copy_from_slice(slice(cands[d.choice])?);
            }
        }
        Ok(())
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
        Zip::from(w.arr())
            .and(&g.0)
            .and(m.arr())
            .and(v.arr())
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
