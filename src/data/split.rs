//! Seeded train/test splitting. A stratified split gives each class its share of the
//! held-out count by largest remainders, so the test set's class proportions match the
//! data's as closely as integers allow and the total is exactly what was asked for.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;

/// Split `0..n` into `(kept, taken)` with `taken.len() == n_take`, both sorted (so the
/// result keeps file order and depends only on the seed). `strata`: class per sample.
pub(crate) fn split_indices(
    n: usize,
    n_take: usize,
    strata: Option<&[u32]>,
    rng: &mut ChaCha8Rng,
) -> (Vec<usize>, Vec<usize>) {
    let n_take = n_take.min(n);
    let mut taken = Vec::with_capacity(n_take);
    match strata {
        Some(labels) if n > 0 => {
            let mut groups: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
            for (i, &c) in labels.iter().enumerate().take(n) {
                groups.entry(c).or_default().push(i);
            }
            // Largest-remainder allocation of n_take over the classes.
            let mut quota: Vec<(usize, f64)> = groups
                .values()
                .map(|g| {
                    let exact = n_take as f64 * g.len() as f64 / n as f64;
                    (exact.floor() as usize, exact - exact.floor())
                })
                .collect();
            let assigned: usize = quota.iter().map(|q| q.0).sum();
            let mut order: Vec<usize> = (0..quota.len()).collect();
            order.sort_by(|&a, &b| quota[b].1.total_cmp(&quota[a].1).then(a.cmp(&b)));
            for &k in order.iter().take(n_take.saturating_sub(assigned)) {
                quota[k].0 += 1;
            }
            for (g, (q, _)) in groups.values_mut().zip(&quota) {
                g.shuffle(rng);
                taken.extend_from_slice(&g[..(*q).min(g.len())]);
            }
        }
        _ => {
            let mut all: Vec<usize> = (0..n).collect();
            all.shuffle(rng);
            taken.extend_from_slice(&all[..n_take]);
        }
    }
    taken.sort_unstable();
    let mut is_taken = vec![false; n];
    for &i in &taken {
        is_taken[i] = true;
    }
    let kept = (0..n).filter(|&i| !is_taken[i]).collect();
    (kept, taken)
}
