//! GPU backend: WGSL compute kernels (`shaders/*.wgsl`) through wgpu.
//!
//! Design (issue 3):
//! - **Recording, not executing.** Every operation only records work into one open command
//!   encoder (one compute pass per dispatch, so buffer copies can interleave). The encoder
//!   is submitted at [`Backend::read_slots`], [`Backend::download`], [`Backend::sync`],
//!   before a host `write`, or when a per-submission arena fills up.
//! - **Uniforms through an arena.** Each dispatch's parameters go into a host-side arena at
//!   an aligned offset and are bound with a dynamic offset; the arena is written to its
//!   device buffer with one `queue.write_buffer` right before the submit, so later
//!   parameters can never overwrite earlier ones before they run. Gather indices use a
//!   second arena the same way.
//! - **Scalar slots.** A storage buffer of [`NUM_SLOTS`] `f32` written by reductions on
//!   the device (two stages: per-workgroup partial vec4 sums, then one `finalize`
//!   workgroup). `read_slots` copies the slot buffer into a reusable `MAP_READ` buffer:
//!   exactly one readback per call. Slots are `f32` (partial sums are tree-reduced, so the
//!   relative error stays at a few ulps × log₂(n)); they are returned as `f64`.
//! - **Chunking.** A matrix is a list of column chunks, each `rows × cols_c` row-major in
//!   its own buffer, so that no buffer exceeds the storage binding limit (or the
//!   `max_chunk_bytes` test hook). Operations walk *segments*: maximal column ranges that
//!   lie inside one chunk of every operand; kernels address operand `k`'s element `(i, j)`
//!   at `base_k + i·ld_k + j`, so chunk boundaries of operands with different row counts
//!   need not agree.
//! - **Errors.** Shapes are checked before anything is recorded. wgpu errors raised while
//!   recording go to an uncaptured-error handler that stores them (wgpu would otherwise
//!   panic) and are returned by the operation that caused them; errors raised at
//!   submission are caught by error scopes around `finish`/`submit` and returned as
//!   [`BackendError::Kernel`] naming the kernels of that submission; a lost device becomes
//!   [`BackendError::Lost`].

mod kernels;
mod ops;

use crate::backend::{Counters, NUM_SLOTS};
use crate::error::BackendError;
use kernels::{Src, K, UNIFORM_BIND_SIZE};
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

type BResult<T> = Result<T, BackendError>;

/// How to pick the GPU. Every field is optional; [`GpuOptions::from_env`] reads the
/// standard wgpu environment variables.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Comma-separated backend list (`vulkan`, `metal`, `dx12`, `gl`); `None`: all.
    pub backends: Option<String>,
    /// Pick the first adapter whose name contains this (case-insensitive).
    pub adapter_name: Option<String>,
    /// `low`, `high` or `none`.
    pub power_pref: Option<String>,
    /// Test hook: cap every column chunk at this many bytes (forces chunking).
    pub max_chunk_bytes: Option<u64>,
    /// Print adapter selection and pipeline compile times to stderr.
    pub verbose: bool,
}

impl GpuOptions {
    /// `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`.
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        GpuOptions {
            backends: var("WGPU_BACKEND"),
            adapter_name: var("WGPU_ADAPTER_NAME"),
            power_pref: var("WGPU_POWER_PREF"),
            max_chunk_bytes: None,
            verbose: false,
        }
    }

    /// The backends to try, in order: the requested ones; by default the primary ones
    /// (Vulkan, Metal, DX12) and then GL, so that a machine with Vulkan never probes GL.
    fn backend_tiers(&self) -> Vec<wgpu::Backends> {
        match &self.backends {
            Some(s) => vec![wgpu::Backends::from_comma_list(s)],
            None => vec![wgpu::Backends::PRIMARY, wgpu::Backends::SECONDARY],
        }
    }

    fn power(&self) -> BResult<wgpu::PowerPreference> {
        match self
            .power_pref
            .as_deref()
            .map(|s| s.trim().to_ascii_lowercase())
        {
            None => Ok(wgpu::PowerPreference::HighPerformance),
            Some(s) => match s.as_str() {
                "low" | "lowpower" | "low-power" => Ok(wgpu::PowerPreference::LowPower),
                "high" | "highperformance" | "high-performance" => {
                    Ok(wgpu::PowerPreference::HighPerformance)
                }
                "none" => Ok(wgpu::PowerPreference::None),
                other => Err(BackendError::Device(format!(
                    "unknown power preference `{other}` (expected low, high or none)"
                ))),
            },
        }
    }
}

