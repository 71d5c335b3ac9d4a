//! Compaction (method §9): the padded network a sparse run returns, with its dead neurons
//! and unused input features physically removed. The compact network computes exactly the
//! same function, so it can be refitted, exported and used at its true size.

use super::Network;
use crate::backend::Axis;
use ndarray::{Array2, Axis as NdAxis};

/// A compacted network and where its units came from in the padded one.
#[derive(Clone, Debug, PartialEq)]
pub struct Compacted {
    pub net: Network,
    /// Indices (into the padded network's inputs) of the input features kept, in order.
    pub kept_inputs: Vec<usize>,
    /// Per hidden layer, the indices of the neurons kept, in order.
    pub kept_neurons: Vec<Vec<usize>>,
}

impl Compacted {
    /// Live neurons per hidden layer (the compact widths).
    pub fn live(&self) -> Vec<usize> {
        self.kept_neurons.iter().map(Vec::len).collect()
    }

    /// True when some hidden layer has no neuron left: the network is a constant.
    pub fn is_empty(&self) -> bool {
        self.kept_neurons.iter().any(Vec::is_empty)
    }
}

fn zero(v: ndarray::ArrayView1<f32>) -> bool {
    v.iter().all(|&x| x == 0.0)
}

fn leaky(u: f32, alpha: f32) -> f32 {
    if u > 0.0 {
        u
    } else {
        alpha * u
    }
}

fn keep_rows(a: &Array2<f32>, keep: &[usize]) -> Array2<f32> {
    a.select(NdAxis(0), keep)
}

fn keep_cols(a: &Array2<f32>, keep: &[usize]) -> Array2<f32> {
    a.select(NdAxis(1), keep)
}

/// Remove every dead hidden neuron and, when `input_groups` is `Cols`, every input feature
/// whose column of `W_1` is zero (method §9).
///
/// A hidden neuron is dead when its row of `W_l` is zero (it outputs the constant
/// `σ(b_l[j])`, which is folded into `b_{l+1}` first) or its column of `W_{l+1}` is zero
/// (it reaches nothing). Removing one neuron can kill another (a row whose only nonzero
/// weights came from removed neurons, a column that only fed removed neurons), so the
/// sweep repeats until nothing changes. Input columns are removed only under column
/// groups: with row groups a zero column is not a group of (P0), and dropping it would
/// change the problem the certificate is about.
pub fn compact(net: &Network, input_groups: Axis) -> Compacted {
    let mut w = net.w.clone();
    let mut b = net.b.clone();
    let hidden = w.len().saturating_sub(1);
    let mut kept_neurons: Vec<Vec<usize>> =
        (0..hidden).map(|h| (0..w[h].nrows()).collect()).collect();
    let mut kept_inputs: Vec<usize> = w
        .first()
        .map(|w0| (0..w0.ncols()).collect())
        .unwrap_or_default();
    loop {
        let mut changed = false;
        for h in 0..hidden {
            let n = w[h].nrows();
            let mut keep = Vec::with_capacity(n);
            for j in 0..n {
                let row_zero = zero(w[h].row(j));
                let col_zero = zero(w[h + 1].column(j));
                if row_zero && !col_zero {
                    // The neuron's constant output moves into the next bias.
                    let c = leaky(b[h][[j, 0]], net.alpha);
                    if c != 0.0 {
                        let col = w[h + 1].column(j).to_owned();
                        let mut next = b[h + 1].column_mut(0);
                        next.scaled_add(c, &col);
                    }
                }
                if !(row_zero || col_zero) {
                    keep.push(j);
                }
            }
            if keep.len() < n {
                changed = true;
                w[h] = keep_rows(&w[h], &keep);
                b[h] = keep_rows(&b[h], &keep);
                w[h + 1] = keep_cols(&w[h + 1], &keep);
                kept_neurons[h] = keep.iter().map(|&j| kept_neurons[h][j]).collect();
            }
        }
        if input_groups == Axis::Cols && !w.is_empty() {
            let keep: Vec<usize> = (0..w[0].ncols())
                .filter(|&i| !zero(w[0].column(i)))
                .collect();
            if keep.len() < w[0].ncols() {
                changed = true;
                w[0] = keep_cols(&w[0], &keep);
                kept_inputs = keep.iter().map(|&i| kept_inputs[i]).collect();
            }
        }
        if !changed {
            break;
        }
    }
    Compacted {
        net: Network {
            alpha: net.alpha,
            w,
            b,
        },
        kept_inputs,
        kept_neurons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    #[test]
    fn a_zero_row_neuron_is_folded_into_the_next_bias() {
        let mut net = Network::he_init(&[3, 4, 2], 0.1, 1);
        net.w[0].row_mut(2).fill(0.0);
        net.b[0][[2, 0]] = 0.7;
        let c = compact(&net, Axis::Rows);
        assert_eq!(c.kept_neurons, vec![vec![0, 1, 3]]);
        let x = Array2::from_shape_fn((3, 5), |(i, j)| (i as f32 - j as f32) * 0.3);
        let (a, b) = (net.forward(x.view()), c.net.forward(x.view()));
        for (u, v) in a.iter().zip(b.iter()) {
            assert!((u - v).abs() <= 1e-6 * (1.0 + u.abs()), "{u} vs {v}");
        }
    }
}
