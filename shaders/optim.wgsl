// Optimiser updates for the baselines (method §7): Adam with bias corrections.
// Addressing as in elementwise.wgsl: operand k's (i, j) at base_k + i * ld_k + j.
// f0 = (lr, β₁, β₂, ε), f1.xy = (bc1, bc2) = (1 − β₁^t, 1 − β₂^t).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(256)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let lr = p.f0.x;
    let b1 = p.f0.y;
    let b2 = p.f0.z;
    let eps = p.f0.w;
    let bc1 = p.f1.x;
    let bc2 = p.f1.y;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let kw = p.base0.x + i * p.ld0.x + j;
            let kg = p.base0.y + i * p.ld0.y + j;
            let km = p.base0.z + i * p.ld0.z + j;
            let kv = p.base0.w + i * p.ld0.w + j;
            let gg = g[kg];
            let mm = b1 * m[km] + (1.0 - b1) * gg;
            let vv = b2 * v[kv] + (1.0 - b2) * gg * gg;
            m[km] = mm;
            v[kv] = vv;
            let mh = mm / bc1;
            let vh = vv / bc2;
            w[kw] = w[kw] - lr * mh / (sqrt(vh) + eps);
        }
    }
}
