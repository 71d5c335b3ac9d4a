// Two-stage reductions. Stage 1 (dot, sq_norm, step_diff, diff_sums here; residual, loss
// and group kernels elsewhere)
// writes one vec4 of partial sums per workgroup to acc[(part_off + workgroup) * 4 + q]
// (the other files view that buffer as array<vec4<f32>>; here it is f32 for row_sum).
// Stage 2 (`finalize`, one workgroup) sums each pending reduction's partial vec4s into its
// slots (see there).
// `row_sum` (bias gradients) reduces along rows: out[i] ← Σ_j a(i, j) + β·out[i].

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> acc: array<f32>;
@group(0) @binding(4) var<storage, read_write> slots: array<f32>;
@group(0) @binding(5) var<storage, read_write> diff: array<f32>;
@group(0) @binding(6) var<storage, read> grad: array<f32>;

// Sums `val` over the workgroup; invocation 0 stores it as this workgroup's partial.
fn reduce_to_partial(id: WgIds, val: vec4<f32>) {
    let r = wg_reduce(id.lid.x, val);
    if (id.lid.x == 0u) {
        let k = partial_slot(p.part_off, id) * 4u;
        acc[k] = r.x;
        acc[k + 1u] = r.y;
        acc[k + 2u] = r.z;
        acc[k + 3u] = r.w;
    }
}

@compute @workgroup_size(256)
fn dot(id: WgIds) {
    var s = 0.0;
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            s += x[p.base0.x + i * p.ld0.x + j] * y[p.base0.y + i * p.ld0.y + j];
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn sq_norm(id: WgIds) {
    var s = 0.0;
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let a = x[p.base0.x + i * p.ld0.x + j];
            s += a * a;
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

// A prox-gradient trial's model terms: diff ← 1·new + (−1)·old (elementwise.wgsl:axpby's
// expression), partial sums (⟨g, diff⟩, ‖diff‖², 0, 0). Operands 0 new (x), 1 old (y),
// 2 diff, 3 g.
@compute @workgroup_size(256)
fn step_diff(id: WgIds) {
    let a = 1.0;
    let b = -1.0;
    var s = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let d = a * x[p.base0.x + i * p.ld0.x + j] + b * y[p.base0.y + i * p.ld0.y + j];
            diff[p.base0.z + i * p.ld0.z + j] = d;
            s += vec4<f32>(grad[p.base0.w + i * p.ld0.w + j] * d, d * d, 0.0, 0.0);
        }
    }
    reduce_to_partial(id, s);
}

// step_diff's sums without storing diff: operands 0 new (x), 1 old (y), 2 g.
@compute @workgroup_size(256)
fn diff_sums(id: WgIds) {
    let a = 1.0;
    let b = -1.0;
    var s = vec4<f32>(0.0);
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let d = a * x[p.base0.x + i * p.ld0.x + j] + b * y[p.base0.y + i * p.ld0.y + j];
            s += vec4<f32>(grad[p.base0.z + i * p.ld0.z + j] * d, d * d, 0.0, 0.0);
        }
    }
    reduce_to_partial(id, s);
}

// Component i (< 8) of the pair (a, b) as one 8-vector.
fn at8u(a: vec4<u32>, b: vec4<u32>, i: u32) -> u32 {
    if (i < 4u) {
        return a[i];
    }
    return b[i - 4u];
}

fn at8f(a: vec4<f32>, b: vec4<f32>, i: u32) -> f32 {
    if (i < 4u) {
        return a[i];
    }
    return b[i - 4u];
}

// Stage 2 of `rows` (≤ 8) reductions, in order, so a later one may add to a slot an earlier
// one wrote: reduction e's partials end at ld[e] and start where e − 1's end (e = 0: at 0);
// base[e] = slot | k << 16 | accumulate << 20; f[e] scales lane 0.
@compute @workgroup_size(256)
fn finalize(@builtin(local_invocation_id) lid: vec3<u32>) {
    var lo = 0u;
    for (var e = 0u; e < p.rows; e++) {
        let hi = at8u(p.ld0, p.ld1, e);
        var s = vec4<f32>(0.0);
        for (var q = lo + lid.x; q < hi; q += WG) {
            let k = q * 4u;
            s += vec4<f32>(acc[k], acc[k + 1u], acc[k + 2u], acc[k + 3u]);
        }
        let r = wg_reduce(lid.x, s);
        if (lid.x == 0u) {
            let d = at8u(p.base0, p.base1, e);
            let slot = d & 0xffffu;
            let add = (d >> 20u) != 0u;
            for (var q = 0u; q < ((d >> 16u) & 15u); q++) {
                var val = r[q];
                if (q == 0u) {
                    val *= at8f(p.f0, p.f1, e);
                }
                if (add) {
                    val += slots[slot + q];
                }
                slots[slot + q] = val;
            }
        }
        lo = hi;
    }
}

// One workgroup per row (grid-stride over rows in x). `a` is x (operand 0), `out` is acc
// (out(i) at base0.y + i * ld0.y). flags & 2: add β·out (f0.x = β); otherwise old out is
// never read (it may hold NaN).
@compute @workgroup_size(256)
fn row_sum(id: WgIds) {
    for (var i = id.wid.x; i < p.rows; i += id.nwg.x) {
        var s = 0.0;
        for (var j = id.lid.x; j < p.cols; j += WG) {
            s += x[p.base0.x + i * p.ld0.x + j];
        }
        let r = wg_reduce(id.lid.x, vec4<f32>(s, 0.0, 0.0, 0.0));
        if (id.lid.x == 0u) {
            let k = p.base0.y + i * p.ld0.y;
            var val = r.x;
            if ((p.flags & 2u) != 0u) {
                val += p.f0.x * acc[k];
            }
            acc[k] = val;
        }
    }
}
