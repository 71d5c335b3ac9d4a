// Tiled, register-blocked matmul  C ← A·B (+ bias·1ᵀ) (+ β·C), for the three layouts of
// method §3 (W V + b1ᵀ, G Vᵀ, Wᵀ G), selected by pipeline-overridable constants:
//   TA = false: A(i, p) at a[a_base + i * lda + p]      TA = true: at a[a_base + p * lda + i]
//   TB = false: B(p, j) at b[b_base + p * ldb + j]      TB = true: at b[b_base + j * ldb + p]
//   C(i, j) at c[c_base + i * ldc + j];  bias(i) at bias[bias_base + i].
// A 16×16 workgroup computes a 64×64 tile of C; each invocation a contiguous 4×4 block.
// K advances in slices of 16 through workgroup-shared tiles of A and B. Out-of-range tile
// elements load as 0, so any m, n, k works. flags & 1: add bias; flags & 2: add β·C (never reads C otherwise: it may be NaN).
// A weight gradient and its bias gradient in one product (`G Xᵀ` and `G 1`): flags & 4
// makes C's last column, j = n − 1, the product with a column of ones (B is not read
// there), and flags & 8 stores that column into `bias` (+ β·bias) instead of C.
// Split K (`kslice` > 0, for products with few output tiles and a long K): workgroup z
// sums only p in [z·kslice, (z+1)·kslice) and stores its partial C at c_base + z·c_slice
// (a scratch buffer, no bias, no β); `sum_slices` then adds the k partials into C.
// `matmul_narrow` is the same product on 16×128 tiles, for outputs of at most 16 rows;
// `matmul_row` one invocation per element, for outputs of at most 4 rows and split
// products of at most 64 elements;
// `matmul_8x8` the wide tile with 8×8 blocks per invocation, for CPU adapters.

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
@group(0) @binding(4) var<storage, read_write> bias: array<f32>;

// The wide tile: each invocation owns a contiguous 4×4 block of C (rows 4·ty + r, columns
// 4·tx + c), so one vec4 load of each shared tile feeds 16 products; a shared row holds
// 16 vec4 plus one of padding (the stores of a K-contiguous operand, 16 invocations one
// row apart, then fall on different banks); and the next slice's elements are loaded
// into registers before the current slice is multiplied, so the global loads are in
// flight during the arithmetic.
const BP: u32 = 17u; // vec4 per shared row: 16 of the tile + 1 of padding

var<workgroup> Av: array<vec4<f32>, 272>; // [TK][BP]: A(i0 + 4q + r, p0 + kk) at Av[kk·BP + q][r]
var<workgroup> Bv: array<vec4<f32>, 272>; // [TK][BP]: B(p0 + kk, j0 + 4q + c) at Bv[kk·BP + q][c]

// The tile position (row ii, slice offset pp) of load `idx` of the A tile; consecutive
// invocations walk A's contiguous axis, so the global loads coalesce.
fn a_pos(idx: u32) -> vec2<u32> {
    if (TA) {
        return vec2<u32>(idx % TS, idx / TS);
    }
    return vec2<u32>(idx / TK, idx % TK);
}

// The tile position (slice offset pb, column jj) of load `idx` of the B tile.
fn b_pos(idx: u32) -> vec2<u32> {
    if (TB) {
        return vec2<u32>(idx % TK, idx / TK);
    }
    return vec2<u32>(idx / TS, idx % TS);
}

// Load `idx` of the A and B tiles of the slice starting at p0 (A's element, B's element).
fn fetch(idx: u32, i0: u32, j0: u32, p0: u32, p_hi: u32) -> vec2<f32> {
    let pa = a_pos(idx);
    let pb = b_pos(idx);
    return vec2<f32>(load_a(i0 + pa.x, p0 + pa.y, p_hi), load_b(p0 + pb.x, j0 + pb.y, p_hi));
}

