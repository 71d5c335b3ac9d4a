//! The CPU backend's handle on OpenBLAS: which kernels it runs and on how many threads.
//!
//! **Kernels.** Debian's OpenBLAS 0.3.21 is a `DYNAMIC_ARCH` build that picks its kernels
//! from the CPU model when it is loaded. It does not know newer Intel models (this
//! project's CI machine, family 6 model 207, reports itself as "Prescott") and then falls
//! back to its SSE3 kernels. So an initialiser of the executable (`.init_array`, run after
//! every shared library's constructor and before `main`, on one thread) checks: when
//! OpenBLAS fell back to Prescott, the user has not set `OPENBLAS_CORETYPE`, and the CPU
//! has AVX-512 (F, CD, BW, DQ, VL) or AVX2 + FMA, it sets `OPENBLAS_CORETYPE` to
//! `SkylakeX` or `Haswell` and re-runs OpenBLAS's own kernel selection
//! (`gotoblas_dynamic_quit`/`gotoblas_dynamic_init`, what the variable does at load time).
//! Nothing has called BLAS yet at that point. A value the user sets always wins.
//!
//! **Threads.** OpenBLAS's worker threads spin between calls; on a small machine they
//! compete with the elementwise work that runs between matmuls (measured: `sched_yield`
//! took a tenth of a digits ALM run). So OpenBLAS runs on the calling thread only
//! ([`single_threaded`]) and the backend parallelises through rayon: one threading owner.

extern "C" {
    fn openblas_get_corename() -> *const std::os::raw::c_char;
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn gotoblas_dynamic_quit();
    fn gotoblas_dynamic_init();
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
#[used]
#[link_section = ".init_array"]
static PICK_CORE: extern "C" fn() = pick_core;

/// The kernel family OpenBLAS should use on this CPU, if we know a better one than its own
/// fallback.
#[cfg(target_arch = "x86_64")]
pub fn core_for_cpu() -> Option<&'static str> {
    let avx512 = std::is_x86_feature_detected!("avx512f")
        && std::is_x86_feature_detected!("avx512cd")
        && std::is_x86_feature_detected!("avx512bw")
        && std::is_x86_feature_detected!("avx512dq")
        && std::is_x86_feature_detected!("avx512vl");
    if avx512 {
        Some("SkylakeX")
    } else if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        Some("Haswell")
    } else {
        None
    }
}

#[cfg(not(target_arch = "x86_64"))]
pub fn core_for_cpu() -> Option<&'static str> {
    None
}

/// Runs after OpenBLAS's constructor and before `main`, single-threaded (module comment).
#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
extern "C" fn pick_core() {
    if std::env::var_os("OPENBLAS_CORETYPE").is_some() || core_name() != "Prescott" {
        return;
    }
    if let Some(core) = core_for_cpu() {
        std::env::set_var("OPENBLAS_CORETYPE", core);
        // SAFETY: OpenBLAS's own load-time selection, re-run before any BLAS call and
        // before any other thread exists.
        unsafe {
            gotoblas_dynamic_quit();
            gotoblas_dynamic_init();
        }
    }
}

/// The kernel family OpenBLAS is running (e.g. "SkylakeX").
pub fn core_name() -> String {
    // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(openblas_get_corename()) }
        .to_string_lossy()
        .into_owned()
}

/// Make OpenBLAS run every call on the calling thread (once per process). The CPU backend
/// owns its threads through rayon and splits large matmuls itself (`matmul.rs`), so
/// OpenBLAS's spinning workers never compete with rayon's for the same cores.
pub fn single_threaded() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: sets OpenBLAS's global thread count before this backend's first call.
    ONCE.call_once(|| unsafe { openblas_set_num_threads(1) });
}
