// The constraint residual kernel of method §3, one column segment per dispatch:
//   H = V − σ(U),  S = Λ + ρH,  G_U = −(S ⊙ σ'(U))·inv_n,  G_V = S·inv_n,
// plus per-workgroup partial sums (‖H‖², ⟨Λ,H⟩, ‖σ(U)‖², 0) written to
// partials[part_off + workgroup]; reduce.wgsl:finalize sums them into slots.
// Operands: 0 U, 1 V, 2 Λ, 3 H, 4 S, 5 G_U, 6 G_V; (i, j) at base_k + i * ld_k + j.
// f0 = (ρ, α, inv_n, ·).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> u: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> lam: array<f32>;
@group(0) @binding(4) var<storage, read_write> h: array<f32>;
@group(0) @binding(5) var<storage, read_write> s: array<f32>;
@group(0) @binding(6) var<storage, read_write> gu: array<f32>;
@group(0) @binding(7) var<storage, read_write> gv: array<f32>;
@group(0) @binding(8) var<storage, read_write> partials: array<vec4<f32>>;

// Sums `val` over the workgroup; invocation 0 stores it as this workgroup's partial.
fn reduce_to_partial(id: WgIds, val: vec4<f32>) {
    let r = wg_reduce(id.lid.x, val);
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = r;
    }
}

// U, Λ, σ(U) and H = V − σ(U) at (i, j).
struct Elem {
    u: f32,
    lam: f32,
    su: f32,
    h: f32,
}

fn elem_at(i: u32, j: u32, al: f32) -> Elem {
    let uu = u[p.base0.x + i * p.ld0.x + j];
    let su = leaky_relu_of(uu, al);
    let hv = v[p.base0.y + i * p.ld0.y + j] - su;
    return Elem(uu, lam[p.base0.z + i * p.ld0.z + j], su, hv);
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
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let e = elem_at(i, j, al);
            let sv = e.lam + rho * e.h;
            h[p.base0.w + i * p.ld0.w + j] = e.h;
            s[p.base1.x + i * p.ld1.x + j] = sv;
            gu[p.base1.y + i * p.ld1.y + j] = -(sv * leaky_deriv_of(e.u, al)) * inv_n;
            gv[p.base1.z + i * p.ld1.z + j] = sv * inv_n;
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
