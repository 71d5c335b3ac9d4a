//! The synthetic teacher problem (as in the method's numpy prototype): a random sparse leaky ReLU
//! network labels Gaussian inputs; the student should recover a network at least as
//! sparse. Everything comes from one seeded ChaCha8 stream, drawn in a fixed order
//! (per layer: weights, zero-row choice, biases; then X; then noise).

use super::TeacherParams;
use ndarray::{Array1, Array2, Axis};
use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

/// The teacher's leaky ReLU slope (fixed by the reference problem).
pub(crate) const TEACHER_ALPHA: f64 = 0.1;

/// Bytes the generation of `p` holds at its peak, about: `X` and its f64 activations
/// (`8·(d + 2·widest)` per sample), the f32 copies handed out and their train/test slices
/// (`2·4·(d + m)` per sample). In `u128`, so no count a config can hold overflows it.
pub(crate) fn memory_estimate(p: &TeacherParams) -> u128 {
    let n = p.n_train as u128 + p.n_test as u128;
    let d = p.sizes.first().copied().unwrap_or(0) as u128;
    let m = p.sizes.last().copied().unwrap_or(0) as u128;
    let widest = p.sizes.iter().copied().max().unwrap_or(0) as u128;
    let weights: u128 = p
        .sizes
        .windows(2)
        .map(|w| 8 * (w[0] as u128 * w[1] as u128 + w[1] as u128))
        .sum();
    n * (8 * (d + 2 * widest) + 8 * (d + m)) + weights
}

/// `(X, Y)` over all `n_train + n_test` samples, one sample per column; Y standardised
/// per output over all samples, then noise added.
pub(crate) fn generate(p: &TeacherParams) -> (Array2<f32>, Array2<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let normal = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };
    let mut layers = Vec::new();
    let n_layers = p.sizes.len() - 1;
    for l in 0..n_layers {
        let (fan_in, fan_out) = (p.sizes[l], p.sizes[l + 1]);
        let std = (2.0 / ((1.0 + TEACHER_ALPHA * TEACHER_ALPHA) * fan_in as f64)).sqrt();
        let mut w = Array2::from_shape_simple_fn((fan_out, fan_in), || 0.0);
        w.iter_mut().for_each(|v| *v = std * normal(&mut rng));
        if l < n_layers - 1 {
            let k = p.zero_rows.get(l).copied().unwrap_or(0).min(fan_out);
            for r in rand::seq::index::sample(&mut rng, fan_out, k) {
                w.row_mut(r).fill(0.0);
            }
        }
        let mut b = Array1::zeros(fan_out);
        b.iter_mut()
            .for_each(|v: &mut f64| *v = p.bias_std * normal(&mut rng));
        layers.push((w, b));
    }
    let n = p.n_train + p.n_test;
    let mut x = Array2::<f64>::zeros((p.sizes[0], n));
    x.iter_mut().for_each(|v| *v = normal(&mut rng));
    let mut a = x.clone();
    for (l, (w, b)) in layers.iter().enumerate() {
        let mut u = w.dot(&a);
        u += &b.view().insert_axis(Axis(1));
        if l < n_layers - 1 {
            u.mapv_inplace(|v| if v > 0.0 { v } else { TEACHER_ALPHA * v });
        }
        a = u;
    }
    let mut y = a;
    for mut row in y.rows_mut() {
        let mean = row.mean().unwrap_or(0.0);
        let var =
            row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / row.len().max(1) as f64;
        let std = if var > 0.0 { var.sqrt() } else { 1.0 };
        row.mapv_inplace(|v| (v - mean) / std);
    }
    y.iter_mut().for_each(|v| *v += p.noise * normal(&mut rng));
    (x.mapv(|v| v as f32), y.mapv(|v| v as f32))
}
