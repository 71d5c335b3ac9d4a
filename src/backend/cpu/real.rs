//! The float types the CPU backend runs in (`f32` in production, `f64` for the gradient
//! tests), with the conversions the loops need and the hand-vectorised kernels a type may
//! bring (`simd.rs`: `f32` with AVX2).

use super::constraint::ResidualScalars;
#[cfg(target_arch = "x86_64")]
use super::simd;
use num_traits::{Float, FromPrimitive, ToPrimitive};

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
        _us: &[Self],
        _vs: &[Self],
        _ls: &[Self],
        _k: ResidualScalars<Self>,
        _gus: &mut [Self],
        _gvs: &mut [Self],
    ) -> Option<[f64; 3]> {
        None
    }
    /// A hand-vectorised chunk of `constraint::constraint_value`, as [`Real::fast_residual`].
    fn fast_value(_us: &[Self], _vs: &[Self], _ls: &[Self], _al: Self) -> Option<[f64; 3]> {
        None
    }
}
impl Real for f32 {
    #[cfg(target_arch = "x86_64")]
    fn fast_residual(
        us: &[f32],
        vs: &[f32],
        ls: &[f32],
        k: ResidualScalars<f32>,
        gus: &mut [f32],
        gvs: &mut [f32],
    ) -> Option<[f64; 3]> {
        // SAFETY: `simd::available` checked that the CPU has AVX2.
        simd::available().then(|| unsafe { simd::residual_write(us, vs, ls, k, gus, gvs) })
    }
    #[cfg(target_arch = "x86_64")]
    fn fast_value(us: &[f32], vs: &[f32], ls: &[f32], al: f32) -> Option<[f64; 3]> {
        // SAFETY: `simd::available` checked that the CPU has AVX2.
        simd::available().then(|| unsafe { simd::value(us, vs, ls, al) })
    }
}
impl Real for f64 {}