/// One adapter as `sparse-alm info` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub driver_info: String,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
}

impl AdapterReport {
    fn new(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Self {
        AdapterReport {
            name: info.name.clone(),
            backend: format!("{:?}", info.backend),
            device_type: format!("{:?}", info.device_type),
            driver: info.driver.clone(),
            driver_info: info.driver_info.clone(),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        }
    }
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        writeln!(f, "{} ({}, {})", self.name, self.backend, self.device_type)?;
        writeln!(f, "  driver: {} {}", self.driver, self.driver_info)?;
        writeln!(
            f,
            "  max_storage_buffer_binding_size: {} ({:.0} MiB)",
            self.max_storage_buffer_binding_size,
            mib(self.max_storage_buffer_binding_size)
        )?;
        writeln!(
            f,
            "  max_buffer_size: {} ({:.0} MiB)",
            self.max_buffer_size,
            mib(self.max_buffer_size)
        )?;
        writeln!(
            f,
            "  max_compute_workgroup_storage_size: {} bytes",
            self.max_compute_workgroup_storage_size
        )?;
        write!(
            f,
            "  max_compute_invocations_per_workgroup: {}",
            self.max_compute_invocations_per_workgroup
        )
    }
}

/// Every adapter wgpu can see (honours `WGPU_BACKEND`).
pub fn list_adapters() -> Vec<AdapterReport> {
    let opts = GpuOptions::from_env();
    let mut out = Vec::new();
    for backends in opts.backend_tiers() {
        let instance = make_instance(backends);
        out.extend(
            pollster::block_on(instance.enumerate_adapters(backends))
                .iter()
                .map(|a| AdapterReport::new(&a.get_info(), &a.limits())),
        );
    }
    out
}

fn make_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    desc.flags = wgpu::InstanceFlags::empty().with_env();
    wgpu::Instance::new(desc)
}

/// One column chunk of a [`GpuMat`]: columns `col0 .. col0 + cols`, row-major.
pub(crate) struct Chunk {
    pub(crate) buf: wgpu::Buffer,
    pub(crate) col0: usize,
    pub(crate) cols: usize,
}

/// A device matrix: `rows × cols`, stored as column chunks (one chunk unless the matrix
/// exceeds the storage binding limit).
pub struct GpuMat {
    rows: usize,
    cols: usize,
    chunks: Vec<Chunk>,
}

impl GpuMat {
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Number of column chunks (buffers) holding the matrix.
    pub fn num_chunks(&self) -> usize {
        self.chunks.len()
    }
}

impl fmt::Debug for GpuMat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "GpuMat({}×{}, {} chunk(s))",
            self.rows,
            self.cols,
            self.chunks.len()
        )
    }
}

/// Grid caps of the grid-stride kernels (workgroups per dimension; the kernels loop over
/// the rest). Real GPUs want many workgroups; a CPU adapter (lavapipe, SwiftShader) runs
/// each workgroup on one thread and pays per workgroup and per barrier, so it gets a few
/// fat ones.
#[derive(Clone, Copy, Debug)]
pub(crate) struct GridCaps {
    pub(crate) ew_x: usize,
    pub(crate) ew_y: usize,
    pub(crate) red_x: usize,
    pub(crate) red_y: usize,
    /// Kernels with one workgroup per row (row norms, row sums).
    pub(crate) rows: usize,
    /// Row-group kernels use one invocation per row instead of one workgroup per row.
    pub(crate) thread_per_row: bool,
}

