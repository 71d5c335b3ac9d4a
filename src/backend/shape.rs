//! The argument contract of every [`Backend`] operation, in one place. Both backends call
//! the contract of an operation before doing any work, so the same misuse gives the same
//! [`BackendError::Shape`] (same `op`, same message) on the CPU and on the GPU, and a failed
//! check leaves every output untouched.
//!
//! A contract checks what the trait documents: operand shapes, gather indices, and that the
//! scalar slots an operation writes or reads lie in `0..NUM_SLOTS`. Operations on a single
//! matrix with no slot (`zeros`, `upload`, `download`, `fill`, `scale`) have none. Limits
//! of one device (a column too tall for a GPU buffer) are that backend's own errors.

use super::{
    Axis, BResult, Backend, BackendError, Grads, Residual, Slot, TrialOut, VStep, WTrial, LADDER,
    NUM_SLOTS,
};
use std::ptr;

type Dims = (usize, usize);

fn err(op: &str, msg: String) -> BackendError {
    BackendError::Shape { op: op.into(), msg }
}

fn show((r, c): Dims) -> String {
    format!("{r}×{c}")
}

/// Operand `name` of `op` must be `want`.
fn expect(op: &str, name: &str, got: Dims, want: Dims) -> BResult<()> {
    if got == want {
        Ok(())
    } else {
        Err(err(
            op,
            format!("{name} is {}, expected {}", show(got), show(want)),
        ))
    }
}

/// `op` writes the `n` slots `slot..slot + n`.
fn slots(op: &str, slot: Slot, n: usize) -> BResult<()> {
    let end = slot.saturating_add(n);
    if end <= NUM_SLOTS {
        Ok(())
    } else if n == 1 {
        Err(err(
            op,
            format!("slot {slot} out of range (0..{NUM_SLOTS})"),
        ))
    } else {
        Err(err(
            op,
            format!("slots {slot}..{end} out of range (0..{NUM_SLOTS})"),
        ))
    }
}

/// Every named operand has the shape of the first one.
fn all_like<B: Backend + ?Sized>(
    be: &B,
    op: &str,
    like: &B::Mat,
    mats: &[(&str, &B::Mat)],
) -> BResult<()> {
    let want = be.shape(like);
    mats.iter()
        .try_for_each(|&(name, m)| expect(op, name, be.shape(m), want))
}

/// [`Backend::write`]: the host array has the device matrix's shape.
pub fn write<B: Backend + ?Sized>(be: &B, dst: &B::Mat, host: Dims) -> BResult<()> {
    expect("write", "host", host, be.shape(dst))
}

/// [`Backend::copy`]: `dst` has `src`'s shape.
pub fn copy<B: Backend + ?Sized>(be: &B, dst: &B::Mat, src: &B::Mat) -> BResult<()> {
    all_like(be, "copy", src, &[("dst", dst)])
}

/// [`Backend::gather_cols`]: `out` is `rows(src) × idx.len()`, every index a column of `src`.
pub fn gather_cols<B: Backend + ?Sized>(
    be: &B,
    out: &B::Mat,
    src: &B::Mat,
    idx: &[u32],
) -> BResult<()> {
    let op = "gather_cols";
    let (rows, cols) = be.shape(src);
    expect(op, "out", be.shape(out), (rows, idx.len()))?;
    match idx.iter().find(|&&j| j as usize >= cols) {
        Some(bad) => Err(err(
            op,
            format!("index {bad} out of range for {cols} columns"),
        )),
        None => Ok(()),
    }
}

/// The three products `A·B`, `A·Bᵀ`, `Aᵀ·B`: inner dimensions agree and `C` is the product's
/// shape. `ta`/`tb`: the operand enters transposed.
fn product<B: Backend + ?Sized>(
    be: &B,
    op: &str,
    (c, a, b): (&B::Mat, &B::Mat, &B::Mat),
    ta: bool,
    tb: bool,
) -> BResult<()> {
    let (ad, bd, cd) = (be.shape(a), be.shape(b), be.shape(c));
    let ((m, k), (k2, n)) = (
        if ta { (ad.1, ad.0) } else { ad },
        if tb { (bd.1, bd.0) } else { bd },
    );
    if k == k2 && cd == (m, n) {
        return Ok(());
    }
    let side = |name: &str, d: Dims, t: bool| {
        if t {
            format!("{name}ᵀ ({})", show(d))
        } else {
            format!("{name} {}", show(d))
        }
    };
    Err(err(
        op,
        format!(
            "{} · {} → C {}",
            side("A", ad, ta),
            side("B", bd, tb),
            show(cd)
        ),
    ))
}

