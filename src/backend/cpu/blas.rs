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
//! **Threads.** Each matmul is one OpenBLAS call on OpenBLAS's own threads, as many as
//! rayon's pool has (so `RAYON_NUM_THREADS` sets both; an `OPENBLAS_NUM_THREADS` the user
//! set wins), and the elementwise work between matmuls runs on rayon's pool: one owner per
//! call. Measured side by side on 2 cores (`cargo bench --bench train`), this beat
//! single-threaded OpenBLAS calls split over rayon's threads: OpenBLAS's threaded GEMM
//! reached 145–185 GFLOP/s on the Fashion-MNIST minibatch shapes against 100–137 for the
//! split (each part repacked the whole weight matrix and waited on a sleeping rayon
//! worker), a prox-SGD epoch took 0.76 s instead of 1.13 s, and ALM passes got cheaper
//! too (its elementwise loops are rayon's). The two pools must not fight over the cores
//! between calls, though (next paragraph).
//!
//! **Idle workers sleep soon.** OpenBLAS's idle workers spin (calling `sched_yield`) for
//! `2^OPENBLAS_THREAD_TIMEOUT` cycles before they sleep, 2^28 by default: about 0.1 s,
//! so between the ALM's matmuls they never slept. On 2 cores the spinning worker then
//! shared the second core with rayon's worker through every elementwise loop of a sweep:
//! profiled on the teacher ALM (`perf`, 3000 passes), OpenBLAS's worker spent 2010 samples
//! spinning and rayon's worker did 1676 samples of the loops' work against the solver
//! thread's 3359. So, unless the user set `OPENBLAS_THREAD_TIMEOUT`, the workers are
//! restarted before `main` with an idle spin of 2^[`IDLE_SPIN_LOG2`] cycles (some
//! microseconds: back-to-back matmuls still find the worker awake, an elementwise loop
//! does not share its core with it). With the shorter spin the same run's spinning fell
//! to 359–402 samples and rayon's worker did 2262–2422 samples of the loops against the
//! solver thread's 2704–3158 (two runs), with the same iterates. A worker that did fall
//! asleep costs a wake-up at the next threaded call: side by side, 2^14 made a Fashion
//! prox-SGD epoch slower than 2^16 (684–738 ms against 596–606), and 2^18 gained least on
//! the teacher ALM.
//!
//! **The solver's thread in rayon's pool.** A parallel loop called from a thread outside
//! the pool hands the whole loop to the pool's workers, wakes them (they fall asleep
//! during every matmul) and blocks until they are done. [`adopt_current_thread`] makes
//! the program's main thread worker 0 of rayon's global pool instead (one worker fewer is
//! spawned): it runs its share of each loop at once and only the other worker is woken.
//! The binary and the benches call it first thing. Results do not change: the loops'
//! chunks and the order their sums are added in do not depend on the threads.

extern "C" {
    fn openblas_get_corename() -> *const std::os::raw::c_char;
    fn openblas_set_num_threads(n: std::os::raw::c_int);
    fn openblas_get_num_threads() -> std::os::raw::c_int;
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

/// log2 of the cycles an idle OpenBLAS worker spins before it sleeps (module comment).
pub const IDLE_SPIN_LOG2: u32 = 16;

#[cfg(target_os = "linux")]
#[used]
#[link_section = ".init_array"]
static SHORT_SPIN: extern "C" fn() = short_spin;

/// Runs before `main`, single-threaded apart from OpenBLAS's idle workers: unless the user
/// set `OPENBLAS_THREAD_TIMEOUT`, restart OpenBLAS's workers with an idle spin of
/// 2^[`IDLE_SPIN_LOG2`] cycles (module comment). OpenBLAS reads the variable only when it
/// starts its threads, so it is set, read (`openblas_read_env`), the workers are stopped and
/// started again (`blas_thread_shutdown_`, `blas_thread_init`: what OpenBLAS's own fork
/// handler does), and the variable is removed, so child processes see the user's
/// environment. The functions are looked up by name: a build without them is left alone.
#[cfg(target_os = "linux")]
extern "C" fn short_spin() {
    use std::ffi::{c_char, c_int, c_void, CStr};
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
    }
    const VAR: &str = "OPENBLAS_THREAD_TIMEOUT";
    if std::env::var_os(VAR).is_some() {
        return;
    }
    // SAFETY: `RTLD_DEFAULT` (null) searches the loaded objects; the names are C strings.
    let sym = |name: &CStr| unsafe { dlsym(std::ptr::null_mut(), name.as_ptr()) };
    let (read_env, stop, start) = (
        sym(c"openblas_read_env"),
        sym(c"blas_thread_shutdown_"),
        sym(c"blas_thread_init"),
    );
    if read_env.is_null() || stop.is_null() || start.is_null() {
        return;
    }
    std::env::set_var(VAR, IDLE_SPIN_LOG2.to_string());
    // SAFETY: OpenBLAS's `void openblas_read_env(void)`, `int blas_thread_shutdown_(void)`
    // and `int blas_thread_init(void)`, called before any BLAS call and before any thread
    // other than OpenBLAS's own idle workers exists.
    unsafe {
        std::mem::transmute::<*mut c_void, extern "C" fn()>(read_env)();
        std::mem::transmute::<*mut c_void, extern "C" fn() -> c_int>(stop)();
        std::mem::transmute::<*mut c_void, extern "C" fn() -> c_int>(start)();
    }
    std::env::remove_var(VAR);
}

/// The kernel family OpenBLAS is running (e.g. "SkylakeX").
pub fn core_name() -> String {
    // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
    unsafe { std::ffi::CStr::from_ptr(openblas_get_corename()) }
        .to_string_lossy()
        .into_owned()
}

/// Give OpenBLAS as many threads as rayon's pool (once per process), unless the user chose
/// with `OPENBLAS_NUM_THREADS` (module comment).
pub fn set_threads() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("OPENBLAS_NUM_THREADS").is_some() {
            return;
        }
        let n = std::os::raw::c_int::try_from(rayon::current_num_threads()).unwrap_or(1);
        // SAFETY: sets OpenBLAS's global thread count before this backend's first call.
        unsafe { openblas_set_num_threads(n.max(1)) }
    });
}

/// Make the calling thread worker 0 of rayon's global pool (module comment). Call it
/// before any parallel work, from the thread that will drive the solver; `false` when the
/// global pool already exists (then nothing changes).
pub fn adopt_current_thread() -> bool {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
        .is_ok()
}

/// The number of threads OpenBLAS runs a large call on.
pub fn threads() -> usize {
    // SAFETY: reads OpenBLAS's global thread count.
    usize::try_from(unsafe { openblas_get_num_threads() }).unwrap_or(1)
}
