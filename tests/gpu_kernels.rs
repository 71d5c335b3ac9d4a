//! Every GPU kernel against its CPU twin (`CpuBackend<f32>`), on seeded random inputs, at
//! sizes 1, 63, 65, 257 (around the 64-wide tiles and 256-wide workgroups) and a larger
//! 300×1000 case; the same suites on a backend forced into tiny column chunks; shape errors.
//!
//! Adapter policy (`tests/common`): without a GPU adapter every test prints
//! `SKIPPED: no GPU adapter` and passes, unless `SPARSE_ALM_REQUIRE_GPU=1`, in which case it
//! fails.
//!
//! Tolerance (one helper, [`compare`]): element `i` passes when
//!   |got − want| ≤ max(1e-5, 1e-4·|want|) + 4·√n·ε·mag_i,   ε = f32 epsilon,
//! where `n` is the number of terms accumulated into that output and `mag_i` is the sum of
//! their magnitudes (for a matmul entry Σ_p |A_ip||B_pj| (+|β C| + |bias|); for a slot the
//! sum of |terms|). Elementwise outputs have n = 1, mag = 0: the plain max(1e-5 abs, 1e-4
//! rel) rule. Why the extra term: the GPU and BLAS sum in different orders, and an f32
//! sum of n terms carries a rounding error of about √n·ε·Σ|terms| (random-walk model; the
//! factor 4 covers both sides and the tail), which for long reductions (k = 1000 matmul
//! entries, slots over 3·10⁵ elements, cancelling sums like ⟨Λ,H⟩) exceeds 1e-4 relative
//! to the *result*. A real kernel bug produces O(1) relative errors and still fails.
//! NaN must match NaN and infinities must match exactly.

mod common;

use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::gpu::{GpuBackend, GpuOptions};
use sparse_alm::backend::{
    Axis, Backend, Grads, LossKind, Moved, Residual, TrialOut, VStep, WTrial,
};
use sparse_alm::backend::{BackendError, NUM_SLOTS};
use std::sync::{Mutex, MutexGuard, OnceLock};

// ---- adapter policy and shared backends ------------------------------------------------------

fn open(opts: GpuOptions) -> Option<GpuBackend> {
    common::open_gpu(opts).ok()
}

/// The GPU tests share one backend (pipelines compile once) and run one at a time (they
/// share its slot register file).
fn gpu() -> Option<(MutexGuard<'static, ()>, &'static GpuBackend)> {
    static LOCK: Mutex<()> = Mutex::new(());
    static GPU: OnceLock<Option<GpuBackend>> = OnceLock::new();
    let guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    match GPU.get_or_init(|| open(GpuOptions::from_env())) {
        Some(g) => Some((guard, g)),
        None => {
            common::skipped("no GPU adapter");
            None
        }
    }
}

/// A second backend whose column chunks are capped at 16 KiB: a 300-row matrix is split
/// every 13 columns, a 64-row one every 64, so operands of one op have different chunk
/// boundaries.
const TINY_CHUNK: u64 = 16 * 1024;
fn gpu_chunked() -> Option<&'static GpuBackend> {
    static GPU: OnceLock<Option<GpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| {
        open(GpuOptions {
            max_chunk_bytes: Some(TINY_CHUNK),
            ..GpuOptions::from_env()
        })
    })
    .as_ref()
}

/// A third backend with the launch shapes of real GPUs (on a CPU adapter the default
/// shapes differ: few workgroups, one invocation per row group).
fn gpu_shaped() -> Option<&'static GpuBackend> {
    static GPU: OnceLock<Option<GpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| {
        open(GpuOptions::from_env()).map(|mut g| {
            g.use_gpu_launch_shapes();
            g
        })
    })
    .as_ref()
}

/// A fourth backend without subgroup operations: on lavapipe its matmuls run on
/// `matmul_8x8` (the fallback of CPU adapters without 8-lane subgroups) instead of
/// `matmul_sg`.
fn gpu_fallback() -> Option<&'static GpuBackend> {
    static GPU: OnceLock<Option<GpuBackend>> = OnceLock::new();
    GPU.get_or_init(|| {
        open(GpuOptions {
            no_subgroups: true,
            ..GpuOptions::from_env()
        })
    })
    .as_ref()
}

// ---- comparison ---------------------------------------------------------------------------------

/// One output of a suite: a matrix (row-major) or a few slots, with what the tolerance
/// needs (see the module doc).
#[derive(Clone, Debug)]
struct Out {
    name: String,
    vals: Vec<f64>,
    /// Per element Σ|terms| (empty: 0).
    mag: Vec<f64>,
    /// Terms accumulated per element.
    n: usize,
}

fn out(name: impl Into<String>, vals: Vec<f64>) -> Out {
    Out {
        name: name.into(),
        vals,
        mag: Vec::new(),
        n: 1,
    }
}

const EPS: f64 = f32::EPSILON as f64;

/// Compare `got` against the reference `want`; `Err` names the first bad index.
fn compare(got: &Out, want: &Out) -> Result<(), String> {
    if got.vals.len() != want.vals.len() {
        return Err(format!(
            "{}: length {} vs {}",
            want.name,
            got.vals.len(),
            want.vals.len()
        ));
    }
    let mut worst: Option<(usize, f64)> = None;
    for (i, (&g, &w)) in got.vals.iter().zip(&want.vals).enumerate() {
        let ok = if w.is_nan() || g.is_nan() {
            w.is_nan() && g.is_nan()
        } else if w.is_infinite() || g.is_infinite() {
            g == w
        } else {
            let mag = want.mag.get(i).copied().unwrap_or(0.0);
            let tol = (1e-5f64).max(1e-4 * w.abs()) + 4.0 * (want.n as f64).sqrt() * EPS * mag;
            let err = (g - w).abs();
            if err > tol {
                let ratio = err / tol;
                if worst.is_none_or(|(_, r)| ratio > r) {
                    worst = Some((i, ratio));
                }
            }
            err <= tol
        };
        if !ok && (w.is_nan() || g.is_nan() || w.is_infinite() || g.is_infinite()) {
            return Err(format!("{}: index {i}: got {g}, want {w}", want.name));
        }
    }
    match worst {
        None => Ok(()),
        Some((i, ratio)) => Err(format!(
            "{}: index {i} (of {}): got {}, want {} (|err| = {:.3e}, {ratio:.1}× tolerance)",
            want.name,
            want.vals.len(),
            got.vals[i],
            want.vals[i],
            (got.vals[i] - want.vals[i]).abs()
        )),
    }
}

fn compare_all(label: &str, got: &[Out], want: &[Out]) {
    assert_eq!(got.len(), want.len(), "{label}: output count");
    let errs: Vec<String> = got
        .iter()
        .zip(want)
        .filter_map(|(g, w)| compare(g, w).err())
        .collect();
    assert!(
        errs.is_empty(),
        "{label}: {} mismatches:\n  {}",
        errs.len(),
        errs.join("\n  ")
    );
}

// ---- inputs -----------------------------------------------------------------------------------------

fn rand_mat(rng: &mut ChaCha8Rng, r: usize, c: usize, lo: f32, hi: f32) -> Array2<f32> {
    Array2::from_shape_simple_fn((r, c), || rng.random_range(lo..hi))
}

fn f64s(a: &Array2<f32>) -> Vec<f64> {
    a.iter().map(|&x| x as f64).collect()
}

fn dl<B: Backend>(be: &B, m: &B::Mat) -> Vec<f64> {
    f64s(&be.download(m).expect("download"))
}

fn up<B: Backend>(be: &B, a: &Array2<f32>) -> B::Mat {
    be.upload(a.view()).expect("upload")
}

fn slots<B: Backend>(be: &B, s: &[usize]) -> Vec<f64> {
    be.read_slots(s).expect("read_slots")
}

fn abs(a: &Array2<f32>) -> Array2<f32> {
    a.mapv(f32::abs)
}

// ---- suites (generic over the backend; the CPU run is the reference) -----------------------

