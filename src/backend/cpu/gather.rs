//! The minibatch gather of method §7 on the CPU. A matrix holds one sample per *column*,
//! so a sample is strided across the whole matrix (Fashion-MNIST: 784 values 240 KB
//! apart) and gathering 128 random columns touches 100 000 cache lines. The first gather
//! from a matrix builds a sample-major copy of it (one blocked transpose, kept with the
//! matrix until the backend next changes it); every gather after that copies whole
//! contiguous samples, 16 at a time, into the row-major minibatch. Measured on Fashion-MNIST:
//! 1.6 s of gathers per epoch column by column, 0.05 s from the sample-major copy.

use super::Real;
use ndarray::Array2;
use rayon::prelude::*;
use std::sync::OnceLock;

/// A lazily built sample-major (transposed, `cols×rows` row-major) copy of a matrix.
/// Clones and comparisons ignore it: it is a cache.
#[derive(Debug)]
pub struct SampleMajor<F>(OnceLock<Vec<F>>);

impl<F> Default for SampleMajor<F> {
    fn default() -> Self {
        SampleMajor(OnceLock::new())
    }
}

impl<F> Clone for SampleMajor<F> {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl<F> PartialEq for SampleMajor<F> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<F> SampleMajor<F> {
    /// Drop the copy (the matrix is about to change).
    pub fn clear(&mut self) {
        self.0.take();
    }
}

impl<F: Real> SampleMajor<F> {
    /// The copy of `a`, built on first use.
    pub fn get_or_build(&self, a: &Array2<F>) -> &[F] {
        self.0.get_or_init(|| transpose(a))
    }
}

/// Side of the square tiles of the transpose: 32×32 `f32` = 4 KB read and written per tile.
const TILE: usize = 32;

/// `a` (`rows×cols`, any layout) as a `cols×rows` row-major vector, tile by tile.
fn transpose<F: Real>(a: &Array2<F>) -> Vec<F> {
    let (rows, cols) = a.dim();
    let mut out = vec![F::zero(); rows * cols];
    if rows == 0 || cols == 0 {
        return out;
    }
    out.par_chunks_mut(TILE * rows)
        .enumerate()
        .for_each(|(cb, chunk)| {
            let c0 = cb * TILE;
            let nc = chunk.len() / rows;
            for r0 in (0..rows).step_by(TILE) {
                for r in r0..(r0 + TILE).min(rows) {
                    for cc in 0..nc {
                        chunk[cc * rows + r] = a[[r, c0 + cc]];
                    }
                }
            }
        });
    out
}

/// Samples gathered per block: 16 source rows are read in step while the block writes
/// 64 contiguous bytes of every minibatch row.
const BLOCK: usize = 16;

/// `out[r, j] = src[r, idx[j]]` for the row-major `rows×idx.len()` `out`, from the
/// sample-major copy `t` of `src` (`t[k·rows + r] = src[r, k]`).
pub fn gather<F: Real>(out: &mut [F], t: &[F], rows: usize, idx: &[u32]) {
    let b = idx.len();
    for (jb, ks) in idx.chunks(BLOCK).enumerate() {
        let j0 = jb * BLOCK;
        let mut src: [&[F]; BLOCK] = [&[]; BLOCK];
        for (s, &k) in src.iter_mut().zip(ks) {
            let k = k as usize;
            *s = &t[k * rows..(k + 1) * rows];
        }
        let src = &src[..ks.len()];
        for r in 0..rows {
            let o = &mut out[r * b + j0..r * b + j0 + ks.len()];
            for (o, s) in o.iter_mut().zip(src) {
                *o = s[r];
            }
        }
    }
}
