//! The [`Backend`] operations of the GPU backend. Each one checks its contract
//! (`backend/shape.rs`, shared with the CPU backend) and then records its kernels; the
//! walkers that turn an operation into dispatches over column segments live one file per
//! shader file: `elementwise` (also Adam of `optim.wgsl`), `reduce` (also the constraint
//! residual of `residual.wgsl`), `loss`, `group`, `matmul`, `gather`. Memory operations
//! are in `storage.rs`, readbacks in `recorder.rs`.

mod elementwise;
mod gather;
mod group;
mod ladder;
mod loss;
mod matmul;
mod reduce;

use super::params::Params;
use super::pipelines::K;
use super::storage::GpuMat;
use super::{BResult, GpuBackend};
use crate::backend::ladder::LadderTest;
use crate::backend::{
    prox_step_ladder_in_turn, shape, step_value_ladder_in_turn, w_trial_value_ladder_in_turn, Axis,
    Backend, Counters, LossKind, Moved, Residual, Slot, TrialOut, VStep, WTrial, LADDER,
};
use ndarray::{Array2, ArrayView2};
use reduce::Sums;

/// Workgroup width of the 1-D/2-D kernels.
const WG: usize = 256;
/// Matmul output tile.
const TILE: usize = 64;

/// Grid of a grid-stride kernel over a `rows × len` segment, capped at `cx × cy`.
fn grid(len: usize, rows: usize, cx: usize, cy: usize) -> [u32; 3] {
    [len.div_ceil(WG).min(cx) as u32, rows.min(cy) as u32, 1]
}

impl Backend for GpuBackend {
    type Mat = GpuMat;

    fn name(&self) -> String {
        format!(
            "GPU {} ({:?}, {})",
            self.info.name, self.info.backend, self.info.driver
        )
    }

    fn zeros(&self, rows: usize, cols: usize) -> BResult<GpuMat> {
        self.alloc("zeros", rows, cols, None)
    }

    fn upload(&self, host: ArrayView2<f32>) -> BResult<GpuMat> {
        let (r, c) = host.dim();
        self.alloc("upload", r, c, Some(&host))
    }

    fn write(&self, dst: &mut GpuMat, host: ArrayView2<f32>) -> BResult<()> {
        shape::write(self, dst, host.dim())?;
        self.write_host(dst, host)
    }

    fn download(&self, m: &GpuMat) -> BResult<Array2<f32>> {
        self.download_chunks(m)
    }

    fn shape(&self, m: &GpuMat) -> (usize, usize) {
        (m.rows, m.cols)
    }

    fn copy(&self, dst: &mut GpuMat, src: &GpuMat) -> BResult<()> {
        shape::copy(self, dst, src)?;
        self.copy_chunks(dst, src)
    }

    fn fill(&self, dst: &mut GpuMat, value: f32) -> BResult<()> {
        self.elementwise(K::Fill, &[dst], &[], Params::fill(value))
    }

    fn gather_cols(&self, out: &mut GpuMat, src: &GpuMat, idx: &[u32]) -> BResult<()> {
        shape::gather_cols(self, out, src, idx)?;
        self.gather(out, src, idx)
    }

    fn matmul_nn(
        &self,
        c: &mut GpuMat,
        a: &GpuMat,
        b: &GpuMat,
        bias: Option<&GpuMat>,
        beta: f32,
    ) -> BResult<()> {
        shape::matmul_nn(self, c, a, b, bias)?;
        self.mm_nn(c, a, b, bias, beta)
    }

    fn matmul_nt(&self, c: &mut GpuMat, a: &GpuMat, b: &GpuMat, beta: f32) -> BResult<()> {
        shape::matmul_nt(self, c, a, b)?;
        self.mm_nt(c, a, b, beta, None)
    }

    fn matmul_tn(&self, c: &mut GpuMat, a: &GpuMat, b: &GpuMat, beta: f32) -> BResult<()> {
        shape::matmul_tn(self, c, a, b)?;
        self.mm_tn(c, a, b, beta)
    }

