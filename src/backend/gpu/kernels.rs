//! The kernel table: which WGSL file and entry point implements each kernel, its binding
//! signature, and the uniform parameter blocks shared with the shaders.

use bytemuck::{Pod, Zeroable};

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
        }
    }

    /// The module's WGSL: `shaders/common.wgsl` (shared declarations) followed by the file.
    pub(crate) fn code(self) -> &'static str {
        macro_rules! module {
            ($file:literal) => {
                concat!(
                    include_str!("../../../shaders/common.wgsl"),
                    include_str!(concat!("../../../shaders/", $file))
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
    Dot,
    SqNorm,
    Finalize,
    RowSum,
    LossSq,
    LossGradSq,
    LossCe,
    LossGradCe,
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
    MatmulNN,
    MatmulNT,
    MatmulTN,
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

impl K {
    pub(crate) fn def(self) -> KDef {
        use K::*;
        let (src, entry, binds, consts): (
            Src,
            &str,
            &'static [(u32, bool)],
            &'static [(&str, f64)],
        ) = match self {
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
                &[
                    (1, R),
                    (2, R),
                    (3, R),
                    (4, W),
                    (5, W),
                    (6, W),
                    (7, W),
                    (8, W),
                ],
                &[],
            ),
            ConstraintValue => (
                Src::Residual,
                "constraint_value",
                &[(1, R), (2, R), (3, R), (8, W)],
                &[],
            ),
            Dot => (Src::Reduce, "dot", &[(1, R), (2, R), (3, W)], &[]),
            SqNorm => (Src::Reduce, "sq_norm", &[(1, R), (3, W)], &[]),
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
            MatmulNN => (
                Src::Matmul,
                "matmul",
                &[(1, R), (2, R), (3, W), (4, R)],
                &[("TA", 0.0), ("TB", 0.0)],
            ),
            MatmulNT => (
                Src::Matmul,
                "matmul",
                &[(1, R), (2, R), (3, W), (4, R)],
                &[("TA", 0.0), ("TB", 1.0)],
            ),
            MatmulTN => (
                Src::Matmul,
                "matmul",
                &[(1, R), (2, R), (3, W), (4, R)],
                &[("TA", 1.0), ("TB", 0.0)],
            ),
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
            k => k.def().entry,
        }
    }
}

/// Uniform block of every non-matmul kernel (`struct Params` in `shaders/common.wgsl`).
/// Operand `k`'s element `(i, j)` of a column segment is at `base[k] + i * ld[k] + j`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct Params {
    pub rows: u32,
    pub cols: u32,
    pub part_off: u32,
    pub flags: u32,
    pub base: [u32; 8],
    pub ld: [u32; 8],
    pub f: [f32; 8],
}

impl Params {
    pub(crate) fn new(rows: usize, cols: usize) -> Self {
        Params {
            rows: rows as u32,
            cols: cols as u32,
            ..Zeroable::zeroed()
        }
    }
}

/// Uniform block of `matmul.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub(crate) struct MatmulParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub flags: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub a_base: u32,
    pub b_base: u32,
    pub c_base: u32,
    pub bias_base: u32,
    pub _pad0: u32,
    pub beta: f32,
    pub _pad1: [f32; 3],
}

/// Bytes every uniform slice is bound with (≥ both parameter blocks).
pub(crate) const UNIFORM_BIND_SIZE: u64 = 128;
const _: () = assert!(std::mem::size_of::<Params>() as u64 <= UNIFORM_BIND_SIZE);
const _: () = assert!(std::mem::size_of::<MatmulParams>() as u64 <= UNIFORM_BIND_SIZE);
