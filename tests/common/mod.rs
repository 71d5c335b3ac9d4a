//! What several integration tests share: the GPU-or-skip policy and small teacher
//! problems.
//!
//! GPU policy: without a GPU adapter a GPU test prints a loud `SKIPPED` line and passes,
//! unless `SPARSE_ALM_REQUIRE_GPU=1` (set in CI), which turns a missing adapter into a
//! failure. An adapter that exists but cannot be opened always fails: that is a bug, not
//! a missing GPU.

// Each test crate uses its own part of this module.
#![allow(dead_code)]

pub mod cli;
pub mod data;

use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use sparse_alm::backend::gpu::{GpuBackend, GpuOptions};
use sparse_alm::backend::BackendError;
use sparse_alm::backend::{Axis, LossKind};
use sparse_alm::config::Task;
use sparse_alm::data::Dataset;
use sparse_alm::model::{self, ModelMeta, Network};

/// True under `SPARSE_ALM_REQUIRE_GPU=1`.
pub fn require_gpu() -> bool {
    std::env::var("SPARSE_ALM_REQUIRE_GPU").is_ok_and(|v| v == "1")
}

/// A GPU backend with `opts`, or why there is none (no adapter, GPU not required).
/// Panics when a GPU is required but missing, or when creating it fails otherwise.
pub fn open_gpu(opts: GpuOptions) -> Result<GpuBackend, String> {
    match GpuBackend::new(opts) {
        Ok(g) => Ok(g),
        Err(BackendError::NoAdapter(msg)) => {
            if require_gpu() {
                panic!("SPARSE_ALM_REQUIRE_GPU=1 but no GPU adapter: {msg}");
            }
            Err(format!("no GPU adapter{msg}"))
        }
        Err(e) => panic!("GPU backend creation failed: {e}"),
    }
}

/// The loud line a GPU test prints when it skips.
pub fn skipped(why: &str) {
    eprintln!("\n*** SKIPPED: {why} (set SPARSE_ALM_REQUIRE_GPU=1 to fail instead) ***\n");
}

/// [`open_gpu`], printing the SKIPPED line when there is no GPU.
pub fn gpu_or_skip(opts: GpuOptions) -> Option<GpuBackend> {
    open_gpu(opts).map_err(|why| skipped(&why)).ok()
}

/// A teacher problem with `n` samples: standard normal inputs (ChaCha8 seeded with
/// `data_seed`) through a He-initialised teacher network of `sizes` (α = 0.1, seed
/// `teacher_seed`); the targets are its outputs for squared loss (regression) and its
/// one-hot argmax classes for softmax cross-entropy (classification).
pub fn teacher_data(
    sizes: &[usize],
    n: usize,
    data_seed: u64,
    teacher_seed: u64,
    loss: LossKind,
) -> Dataset {
    let mut rng = ChaCha8Rng::seed_from_u64(data_seed);
    let d = sizes[0];
    let m = *sizes.last().unwrap();
    let x = Array2::from_shape_fn((d, n), |_| {
        <StandardNormal as Distribution<f64>>::sample(&StandardNormal, &mut rng) as f32
    });
    let teacher = Network::he_init(sizes, 0.1, teacher_seed);
    let out = teacher.forward(x.view());
    let (y, task) = match loss {
        LossKind::Squared => (out, Task::Regression),
        LossKind::SoftmaxCe => {
            let mut y = Array2::zeros((m, n));
            for j in 0..n {
                let col = out.column(j);
                let k = (0..m).fold(0, |b, i| if col[i] > col[b] { i } else { b });
                y[[k, j]] = 1.0;
            }
            (y, Task::Classification)
        }
    };
    dataset_of(x, y, task)
}

/// A dataset of `x` and targets `y` without stored labels, names or target scale; the
/// classes (one per row of `y`) are named by index.
pub fn dataset_of(x: Array2<f32>, y: Array2<f32>, task: Task) -> Dataset {
    let m = y.nrows();
    Dataset {
        x,
        y,
        labels: None,
        task,
        feature_names: vec![],
        class_names: (0..m).map(|i| i.to_string()).collect(),
        target_std: None,
    }
}

/// The metadata of a model saved by a test: `net`'s sizes, `task` and `preprocess`, and
/// fixed values elsewhere (α = 0.1, λ = 1e-3, squared loss, row groups, no targets or
/// names, seeds 0); a test sets what it needs with `..model_meta(..)`.
pub fn model_meta(net: &Network, task: Task, preprocess: serde_json::Value) -> ModelMeta {
    ModelMeta {
        format_version: model::FORMAT_VERSION,
        sizes: net.sizes(),
        alpha: 0.1,
        lambda: 1e-3,
        loss: LossKind::Squared,
        input_groups: Axis::Rows,
        output_groups: Axis::Rows,
        task,
        method: "alm".into(),
        seed: 0,
        init_seed: 0,
        target: vec![],
        class_names: vec![],
        feature_names: vec![],
        preprocess,
        metrics: serde_json::json!({}),
        created_unix: 0,
        program_version: "test".into(),
    }
}