/// Matmuls NN (with/without bias, β = 0 over a NaN-filled C, β ≠ 0), NT, TN for
/// `C (m×n) = A (m×k) · B (k×n)` and the transposed layouts of the same sizes.
fn matmul_suite<B: Backend>(be: &B, m: usize, k: usize, n: usize, seed: u64) -> Vec<Out> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let a = rand_mat(&mut rng, m, k, -1.0, 1.0);
    let b = rand_mat(&mut rng, k, n, -1.0, 1.0);
    let c0 = rand_mat(&mut rng, m, n, -1.0, 1.0);
    let bias = rand_mat(&mut rng, m, 1, -1.0, 1.0);
    let g = rand_mat(&mut rng, m, n, -1.0, 1.0); // NT: G (m×n) · Bᵀ with B (k×n)
    let cn = rand_mat(&mut rng, m, k, -1.0, 1.0);
    let (da, db, dbias, dg) = (up(be, &a), up(be, &b), up(be, &bias), up(be, &g));
    let mut outs = Vec::new();
    let mag = |x: Array2<f32>| -> Vec<f64> { f64s(&x) };
    let ab = abs(&a).dot(&abs(&b));

    // NN, β = 0 over NaN, with bias.
    let mut dc = up(be, &Array2::from_elem((m, n), f32::NAN));
    be.matmul_nn(&mut dc, &da, &db, Some(&dbias), 0.0).unwrap();
    outs.push(Out {
        name: format!("nn+bias β=0 {m}×{k}×{n}"),
        vals: dl(be, &dc),
        mag: mag(&ab + &abs(&bias)),
        n: k,
    });
    // NN, β = 0.5, no bias.
    let mut dc = up(be, &c0);
    be.matmul_nn(&mut dc, &da, &db, None, 0.5).unwrap();
    outs.push(Out {
        name: format!("nn β=.5 {m}×{k}×{n}"),
        vals: dl(be, &dc),
        mag: mag(&ab + &abs(&c0)),
        n: k,
    });
    // NN, β = -1 with bias.
    let mut dc = up(be, &c0);
    be.matmul_nn(&mut dc, &da, &db, Some(&dbias), -1.0).unwrap();
    outs.push(Out {
        name: format!("nn+bias β=-1 {m}×{k}×{n}"),
        vals: dl(be, &dc),
        mag: mag(&ab + &abs(&c0) + &abs(&bias)),
        n: k,
    });
    // NT: C (m×k) = G (m×n) · Bᵀ, B (k×n).
    let gbt = abs(&g).dot(&abs(&b).t());
    let mut dcn = up(be, &Array2::from_elem((m, k), f32::NAN));
    be.matmul_nt(&mut dcn, &dg, &db, 0.0).unwrap();
    outs.push(Out {
        name: format!("nt β=0 {m}×{n}×{k}"),
        vals: dl(be, &dcn),
        mag: mag(gbt.clone()),
        n,
    });
    let mut dcn = up(be, &cn);
    be.matmul_nt(&mut dcn, &dg, &db, 0.7).unwrap();
    outs.push(Out {
        name: format!("nt β=.7 {m}×{n}×{k}"),
        vals: dl(be, &dcn),
        mag: mag(&gbt + &abs(&cn)),
        n,
    });
    // TN: C (k×n) = Aᵀ (k×m) · G (m×n).
    let atg = abs(&a).t().dot(&abs(&g));
    let ct = rand_mat(&mut rng, k, n, -1.0, 1.0);
    let mut dct = up(be, &Array2::from_elem((k, n), f32::NAN));
    be.matmul_tn(&mut dct, &da, &dg, 0.0).unwrap();
    outs.push(Out {
        name: format!("tn β=0 {k}×{m}×{n}"),
        vals: dl(be, &dct),
        mag: mag(atg.clone()),
        n: m,
    });
    let mut dct = up(be, &ct);
    be.matmul_tn(&mut dct, &da, &dg, 2.0).unwrap();
    outs.push(Out {
        name: format!("tn β=2 {k}×{m}×{n}"),
        vals: dl(be, &dct),
        mag: mag(&atg + &(2.0 * &abs(&ct))),
        n: m,
    });
    outs
}

