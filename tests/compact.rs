//! Compaction (method §9): on random padded networks with random dead neurons and unused
//! inputs, the compact network computes the same function, keeps exactly the units that
//! lie on a nonzero input→output path (cascades included), and, when every removed group
//! is stationary, has the same `cert` (measured by the CPU backend's evaluator), for both
//! losses and every grouping option.

mod common;
use common::dataset_of;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sparse_alm::backend::cpu::CpuBackend;
use sparse_alm::backend::{Axis, Backend, LossKind};
use sparse_alm::config::Task;
use sparse_alm::data::Dataset;
use sparse_alm::model::compact::{compact, Compacted};
use sparse_alm::model::Network;
use sparse_alm::problem::{DeviceData, Net, Params, Spec};
use sparse_alm::solver::measures::Evaluator;
use sparse_alm::solver::slots::TRAIN_LOSS;

const AXES: [Axis; 2] = [Axis::Rows, Axis::Cols];
const LOSSES: [LossKind; 2] = [LossKind::Squared, LossKind::SoftmaxCe];

fn normal(rng: &mut ChaCha8Rng) -> f32 {
    <StandardNormal as Distribution<f64>>::sample(&StandardNormal, rng) as f32
}

fn randn(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || normal(rng))
}

/// A random network of 1–3 hidden layers with random nonzero biases.
fn random_net(rng: &mut ChaCha8Rng) -> Network {
    let hidden = rng.random_range(1..=3);
    let mut sizes = vec![rng.random_range(2..=7)];
    for _ in 0..hidden {
        sizes.push(rng.random_range(2..=7));
    }
    sizes.push(rng.random_range(1..=4));
    let mut net = Network::he_init(&sizes, 0.1, rng.random());
    for b in &mut net.b {
        b.mapv_inplace(|_| 0.5 * normal(rng));
    }
    net
}

/// Zero random rows and columns of every weight matrix (each with probability `p`), so
/// that dead neurons, unused inputs and chains of both appear.
fn kill_randomly(net: &mut Network, p: f64, rng: &mut ChaCha8Rng) {
    for w in &mut net.w {
        for r in 0..w.nrows() {
            if rng.random_bool(p) {
                w.row_mut(r).fill(0.0);
            }
        }
        for c in 0..w.ncols() {
            if rng.random_bool(p) {
                w.column_mut(c).fill(0.0);
            }
        }
    }
}

/// The oracle, independent of `compact`'s sweep: a hidden unit is kept iff it lies on a
/// path of nonzero weights from some input to some output, i.e. it is reachable forward
/// from the inputs and backward from the outputs. An input is kept under column groups iff
/// it reaches an output that way (under row groups, always).
fn expected_kept(net: &Network, input_groups: Axis) -> (Vec<usize>, Vec<Vec<usize>>) {
    let sizes = net.sizes();
    let layers = net.w.len();
    // fwd[l][j]: unit j of layer l (0 = inputs) is reached from an input.
    let mut fwd: Vec<Vec<bool>> = vec![vec![true; sizes[0]]];
    for l in 0..layers {
        let w = &net.w[l];
        let prev = &fwd[l];
        fwd.push(
            (0..w.nrows())
                .map(|j| (0..w.ncols()).any(|i| prev[i] && w[[j, i]] != 0.0))
                .collect(),
        );
    }
    let mut bwd: Vec<Vec<bool>> = vec![vec![true; sizes[layers]]];
    for l in (0..layers).rev() {
        let w = &net.w[l];
        let next = &bwd[0];
        let reach: Vec<bool> = (0..w.ncols())
            .map(|i| (0..w.nrows()).any(|j| next[j] && w[[j, i]] != 0.0))
            .collect();
        bwd.insert(0, reach);
    }
    let inputs = (0..sizes[0])
        .filter(|&i| input_groups == Axis::Rows || bwd[0][i])
        .collect();
    let neurons = (1..layers)
        .map(|l| (0..sizes[l]).filter(|&j| fwd[l][j] && bwd[l][j]).collect())
        .collect();
    (inputs, neurons)
}

