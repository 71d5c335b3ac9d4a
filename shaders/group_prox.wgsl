// Group sparsity (SPEC §3 prox, §6): group squared norms, shrink factors, and their
// application. `scr` is a contiguous per-group scratch vector (one f32 per row or column
// group). Sums go to per-workgroup partials, reduced by reduce.wgsl:finalize.
// W addressing: w(i, j) of the segment at base0.x + i * ld0.x + j; base0.y is the global
// column of the segment's first column (column groups).

struct Params {
    rows: u32,
    cols: u32,
    part_off: u32,
    flags: u32,
    base0: vec4<u32>,
    base1: vec4<u32>,
    ld0: vec4<u32>,
    ld1: vec4<u32>,
    f0: vec4<f32>, // f0.x = threshold
    f1: vec4<f32>,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> scr: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<f32>;

var<workgroup> red: array<vec4<f32>, 256>;

fn wg_reduce(lid: u32, val: vec4<f32>) -> vec4<f32> {
    red[lid] = val;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st >> 1u) {
        if (lid < st) {
            red[lid] = red[lid] + red[lid + st];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

fn iw(i: u32, j: u32) -> u32 { return p.base0.x + i * p.ld0.x + j; }

// Row groups: scr[i] ← (flags & 1 ? scr[i] : 0) + Σ_j w(i, j)²; one workgroup per row.
@compute @workgroup_size(256)
fn row_sq(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var i = wid.x; i < p.rows; i += nwg.x) {
        var s = 0.0;
        for (var j = lid.x; j < p.cols; j += WG) {
            let a = w[iw(i, j)];
            s += a * a;
        }
        let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
        if (lid.x == 0u) {
            var val = r.x;
            if ((p.flags & 1u) != 0u) {
                val += scr[i];
            }
            scr[i] = val;
        }
    }
}

// Column groups: scr[c0 + j] ← (flags & 1 ? … : 0) + Σ_i w(i, j)²; one thread per column.
@compute @workgroup_size(256)
fn col_sq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
        var s = 0.0;
        for (var i = 0u; i < p.rows; i++) {
            let a = w[iw(i, j)];
            s += a * a;
        }
        let k = p.base0.y + j;
        if ((p.flags & 1u) != 0u) {
            s += scr[k];
        }
        scr[k] = s;
    }
}

// Over `rows` groups: n = √scr[g], factor f = 1 − thr/n if n > thr else 0 (a zero group
// stays zero); scr[g] ← f; partials (Σ f·n, #{f·n = 0}) = (Σ‖group‖ after prox, zeros).
@compute @workgroup_size(256)
fn prox_factor(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let thr = p.f0.x;
    var acc = vec4<f32>(0.0);
    for (var g = wid.x * WG + lid.x; g < p.rows; g += nwg.x * WG) {
        let n = sqrt(scr[g]);
        var f = 0.0;
        if (n > thr) {
            f = 1.0 - thr / n;
        }
        scr[g] = f;
        let after = n * f;
        acc += vec4<f32>(after, select(0.0, 1.0, after == 0.0), 0.0, 0.0);
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        let k = (p.part_off + wid.x) * 4u;
        partials[k] = r.x;
        partials[k + 1u] = r.y;
        partials[k + 2u] = r.z;
        partials[k + 3u] = r.w;
    }
}

// Over `rows` groups: partials (Σ √scr[g], #{scr[g] = 0}).
@compute @workgroup_size(256)
fn norm_stats(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var acc = vec4<f32>(0.0);
    for (var g = wid.x * WG + lid.x; g < p.rows; g += nwg.x * WG) {
        let n = sqrt(scr[g]);
        acc += vec4<f32>(n, select(0.0, 1.0, n == 0.0), 0.0, 0.0);
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        let k = (p.part_off + wid.x) * 4u;
        partials[k] = r.x;
        partials[k + 1u] = r.y;
        partials[k + 2u] = r.z;
        partials[k + 3u] = r.w;
    }
}

// w(i, j) ← w(i, j) · scr[i]
@compute @workgroup_size(256)
fn scale_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        let f = scr[i];
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = iw(i, j);
            w[k] = w[k] * f;
        }
    }
}

