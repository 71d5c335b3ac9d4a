//! The kernel table and the pipeline cache: which WGSL file and entry point implements each
//! kernel, its binding signature, and the compute pipeline built from it on first use.
//!
//! A shader module is `shaders/common.wgsl` (shared declarations) followed by one
//! `shaders/*.wgsl` file, composed at compile time; each module is compiled once and shared
//! by the kernels it holds. Binding 0 of every kernel is the dynamic-offset uniform of
//! `params.rs`; the storage bindings follow the kernel's table entry.

use super::{kernel_err, lock, BResult};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A WGSL source file under `shaders/`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Src {
    Elementwise,
    Optim,
    Gather,
    Residual,
    Reduce,
    Loss,
    GroupProx,
    Matmul,
    /// `matmul.wgsl` and `matmul_sg.wgsl` in one module, which uses subgroup operations
    /// and is compiled only on a device that has them (`GridCaps::wide`).
    MatmulSg,
    Ladder,
}

impl Src {
    pub(crate) fn file(self) -> &'static str {
        match self {
            Src::Elementwise => "elementwise.wgsl",
            Src::Optim => "optim.wgsl",
            Src::Gather => "gather.wgsl",
            Src::Residual => "residual.wgsl",
            Src::Reduce => "reduce.wgsl",
            Src::Loss => "loss.wgsl",
            Src::GroupProx => "group_prox.wgsl",
            Src::Matmul => "matmul.wgsl",
            Src::MatmulSg => "matmul_sg.wgsl",
            Src::Ladder => "ladder.wgsl",
        }
    }

    /// Whether the module is compiled without wgpu's runtime bounds checks: only where every
    /// kernel bounds its own indices and that logic is tested at sizes off the tile
    /// (`tests/gpu_kernels.rs`: 1, 63, 65, 257, 17 rows, 65 elements, chunk boundaries).
    /// The matmul tiles check each load and store themselves, so the injected checks only
    /// cost time in the innermost loop. `GpuOptions::shader_checks` turns them back on.
    fn trusted(self) -> bool {
        matches!(self, Src::Matmul | Src::MatmulSg)
    }

    /// The module's WGSL: `shaders/common.wgsl` (shared declarations) followed by the file
    /// (or files: a kernel file that extends another follows it).
    pub(crate) fn code(self) -> &'static str {
        macro_rules! module {
            ($($file:literal),+) => {
                concat!(
                    include_str!("../../../shaders/common.wgsl"),
                    $(include_str!(concat!("../../../shaders/", $file))),+
                )
            };
        }
        match self {
            Src::Elementwise => module!("elementwise.wgsl"),
            Src::Optim => module!("optim.wgsl"),
            Src::Gather => module!("gather.wgsl"),
            Src::Residual => module!("residual.wgsl"),
            Src::Reduce => module!("reduce.wgsl"),
            Src::Loss => module!("loss.wgsl"),
            Src::GroupProx => module!("group_prox.wgsl"),
            Src::Matmul => module!("matmul.wgsl"),
            Src::MatmulSg => module!("matmul.wgsl", "matmul_sg.wgsl"),
            Src::Ladder => module!("ladder.wgsl"),
        }
    }
}

/// Every compute pipeline the backend uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum K {
    Axpby,
    Axpy,
    Scale,
    Fill,
    LeakyRelu,
    MulLeakyDeriv,
    WTrialPreact,
    Adam,
    Gather,
    Residual,
    ConstraintValue,
    StepValue,
    StepValuePair,
    WTrialValue,
    WTrialValuePair,
    MultiplierUpdate,
    Dot,
    SqNorm,
    StepDiff,
    DiffSums,
    Finalize,
    RowSum,
    LossSq,
    LossGradSq,
    LossCe,
    LossGradCe,
    WTrialLossSq,
    WTrialLossCe,
    StepLossSq,
    StepLossCe,
    CountErrors,
    RowSq,
    ColSq,
    ProxFactor,
    NormStats,
    ScaleRows,
    ScaleCols,
    RowsFused,
    RowsFusedThread,
    ColsFused,
    ProxStepRows,
    ProxStepRowsThread,
    ProxStepRowsPair,
    ProxStepRowsThreadPair,
    MatmulNN,
    MatmulNT,
    MatmulTN,
    MatmulNarrowNN,
    MatmulNarrowNT,
    MatmulNarrowTN,
    MatmulRowNN,
    MatmulRowNT,
    MatmulRowTN,
    Matmul8x8NN,
    Matmul8x8NT,
    Matmul8x8TN,
    MatmulSgNN,
    MatmulSgNT,
    MatmulSgTN,
    SumSlices,
    LadderSelect,
}

