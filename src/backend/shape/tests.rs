//! The operation contracts' tests: each refuses a mismatched argument with the operation's name.

use crate::backend::cpu::CpuBackend;
use crate::backend::{
    Axis, Backend, BackendError, Grads, Moved, Residual, TrialOut, VStep, WTrial,
};
use ndarray::Array2;

fn shape_msg(r: Result<(), BackendError>) -> (String, String) {
    match r {
        Err(BackendError::Shape { op, msg }) => (op, msg),
        other => panic!("expected a shape error, got {other:?}"),
    }
}

#[test]
fn messages_name_the_operand_and_both_shapes() {
    let be = CpuBackend::<f32>::new();
    let a = be.zeros(3, 4).unwrap();
    let b = be.zeros(5, 6).unwrap();
    let mut c = be.zeros(3, 6).unwrap();
    let (op, msg) = shape_msg(be.matmul_tn(&mut c, &a, &b, 0.0));
    assert_eq!(
        (op.as_str(), msg.as_str()),
        ("matmul_tn", "Aᵀ (3×4) · B 5×6 → C 3×6")
    );
    let mut o = be.zeros(3, 4).unwrap();
    let (op, msg) = shape_msg(be.axpby(&mut o, 1.0, &a, 1.0, &b));
    assert_eq!(
        (op.as_str(), msg.as_str()),
        ("axpby", "y is 5×6, expected 3×4")
    );
    let (op, msg) = shape_msg(be.sq_norm(&a, 512));
    assert_eq!(
        (op.as_str(), msg.as_str()),
        ("sq_norm", "slot 512 out of range (0..512)")
    );
}

#[test]
fn a_failed_check_leaves_the_outputs_untouched() {
    let be = CpuBackend::<f32>::new();
    let ones = be.upload(Array2::from_elem((2, 3), 1.0f32).view()).unwrap();
    let mut gu = be.upload(Array2::from_elem((2, 3), 7.0f32).view()).unwrap();
    let mut gv = be.zeros(2, 3).unwrap();
    let k = Residual {
        rho: 1.0,
        alpha: 0.1,
        inv_n: 1.0,
        write: Grads::Both,
    };
    let r = be.constraint_residual(&ones, &ones, &ones, k, &mut gu, &mut gv, 510);
    let (op, msg) = shape_msg(r);
    assert_eq!(
        (op.as_str(), msg.as_str()),
        (
            "constraint_residual",
            "slots 510..513 out of range (0..512)"
        )
    );
    assert!(be.download(&gu).unwrap().iter().all(|&x| x == 7.0));
}