    fn row_sum(&self, out: &mut GpuMat, a: &GpuMat, beta: f32) -> BResult<()> {
        shape::row_sum(self, out, a)?;
        self.row_sums(out, a, beta)
    }

    fn weight_grads(
        &self,
        gw: &mut GpuMat,
        gb: &mut GpuMat,
        g: &GpuMat,
        input: &GpuMat,
    ) -> BResult<()> {
        shape::matmul_nt(self, gw, g, input)?;
        shape::row_sum(self, gb, g)?;
        self.mm_nt(gw, g, input, 0.0, Some(gb))
    }

    fn axpby(&self, out: &mut GpuMat, a: f32, x: &GpuMat, b: f32, y: &GpuMat) -> BResult<()> {
        shape::axpby(self, out, x, y)?;
        self.elementwise(K::Axpby, &[out, x, y], &[], Params::axpby(a, b))
    }

    fn axpy(&self, y: &mut GpuMat, a: f32, x: &GpuMat) -> BResult<()> {
        shape::axpy(self, y, x)?;
        self.elementwise(K::Axpy, &[y, x], &[], Params::axpy(a))
    }

    fn scale(&self, x: &mut GpuMat, a: f32) -> BResult<()> {
        self.elementwise(K::Scale, &[x], &[], Params::scale(a))
    }

    fn leaky_relu(&self, out: &mut GpuMat, u: &GpuMat, alpha: f32) -> BResult<()> {
        shape::leaky_relu(self, out, u)?;
        self.elementwise(K::LeakyRelu, &[out, u], &[], Params::leaky(alpha))
    }

    fn mul_leaky_deriv(&self, d: &mut GpuMat, u: &GpuMat, alpha: f32) -> BResult<()> {
        shape::mul_leaky_deriv(self, d, u)?;
        self.elementwise(K::MulLeakyDeriv, &[d, u], &[], Params::leaky(alpha))
    }

    fn constraint_residual(
        &self,
        u: &GpuMat,
        v: &GpuMat,
        lam: &GpuMat,
        r: Residual,
        gu: &mut GpuMat,
        gv: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        shape::constraint_residual(self, u, v, lam, gu, gv, slot)?;
        self.reduce(
            K::Residual,
            &[u, v, lam, gu, gv],
            Params::residual(r),
            Sums::at(slot, 3),
            false,
        )
    }

    fn constraint_value(
        &self,
        u: &GpuMat,
        v: &GpuMat,
        lam: &GpuMat,
        alpha: f32,
        slot: Slot,
    ) -> BResult<()> {
        shape::constraint_value(self, u, v, lam, slot)?;
        self.reduce(
            K::ConstraintValue,
            &[u, v, lam],
            Params::constraint_value(alpha),
            Sums::at(slot, 3),
            false,
        )
    }

    fn step_value(
        &self,
        out: &mut GpuMat,
        grad: &mut GpuMat,
        s: VStep<'_, GpuMat>,
        r: Residual,
        slot: Slot,
    ) -> BResult<()> {
        shape::step_value(self, out, grad, &s, &r, slot)?;
        self.reduce(
            K::StepValue,
            &[s.base, s.other, s.lam, out, s.dir, grad],
            Params::step_value(s.a, s.moved == Moved::V, r),
            Sums::at(slot, 3),
            false,
        )
    }

