//! The float types the CPU backend runs in (`f32` in production, `f64` for the gradient
//! tests), with the conversions the loops need and the hand-vectorised kernels a type may
//! bring (`simd.rs`: `f32` with AVX2 or AVX-512).

use super::constraint::{GradsOut, ResidualScalars, TrialRows, Uvl};
#[cfg(target_arch = "x86_64")]
use super::simd;
use num_traits::{Float, FromPrimitive, ToPrimitive};

/// `simd::<layout>::$f(args)` for the widest layout this CPU has (`None`: no AVX2).
#[cfg(target_arch = "x86_64")]
macro_rules! widest {
    ($f:ident $(::<$g:tt>)? ($($a:expr),*)) => {
        // SAFETY: `simd::isa` reports what the CPU has.
        Some(unsafe {
            match simd::isa()? {
                simd::Isa::Avx512 => simd::avx512::$f $(::<$g>)? ($($a),*),
                simd::Isa::Avx2 => simd::avx2::$f $(::<$g>)? ($($a),*),
            }
        })
    };
}

/// Float types the CPU backend runs in.
pub trait Real:
    ndarray::LinalgScalar
    + Float
    + FromPrimitive
    + ToPrimitive
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    fn of(x: f32) -> Self {
        Self::from_f32(x).expect("f32 converts to every Real")
    }
    fn of64(x: f64) -> Self {
        Self::from_f64(x).expect("f64 converts to every Real")
    }
    fn f64(self) -> f64 {
        self.to_f64().unwrap_or(f64::NAN)
    }
    /// A hand-vectorised chunk of `constraint::constraint_residual` for this type and CPU,
    /// bit for bit equal to the generic loop; `None` = use the generic loop.
    fn fast_residual(
        _uvl: Uvl<'_, Self>,
        _k: ResidualScalars<Self>,
        _g: GradsOut<'_, Self>,
    ) -> Option<[f64; 3]> {
        None
    }
    /// A hand-vectorised chunk of `constraint::constraint_value`, as [`Real::fast_residual`].
    fn fast_value(_us: &[Self], _vs: &[Self], _ls: &[Self], _al: Self) -> Option<[f64; 3]> {
        None
    }
    /// A hand-vectorised chunk of two V-trial candidates writing `G_U`
    /// (`constraint::step_value_ladder`; `moved_v`: the step moves `V`, `other` is `U`),
    /// as [`Real::fast_residual`].
    fn fast_step_pair(
        _moved_v: bool,
        _base_dir: (&[Self], &[Self]),
        _other_ls: (&[Self], &[Self]),
        _a: [Self; 2],
        _k: ResidualScalars<Self>,
        _outs: [&mut [Self]; 2],
        _grads: [&mut [Self]; 2],
    ) -> Option<[[f64; 3]; 2]> {
        None
    }
    /// Two W-trial candidates writing `G_V` (`constraint::w_trial_value_ladder`) on the
    /// chunk at flat position `lo`, as [`Real::fast_residual`].
    fn fast_w_trial_pair_v(
        _us_bs: (&[Self], &[Self]),
        _vs_ls: (&[Self], &[Self]),
        _lo_rows: (usize, [TrialRows<'_, Self>; 2]),
        _k: ResidualScalars<Self>,
        _outs: [&mut [Self]; 2],
        _grads: [&mut [Self]; 2],
    ) -> Option<[[f64; 3]; 2]> {
        None
    }
}
impl Real for f32 {
    #[cfg(target_arch = "x86_64")]
    fn fast_residual(
        uvl: Uvl<'_, f32>,
        k: ResidualScalars<f32>,
        g: GradsOut<'_, f32>,
    ) -> Option<[f64; 3]> {
        widest!(residual_write(uvl, k, g))
    }
    #[cfg(target_arch = "x86_64")]
    fn fast_value(us: &[f32], vs: &[f32], ls: &[f32], al: f32) -> Option<[f64; 3]> {
        widest!(value(us, vs, ls, al))
    }
    #[cfg(target_arch = "x86_64")]
    fn fast_step_pair(
        moved_v: bool,
        bd: (&[f32], &[f32]),
        ol: (&[f32], &[f32]),
        a: [f32; 2],
        k: ResidualScalars<f32>,
        outs: [&mut [f32]; 2],
        grads: [&mut [f32]; 2],
    ) -> Option<[[f64; 3]; 2]> {
        if moved_v {
            widest!(step_pair::<true>(bd, ol, a, k, outs, grads))
        } else {
            widest!(step_pair::<false>(bd, ol, a, k, outs, grads))
        }
    }
    #[cfg(target_arch = "x86_64")]
    fn fast_w_trial_pair_v(
        ub: (&[f32], &[f32]),
        vl: (&[f32], &[f32]),
        lo_rows: (usize, [TrialRows<'_, f32>; 2]),
        k: ResidualScalars<f32>,
        outs: [&mut [f32]; 2],
        grads: [&mut [f32]; 2],
    ) -> Option<[[f64; 3]; 2]> {
        widest!(w_trial_pair_v(ub, vl, lo_rows, k, outs, grads))
    }
}
impl Real for f64 {}