impl GridCaps {
    fn for_device(t: wgpu::DeviceType) -> Self {
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 64);
        let mut c = match t {
            // Measured on lavapipe (2 cores): 8 workgroups beat 4096 by 2–5× on
            // elementwise and reduction kernels.
            wgpu::DeviceType::Cpu => GridCaps {
                ew_x: 2,
                ew_y: threads,
                red_x: 2,
                red_y: threads,
                rows: 2 * threads,
                thread_per_row: true,
            },
            _ => GridCaps {
                ew_x: 64,
                ew_y: 64,
                red_x: 32,
                red_y: 32,
                rows: 65535,
                thread_per_row: false,
            },
        };
        if let Ok(v) = std::env::var("SPARSE_ALM_GPU_GRID") {
            let n: Vec<usize> = v.split(',').filter_map(|x| x.trim().parse().ok()).collect();
            if let [a, b, cc, d] = n[..] {
                c = GridCaps {
                    ew_x: a.max(1),
                    ew_y: b.max(1),
                    red_x: cc.max(1),
                    red_y: d.max(1),
                    ..c
                };
            }
        }
        c
    }
}

struct Pipe {
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// Everything that changes while recording.
struct State {
    enc: Option<wgpu::CommandEncoder>,
    /// Kernels recorded since the last submit (error messages).
    batch: Vec<&'static str>,
    uni_cpu: Vec<u8>,
    uni_buf: wgpu::Buffer,
    idx_cpu: Vec<u32>,
    idx_buf: wgpu::Buffer,
    partials: wgpu::Buffer,
    slots: wgpu::Buffer,
    slot_staging: wgpu::Buffer,
    scratch: wgpu::Buffer,
    dummy: wgpu::Buffer,
    dl_staging: Option<wgpu::Buffer>,
}

/// Bytes of the uniform arena (one submission's worth of dispatch parameters).
pub(crate) const UNIFORM_ARENA: u64 = 1 << 20;
/// Partial-sum vec4 entries available to one reduction batch.
pub(crate) const PART_CAP: u32 = 16384;

#[derive(Default)]
struct Count {
    dispatches: AtomicU64,
    readbacks: AtomicU64,
    submits: AtomicU64,
}

/// The wgpu backend. Created once; compiles each pipeline on first use and caches it.
pub struct GpuBackend {
    device: wgpu::Device,
    queue: wgpu::Queue,
    report: AdapterReport,
    info: wgpu::AdapterInfo,
    limits: wgpu::Limits,
    verbose: bool,
    /// Byte cap of one column chunk.
    chunk_limit: u64,
    /// Byte cap of one buffer allowed by the device (a single column may not exceed it).
    device_chunk_limit: u64,
    uni_stride: u64,
    caps: GridCaps,
    modules: Mutex<HashMap<Src, Arc<wgpu::ShaderModule>>>,
    pipes: Mutex<HashMap<K, Arc<Pipe>>>,
    st: Mutex<State>,
    /// Errors reported outside error scopes (kernel, message).
    errors: Arc<Mutex<Vec<(String, String)>>>,
    has_error: Arc<AtomicBool>,
    current: Arc<Mutex<&'static str>>,
    lost: Arc<Mutex<Option<String>>>,
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
        let tiers = opts.backend_tiers();
        if tiers.iter().all(|b| b.is_empty()) {
            return Err(BackendError::NoAdapter(format!(
                ": no known backend in `{}` (expected vulkan, metal, dx12 or gl)",
                opts.backends.as_deref().unwrap_or("")
            )));
        }
        let power = opts.power()?;
        let mut last_err = String::new();
        let mut found = None;
        for backends in tiers {
            let instance = make_instance(backends);
            match Self::pick_adapter(&instance, backends, &opts, power) {
                Ok(a) => {
                    found = Some(a);
                    break;
                }
                Err(e) => last_err = e,
            }
        }
        let adapter = found.ok_or_else(|| {
            BackendError::NoAdapter(format!(
                "{last_err}. Install a Vulkan/Metal/DX12 driver (headless Linux: \
                 mesa-vulkan-drivers provides lavapipe) or choose one with WGPU_BACKEND / \
                 WGPU_ADAPTER_NAME"
            ))
        })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        if opts.verbose {
            eprintln!(
                "sparse-alm gpu: adapter {} ({:?}, {})",
                info.name, info.backend, info.driver
            );
        }
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("sparse-alm"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| BackendError::Device(format!("{} ({:?}): {e}", info.name, info.backend)))?;