/// A kernel's definition: source, entry point, storage bindings `(binding, read_write)`
/// (binding 0 is always the dynamic-offset uniform), pipeline-overridable constants.
pub(crate) struct KDef {
    pub src: Src,
    pub entry: &'static str,
    pub binds: &'static [(u32, bool)],
    pub consts: &'static [(&'static str, f64)],
}

const R: bool = false;
const W: bool = true;

/// The prox-step kernels' bindings: new W, factors, old W, ∇W, new b, old b, ∇b, partials.
const PROX_STEP: &[(u32, bool)] = &[
    (1, W),
    (2, W),
    (4, R),
    (5, R),
    (6, W),
    (7, R),
    (8, R),
    (3, W),
];

/// The prox-step pair kernels: `PROX_STEP`'s candidate 0 and operands, then candidate 1's
/// `W`, factors and `b`, then the partials.
const PROX_STEP_PAIR: &[(u32, bool)] = &[
    (1, W),
    (2, W),
    (4, R),
    (5, R),
    (6, W),
    (7, R),
    (8, R),
    (9, W),
    (10, W),
    (11, W),
    (3, W),
];

/// The output layer's trial losses (`shaders/loss.wgsl`): U, Y, the trial point, B or D,
/// then (W trials) b_old, b_new, the shrink factors, and the partials.
const W_TRIAL_LOSS: &[(u32, bool)] = &[
    (5, R),
    (2, R),
    (7, W),
    (6, R),
    (8, R),
    (9, R),
    (10, R),
    (4, W),
];
const STEP_LOSS: &[(u32, bool)] = &[(5, R), (2, R), (7, W), (6, R), (4, W)];

/// `ladder_select`'s bindings: four (state, candidate 0, candidate 1) triples, the slots,
/// the conditional dispatch arena.
const LADDER_SELECT: &[(u32, bool)] = &[
    (1, W),
    (2, R),
    (3, R),
    (4, W),
    (5, R),
    (6, R),
    (7, W),
    (8, R),
    (9, R),
    (10, W),
    (11, R),
    (12, R),
    (13, W),
    (14, W),
];

/// The matmul kernels' bindings (A, B, C, bias) and their layouts' constants. The bias is
/// written by a weight gradient's product (its ones column).
const MATMUL: &[(u32, bool)] = &[(1, R), (2, R), (3, W), (4, W)];
type Consts = &'static [(&'static str, f64)];
const NN: Consts = &[("TA", 0.0), ("TB", 0.0)];
const NT: Consts = &[("TA", 0.0), ("TB", 1.0)];
const TN: Consts = &[("TA", 1.0), ("TB", 0.0)];

/// A table row: source, entry point, storage bindings, constants (see [`KDef`]).
type Row = (
    Src,
    &'static str,
    &'static [(u32, bool)],
    &'static [(&'static str, f64)],
);

