//! The constraint kernels' tests: ladders and trials against the single operations, bit for bit.

use super::super::kernels::{map3, PAR_CHUNK};
use super::*;
use rand::{Rng, SeedableRng};

fn data(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-3.0f32..3.0)).collect()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// The residual a trial's gradient must equal: `constraint_residual` at `(u, v)`,
/// writing the gradient `write` names (the other output NaN-filled and ignored).
fn residual_at(u: &[f32], v: &[f32], lam: &[f32], k: ResidualScalars<f32>) -> (Vec<f32>, [f64; 3]) {
    let n = u.len();
    let (mut gu, mut gv) = (vec![f32::NAN; n], vec![f32::NAN; n]);
    let sums = constraint_residual([u, v, lam], k, [&mut gu, &mut gv]);
    (if k.write == Grads::V { gv } else { gu }, sums)
}

/// The fused W trial writes the pre-activation of the separate kernel's formula, the
/// residual's `G_V` there and the sums `constraint_value` takes of it, bit for bit,
/// also when a row straddles a parallel chunk.
#[test]
fn w_trial_value_is_preact_then_residual_bit_for_bit() {
    let k = ResidualScalars {
        rho: 3.0,
        al: 0.1,
        inv_n: 1.0 / 7.0,
        write: Grads::V,
    };
    for (rows, cols) in [(1usize, 1usize), (3, 63), (5, 65), (2, 257), (7, 13_001)] {
        let n = rows * cols;
        let (u, b, v, lam) = (data(n, 5), data(n, 6), data(n, 7), data(n, 8));
        let (sh, bo, bn) = (data(rows, 9), data(rows, 10), data(rows, 11));
        let r = TrialRows {
            cols,
            shrink: &sh,
            b_old: &bo,
            b_new: &bn,
            t: 0.3f32,
        };
        let want: Vec<f32> = (0..n)
            .map(|k| {
                let i = k / cols;
                sh[i] * (u[k] - bo[i] - r.t * b[k]) + bn[i]
            })
            .collect();
        let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        let fused = w_trial_value(&mut out, &mut g, &u, &b, r, (&v, &lam), k);
        assert_eq!(bits(&out), bits(&want), "{rows}×{cols}");
        let (want_g, res_sums) = residual_at(&want, &v, &lam, k);
        assert_eq!(bits(&g), bits(&want_g), "G_V, {rows}×{cols}");
        let apart = constraint_value(&want, &v, &lam, 0.1);
        assert_eq!(res_sums.map(f64::to_bits), apart.map(f64::to_bits));
        assert_eq!(
            fused.map(f64::to_bits),
            apart.map(f64::to_bits),
            "{rows}×{cols}"
        );
        let r2 = TrialRows { t: 0.2, ..r };
        let moved = w_trial_value(&mut out, &mut g, &u, &b, r2, (&v, &lam), k);
        assert_ne!(moved.map(f64::to_bits), apart.map(f64::to_bits));
        assert_ne!(bits(&g), bits(&want_g));
    }
}

/// The fused V trial writes what `axpby(out, 1, base, a, dir)` writes, the residual's
/// `G_U` at the moved point and the sums `constraint_value` takes there, bit for bit:
/// the solver's iterates do not depend on the fusion. Sizes around the lanes and past
/// a parallel chunk.
#[test]
fn step_value_is_axpby_then_residual_bit_for_bit() {
    let k = ResidualScalars {
        rho: 2.5,
        al: 0.1,
        inv_n: 1.0 / 9.0,
        write: Grads::U,
    };
    for n in [1usize, 63, 65, 257, PAR_CHUNK + 4097] {
        let (base, dir, other, lam) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
        let a = -0.37f32;
        let mut moved = vec![0.0f32; n];
        map3(&mut moved, &base, &dir, |_, x, y| 1.0 * x + a * y);
        for moved_v in [false, true] {
            let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            let step = Step {
                base: &base,
                a,
                dir: &dir,
                moved_v,
                other: &other,
                ls: &lam,
                k,
            };
            let fused = step_value(&mut out, &mut g, step);
            assert_eq!(bits(&out), bits(&moved), "out, n = {n}");
            let (u, v) = if moved_v {
                (&other, &moved)
            } else {
                (&moved, &other)
            };
            let (want_g, _) = residual_at(u, v, &lam, k);
            assert_eq!(bits(&g), bits(&want_g), "G_U, n = {n}");
            let apart = constraint_value(u, v, &lam, k.al);
            assert_eq!(fused.map(f64::to_bits), apart.map(f64::to_bits), "n = {n}");
            // ... and the comparison can fail: another step moves the sums.
            let other_step = step_value(&mut out, &mut g, Step { a: a * 0.5, ..step });
            assert_ne!(other_step.map(f64::to_bits), apart.map(f64::to_bits));
        }
    }
}