/// Every non-matmul op on `r × c` inputs.
fn op_suite<B: Backend>(be: &B, r: usize, c: usize, seed: u64) -> Vec<Out> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut outs = Vec::new();
    let nt = r * c;
    let x = rand_mat(&mut rng, r, c, -1.0, 1.0);
    let y = rand_mat(&mut rng, r, c, -1.0, 1.0);
    let (dx, dy) = (up(be, &x), up(be, &y));

    // memory: upload/download, write, copy, fill
    outs.push(out("upload/download", dl(be, &dx)));
    let mut dw = be.zeros(r, c).unwrap();
    outs.push(out("zeros", dl(be, &dw)));
    be.write(&mut dw, y.view()).unwrap();
    outs.push(out("write", dl(be, &dw)));
    let xt = x.t().to_owned();
    let mut dwt = be.zeros(c, r).unwrap();
    be.write(&mut dwt, xt.t().t()).unwrap(); // non-standard layout source
    outs.push(out("write(transposed view)", dl(be, &dwt)));
    let mut dcp = be.zeros(r, c).unwrap();
    be.copy(&mut dcp, &dx).unwrap();
    outs.push(out("copy", dl(be, &dcp)));
    be.fill(&mut dcp, 2.5).unwrap();
    outs.push(out("fill", dl(be, &dcp)));

    // elementwise
    let mut o = up(be, &Array2::from_elem((r, c), f32::NAN));
    be.axpby(&mut o, 0.3, &dx, -1.7, &dy).unwrap();
    outs.push(out("axpby", dl(be, &o)));
    let mut o = up(be, &y);
    be.axpy(&mut o, -0.6, &dx).unwrap();
    outs.push(out("axpy", dl(be, &o)));
    be.scale(&mut o, 3.0).unwrap();
    outs.push(out("scale", dl(be, &o)));
    let mut o = be.zeros(r, c).unwrap();
    be.leaky_relu(&mut o, &dx, 0.1).unwrap();
    outs.push(out("leaky_relu", dl(be, &o)));
    let mut o = up(be, &y);
    be.mul_leaky_deriv(&mut o, &dx, 0.1).unwrap();
    outs.push(out("mul_leaky_deriv", dl(be, &o)));

    // constraint residual / value / multiplier update (method §3, §4)
    let lam = rand_mat(&mut rng, r, c, -2.0, 2.0);
    let dlam = up(be, &lam);
    let inv_n = 1.0 / c as f32;
    // Each writing mode; NaN marks what must stay untouched (compared as NaN on both sides).
    for write in [Grads::U, Grads::V, Grads::Both] {
        let nan = Array2::from_elem((r, c), f32::NAN);
        let (mut gu, mut gv) = (up(be, &nan), up(be, &nan));
        let k = Residual {
            rho: 3.0,
            alpha: 0.1,
            inv_n,
            write,
        };
        be.constraint_residual(&dx, &dy, &dlam, k, &mut gu, &mut gv, 10)
            .unwrap();
        for (name, m) in [("G_U", &gu), ("G_V", &gv)] {
            outs.push(out(
                format!("constraint_residual {write:?} {name}"),
                dl(be, m),
            ));
        }
    }
    let sl = slots(be, &[10, 11, 12]);
    let lam2: f64 = lam.iter().map(|&v| (v as f64).powi(2)).sum();
    let res_mag = vec![sl[0], 0.5 * (lam2 + sl[0]), sl[2]];
    outs.push(Out {
        name: "constraint_residual slots".into(),
        vals: sl,
        mag: res_mag.clone(),
        n: nt,
    });
    // constraint_value at a different point (writes nothing)
    be.constraint_value(&dy, &dx, &dlam, 0.2, 20).unwrap();
    let sl = slots(be, &[20, 21, 22]);
    let mag = vec![sl[0], 0.5 * (lam2 + sl[0]), sl[2]];
    outs.push(Out {
        name: "constraint_value slots".into(),
        vals: sl,
        mag,
        n: nt,
    });
    let mut dl2 = up(be, &lam);
    be.multiplier_update(&mut dl2, &dx, &dy, 3.0, 0.1).unwrap();
    outs.push(out("multiplier_update", dl(be, &dl2)));
    // step_value: the V-block trial, moving V (other = U) and moving U (other = V), with
    // the residual's G_U (and, to cover the flag, G_V) at the moved point
    let trial_res = |write| Residual {
        rho: 2.5,
        alpha: 0.1,
        inv_n: 0.25,
        write,
    };
    for (moved, write, slot) in [
        (Moved::V, Grads::U, 50),
        (Moved::U, Grads::U, 53),
        (Moved::U, Grads::V, 59),
    ] {
        let mut o = up(be, &Array2::from_elem((r, c), f32::NAN));
        let mut g = up(be, &Array2::from_elem((r, c), f32::NAN));
        let step = VStep {
            base: &dx,
            a: -0.7,
            dir: &dy,
            moved,
            other: &dy,
            lam: &dlam,
        };
        be.step_value(&mut o, &mut g, step, trial_res(write), slot)
            .unwrap();
        outs.push(out(format!("step_value {moved:?} out"), dl(be, &o)));
        outs.push(out(format!("step_value {moved:?} {write:?}"), dl(be, &g)));
        let sl = slots(be, &[slot, slot + 1, slot + 2]);
        let mag = vec![sl[0], 0.5 * (lam2 + sl[0]), sl[2]];
        outs.push(Out {
            name: format!("step_value {moved:?} {write:?} slots"),
            vals: sl,
            mag,
            n: nt,
        });
    }

    // reductions
    be.dot(&dx, &dy, 30).unwrap();
    be.sq_norm(&dx, 31).unwrap();
    let sl = slots(be, &[30, 31]);
    let absdot: f64 = x
        .iter()
        .zip(&y)
        .map(|(&a, &b)| (a as f64 * b as f64).abs())
        .sum();
    let mag = vec![absdot, sl[1]];
    outs.push(Out {
        name: "dot, sq_norm".into(),
        vals: sl,
        mag,
        n: nt,
    });
    // step_diff: diff = x − y, ⟨λ, diff⟩ and ‖diff‖² (λ as the gradient)
    let mut dd = up(be, &Array2::from_elem((r, c), f32::NAN));
    be.step_diff(&mut dd, &dx, &dy, &dlam, 32).unwrap();
    outs.push(out("step_diff diff", dl(be, &dd)));
    let sl = slots(be, &[32, 33]);
    let gd_mag: f64 = lam
        .iter()
        .zip(x.iter().zip(&y))
        .map(|(&g, (&a, &b))| (g as f64).abs() * ((a as f64).abs() + (b as f64).abs()))
        .sum();
    let d2_mag: f64 = x
        .iter()
        .zip(&y)
        .map(|(&a, &b)| (a as f64).abs() + (b as f64).abs())
        .map(|s| s * s)
        .sum();
    outs.push(Out {
        name: "step_diff slots".into(),
        vals: sl,
        mag: vec![gd_mag, d2_mag],
        n: nt,
    });
    let mut rs = up(be, &Array2::from_elem((r, 1), f32::NAN));
    be.row_sum(&mut rs, &dx, 0.0).unwrap();
    let rmag: Vec<f64> = abs(&x)
        .rows()
        .into_iter()
        .map(|row| row.sum() as f64)
        .collect();
    outs.push(Out {
        name: "row_sum β=0".into(),
        vals: dl(be, &rs),
        mag: rmag.clone(),
        n: c,
    });
    be.row_sum(&mut rs, &dy, 0.5).unwrap();
    let rmag2: Vec<f64> = abs(&y)
        .rows()
        .into_iter()
        .zip(&rmag)
        .map(|(row, m)| row.sum() as f64 + m)
        .collect();
    outs.push(Out {
        name: "row_sum β=.5".into(),
        vals: dl(be, &rs),
        mag: rmag2,
        n: c,
    });

    // group sparsity: some groups already zero, some shrunk to zero, some kept
    for axis in [Axis::Rows, Axis::Cols] {
        let mut w = rand_mat(&mut rng, r, c, -1.0, 1.0);
        let (ng, len) = if axis == Axis::Rows { (r, c) } else { (c, r) };
        for g in 0..ng {
            let f = match g % 5 {
                0 => 0.0,
                1 => 0.1,
                _ => 1.0,
            };
            if axis == Axis::Rows {
                w.row_mut(g).mapv_inplace(|v| v * f);
            } else {
                w.column_mut(g).mapv_inplace(|v| v * f);
            }
        }
        let thresh = 0.5 * (len as f32 / 3.0).sqrt();
        let mut dw = up(be, &w);
        be.group_norms(&dw, axis, 40).unwrap();
        let sl = slots(be, &[40, 41]);
        let mag = vec![sl[0], 0.0];
        outs.push(Out {
            name: format!("group_norms {axis:?}"),
            vals: sl,
            mag,
            n: nt,
        });
        let mut shrink = if axis == Axis::Rows {
            be.zeros(r, 1).unwrap()
        } else {
            be.zeros(1, c).unwrap()
        };
        be.group_prox(&mut dw, thresh, axis, &mut shrink, 42)
            .unwrap();
        outs.push(Out {
            name: format!("group_prox {axis:?} W"),
            vals: dl(be, &dw),
            mag: Vec::new(),
            n: 1,
        });
        outs.push(out(format!("group_prox {axis:?} shrink"), dl(be, &shrink)));
        let sl = slots(be, &[42, 43]);
        let mag = vec![sl[0], 0.0];
        outs.push(Out {
            name: format!("group_prox {axis:?} slots"),
            vals: sl,
            mag,
            n: nt,
        });
        outs.extend(prox_step_outs(be, &mut rng, &w, axis, thresh));
    }

    // matmul-free W trial (method §6)
    let bo = rand_mat(&mut rng, r, 1, -1.0, 1.0);
    let bn = rand_mat(&mut rng, r, 1, -1.0, 1.0);
    let sh = rand_mat(&mut rng, r, 1, 0.0, 1.0);
    let mut o = up(be, &Array2::from_elem((r, c), f32::NAN));
    be.w_trial_preact(
        &mut o,
        &dx,
        &up(be, &bo),
        &up(be, &bn),
        &dy,
        &up(be, &sh),
        0.37,
    )
    .unwrap();
    outs.push(out("w_trial_preact", dl(be, &o)));
    // ... fused with its constraint value (hidden layers): the same pre-activation
    let (dbo, dbn, dsh) = (up(be, &bo), up(be, &bn), up(be, &sh));
    let trial = WTrial {
        u: &dx,
        b_old: &dbo,
        b_new: &dbn,
        bmat: &dy,
        shrink: &dsh,
        t: 0.37,
    };
    let mut o = up(be, &Array2::from_elem((r, c), f32::NAN));
    let mut g = up(be, &Array2::from_elem((r, c), f32::NAN));
    be.w_trial_value(
        &mut o,
        &mut g,
        WTrial { ..trial },
        (&dy, &dlam),
        trial_res(Grads::V),
        56,
    )
    .unwrap();
    outs.push(out("w_trial_value out", dl(be, &o)));
    outs.push(out("w_trial_value G_V", dl(be, &g)));
    let sl = slots(be, &[56, 57, 58]);
    let mag = vec![sl[0], 0.5 * (lam2 + sl[0]), sl[2]];
    outs.push(Out {
        name: "w_trial_value slots".into(),
        vals: sl,
        mag,
        n: nt,
    });
    // The ladder forms (two candidates in one operation; on the CPU one fused pass, with
    // the hand-vectorised kernel where V moves; on the GPU the single kernels in turn).
    let nan = || up(be, &Array2::from_elem((r, c), f32::NAN));
    // Two candidates' value sums (‖H‖², ⟨Λ,H⟩, ‖σ(U)‖² each) and their magnitudes.
    let pair_mag = |sl: &[f64]| -> Vec<f64> {
        let trio = |c: &[f64]| [c[0], 0.5 * (lam2 + c[0]), c[2]];
        [trio(&sl[0..3]), trio(&sl[3..6])].concat()
    };
    // The third case has the solver's slot layout, `‖dir‖²` as candidate 0's fourth sum
    // (the GPU then sums it in the same pass).
    for (moved, base, slot, fused) in [
        (Moved::V, &dx, 70, false),
        (Moved::U, &dy, 80, false),
        (Moved::V, &dx, 100, true),
    ] {
        let second = if fused { slot + 4 } else { slot + 3 };
        let mut m: [B::Mat; 4] = std::array::from_fn(|_| nan());
        let [o0, g0, o1, g1] = &mut m;
        let step = |a| VStep {
            base,
            a,
            dir: &dlam,
            moved,
            other: &dx,
            lam: &dy,
        };
        let outs2 = [
            TrialOut {
                out: o0,
                grad: g0,
                slot,
            },
            TrialOut {
                out: o1,
                grad: g1,
                slot: second,
            },
        ];
        let dir_sq = match (moved, fused) {
            (Moved::V, true) => Some(slot + 3),
            (Moved::V, false) => Some(slot + 6),
            _ => None,
        };
        be.step_value_ladder(
            outs2,
            [step(-0.7), step(-0.35)],
            trial_res(Grads::U),
            dir_sq,
        )
        .unwrap();
        for (q, mat) in m.iter().enumerate() {
            outs.push(out(format!("step_value_ladder {moved:?} {q}"), dl(be, mat)));
        }
        let want: Vec<usize> = (slot..slot + 3)
            .chain(second..second + 3)
            .chain(dir_sq)
            .collect();
        let sl = slots(be, &want);
        let mut mag = pair_mag(&sl);
        mag.extend(sl.get(6).copied());
        outs.push(Out {
            name: format!("step_value_ladder {moved:?} slots"),
            vals: sl,
            mag,
            n: nt,
        });
    }
    let dbn2 = up(be, &rand_mat(&mut rng, r, 1, -1.0, 1.0));
    let dsh2 = up(be, &rand_mat(&mut rng, r, 1, 0.0, 1.0));
    let trial2 = WTrial {
        b_new: &dbn2,
        shrink: &dsh2,
        t: 0.185,
        ..trial
    };
    let mut m: [B::Mat; 4] = std::array::from_fn(|_| nan());
    let [o0, g0, o1, g1] = &mut m;
    let outs2 = [
        TrialOut {
            out: o0,
            grad: g0,
            slot: 90,
        },
        TrialOut {
            out: o1,
            grad: g1,
            slot: 93,
        },
    ];
    be.w_trial_value_ladder(outs2, [trial, trial2], (&dy, &dlam), trial_res(Grads::V))
        .unwrap();
    for (q, mat) in m.iter().enumerate() {
        outs.push(out(format!("w_trial_value_ladder {q}"), dl(be, mat)));
    }
    let sl = slots(be, &[90, 91, 92, 93, 94, 95]);
    let mag = pair_mag(&sl);
    outs.push(Out {
        name: "w_trial_value_ladder slots".into(),
        vals: sl,
        mag,
        n: nt,
    });

    // losses: squared, and CE with one-hot targets
    let n = c as f64;
    let mut g = be.zeros(r, c).unwrap();
    be.loss(&dx, &dy, LossKind::Squared, 50).unwrap();
    be.loss_grad(&dx, &dy, LossKind::Squared, &mut g, 51)
        .unwrap();
    let sl = slots(be, &[50, 51]);
    let mag = vec![sl[0], sl[1]];
    outs.push(Out {
        name: "loss squared".into(),
        vals: sl,
        mag,
        n: nt,
    });
    outs.push(out("loss_grad squared G", dl(be, &g)));
    let mut onehot = Array2::<f32>::zeros((r, c));
    for j in 0..c {
        onehot[[rng.random_range(0..r), j]] = 1.0;
    }
    let logits = rand_mat(&mut rng, r, c, -8.0, 8.0);
    let (dlog, doh) = (up(be, &logits), up(be, &onehot));
    be.loss(&dlog, &doh, LossKind::SoftmaxCe, 52).unwrap();
    be.loss_grad(&dlog, &doh, LossKind::SoftmaxCe, &mut g, 53)
        .unwrap();
    let sl = slots(be, &[52, 53]);
    let ce_mag: f64 = (0..c)
        .map(|j| {
            let col = logits.column(j);
            let mx = col.iter().fold(0.0f64, |a, &v| a.max((v as f64).abs()));
            mx + (r as f64).ln()
                + col
                    .iter()
                    .zip(onehot.column(j))
                    .map(|(&a, &t)| (a * t).abs() as f64)
                    .sum::<f64>()
        })
        .sum::<f64>()
        / n;
    outs.push(Out {
        name: "loss softmax-ce".into(),
        vals: sl,
        mag: vec![ce_mag, ce_mag],
        n: c * r,
    });
    outs.push(out("loss_grad softmax-ce G", dl(be, &g)));

    // the output layer's trials, written and valued in one pass (method §6): W trials from
    // U = the logits (or x) with B = y, V trials U + a·D with D = y; against the CPU's
    // w_trial_preact / axpby followed by loss
    let (bo, bn, sh) = (
        up(be, &rand_mat(&mut rng, r, 1, -1.0, 1.0)),
        up(be, &rand_mat(&mut rng, r, 1, -1.0, 1.0)),
        up(be, &rand_mat(&mut rng, r, 1, 0.0, 1.0)),
    );
    for (kind, u, target, slot) in [
        (LossKind::Squared, &dx, &dy, 54),
        (LossKind::SoftmaxCe, &dlog, &doh, 55),
    ] {
        let name = format!("{kind:?}");
        let mut o = up(be, &Array2::from_elem((r, c), f32::NAN));
        let w = WTrial {
            u,
            b_old: &bo,
            b_new: &bn,
            bmat: &dy,
            shrink: &sh,
            t: 0.37,
        };
        be.w_trial_loss(&mut o, w, target, kind, slot).unwrap();
        outs.push(out(format!("w_trial_loss {name} point"), dl(be, &o)));
        let w_loss = slots(be, &[slot]);
        let mut o = up(be, &Array2::from_elem((r, c), f32::NAN));
        be.step_loss(&mut o, (u, -0.6, &dy), target, kind, slot)
            .unwrap();
        outs.push(out(format!("step_loss {name} point"), dl(be, &o)));
        let v_loss = slots(be, &[slot]);
        let mag = if kind == LossKind::Squared {
            // (ŷ − y)² over r·c terms, each below 20 (|ŷ| ≤ 3.4, |y| ≤ 1), over N = c.
            20.0 * r as f64
        } else {
            ce_mag + 8.0
        };
        outs.push(Out {
            name: format!("w_trial_loss / step_loss {name} loss"),
            vals: vec![w_loss[0], v_loss[0]],
            mag: vec![mag, mag],
            n: nt,
        });
    }

    // count_errors with many ties (values quantised to 3 levels): first index wins
    let q = x.mapv(|v| (v * 1.5).round());
    let q2 = y.mapv(|v| (v * 1.5).round());
    be.count_errors(&up(be, &q), &up(be, &q2), 60).unwrap();
    be.count_errors(&up(be, &q), &up(be, &q), 61).unwrap();
    outs.push(out("count_errors", slots(be, &[60, 61])));

    // gather_cols (repeats, out of order), twice in one submission with different indices
    let m = c / 2 + 1;
    let idx1: Vec<u32> = (0..m).map(|_| rng.random_range(0..c as u32)).collect();
    let idx2: Vec<u32> = (0..m).map(|j| ((j * 7 + 3) % c) as u32).collect();
    let mut o1 = be.zeros(r, m).unwrap();
    let mut o2 = be.zeros(r, m).unwrap();
    be.gather_cols(&mut o1, &dx, &idx1).unwrap();
    be.gather_cols(&mut o2, &dx, &idx2).unwrap();
    outs.push(out("gather_cols 1", dl(be, &o1)));
    outs.push(out("gather_cols 2", dl(be, &o2)));

    // Adam
    let mut dw = up(be, &x);
    let mut dm = up(be, &rand_mat(&mut rng, r, c, -0.1, 0.1));
    let mut dv = up(be, &rand_mat(&mut rng, r, c, 0.0, 0.01));
    be.adam_update(&mut dw, &dy, &mut dm, &mut dv, 1e-2, 0.9, 0.999, 1e-8, 3)
        .unwrap();
    outs.push(out("adam w", dl(be, &dw)));
    outs.push(out("adam m", dl(be, &dm)));
    outs.push(out("adam v", dl(be, &dv)));
    outs
}