/// Random inputs for the padded network, and the same samples restricted to the kept
/// inputs for the compact one.
fn inputs_for(
    c: &Compacted,
    d: usize,
    n: usize,
    rng: &mut ChaCha8Rng,
) -> (Array2<f32>, Array2<f32>) {
    let x = randn(d, n, rng);
    let xc = x.select(ndarray::Axis(0), &c.kept_inputs);
    (x, xc)
}

#[track_caller]
fn assert_close(a: &Array2<f32>, b: &Array2<f32>, what: &str) {
    assert_eq!(a.dim(), b.dim(), "{what}: shapes");
    for (u, v) in a.iter().zip(b.iter()) {
        assert!(
            (u - v).abs() <= 1e-5 * (1.0 + u.abs().max(v.abs())),
            "{what}: {u} vs {v}"
        );
    }
}

#[test]
fn compact_nets_compute_the_padded_function_and_keep_exactly_the_live_units() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut removed_neurons = 0;
    let mut removed_inputs = 0;
    let mut cascades = 0;
    for case in 0..300 {
        let mut net = random_net(&mut rng);
        let p = [0.1, 0.25, 0.4][case % 3];
        kill_randomly(&mut net, p, &mut rng);
        for input_groups in AXES {
            let c = compact(&net, input_groups);
            let (inputs, neurons) = expected_kept(&net, input_groups);
            assert_eq!(
                c.kept_inputs, inputs,
                "case {case}, {input_groups:?}: inputs"
            );
            assert_eq!(
                c.kept_neurons, neurons,
                "case {case}, {input_groups:?}: neurons"
            );
            assert_eq!(c.live(), neurons.iter().map(Vec::len).collect::<Vec<_>>());
            assert_eq!(c.is_empty(), neurons.iter().any(Vec::is_empty));
            // The compact weights are the padded ones at the kept indices.
            let sizes = net.sizes();
            let mut rows_prev = c.kept_inputs.clone();
            for l in 0..net.w.len() {
                let rows: Vec<usize> = if l + 1 < net.w.len() {
                    c.kept_neurons[l].clone()
                } else {
                    (0..sizes[l + 1]).collect()
                };
                let expect = net.w[l]
                    .select(ndarray::Axis(0), &rows)
                    .select(ndarray::Axis(1), &rows_prev);
                assert_eq!(c.net.w[l], expect, "case {case}: W{}", l + 1);
                rows_prev = rows;
            }
            // Units the one-at-a-time count still calls live but the oracle removes are
            // cascades: the sweep must have repeated to find them.
            let per_layer: usize = net.live_neurons().iter().sum();
            let kept: usize = c.live().iter().sum();
            if kept < per_layer {
                cascades += 1;
            }
            removed_neurons += sizes[1..sizes.len() - 1].iter().sum::<usize>() - kept;
            removed_inputs += sizes[0] - c.kept_inputs.len();
            for n in [1, 63, 65] {
                let (x, xc) = inputs_for(&c, sizes[0], n, &mut rng);
                let what = format!("case {case}, {input_groups:?}, {n} samples");
                assert_close(&net.forward(x.view()), &c.net.forward(xc.view()), &what);
            }
        }
    }
    // The random cases exercised what they are meant to.
    assert!(
        removed_neurons > 100 && removed_inputs > 50,
        "{removed_neurons} {removed_inputs}"
    );
    assert!(cascades > 20, "only {cascades} cases with a cascade");
}

#[test]
fn a_dense_net_is_unchanged() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for _ in 0..20 {
        let net = random_net(&mut rng);
        for g in AXES {
            let c = compact(&net, g);
            assert_eq!(c.net, net);
            assert_eq!(c.kept_inputs, (0..net.sizes()[0]).collect::<Vec<_>>());
        }
    }
}

