// Losses of method §1 (averaged over columns) and classification errors, one column segment
// per dispatch. Stage 1 writes per-workgroup partial sums (reduce.wgsl:finalize applies the
// 1/N factor). Operands: 0 Ŷ, 1 Y, 2 G; (i, j) at base_k + i * ld_k + j. f0.x = 1/N.
//   squared:     ℓ = (1/N) Σ (ŷ − y)²,                    G = 2(Ŷ − Y)/N
//   softmax-CE:  ℓ = (1/N) Σ_j [lse(ŷ_j)·Σ_i y_ij − ⟨y_j, ŷ_j⟩],  G = (softmax(ŷ_j)·Σ_i y_ij − y_j)/N
// (column-wise, with max subtraction; Σ_i y_ij = 1 for one-hot targets).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> yh: array<f32>;
@group(0) @binding(2) var<storage, read> yt: array<f32>;
@group(0) @binding(3) var<storage, read_write> g: array<f32>;
@group(0) @binding(4) var<storage, read_write> partials: array<vec4<f32>>;

// Sums `val` over the workgroup; invocation 0 stores it as this workgroup's partial.
fn reduce_to_partial(id: WgIds, val: vec4<f32>) {
    let r = wg_reduce(id.lid.x, val);
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = r;
    }
}

fn ih(i: u32, j: u32) -> u32 { return p.base0.x + i * p.ld0.x + j; }
fn it(i: u32, j: u32) -> u32 { return p.base0.y + i * p.ld0.y + j; }
fn ig(i: u32, j: u32) -> u32 { return p.base0.z + i * p.ld0.z + j; }

@compute @workgroup_size(256)
fn loss_sq(id: WgIds) {
    var s = 0.0;
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let r = yh[ih(i, j)] - yt[it(i, j)];
            s += r * r;
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn loss_grad_sq(id: WgIds) {
    let inv_n = p.f0.x;
    var s = 0.0;
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let r = yh[ih(i, j)] - yt[it(i, j)];
            s += r * r;
            g[ig(i, j)] = (r + r) * inv_n;
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

// Column j's (logsumexp, cross-entropy term, Σ_i y_ij).
fn ce_column(j: u32) -> vec3<f32> {
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
    return vec3<f32>(lse, lse * ysum - ty, ysum);
}

@compute @workgroup_size(256)
fn loss_ce(id: WgIds) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            s += ce_column(j).y;
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn loss_grad_ce(id: WgIds) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            let c = ce_column(j);
            s += c.y;
            for (var i = 0u; i < p.rows; i++) {
                let pr = exp(yh[ih(i, j)] - c.x);
                g[ig(i, j)] = (pr * c.z - yt[it(i, j)]) * p.f0.x;
            }
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

// Number of columns whose argmax differs between Ŷ and Y (first index wins ties).
@compute @workgroup_size(256)
fn count_errors(id: WgIds) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
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
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

// The output layer's trial points (method §6), each written and its loss summed in one pass,
// as `w_trial_preact` (W trial) or `axpby(1, U, a, D)` (V trial) followed by `loss_sq` /
// `loss_ce` would. Operands: 0 U (tu), 1 Y (yt), 2 the trial point (tout), 3 B (W trial) or
// the V trial's direction D (tb); a W trial also reads the per-row b_old, b_new and shrink
// factors (operands 4-6, indexed by row only). f0.y = t (common.wgsl:w_trial_of) or a.
@group(0) @binding(5) var<storage, read> tu: array<f32>;
@group(0) @binding(6) var<storage, read> tb: array<f32>;
@group(0) @binding(7) var<storage, read_write> tout: array<f32>;
@group(0) @binding(8) var<storage, read> rbo: array<f32>;
@group(0) @binding(9) var<storage, read> rbn: array<f32>;
@group(0) @binding(10) var<storage, read> rsh: array<f32>;

fn iu(i: u32, j: u32) -> u32 { return p.base0.x + i * p.ld0.x + j; }
fn io(i: u32, j: u32) -> u32 { return p.base0.z + i * p.ld0.z + j; }
fn ib(i: u32, j: u32) -> u32 { return p.base0.w + i * p.ld0.w + j; }

fn w_point(i: u32, j: u32) -> f32 {
    let bo = rbo[p.base1.x + i * p.ld1.x];
    let bn = rbn[p.base1.y + i * p.ld1.y];
    let s = rsh[p.base1.z + i * p.ld1.z];
    return w_trial_of(tu[iu(i, j)], tb[ib(i, j)], s, bo, bn, p.f0.y);
}

fn v_point(i: u32, j: u32) -> f32 {
    return tu[iu(i, j)] + p.f0.y * tb[ib(i, j)];
}

// Writes trial point m at (i, j) and returns its squared-loss term.
fn put_sq(i: u32, j: u32, m: f32) -> f32 {
    tout[io(i, j)] = m;
    let r = m - yt[it(i, j)];
    return r * r;
}

// ce_column of the trial point column j: (logsumexp, cross-entropy term).
fn ce_out_column(j: u32) -> vec2<f32> {
    var mx = tout[io(0u, j)];
    for (var i = 1u; i < p.rows; i++) {
        mx = max(mx, tout[io(i, j)]);
    }
    var z = 0.0;
    var ty = 0.0;
    var ysum = 0.0;
    for (var i = 0u; i < p.rows; i++) {
        let a = tout[io(i, j)];
        let t = yt[it(i, j)];
        z += exp(a - mx);
        ty += a * t;
        ysum += t;
    }
    let lse = mx + log(z);
    return vec2<f32>(lse, lse * ysum - ty);
}

@compute @workgroup_size(256)
fn w_trial_loss_sq(id: WgIds) {
    var s = 0.0;
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            s += put_sq(i, j, w_point(i, j));
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn step_loss_sq(id: WgIds) {
    var s = 0.0;
    for (var i = id.wid.y; i < p.rows; i += id.nwg.y) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            s += put_sq(i, j, v_point(i, j));
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

// Per column: the column's trial point is written, then read back for its loss (one
// invocation owns the whole column).
@compute @workgroup_size(256)
fn w_trial_loss_ce(id: WgIds) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            for (var i = 0u; i < p.rows; i++) {
                tout[io(i, j)] = w_point(i, j);
            }
            s += ce_out_column(j).y;
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}

@compute @workgroup_size(256)
fn step_loss_ce(id: WgIds) {
    var s = 0.0;
    if (p.rows > 0u) {
        for (var j = grid_x(id); j < p.cols; j += grid_stride_x(id)) {
            for (var i = 0u; i < p.rows; i++) {
                tout[io(i, j)] = v_point(i, j);
            }
            s += ce_out_column(j).y;
        }
    }
    reduce_to_partial(id, vec4<f32>(s, 0.0, 0.0, 0.0));
}
