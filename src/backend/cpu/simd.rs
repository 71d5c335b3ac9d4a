//! Hand-vectorised versions of the `f32` reductions the ALM's inner sweep spends most of
//! its elementwise time in (method §3 and §6: the fused constraint residual of every block
//! gradient, the constraint value, and the three paired trial kernels that write both
//! candidates of a ladder and value them in one pass: a V trial moving `V`
//! or `U` (`step_pair`), and a hidden layer's W trial
//! (`w_trial_pair_v`)). The compiler's own
//! vectorisation of `constraint.rs` mixes the three sums into shuffles and spills; here one
//! block of 8 elements is one `__m256`, and each sum's 8 `f64` lanes are two `__m256d`
//! (`avx2`) or one `__m512d` (`avx512`, where the CPU has AVX-512F). The kernels do more
//! arithmetic than they move memory (on the teacher problem's layers, a pass ran at the
//! same speed from L2 as from L3), and most of it is the `f64` side: widening 8 lanes
//! and adding one product take one instruction each with `__m512d`, three and two with
//! `__m256d`.
//!
//! Bit for bit the same as `constraint.rs`, on either layout: element `i` goes to lane
//! `i % 8`, each term is computed in `f32` then widened exactly as there, each product is
//! added with one fused multiply-add (the same bits as the generic loop's product then
//! sum: both factors are widened `f32`, so their product, at most 48 significant bits and
//! far from `f64`'s range limits, is exact, and `fma` rounds only the sum; one instruction
//! instead of two), the tail runs the same scalar formula
//! (`residual_elem`, `value_elem`) into the same lanes, and the lanes are added in the
//! same pairwise order. Unit tests compare them at odd sizes (here, and the ladders against
//! the single operations in `constraint/tests.rs`).
//!
//! Only compiled for x86-64; the callers use the widest layout [`isa`] reports.

use super::constraint::{
    residual_elem, step_axpy, value_elem, w_trial_rows, GradsOut, ResidualScalars, TrialRows, Uvl,
};
use super::kernels::{lane_total, LANES};
use crate::backend::Grads;
use std::arch::is_x86_feature_detected;
use std::arch::x86_64::*;

/// Lane accumulators of `K` sums.
type Lanes<const K: usize> = [[f64; LANES]; K];

/// The lane totals, as `kernels::lane_sums` adds them.
fn finish<const K: usize>(acc: Lanes<K>) -> [f64; K] {
    acc.map(|a| lane_total(&a))
}

/// The widest of this module's instruction sets the CPU has (the standard library caches
/// the answer), `None` without AVX2 and FMA (AVX-512F implies FMA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Two `__m256d` per sum.
    Avx2,
    /// One `__m512d` per sum: half the widenings, products and sums of [`Isa::Avx2`].
    Avx512,
}

pub fn isa() -> Option<Isa> {
    if is_x86_feature_detected!("avx512f") {
        Some(Isa::Avx512)
    } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
        Some(Isa::Avx2)
    } else {
        None
    }
}

/// Eight `f32` from `s[i..i + 8]`.
#[inline]
#[target_feature(enable = "avx2")]
fn load(s: &[f32], i: usize) -> __m256 {
    let a: &[f32; 8] = s[i..i + 8].try_into().expect("8 elements");
    // SAFETY: `a` is 8 readable f32; the load is unaligned.
    unsafe { _mm256_loadu_ps(a.as_ptr()) }
}

/// Store eight `f32` into `s[i..i + 8]`.
#[inline]
#[target_feature(enable = "avx2")]
fn store(s: &mut [f32], i: usize, v: __m256) {
    let a: &mut [f32; 8] = (&mut s[i..i + 8]).try_into().expect("8 elements");
    // SAFETY: `a` is 8 writable f32; the store is unaligned.
    unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) }
}

/// The residual's scalars `(α, ρ, 1/N)` in every lane.
#[inline]
#[target_feature(enable = "avx2")]
fn broadcast(k: ResidualScalars<f32>) -> (__m256, __m256, __m256) {
    (
        _mm256_set1_ps(k.al),
        _mm256_set1_ps(k.rho),
        _mm256_set1_ps(k.inv_n),
    )
}

