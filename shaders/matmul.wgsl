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
// `matmul_narrow` is the same product on 16×128 tiles, for outputs of at most 16 rows;
// `matmul_thin` one invocation per element, for split products of at most 64 elements.

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
    let range = k_range(wid.z);
    let ntiles = (range.y - range.x + TK - 1u) / TK;
    for (var tile = 0u; tile < ntiles; tile++) {
        let p0 = range.x + tile * TK;
        for (var e = 0u; e < 4u; e++) {
            let idx = t + e * 256u;
            // A tile element (ii, pp): consecutive invocations walk the contiguous axis.
            var ii = idx / TK;
            var pp = idx % TK;
            if (TA) {
                pp = idx / TS;
                ii = idx % TS;
            }
            As[pp * TS + ii] = load_a(i0 + ii, p0 + pp, range.y);
            // B tile element (pb, jj).
            var pb = idx / TS;
            var jj = idx % TS;
            if (TB) {
                jj = idx / TK;
                pb = idx % TK;
            }
            Bs[pb * TS + jj] = load_b(p0 + pb, j0 + jj, range.y);
        }
        workgroupBarrier();
        // A short last slice (K = 1 for an output layer's Wᵀ G) skips its zero padding.
        let kn = min(TK, range.y - p0);
        for (var kk = 0u; kk < kn; kk++) {
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
    for (var c4 = 0u; c4 < 4u; c4++) {
        store_elem(cb, i, j + 16u * c4, v[c4]);
    }
}

// This workgroup's range of p, [x, y): all of K, or slice z of a split product.
fn k_range(z: u32) -> vec2<u32> {
    if (mp.kslice == 0u) {
        return vec2<u32>(0u, mp.k);
    }
    let lo = min(z * mp.kslice, mp.k);
    return vec2<u32>(lo, min(lo + mp.kslice, mp.k));
}

// A(i, p) in the layout TA says; 0 outside A or past the end of the range.
fn load_a(i: u32, p: u32, p_hi: u32) -> f32 {
    if (i >= mp.m || p >= p_hi) {
        return 0.0;
    }
    if (TA) {
        return a[mp.a_base + p * mp.lda + i];
    }
    return a[mp.a_base + i * mp.lda + p];
}

// B(p, j) in the layout TB says; 0 outside B or past the end of the range.
fn load_b(p: u32, j: u32, p_hi: u32) -> f32 {
    if (j >= mp.n || p >= p_hi) {
        return 0.0;
    }
    if (TB) {
        return b[mp.b_base + j * mp.ldb + p];
    }
    return b[mp.b_base + p * mp.ldb + j];
}

// C(i, j) ← v (+ bias(i)) (+ β·C(i, j)), inside C only.
fn store_elem(cb: u32, i: u32, j: u32, v: f32) {
    if (i >= mp.m || j >= mp.n) {
        return;
    }
    var val = v;
    if ((mp.flags & 1u) != 0u) {
        val += bias[mp.bias_base + i];
    }
    let k = cb + i * mp.ldc + j;
    if ((mp.flags & 2u) != 0u) {
        val += mp.beta * c[k];
    }
    c[k] = val;
}

// The narrow tile, for outputs of at most NM = 16 rows (an output layer's 1 or 10 rows
// would leave most of a 64-row tile idle): a 64×4 workgroup computes a 16×128 tile of C,
// each invocation a 4×2 block (rows ty + 4r, columns tx + 64c). Layouts, bounds, flags and
// the K split are `matmul`'s, and each element adds its products in the same order.
const NM: u32 = 16u;
const NN: u32 = 128u;

var<workgroup> An: array<f32, 256>;  // [TK][NM]
var<workgroup> Bn: array<f32, 2048>; // [TK][NN]

@compute @workgroup_size(64, 4)
fn matmul_narrow(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 64u + tx;
    let i0 = wid.y * NM;
    let j0 = wid.x * NN;
    var acc0 = vec2<f32>(0.0);
    var acc1 = vec2<f32>(0.0);
    var acc2 = vec2<f32>(0.0);
    var acc3 = vec2<f32>(0.0);
    let range = k_range(wid.z);
    let ntiles = (range.y - range.x + TK - 1u) / TK;
    for (var tile = 0u; tile < ntiles; tile++) {
        let p0 = range.x + tile * TK;
        // One A element per invocation; consecutive invocations walk the contiguous axis.
        var ii = t / TK;
        var pp = t % TK;
        if (TA) {
            pp = t / NM;
            ii = t % NM;
        }
        An[pp * NM + ii] = load_a(i0 + ii, p0 + pp, range.y);
        for (var e = 0u; e < 8u; e++) {
            let idx = t + e * 256u;
            var pb = idx / NN;
            var jj = idx % NN;
            if (TB) {
                jj = idx / TK;
                pb = idx % TK;
            }
            Bn[pb * NN + jj] = load_b(p0 + pb, j0 + jj, range.y);
        }
        workgroupBarrier();
        // A short last slice (K = 1 for an output layer's Wᵀ G) skips its zero padding.
        let kn = min(TK, range.y - p0);
        for (var kk = 0u; kk < kn; kk++) {
            let ro = kk * NN;
            let bb = vec2<f32>(Bn[ro + tx], Bn[ro + tx + 64u]);
            let ao = kk * NM + ty;
            acc0 = fma(vec2<f32>(An[ao]), bb, acc0);
            acc1 = fma(vec2<f32>(An[ao + 4u]), bb, acc1);
            acc2 = fma(vec2<f32>(An[ao + 8u]), bb, acc2);
            acc3 = fma(vec2<f32>(An[ao + 12u]), bb, acc3);
        }
        workgroupBarrier();
    }
    let cb = mp.c_base + wid.z * mp.c_slice;
    let accs = array<vec2<f32>, 4>(acc0, acc1, acc2, acc3);
    for (var r = 0u; r < 4u; r++) {
        let i = i0 + ty + 4u * r;
        store_elem(cb, i, j0 + tx, accs[r].x);
        store_elem(cb, i, j0 + tx + 64u, accs[r].y);
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

// Thin products (at most 64 elements of C: an output layer's weight gradient, whose tile
// would be nearly all padding): one invocation per element of C adds the products over
// this workgroup's range of p, in order; the K split spreads the work over workgroups.
@compute @workgroup_size(64)
fn matmul_thin(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let o = lid.x;
    if (o >= mp.m * mp.n) {
        return;
    }
    let i = o / mp.n;
    let j = o % mp.n;
    let range = k_range(wid.z);
    var acc = 0.0;
    for (var p = range.x; p < range.y; p++) {
        acc = fma(load_a(i, p, range.y), load_b(p, j, range.y), acc);
    }
    store_elem(mp.c_base + wid.z * mp.c_slice, i, j, acc);
}
