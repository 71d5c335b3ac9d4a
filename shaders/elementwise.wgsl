// Elementwise kernels over one column segment of row-major matrices (see src/backend/gpu).
// Operand k's element (i, j) of the segment lives at `base_k + i * ld_k + j` of its buffer,
// so a segment may be a column range inside a larger column chunk.
// Grid: x strides over the segment's columns (256 per workgroup), y strides over rows.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read> r4: array<f32>;
@group(0) @binding(5) var<storage, read> r5: array<f32>;
@group(0) @binding(6) var<storage, read> r6: array<f32>;

fn io(i: u32, j: u32) -> u32 { return p.base0.x + i * p.ld0.x + j; }
fn ix(i: u32, j: u32) -> u32 { return p.base0.y + i * p.ld0.y + j; }
fn iy(i: u32, j: u32) -> u32 { return p.base0.z + i * p.ld0.z + j; }

// o ← a·x + b·y
@compute @workgroup_size(256)
fn axpby(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = p.f0.x;
    let b = p.f0.y;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            o[io(i, j)] = a * x[ix(i, j)] + b * y[iy(i, j)];
        }
    }
}

// o ← o + a·x
@compute @workgroup_size(256)
fn axpy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = p.f0.x;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = io(i, j);
            o[k] = o[k] + a * x[ix(i, j)];
        }
    }
}

// The multiplier update of method §4: o = Λ ← Λ + ρ(V − σ(U)), x = U, y = V; f0 = (ρ, α).
// H = V − σ(U) as residual.wgsl computes it.
@compute @workgroup_size(256)
fn multiplier_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let rho = p.f0.x;
    let al = p.f0.y;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = io(i, j);
            o[k] = o[k] + rho * (y[iy(i, j)] - leaky_relu_of(x[ix(i, j)], al));
        }
    }
}

// o ← a·o
@compute @workgroup_size(256)
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = p.f0.x;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = io(i, j);
            o[k] = a * o[k];
        }
    }
}

// o ← value
@compute @workgroup_size(256)
fn fill(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let a = p.f0.x;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            o[io(i, j)] = a;
        }
    }
}

// o ← σ(x), σ(u) = u if u > 0 else α·u
@compute @workgroup_size(256)
fn leaky_relu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let al = p.f0.x;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            o[io(i, j)] = leaky_relu_of(x[ix(i, j)], al);
        }
    }
}

// o ← o ⊙ σ'(x), σ'(u) = 1 if u > 0 else α
@compute @workgroup_size(256)
fn mul_leaky_deriv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let al = p.f0.x;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = io(i, j);
            o[k] = o[k] * leaky_deriv_of(x[ix(i, j)], al);
        }
    }
}

// method §6 matmul-free W trial: o ← s_i·(u − b_old_i − t·B) + b_new_i.
// Operands: 0 = o, 1 = u (x), 2 = B (y), 3 = b_old (r4), 4 = b_new (r5), 5 = s (r6);
// the three vectors are indexed by row only.
@compute @workgroup_size(256)
fn w_trial_preact(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = p.f0.x;
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        let bo = r4[p.base0.w + i * p.ld0.w];
        let bn = r5[p.base1.x + i * p.ld1.x];
        let s = r6[p.base1.y + i * p.ld1.y];
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            o[io(i, j)] = w_trial_of(x[ix(i, j)], y[iy(i, j)], s, bo, bn, t);
        }
    }
}