/// One prox-gradient candidate of a block `(w, b)` (`prox_step`), from `w` with random
/// `b` and gradients, step 0.3: the new `W` and `b`, the factors and the four sums.
fn prox_step_outs<B: Backend>(
    be: &B,
    rng: &mut ChaCha8Rng,
    w: &Array2<f32>,
    axis: Axis,
    thresh: f32,
) -> Vec<Out> {
    let (r, c) = w.dim();
    let gw = rand_mat(rng, r, c, -1.0, 1.0);
    let (b, gb) = (
        rand_mat(rng, r, 1, -1.0, 1.0),
        rand_mat(rng, r, 1, -1.0, 1.0),
    );
    let (dw, dgw, db, dgb) = (up(be, w), up(be, &gw), up(be, &b), up(be, &gb));
    let mut nw = up(be, &Array2::from_elem((r, c), f32::NAN));
    let mut nb = up(be, &Array2::from_elem((r, 1), f32::NAN));
    let (sr, sc) = if axis == Axis::Rows { (r, 1) } else { (1, c) };
    let mut shrink = up(be, &Array2::from_elem((sr, sc), f32::NAN));
    let steps = (0.3, 0.3 * thresh);
    be.prox_step(
        (&mut nw, &mut nb, &mut shrink),
        (&dw, &db),
        (&dgw, &dgb),
        steps,
        axis,
        44,
    )
    .unwrap();
    // |Δ| ≤ 2|old| + t|g| bounds each term of ⟨g, Δ⟩ and ‖Δ‖².
    let bound = |old: &Array2<f32>, g: &Array2<f32>| -> (f64, f64) {
        old.iter().zip(g).fold((0.0, 0.0), |(a, b), (&o, &g)| {
            let d = 2.0 * (o as f64).abs() + 0.3 * (g as f64).abs();
            (a + (g as f64).abs() * d, b + d * d)
        })
    };
    let ((gw_mag, dw_mag), (gb_mag, db_mag)) = (bound(w, &gw), bound(&b, &gb));
    let sl = slots(be, &[44, 45, 46, 47]);
    let mag = vec![sl[0], 0.0, gw_mag + gb_mag, dw_mag + db_mag];
    let mut outs = vec![
        out(format!("prox_step {axis:?} W"), dl(be, &nw)),
        out(format!("prox_step {axis:?} b"), dl(be, &nb)),
        out(format!("prox_step {axis:?} shrink"), dl(be, &shrink)),
        Out {
            name: format!("prox_step {axis:?} slots"),
            vals: sl,
            mag: mag.clone(),
            n: r * c,
        },
    ];
    // ... a ladder's two candidates (one pass over the shared operands on the GPU)
    let mut m: Vec<B::Mat> = [(r, c), (r, 1), (sr, sc), (r, c), (r, 1), (sr, sc)]
        .iter()
        .map(|&d| up(be, &Array2::from_elem(d, f32::NAN)))
        .collect();
    let [n0w, n0b, n0s, n1w, n1b, n1s] = &mut m[..] else {
        unreachable!()
    };
    be.prox_step_ladder(
        [(n0w, n0b, n0s), (n1w, n1b, n1s)],
        (&dw, &db),
        (&dgw, &dgb),
        [steps, (0.15, 0.15 * thresh)],
        axis,
        [70, 74],
    )
    .unwrap();
    for (q, mat) in m.iter().enumerate() {
        outs.push(out(format!("prox_step_ladder {axis:?} {q}"), dl(be, mat)));
    }
    let sl = slots(be, &[70, 71, 72, 73, 74, 75, 76, 77]);
    let mut mag2 = mag.clone();
    mag2.extend(&mag);
    outs.push(Out {
        name: format!("prox_step_ladder {axis:?} slots"),
        vals: sl,
        mag: mag2,
        n: r * c,
    });
    outs
}

