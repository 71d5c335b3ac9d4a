// Tiled, register-blocked matmul  C ← A·B (+ bias·1ᵀ) (+ β·C), for the three layouts of
// method §3 (W V + b1ᵀ, G Vᵀ, Wᵀ G), selected by pipeline-overridable constants:
//   TA = false: A(i, p) at a[a_base + i * lda + p]      TA = true: at a[a_base + p * lda + i]
//   TB = false: B(p, j) at b[b_base + p * ldb + j]      TB = true: at b[b_base + j * ldb + p]
//   C(i, j) at c[c_base + i * ldc + j];  bias(i) at bias[bias_base + i].
// A 16×16 workgroup computes a 64×64 tile of C; each invocation a 4×4 block (rows ty + 16r,
// columns tx + 16c, so that stores are coalesced). K advances in slices of 16 through
// workgroup-shared tiles of A and B. Out-of-range tile elements load as 0, so any m, n, k
// works. flags & 1: add bias; flags & 2: add β·C (never reads C otherwise: it may be NaN).
// Split K (`kslice` > 0, for products with few output tiles and a long K): workgroup z
// sums only p in [z·kslice, (z+1)·kslice) and stores its partial C at c_base + z·c_slice
// (a scratch buffer, no bias, no β); `sum_slices` then adds the k partials into C.

struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    a_base: u32,
    b_base: u32,
    c_base: u32,
    bias_base: u32,
    kslice: u32,
    beta: f32,
    c_slice: u32,
    _pad2: f32,
    _pad3: f32,
}

override TA: bool = false;
override TB: bool = false;

const TS: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> mp: MatmulParams;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> bias: array<f32>;

var<workgroup> As: array<f32, 1024>; // [TK][TS]
var<workgroup> Bs: array<f32, 1024>; // [TK][TS]

@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 16u + tx;
    let i0 = wid.y * TS;
    let j0 = wid.x * TS;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    // This workgroup's range of p: all of K, or its slice.
    var p_lo = 0u;
    var p_hi = mp.k;
    if (mp.kslice > 0u) {
        p_lo = min(wid.z * mp.kslice, mp.k);
        p_hi = min(p_lo + mp.kslice, mp.k);
    }
    let ntiles = (p_hi - p_lo + TK - 1u) / TK;
    for (var tile = 0u; tile < ntiles; tile++) {
        let p0 = p_lo + tile * TK;
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            // A tile element (ii, pp): consecutive invocations walk the contiguous axis.
            var ii = idx / TK;
            var pp = idx % TK;
            if (TA) {
                pp = idx / TS;
                ii = idx % TS;
            }
            let gi = i0 + ii;
            let gp = p0 + pp;
            var av = 0.0;
            if (gi < mp.m && gp < p_hi) {
                if (TA) {
                    av = a[mp.a_base + gp * mp.lda + gi];
                } else {
                    av = a[mp.a_base + gi * mp.lda + gp];
                }
            }
            As[pp * TS + ii] = av;
            // B tile element (pb, jj).
            var pb = idx / TS;
            var jj = idx % TS;
            if (TB) {
                jj = idx / TK;
                pb = idx % TK;
            }
            let gj = j0 + jj;
            let gq = p0 + pb;
            var bv = 0.0;
            if (gj < mp.n && gq < p_hi) {
                if (TB) {
                    bv = b[mp.b_base + gj * mp.ldb + gq];
                } else {
                    bv = b[mp.b_base + gq * mp.ldb + gj];
                }
            }
            Bs[pb * TS + jj] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let ro = kk * TS;
            let bb = vec4<f32>(Bs[ro + tx], Bs[ro + tx + 16u], Bs[ro + tx + 32u], Bs[ro + tx + 48u]);
            acc0 = fma(vec4<f32>(As[ro + ty]), bb, acc0);
            acc1 = fma(vec4<f32>(As[ro + ty + 16u]), bb, acc1);
            acc2 = fma(vec4<f32>(As[ro + ty + 32u]), bb, acc2);
            acc3 = fma(vec4<f32>(As[ro + ty + 48u]), bb, acc3);
        }
        workgroupBarrier();
    }
    let cb = mp.c_base + wid.z * mp.c_slice;
    store_row(cb, i0 + ty, j0 + tx, acc0);
    store_row(cb, i0 + ty + 16u, j0 + tx, acc1);
    store_row(cb, i0 + ty + 32u, j0 + tx, acc2);
    store_row(cb, i0 + ty + 48u, j0 + tx, acc3);
}

fn store_row(cb: u32, i: u32, j: u32, v: vec4<f32>) {
    if (i >= mp.m) {
        return;
    }
    var add = 0.0;
    if ((mp.flags & 1u) != 0u) {
        add = bias[mp.bias_base + i];
    }
    let use_beta = (mp.flags & 2u) != 0u;
    for (var c4 = 0u; c4 < 4u; c4++) {
        let jj = j + 16u * c4;
        if (jj < mp.n) {
            let k = cb + i * mp.ldc + jj;
            var val = v[c4] + add;
            if (use_beta) {
                val += mp.beta * c[k];
            }
            c[k] = val;
        }
    }
}

// C(i, j) ← Σ_z S[z·c_slice + i·n + j] over the k = `mp.k` partials of a split-K product
// (S is `a`), + β·C with flags & 2; one invocation per element.
@compute @workgroup_size(16, 16)
fn sum_slices(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y;
    let j = gid.x;
    if (i >= mp.m || j >= mp.n) {
        return;
    }
    var s = 0.0;
    for (var z = 0u; z < mp.k; z++) {
        s += a[z * mp.c_slice + i * mp.n + j];
    }
    let k = mp.c_base + i * mp.ldc + j;
    if ((mp.flags & 2u) != 0u) {
        s += mp.beta * c[k];
    }
    c[k] = s;
}
