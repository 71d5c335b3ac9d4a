// The constraint residual kernels of method §3, one column segment per dispatch:
//   H = V − σ(U),  S = Λ + ρH,  G_U = −(S ⊙ σ'(U))·inv_n,  G_V = S·inv_n,
// plus per-workgroup partial sums (‖H‖², ⟨Λ,H⟩, ‖σ(U)‖², 0) written to
// partials[part_off + workgroup]; reduce.wgsl:finalize sums them into slots. H and S are
// not stored (no caller reads them).
// constraint_residual: operands 0 U, 1 V, 2 Λ, 3 G_U, 4 G_V; f0 = (ρ, α, inv_n, ·);
//                      flags bit 0: write G_U, bit 1: write G_V (the other is untouched).
// constraint_value:    operands 0 U, 1 V, 2 Λ; f0.y = α.
// step_value:          operands 0 base, 1 other, 2 Λ, 3 out, 4 dir, 5 grad;
//                      f0 = (a, α, moved_v, ρ), f1.x = inv_n; flags bit 1: grad is G_V,
//                      else G_U (the one gradient a trial writes).
// step_value_pair:     step_value's operands and scalars for candidate 0, f1.y = candidate
//                      1's step, its point into out1 and its gradient into grad1;
//                      candidate 0's fourth sum is ‖dir‖².
// w_trial_value:       operands 0 U, 1 V, 2 Λ, 3 out, 4 B, 5 grad; per-row vectors 6 b_old,
//                      7 b_new, 8 shrink (index i · ld); f0 = (t, α, ρ, inv_n), flags as
//                      step_value.
// w_trial_value_pair:  w_trial_value's operands and scalars for candidate 0, f1.x =
//                      candidate 1's step, its point into out1, its gradient into grad1,
//                      its b_new and shrink in b_new1 and shrink1.
// Operand k's (i, j) is at base_k + i * ld_k + j (base0 = operands 0–3, base1 = 4–7,
// base2 = 8).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> lam: array<f32>;
@group(0) @binding(4) var<storage, read_write> gu: array<f32>;
@group(0) @binding(5) var<storage, read_write> gv: array<f32>;
@group(0) @binding(6) var<storage, read> dir: array<f32>;
@group(0) @binding(8) var<storage, read_write> partials: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read> b_old: array<f32>;
@group(0) @binding(10) var<storage, read> b_new: array<f32>;
@group(0) @binding(11) var<storage, read> shrink: array<f32>;
@group(0) @binding(12) var<storage, read_write> out1: array<f32>;
@group(0) @binding(13) var<storage, read_write> grad1: array<f32>;
@group(0) @binding(14) var<storage, read> b_new1: array<f32>;
@group(0) @binding(15) var<storage, read> shrink1: array<f32>;

// Sums `val` over the workgroup; invocation 0 stores it as this workgroup's partial.
fn reduce_to_partial(id: WgIds, val: vec4<f32>) {
    let r = wg_reduce(id.lid.x, val);
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = r;
    }
}

// U, Λ, σ(U) and H = V − σ(U) at one element.
struct Elem {
    u: f32,
    lam: f32,
    su: f32,
    h: f32,
}

fn elem_of(uu: f32, vv: f32, ll: f32, al: f32) -> Elem {
    let su = leaky_relu_of(uu, al);
    return Elem(uu, ll, su, vv - su);
}

fn elem_at(i: u32, j: u32, al: f32) -> Elem {
    let uu = u[p.base0.x + i * p.ld0.x + j];
    let vv = v[p.base0.y + i * p.ld0.y + j];
    return elem_of(uu, vv, lam[p.base0.z + i * p.ld0.z + j], al);
}

// The gradient a trial writes at element e (flags bit 1: G_V, else G_U), by
// constraint_residual's formula.
fn trial_grad(e: Elem, rho: f32, al: f32, inv_n: f32) -> f32 {
    let sv = e.lam + rho * e.h;
    if ((p.flags & 2u) != 0u) {
        return sv * inv_n;
    }
    return -(sv * leaky_deriv_of(e.u, al)) * inv_n;
}

