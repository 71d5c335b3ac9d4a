//! Which GPU to use and what it allows: the options (`WGPU_*` environment variables),
//! adapter selection and device creation, the adapter report `sparse-alm info` prints, and
//! the launch shapes chosen per adapter type.

use super::{BResult, GpuBackend};
use crate::backend::BackendError;
use std::fmt;

/// Storage buffers one kernel binds at most (`shaders/ladder.wgsl:ladder_select`: four
/// pairs of a block's copies, so that a block's decision is one dispatch).
const MIN_STORAGE_BUFFERS: u32 = 14;

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
    /// Compile every shader module with wgpu's runtime bounds checks, also the matmul
    /// module, which by default is compiled without them (debugging; see `pipelines`).
    pub shader_checks: bool,
    /// Do not use subgroup operations even where the adapter has them: a CPU adapter then
    /// runs its matmuls on `matmul_8x8` instead of `matmul_sg` (debugging, and the tests
    /// of the fallback).
    pub no_subgroups: bool,
}

impl GpuOptions {
    /// `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`, `WGPU_POWER_PREF`, and
    /// `SPARSE_ALM_SHADER_CHECKS=1` for [`GpuOptions::shader_checks`],
    /// `SPARSE_ALM_NO_SUBGROUPS=1` for [`GpuOptions::no_subgroups`].
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        GpuOptions {
            backends: var("WGPU_BACKEND"),
            adapter_name: var("WGPU_ADAPTER_NAME"),
            power_pref: var("WGPU_POWER_PREF"),
            max_chunk_bytes: None,
            verbose: false,
            shader_checks: var("SPARSE_ALM_SHADER_CHECKS").is_some_and(|v| v.trim() != "0"),
            no_subgroups: var("SPARSE_ALM_NO_SUBGROUPS").is_some_and(|v| v.trim() != "0"),
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
    pub(crate) fn new(info: &wgpu::AdapterInfo, limits: &wgpu::Limits) -> Self {
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
    // Where the driver reports a memory budget (DX12; Vulkan with VK_EXT_memory_budget),
    // a buffer beyond 95% of it is an out-of-memory error (the allocator's error scope
    // turns it into a kernel error, exit 1) instead of the driver spilling into host
    // memory until the system kills the process. The run's size is checked before it
    // starts (`app::memory`); this catches what that estimate cannot see.
    desc.memory_budget_thresholds.for_resource_creation = Some(95);
    wgpu::Instance::new(desc)
}

/// An opened device with the adapter it came from.
pub(crate) struct Opened {
    pub(crate) device: wgpu::Device,
    pub(crate) queue: wgpu::Queue,
    pub(crate) info: wgpu::AdapterInfo,
    pub(crate) limits: wgpu::Limits,
    pub(crate) caps: GridCaps,
}

/// Pick an adapter per `opts` (backend tiers in order, then name or power preference) and
/// open a device with the adapter's own limits.
pub(crate) fn open(opts: &GpuOptions) -> BResult<Opened> {
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
        match pick_adapter(&instance, backends, opts, power) {
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
    // Desktop Vulkan, Metal and DX12 adapters allow far more; WebGPU's default is 8.
    let storage = limits.max_storage_buffers_per_shader_stage;
    if storage < MIN_STORAGE_BUFFERS {
        return Err(BackendError::Device(format!(
            "{} ({:?}) allows {storage} storage buffers per shader stage; sparse-alm's kernels need {MIN_STORAGE_BUFFERS}",
            info.name, info.backend
        )));
    }
    if opts.verbose {
        eprintln!(
            "sparse-alm gpu: adapter {} ({:?}, {})",
            info.name, info.backend, info.driver
        );
    }
    let caps = GridCaps::for_adapter(&adapter, &limits, opts);
    if opts.verbose {
        eprintln!("sparse-alm gpu: matmuls on {}", caps.wide.kernel());
    }
    let required_features = match caps.wide {
        WideTile::Subgroup8 => wgpu::Features::SUBGROUP,
        _ => wgpu::Features::empty(),
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("sparse-alm"),
        required_features,
        required_limits: limits.clone(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }))
    .map_err(|e| BackendError::Device(format!("{} ({:?}): {e}", info.name, info.backend)))?;
    Ok(Opened {
        device,
        queue,
        info,
        limits,
        caps,
    })
}

/// The adapter of one backend tier: the first whose name contains `WGPU_ADAPTER_NAME`, else
/// wgpu's choice for the power preference. `Err` is the reason, for the no-adapter message.
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
    /// The matmul kernel of outputs wider than an output layer's (`ops/matmul.rs`).
    pub(crate) wide: WideTile,
}

/// Which kernel runs a matmul whose output has more rows than the narrow tile's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WideTile {
    /// GPUs: the 64×64 tile with 4×4 blocks per invocation (`matmul`).
    Gpu4x4,
    /// CPU adapters: the same tile with 8×8 blocks per invocation (`matmul_8x8`: fewer
    /// workgroup-memory loads per product, which a software adapter makes one lane at a
    /// time).
    Cpu8x8,
    /// CPU adapters with 8-lane subgroups (lavapipe): `matmul_sg`, a 16×32 tile per
    /// subgroup that shares A's elements by register shuffles instead of workgroup memory.
    /// Measured on lavapipe (2 cores), per matmul of the digits and teacher hidden layers:
    /// 1.9–3.6× the speed of `matmul_8x8`, and up to 9× that of the narrow tile on an
    /// output layer, so it runs every product, whatever its rows.
    Subgroup8,
}