// Store load `idx` of the A and B tiles (`v`, as `fetch` returned it) into Av and Bv.
fn stash(idx: u32, v: vec2<f32>) {
    let pa = a_pos(idx);
    let pb = b_pos(idx);
    Av[pa.y * BP + pa.x / 4u][pa.x % 4u] = v.x;
    Bv[pb.x * BP + pb.y / 4u][pb.y % 4u] = v.y;
}

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
    // This invocation's four elements of each tile, the first slice's loaded ahead.
    var r: array<vec2<f32>, 4>;
    for (var e = 0u; e < 4u; e++) {
        r[e] = fetch(t + e * 256u, i0, j0, range.x, range.y);
    }
    for (var tile = 0u; tile < ntiles; tile++) {
        let p0 = range.x + tile * TK;
        for (var e = 0u; e < 4u; e++) {
            stash(t + e * 256u, r[e]);
        }
        workgroupBarrier();
        // The next slice's loads, issued before this slice's products.
        if (tile + 1u < ntiles) {
            for (var e = 0u; e < 4u; e++) {
                r[e] = fetch(t + e * 256u, i0, j0, p0 + TK, range.y);
            }
        }
        let kn = min(TK, range.y - p0);
        for (var kk = 0u; kk < kn; kk++) {
            let av = Av[kk * BP + ty];
            let bv = Bv[kk * BP + tx];
            acc0 = fma(vec4<f32>(av.x), bv, acc0);
            acc1 = fma(vec4<f32>(av.y), bv, acc1);
            acc2 = fma(vec4<f32>(av.z), bv, acc2);
            acc3 = fma(vec4<f32>(av.w), bv, acc3);
        }
        workgroupBarrier();
    }
    let cb = mp.c_base + wid.z * mp.c_slice;
    store_row4(cb, i0 + 4u * ty, j0 + 4u * tx, acc0);
    store_row4(cb, i0 + 4u * ty + 1u, j0 + 4u * tx, acc1);
    store_row4(cb, i0 + 4u * ty + 2u, j0 + 4u * tx, acc2);
    store_row4(cb, i0 + 4u * ty + 3u, j0 + 4u * tx, acc3);
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
    if ((mp.flags & 4u) != 0u && j == mp.n - 1u) {
        return 1.0;
    }
    if (TB) {
        return b[mp.b_base + j * mp.ldb + p];
    }
    return b[mp.b_base + p * mp.ldb + j];
}