// w(i, j) ← w(i, j) · scr[c0 + j]
@compute @workgroup_size(256)
fn scale_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = iw(i, j);
            w[k] = w[k] * scr[p.base0.y + j];
        }
    }
}

// ---- fused single-chunk paths (W in one buffer: the usual case) -----------------------------
// flags & 1: apply the prox (scale W, write factors to scr); otherwise only the sums.
// Partials: (Σ‖group‖ after, #zero groups after) with thr = f0.x (thr = 0 and no
// scaling gives the plain group norms, since a zero group has n = 0).

fn prox_factor_of(n: f32, thr: f32) -> f32 {
    var f = 0.0;
    if (n > thr) {
        f = 1.0 - thr / n;
    }
    return f;
}

// Row groups: one workgroup per row (grid-stride over rows in x); factors to scr[i].
@compute @workgroup_size(256)
fn rows_fused(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let apply = (p.flags & 1u) != 0u;
    let thr = p.f0.x;
    var acc = vec4<f32>(0.0);
    for (var i = wid.x; i < p.rows; i += nwg.x) {
        var s = 0.0;
        for (var j = lid.x; j < p.cols; j += WG) {
            let a = w[iw(i, j)];
            s += a * a;
        }
        let n = sqrt(wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0)).x);
        var f = 1.0;
        if (apply) {
            f = prox_factor_of(n, thr);
            for (var j = lid.x; j < p.cols; j += WG) {
                let k = iw(i, j);
                w[k] = w[k] * f;
            }
        }
        let after = n * f;
        if (lid.x == 0u) {
            if (apply) {
                scr[i] = f;
            }
            acc += vec4<f32>(after, select(0.0, 1.0, after == 0.0), 0.0, 0.0);
        }
    }
    if (lid.x == 0u) {
        let k = (p.part_off + wid.x) * 4u;
        partials[k] = acc.x;
        partials[k + 1u] = acc.y;
        partials[k + 2u] = acc.z;
        partials[k + 3u] = acc.w;
    }
}

// Column groups: one invocation per column; factors to scr[j].
@compute @workgroup_size(256)
fn cols_fused(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let apply = (p.flags & 1u) != 0u;
    let thr = p.f0.x;
    var acc = vec4<f32>(0.0);
    for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
        var s = 0.0;
        for (var i = 0u; i < p.rows; i++) {
            let a = w[iw(i, j)];
            s += a * a;
        }
        let n = sqrt(s);
        var f = 1.0;
        if (apply) {
            f = prox_factor_of(n, thr);
            for (var i = 0u; i < p.rows; i++) {
                let k = iw(i, j);
                w[k] = w[k] * f;
            }
            scr[j] = f;
        }
        let after = n * f;
        acc += vec4<f32>(after, select(0.0, 1.0, after == 0.0), 0.0, 0.0);
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        let k = (p.part_off + wid.x) * 4u;
        partials[k] = r.x;
        partials[k + 1u] = r.y;
        partials[k + 2u] = r.z;
        partials[k + 3u] = r.w;
    }
}

// Row groups, one invocation per row (no barriers: the better shape on CPU adapters, where
// a workgroup barrier costs a context switch per SIMD lane group).
@compute @workgroup_size(256)
fn rows_fused_thread(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let apply = (p.flags & 1u) != 0u;
    let thr = p.f0.x;
    var acc = vec4<f32>(0.0);
    for (var i = wid.x * WG + lid.x; i < p.rows; i += nwg.x * WG) {
        var s = 0.0;
        for (var j = 0u; j < p.cols; j++) {
            let a = w[iw(i, j)];
            s += a * a;
        }
        let n = sqrt(s);
        var f = 1.0;
        if (apply) {
            f = prox_factor_of(n, thr);
            for (var j = 0u; j < p.cols; j++) {
                let k = iw(i, j);
                w[k] = w[k] * f;
            }
            scr[i] = f;
        }
        let after = n * f;
        acc += vec4<f32>(after, select(0.0, 1.0, after == 0.0), 0.0, 0.0);
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        let k = (p.part_off + wid.x) * 4u;
        partials[k] = r.x;
        partials[k + 1u] = r.y;
        partials[k + 2u] = r.z;
        partials[k + 3u] = r.w;
    }
}
