//! The process's heap policy for the CPU backend's arrays: memory a finished run freed is
//! kept for the next run in the same process instead of going back to the system.
//!
//! Why: glibc's malloc serves an allocation of 128 KiB or more with a fresh `mmap` and
//! hands it back with `munmap` when it is freed (raising that threshold only as far as the
//! largest block freed so far), and it gives the top of its heap back to the system once
//! more than twice that is free. A fit's workspaces (the lifted model's `U`, `V`, `Λ`,
//! gradients and trial candidates: about 28 MB on the teacher problem) are therefore new
//! pages for every fit, and each page costs a fault and the kernel's zeroing the first time
//! it is written. Commands that run many fits in one process (`path`, `compare`, the train
//! bench's rounds) paid that again and again: 4,400 page faults per round of
//! `cargo bench --bench train -- alm`. With [`retain_freed_memory`], blocks up to
//! [`MMAP_THRESHOLD`] come from the heap and freed memory stays there, so the next fit
//! reuses pages that are already mapped (`calloc` still zeroes what it hands out). A single
//! fit pays its first touch as before.

/// Blocks of this size and larger are still mapped on their own and returned when freed
/// (glibc's largest allowed value on 64-bit): a data set such as Fashion-MNIST's 188 MB
/// training matrix is not kept after its last use.
pub const MMAP_THRESHOLD: usize = 32 << 20;
/// Free memory at the top of the heap kept before any is given back.
pub const TRIM_THRESHOLD: usize = 1 << 30;

/// Apply the module's heap policy (glibc only; elsewhere nothing changes). A policy the
/// user set (`GLIBC_TUNABLES` naming a malloc tunable, or the `MALLOC_MMAP_THRESHOLD_` /
/// `MALLOC_TRIM_THRESHOLD_` variables) is left alone. Returns whether it was applied. The
/// binary and the train bench call it first thing.
pub fn retain_freed_memory() -> bool {
    let user_set = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("malloc"))
        || std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
        || std::env::var_os("MALLOC_TRIM_THRESHOLD_").is_some();
    !user_set && apply()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn apply() -> bool {
    use std::ffi::c_int;
    extern "C" {
        fn mallopt(param: c_int, value: c_int) -> c_int;
    }
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    let value = |v: usize| c_int::try_from(v).unwrap_or(c_int::MAX);
    // SAFETY: glibc's `mallopt` with two of its documented parameters.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, value(MMAP_THRESHOLD)) == 1
            && mallopt(M_TRIM_THRESHOLD, value(TRIM_THRESHOLD)) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn apply() -> bool {
    false
}

#[cfg(test)]
mod tests {
    /// glibc accepts both values (a threshold above its maximum would be refused).
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn glibc_takes_the_policy() {
        assert!(super::apply());
    }
}