/// The CPU's `prox_step` is the operations it stands for, in turn, bit for bit: axpby,
/// group_prox, axpby for `b`, step_diff of `W` and of `b` (sums added), at sizes past a
/// parallel chunk too.
#[test]
fn cpu_prox_step_is_the_operations_in_turn() {
    let be = CpuBackend::<f32>::new();
    let bits = |v: Vec<f64>| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    for (k, &(r, c)) in [(1, 1), (63, 65), (257, 257), (300, 257)]
        .iter()
        .enumerate()
    {
        for axis in [Axis::Rows, Axis::Cols] {
            let mut rng = ChaCha8Rng::seed_from_u64(50 + k as u64);
            // Group 0 is zero in W and in ∇W, so its trial is zero; the others survive.
            let (mut w, mut gw) = (
                rand_mat(&mut rng, r, c, -1.0, 1.0),
                rand_mat(&mut rng, r, c, -1.0, 1.0),
            );
            for m in [&mut w, &mut gw] {
                match axis {
                    Axis::Rows => m.row_mut(0).fill(0.0),
                    Axis::Cols => m.column_mut(0).fill(0.0),
                }
            }
            let gw = up(&be, &gw);
            let b = up(&be, &rand_mat(&mut rng, r, 1, -1.0, 1.0));
            let gb = up(&be, &rand_mat(&mut rng, r, 1, -1.0, 1.0));
            let w = up(&be, &w);
            let (t, thresh) = (0.3f32, 0.3 * 0.4 * (c as f32).sqrt());
            let (sr, sc) = if axis == Axis::Rows { (r, 1) } else { (1, c) };
            let (mut nw, mut nb, mut sh) = (
                be.zeros(r, c).unwrap(),
                be.zeros(r, 1).unwrap(),
                be.zeros(sr, sc).unwrap(),
            );
            be.prox_step(
                (&mut nw, &mut nb, &mut sh),
                (&w, &b),
                (&gw, &gb),
                (t, thresh),
                axis,
                0,
            )
            .unwrap();
            let fused = (
                dl(&be, &nw),
                dl(&be, &nb),
                dl(&be, &sh),
                slots(&be, &[0, 1, 2, 3]),
            );
            let (mut dw, mut db) = (be.zeros(r, c).unwrap(), be.zeros(r, 1).unwrap());
            be.axpby(&mut nw, 1.0, &w, -t, &gw).unwrap();
            be.group_prox(&mut nw, thresh, axis, &mut sh, 10).unwrap();
            be.axpby(&mut nb, 1.0, &b, -t, &gb).unwrap();
            be.step_diff(&mut dw, &nw, &w, &gw, 12).unwrap();
            be.step_diff(&mut db, &nb, &b, &gb, 14).unwrap();
            let s = slots(&be, &[10, 11, 12, 13, 14, 15]);
            let sums = vec![s[0], s[1], s[2] + s[4], s[3] + s[5]];
            let label = format!("{r}×{c} {axis:?}");
            // step_diff's sums are dot's and sq_norm's of the stored Δ, bit for bit.
            be.dot(&gw, &dw, 16).unwrap();
            be.sq_norm(&dw, 17).unwrap();
            be.dot(&gb, &db, 18).unwrap();
            be.sq_norm(&db, 19).unwrap();
            let direct = slots(&be, &[16, 17, 18, 19]);
            assert_eq!(
                bits(direct),
                bits(vec![s[2], s[3], s[4], s[5]]),
                "Δ sums {label}"
            );
            assert_eq!(bits(fused.0), bits(dl(&be, &nw)), "W {label}");
            assert_eq!(bits(fused.1), bits(dl(&be, &nb)), "b {label}");
            assert_eq!(bits(fused.2), bits(dl(&be, &sh)), "shrink {label}");
            assert_eq!(bits(fused.3), bits(sums), "sums {label}");
            let groups = if axis == Axis::Rows { r } else { c };
            assert!(
                s[1] >= 1.0 && (s[1] as usize) < groups.max(2),
                "zero groups {}: {label}",
                s[1]
            );
        }
    }
}

const OP_SIZES: &[(usize, usize)] = &[
    (1, 1),
    (1, 257),
    (63, 1),
    (63, 65),
    (65, 63),
    (257, 257),
    (10, 1437),
    (300, 1000),
];
const MM_SIZES: &[(usize, usize, usize)] = &[
    (1, 1, 1),
    (63, 63, 63),
    (65, 65, 65),
    (257, 257, 257),
    (1, 65, 257),
    (257, 1, 63),
    (65, 257, 1),
    (300, 64, 1000),
    (65, 50, 5000),
    // The narrow tile (at most 16 output rows) and its edge: NN/NT over 1437 samples, a
    // split NT (10 × 50 over 5000), 16 and 17 rows.
    (10, 33, 1437),
    (10, 50, 5000),
    (16, 257, 129),
    (17, 63, 300),
    // A thin split NT (1 × 32 over 5000: one invocation per element) and its edge (64
    // elements: 2 × 32; 65: 1 × 65, by the row rule).
    (1, 32, 5000),
    (2, 32, 1000),
    (1, 65, 777),
    // One invocation per element for at most 4 rows (`matmul_row`), and its edge (5 rows:
    // the narrow tile).
    (3, 33, 1437),
    (4, 65, 300),
    (5, 63, 65),
];

// ---- tests ------------------------------------------------------------------------------------------

#[test]
fn compare_rejects_perturbed_gpu_output() {
    let Some((_l, g)) = gpu() else { return };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let (x, y) = (
        rand_mat(&mut rng, 5, 40, -1.0, 1.0),
        rand_mat(&mut rng, 5, 40, -1.0, 1.0),
    );
    let cpu = CpuBackend::<f32>::new();
    let run = |be: &dyn Fn() -> Vec<f64>| out("axpby", be());
    let want = run(&|| {
        let mut o = cpu.zeros(5, 40).unwrap();
        cpu.axpby(&mut o, 0.5, &up(&cpu, &x), 2.0, &up(&cpu, &y))
            .unwrap();
        dl(&cpu, &o)
    });
    let got = run(&|| {
        let mut o = g.zeros(5, 40).unwrap();
        g.axpby(&mut o, 0.5, &up(g, &x), 2.0, &up(g, &y)).unwrap();
        dl(g, &o)
    });
    compare(&got, &want).expect("unperturbed GPU output matches");
    let mut bad = got.clone();
    bad.vals[117] *= 1.0 + 1e-3;
    let e = compare(&bad, &want).expect_err("perturbed output must be rejected");
    assert!(e.contains("index 117"), "{e}");
    let mut bad = got.clone();
    bad.vals[3] = f64::NAN;
    assert!(compare(&bad, &want).unwrap_err().contains("index 3"));
    let mut bad = got.clone();
    bad.vals[4] = f64::INFINITY;
    assert!(compare(&bad, &want).is_err());
    let nan = out("nan", vec![f64::NAN, f64::NEG_INFINITY]);
    compare(&nan, &nan).expect("NaN matches NaN, -inf matches -inf");
}