impl WideTile {
    /// The kernel's entry point in `shaders/`.
    fn kernel(self) -> &'static str {
        match self {
            WideTile::Gpu4x4 => "matmul",
            WideTile::Cpu8x8 => "matmul_8x8",
            WideTile::Subgroup8 => "matmul_sg",
        }
    }
}

impl GridCaps {
    /// The launch shapes tuned for real GPUs: many workgroups, one workgroup per row group.
    fn gpu(rows: usize) -> Self {
        GridCaps {
            ew_x: 64,
            ew_y: 64,
            red_x: 32,
            red_y: 32,
            rows,
            thread_per_row: false,
            wide: WideTile::Gpu4x4,
        }
    }

    /// The shapes for `adapter` within its `limits`; `SPARSE_ALM_GPU_GRID=
    /// ew_x,ew_y,red_x,red_y` overrides the grid caps (tuning).
    fn for_adapter(adapter: &wgpu::Adapter, limits: &wgpu::Limits, opts: &GpuOptions) -> Self {
        let info = adapter.get_info();
        // `matmul_sg` needs each workgroup of 8 invocations to be one whole subgroup.
        let subgroups8 = !opts.no_subgroups
            && adapter.features().contains(wgpu::Features::SUBGROUP)
            && info.subgroup_min_size == 8
            && info.subgroup_max_size == 8;
        let threads = std::thread::available_parallelism()
            .map_or(2, |n| n.get())
            .clamp(2, 64);
        let mut c = match info.device_type {
            // Measured on lavapipe (2 cores): 8 workgroups beat 4096 by 2–5× on
            // elementwise and reduction kernels.
            wgpu::DeviceType::Cpu => GridCaps {
                ew_x: 2,
                ew_y: threads,
                red_x: 2,
                red_y: threads,
                rows: 2 * threads,
                thread_per_row: true,
                wide: if subgroups8 {
                    WideTile::Subgroup8
                } else {
                    WideTile::Cpu8x8
                },
            },
            _ => GridCaps::gpu(65535),
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
        c.rows = c
            .rows
            .min(limits.max_compute_workgroups_per_dimension as usize);
        c
    }
}

impl GpuBackend {
    /// Test hook: use the launch shapes tuned for real GPUs (many workgroups, one
    /// workgroup per row group, 4×4 matmul blocks) even on a CPU adapter, so both code
    /// paths can be tested.
    #[doc(hidden)]
    pub fn use_gpu_launch_shapes(&mut self) {
        let rows = self
            .caps
            .rows
            .max(4096)
            .min(self.limits.max_compute_workgroups_per_dimension as usize);
        self.caps = GridCaps::gpu(rows);
    }

    /// The kernel that runs this device's matmuls of more than 16 output rows (and of
    /// every output, for `matmul_sg`): `matmul`, `matmul_8x8` or `matmul_sg`.
    pub fn wide_matmul(&self) -> &'static str {
        self.caps.wide.kernel()
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
}