/// Hand-built cascades: a neuron whose only inputs were constant (zero-row) neurons
/// becomes constant itself, and a neuron that only fed dead neurons reaches nothing; both
/// go, their constants folded through two layers.
#[test]
fn cascades_are_removed_and_their_constants_folded() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut net = Network::he_init(&[4, 5, 5, 5, 2], 0.2, 5);
    for b in &mut net.b {
        b.mapv_inplace(|_| 0.5 * normal(&mut rng));
    }
    // Layer 1 neuron 2: zero row (constant σ(b)). Layer 2 neuron 3 reads only it.
    net.w[0].row_mut(2).fill(0.0);
    net.w[1].row_mut(3).fill(0.0);
    net.w[1][[3, 2]] = 1.5;
    // Layer 3 neuron 0 reaches nothing; layer 2 neuron 4 feeds only it.
    net.w[3].column_mut(0).fill(0.0);
    net.w[2].column_mut(4).fill(0.0);
    net.w[2][[0, 4]] = -0.7;
    // Input 1 feeds nothing: removed under column groups.
    net.w[0].column_mut(1).fill(0.0);
    let c = compact(&net, Axis::Cols);
    assert_eq!(c.kept_inputs, vec![0, 2, 3]);
    assert_eq!(
        c.kept_neurons,
        vec![vec![0, 1, 3, 4], vec![0, 1, 2], vec![1, 2, 3, 4]]
    );
    for n in [1, 63, 65] {
        let (x, xc) = inputs_for(&c, 4, n, &mut rng);
        assert_close(&net.forward(x.view()), &c.net.forward(xc.view()), "cascade");
    }
    // Without the folded constants the outputs would differ: the constants matter here.
    let mut unfolded = c.net.clone();
    let mut keep = c.kept_neurons.clone();
    keep.push(vec![0, 1]);
    unfolded.b = net
        .b
        .iter()
        .zip(&keep)
        .map(|(b, k)| b.select(ndarray::Axis(0), k))
        .collect();
    let (x, xc) = inputs_for(&c, 4, 8, &mut rng);
    let diff = (&net.forward(x.view()) - &unfolded.forward(xc.view()))
        .iter()
        .fold(0.0f32, |a, v| a.max(v.abs()));
    assert!(diff > 1e-3, "folding made no difference ({diff})");
}

fn dataset(x: Array2<f32>, m: usize, loss: LossKind, rng: &mut ChaCha8Rng) -> Dataset {
    let n = x.ncols();
    let (y, task) = match loss {
        LossKind::Squared => (randn(m, n, rng), Task::Regression),
        LossKind::SoftmaxCe => {
            let mut y = Array2::zeros((m, n));
            for j in 0..n {
                y[[rng.random_range(0..m), j]] = 1.0;
            }
            (y, Task::Classification)
        }
    };
    dataset_of(x, y, task)
}

/// `cert_abs` of `net` on `ds` (method §5) by the CPU backend's evaluator.
fn cert(spec: &Spec, net: &Network, ds: &Dataset) -> f64 {
    let be = CpuBackend::<f32>::new();
    let dd = DeviceData::upload(&be, ds, &ds.select(&[])).unwrap();
    let mut ev = Evaluator::new(&be, spec, &dd).unwrap();
    let p = Params::upload(&be, net).unwrap();
    let m = ev.measure(&be, &p, &dd).unwrap();
    assert!(m.cert_abs.is_finite() && m.cert_abs > 0.0);
    m.cert_abs
}

/// ‖∂ℓ/∂W₁[:, i]‖ per input `i`, by the backend's backprop.
fn input_grad_norms(spec: &Spec, net: &Network, ds: &Dataset) -> Vec<f64> {
    let be = CpuBackend::<f32>::new();
    let dd = DeviceData::upload(&be, ds, &ds.select(&[])).unwrap();
    let p = Params::upload(&be, net).unwrap();
    let mut w = Net::new(&be, spec, ds.n()).unwrap();
    w.forward(&be, spec, &p, &dd.x).unwrap();
    w.backward(&be, spec, &p, &dd.x, &dd.y, TRAIN_LOSS.slot())
        .unwrap();
    let g = be.download(&w.grad.w[0]).unwrap();
    g.columns()
        .into_iter()
        .map(|c| c.iter().map(|&v| f64::from(v).powi(2)).sum::<f64>().sqrt())
        .collect()
}