        let errors: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let has_error = Arc::new(AtomicBool::new(false));
        let current: Arc<Mutex<&'static str>> = Arc::new(Mutex::new("setup"));
        let lost: Arc<Mutex<Option<String>>> = Arc::default();
        {
            let (errors, has1, current) = (errors.clone(), has_error.clone(), current.clone());
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                let k = *lock(&current);
                lock(&errors).push((k.to_string(), e.to_string()));
                has1.store(true, Ordering::SeqCst);
            }));
            let lost2 = lost.clone();
            let has2 = has_error.clone();
            device.set_device_lost_callback(move |reason, msg| {
                *lock(&lost2) = Some(format!("{reason:?}: {msg}"));
                has2.store(true, Ordering::SeqCst);
            });
        }

        let device_chunk_limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            & !3;
        let chunk_limit = match opts.max_chunk_bytes {
            Some(c) => c.clamp(4, device_chunk_limit.max(4)),
            None => device_chunk_limit,
        };
        let align = (limits.min_uniform_buffer_offset_alignment as u64).max(1);
        let uni_stride = UNIFORM_BIND_SIZE.div_ceil(align) * align;

        let mk = |label: &str, size: u64, usage: wgpu::BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage,
                mapped_at_creation: false,
            })
        };
        use wgpu::BufferUsages as U;
        let st = State {
            enc: None,
            batch: Vec::new(),
            uni_cpu: Vec::with_capacity(UNIFORM_ARENA as usize),
            uni_buf: mk("uniform arena", UNIFORM_ARENA, U::UNIFORM | U::COPY_DST),
            idx_cpu: Vec::new(),
            idx_buf: mk("gather index arena", 4096 * 4, U::STORAGE | U::COPY_DST),
            partials: mk("partials", PART_CAP as u64 * 16, U::STORAGE),
            slots: mk(
                "slots",
                NUM_SLOTS as u64 * 4,
                U::STORAGE | U::COPY_SRC | U::COPY_DST,
            ),
            slot_staging: mk(
                "slot staging",
                NUM_SLOTS as u64 * 4,
                U::MAP_READ | U::COPY_DST,
            ),
            scratch: mk(
                "group scratch",
                4096 * 4,
                U::STORAGE | U::COPY_SRC | U::COPY_DST,
            ),
            dummy: mk("dummy", 16, U::STORAGE),
            dl_staging: None,
        };
        let report = AdapterReport::new(&info, &limits);
        let mut caps = GridCaps::for_device(info.device_type);
        caps.rows = caps
            .rows
            .min(limits.max_compute_workgroups_per_dimension as usize);
        let be = GpuBackend {
            device,
            queue,
            report,
            info,
            limits,
            verbose: opts.verbose,
            chunk_limit,
            device_chunk_limit,
            uni_stride,
            caps,
            modules: Mutex::default(),
            pipes: Mutex::default(),
            st: Mutex::new(st),
            errors,
            has_error,
            current,
            lost,
            count: Count::default(),
        };
        be.check_async("setup")?;
        Ok(be)
    }

    fn pick_adapter(
        instance: &wgpu::Instance,
        backends: wgpu::Backends,
        opts: &GpuOptions,
        power: wgpu::PowerPreference,
    ) -> Result<wgpu::Adapter, String> {
        match &opts.adapter_name {
            Some(want) => {
                let all = pollster::block_on(instance.enumerate_adapters(backends));
                let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
                let w = want.to_lowercase();
                all.into_iter()
                    .find(|a| a.get_info().name.to_lowercase().contains(&w))
                    .ok_or_else(|| {
                        format!(
                            ": no adapter name contains `{want}` (WGPU_ADAPTER_NAME); available: {}",
                            if names.is_empty() {
                                "none".to_string()
                            } else {
                                names.join(", ")
                            }
                        )
                    })
            }
            None => pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: power,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            }))
            .map_err(|e| format!(" for backends {backends:?}: {e}")),
        }
    }

    /// Test hook: use the launch shapes tuned for real GPUs (many workgroups, one
    /// workgroup per row group) even on a CPU adapter, so both code paths can be tested.
    #[doc(hidden)]
    pub fn use_gpu_launch_shapes(&mut self) {
        let rows = self
            .caps
            .rows
            .max(4096)
            .min(self.limits.max_compute_workgroups_per_dimension as usize);
        self.caps = GridCaps {
            ew_x: 64,
            ew_y: 64,
            red_x: 32,
            red_y: 32,
            rows,
            thread_per_row: false,
        };
    }

    /// The adapter in use, with its key limits.
    pub fn adapter_info(&self) -> &AdapterReport {
        &self.report
    }

    /// wgpu's own description of the adapter.
    pub fn wgpu_adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.info
    }

    /// The device limits in force (the adapter's own).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// Bytes of one column chunk at most (storage binding limit, or the test hook).
    pub fn chunk_limit(&self) -> u64 {
        self.chunk_limit
    }

    /// Compile (once) and return a kernel's pipeline.
    fn pipe(&self, k: K) -> BResult<Arc<Pipe>> {
        if let Some(p) = lock(&self.pipes).get(&k) {
            return Ok(p.clone());
        }
        let d = k.def();
        let t0 = std::time::Instant::now();
        let scope_v = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut mods = lock(&self.modules);
            mods.entry(d.src)
                .or_insert_with(|| {
                    Arc::new(
                        self.device
                            .create_shader_module(wgpu::ShaderModuleDescriptor {
                                label: Some(d.src.file()),
                                source: wgpu::ShaderSource::Wgsl(d.src.code().into()),
                            }),
                    )
                })
                .clone()
        };
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: true,
                min_binding_size: None,
            },
            count: None,
        }];
        for &(b, rw) in d.binds {
            entries.push(wgpu::BindGroupLayoutEntry {
                binding: b,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage { read_only: !rw },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            });
        }
        let layout = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(k.name()),
                entries: &entries,
            });
        let pl = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(k.name()),
                bind_group_layouts: &[Some(&layout)],
                immediate_size: 0,
            });
        let pipeline = self
            .device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(k.name()),
                layout: Some(&pl),
                module: &module,
                entry_point: Some(d.entry),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: d.consts,
                    zero_initialize_workgroup_memory: false,
                },
                cache: None,
            });
        if let Some(e) = pollster::block_on(scope_v.pop()) {
            return Err(kernel_err(
                k.name(),
                format!(
                    "pipeline creation failed ({}:{}): {e}",
                    d.src.file(),
                    d.entry
                ),
            ));
        }
        if self.verbose {
            eprintln!(
                "sparse-alm gpu: compiled {} in {:.1} ms",
                k.name(),
                t0.elapsed().as_secs_f64() * 1e3
            );
        }
        let p = Arc::new(Pipe { pipeline, layout });
        lock(&self.pipes).insert(k, p.clone());
        Ok(p)
    }

    /// Errors reported asynchronously (uncaptured handler, device loss).
    fn check_async(&self, during: &str) -> BResult<()> {
        if !self.has_error.load(Ordering::SeqCst) {
            return Ok(());
        }
        if let Some(msg) = lock(&self.lost).clone() {
            return Err(BackendError::Lost(format!("{msg} (during {during})")));
        }
        let errs: Vec<(String, String)> = std::mem::take(&mut *lock(&self.errors));
        self.has_error.store(false, Ordering::SeqCst);
        match errs.into_iter().next() {
            Some((k, m)) => Err(kernel_err(k, m)),
            None => Ok(()),
        }
    }

    fn set_current(&self, k: &'static str) {
        *lock(&self.current) = k;
    }

    fn new_encoder(&self) -> wgpu::CommandEncoder {
        self.device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("sparse-alm"),
            })
    }

    fn encoder<'a>(&self, st: &'a mut State) -> &'a mut wgpu::CommandEncoder {
        st.enc.get_or_insert_with(|| self.new_encoder())
    }

    /// Record one dispatch of kernel `k` with parameters `params` and storage buffers
    /// `bufs` (in the order of the kernel's binding list).
    fn dispatch(
        &self,
        st: &mut State,
        k: K,
        params: &[u8],
        bufs: &[&wgpu::Buffer],
        groups: [u32; 3],
    ) -> BResult<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let maxg = self.limits.max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > maxg) {
            return Err(kernel_err(
                k.name(),
                format!("grid {groups:?} exceeds {maxg} per dimension"),
            ));
        }
        let pipe = self.pipe(k)?;
        let d = k.def();
        debug_assert_eq!(d.binds.len(), bufs.len(), "{}", k.name());
        if st.uni_cpu.len() as u64 + self.uni_stride > UNIFORM_ARENA {
            self.flush(st)?;
        }
        let off = st.uni_cpu.len();
        st.uni_cpu.extend_from_slice(params);
        st.uni_cpu.resize(off + self.uni_stride as usize, 0);
        self.set_current(k.name());
        let mut entries = Vec::with_capacity(bufs.len() + 1);
        entries.push(wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &st.uni_buf,
                offset: 0,
                size: wgpu::BufferSize::new(UNIFORM_BIND_SIZE),
            }),
        });
        for (&(b, _), buf) in d.binds.iter().zip(bufs) {
            entries.push(wgpu::BindGroupEntry {
                binding: b,
                resource: buf.as_entire_binding(),
            });
        }
        let bg = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(k.name()),
            layout: &pipe.layout,
            entries: &entries,
        });
        let enc = st.enc.get_or_insert_with(|| self.new_encoder());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(k.name()),
                timestamp_writes: None,
            });
            pass.set_pipeline(&pipe.pipeline);
            pass.set_bind_group(0, &bg, &[off as u32]);
            pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
        }
        if st.batch.last() != Some(&k.name()) && st.batch.len() < 64 {
            st.batch.push(k.name());
        }
        self.count.dispatches.fetch_add(1, Ordering::Relaxed);
        self.check_async(k.name())
    }

    /// Submit everything recorded so far (no wait). Errors raised by the submission are
    /// returned naming the kernels it held.
    fn flush(&self, st: &mut State) -> BResult<()> {
        let Some(enc) = st.enc.take() else {
            st.uni_cpu.clear();
            st.idx_cpu.clear();
            return self.check_async("submit");
        };
        self.set_current("submit");
        let s_oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let s_int = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let s_val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        if !st.uni_cpu.is_empty() {
            self.queue.write_buffer(&st.uni_buf, 0, &st.uni_cpu);
        }
        if !st.idx_cpu.is_empty() {
            self.queue
                .write_buffer(&st.idx_buf, 0, bytemuck::cast_slice(&st.idx_cpu));
        }
        self.queue.submit([enc.finish()]);
        let e_val = pollster::block_on(s_val.pop());
        let e_int = pollster::block_on(s_int.pop());
        let e_oom = pollster::block_on(s_oom.pop());
        st.uni_cpu.clear();
        st.idx_cpu.clear();
        let batch = std::mem::take(&mut st.batch);
        self.count.submits.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = e_val.or(e_int).or(e_oom) {
            let names = if batch.is_empty() {
                "submit".to_string()
            } else {
                batch.join(",")
            };
            return Err(kernel_err(names, e.to_string()));
        }
        self.check_async("submit")
    }

    /// Block until the device is idle.
    fn wait(&self) -> BResult<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::Device(format!("poll: {e}")))?;
        self.check_async("wait")
    }

    /// Map `buf` (MAP_READ) for `size` bytes, after everything submitted so far.
    fn map_read(&self, buf: &wgpu::Buffer, size: u64, what: &str) -> BResult<Vec<u8>> {
        let (tx, rx) = std::sync::mpsc::channel();
        buf.map_async(wgpu::MapMode::Read, 0..size, move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        match rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(kernel_err(what, format!("map failed: {e}"))),
            Err(_) => {
                return Err(BackendError::Lost(format!(
                    "{what}: map callback never ran"
                )))
            }
        }
        let bytes = {
            let view = buf
                .get_mapped_range(0..size)
                .map_err(|e| kernel_err(what, format!("mapped range: {e}")))?;
            view.to_vec()
        };
        buf.unmap();
        Ok(bytes)
    }

    /// Column chunk widths for a `rows × cols` matrix.
    fn plan(&self, op: &str, rows: usize, cols: usize) -> BResult<Vec<usize>> {
        if rows == 0 || cols == 0 {
            return Ok(vec![cols]);
        }
        let col_bytes = rows as u64 * 4;
        if col_bytes > self.device_chunk_limit {
            return Err(BackendError::Shape {
                op: op.into(),
                msg: format!(
                    "one column of {rows} rows ({col_bytes} bytes) exceeds the device's storage \
                     binding limit of {} bytes",
                    self.device_chunk_limit
                ),
            });
        }
        let per = (self.chunk_limit / col_bytes).max(1) as usize;
        let n = cols.div_ceil(per);
        let w = cols.div_ceil(n);
        let mut v = Vec::with_capacity(n);
        let mut left = cols;
        while left > 0 {
            let c = w.min(left);
            v.push(c);
            left -= c;
        }
        Ok(v)
    }

    fn alloc(
        &self,
        op: &str,
        rows: usize,
        cols: usize,
        host: Option<&ndarray::ArrayView2<f32>>,
    ) -> BResult<GpuMat> {
        let plan = self.plan(op, rows, cols)?;
        self.set_current("alloc");
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let mut chunks = Vec::with_capacity(plan.len());
        let mut col0 = 0;
        for c in plan {
            let size = ((rows * c * 4) as u64).max(4);
            let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("matrix chunk"),
                size,
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: host.is_some(),
            });
            if let Some(h) = host {
                {
                    let mut view = buf
                        .get_mapped_range_mut(..)
                        .map_err(|e| kernel_err(op, format!("mapped range: {e}")))?;
                    let sub = h.slice(ndarray::s![.., col0..col0 + c]);
                    let owned;
                    let data: &[f32] = match sub.as_slice() {
                        Some(s) => s,
                        None => {
                            owned = sub.iter().copied().collect::<Vec<f32>>();
                            &owned
                        }
                    };
                    view.slice(..data.len() * 4)
                        .copy_from_slice(bytemuck::cast_slice(data));
                }
                buf.unmap();
            }
            chunks.push(Chunk { buf, col0, cols: c });
            col0 += c;
        }
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(kernel_err(op, format!("allocating {rows}×{cols}: {e}")));
        }
        self.check_async(op)?;
        Ok(GpuMat { rows, cols, chunks })
    }

    fn counters_now(&self) -> Counters {
        Counters {
            dispatches: self.count.dispatches.load(Ordering::Relaxed),
            readbacks: self.count.readbacks.load(Ordering::Relaxed),
            submits: self.count.submits.load(Ordering::Relaxed),
        }
    }
}