// C(i, j) ← v (+ bias(i)) (+ β·C(i, j)), inside C only; the ones column to `bias`.
fn store_elem(cb: u32, i: u32, j: u32, v: f32) {
    if (i >= mp.m || j >= mp.n) {
        return;
    }
    if ((mp.flags & 8u) != 0u && j == mp.n - 1u) {
        let kb = mp.bias_base + i;
        var s = v;
        if ((mp.flags & 2u) != 0u) {
            s += mp.beta * bias[kb];
        }
        bias[kb] = s;
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
// (S is `a`), stored as `store_elem` does (β·C with flags & 2, the ones column to `bias`
// with flags & 8); one invocation per element.
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
    store_elem(mp.c_base, i, j, s);
}

// Outputs of at most 4 rows (a regression output layer's `W V`, whose narrow tile would
// leave at least 12 of its 16 rows idle) and split products of at most 64 elements (an
// output layer's weight gradient, whose tile would be nearly all padding): one invocation
// per element of C, 64 columns per
// workgroup (wid.x), one row per wid.y, a K slice per wid.z; each adds its products in
// order, as the tiles do. A's element is the same across the workgroup, B's coalesce.
@compute @workgroup_size(64)
fn matmul_row(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let i = wid.y;
    let j = wid.x * 64u + lid.x;
    let range = k_range(wid.z);
    var acc = 0.0;
    for (var p = range.x; p < range.y; p++) {
        acc = fma(load_a(i, p, range.y), load_b(p, j, range.y), acc);
    }
    store_elem(mp.c_base + wid.z * mp.c_slice, i, j, acc);
}

// The wide tile for CPU adapters (lavapipe runs a workgroup's invocations as SIMD lanes,
// and its shared-memory loads, not its arithmetic, bound the tile): the same 64×64 tile,
// shared layout, prefetch and order of products as `matmul`, with an 8×8 workgroup in
// which each invocation owns a contiguous 8×8 block, so four vec4 loads feed 64 products
// instead of 16. Measured on lavapipe: 1.3–1.9× `matmul`'s speed. On a GPU it would run a
// small product on a quarter of the threads, so GPUs keep `matmul`.
@compute @workgroup_size(8, 8)
fn matmul_8x8(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let tx = lid.x;
    let ty = lid.y;
    let t = ty * 8u + tx;
    let i0 = wid.y * TS;
    let j0 = wid.x * TS;
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);
    let range = k_range(wid.z);
    let ntiles = (range.y - range.x + TK - 1u) / TK;
    var r: array<vec2<f32>, 16>;
    for (var e = 0u; e < 16u; e++) {
        r[e] = fetch(t + e * 64u, i0, j0, range.x, range.y);
    }
    for (var tile = 0u; tile < ntiles; tile++) {
        let p0 = range.x + tile * TK;
        for (var e = 0u; e < 16u; e++) {
            stash(t + e * 64u, r[e]);
        }
        workgroupBarrier();
        if (tile + 1u < ntiles) {
            for (var e = 0u; e < 16u; e++) {
                r[e] = fetch(t + e * 64u, i0, j0, p0 + TK, range.y);
            }
        }
        let kn = min(TK, range.y - p0);
        for (var kk = 0u; kk < kn; kk++) {
            let a0 = Av[kk * BP + 2u * ty];
            let a1 = Av[kk * BP + 2u * ty + 1u];
            let b0 = Bv[kk * BP + 2u * tx];
            let b1 = Bv[kk * BP + 2u * tx + 1u];
            c00 = fma(vec4<f32>(a0.x), b0, c00);
            c01 = fma(vec4<f32>(a0.x), b1, c01);
            c10 = fma(vec4<f32>(a0.y), b0, c10);
            c11 = fma(vec4<f32>(a0.y), b1, c11);
            c20 = fma(vec4<f32>(a0.z), b0, c20);
            c21 = fma(vec4<f32>(a0.z), b1, c21);
            c30 = fma(vec4<f32>(a0.w), b0, c30);
            c31 = fma(vec4<f32>(a0.w), b1, c31);
            c40 = fma(vec4<f32>(a1.x), b0, c40);
            c41 = fma(vec4<f32>(a1.x), b1, c41);
            c50 = fma(vec4<f32>(a1.y), b0, c50);
            c51 = fma(vec4<f32>(a1.y), b1, c51);
            c60 = fma(vec4<f32>(a1.z), b0, c60);
            c61 = fma(vec4<f32>(a1.z), b1, c61);
            c70 = fma(vec4<f32>(a1.w), b0, c70);
            c71 = fma(vec4<f32>(a1.w), b1, c71);
        }
        workgroupBarrier();
    }
    let cb = mp.c_base + wid.z * mp.c_slice;
    store_row4(cb, i0 + 8u * ty + 0u, j0 + 8u * tx + 0u, c00);
    store_row4(cb, i0 + 8u * ty + 0u, j0 + 8u * tx + 4u, c01);
    store_row4(cb, i0 + 8u * ty + 1u, j0 + 8u * tx + 0u, c10);
    store_row4(cb, i0 + 8u * ty + 1u, j0 + 8u * tx + 4u, c11);
    store_row4(cb, i0 + 8u * ty + 2u, j0 + 8u * tx + 0u, c20);
    store_row4(cb, i0 + 8u * ty + 2u, j0 + 8u * tx + 4u, c21);
    store_row4(cb, i0 + 8u * ty + 3u, j0 + 8u * tx + 0u, c30);
    store_row4(cb, i0 + 8u * ty + 3u, j0 + 8u * tx + 4u, c31);
    store_row4(cb, i0 + 8u * ty + 4u, j0 + 8u * tx + 0u, c40);
    store_row4(cb, i0 + 8u * ty + 4u, j0 + 8u * tx + 4u, c41);
    store_row4(cb, i0 + 8u * ty + 5u, j0 + 8u * tx + 0u, c50);
    store_row4(cb, i0 + 8u * ty + 5u, j0 + 8u * tx + 4u, c51);
    store_row4(cb, i0 + 8u * ty + 6u, j0 + 8u * tx + 0u, c60);
    store_row4(cb, i0 + 8u * ty + 6u, j0 + 8u * tx + 4u, c61);
    store_row4(cb, i0 + 8u * ty + 7u, j0 + 8u * tx + 0u, c70);
    store_row4(cb, i0 + 8u * ty + 7u, j0 + 8u * tx + 4u, c71);
}

// Four consecutive elements of a row of C.
fn store_row4(cb: u32, i: u32, j: u32, v: vec4<f32>) {
    for (var c4 = 0u; c4 < 4u; c4++) {
        store_elem(cb, i, j + c4, v[c4]);
    }
}
