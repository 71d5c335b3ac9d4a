// Two-stage reductions. Stage 1 (dot, sq_norm here; residual/loss/group kernels elsewhere)
// writes one vec4 of partial sums per workgroup to acc[(part_off + workgroup) * 4 + q].
// Stage 2 (`finalize`, one workgroup) sums `cols` partial vec4s and writes
//   slots[base0.x + q] ← f0[q] · Σ (+ old slot value if flags & 1), for q < rows (≤ 4).
// `row_sum` (bias gradients) reduces along rows: out[i] ← Σ_j a(i, j) + β·out[i].

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
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;
@group(0) @binding(4) var<storage, read_write> slots: array<f32>;

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
    workgroupBarrier(); // `red` may be reused right after
    return r;
}

fn store_partial(wid: vec3<u32>, nwg: vec3<u32>, r: vec4<f32>) {
    let k = (p.part_off + wid.x + wid.y * nwg.x) * 4u;
    acc[k] = r.x;
    acc[k + 1u] = r.y;
    acc[k + 2u] = r.z;
    acc[k + 3u] = r.w;
}

@compute @workgroup_size(256)
fn dot(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var s = 0.0;
    for (var i = wid.y; i < p.rows; i += nwg.y) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            s += x[p.base0.x + i * p.ld0.x + j] * y[p.base0.y + i * p.ld0.y + j];
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

@compute @workgroup_size(256)
fn sq_norm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    var s = 0.0;
    for (var i = wid.y; i < p.rows; i += nwg.y) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            let a = x[p.base0.x + i * p.ld0.x + j];
            s += a * a;
        }
    }
    let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

@compute @workgroup_size(256)
fn finalize(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = vec4<f32>(0.0);
    for (var q = lid.x; q < p.cols; q += WG) {
        let k = q * 4u;
        s += vec4<f32>(acc[k], acc[k + 1u], acc[k + 2u], acc[k + 3u]);
    }
    let r = wg_reduce(lid.x, s);
    if (lid.x == 0u) {
        let add = (p.flags & 1u) != 0u;
        for (var q = 0u; q < p.rows; q++) {
            var val = r[q] * p.f0[q];
            if (add) {
                val += slots[p.base0.x + q];
            }
            slots[p.base0.x + q] = val;
        }
    }
}

// One workgroup per row (grid-stride over rows in x). `a` is x (operand 0), `out` is acc
// (out(i) at base0.y + i * ld0.y). flags & 2: add β·out (f0.x = β); otherwise old out is
// never read (it may hold NaN).
@compute @workgroup_size(256)
fn row_sum(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    for (var i = wid.x; i < p.rows; i += nwg.x) {
        var s = 0.0;
        for (var j = lid.x; j < p.cols; j += WG) {
            s += x[p.base0.x + i * p.ld0.x + j];
        }
        let r = wg_reduce(lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
        if (lid.x == 0u) {
            let k = p.base0.y + i * p.ld0.y;
            var val = r.x;
            if ((p.flags & 2u) != 0u) {
                val += p.f0.x * acc[k];
            }
            acc[k] = val;
        }
    }
}