#[test]
fn matmuls_match_cpu() {
    let Some((_l, g)) = gpu() else { return };
    let cpu = CpuBackend::<f32>::new();
    for (t, &(m, k, n)) in MM_SIZES.iter().enumerate() {
        let want = matmul_suite(&cpu, m, k, n, 100 + t as u64);
        let got = matmul_suite(g, m, k, n, 100 + t as u64);
        compare_all(&format!("matmul {m}×{k}×{n}"), &got, &want);
    }
}

/// `weight_grads` (`G Xᵀ` and `G 1` of an `m × N` G and a `k × N` X) and, for a bitwise
/// check, `G Xᵀ` by `matmul_nt` alone.
fn weight_grad_suite<B: Backend>(be: &B, m: usize, k: usize, n: usize, seed: u64) -> Vec<Out> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let g = rand_mat(&mut rng, m, n, -1.0, 1.0);
    let x = rand_mat(&mut rng, k, n, -1.0, 1.0);
    let (dg, dx) = (up(be, &g), up(be, &x));
    // NaN outputs: both must be written, never read.
    let mut gw = up(be, &Array2::from_elem((m, k), f32::NAN));
    let mut gb = up(be, &Array2::from_elem((m, 1), f32::NAN));
    be.weight_grads(&mut gw, &mut gb, &dg, &dx).unwrap();
    let mut plain = up(be, &Array2::from_elem((m, k), f32::NAN));
    be.matmul_nt(&mut plain, &dg, &dx, 0.0).unwrap();
    let mag_w = f64s(&abs(&g).dot(&abs(&x).t()));
    let mag_b = f64s(&abs(&g).dot(&Array2::ones((n, 1))));
    vec![
        Out {
            name: format!("weight grad {m}×{k} over {n}"),
            vals: dl(be, &gw),
            mag: mag_w.clone(),
            n,
        },
        Out {
            name: format!("bias grad {m} over {n}"),
            vals: dl(be, &gb),
            mag: mag_b,
            n,
        },
        Out {
            name: format!("matmul_nt {m}×{k} over {n}"),
            vals: dl(be, &plain),
            mag: mag_w,
            n,
        },
    ]
}

/// The GPU's weight gradient carries the bias gradient as a column of ones in the same
/// product: it matches the CPU's two operations on every tile (wide, narrow at ≤ 16 rows,
/// ≤ 64 elements with the ones column, K split or not) and across chunks, and its
/// `G Xᵀ` is `matmul_nt`'s, bit for bit (the ones column changes no other element).
#[test]
fn weight_grads_match_cpu() {
    let Some((_l, g)) = gpu() else { return };
    let gc = gpu_chunked().expect("chunked backend");
    let gs = gpu_shaped().expect("backend");
    let gf = gpu_fallback().expect("backend");
    let cpu = CpuBackend::<f32>::new();
    // (m rows of G, k inputs, N samples): 1; odd sizes; digits' and teacher's layers (split
    // K); output layers (narrow, and thin: 1 × (32 + 1) over 5000); the thin edge (2 ×
    // (31 + 1) = 64 elements, 2 × (32 + 1) = 66 by the row rule); 17 rows; N below the split;
    // empty operands.
    let sizes = [
        (1, 1, 1),
        (63, 65, 257),
        (100, 64, 1437),
        (64, 50, 5000),
        (10, 100, 1437),
        (1, 32, 5000),
        (2, 31, 1000),
        (2, 32, 1000),
        (17, 63, 300),
        (65, 257, 63),
        // No inputs (every input feature pruned: the product is the ones column alone),
        // no rows, no samples.
        (3, 0, 100),
        (20, 0, 700),
        (0, 5, 100),
        (3, 5, 0),
    ];
    for (t, &(m, k, n)) in sizes.iter().enumerate() {
        let seed = 400 + t as u64;
        let want = weight_grad_suite(&cpu, m, k, n, seed);
        for (name, be) in [
            ("gpu", g),
            ("chunked", gc),
            ("gpu-shaped", gs),
            ("fallback", gf),
        ] {
            let got = weight_grad_suite(be, m, k, n, seed);
            compare_all(&format!("{name} weight grads {m}×{k}×{n}"), &got, &want);
            let same = got[0]
                .vals
                .iter()
                .zip(&got[2].vals)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{name} {m}×{k}×{n}: G Xᵀ differs from matmul_nt's");
        }
    }
}

#[test]
fn ops_match_cpu() {
    let Some((_l, g)) = gpu() else { return };
    let cpu = CpuBackend::<f32>::new();
    for (t, &(r, c)) in OP_SIZES.iter().enumerate() {
        let want = op_suite(&cpu, r, c, 200 + t as u64);
        let got = op_suite(g, r, c, 200 + t as u64);
        compare_all(&format!("ops {r}×{c}"), &got, &want);
    }
}

#[test]
fn chunked_matches_unchunked_and_cpu() {
    let Some((_l, g)) = gpu() else { return };
    let gc = gpu_chunked().expect("chunked backend");
    let cpu = CpuBackend::<f32>::new();
    // The chunking really happens.
    let probe = gc.zeros(300, 1000).unwrap();
    assert!(probe.num_chunks() > 50, "{probe:?}");
    for &(m, k, n) in &[
        (300, 64, 1000),
        (65, 257, 63),
        (64, 300, 777),
        (10, 33, 5000),
    ] {
        let want = matmul_suite(&cpu, m, k, n, 7);
        let plain = matmul_suite(g, m, k, n, 7);
        let chunked = matmul_suite(gc, m, k, n, 7);
        compare_all(
            &format!("chunked vs unchunked matmul {m}×{k}×{n}"),
            &chunked,
            &plain,
        );
        compare_all(
            &format!("chunked vs cpu matmul {m}×{k}×{n}"),
            &chunked,
            &want,
        );
    }
    for &(r, c) in &[(300, 1000), (64, 1437), (257, 63), (1, 5000)] {
        let want = op_suite(&cpu, r, c, 9);
        let plain = op_suite(g, r, c, 9);
        let chunked = op_suite(gc, r, c, 9);
        compare_all(
            &format!("chunked vs unchunked ops {r}×{c}"),
            &chunked,
            &plain,
        );
        compare_all(&format!("chunked vs cpu ops {r}×{c}"), &chunked, &want);
    }
}

#[test]
fn gpu_launch_shapes_match_cpu() {
    let Some((_l, g)) = gpu() else { return };
    let gs = gpu_shaped().expect("backend");
    let cpu = CpuBackend::<f32>::new();
    for &(r, c) in &[(1, 1), (65, 63), (300, 1000)] {
        compare_all(
            &format!("gpu-shaped ops {r}×{c}"),
            &op_suite(gs, r, c, 11),
            &op_suite(&cpu, r, c, 11),
        );
    }
    // GPUs run the wide tile with 4×4 blocks per invocation, CPU adapters with 8×8, or
    // with 8-lane subgroups `matmul_sg`: each element adds the same products in the same
    // order, so the bits agree.
    let gf = gpu_fallback().expect("backend");
    eprintln!(
        "matmul kernels: default {}, gpu-shaped {}, fallback {}",
        g.wide_matmul(),
        gs.wide_matmul(),
        gf.wide_matmul()
    );
    assert_eq!(gs.wide_matmul(), "matmul");
    assert_ne!(gf.wide_matmul(), "matmul_sg");
    for (t, &(m, k, n)) in MM_SIZES.iter().enumerate() {
        let seed = 300 + t as u64;
        let base = matmul_suite(g, m, k, n, seed);
        for (label, be) in [("gpu-shaped", gs), ("fallback", gf)] {
            let other = matmul_suite(be, m, k, n, seed);
            let name = format!("{label} matmul {m}×{k}×{n}");
            compare_all(&name, &other, &matmul_suite(&cpu, m, k, n, seed));
            for (a, b) in other.iter().zip(&base) {
                let same = a
                    .vals
                    .iter()
                    .zip(&b.vals)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
                assert!(same, "{name}: {} differs from the default shapes'", a.name);
            }
        }
    }
}