impl K {
    pub(crate) fn def(self) -> KDef {
        use K::*;
        let (src, entry, binds, consts): Row = match self {
            Axpby => (Src::Elementwise, "axpby", &[(1, W), (2, R), (3, R)], &[]),
            Axpy => (Src::Elementwise, "axpy", &[(1, W), (2, R)], &[]),
            Scale => (Src::Elementwise, "scale", &[(1, W)], &[]),
            Fill => (Src::Elementwise, "fill", &[(1, W)], &[]),
            LeakyRelu => (Src::Elementwise, "leaky_relu", &[(1, W), (2, R)], &[]),
            MulLeakyDeriv => (Src::Elementwise, "mul_leaky_deriv", &[(1, W), (2, R)], &[]),
            WTrialPreact => (
                Src::Elementwise,
                "w_trial_preact",
                &[(1, W), (2, R), (3, R), (4, R), (5, R), (6, R)],
                &[],
            ),
            Adam => (
                Src::Optim,
                "adam_update",
                &[(1, W), (2, R), (3, W), (4, W)],
                &[],
            ),
            Gather => (Src::Gather, "gather_cols", &[(1, W), (2, R), (3, R)], &[]),
            Residual => (
                Src::Residual,
                "constraint_residual",
                &[(1, R), (2, R), (3, R), (4, W), (5, W), (8, W)],
                &[],
            ),
            ConstraintValue => (
                Src::Residual,
                "constraint_value",
                &[(1, R), (2, R), (3, R), (8, W)],
                &[],
            ),
            StepValue => (
                Src::Residual,
                "step_value",
                &[(1, R), (2, R), (3, R), (4, W), (6, R), (5, W), (8, W)],
                &[],
            ),
            StepValuePair => (
                Src::Residual,
                "step_value_pair",
                &[
                    (1, R),
                    (2, R),
                    (3, R),
                    (4, W),
                    (6, R),
                    (5, W),
                    (12, W),
                    (13, W),
                    (8, W),
                ],
                &[],
            ),
            WTrialValue => (
                Src::Residual,
                "w_trial_value",
                &[
                    (1, R),
                    (2, R),
                    (3, R),
                    (4, W),
                    (6, R),
                    (5, W),
                    (9, R),
                    (10, R),
                    (11, R),
                    (8, W),
                ],
                &[],
            ),
            WTrialValuePair => (
                Src::Residual,
                "w_trial_value_pair",
                &[
                    (1, R),
                    (2, R),
                    (3, R),
                    (4, W),
                    (6, R),
                    (5, W),
                    (12, W),
                    (13, W),
                    (9, R),
                    (10, R),
                    (11, R),
                    (14, R),
                    (15, R),
                    (8, W),
                ],
                &[],
            ),
            MultiplierUpdate => (
                Src::Elementwise,
                "multiplier_update",
                &[(1, W), (2, R), (3, R)],
                &[],
            ),
            Dot => (Src::Reduce, "dot", &[(1, R), (2, R), (3, W)], &[]),
            SqNorm => (Src::Reduce, "sq_norm", &[(1, R), (3, W)], &[]),
            StepDiff => (
                Src::Reduce,
                "step_diff",
                &[(1, R), (2, R), (5, W), (6, R), (3, W)],
                &[],
            ),
            DiffSums => (
                Src::Reduce,
                "diff_sums",
                &[(1, R), (2, R), (6, R), (3, W)],
                &[],
            ),
            Finalize => (Src::Reduce, "finalize", &[(3, W), (4, W)], &[]),
            RowSum => (Src::Reduce, "row_sum", &[(1, R), (3, W)], &[]),
            LossSq => (Src::Loss, "loss_sq", &[(1, R), (2, R), (4, W)], &[]),
            LossGradSq => (
                Src::Loss,
                "loss_grad_sq",
                &[(1, R), (2, R), (3, W), (4, W)],
                &[],
            ),
            LossCe => (Src::Loss, "loss_ce", &[(1, R), (2, R), (4, W)], &[]),
            LossGradCe => (
                Src::Loss,
                "loss_grad_ce",
                &[(1, R), (2, R), (3, W), (4, W)],
                &[],
            ),
            WTrialLossSq => (Src::Loss, "w_trial_loss_sq", W_TRIAL_LOSS, &[]),
            WTrialLossCe => (Src::Loss, "w_trial_loss_ce", W_TRIAL_LOSS, &[]),
            StepLossSq => (Src::Loss, "step_loss_sq", STEP_LOSS, &[]),
            StepLossCe => (Src::Loss, "step_loss_ce", STEP_LOSS, &[]),
            CountErrors => (Src::Loss, "count_errors", &[(1, R), (2, R), (4, W)], &[]),
            RowSq => (Src::GroupProx, "row_sq", &[(1, W), (2, W)], &[]),
            ColSq => (Src::GroupProx, "col_sq", &[(1, W), (2, W)], &[]),
            ProxFactor => (Src::GroupProx, "prox_factor", &[(2, W), (3, W)], &[]),
            NormStats => (Src::GroupProx, "norm_stats", &[(2, W), (3, W)], &[]),
            ScaleRows => (Src::GroupProx, "scale_rows", &[(1, W), (2, W)], &[]),
            ScaleCols => (Src::GroupProx, "scale_cols", &[(1, W), (2, W)], &[]),
            RowsFused => (Src::GroupProx, "rows_fused", &[(1, W), (2, W), (3, W)], &[]),
            RowsFusedThread => (
                Src::GroupProx,
                "rows_fused_thread",
                &[(1, W), (2, W), (3, W)],
                &[],
            ),
            ColsFused => (Src::GroupProx, "cols_fused", &[(1, W), (2, W), (3, W)], &[]),
            ProxStepRows => (Src::GroupProx, "prox_step_rows", PROX_STEP, &[]),
            ProxStepRowsThread => (Src::GroupProx, "prox_step_rows_thread", PROX_STEP, &[]),
            ProxStepRowsPair => (Src::GroupProx, "prox_step_rows_pair", PROX_STEP_PAIR, &[]),
            ProxStepRowsThreadPair => (
                Src::GroupProx,
                "prox_step_rows_thread_pair",
                PROX_STEP_PAIR,
                &[],
            ),
            MatmulNN => (Src::Matmul, "matmul", MATMUL, NN),
            MatmulNT => (Src::Matmul, "matmul", MATMUL, NT),
            MatmulTN => (Src::Matmul, "matmul", MATMUL, TN),
            MatmulNarrowNN => (Src::Matmul, "matmul_narrow", MATMUL, NN),
            MatmulNarrowNT => (Src::Matmul, "matmul_narrow", MATMUL, NT),
            MatmulNarrowTN => (Src::Matmul, "matmul_narrow", MATMUL, TN),
            MatmulRowNN => (Src::Matmul, "matmul_row", MATMUL, NN),
            MatmulRowNT => (Src::Matmul, "matmul_row", MATMUL, NT),
            MatmulRowTN => (Src::Matmul, "matmul_row", MATMUL, TN),
            Matmul8x8NN => (Src::Matmul, "matmul_8x8", MATMUL, NN),
            Matmul8x8NT => (Src::Matmul, "matmul_8x8", MATMUL, NT),
            Matmul8x8TN => (Src::Matmul, "matmul_8x8", MATMUL, TN),
            MatmulSgNN => (Src::MatmulSg, "matmul_sg", MATMUL, NN),
            MatmulSgNT => (Src::MatmulSg, "matmul_sg", MATMUL, NT),
            MatmulSgTN => (Src::MatmulSg, "matmul_sg", MATMUL, TN),
            SumSlices => (Src::Matmul, "sum_slices", &[(1, R), (3, W), (4, W)], &[]),
            LadderSelect => (Src::Ladder, "ladder_select", LADDER_SELECT, &[]),
        };
        KDef {
            src,
            entry,
            binds,
            consts,
        }
    }

