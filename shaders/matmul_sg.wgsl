// The tile for CPU adapters whose subgroups are 8 lanes wide (lavapipe), appended to
// `matmul.wgsl` (its parameters, bindings, layouts, `k_range` and `store_elem`) in a module
// compiled only when the device has subgroup operations.
//
// A software adapter runs a subgroup's 8 invocations as the lanes of one SIMD register,
// and it loads memory (storage or workgroup) one lane at a time, so a kernel's speed there
// is its number of loads per product. Here each lane loads one element of A per 8 rows,
// and `subgroupBroadcast` (a register shuffle) hands each row's element to every lane:
// per step of p, a lane makes 2 loads of A and 4 of B for 64 products (`matmul_8x8`
// makes 16 workgroup-memory loads for 64, plus the tile stores and barriers). No workgroup
// memory and no barriers.
//
// One workgroup is one subgroup of 8 invocations and computes a 16×32 tile of C: lane l
// owns columns j0 + l + 8q (q < 4) of all 16 rows. Each element adds its products in order
// of p, one `fma` at a time from 0, as every other variant of `matmul.wgsl` does, so the
// bits are theirs. Lanes past the edge of A or B load a clamped (valid) element and their
// results are not stored.

const SG_ROWS: u32 = 16u;
const SG_COLS: u32 = 32u;

// The lane's accumulators: rows i0 + r (c_r) and i0 + 8 + r (d_r), each a vec4 over its
// columns j, j + 8, j + 16, j + 24. Private globals, so that `sg_fma` serves both loops
// of `matmul_sg`.
var<private> c0: vec4<f32>;
var<private> c1: vec4<f32>;
var<private> c2: vec4<f32>;
var<private> c3: vec4<f32>;
var<private> c4: vec4<f32>;
var<private> c5: vec4<f32>;
var<private> c6: vec4<f32>;
var<private> c7: vec4<f32>;
var<private> d0: vec4<f32>;
var<private> d1: vec4<f32>;
var<private> d2: vec4<f32>;
var<private> d3: vec4<f32>;
var<private> d4: vec4<f32>;
var<private> d5: vec4<f32>;
var<private> d6: vec4<f32>;
var<private> d7: vec4<f32>;

// One step of p: `av`, `aw` are this lane's elements of A (rows i0 + l, i0 + 8 + l), `bv`
// its four of B; row r's element reaches every lane by a broadcast from lane r.
fn sg_fma(av: f32, aw: f32, bv: vec4<f32>) {
    c0 = fma(vec4<f32>(subgroupBroadcast(av, 0u)), bv, c0);
    c1 = fma(vec4<f32>(subgroupBroadcast(av, 1u)), bv, c1);
    c2 = fma(vec4<f32>(subgroupBroadcast(av, 2u)), bv, c2);
    c3 = fma(vec4<f32>(subgroupBroadcast(av, 3u)), bv, c3);
    c4 = fma(vec4<f32>(subgroupBroadcast(av, 4u)), bv, c4);
    c5 = fma(vec4<f32>(subgroupBroadcast(av, 5u)), bv, c5);
    c6 = fma(vec4<f32>(subgroupBroadcast(av, 6u)), bv, c6);
    c7 = fma(vec4<f32>(subgroupBroadcast(av, 7u)), bv, c7);
    d0 = fma(vec4<f32>(subgroupBroadcast(aw, 0u)), bv, d0);
    d1 = fma(vec4<f32>(subgroupBroadcast(aw, 1u)), bv, d1);
    d2 = fma(vec4<f32>(subgroupBroadcast(aw, 2u)), bv, d2);
    d3 = fma(vec4<f32>(subgroupBroadcast(aw, 3u)), bv, d3);
    d4 = fma(vec4<f32>(subgroupBroadcast(aw, 4u)), bv, d4);
    d5 = fma(vec4<f32>(subgroupBroadcast(aw, 5u)), bv, d5);
    d6 = fma(vec4<f32>(subgroupBroadcast(aw, 6u)), bv, d6);
    d7 = fma(vec4<f32>(subgroupBroadcast(aw, 7u)), bv, d7);
}