#[test]
fn shape_mismatches_are_errors() {
    let Some((_l, g)) = gpu() else { return };
    let a = g.zeros(3, 4).unwrap();
    let b = g.zeros(5, 6).unwrap();
    let mut c = g.zeros(3, 6).unwrap();
    let is_shape = |r: Result<(), BackendError>| matches!(r, Err(BackendError::Shape { .. }));
    assert!(is_shape(g.matmul_nn(&mut c, &a, &b, None, 0.0)));
    assert!(is_shape(g.matmul_nt(&mut c, &a, &b, 0.0)));
    assert!(is_shape(g.matmul_tn(&mut c, &a, &b, 0.0)));
    let bias = g.zeros(4, 1).unwrap();
    let b4 = g.zeros(4, 6).unwrap();
    assert!(is_shape(g.matmul_nn(&mut c, &a, &b4, Some(&bias), 0.0)));
    let mut o = g.zeros(3, 4).unwrap();
    assert!(is_shape(g.axpby(&mut o, 1.0, &a, 1.0, &b)));
    assert!(is_shape(g.axpy(&mut c, 1.0, &a)));
    assert!(is_shape(g.gather_cols(&mut o, &a, &[0, 1])));
    assert!(is_shape(g.gather_cols(&mut o, &a, &[0, 1, 2, 9])));
    let mut sh = g.zeros(1, 3).unwrap();
    assert!(is_shape(g.group_prox(&mut o, 0.1, Axis::Rows, &mut sh, 0)));
    assert!(is_shape(g.constraint_value(&a, &a, &a, 0.1, NUM_SLOTS - 2)));
    assert!(is_shape(g.loss(&a, &b, LossKind::Squared, 0)));
    assert!(matches!(
        g.read_slots(&[NUM_SLOTS]),
        Err(BackendError::Shape { .. })
    ));
    assert!(matches!(
        g.write(&mut o, Array2::<f32>::zeros((4, 3)).view()),
        Err(BackendError::Shape { .. })
    ));
    let mut v = g.zeros(3, 4).unwrap();
    let mut m = g.zeros(3, 4).unwrap();
    assert!(is_shape(g.adam_update(
        &mut o, &b, &mut m, &mut v, 0.1, 0.9, 0.99, 1e-8, 1
    )));
    // The backend is still usable after the errors.
    g.sq_norm(&a, 0).unwrap();
    assert_eq!(g.read_slots(&[0]).unwrap(), vec![0.0]);
}

#[test]
fn dot_into_last_slot_is_fine() {
    let Some((_l, g)) = gpu() else { return };
    let a = g.upload(Array2::from_elem((2, 3), 2.0f32).view()).unwrap();
    g.dot(&a, &a, NUM_SLOTS - 1).unwrap();
    assert_eq!(g.read_slots(&[NUM_SLOTS - 1]).unwrap(), vec![24.0]);
    assert!(matches!(
        g.sq_norm(&a, NUM_SLOTS),
        Err(BackendError::Shape { .. })
    ));
    assert!(matches!(
        g.constraint_value(&a, &a, &a, 0.1, NUM_SLOTS - 2),
        Err(BackendError::Shape { .. })
    ));
}

/// Reductions recorded in a row share their stage-2 dispatches (at most eight each), in
/// order: twenty sums into twenty slots, then slot 7 written twice (the later value
/// wins), on the plain and on the chunked backend.
#[test]
fn pending_reductions_finalize_in_order() {
    let Some((_l, g)) = gpu() else { return };
    let gc = gpu_chunked().expect("chunked backend");
    for be in [g, gc] {
        let host = Array2::from_shape_fn((64, 300), |(i, j)| ((i + j) % 7) as f32);
        let (a, twice) = (up(be, &host), up(be, &host.mapv(|x| 2.0 * x)));
        let want: f64 = host.iter().map(|&x| x as f64 * x as f64).sum();
        be.sync().unwrap();
        let c0 = be.counters();
        for slot in 0..20 {
            be.sq_norm(&a, slot).unwrap();
        }
        be.dot(&a, &twice, 7).unwrap();
        be.sq_norm(&a, 7).unwrap();
        let v = be.read_slots(&(0..20).collect::<Vec<_>>()).unwrap();
        assert!(v.iter().all(|&x| x == want), "{v:?} vs {want}");
        let stage1 = 22 * a.num_chunks() as u64;
        let stage2 = be.counters().dispatches - c0.dispatches - stage1;
        assert_eq!(stage2, 3, "stage-2 dispatches for 22 reductions");
    }
}

#[test]
fn one_readback_per_read_slots_and_recording_is_lazy() {
    let Some((_l, g)) = gpu() else { return };
    let a = g
        .upload(Array2::from_elem((64, 100), 1.0f32).view())
        .unwrap();
    let mut b = g.zeros(64, 100).unwrap();
    g.sync().unwrap();
    let c0 = g.counters();
    for _ in 0..10 {
        g.axpy(&mut b, 0.5, &a).unwrap();
    }
    g.sq_norm(&b, 1).unwrap();
    g.dot(&a, &b, 2).unwrap();
    let c1 = g.counters();
    assert_eq!(c1.submits, c0.submits, "ops must only record");
    assert_eq!(c1.readbacks, c0.readbacks);
    // Ten axpys and the two reductions' stage 1; their stage 2 waits for the read.
    assert_eq!(c1.dispatches, c0.dispatches + 12, "{c0:?} → {c1:?}");
    let v = g.read_slots(&[1, 2]).unwrap();
    let c2 = g.counters();
    assert_eq!(
        c2.dispatches,
        c1.dispatches + 1,
        "one stage 2 for both reductions"
    );
    assert_eq!(c2.readbacks, c1.readbacks + 1);
    assert_eq!(c2.submits, c1.submits + 1);
    assert_eq!(v, vec![6400.0 * 25.0, 6400.0 * 5.0]);
}

#[test]
fn adapter_report_and_name() {
    let Some((_l, g)) = gpu() else { return };
    let r = g.adapter_info();
    assert!(!r.name.is_empty());
    assert!(r.max_storage_buffer_binding_size > 0);
    let s = r.to_string();
    assert!(s.contains("max_storage_buffer_binding_size"), "{s}");
    assert!(g.name().contains(&r.name));
    let all = sparse_alm::backend::gpu::list_adapters();
    assert!(all.iter().any(|a| a.name == r.name), "{all:?}");
    eprintln!("adapter: {s}");
}

#[test]
#[ignore]
fn probe_overheads() {
    let Some((_l, g)) = gpu() else { return };
    let t = |name: &str, f: &mut dyn FnMut()| {
        f();
        g.sync().unwrap();
        let reps = 200;
        let t0 = std::time::Instant::now();
        for _ in 0..reps {
            f();
        }
        let recorded = t0.elapsed().as_secs_f64();
        g.sync().unwrap();
        eprintln!(
            "{name}: {:.1} µs/call recorded, {:.1} µs/call run",
            recorded * 1e6 / reps as f64,
            t0.elapsed().as_secs_f64() * 1e6 / reps as f64
        );
    };
    let mut a = g.zeros(1, 1).unwrap();
    t("scale 1×1", &mut || g.scale(&mut a, 1.0).unwrap());
    let mut b = g.zeros(100, 1437).unwrap();
    t("scale 100×1437", &mut || g.scale(&mut b, 1.0).unwrap());
    t("sq_norm 100×1437", &mut || g.sq_norm(&b, 0).unwrap());
    t("sq_norm 1×1", &mut || g.sq_norm(&a, 0).unwrap());
    let mut w = g.zeros(100, 64).unwrap();
    let mut sh = g.zeros(100, 1).unwrap();
    t("group_prox 100×64", &mut || {
        g.group_prox(&mut w, 0.1, Axis::Rows, &mut sh, 0).unwrap()
    });
    t("read_slots", &mut || {
        g.read_slots(&[0]).unwrap();
    });
}

/// More dispatches than one uniform arena holds (4096) in one submission, with gathers
/// interleaved: the arena flushes mid-stream and every dispatch keeps its own parameters
/// and indices.
#[test]
fn arena_overflow_keeps_per_dispatch_parameters() {
    let Some((_l, g)) = gpu() else { return };
    let x = Array2::from_shape_fn((3, 8), |(i, j)| (i * 8 + j) as f32);
    let dx = g.upload(x.view()).unwrap();
    let mut acc = g.zeros(3, 8).unwrap();
    let mut outs = Vec::new();
    let s0 = g.counters().submits;
    for t in 0..5000u32 {
        g.axpy(&mut acc, (t % 7) as f32, &dx).unwrap();
        if t % 1000 == 999 {
            let idx: Vec<u32> = (0..4).map(|j| (j * 2 + t / 1000) % 8).collect();
            let mut o = g.zeros(3, 4).unwrap();
            g.gather_cols(&mut o, &dx, &idx).unwrap();
            outs.push((idx, o));
        }
    }
    let total: f32 = (0..5000u32).map(|t| (t % 7) as f32).sum();
    let got = g.download(&acc).unwrap();
    assert!(
        g.counters().submits >= s0 + 2,
        "the arena should have flushed"
    );
    for ((i, j), &v) in got.indexed_iter() {
        assert_eq!(v, total * x[[i, j]], "acc[{i},{j}]");
    }
    for (idx, o) in outs {
        let o = g.download(&o).unwrap();
        for (j, &c) in idx.iter().enumerate() {
            for i in 0..3 {
                assert_eq!(o[[i, j]], x[[i, c as usize]], "gather {idx:?}");
            }
        }
    }
}

