// The constraint residual kernel of SPEC §3, one column segment per dispatch:
//   H = V − σ(U),  S = Λ + ρH,  G_U = −(S ⊙ σ'(U))·inv_n,  G_V = S·inv_n,
// plus per-workgroup partial sums (‖H‖², ⟨Λ,H⟩, ‖σ(U)‖², 0) written to
// partials[(part_off + workgroup) * 4 + q]; reduce.wgsl:finalize sums them into slots.
// Operands: 0 U, 1 V, 2 Λ, 3 H, 4 S, 5 G_U, 6 G_V; (i, j) at base_k + i * ld_k + j.

struct Params {
    rows: u32,
    cols: u32,
    part_off: u32,
    flags: u32,
    base0: vec4<u32>,
    base1: vec4<u32>,
    ld0: vec4<u32>,
    ld1: vec4<u32>,
    f0: vec4<f32>, // rho, alpha, inv_n
    f1: vec4<f32>,
}

const WG: u32 = 256u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> lam: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;
@group(0) @binding(5) var<storage, read_write> s: array<f32>;
@group(0) @binding(6) var<storage, read_write> gu: array<f32>;
@group(0) @binding(7) var<storage, read_write> gv: array<f32>;
@group(0) @binding(8) var<storage, read_write> partials: array<f32>;

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

@compute @workgroup_size(256)
fn constraint_residual(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let rho = p.f0.x;
    let al = p.f0.y;
    let inv_n = p.f0.z;
    var acc = vec4<f32>(0.0);
    for (var i = wid.y; i < p.rows; i += nwg.y) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            let uu = u[p.base0.x + i * p.ld0.x + j];
            let vv = v[p.base0.y + i * p.ld0.y + j];
            let ll = lam[p.base0.z + i * p.ld0.z + j];
            let pos = uu > 0.0;
            let su = select(al * uu, uu, pos);
            let hv = vv - su;
            let sv = ll + rho * hv;
            h[p.base0.w + i * p.ld0.w + j] = hv;
            s[p.base1.x + i * p.ld1.x + j] = sv;
            gu[p.base1.y + i * p.ld1.y + j] = -(sv * select(al, 1.0, pos)) * inv_n;
            gv[p.base1.z + i * p.ld1.z + j] = sv * inv_n;
            acc += vec4<f32>(hv * hv, ll * hv, su * su, 0.0);
        }
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}

// The same sums without writing any matrix (a trial point's value, SPEC §6).
@compute @workgroup_size(256)
fn constraint_value(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let al = p.f0.y;
    var acc = vec4<f32>(0.0);
    for (var i = wid.y; i < p.rows; i += nwg.y) {
        for (var j = wid.x * WG + lid.x; j < p.cols; j += nwg.x * WG) {
            let uu = u[p.base0.x + i * p.ld0.x + j];
            let vv = v[p.base0.y + i * p.ld0.y + j];
            let ll = lam[p.base0.z + i * p.ld0.z + j];
            let su = select(al * uu, uu, uu > 0.0);
            let hv = vv - su;
            acc += vec4<f32>(hv * hv, ll * hv, su * su, 0.0);
        }
    }
    let r = wg_reduce(lid.x, acc);
    if (lid.x == 0u) {
        store_partial(wid, nwg, r);
    }
}