/// [`Backend::matmul_nn`]: `C = A·B` shapes; `bias` is `rows(C) × 1`.
pub fn matmul_nn<B: Backend + ?Sized>(
    be: &B,
    c: &B::Mat,
    a: &B::Mat,
    b: &B::Mat,
    bias: Option<&B::Mat>,
) -> BResult<()> {
    let op = "matmul_nn";
    product(be, op, (c, a, b), false, false)?;
    match bias {
        Some(bv) => expect(op, "bias", be.shape(bv), (be.shape(a).0, 1)),
        None => Ok(()),
    }
}

/// [`Backend::matmul_nt`]: `C = A·Bᵀ` shapes.
pub fn matmul_nt<B: Backend + ?Sized>(be: &B, c: &B::Mat, a: &B::Mat, b: &B::Mat) -> BResult<()> {
    product(be, "matmul_nt", (c, a, b), false, true)
}

/// [`Backend::matmul_tn`]: `C = Aᵀ·B` shapes.
pub fn matmul_tn<B: Backend + ?Sized>(be: &B, c: &B::Mat, a: &B::Mat, b: &B::Mat) -> BResult<()> {
    product(be, "matmul_tn", (c, a, b), true, false)
}

/// [`Backend::row_sum`]: `out` is `rows(a) × 1`.
pub fn row_sum<B: Backend + ?Sized>(be: &B, out: &B::Mat, a: &B::Mat) -> BResult<()> {
    expect("row_sum", "out", be.shape(out), (be.shape(a).0, 1))
}

/// [`Backend::axpby`]: `y` and `out` have `x`'s shape.
pub fn axpby<B: Backend + ?Sized>(be: &B, out: &B::Mat, x: &B::Mat, y: &B::Mat) -> BResult<()> {
    all_like(be, "axpby", x, &[("y", y), ("out", out)])
}

/// [`Backend::axpy`]: `y` has `x`'s shape.
pub fn axpy<B: Backend + ?Sized>(be: &B, y: &B::Mat, x: &B::Mat) -> BResult<()> {
    all_like(be, "axpy", x, &[("y", y)])
}

/// [`Backend::leaky_relu`]: `out` has `u`'s shape.
pub fn leaky_relu<B: Backend + ?Sized>(be: &B, out: &B::Mat, u: &B::Mat) -> BResult<()> {
    all_like(be, "leaky_relu", u, &[("out", out)])
}

/// [`Backend::mul_leaky_deriv`]: `d` has `u`'s shape.
pub fn mul_leaky_deriv<B: Backend + ?Sized>(be: &B, d: &B::Mat, u: &B::Mat) -> BResult<()> {
    all_like(be, "mul_leaky_deriv", u, &[("d", d)])
}

/// [`Backend::constraint_residual`]: every matrix has `u`'s shape; slots `slot..slot + 3`.
#[allow(clippy::too_many_arguments)]
pub fn constraint_residual<B: Backend + ?Sized>(
    be: &B,
    u: &B::Mat,
    v: &B::Mat,
    lam: &B::Mat,
    gu: &B::Mat,
    gv: &B::Mat,
    slot: Slot,
) -> BResult<()> {
    let op = "constraint_residual";
    let mats = [("v", v), ("lam", lam), ("gu", gu), ("gv", gv)];
    all_like(be, op, u, &mats)?;
    slots(op, slot, 3)
}

/// [`Backend::constraint_value`]: `v`, `lam` have `u`'s shape; slots `slot..slot + 3`.
pub fn constraint_value<B: Backend + ?Sized>(
    be: &B,
    u: &B::Mat,
    v: &B::Mat,
    lam: &B::Mat,
    slot: Slot,
) -> BResult<()> {
    let op = "constraint_value";
    all_like(be, op, u, &[("v", v), ("lam", lam)])?;
    slots(op, slot, 3)
}

