//! Which backend a command runs on: the [`Device`] enum (GPU when one is found, else the
//! CPU reference backend), [`open_device`] with the `auto` fallback policy, the
//! `with_backend!` dispatch that lets each command body be written once, generic over
//! [`Backend`](crate::backend::Backend), and the `info` command that reports all of it.

use super::memory::Placement;
use crate::backend::cpu::CpuBackend;
use crate::backend::BackendError;
use crate::backend::{Backend, Counters};
use crate::config::DeviceChoice;
use crate::{Error, Result};
use std::fmt::Write as _;

/// The backend a command runs on.
pub enum Device {
    Cpu(CpuBackend<f32>),
    Gpu(Box<gpu_glue::Gpu>),
}

/// Run `$body` with `$be` bound to the concrete backend inside a [`Device`].
macro_rules! with_backend {
    ($dev:expr, $be:ident => $body:expr) => {
        match $dev {
            $crate::app::device::Device::Cpu($be) => $body,
            $crate::app::device::Device::Gpu(g) => {
                let $be: &$crate::app::device::gpu_glue::Gpu = &**g;
                $body
            }
        }
    };
}
pub(crate) use with_backend;

impl Device {
    /// The backend's own description (adapter name and driver for a GPU).
    pub fn name(&self) -> String {
        with_backend!(self, be => be.name())
    }

    pub fn counters(&self) -> Counters {
        with_backend!(self, be => be.counters())
    }

    pub fn is_gpu(&self) -> bool {
        matches!(self, Device::Gpu(_))
    }

    /// Where the solver's matrices live: host memory, or a GPU's (shared with the host for
    /// a software or integrated adapter).
    pub fn placement(&self) -> Placement {
        match self {
            Device::Cpu(_) => Placement::Host,
            Device::Gpu(g) => Placement::Device {
                shared: matches!(
                    g.adapter_info().device_type.as_str(),
                    "Cpu" | "IntegratedGpu"
                ),
            },
        }
    }

    /// A GPU's name and the most bytes one of its buffer bindings may hold.
    pub fn buffer_limit(&self) -> Option<(String, u64)> {
        match self {
            Device::Cpu(_) => None,
            Device::Gpu(g) => {
                let l = g.limits();
                Some((
                    g.adapter_info().name.clone(),
                    l.max_storage_buffer_binding_size.min(l.max_buffer_size),
                ))
            }
        }
    }
}

/// The GPU backend, isolated so the rest of the app does not depend on its constructor.
pub(crate) mod gpu_glue {
    use crate::backend::gpu::{self, GpuBackend, GpuOptions};
    use crate::backend::BackendError;

    pub type Gpu = GpuBackend;

    /// Open the GPU the environment selects (`GpuOptions::from_env`).
    pub fn open() -> Result<Gpu, BackendError> {
        GpuBackend::new(GpuOptions::from_env())
    }

    /// A software rasteriser (llvmpipe, SwiftShader, WARP): wgpu reports it as a `Cpu`
    /// device, and the BLAS backend is much faster than emulated compute shaders.
    pub fn is_software(g: &Gpu) -> bool {
        g.adapter_info().device_type == "Cpu"
    }

    /// True when the user named an adapter (`WGPU_ADAPTER_NAME`): `auto` then honours it
    /// even if it is a software one.
    pub fn adapter_requested() -> bool {
        GpuOptions::from_env().adapter_name.is_some()
    }

    /// One line per adapter (with its limits), as the GPU module describes it.
    pub fn adapters() -> Vec<String> {
        gpu::list_adapters().iter().map(|a| a.to_string()).collect()
    }
}

/// Open the backend `choice` asks for. `auto` falls back to the CPU when no GPU can be
/// opened and reports that through `notice` (one line); `gpu` fails instead.
pub fn open_device(choice: DeviceChoice, notice: &mut dyn FnMut(&str)) -> Result<Device> {
    match choice {
        DeviceChoice::Cpu => Ok(Device::Cpu(CpuBackend::new())),
        DeviceChoice::Gpu => match gpu_glue::open() {
            Ok(g) => Ok(Device::Gpu(Box::new(g))),
            Err(BackendError::NoAdapter(why)) => Err(Error::Backend(BackendError::NoAdapter(format!(
                "{why}; --device gpu needs a GPU (use --device auto to fall back to the CPU, or --device cpu)"
            )))),
            Err(e) => Err(Error::Backend(e)),
        },
        DeviceChoice::Auto => match gpu_glue::open() {
            Ok(g) if gpu_glue::is_software(&g) && !gpu_glue::adapter_requested() => {
                let cpu = CpuBackend::<f32>::new();
                notice(&format!(
                    "note: the GPU adapter found is a software renderer ({}); running on {} (--device gpu forces it)",
                    g.adapter_info().name,
                    cpu.name()
                ));
                Ok(Device::Cpu(cpu))
            }
            Ok(g) => Ok(Device::Gpu(Box::new(g))),
            Err(e) => {
                let cpu = CpuBackend::<f32>::new();
                notice(&format!("note: no usable GPU ({e}); running on {}", cpu.name()));
                Ok(Device::Cpu(cpu))
            }
        },
    }
}

/// `sparse-alm info`: GPU adapters, which one `auto` picks, and the CPU backend. Never
/// fails: a missing GPU is reported, not an error.
pub fn info() -> String {
    let mut s = String::new();
    let adapters = gpu_glue::adapters();
    if adapters.is_empty() {
        let _ = writeln!(s, "GPU adapters: none found");
    } else {
        let _ = writeln!(s, "GPU adapters ({}):", adapters.len());
        for a in &adapters {
            for (i, line) in a.lines().enumerate() {
                let _ = writeln!(s, "{}{line}", if i == 0 { "  - " } else { "    " });
            }
        }
    }
    let mut why = None;
    match open_device(DeviceChoice::Auto, &mut |n| why = Some(n.to_string())) {
        Ok(dev) => {
            let _ = writeln!(s, "--device auto uses: {}", dev.name());
        }
        Err(e) => {
            let _ = writeln!(s, "--device auto uses: nothing ({e})");
        }
    }
    if let Some(w) = why {
        let _ = writeln!(s, "  ({})", w.trim_start_matches("note: "));
    }
    let _ = writeln!(s, "CPU backend: {}", CpuBackend::<f32>::new().name());
    s
}