/// Five rows of 8 `f32` as vectors.
#[inline]
#[target_feature(enable = "avx2")]
fn load5(a: [[f32; LANES]; 5]) -> [__m256; 5] {
    [
        load(&a[0], 0),
        load(&a[1], 0),
        load(&a[2], 0),
        load(&a[3], 0),
        load(&a[4], 0),
    ]
}

/// σ(u) for 8 lanes: `u` where `u > 0`, else `α·u` (NaN and −0 as the scalar `sigma`).
#[inline]
#[target_feature(enable = "avx2")]
fn sigma8(u: __m256, al: __m256) -> (__m256, __m256) {
    let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(u, _mm256_setzero_ps());
    (_mm256_blendv_ps(_mm256_mul_ps(al, u), u, pos), pos)
}

/// Each lane's row scalars of the 8 elements from flat position `p` of a W trial's
/// `cols`-wide rows, `[b_old, shrink₀, shrink₁, b_new₀, b_new₁]`; with `cols = 0`, row `p`'s
/// in every lane.
#[inline]
#[allow(clippy::needless_range_loop)] // lane `j` of five arrays
fn row_lanes(p: usize, cols: usize, rows: &[TrialRows<'_, f32>; 2]) -> [[f32; LANES]; 5] {
    let mut a = [[0.0f32; LANES]; 5];
    for j in 0..LANES {
        let r = (p + j).checked_div(cols).unwrap_or(p);
        a[0][j] = rows[0].b_old[r];
        a[1][j] = rows[0].shrink[r];
        a[2][j] = rows[1].shrink[r];
        a[3][j] = rows[0].b_new[r];
        a[4][j] = rows[1].b_new[r];
    }
    a
}

/// The residual and value kernels for one accumulator layout: `$acc` holds the 8 `f64`
/// lanes of one sum (lane `j` = element `i + j` of a block of 8, whatever the registers),
/// `$widen` converts 8 `f32` into it, `$mul_add` adds a product lane-wise (product rounded
/// before the sum), `$spill` writes lanes out in order. The `f32` arithmetic is the same
/// 8-wide code for every layout, so the layouts differ only in how many instructions the
/// same lane-wise `f64` operations take.
macro_rules! constraint_kernels {
    ($feature:literal, $acc:ty, $zero:expr) => {
        /// `constraint::constraint_residual` on one chunk, for `f32`, writing `G_U` when
        /// `WU` and `G_V` when `WV` (`k.write` is not read). The other slices are at least
        /// `us.len()` long.
        #[target_feature(enable = $feature)]
        pub fn residual<const WU: bool, const WV: bool>(
            [us, vs, ls]: Uvl<'_, f32>,
            k: ResidualScalars<f32>,
            [gus, gvs]: GradsOut<'_, f32>,
        ) -> [f64; 3] {
            let n = us.len();
            let full = n - n % LANES;
            let (alv, rhov, invv) = broadcast(k);
            let one = _mm256_set1_ps(1.0);
            let mut acc: [$acc; 3] = [$zero; 3];
            let mut i = 0;
            while i < full {
                let (u, v, l) = (load(us, i), load(vs, i), load(ls, i));
                let (su, pos) = sigma8(u, alv);
                let hv = _mm256_sub_ps(v, su);
                let sv = _mm256_add_ps(l, _mm256_mul_ps(rhov, hv));
                let ds = _mm256_blendv_ps(alv, one, pos);
                // -(sv·σ'(u))·inv_n: negate by subtracting from zero is not −x for x = 0
                // (it gives +0), so flip the sign bit as the scalar negation does.
                if WU {
                    let prod = _mm256_xor_ps(_mm256_mul_ps(sv, ds), _mm256_set1_ps(-0.0));
                    store(gus, i, _mm256_mul_ps(prod, invv));
                }
                if WV {
                    store(gvs, i, _mm256_mul_ps(sv, invv));
                }
                let (h, lw, s) = (widen(hv), widen(l), widen(su));
                mul_add(&mut acc[0], h, h);
                mul_add(&mut acc[1], lw, h);
                mul_add(&mut acc[2], s, s);
                i += LANES;
            }
            let mut lanes = spill(acc);
            for j in full..n {
                let (o, terms) = residual_elem(us[j], vs[j], ls[j], k);
                if WU {
                    gus[j] = o[0];
                }
                if WV {
                    gvs[j] = o[1];
                }
                for (lane, t) in lanes.iter_mut().zip(terms) {
                    lane[j - full] += t;
                }
            }
            finish(lanes)
        }

        /// [`residual`] writing the gradients `k.write` names.
        #[target_feature(enable = $feature)]
        pub fn residual_write(
            uvl: Uvl<'_, f32>,
            k: ResidualScalars<f32>,
            g: GradsOut<'_, f32>,
        ) -> [f64; 3] {
            match k.write {
                Grads::U => residual::<true, false>(uvl, k, g),
                Grads::V => residual::<false, true>(uvl, k, g),
                Grads::Both => residual::<true, true>(uvl, k, g),
            }
        }

        /// Two candidates of a V trial (`constraint::step_value_ladder`, writing `G_U`) on
        /// one chunk: candidate `c` writes `out[c] ← base + a[c]·dir`, which is `V` when
        /// `MOVED_V` (`other` is then `U`) and `U` otherwise (`other` is `V`), the
        /// residual's `G_U` at the moved point into `gu[c]`, and sums its three value sums.
        /// What the candidates share is loaded and computed once: the operands, `Λ`
        /// widened, and when `V` moves `σ(U)`, `σ'(U)` and `‖σ(U)‖²` (`U` does not move).
        /// The other slices are at least `base.len()` long.
        #[target_feature(enable = $feature)]
        pub fn step_pair<const MOVED_V: bool>(
            (base, dir): (&[f32], &[f32]),
            (other, ls): (&[f32], &[f32]),
            a: [f32; 2],
            k: ResidualScalars<f32>,
            [o0, o1]: [&mut [f32]; 2],
            [g0, g1]: [&mut [f32]; 2],
        ) -> [[f64; 3]; 2] {
            let n = base.len();
            let full = n - n % LANES;
            let (alv, rhov, invv) = broadcast(k);
            let (one, neg) = (_mm256_set1_ps(1.0), _mm256_set1_ps(-0.0));
            let av = [_mm256_set1_ps(a[0]), _mm256_set1_ps(a[1])];
            // Per candidate ‖H‖², ⟨Λ,H⟩, ‖σ(U)‖² (moving V, only the first ‖σ(U)‖²).
            let mut acc: [$acc; 6] = [$zero; 6];
            let mut i = 0;
            while i < full {
                let (b, d, o, l) = (load(base, i), load(dir, i), load(other, i), load(ls, i));
                let lw = widen(l);
                // σ(U) and σ'(U) of the unmoved U.
                let (mut su, mut ds) = (o, o);
                if MOVED_V {
                    let pos;
                    (su, pos) = sigma8(o, alv);
                    ds = _mm256_blendv_ps(alv, one, pos);
                    let s = widen(su);
                    mul_add(&mut acc[2], s, s);
                }
                for (c, (out, gu)) in [(&mut *o0, &mut *g0), (&mut *o1, &mut *g1)]
                    .into_iter()
                    .enumerate()
                {
                    // 1·base is exact: `one * base + a * dir` of the generic loop.
                    let m = _mm256_add_ps(b, _mm256_mul_ps(av[c], d));
                    store(out, i, m);
                    let v = if MOVED_V { m } else { o };
                    if !MOVED_V {
                        let pos;
                        (su, pos) = sigma8(m, alv);
                        ds = _mm256_blendv_ps(alv, one, pos);
                        let s = widen(su);
                        mul_add(&mut acc[3 * c + 2], s, s);
                    }
                    let hv = _mm256_sub_ps(v, su);
                    let sv = _mm256_add_ps(l, _mm256_mul_ps(rhov, hv));
                    let prod = _mm256_xor_ps(_mm256_mul_ps(sv, ds), neg);
                    store(gu, i, _mm256_mul_ps(prod, invv));
                    let h = widen(hv);
                    mul_add(&mut acc[3 * c], h, h);
                    mul_add(&mut acc[3 * c + 1], lw, h);
                }
                i += LANES;
            }
            let lanes = spill(acc);
            let shared = if MOVED_V { lanes[2] } else { lanes[5] };
            let mut sums = [[lanes[0], lanes[1], lanes[2]], [lanes[3], lanes[4], shared]];
            for (c, out) in [&mut *o0, &mut *o1].into_iter().enumerate() {
                step_axpy(&mut out[full..n], &base[full..], a[c], &dir[full..]);
            }
            for j in full..n {
                for (c, (out, gu)) in [(&mut *o0, &mut *g0), (&mut *o1, &mut *g1)]
                    .into_iter()
                    .enumerate()
                {
                    let (u, v) = if MOVED_V {
                        (other[j], out[j])
                    } else {
                        (out[j], other[j])
                    };
                    let (o, terms) = residual_elem(u, v, ls[j], k);
                    gu[j] = o[0];
                    for (lane, t) in sums[c].iter_mut().zip(terms) {
                        lane[j - full] += t;
                    }
                }
            }
            sums.map(finish)
        }

        /// Two candidates of a W trial (`constraint::w_trial_value_ladder` writing `G_V`)
        /// on one chunk that starts at flat position `lo` of the row-major matrix:
        /// candidate `c` writes its pre-activation (`constraint::w_trial_rows`' formula)
        /// into `out[c]` and the residual's `G_V` at `(out[c], vs, ls)` into `gv[c]`, and
        /// sums its three value sums. The operands are loaded once for both and `U − b_old`
        /// computed once. A block of 8 inside one row broadcasts that row's scalars; a
        /// block across a row boundary gathers each lane's (`row_lanes`). The other slices
        /// are at least `us.len()` long.
        #[target_feature(enable = $feature)]
        pub fn w_trial_pair_v(
            (us, bs): (&[f32], &[f32]),
            (vs, ls): (&[f32], &[f32]),
            (lo, rows): (usize, [TrialRows<'_, f32>; 2]),
            k: ResidualScalars<f32>,
            [o0, o1]: [&mut [f32]; 2],
            [g0, g1]: [&mut [f32]; 2],
        ) -> [[f64; 3]; 2] {
            let n = us.len();
            let full = n - n % LANES;
            let cols = rows[0].cols.max(1);
            let (alv, rhov, invv) = broadcast(k);
            let tv = [_mm256_set1_ps(rows[0].t), _mm256_set1_ps(rows[1].t)];
            let mut acc: [$acc; 6] = [$zero; 6];
            // The row of chunk position `i`, the position where the next row starts, and
            // the row's [b_old, shrink₀, shrink₁, b_new₀, b_new₁] in every lane.
            let mut row = lo / cols;
            let mut next = (row + 1) * cols - lo;
            let mut splat = if full > 0 {
                load5(row_lanes(row, 0, &rows))
            } else {
                [_mm256_setzero_ps(); 5]
            };
            let mut i = 0;
            while i < full {
                if i >= next {
                    while i >= next {
                        row += 1;
                        next += cols;
                    }
                    splat = load5(row_lanes(row, 0, &rows));
                }
                let r = if i + LANES <= next {
                    splat
                } else {
                    load5(row_lanes(lo + i, cols, &rows))
                };
                let (u, b, v, l) = (load(us, i), load(bs, i), load(vs, i), load(ls, i));
                let lw = widen(l);
                let ub = _mm256_sub_ps(u, r[0]);
                for (c, (out, gv)) in [(&mut *o0, &mut *g0), (&mut *o1, &mut *g1)]
                    .into_iter()
                    .enumerate()
                {
                    // `s·((u − b_old) − t·b) + b_new`, in the generic loop's order.
                    let inner = _mm256_sub_ps(ub, _mm256_mul_ps(tv[c], b));
                    let pre = _mm256_add_ps(_mm256_mul_ps(r[1 + c], inner), r[3 + c]);
                    store(out, i, pre);
                    let (su, _) = sigma8(pre, alv);
                    let hv = _mm256_sub_ps(v, su);
                    let sv = _mm256_add_ps(l, _mm256_mul_ps(rhov, hv));
                    store(gv, i, _mm256_mul_ps(sv, invv));
                    let (h, sw) = (widen(hv), widen(su));
                    mul_add(&mut acc[3 * c], h, h);
                    mul_add(&mut acc[3 * c + 1], lw, h);
                    mul_add(&mut acc[3 * c + 2], sw, sw);
                }
                i += LANES;
            }
            let lanes = spill(acc);
            let mut sums = [
                [lanes[0], lanes[1], lanes[2]],
                [lanes[3], lanes[4], lanes[5]],
            ];
            for (c, out) in [&mut *o0, &mut *o1].into_iter().enumerate() {
                w_trial_rows(
                    &mut out[full..n],
                    lo + full,
                    &us[full..],
                    &bs[full..],
                    rows[c],
                );
            }
            for j in full..n {
                for (c, (out, gv)) in [(&mut *o0, &mut *g0), (&mut *o1, &mut *g1)]
                    .into_iter()
                    .enumerate()
                {
                    let (o, terms) = residual_elem(out[j], vs[j], ls[j], k);
                    gv[j] = o[1];
                    for (lane, t) in sums[c].iter_mut().zip(terms) {
                        lane[j - full] += t;
                    }
                }
            }
            sums.map(finish)
        }

        /// `constraint::constraint_value` on one chunk, for `f32`. The other slices are at
        /// least `us.len()` long.
        #[target_feature(enable = $feature)]
        pub fn value(us: &[f32], vs: &[f32], ls: &[f32], al: f32) -> [f64; 3] {
            let n = us.len();
            let full = n - n % LANES;
            let alv = _mm256_set1_ps(al);
            let mut acc: [$acc; 3] = [$zero; 3];
            let mut i = 0;
            while i < full {
                let (su, _) = sigma8(load(us, i), alv);
                let h = widen(_mm256_sub_ps(load(vs, i), su));
                let (lw, s) = (widen(load(ls, i)), widen(su));
                mul_add(&mut acc[0], h, h);
                mul_add(&mut acc[1], lw, h);
                mul_add(&mut acc[2], s, s);
                i += LANES;
            }
            let mut lanes = spill(acc);
            for j in full..n {
                let terms = value_elem(us[j], vs[j], ls[j], al);
                for (lane, t) in lanes.iter_mut().zip(terms) {
                    lane[j - full] += t;
                }
            }
            finish(lanes)
        }
    };
}

/// The kernels with each sum's lanes in two `__m256d` (lanes 0–3, 4–7).
pub mod avx2 {
    use super::*;

    type Acc = [__m256d; 2];

    /// `[low 4, high 4]` lanes of `v` widened to `f64`.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn widen(v: __m256) -> Acc {
        [
            _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
            _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
        ]
    }

    /// `acc += a·b` lane-wise for widened `f32` factors (exact product: module comment).
    #[inline]
    #[target_feature(enable = "avx2,fma")]
    fn mul_add(acc: &mut Acc, a: Acc, b: Acc) {
        acc[0] = _mm256_fmadd_pd(a[0], b[0], acc[0]);
        acc[1] = _mm256_fmadd_pd(a[1], b[1], acc[1]);
    }

    /// The lanes of `K` vector accumulators as arrays.
    #[target_feature(enable = "avx2")]
    fn spill<const K: usize>(acc: [Acc; K]) -> Lanes<K> {
        let mut out = [[0.0f64; LANES]; K];
        for (o, a) in out.iter_mut().zip(acc) {
            let (lo, hi) = o.split_at_mut(4);
            // SAFETY: `lo` and `hi` are 4 writable f64 each; the stores are unaligned.
            unsafe {
                _mm256_storeu_pd(lo.as_mut_ptr(), a[0]);
                _mm256_storeu_pd(hi.as_mut_ptr(), a[1]);
            }
        }
        out
    }

    constraint_kernels!("avx2,fma", Acc, [_mm256_setzero_pd(); 2]);
}

/// The kernels with each sum's 8 lanes in one `__m512d`.
pub mod avx512 {
    use super::*;

    type Acc = __m512d;

    /// The 8 lanes of `v` widened to `f64`.
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn widen(v: __m256) -> Acc {
        _mm512_cvtps_pd(v)
    }

    /// `acc += a·b` lane-wise for widened `f32` factors (exact product: module comment).
    #[inline]
    #[target_feature(enable = "avx512f")]
    fn mul_add(acc: &mut Acc, a: Acc, b: Acc) {
        *acc = _mm512_fmadd_pd(a, b, *acc);
    }

    /// The lanes of `K` vector accumulators as arrays.
    #[target_feature(enable = "avx512f")]
    fn spill<const K: usize>(acc: [Acc; K]) -> Lanes<K> {
        let mut out = [[0.0f64; LANES]; K];
        for (o, a) in out.iter_mut().zip(acc) {
            // SAFETY: `o` is 8 writable f64; the store is unaligned.
            unsafe { _mm512_storeu_pd(o.as_mut_ptr(), a) }
        }
        out
    }

    constraint_kernels!("avx512f", Acc, _mm512_setzero_pd());
}

#[cfg(test)]
mod tests {
    use super::super::constraint;
    use super::Isa;
    use crate::backend::Grads;
    use rand::{Rng, SeedableRng};

    /// Values of both signs, with zeros of both signs at fixed places (σ and the sign flip
    /// of `G_U` treat ±0 differently from other values).
    fn data(n: usize, seed: u64) -> Vec<f32> {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| match i % 97 {
                13 => 0.0,
                14 => -0.0,
                _ => rng.random_range(-3.0f32..3.0),
            })
            .collect()
    }

    /// Bitwise equality of the AVX2 kernels with the generic loops (outputs and sums compared
    /// as bits).
    /// The layouts this CPU can run.
    fn layouts() -> Vec<Isa> {
        match super::isa() {
            Some(Isa::Avx512) => vec![Isa::Avx2, Isa::Avx512],
            Some(Isa::Avx2) => vec![Isa::Avx2],
            None => {
                eprintln!("no AVX2 on this CPU: nothing to compare");
                Vec::new()
            }
        }
    }

    fn residual_write(isa: Isa, us: &[f32], vs: &[f32], ls: &[f32], k: Scalars) -> Outs {
        let n = us.len();
        // NaN marks what the kernel must leave untouched.
        let mut g: [Vec<f32>; 2] = std::array::from_fn(|_| vec![f32::NAN; n]);
        let [gu, gv] = &mut g;
        // SAFETY: `layouts` lists only what the CPU has.
        let sums = unsafe {
            match isa {
                Isa::Avx2 => super::avx2::residual_write([us, vs, ls], k, [gu, gv]),
                Isa::Avx512 => super::avx512::residual_write([us, vs, ls], k, [gu, gv]),
            }
        };
        (sums, g)
    }

    fn value(isa: Isa, us: &[f32], vs: &[f32], ls: &[f32], al: f32) -> [f64; 3] {
        // SAFETY: `layouts` lists only what the CPU has.
        unsafe {
            match isa {
                Isa::Avx2 => super::avx2::value(us, vs, ls, al),
                Isa::Avx512 => super::avx512::value(us, vs, ls, al),
            }
        }
    }

    type Scalars = super::ResidualScalars<f32>;
    type Outs = ([f64; 3], [Vec<f32>; 2]);

    /// Bitwise equality of each layout's kernels with the generic loops (outputs and sums
    /// compared as bits).
    #[test]
    fn kernels_match_generic_bit_for_bit() {
        for isa in layouts() {
            matches_generic(isa);
        }
    }

    fn matches_generic(isa: Isa) {
        for n in [1usize, 7, 8, 63, 65, 257, 70_001] {
            let (u, v, l) = (data(n, 1), data(n, 2), data(n, 3));
            let al = 0.1f32;
            for write in [Grads::U, Grads::V, Grads::Both] {
                let k = super::ResidualScalars {
                    rho: 3.0f32,
                    al,
                    inv_n: 1.0 / 1437.0,
                    write,
                };
                let (fast, a) = residual_write(isa, &u, &v, &l, k);
                let mut b: [Vec<f32>; 2] = std::array::from_fn(|_| vec![f32::NAN; n]);
                let [bgu, bgv] = &mut b;
                let slow = constraint::generic_residual_chunk([&u, &v, &l], k, [bgu, bgv]);
                assert_eq!(
                    fast.map(f64::to_bits),
                    slow.map(f64::to_bits),
                    "{isa:?} residual sums, n = {n}, {write:?}"
                );
                for (q, (x, y)) in a.iter().zip(&b).enumerate() {
                    let written = if q == 0 { write.u() } else { write.v() };
                    assert_eq!(x.iter().all(|x| x.is_nan()), !written, "{q} {write:?}");
                    let (x, y): (Vec<u32>, Vec<u32>) = (
                        x.iter().map(|v| v.to_bits()).collect(),
                        y.iter().map(|v| v.to_bits()).collect(),
                    );
                    assert_eq!(x, y, "{isa:?} residual output {q}, n = {n}, {write:?}");
                }
            }
            let fast = value(isa, &u, &v, &l, al);
            let slow = constraint::generic_value_chunk(&u, &v, &l, al);
            assert_eq!(
                fast.map(f64::to_bits),
                slow.map(f64::to_bits),
                "{isa:?} value sums, n = {n}"
            );
        }
    }

    /// The comparison above can fail: one changed input moves the sums.
    #[test]
    fn comparison_sees_a_perturbed_input() {
        for isa in layouts() {
            let (u, v, mut l) = (data(65, 1), data(65, 2), data(65, 3));
            let before = value(isa, &u, &v, &l, 0.1);
            l[64] += 1.0;
            let slow = constraint::generic_value_chunk(&u, &v, &l, 0.1);
            assert_ne!(before.map(f64::to_bits), slow.map(f64::to_bits), "{isa:?}");
        }
    }

    /// The paired V-trial kernel against two runs of the generic step (a single chunk:
    /// `constraint::step_value` is then its chunk function) on each layout.
    #[test]
    fn step_pair_matches_two_generic_steps_bit_for_bit() {
        for isa in layouts() {
            for n in [1usize, 7, 8, 63, 65, 257, 4099] {
                let (base, dir, u, l) = (data(n, 1), data(n, 2), data(n, 3), data(n, 4));
                let a = [-0.7f32, -0.35];
                let k = super::ResidualScalars {
                    rho: 3.0f32,
                    al: 0.1,
                    inv_n: 1.0 / 1437.0,
                    write: Grads::U,
                };
                let mut m: [Vec<f32>; 4] = std::array::from_fn(|_| vec![f32::NAN; n]);
                let [o0, g0, o1, g1] = &mut m;
                let (bd, ul) = ((&base[..], &dir[..]), (&u[..], &l[..]));
                // SAFETY: `layouts` lists only what the CPU has.
                let sums = unsafe {
                    match isa {
                        Isa::Avx2 => {
                            super::avx2::step_pair::<true>(bd, ul, a, k, [o0, o1], [g0, g1])
                        }
                        Isa::Avx512 => {
                            super::avx512::step_pair::<true>(bd, ul, a, k, [o0, o1], [g0, g1])
                        }
                    }
                };
                for c in 0..2 {
                    let (mut out, mut g) = (vec![f32::NAN; n], vec![f32::NAN; n]);
                    let step = constraint::Step {
                        base: &base,
                        a: a[c],
                        dir: &dir,
                        moved_v: true,
                        other: &u,
                        ls: &l,
                        k,
                    };
                    let one = constraint::step_value(&mut out, &mut g, step);
                    let bits = |x: &[f32]| x.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&m[2 * c]), bits(&out), "{isa:?} out, n = {n}, {c}");
                    assert_eq!(bits(&m[2 * c + 1]), bits(&g), "{isa:?} G_U, n = {n}, {c}");
                    let (x, y) = (sums[c].map(f64::to_bits), one.map(f64::to_bits));
                    assert_eq!(x, y, "{isa:?} sums, n = {n}, {c}");
                }
            }
        }
    }
}
