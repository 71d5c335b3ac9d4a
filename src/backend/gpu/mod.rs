//! GPU backend: WGSL compute kernels (`shaders/*.wgsl`) through wgpu.
//!
//! One file per concern:
//! - `adapter`: which GPU (options, adapter choice, device creation), its limits, the report
//!   `sparse-alm info` prints, and the launch shapes chosen per adapter type.
//! - `storage`: device matrices as column chunks, their allocation, host transfers, and the
//!   segment walk shared by all kernels.
//! - `recorder`: the command encoder, dispatch, submission, readbacks, work counters, and
//!   error capture.
//! - `pipelines`: the kernel table and the pipeline cache; `params`: the uniform blocks the
//!   shaders read, one named constructor per use.
//! - `ops/`: the [`crate::backend::Backend`] operations, one walker file per shader file.
//!
//! Design:
//! - **Recording, not executing.** Every operation only records work into one open command
//!   encoder (consecutive dispatches share one compute pass, ended at a copy). The encoder
//!   is submitted at `read_slots`, `download`, `sync`, before a host `write`, or when a
//!   per-submission arena fills up.
//! - **Uniforms through an arena.** Each dispatch's parameters go into a host-side arena at
//!   an aligned offset and are bound with a dynamic offset; the arena is written to its
//!   device buffer with one `queue.write_buffer` right before the submit, so later
//!   parameters can never overwrite earlier ones before they run. Gather indices use a
//!   second arena the same way.
//! - **Scalar slots.** A storage buffer of [`NUM_SLOTS`](crate::backend::NUM_SLOTS) `f32`
//!   written by reductions on the device (two stages: per-workgroup partial vec4 sums, then
//!   one `finalize` workgroup). `read_slots` copies the slot buffer into a reusable
//!   `MAP_READ` buffer: exactly one readback per call. Slots are `f32` (partial sums are
//!   tree-reduced, so the relative error stays at a few ulps × log₂(n)); they are returned
//!   as `f64`.
//! - **Chunking.** A matrix is a list of column chunks, each `rows × cols_c` row-major in
//!   its own buffer, so that no buffer exceeds the storage binding limit (or the
//!   `max_chunk_bytes` test hook). Operations walk *segments*: maximal column ranges that
//!   lie inside one chunk of every operand; kernels address operand `k`'s element `(i, j)`
//!   at `base_k + i·ld_k + j`, so chunk boundaries of operands with different row counts
//!   need not agree.
//! - **Errors.** Arguments are checked (`backend/shape.rs`) before anything is recorded.
//!   wgpu errors raised while recording go to an uncaptured-error handler that stores them
//!   (wgpu would otherwise panic) and are returned by the operation that caused them;
//!   errors raised at submission are caught by error scopes around `finish`/`submit` and
//!   returned as [`BackendError::Kernel`] naming the kernels of that submission; a lost
//!   device becomes [`BackendError::Lost`].

mod adapter;
mod ops;
mod params;
mod pipelines;
mod recorder;
mod storage;

pub use adapter::{list_adapters, AdapterReport, GpuOptions};
pub use storage::GpuMat;

use crate::backend::{BResult, BackendError};
use adapter::GridCaps;
use pipelines::PipelineCache;
use recorder::{Count, ErrorSink, State};
use std::sync::{Mutex, MutexGuard};
use storage::ChunkLimits;

/// The wgpu backend. Created once; compiles each pipeline on first use and caches it.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    // ---- adapter
    report: AdapterReport,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    caps: GridCaps,
    verbose: bool,
    /// Runtime bounds checks in every shader module (`GpuOptions::shader_checks`).
    shader_checks: bool,
    // ---- storage
    chunk_limits: ChunkLimits,
    // ---- pipelines
    pipelines: PipelineCache,
    // ---- recorder
    /// Bytes between two dispatches' parameters in the uniform arena.
    uni_stride: u64,
    st: Mutex<State>,
    errors: ErrorSink,
    count: Count,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn kernel_err(kernel: impl Into<String>, msg: impl Into<String>) -> BackendError {
    BackendError::Kernel {
        kernel: kernel.into(),
        msg: msg.into(),
    }
}

impl GpuBackend {
    /// Pick an adapter per `opts` and open a device with the adapter's own limits.
    pub fn new(opts: GpuOptions) -> Result<GpuBackend, BackendError> {
        let opened = adapter::open(&opts)?;
        let errors = ErrorSink::install(&opened.device);
        let be = GpuBackend {
            report: AdapterReport::new(&opened.info, &opened.limits),
            chunk_limits: ChunkLimits::new(&opened.limits, opts.max_chunk_bytes),
            uni_stride: recorder::uniform_stride(&opened.limits),
            st: Mutex::new(State::new(&opened.device)),
            device: opened.device,
            queue: opened.queue,
            info: opened.info,
            limits: opened.limits,
            caps: opened.caps,
            verbose: opts.verbose,
            shader_checks: opts.shader_checks,
            pipelines: PipelineCache::default(),
            errors,
            count: Count::default(),
        };
        be.errors.check("setup")?;
        Ok(be)
    }
}