// The element's terms of (‖H‖², ⟨Λ,H⟩, ‖σ(U)‖², 0).
fn elem_sums(e: Elem) -> vec4<f32> {
    return vec4<f32>(e.h * e.h, e.lam * e.h, e.su * e.su, 0.0);
}

@compute @workgroup_size(256)
fn constraint_residual(id: WgIds) {
    let rho = p.f0.x;
    let al = p.f0.y;
    let inv_n = p.f0.z;
    let write_u = (p.flags & 1u) != 0u;
    let write_v = (p.flags & 2u) != 0u;
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let e = elem_at(i, j, al);
            let sv = e.lam + rho * e.h;
            if (write_u) {
                gu[p.base0.w + i * p.ld0.w + j] = -(sv * leaky_deriv_of(e.u, al)) * inv_n;
            }
            if (write_v) {
                gv[p.base1.x + i * p.ld1.x + j] = sv * inv_n;
            }
            acc += elem_sums(e);
        }
    }
    reduce_to_partial(id, acc);
}

// The same sums without writing any matrix (a trial point's value, method §6).
@compute @workgroup_size(256)
fn constraint_value(id: WgIds) {
    let al = p.f0.y;
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            acc += elem_sums(elem_at(i, j, al));
        }
    }
    reduce_to_partial(id, acc);
}

// A V-block trial (method §6): out ← base + a·dir, then the residual at the moved point
// (value sums and the trial's gradient), where the moved matrix is V when f0.z ≠ 0
// (other = U), else U (other = V). `u` holds base, `v` other, `gu` out, `gv` grad.
@compute @workgroup_size(256)
fn step_value(id: WgIds) {
    let a = p.f0.x;
    let al = p.f0.y;
    let moved_v = p.f0.z != 0.0;
    let rho = p.f0.w;
    let inv_n = p.f1.x;
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let m = 1.0 * u[p.base0.x + i * p.ld0.x + j] + a * dir[p.base1.x + i * p.ld1.x + j];
            gu[p.base0.w + i * p.ld0.w + j] = m;
            let x = v[p.base0.y + i * p.ld0.y + j];
            let ll = lam[p.base0.z + i * p.ld0.z + j];
            var e: Elem;
            if (moved_v) {
                e = elem_of(x, m, ll, al);
            } else {
                e = elem_of(m, x, ll, al);
            }
            gv[p.base1.y + i * p.ld1.y + j] = trial_grad(e, rho, al, inv_n);
            acc += elem_sums(e);
        }
    }
    reduce_to_partial(id, acc);
}

// A hidden layer's W trial (method §6): out ← s_i·(U − b_old_i − t·B) + b_new_i
// (common.wgsl:w_trial_of, as elementwise.wgsl:w_trial_preact), then the residual at
// (out, V, Λ): value sums and the trial's gradient. `gu` holds out, `dir` B, `gv` grad.
@compute @workgroup_size(256)
fn w_trial_value(id: WgIds) {
    let t = p.f0.x;
    let al = p.f0.y;
    let rho = p.f0.z;
    let inv_n = p.f0.w;
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        let bo = b_old[p.base1.z + i * p.ld1.z];
        let bn = b_new[p.base1.w + i * p.ld1.w];
        let s = shrink[p.base2.x + i * p.ld2.x];
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let b = dir[p.base1.x + i * p.ld1.x + j];
            let m = w_trial_of(u[p.base0.x + i * p.ld0.x + j], b, s, bo, bn, t);
            gu[p.base0.w + i * p.ld0.w + j] = m;
            let vv = v[p.base0.y + i * p.ld0.y + j];
            let e = elem_of(m, vv, lam[p.base0.z + i * p.ld0.z + j], al);
            gv[p.base1.y + i * p.ld1.y + j] = trial_grad(e, rho, al, inv_n);
            acc += elem_sums(e);
        }
    }
    reduce_to_partial(id, acc);
}