/// A trial's gradient: one matrix, so [`Grads::U`] or [`Grads::V`].
fn one_grad(op: &str, r: &Residual) -> BResult<()> {
    if r.write == Grads::Both {
        return Err(err(
            op,
            "a trial writes one gradient (Grads::U or Grads::V), got Both".into(),
        ));
    }
    Ok(())
}

/// [`Backend::step_value`]: every matrix has `base`'s shape; one gradient; slots
/// `slot..slot + 3`.
pub fn step_value<B: Backend + ?Sized>(
    be: &B,
    out: &B::Mat,
    grad: &B::Mat,
    s: &VStep<'_, B::Mat>,
    r: &Residual,
    slot: Slot,
) -> BResult<()> {
    let op = "step_value";
    let mats = [
        ("out", out),
        ("grad", grad),
        ("dir", s.dir),
        ("other", s.other),
        ("lam", s.lam),
    ];
    all_like(be, op, s.base, &mats)?;
    one_grad(op, r)?;
    slots(op, slot, 3)
}

/// [`Backend::step_value_ladder`]: each candidate as [`step_value`]; the candidates move
/// the same matrices (they differ in the step only); `dir_sq` one slot.
pub fn step_value_ladder<B: Backend + ?Sized>(
    be: &B,
    outs: &[TrialOut<'_, B::Mat>; LADDER],
    steps: &[VStep<'_, B::Mat>; LADDER],
    r: &Residual,
    dir_sq: Option<Slot>,
) -> BResult<()> {
    for (o, s) in outs.iter().zip(steps) {
        step_value(be, o.out, o.grad, s, r, o.slot)?;
    }
    let s0 = &steps[0];
    let same = steps.iter().all(|s| {
        ptr::eq(s.base, s0.base)
            && ptr::eq(s.dir, s0.dir)
            && ptr::eq(s.other, s0.other)
            && ptr::eq(s.lam, s0.lam)
            && s.moved == s0.moved
    });
    if !same {
        let msg = "the candidates must move the same matrices (only the step differs)";
        return Err(err("step_value_ladder", msg.into()));
    }
    dir_sq.map_or(Ok(()), |slot| slots("step_value_ladder", slot, 1))
}

/// [`Backend::w_trial_value_ladder`]: each candidate as [`w_trial_value`]; the candidates
/// share `u`, `b_old` and `bmat` (they differ in the step, its shrink factors and bias).
pub fn w_trial_value_ladder<B: Backend + ?Sized>(
    be: &B,
    outs: &[TrialOut<'_, B::Mat>; LADDER],
    trials: &[WTrial<'_, B::Mat>; LADDER],
    v_lam: (&B::Mat, &B::Mat),
    r: &Residual,
) -> BResult<()> {
    for (o, w) in outs.iter().zip(trials) {
        w_trial_value(be, (o.out, o.grad), w, v_lam, r, o.slot)?;
    }
    let w0 = &trials[0];
    let same = trials
        .iter()
        .all(|w| ptr::eq(w.u, w0.u) && ptr::eq(w.b_old, w0.b_old) && ptr::eq(w.bmat, w0.bmat));
    if !same {
        let msg = "the candidates must share u, b_old and bmat";
        return Err(err("w_trial_value_ladder", msg.into()));
    }
    Ok(())
}

/// [`Backend::step_diff`]: `diff`, `old`, `g` have `new`'s shape; slots `slot..slot + 2`.
pub fn step_diff<B: Backend + ?Sized>(
    be: &B,
    diff: &B::Mat,
    new: &B::Mat,
    old: &B::Mat,
    g: &B::Mat,
    slot: Slot,
) -> BResult<()> {
    let op = "step_diff";
    all_like(be, op, new, &[("diff", diff), ("old", old), ("g", g)])?;
    slots(op, slot, 2)
}

/// [`Backend::multiplier_update`]: `lam`, `v` have `u`'s shape.
pub fn multiplier_update<B: Backend + ?Sized>(
    be: &B,
    lam: &B::Mat,
    u: &B::Mat,
    v: &B::Mat,
) -> BResult<()> {
    all_like(be, "multiplier_update", u, &[("lam", lam), ("v", v)])
}

/// [`Backend::group_prox`]: `shrink` holds one factor per group (`rows×1` for row groups,
/// `1×cols` for column groups); slots `slot..slot + 2`.
pub fn group_prox<B: Backend + ?Sized>(
    be: &B,
    w: &B::Mat,
    axis: Axis,
    shrink: &B::Mat,
    slot: Slot,
) -> BResult<()> {
    shrink_like(be, "group_prox", w, axis, shrink)?;
    slots("group_prox", slot, 2)
}

/// `shrink` of `op` holds one factor per group of `w`: `rows×1` for row groups, `1×cols`
/// for column groups.
fn shrink_like<B: Backend + ?Sized>(
    be: &B,
    op: &str,
    w: &B::Mat,
    axis: Axis,
    shrink: &B::Mat,
) -> BResult<()> {
    let (rows, cols) = be.shape(w);
    let want = match axis {
        Axis::Rows => (rows, 1),
        Axis::Cols => (1, cols),
    };
    expect(op, "shrink", be.shape(shrink), want)
}

/// [`Backend::prox_step`]: `W`'s and `b`'s three matrices alike, `b` a `rows(W)×1`
/// column, `shrink` as for [`group_prox`]; slots `slot..slot + 4`.
pub fn prox_step<B: Backend + ?Sized>(
    be: &B,
    (w_new, b_new, shrink): (&B::Mat, &B::Mat, &B::Mat),
    (w, b): (&B::Mat, &B::Mat),
    (gw, gb): (&B::Mat, &B::Mat),
    axis: Axis,
    slot: Slot,
) -> BResult<()> {
    let op = "prox_step";
    all_like(be, op, w, &[("new W", w_new), ("W gradient", gw)])?;
    expect(op, "b", be.shape(b), (be.shape(w).0, 1))?;
    all_like(be, op, b, &[("new b", b_new), ("b gradient", gb)])?;
    shrink_like(be, op, w, axis, shrink)?;
    slots(op, slot, 4)
}

/// [`Backend::group_norms`]: slots `slot..slot + 2`.
pub fn group_norms(slot: Slot) -> BResult<()> {
    slots("group_norms", slot, 2)
}

/// [`Backend::w_trial_preact`]: `out`, `bmat` have `u`'s shape; `b_old`, `b_new`, `shrink`
/// are `rows(u) × 1`.
pub fn w_trial_preact<B: Backend + ?Sized>(
    be: &B,
    out: &B::Mat,
    u: &B::Mat,
    b_old: &B::Mat,
    b_new: &B::Mat,
    bmat: &B::Mat,
    shrink: &B::Mat,
) -> BResult<()> {
    let trial = WTrial {
        u,
        b_old,
        b_new,
        bmat,
        shrink,
        t: 0.0,
    };
    w_trial_operands(be, "w_trial_preact", out, &trial)
}

/// The operands of a W trial: `out`, `bmat` have `u`'s shape; `b_old`, `b_new`, `shrink`
/// are `rows(u) × 1`.
fn w_trial_operands<B: Backend + ?Sized>(
    be: &B,
    op: &str,
    out: &B::Mat,
    w: &WTrial<'_, B::Mat>,
) -> BResult<()> {
    all_like(be, op, w.u, &[("out", out), ("bmat", w.bmat)])?;
    let col = (be.shape(w.u).0, 1);
    [("b_old", w.b_old), ("b_new", w.b_new), ("shrink", w.shrink)]
        .iter()
        .try_for_each(|&(name, m)| expect(op, name, be.shape(m), col))
}

/// [`Backend::w_trial_value`]: the W trial's operands, `grad`, `v` and `lam` of `u`'s
/// shape; one gradient; slots `slot..slot + 3`.
pub fn w_trial_value<B: Backend + ?Sized>(
    be: &B,
    (out, grad): (&B::Mat, &B::Mat),
    trial: &WTrial<'_, B::Mat>,
    (v, lam): (&B::Mat, &B::Mat),
    r: &Residual,
    slot: Slot,
) -> BResult<()> {
    let op = "w_trial_value";
    w_trial_operands(be, op, out, trial)?;
    all_like(be, op, trial.u, &[("grad", grad), ("v", v), ("lam", lam)])?;
    one_grad(op, r)?;
    slots(op, slot, 3)
}

/// [`Backend::loss`]: `y` has `yhat`'s shape; slot `slot`.
pub fn loss<B: Backend + ?Sized>(be: &B, yhat: &B::Mat, y: &B::Mat, slot: Slot) -> BResult<()> {
    all_like(be, "loss", yhat, &[("y", y)])?;
    slots("loss", slot, 1)
}

/// [`Backend::loss_grad`]: `y`, `g` have `yhat`'s shape; slot `slot`.
pub fn loss_grad<B: Backend + ?Sized>(
    be: &B,
    yhat: &B::Mat,
    y: &B::Mat,
    g: &B::Mat,
    slot: Slot,
) -> BResult<()> {
    all_like(be, "loss_grad", yhat, &[("y", y), ("g", g)])?;
    slots("loss_grad", slot, 1)
}

/// [`Backend::count_errors`]: `y` has `yhat`'s shape; slot `slot`.
pub fn count_errors<B: Backend + ?Sized>(
    be: &B,
    yhat: &B::Mat,
    y: &B::Mat,
    slot: Slot,
) -> BResult<()> {
    all_like(be, "count_errors", yhat, &[("y", y)])?;
    slots("count_errors", slot, 1)
}

/// [`Backend::dot`]: `b` has `a`'s shape; slot `slot`.
pub fn dot<B: Backend + ?Sized>(be: &B, a: &B::Mat, b: &B::Mat, slot: Slot) -> BResult<()> {
    all_like(be, "dot", a, &[("b", b)])?;
    slots("dot", slot, 1)
}

/// [`Backend::sq_norm`]: slot `slot`.
pub fn sq_norm(slot: Slot) -> BResult<()> {
    slots("sq_norm", slot, 1)
}

/// [`Backend::ladder_select`]: each pair's candidates have its destination's shape; the
/// test's width is `1..=LADDER`, every slot it reads and its report are in range, and the
/// report is none of the slots it reads (every dispatch of a GPU decision reads them while
/// the first writes the report).
pub fn ladder_select<B: Backend + ?Sized>(
    be: &B,
    pairs: &[(&mut B::Mat, [&B::Mat; crate::backend::LADDER])],
    test: &crate::backend::ladder::LadderTest,
) -> BResult<()> {
    use crate::backend::ladder::REPORT_LEN;
    let op = "ladder_select";
    for (dst, cands) in pairs {
        all_like(
            be,
            op,
            dst,
            &[("candidate 0", cands[0]), ("candidate 1", cands[1])],
        )?;
    }
    if !(1..=crate::backend::LADDER).contains(&test.width) {
        return Err(err(
            op,
            format!(
                "width {} outside 1..={}",
                test.width,
                crate::backend::LADDER
            ),
        ));
    }
    slots(op, test.report, REPORT_LEN)?;
    let report = test.report..test.report + REPORT_LEN;
    for s in test.reads() {
        slots(op, s, 1)?;
        if report.contains(&s) {
            return Err(err(
                op,
                format!("slot {s} is read and also in the report {report:?}"),
            ));
        }
    }
    Ok(())
}

/// [`Backend::read_slots`]: every slot in range.
pub fn read_slots(list: &[Slot]) -> BResult<()> {
    list.iter().try_for_each(|&s| slots("read_slots", s, 1))
}

/// [`Backend::adam_update`]: `g`, `m`, `v` have `w`'s shape.
pub fn adam_update<B: Backend + ?Sized>(
    be: &B,
    w: &B::Mat,
    g: &B::Mat,
    m: &B::Mat,
    v: &B::Mat,
) -> BResult<()> {
    all_like(be, "adam_update", w, &[("g", g), ("m", m), ("v", v)])
}

#[cfg(test)]
mod tests;