// Row i of C (its accumulators `v`, columns j, j + 8, j + 16, j + 24), as `store_elem` stores.
fn sg_store(cb: u32, i: u32, j: u32, v: vec4<f32>) {
    store_elem(cb, i, j, v.x);
    store_elem(cb, i, j + 8u, v.y);
    store_elem(cb, i, j + 16u, v.z);
    store_elem(cb, i, j + 24u, v.w);
}

@compute @workgroup_size(8)
fn matmul_sg(@builtin(subgroup_invocation_id) l: u32, @builtin(workgroup_id) wid: vec3<u32>) {
    let i0 = wid.y * SG_ROWS;
    let j = wid.x * SG_COLS + l;
    let range = k_range(wid.z);
    let ones = (mp.flags & 4u) != 0u;
    // Rows and columns clamped into A and B (lanes past the edge compute what is not
    // stored); a weight gradient's ones column (the last, flags & 4) is not in B.
    let ia = min(i0 + l, mp.m - 1u);
    let ib = min(i0 + 8u + l, mp.m - 1u);
    let cols = vec4<u32>(j, j + 8u, j + 16u, j + 24u);
    let one = vec4<bool>(ones) & (cols >= vec4<u32>(mp.n - 1u));
    // The elements' offsets at p = range.x, and their steps per p.
    var oa = mp.a_base + ia * mp.lda + range.x;
    var ob = mp.a_base + ib * mp.lda + range.x;
    var sa = 1u;
    if (TA) {
        oa = mp.a_base + range.x * mp.lda + ia;
        ob = mp.a_base + range.x * mp.lda + ib;
        sa = mp.lda;
    }
    c0 = vec4<f32>(0.0);
    c1 = vec4<f32>(0.0);
    c2 = vec4<f32>(0.0);
    c3 = vec4<f32>(0.0);
    c4 = vec4<f32>(0.0);
    c5 = vec4<f32>(0.0);
    c6 = vec4<f32>(0.0);
    c7 = vec4<f32>(0.0);
    d0 = vec4<f32>(0.0);
    d1 = vec4<f32>(0.0);
    d2 = vec4<f32>(0.0);
    d3 = vec4<f32>(0.0);
    d4 = vec4<f32>(0.0);
    d5 = vec4<f32>(0.0);
    d6 = vec4<f32>(0.0);
    d7 = vec4<f32>(0.0);
    if (ones && mp.n == 1u) {
        // The ones column alone (no inputs): B is not read at all.
        for (var p = range.x; p < range.y; p++) {
            sg_fma(a[oa], a[ob], vec4<f32>(1.0));
            oa += sa;
            ob += sa;
        }
    } else {
        let jb = min(cols, vec4<u32>(mp.n - 1u - u32(ones)));
        var o = vec4<u32>(mp.b_base) + jb + vec4<u32>(range.x * mp.ldb);
        var sb = mp.ldb;
        if (TB) {
            o = vec4<u32>(mp.b_base + range.x) + jb * mp.ldb;
            sb = 1u;
        }
        for (var p = range.x; p < range.y; p++) {
            let bv = vec4<f32>(b[o.x], b[o.y], b[o.z], b[o.w]);
            sg_fma(a[oa], a[ob], select(bv, vec4<f32>(1.0), one));
            oa += sa;
            ob += sa;
            o += vec4<u32>(sb);
        }
    }
    let cb = mp.c_base + wid.z * mp.c_slice;
    sg_store(cb, i0, j, c0);
    sg_store(cb, i0 + 1u, j, c1);
    sg_store(cb, i0 + 2u, j, c2);
    sg_store(cb, i0 + 3u, j, c3);
    sg_store(cb, i0 + 4u, j, c4);
    sg_store(cb, i0 + 5u, j, c5);
    sg_store(cb, i0 + 6u, j, c6);
    sg_store(cb, i0 + 7u, j, c7);
    sg_store(cb, i0 + 8u, j, d0);
    sg_store(cb, i0 + 9u, j, d1);
    sg_store(cb, i0 + 10u, j, d2);
    sg_store(cb, i0 + 11u, j, d3);
    sg_store(cb, i0 + 12u, j, d4);
    sg_store(cb, i0 + 13u, j, d5);
    sg_store(cb, i0 + 14u, j, d6);
    sg_store(cb, i0 + 15u, j, d7);
}