/// The ladder forms are the single operations candidate by candidate, bit for bit: the
/// pass moving V (hand-vectorised where the CPU has it), the generic pairs (moving U,
/// or writing G_V), `Σ dir²` as `sq_sum` sums it, and the W ladder; sizes around the
/// 8-lane blocks, a row boundary inside a block, and past a chunk.
#[test]
fn ladders_are_the_single_operations_bit_for_bit() {
    use super::super::kernels::sq_sum;
    let a = [-0.37f32, -0.185];
    for n in [1usize, 63, 65, 257, PAR_CHUNK + 4097] {
        let (base, dir, other, lam) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
        for (moved_v, write) in [(true, Grads::U), (false, Grads::U), (true, Grads::V)] {
            let k = ResidualScalars {
                rho: 2.5,
                al: 0.1,
                inv_n: 1.0 / 9.0,
                write,
            };
            let step = Step {
                base: &base,
                a: 0.0,
                dir: &dir,
                moved_v,
                other: &other,
                ls: &lam,
                k,
            };
            let mut m: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; n]);
            let [o0, g0, o1, g1] = &mut m;
            let (sums, sq) = step_value_ladder([(o0, g0), (o1, g1)], step, a, true);
            for c in 0..2 {
                let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                let one = step_value(&mut out, &mut g, Step { a: a[c], ..step });
                let what = format!("n = {n}, moved_v = {moved_v}, {write:?}, candidate {c}");
                assert_eq!(bits(&m[2 * c]), bits(&out), "out, {what}");
                assert_eq!(bits(&m[2 * c + 1]), bits(&g), "grad, {what}");
                assert_eq!(sums[c].map(f64::to_bits), one.map(f64::to_bits), "{what}");
            }
            assert_eq!(sq.to_bits(), sq_sum(&dir).to_bits(), "n = {n}");
        }
    }
    // The W ladder: `cols` not a multiple of 8 puts row boundaries inside blocks (several
    // in one block below 8), and past a piece the rows start mid-piece; and empty ones.
    for (rows, cols) in [
        (0usize, 5usize),
        (3, 0),
        (1, 1),
        (3, 21),
        (5, 13),
        (17, 3),
        (9, 5),
        (2, PAR_CHUNK / 2 + 2049),
        (7, 13_001),
    ] {
        let n = rows * cols;
        let (us, bs, vs, ls) = (data(n, 5), data(n, 6), data(n, 7), data(n, 8));
        let per_row = |seed| data(rows, seed);
        let (b_old, b_new, b_new2, shrink, shrink2) = (
            per_row(9),
            per_row(10),
            per_row(11),
            per_row(12),
            per_row(13),
        );
        let row = |b_new, shrink, t| TrialRows {
            cols,
            shrink,
            b_old: &b_old,
            b_new,
            t,
        };
        let r = [row(&b_new, &shrink, 0.3f32), row(&b_new2, &shrink2, 0.15)];
        let k = ResidualScalars {
            rho: 2.5,
            al: 0.1,
            inv_n: 1.0 / 9.0,
            write: Grads::V,
        };
        let mut m: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; n]);
        let [o0, g0, o1, g1] = &mut m;
        let sums = w_trial_value_ladder([(o0, g0), (o1, g1)], &us, &bs, r, (&vs, &ls), k);
        for c in 0..2 {
            let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
            let one = w_trial_value(&mut out, &mut g, &us, &bs, r[c], (&vs, &ls), k);
            assert_eq!(bits(&m[2 * c]), bits(&out), "W out, n = {n}, {c}");
            assert_eq!(bits(&m[2 * c + 1]), bits(&g), "W grad, n = {n}, {c}");
            assert_eq!(
                sums[c].map(f64::to_bits),
                one.map(f64::to_bits),
                "W, n = {n}"
            );
        }
        if n > 0 {
            assert_ne!(sums[0].map(f64::to_bits), sums[1].map(f64::to_bits));
        }
    }
}