    /// The name used in labels and error messages.
    pub(crate) fn name(self) -> &'static str {
        match self {
            K::MatmulNN => "matmul_nn",
            K::MatmulNT => "matmul_nt",
            K::MatmulTN => "matmul_tn",
            K::MatmulNarrowNN => "matmul_nn_narrow",
            K::MatmulNarrowNT => "matmul_nt_narrow",
            K::MatmulNarrowTN => "matmul_tn_narrow",
            K::MatmulRowNN => "matmul_nn_row",
            K::MatmulRowNT => "matmul_nt_row",
            K::MatmulRowTN => "matmul_tn_row",
            K::Matmul8x8NN => "matmul_nn_8x8",
            K::Matmul8x8NT => "matmul_nt_8x8",
            K::Matmul8x8TN => "matmul_tn_8x8",
            K::MatmulSgNN => "matmul_nn_sg",
            K::MatmulSgNT => "matmul_nt_sg",
            K::MatmulSgTN => "matmul_tn_sg",
            k => k.def().entry,
        }
    }
}

/// A compiled kernel: its pipeline and the layout its bind groups are made against.
pub(crate) struct Pipe {
    pub(crate) pipeline: wgpu::ComputePipeline,
    pub(crate) layout: wgpu::BindGroupLayout,
}

/// Shader modules and pipelines, each compiled on first use and kept for the backend's life.
#[derive(Default)]
pub(crate) struct PipelineCache {
    modules: Mutex<HashMap<Src, Arc<wgpu::ShaderModule>>>,
    pipes: Mutex<HashMap<K, Arc<Pipe>>>,
}

impl PipelineCache {
    /// Compile (once) and return kernel `k`'s pipeline; `verbose` prints the compile time,
    /// `checks` compiles even a trusted module with runtime bounds checks.
    pub(crate) fn get(
        &self,
        device: &wgpu::Device,
        k: K,
        (verbose, checks): (bool, bool),
    ) -> BResult<Arc<Pipe>> {
        if let Some(p) = lock(&self.pipes).get(&k) {
            return Ok(p.clone());
        }
        let d = k.def();
        let t0 = std::time::Instant::now();
        let scope_v = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = {
            let mut mods = lock(&self.modules);
            mods.entry(d.src)
                .or_insert_with(|| {
                    let desc = wgpu::ShaderModuleDescriptor {
                        label: Some(d.src.file()),
                        source: wgpu::ShaderSource::Wgsl(d.src.code().into()),
                    };
                    Arc::new(if d.src.trusted() && !checks {
                        // Integer division keeps its guard; loops all end (bounded counts).
                        let unchecked = wgpu::ShaderRuntimeChecks {
                            bounds_checks: false,
                            force_loop_bounding: false,
                            ..wgpu::ShaderRuntimeChecks::checked()
                        };
                        // SAFETY: every index of a trusted module is bounded by the kernel
                        // itself (see `Src::trusted`), and its loops have bounded counts.
                        unsafe { device.create_shader_module_trusted(desc, unchecked) }
                    } else {
                        device.create_shader_module(desc)
                    })
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
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(k.name()),
            entries: &entries,
        });
        let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(k.name()),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
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
        if verbose {
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
}
