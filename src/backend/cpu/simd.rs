//! Hand-vectorised AVX2 versions of the two `f32` reductions the ALM's inner sweep spends
//! most of its elementwise time in (method §3 and §6: the fused constraint residual of
//! every block gradient and the constraint value of every Armijo trial). The compiler's
//! own vectorisation of `constraint.rs` mixes the three sums into shuffles and spills; here
//! one block of 8 elements is one `__m256` and each sum's 8 `f64` lanes are two `__m256d`.
//!
//! Bit for bit the same as `constraint.rs`: element `i` goes to lane `i % 8`, each term
//! is computed in `f32` then widened exactly as there, products and sums are separate
//! instructions (no FMA), the tail runs the same scalar formula (`residual_elem`,
//! `value_elem`) into the same lanes, and the lanes are added in the same pairwise order. A unit test compares the two at odd sizes.
//!
//! Only compiled for x86-64; the callers use it when the CPU reports AVX2.

use super::constraint::{residual_elem, value_elem, ResidualScalars};
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

/// Whether this CPU runs the AVX2 kernels (the standard library caches the answer).
pub fn available() -> bool {
    is_x86_feature_detected!("avx2")
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

/// `[low 4, high 4]` lanes of `v` widened to `f64`.
#[inline]
#[target_feature(enable = "avx2")]
fn widen(v: __m256) -> [__m256d; 2] {
    [
        _mm256_cvtps_pd(_mm256_castps256_ps128(v)),
        _mm256_cvtps_pd(_mm256_extractf128_ps::<1>(v)),
    ]
}

/// `acc += a·b` lane-wise, the product rounded before the sum (no FMA).
#[inline]
#[target_feature(enable = "avx2")]
fn mul_add(acc: &mut [__m256d; 2], a: [__m256d; 2], b: [__m256d; 2]) {
    acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(a[0], b[0]));
    acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(a[1], b[1]));
}

/// The lanes of `K` vector accumulators as arrays.
#[target_feature(enable = "avx2")]
fn spill<const K: usize>(acc: [[__m256d; 2]; K]) -> Lanes<K> {
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

/// σ(u) for 8 lanes: `u` where `u > 0`, else `α·u` (NaN and −0 as the scalar `sigma`).
#[inline]
#[target_feature(enable = "avx2")]
fn sigma8(u: __m256, al: __m256) -> (__m256, __m256) {
    let pos = _mm256_cmp_ps::<_CMP_GT_OQ>(u, _mm256_setzero_ps());
    (_mm256_blendv_ps(_mm256_mul_ps(al, u), u, pos), pos)
}

/// `constraint::constraint_residual` on one chunk, for `f32`, writing `G_U` when `WU` and
/// `G_V` when `WV` (`k.write` is not read). The other slices are at least `us.len()` long.
#[target_feature(enable = "avx2")]
pub fn residual<const WU: bool, const WV: bool>(
    us: &[f32],
    vs: &[f32],
    ls: &[f32],
    k: ResidualScalars<f32>,
    gus: &mut [f32],
    gvs: &mut [f32],
) -> [f64; 3] {
    let n = us.len();
    let full = n - n % LANES;
    let (alv, rhov, invv) = (
        _mm256_set1_ps(k.al),
        _mm256_set1_ps(k.rho),
        _mm256_set1_ps(k.inv_n),
    );
    let one = _mm256_set1_ps(1.0);
    let mut acc = [[_mm256_setzero_pd(); 2]; 3];
    let mut i = 0;
    while i < full {
        let (u, v, l) = (load(us, i), load(vs, i), load(ls, i));
        let (su, pos) = sigma8(u, alv);
        let hv = _mm256_sub_ps(v, su);
        let sv = _mm256_add_ps(l, _mm256_mul_ps(rhov, hv));
        let ds = _mm256_blendv_ps(alv, one, pos);
        // -(sv·σ'(u))·inv_n: negate by subtracting from zero is not −x for x = 0 (it gives
        // +0), so flip the sign bit as the scalar negation does.
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
#[target_feature(enable = "avx2")]
pub fn residual_write(
    us: &[f32],
    vs: &[f32],
    ls: &[f32],
    k: ResidualScalars<f32>,
    gus: &mut [f32],
    gvs: &mut [f32],
) -> [f64; 3] {
    match k.write {
        Grads::U => residual::<true, false>(us, vs, ls, k, gus, gvs),
        Grads::V => residual::<false, true>(us, vs, ls, k, gus, gvs),
        Grads::Both => residual::<true, true>(us, vs, ls, k, gus, gvs),
    }
}

/// `constraint::constraint_value` on one chunk, for `f32`. The other slices are at least
/// `us.len()` long.
#[target_feature(enable = "avx2")]
pub fn value(us: &[f32], vs: &[f32], ls: &[f32], al: f32) -> [f64; 3] {
    let n = us.len();
    let full = n - n % LANES;
    let alv = _mm256_set1_ps(al);
    let mut acc = [[_mm256_setzero_pd(); 2]; 3];
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

#[cfg(test)]
mod tests {
    use super::super::constraint;
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
    #[test]
    fn avx2_matches_generic_bit_for_bit() {
        if !super::available() {
            eprintln!("no AVX2 on this CPU: nothing to compare");
            return;
        }
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
                // NaN marks what the kernel must leave untouched.
                let mut a: [Vec<f32>; 2] = std::array::from_fn(|_| vec![f32::NAN; n]);
                let mut b: [Vec<f32>; 2] = std::array::from_fn(|_| vec![f32::NAN; n]);
                let [agu, agv] = &mut a;
                // SAFETY: AVX2 checked above.
                let fast = unsafe { super::residual_write(&u, &v, &l, k, agu, agv) };
                let [bgu, bgv] = &mut b;
                let slow = constraint::generic_residual_chunk(&u, &v, &l, k, bgu, bgv);
                assert_eq!(
                    fast.map(f64::to_bits),
                    slow.map(f64::to_bits),
                    "residual sums, n = {n}, {write:?}"
                );
                for (q, (x, y)) in a.iter().zip(&b).enumerate() {
                    let written = if q == 0 { write.u() } else { write.v() };
                    assert_eq!(x.iter().all(|x| x.is_nan()), !written, "{q} {write:?}");
                    let (x, y): (Vec<u32>, Vec<u32>) = (
                        x.iter().map(|v| v.to_bits()).collect(),
                        y.iter().map(|v| v.to_bits()).collect(),
                    );
                    assert_eq!(x, y, "residual output {q}, n = {n}, {write:?}");
                }
            }
            // SAFETY: AVX2 checked above.
            let fast = unsafe { super::value(&u, &v, &l, al) };
            let slow = constraint::generic_value_chunk(&u, &v, &l, al);
            assert_eq!(
                fast.map(f64::to_bits),
                slow.map(f64::to_bits),
                "value sums, n = {n}"
            );
        }
    }

    /// The comparison above can fail: one changed input moves the sums.
    #[test]
    fn comparison_sees_a_perturbed_input() {
        if !super::available() {
            return;
        }
        let (u, v, mut l) = (data(65, 1), data(65, 2), data(65, 3));
        // SAFETY: AVX2 checked above.
        let before = unsafe { super::value(&u, &v, &l, 0.1) };
        l[64] += 1.0;
        let slow = constraint::generic_value_chunk(&u, &v, &l, 0.1);
        assert_ne!(before.map(f64::to_bits), slow.map(f64::to_bits));
    }
}