/// Removed groups that are stationary leave `cert` unchanged: a dead neuron with a zero
/// row, a zero column and σ(b) = 0 has zero gradients everywhere it is removed, and a zero
/// input column whose gradient norm is below λ is fixed by the prox.
#[test]
fn cert_is_unchanged_when_the_removed_groups_are_stationary() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    let mut checked = 0;
    for case in 0..24 {
        let mut net = random_net(&mut rng);
        let sizes = net.sizes();
        let layers = net.w.len();
        // At least one stationary dead neuron per hidden layer that has room for it.
        let mut dead = Vec::new();
        for h in 0..layers - 1 {
            let j = rng.random_range(0..sizes[h + 1]);
            if sizes[h + 1] > 1 {
                net.w[h].row_mut(j).fill(0.0);
                net.w[h + 1].column_mut(j).fill(0.0);
                net.b[h][[j, 0]] = 0.0;
                dead.push((h, j));
            }
        }
        let unused_input = rng.random_range(0..sizes[0]);
        net.w[0].column_mut(unused_input).fill(0.0);
        let n = [1, 63, 65][case % 3];
        let x = randn(sizes[0], n, &mut rng);
        for loss in LOSSES {
            let ds = dataset(x.clone(), sizes[layers], loss, &mut rng);
            for input_groups in AXES {
                for output_groups in AXES {
                    let mut spec =
                        Spec::new(sizes.clone(), 0.1, 1e-3, loss, input_groups, output_groups);
                    let c = compact(&net, input_groups);
                    for &(h, j) in &dead {
                        assert!(!c.kept_neurons[h].contains(&j));
                    }
                    if input_groups == Axis::Cols {
                        assert!(!c.kept_inputs.contains(&unused_input));
                        // λ above the unused input's gradient norm makes its zero
                        // column a stationary group of (P0).
                        let g = input_grad_norms(&spec, &net, &ds)[unused_input];
                        spec.lambda = (1.5 * g).max(1e-3) as f32;
                    }
                    let cspec = Spec::new(
                        c.net.sizes(),
                        0.1,
                        spec.lambda,
                        loss,
                        input_groups,
                        output_groups,
                    );
                    let mut cds = ds.clone();
                    cds.x = ds.x.select(ndarray::Axis(0), &c.kept_inputs);
                    let (a, b) = (cert(&spec, &net, &ds), cert(&cspec, &c.net, &cds));
                    assert!(
                        (a - b).abs() <= 1e-5 * a,
                        "case {case}, {loss:?}, {input_groups:?}/{output_groups:?}: cert {a} vs {b}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 24 * 8);
}

/// The counter-check that keeps the test above honest: a removed group that is not
/// stationary (a zero-row neuron with σ(b) ≠ 0 feeding the next layer) changes `cert`.
#[test]
fn cert_changes_when_a_removed_group_is_not_stationary() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut net = Network::he_init(&[5, 6, 6, 3], 0.1, 9);
    net.w[0].row_mut(1).fill(0.0);
    net.b[0][[1, 0]] = 0.8;
    let x = randn(5, 65, &mut rng);
    let ds = dataset(x, 3, LossKind::Squared, &mut rng);
    let spec = Spec::new(
        net.sizes(),
        0.1,
        1e-3,
        LossKind::Squared,
        Axis::Rows,
        Axis::Rows,
    );
    let c = compact(&net, Axis::Rows);
    assert_eq!(c.kept_neurons[0], vec![0, 2, 3, 4, 5]);
    let cspec = Spec::new(
        c.net.sizes(),
        0.1,
        1e-3,
        LossKind::Squared,
        Axis::Rows,
        Axis::Rows,
    );
    let (a, b) = (cert(&spec, &net, &ds), cert(&cspec, &c.net, &ds));
    assert!((a - b).abs() > 1e-3 * a, "cert {a} vs {b}");
}
