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