// ---- a ladder decided on the device --------------------------------------------------------

/// Put `v` into slot `s` (as the f32 a reduction would write: `⟨[v], [1]⟩`).
fn set_slot<B: Backend>(be: &B, s: usize, v: f32) {
    let a = up(be, &Array2::from_elem((1, 1), v));
    let one = up(be, &Array2::from_elem((1, 1), 1.0));
    be.dot(&a, &one, s).unwrap();
}

/// `ladder_select` over every outcome (candidate 0, candidate 1, both failed, skipped after
/// a failed block) of W and V tests whose current values come from sums, a value slot or
/// the host: the reports, and five pairs of `r × c`, `(r+1) × (c/2+1)`, `r × c`, `1 × c`
/// and `(r+2) × 1` matrices (four go in one GPU dispatch, the fifth in another).
fn ladder_suite<B: Backend>(be: &B, r: usize, c: usize, seed: u64) -> Vec<Out> {
    use sparse_alm::backend::ladder::{LadderModel, LadderPiece, LadderTest, PieceAt};
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut outs = Vec::new();
    let (rho, n) = (3.0f64, 50.0f64);
    // The failed report the skipped cases chain to.
    set_slot(be, 490, 2.0);
    let mut case = 0;
    for v_model in [false, true] {
        for mode in 0..3 {
            for outcome in 0..4 {
                case += 1;
                let base = 300;
                let report = 480;
                // Piece values: piece 0 hidden (from sums), piece 1 the output's loss.
                let phi = [
                    rng.random_range(-1.0..1.0f32),
                    rng.random_range(0.5..2.0f32),
                ];
                let pieces = if v_model { 2 } else { 1 };
                let mut ps = [None, None];
                for (k, p) in ps.iter_mut().enumerate().take(pieces) {
                    let hidden = k == 0;
                    let now_slot = base + 10 * k;
                    let now = match mode {
                        0 => {
                            if hidden {
                                // (⟨Λ,H⟩ + ρ/2‖H‖²)/N = phi with ‖H‖² = 0.2.
                                set_slot(be, now_slot, 0.2);
                                set_slot(be, now_slot + 1, (n as f32) * phi[k] - 0.3);
                            } else {
                                set_slot(be, now_slot, phi[k]);
                            }
                            PieceAt::Sums(now_slot)
                        }
                        1 => {
                            set_slot(be, now_slot, phi[k]);
                            PieceAt::Value(now_slot)
                        }
                        _ => PieceAt::Host(phi[k] as f64),
                    };
                    // Candidate c's value phi + delta: −0.25 passes, +0.25 fails.
                    let deltas = match outcome {
                        1 => [0.25, -0.25],
                        2 => [0.25, 0.25],
                        _ => [-0.25, -0.25],
                    };
                    let mut cand = [0; 2];
                    for (ci, d) in deltas.iter().enumerate() {
                        let s = base + 20 + 10 * k + 4 * ci;
                        let val = phi[k] + d / pieces as f32;
                        if hidden {
                            set_slot(be, s, 0.0);
                            set_slot(be, s + 1, n as f32 * val);
                        } else {
                            set_slot(be, s, val);
                        }
                        cand[ci] = s;
                    }
                    *p = Some(LadderPiece { hidden, now, cand });
                }
                let model = if v_model {
                    set_slot(be, base + 60, 0.1);
                    LadderModel::V { grad_sq: base + 60 }
                } else {
                    set_slot(be, base + 70, 1.5);
                    for (ci, st) in [base + 80, base + 90].into_iter().enumerate() {
                        set_slot(be, st, 1.5);
                        set_slot(be, st + 2, -0.01 * ci as f32);
                        set_slot(be, st + 3, 0.5);
                    }
                    LadderModel::W {
                        step: [base + 80, base + 90],
                        penalty: PieceAt::Sums(base + 70),
                        lambda: 0.1,
                    }
                };
                let test = LadderTest {
                    pieces: ps,
                    model,
                    ts: [2.0, 1.0],
                    width: 2,
                    rho,
                    n,
                    slack: 8.0 * f32::EPSILON as f64,
                    prev: (outcome == 3).then_some(490),
                    report,
                };
                let shapes = [(r, c), (r + 1, c / 2 + 1), (r, c), (1, c), (r + 2, 1)];
                let mut dst: Vec<B::Mat> = shapes
                    .iter()
                    .map(|&(a, b)| up(be, &rand_mat(&mut rng, a, b, -1.0, 1.0)))
                    .collect();
                let cands: Vec<[B::Mat; 2]> = shapes
                    .iter()
                    .map(|&(a, b)| [0, 1].map(|_| up(be, &rand_mat(&mut rng, a, b, -1.0, 1.0))))
                    .collect();
                let mut pairs: Vec<(&mut B::Mat, [&B::Mat; 2])> = dst
                    .iter_mut()
                    .zip(&cands)
                    .map(|(d, [c0, c1])| (d, [c0, c1]))
                    .collect();
                be.ladder_select(&mut pairs, &test).unwrap();
                let rep = slots(be, &[report, report + 1, report + 2, report + 3]);
                let label = format!("case {case} (V {v_model}, mode {mode}, outcome {outcome})");
                let want = [0.0, 1.0, 2.0, 3.0][outcome];
                assert_eq!(rep[0], want, "{label}: decision");
                outs.push(out(format!("{label}: report"), rep));
                for (i, d) in dst.iter().enumerate() {
                    outs.push(out(format!("{label}: pair {i}"), dl(be, d)));
                }
            }
        }
    }
    outs
}

#[test]
fn ladder_select_matches_cpu() {
    let Some((_l, g)) = gpu() else { return };
    let gc = gpu_chunked().expect("chunked backend");
    let cpu = CpuBackend::<f32>::new();
    for (t, &(r, c)) in OP_SIZES.iter().chain(&[(64, 1437)]).enumerate() {
        let want = ladder_suite(&cpu, r, c, 300 + t as u64);
        let got = ladder_suite(g, r, c, 300 + t as u64);
        compare_all(&format!("ladder_select {r}×{c}"), &got, &want);
        let chunked = ladder_suite(gc, r, c, 300 + t as u64);
        compare_all(&format!("chunked ladder_select {r}×{c}"), &chunked, &want);
    }
}

/// A failed device-decided ladder voids the GPU work recorded after it until the next
/// readback (the host redoes it), and a passed one does not.
#[test]
fn failed_ladder_voids_later_dispatches() {
    use sparse_alm::backend::ladder::{LadderModel, LadderPiece, LadderTest, PieceAt};
    let Some((_l, g)) = gpu() else { return };
    for (pass, want) in [(true, 7.0), (false, 0.0)] {
        set_slot(g, 300, 1.0);
        set_slot(g, 304, if pass { 0.5 } else { 2.0 });
        set_slot(g, 308, if pass { 0.5 } else { 2.0 });
        set_slot(g, 312, 0.1);
        let test = LadderTest {
            pieces: [
                Some(LadderPiece {
                    hidden: false,
                    now: PieceAt::Sums(300),
                    cand: [304, 308],
                }),
                None,
            ],
            model: LadderModel::V { grad_sq: 312 },
            ts: [2.0, 1.0],
            width: 2,
            rho: 1.0,
            n: 10.0,
            slack: 1e-6,
            prev: None,
            report: 480,
        };
        let mut d = g.zeros(3, 65).unwrap();
        let c = [g.zeros(3, 65).unwrap(), g.zeros(3, 65).unwrap()];
        g.ladder_select(&mut [(&mut d, [&c[0], &c[1]])], &test)
            .unwrap();
        let mut m = g.zeros(65, 257).unwrap();
        g.fill(&mut m, 7.0).unwrap();
        let got = dl(g, &m);
        assert!(
            got.iter().all(|&x| x == want),
            "pass {pass}: {:?}",
            &got[..3]
        );
        assert_eq!(slots(g, &[480])[0], if pass { 0.0 } else { 2.0 });
        // The next submission runs unconditionally again.
        g.fill(&mut m, 7.0).unwrap();
        assert!(dl(g, &m).iter().all(|&x| x == 7.0));
    }
}