/// Every misuse, run on one backend: the `(op, message)` of each error.
fn misuses<B: Backend>(be: &B) -> Vec<(String, String)> {
    let z = |r: usize, c: usize| be.zeros(r, c).unwrap();
    let (a, b, bias) = (z(3, 4), z(5, 6), z(4, 1));
    let (mut c, mut o, mut sh) = (z(3, 6), z(3, 4), z(1, 3));
    let (mut m, mut v, mut g) = (z(3, 4), z(3, 4), z(3, 4));
    let step = |dir, other| VStep {
        base: &a,
        a: 1.0,
        dir,
        moved: Moved::U,
        other,
        lam: &a,
    };
    let res = |write| Residual {
        rho: 1.0,
        alpha: 0.1,
        inv_n: 1.0,
        write,
    };
    vec![
        shape_msg(be.matmul_nn(&mut c, &a, &b, None, 0.0)),
        shape_msg(be.matmul_nt(&mut c, &a, &b, 0.0)),
        shape_msg(be.matmul_tn(&mut c, &a, &b, 0.0)),
        shape_msg(be.matmul_nn(&mut c, &a, &z(4, 6), Some(&bias), 0.0)),
        shape_msg(be.axpby(&mut o, 1.0, &a, 1.0, &b)),
        shape_msg(be.axpy(&mut c, 1.0, &a)),
        shape_msg(be.gather_cols(&mut o, &a, &[0, 1])),
        shape_msg(be.gather_cols(&mut o, &a, &[0, 1, 2, 9])),
        shape_msg(be.group_prox(&mut o, 0.1, Axis::Rows, &mut sh, 0)),
        shape_msg(be.group_norms(&a, Axis::Cols, 511)),
        shape_msg(be.prox_step(
            (&mut o, &mut m, &mut z(3, 1)),
            (&a, &c),
            (&a, &c),
            (0.1, 0.1),
            Axis::Rows,
            0,
        )),
        shape_msg(be.prox_step(
            (&mut o, &mut z(3, 1), &mut sh),
            (&a, &z(3, 1)),
            (&a, &z(3, 1)),
            (0.1, 0.1),
            Axis::Rows,
            0,
        )),
        shape_msg(be.constraint_value(&a, &a, &a, 0.1, 510)),
        shape_msg(be.step_value(&mut o, &mut g, step(&b, &a), res(Grads::U), 0)),
        shape_msg(be.step_value(&mut o, &mut g, step(&a, &a), res(Grads::Both), 0)),
        shape_msg({
            let (mut o2, mut g2) = (z(3, 4), z(3, 4));
            let outs = [
                TrialOut {
                    out: &mut o,
                    grad: &mut g,
                    slot: 0,
                },
                TrialOut {
                    out: &mut o2,
                    grad: &mut g2,
                    slot: 3,
                },
            ];
            be.step_value_ladder(outs, [step(&a, &a), step(&m, &a)], res(Grads::U), None)
        }),
        shape_msg({
            let (mut o2, mut g2) = (z(3, 4), z(3, 4));
            let outs = [
                TrialOut {
                    out: &mut o,
                    grad: &mut g,
                    slot: 0,
                },
                TrialOut {
                    out: &mut o2,
                    grad: &mut g2,
                    slot: 3,
                },
            ];
            let (b1, s1) = (z(3, 1), z(3, 1));
            let w = |u| WTrial {
                u,
                b_old: &b1,
                b_new: &b1,
                bmat: &a,
                shrink: &s1,
                t: 0.1,
            };
            be.w_trial_value_ladder(outs, [w(&a), w(&v)], (&a, &a), res(Grads::V))
        }),
        shape_msg(be.step_diff(&mut o, &a, &a, &b, 0)),
        shape_msg(be.step_diff(&mut o, &a, &a, &a, 511)),
        shape_msg(be.loss(&a, &b, crate::backend::LossKind::Squared, 0)),
        shape_msg(be.read_slots(&[512]).map(|_| ())),
        shape_msg(be.write(&mut o, Array2::<f32>::zeros((4, 3)).view())),
        shape_msg(be.copy(&mut c, &a)),
        shape_msg(be.row_sum(&mut o, &a, 0.0)),
        shape_msg(be.adam_update(&mut o, &b, &mut m, &mut v, 0.1, 0.9, 0.99, 1e-8, 1)),
    ]
}

/// The point of one contract per operation: the same misuse reads the same on both
/// backends. Skipped without a GPU adapter unless `SPARSE_ALM_REQUIRE_GPU=1`.
#[test]
fn cpu_and_gpu_give_the_same_messages() {
    use crate::backend::gpu::{GpuBackend, GpuOptions};
    let gpu = match GpuBackend::new(GpuOptions::from_env()) {
        Ok(g) => g,
        Err(BackendError::NoAdapter(why)) => {
            let required = std::env::var("SPARSE_ALM_REQUIRE_GPU").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "SPARSE_ALM_REQUIRE_GPU=1 but no GPU adapter: {why}"
            );
            eprintln!("SKIPPED: no GPU adapter");
            return;
        }
        Err(e) => panic!("GPU backend creation failed: {e}"),
    };
    assert_eq!(misuses(&CpuBackend::<f32>::new()), misuses(&gpu));
}

#[test]
fn prox_step_names_its_operands() {
    let m = misuses(&CpuBackend::<f32>::new());
    for msg in ["b is 3×6, expected 3×1", "shrink is 1×3, expected 3×1"] {
        assert!(m.contains(&("prox_step".into(), msg.into())), "{m:?}");
    }
}
