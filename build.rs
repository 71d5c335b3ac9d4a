//! Links the system BLAS (Debian's `libopenblas-dev`) that ndarray's `blas` feature calls
//! through `cblas-sys`. Measured here: OpenBLAS sgemm on 2 threads ≈ 150 GFLOP/s at 1024³,
//! against ≈ 105 for threaded matrixmultiply, so the CPU backend's matmuls go to BLAS.
fn main() {
    println!("cargo:rustc-link-lib=openblas");
    println!("cargo:rerun-if-changed=build.rs");
}