    fn step_value_ladder(
        &self,
        outs: [TrialOut<'_, GpuMat>; LADDER],
        steps: [VStep<'_, GpuMat>; LADDER],
        r: Residual,
        dir_sq: Option<Slot>,
    ) -> BResult<()> {
        let one_chunk = |m: &GpuMat| m.chunks.len() == 1;
        let shared = [steps[0].base, steps[0].other, steps[0].lam, steps[0].dir];
        let written = outs.iter().all(|o| one_chunk(o.out) && one_chunk(o.grad));
        if !(shared.into_iter().all(one_chunk) && written) {
            // Chunked operands: the candidates one by one.
            return step_value_ladder_in_turn(self, outs, steps, r, dir_sq);
        }
        shape::step_value_ladder(self, &outs, &steps, &r, dir_sq)?;
        // `‖dir‖²` is the kernel's fourth sum of candidate 0: where the caller wants it
        // right after that candidate's three (and candidate 1's are elsewhere), it costs no
        // dispatch of its own.
        let fourth = outs[0].slot + 3;
        let fused = dir_sq == Some(fourth) && !(outs[1].slot..outs[1].slot + 3).contains(&fourth);
        if let (Some(slot), false) = (dir_sq, fused) {
            self.sq_norm(steps[0].dir, slot)?;
        }
        let ([o0, o1], [s0, s1]) = (outs, steps);
        let mats = [
            s0.base, s0.other, s0.lam, &*o0.out, s0.dir, &*o0.grad, &*o1.out, &*o1.grad,
        ];
        let p = Params::step_value_pair([s0.a, s1.a], s0.moved == Moved::V, r);
        let sums = [
            Sums::at(o0.slot, if fused { 4 } else { 3 }),
            Sums::at(o1.slot, 3),
        ];
        self.reduce_pair(K::StepValuePair, &mats, p, sums)
    }

    fn multiplier_update(
        &self,
        lam: &mut GpuMat,
        u: &GpuMat,
        v: &GpuMat,
        rho: f32,
        alpha: f32,
    ) -> BResult<()> {
        shape::multiplier_update(self, lam, u, v)?;
        let p = Params::multiplier_update(rho, alpha);
        self.elementwise(K::MultiplierUpdate, &[lam, u, v], &[], p)
    }

    fn group_prox(
        &self,
        w: &mut GpuMat,
        thresh: f32,
        axis: Axis,
        shrink: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        shape::group_prox(self, w, axis, shrink, slot)?;
        self.prox_groups(w, thresh, axis, shrink, slot)
    }

    fn prox_step(
        &self,
        (w_new, b_new, shrink): (&mut GpuMat, &mut GpuMat, &mut GpuMat),
        (w, b): (&GpuMat, &GpuMat),
        (gw, gb): (&GpuMat, &GpuMat),
        (t, thresh): (f32, f32),
        axis: Axis,
        slot: Slot,
    ) -> BResult<()> {
        shape::prox_step(self, (w_new, b_new, shrink), (w, b), (gw, gb), axis, slot)?;
        let all = [&*w_new, &*b_new, &*shrink, w, b, gw, gb];
        if axis == Axis::Rows && all.iter().all(|m| m.chunks.len() == 1) {
            let new = (&*w_new, &*b_new);
            return self.prox_step_rows(new, shrink, (w, b), (gw, gb), (t, thresh), slot);
        }
        // Column groups or chunked matrices: the operations in turn, W's and b's Δ sums
        // into one pair of slots.
        self.axpby(w_new, 1.0, w, -t, gw)?;
        self.group_prox(w_new, thresh, axis, shrink, slot)?;
        self.axpby(b_new, 1.0, b, -t, gb)?;
        self.diff_sums(&[[&*w_new, w, gw], [&*b_new, b, gb]], slot + 2)
    }

    fn prox_step_ladder(
        &self,
        new: [(&mut GpuMat, &mut GpuMat, &mut GpuMat); LADDER],
        (w, b): (&GpuMat, &GpuMat),
        (gw, gb): (&GpuMat, &GpuMat),
        t_thresh: [(f32, f32); LADDER],
        axis: Axis,
        slots: [Slot; LADDER],
    ) -> BResult<()> {
        for ((nw, nb, ns), &slot) in new.iter().zip(&slots) {
            shape::prox_step(self, (nw, nb, ns), (w, b), (gw, gb), axis, slot)?;
        }
        let one = |m: &GpuMat| m.chunks.len() == 1;
        let shared = [w, b, gw, gb].into_iter().all(one);
        let written = new.iter().all(|(a, b, c)| one(a) && one(b) && one(c));
        if axis == Axis::Rows && shared && written {
            let new = new.map(|(a, b, c)| (&*a, &*b, &*c));
            return self.prox_step_rows_pair(new, (w, b), (gw, gb), t_thresh, slots);
        }
        // Column groups or chunked matrices: the candidates one by one.
        prox_step_ladder_in_turn(self, new, (w, b), (gw, gb), t_thresh, axis, slots)
    }

    fn group_norms(&self, w: &GpuMat, axis: Axis, slot: Slot) -> BResult<()> {
        shape::group_norms(slot)?;
        self.norm_groups(w, axis, slot)
    }

    fn w_trial_preact(
        &self,
        out: &mut GpuMat,
        u: &GpuMat,
        b_old: &GpuMat,
        b_new: &GpuMat,
        bmat: &GpuMat,
        shrink: &GpuMat,
        t: f32,
    ) -> BResult<()> {
        shape::w_trial_preact(self, out, u, b_old, b_new, bmat, shrink)?;
        self.elementwise(
            K::WTrialPreact,
            &[out, u, bmat],
            &[b_old, b_new, shrink],
            Params::w_trial(t),
        )
    }

    fn w_trial_value(
        &self,
        out: &mut GpuMat,
        grad: &mut GpuMat,
        w: WTrial<'_, GpuMat>,
        (v, lam): (&GpuMat, &GpuMat),
        r: Residual,
        slot: Slot,
    ) -> BResult<()> {
        shape::w_trial_value(self, (out, grad), &w, (v, lam), &r, slot)?;
        self.reduce_rows(
            K::WTrialValue,
            &[w.u, v, lam, out, w.bmat, grad],
            &[w.b_old, w.b_new, w.shrink],
            Params::w_trial_value(w.t, r),
            Sums::at(slot, 3),
            false,
        )
    }

    fn w_trial_value_ladder(
        &self,
        outs: [TrialOut<'_, GpuMat>; LADDER],
        trials: [WTrial<'_, GpuMat>; LADDER],
        v_lam: (&GpuMat, &GpuMat),
        r: Residual,
    ) -> BResult<()> {
        let one_chunk = |m: &GpuMat| m.chunks.len() == 1;
        let [w0, w1] = &trials;
        let shared = [w0.u, w0.bmat, v_lam.0, v_lam.1];
        let written = outs.iter().all(|o| one_chunk(o.out) && one_chunk(o.grad));
        if !(shared.into_iter().all(one_chunk) && written) {
            // Chunked operands: the candidates one by one.
            return w_trial_value_ladder_in_turn(self, outs, trials, v_lam, r);
        }
        shape::w_trial_value_ladder(self, &outs, &trials, v_lam, &r)?;
        let [o0, o1] = outs;
        let mats = [
            w0.u, v_lam.0, v_lam.1, &*o0.out, w0.bmat, &*o0.grad, &*o1.out, &*o1.grad, w0.b_old,
            w0.b_new, w0.shrink, w1.b_new, w1.shrink,
        ];
        let p = Params::w_trial_value_pair([w0.t, w1.t], r);
        let sums = [Sums::at(o0.slot, 3), Sums::at(o1.slot, 3)];
        self.reduce_pair(K::WTrialValuePair, &mats, p, sums)
    }

    fn loss(&self, yhat: &GpuMat, y: &GpuMat, kind: LossKind, slot: Slot) -> BResult<()> {
        shape::loss(self, yhat, y, slot)?;
        self.loss_reduce(&[yhat, y], kind, slot)
    }

    fn loss_grad(
        &self,
        yhat: &GpuMat,
        y: &GpuMat,
        kind: LossKind,
        g: &mut GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        shape::loss_grad(self, yhat, y, g, slot)?;
        self.loss_reduce(&[yhat, y, g], kind, slot)
    }

    fn w_trial_loss(
        &self,
        out: &mut GpuMat,
        w: WTrial<'_, GpuMat>,
        y: &GpuMat,
        kind: LossKind,
        slot: Slot,
    ) -> BResult<()> {
        shape::w_trial_preact(self, out, w.u, w.b_old, w.b_new, w.bmat, w.shrink)?;
        shape::loss(self, out, y, slot)?;
        let kernels = (K::WTrialLossSq, K::WTrialLossCe);
        let rows_of = [w.b_old, w.b_new, w.shrink];
        self.trial_loss_reduce(kernels, kind, &[w.u, y, out, w.bmat], &rows_of, w.t, slot)
    }

    fn step_loss(
        &self,
        out: &mut GpuMat,
        (base, a, dir): (&GpuMat, f32, &GpuMat),
        y: &GpuMat,
        kind: LossKind,
        slot: Slot,
    ) -> BResult<()> {
        shape::axpby(self, out, base, dir)?;
        shape::loss(self, out, y, slot)?;
        let kernels = (K::StepLossSq, K::StepLossCe);
        self.trial_loss_reduce(kernels, kind, &[base, y, out, dir], &[], a, slot)
    }

    fn count_errors(&self, yhat: &GpuMat, y: &GpuMat, slot: Slot) -> BResult<()> {
        shape::count_errors(self, yhat, y, slot)?;
        let sums = Sums::at(slot, 1);
        self.reduce(K::CountErrors, &[yhat, y], Params::plain(), sums, true)
    }

    fn dot(&self, a: &GpuMat, b: &GpuMat, slot: Slot) -> BResult<()> {
        shape::dot(self, a, b, slot)?;
        self.reduce(K::Dot, &[a, b], Params::plain(), Sums::at(slot, 1), false)
    }

    fn step_diff(
        &self,
        diff: &mut GpuMat,
        new: &GpuMat,
        old: &GpuMat,
        g: &GpuMat,
        slot: Slot,
    ) -> BResult<()> {
        shape::step_diff(self, diff, new, old, g, slot)?;
        let mats = [new, old, &*diff, g];
        self.reduce(
            K::StepDiff,
            &mats,
            Params::plain(),
            Sums::at(slot, 2),
            false,
        )
    }

    fn sq_norm(&self, a: &GpuMat, slot: Slot) -> BResult<()> {
        shape::sq_norm(slot)?;
        self.reduce(K::SqNorm, &[a], Params::plain(), Sums::at(slot, 1), false)
    }

    fn read_slots(&self, slots: &[Slot]) -> BResult<Vec<f64>> {
        shape::read_slots(slots)?;
        self.read_slot_values(slots)
    }

    fn ladder_select(
        &self,
        pairs: &mut [(&mut GpuMat, [&GpuMat; LADDER])],
        test: &LadderTest,
    ) -> BResult<()> {
        shape::ladder_select(self, pairs, test)?;
        self.ladder(pairs, test)
    }

    fn prefers_recorded_sweeps(&self) -> bool {
        true
    }

    fn adam_update(
        &self,
        w: &mut GpuMat,
        g: &GpuMat,
        m: &mut GpuMat,
        v: &mut GpuMat,
        lr: f32,
        beta1: f32,
        beta2: f32,
        eps: f32,
        step: u32,
    ) -> BResult<()> {
        shape::adam_update(self, w, g, m, v)?;
        let p = Params::adam(lr, beta1, beta2, eps, step);
        self.elementwise(K::Adam, &[w, g, m, v], &[], p)
    }

    fn sync(&self) -> BResult<()> {
        self.submit_and_wait()
    }

    fn counters(&self) -> Counters {
        self.counters_now()
    }
}

#[allow(dead_code)]
fn _assert_send_sync() {
    fn is<T: Send + Sync>() {}
    is::<GpuBackend>();
    is::<GpuMat>();
}