// A V trial's two candidates (steps f0.x and f1.y, method §6) in one pass over the operands
// they share (base, other, Λ, dir): each written and valued as step_value writes it,
// candidate 0 into gu and gv, candidate 1 into out1 and grad1. All operands are one chunk
// of the same shape, at base0.x + i * ld0.x + j. Partials: candidate 0's at part_off +
// workgroup, candidate 1's after all of candidate 0's.
@compute @workgroup_size(256)
fn step_value_pair(id: WgIds) {
    let a0 = p.f0.x;
    let a1 = p.f1.y;
    let al = p.f0.y;
    let moved_v = p.f0.z != 0.0;
    let rho = p.f0.w;
    let inv_n = p.f1.x;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let k = p.base0.x + i * p.ld0.x + j;
            let bs = u[k];
            let d = dir[k];
            let x = v[k];
            let ll = lam[k];
            let m0 = 1.0 * bs + a0 * d;
            let m1 = 1.0 * bs + a1 * d;
            gu[k] = m0;
            out1[k] = m1;
            var e0: Elem;
            var e1: Elem;
            if (moved_v) {
                e0 = elem_of(x, m0, ll, al);
                e1 = elem_of(x, m1, ll, al);
            } else {
                e0 = elem_of(m0, x, ll, al);
                e1 = elem_of(m1, x, ll, al);
            }
            gv[k] = trial_grad(e0, rho, al, inv_n);
            grad1[k] = trial_grad(e1, rho, al, inv_n);
            acc0 += elem_sums(e0) + vec4<f32>(0.0, 0.0, 0.0, d * d);
            acc1 += elem_sums(e1);
        }
    }
    store_pair(id, acc0, acc1);
}

// A pair kernel's partials: candidate 0's at part_off + workgroup, candidate 1's after all
// of candidate 0's.
fn store_pair(id: WgIds, acc0: vec4<f32>, acc1: vec4<f32>) {
    let r0 = wg_reduce(id.lid.x, acc0);
    let r1 = wg_reduce(id.lid.x, acc1);
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = r0;
        partials[partial_slot(p.part_off + id.nwg.x * id.nwg.y, id)] = r1;
    }
}

// A hidden layer's W trial with two candidates (steps f0.x and f1.x, method §6) in one pass
// over the operands they share (U, V, Λ, B, b_old): each written and valued as
// w_trial_value writes it, candidate 0 into gu and gv, candidate 1 into out1 and grad1. The
// matrices are one chunk of the same shape, at base0.x + i * ld0.x + j; the per-row vectors
// (one chunk, r × 1) at i. Partials as step_value_pair's.
@compute @workgroup_size(256)
fn w_trial_value_pair(id: WgIds) {
    let t0 = p.f0.x;
    let t1 = p.f1.x;
    let al = p.f0.y;
    let rho = p.f0.z;
    let inv_n = p.f0.w;
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        let bo = b_old[i];
        let bn0 = b_new[i];
        let bn1 = b_new1[i];
        let s0 = shrink[i];
        let s1 = shrink1[i];
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let k = p.base0.x + i * p.ld0.x + j;
            let uu = u[k];
            let b = dir[k];
            let vv = v[k];
            let ll = lam[k];
            let m0 = w_trial_of(uu, b, s0, bo, bn0, t0);
            let m1 = w_trial_of(uu, b, s1, bo, bn1, t1);
            gu[k] = m0;
            out1[k] = m1;
            let e0 = elem_of(m0, vv, ll, al);
            let e1 = elem_of(m1, vv, ll, al);
            gv[k] = trial_grad(e0, rho, al, inv_n);
            grad1[k] = trial_grad(e1, rho, al, inv_n);
            acc0 += elem_sums(e0);
            acc1 += elem_sums(e1);
        }
    }
    store_pair(id, acc0, acc1);
}
