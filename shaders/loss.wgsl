// Losses of SPEC §1 (averaged over columns) and classification errors, one column segment
// per dispatch. Stage 1 writes per-workgroup partial sums (reduce.wgsl:finalize applies the
// 1/N factor). Operands: 0 Ŷ, 1 Y, 2 G; (i, j) at base_k + i * ld_k + j. f0.x = 1/N.
//   squared:     ℓ = (1/N) Σ (ŷ − y)²,                    G = 2(Ŷ − Y)/N
//   softmax-CE:  ℓ = (1/N) Σ_j [lse(ŷ_j)·Σ_i y_ij − ⟨y_j, ŷ_j⟩],  G = (softmax(ŷ_j)·Σ_i y_ij − y_j)/N
// (column-wise, with max subtraction; Σ_i y_ij = 1 for one-hot targets).

struct Params {
    rows: u32,
    cols: u32,
    part_off: u32,
    flags: u32,
    base0: vec4<u32>,
    base1: vec4<u32>,
    ld0: vec4<u32>,
    ld1: vec4<u32>,
    f0: vec4<f32>,
    f1: vec4<f32>,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> yh: array<f32>;
@group(0) @binding(2) var<storage, read> yt: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<f32>;

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
    return red[0];
}

fn store_partial(wid: vec3<u32>, nwg: vec3<u32>, r: vec4<f32>) {
    let k = (p.part_off + wid.x + wid.y * nwg.x) * 4u;
    partials[k] = r.x;
    partials[k + 1u] = r.y;
    partials[k + 2u] = r.z;
    partials[k + 3u] = r.w;
}

fn ih(i: u32, j: u32) -> u32 { return p.base0.x + i * p.ld0.x + j; }
fn it(i: u32, j: u32) -> u32 { return p.base0.y + i * p.ld0.y + j; }
fn ig(i: u32, j: u32) -> u32 { return p.base0.z + i * p.ld0.z + j; }

@compute @workgroup_size(256)
fn loss_sq(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var s = 0.0;
    for (var i = wid.y; i < p.rows; i += nwg.y) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            let r = yh[ih(i, j)] - yt[it(i, j)];
            s += r * r;
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

@compute @workgroup_size(256)
fn loss_grad_sq(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let inv_n = p.f0.x;
    var s = 0.0;
    for (var i = wid.y; i < p.rows; i += nwg.y) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            let r = yh[ih(i, j)] - yt[it(i, j)];
            s += r * r;
            g[ig(i, j)] = (r + r) * inv_n;
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

// Column j's (logsumexp, cross-entropy term).
fn ce_column(j: u32) -> vec2<f32> {
    var mx = yh[ih(0u, j)];
    for (var i = 1u; i < p.rows; i++) {
        mx = max(mx, yh[ih(i, j)]);
    }
    var z = 0.0;
    var ty = 0.0;
    var ysum = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        let a = yh[ih(i, j)];
        let t = yt[it(i, j)];
        z += exp(a - mx);
        ty += a * t;
        ysum += t;
    }
    let lse = mx + log(z);
    return vec2<f32>(lse, lse * ysum - ty);
}

@compute @workgroup_size(256)
fn loss_ce(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            s += ce_column(j).y;
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

@compute @workgroup_size(256)
fn loss_grad_ce(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            let c = ce_column(j);
            s += c.y;
            var ysum = 0.0;
            for (var i = 0u; i < p.rows; i++) {
                ysum += yt[it(i, j)];
            }
            for (var i = 0u; i < p.rows; i++) {
                let pr = exp(yh[ih(i, j)] - c.x);
                g[ig(i, j)] = (pr * ysum - yt[it(i, j)]) * p.f0.x;
            }
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

// Number of columns whose argmax differs between Ŷ and Y (first index wins ties).
@compute @workgroup_size(256)
fn count_errors(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            var bh = yh[ih(0u, j)];
            var ah = 0u;
            var bt = yt[it(0u, j)];
            var at = 0u;
            for (var i = 1u; i < p.rows; i++) {
                let a = yh[ih(i, j)];
                if (a > bh) {
                    bh = a;
                    ah = i;
                }
                let t = yt[it(i, j)];
                if (t > bt) {
                    bt = t;
                    at = i;
                }
            }
            if (ah != at) {
                s += 1.0;
            }
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}
