// Group sparsity (method §3 prox, §6): group squared norms, shrink factors, and their
// application. `scr` is a contiguous per-group scratch vector (one f32 per row or column
// group). Sums go to per-workgroup partials, reduced by reduce.wgsl:finalize.
// W addressing: w(i, j) of the segment at base0.x + i * ld0.x + j; base0.y is the global
// column of the segment's first column (column groups). f0.x = threshold.

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> w: array<f32>;
@group(0) @binding(2) var<storage, read_write> scr: array<f32>;
@group(0) @binding(3) var<storage, read_write> partials: array<vec4<f32>>;

// Sums `val` over the workgroup; invocation 0 stores it as this workgroup's partial.
fn reduce_to_partial(id: WgIds, val: vec4<f32>) {
    let r = wg_reduce(id.lid.x, val);
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = r;
    }
}

fn iw(i: u32, j: u32) -> u32 { return p.base0.x + i * p.ld0.x + j; }

// The factor a group of norm n is scaled by: with `apply` the prox's 1 − thr/n if n > thr,
// else 0 (a zero group stays zero), thr = f0.x; without, 1.
fn shrink_factor(n: f32, apply: bool) -> f32 {
    var f = 1.0;
    if (apply) {
        f = 0.0;
        if (n > p.f0.x) {
            f = 1.0 - p.f0.x / n;
        }
    }
    return f;
}

// A group's terms of the partials (Σ‖group‖, #zero groups), given its norm.
fn group_stat(n: f32) -> vec4<f32> {
    return vec4<f32>(n, select(0.0, 1.0, n == 0.0), 0.0, 0.0);
}

// Σ_j w(i, j)² of row i, by the whole workgroup (returned to every invocation).
fn row_sq_wg(lid: u32, i: u32) -> f32 {
    var s = 0.0;
    for (var j = lid; j < p.cols; j += WG) {
        let a = w[iw(i, j)];
        s += a * a;
    }
    return wg_reduce(lid, vec4<f32>(s, 0.0, 0.0, 0.0)).x;
}

// Groups walked by a single invocation: row groups (`by_row`) along their row, column groups
// down their column. Element t of group g is w[base0.x + g * gstep + t * tstep].
struct Groups {
    count: u32,
    len: u32,
    gstep: u32,
    tstep: u32,
}

fn groups(by_row: bool) -> Groups {
    if (by_row) {
        return Groups(p.rows, p.cols, p.ld0.x, 1u);
    }
    return Groups(p.cols, p.rows, 1u, p.ld0.x);
}

fn group_idx(gr: Groups, g: u32, t: u32) -> u32 {
    return p.base0.x + g * gr.gstep + t * gr.tstep;
}

fn group_sq(gr: Groups, g: u32) -> f32 {
    var s = 0.0;
    for (var t = 0u; t < gr.len; t++) {
        let a = w[group_idx(gr, g, t)];
        s += a * a;
    }
    return s;
}

// Row groups: scr[i] ← (flags & 1 ? scr[i] : 0) + Σ_j w(i, j)²; one workgroup per row.
@compute @workgroup_size(256)
fn row_sq(id: WgIds) {
    for (var i = id.wid.x; i < p.rows; i += id.nwg.x) {
        let s = row_sq_wg(id.lid.x, i);
        if (id.lid.x == 0u) {
            var val = s;
            if ((p.flags & 1u) != 0u) {
                val += scr[i];
            }
            scr[i] = val;
        }
    }
}

// Column groups: scr[c0 + j] ← (flags & 1 ? … : 0) + Σ_i w(i, j)²; one thread per column.
@compute @workgroup_size(256)
fn col_sq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let gr = groups(false);
    for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
        var s = group_sq(gr, j);
        let k = p.base0.y + j;
        if ((p.flags & 1u) != 0u) {
            s += scr[k];
        }
        scr[k] = s;
    }
}

// Over `rows` groups with squared norms in scr: n = √scr[g]; with `apply`, scr[g] ← the
// shrink factor f (f = 1 otherwise). Partials: (Σ f·n, #{f·n = 0}).
fn factor_stats(id: WgIds, apply: bool) {
    var acc = vec4<f32>(0.0);
    for (var g = grid_x(id); g < p.rows; g += grid_stride_x(id)) {
        let n = sqrt(scr[g]);
        let f = shrink_factor(n, apply);
        if (apply) {
            scr[g] = f;
        }
        acc += group_stat(n * f);
    }
    reduce_to_partial(id, acc);
}

// scr[g] ← shrink factor; partials (Σ‖group‖ after prox, #zero groups after).
@compute @workgroup_size(256)
fn prox_factor(id: WgIds) {
    factor_stats(id, true);
}

// Partials (Σ √scr[g], #{scr[g] = 0}).
@compute @workgroup_size(256)
fn norm_stats(id: WgIds) {
    factor_stats(id, false);
}

// w(i, j) ← w(i, j) · scr[i]
@compute @workgroup_size(256)
fn scale_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        let f = scr[i];
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = iw(i, j);
            w[k] = w[k] * f;
        }
    }
}

// w(i, j) ← w(i, j) · scr[c0 + j]
@compute @workgroup_size(256)
fn scale_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    for (var i = gid.y; i < p.rows; i += nwg.y) {
        for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
            let k = iw(i, j);
            w[k] = w[k] * scr[p.base0.y + j];
        }
    }
}

// ---- fused single-chunk paths (W in one buffer: the usual case) -----------------------------
// flags & 1: apply the prox (scale W, write factors to scr); otherwise only the sums.
// Partials: (Σ‖group‖ after, #zero groups after) with thr = f0.x (thr = 0 and no
// scaling gives the plain group norms, since a zero group has n = 0).

// Row groups: one workgroup per row (grid-stride over rows in x); factors to scr[i].
@compute @workgroup_size(256)
fn rows_fused(id: WgIds) {
    let apply = (p.flags & 1u) != 0u;
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.x; i < p.rows; i += id.nwg.x) {
        let n = sqrt(row_sq_wg(id.lid.x, i));
        let f = shrink_factor(n, apply);
        if (apply) {
            for (var j = id.lid.x; j < p.cols; j += WG) {
                let k = iw(i, j);
                w[k] = w[k] * f;
            }
        }
        if (id.lid.x == 0u) {
            if (apply) {
                scr[i] = f;
            }
            acc += group_stat(n * f);
        }
    }
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = acc;
    }
}

// One invocation per group (no barriers but the final sum), factors to scr[g].
fn fused_per_thread(id: WgIds, by_row: bool) {
    let apply = (p.flags & 1u) != 0u;
    let gr = groups(by_row);
    var acc = vec4<f32>(0.0);
    for (var g = grid_x(id); g < gr.count; g += grid_stride_x(id)) {
        let n = sqrt(group_sq(gr, g));
        let f = shrink_factor(n, apply);
        if (apply) {
            for (var t = 0u; t < gr.len; t++) {
                let k = group_idx(gr, g, t);
                w[k] = w[k] * f;
            }
            scr[g] = f;
        }
        acc += group_stat(n * f);
    }
    reduce_to_partial(id, acc);
}

// Column groups: one invocation per column.
@compute @workgroup_size(256)
fn cols_fused(id: WgIds) {
    fused_per_thread(id, false);
}

// Row groups, one invocation per row (the better shape on CPU adapters, where a workgroup
// barrier costs a context switch per SIMD lane group).
@compute @workgroup_size(256)
fn rows_fused_thread(id: WgIds) {
    fused_per_thread(id, true);
}

// ---- a prox-gradient candidate of a layer's block (W, b), row groups, one chunk each ---------
// w ← prox(w_old − t·gw) row by row with threshold f0.x, scr[i] ← row i's factor,
// b_new ← b_old − t·gb; partials (Σ‖row‖ after, #zero rows after, ⟨g, Δ⟩, ‖Δ‖²) over W and
// b with Δ = new − old, not stored. f0.y = −t. Trial elements by elementwise.wgsl:axpby's
// expression (a = 1, b = −t), Δ by reduce.wgsl:step_diff's; W, w_old and gw share w's
// layout (base0.x, ld0.x), the bias columns are indexed by row from 0.
@group(0) @binding(4) var<storage, read> w_old: array<f32>;
@group(0) @binding(5) var<storage, read> gw: array<f32>;
@group(0) @binding(6) var<storage, read_write> b_new: array<f32>;
@group(0) @binding(7) var<storage, read> b_old: array<f32>;
@group(0) @binding(8) var<storage, read> gb: array<f32>;

fn step_trial(k: u32) -> f32 {
    return 1.0 * w_old[k] + p.f0.y * gw[k];
}

// Writes element k's new value (trial · f) and returns its terms (⟨g, Δ⟩, ‖Δ‖²).
fn step_write(k: u32, f: f32) -> vec2<f32> {
    let nw = step_trial(k) * f;
    w[k] = nw;
    let d = 1.0 * nw + -1.0 * w_old[k];
    return vec2<f32>(gw[k] * d, d * d);
}

// Row i's factor f (norm n before the prox) and bias step; returns the row's group
// stats and the bias element's terms.
fn step_row_end(i: u32, n: f32, f: f32) -> vec4<f32> {
    scr[i] = f;
    let bn = 1.0 * b_old[i] + p.f0.y * gb[i];
    b_new[i] = bn;
    let d = 1.0 * bn + -1.0 * b_old[i];
    return vec4<f32>(group_stat(n * f).xy, gb[i] * d, d * d);
}

// One workgroup per row (grid-stride over rows in x).
@compute @workgroup_size(256)
fn prox_step_rows(id: WgIds) {
    var acc = vec4<f32>(0.0);
    for (var i = id.wid.x; i < p.rows; i += id.nwg.x) {
        var s = 0.0;
        for (var j = id.lid.x; j < p.cols; j += WG) {
            let a = step_trial(iw(i, j));
            s += a * a;
        }
        let n = sqrt(wg_reduce(id.lid.x, vec4<f32>(s, 0.0, 0.0, 0.0)).x);
        let f = shrink_factor(n, true);
        for (var j = id.lid.x; j < p.cols; j += WG) {
            acc += vec4<f32>(0.0, 0.0, step_write(iw(i, j), f));
        }
        if (id.lid.x == 0u) {
            acc += step_row_end(i, n, f);
        }
    }
    reduce_to_partial(id, acc);
}

// One invocation per row (CPU adapters, as rows_fused_thread).
@compute @workgroup_size(256)
fn prox_step_rows_thread(id: WgIds) {
    var acc = vec4<f32>(0.0);
    for (var i = grid_x(id); i < p.rows; i += grid_stride_x(id)) {
        var s = 0.0;
        for (var j = 0u; j < p.cols; j++) {
            let a = step_trial(iw(i, j));
            s += a * a;
        }
        let n = sqrt(s);
        let f = shrink_factor(n, true);
        for (var j = 0u; j < p.cols; j++) {
            acc += vec4<f32>(0.0, 0.0, step_write(iw(i, j), f));
        }
        acc += step_row_end(i, n, f);
    }
    reduce_to_partial(id, acc);
}

// ---- both candidates of a W ladder in one pass over (w_old, gw, b_old, gb) -----------------
// Candidate 0 as prox_step_rows writes it (w, scr, b_new, threshold f0.x, −t in f0.y),
// candidate 1 into w1, scr1, b_new1 (threshold f0.z, −t in f0.w); partials: candidate 0's at
// part_off + workgroup, candidate 1's after all of candidate 0's.
@group(0) @binding(9) var<storage, read_write> w1: array<f32>;
@group(0) @binding(10) var<storage, read_write> scr1: array<f32>;
@group(0) @binding(11) var<storage, read_write> b_new1: array<f32>;

// shrink_factor(n, true) with threshold thr.
fn shrink_at(n: f32, thr: f32) -> f32 {
    var f = 0.0;
    if (n > thr) {
        f = 1.0 - thr / n;
    }
    return f;
}

// Element k of both candidates (factors f0, f1): written, and its terms of (⟨g, Δ⟩, ‖Δ‖²)
// for candidate 0 (x, y) and candidate 1 (z, w).
fn step_write_pair(k: u32, f0: f32, f1: f32) -> vec4<f32> {
    let wo = w_old[k];
    let g = gw[k];
    let nw0 = (1.0 * wo + p.f0.y * g) * f0;
    let nw1 = (1.0 * wo + p.f0.w * g) * f1;
    w[k] = nw0;
    w1[k] = nw1;
    let d0 = 1.0 * nw0 + -1.0 * wo;
    let d1 = 1.0 * nw1 + -1.0 * wo;
    return vec4<f32>(g * d0, d0 * d0, g * d1, d1 * d1);
}

// Row i's end for both candidates (norms n0, n1 before the prox): factors, bias steps, and
// each candidate's group stats and bias terms.
fn step_row_end_pair(i: u32, n0: f32, f0: f32, n1: f32, f1: f32) -> array<vec4<f32>, 2> {
    scr[i] = f0;
    scr1[i] = f1;
    let bo = b_old[i];
    let g = gb[i];
    let bn0 = 1.0 * bo + p.f0.y * g;
    let bn1 = 1.0 * bo + p.f0.w * g;
    b_new[i] = bn0;
    b_new1[i] = bn1;
    let d0 = 1.0 * bn0 + -1.0 * bo;
    let d1 = 1.0 * bn1 + -1.0 * bo;
    return array<vec4<f32>, 2>(
        vec4<f32>(group_stat(n0 * f0).xy, g * d0, d0 * d0),
        vec4<f32>(group_stat(n1 * f1).xy, g * d1, d1 * d1),
    );
}

fn store_pair(id: WgIds, acc0: vec4<f32>, acc1: vec4<f32>) {
    let r0 = wg_reduce(id.lid.x, acc0);
    let r1 = wg_reduce(id.lid.x, acc1);
    if (id.lid.x == 0u) {
        partials[partial_slot(p.part_off, id)] = r0;
        partials[partial_slot(p.part_off + id.nwg.x * id.nwg.y, id)] = r1;
    }
}

// One workgroup per row (grid-stride over rows in x).
@compute @workgroup_size(256)
fn prox_step_rows_pair(id: WgIds) {
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var i = id.wid.x; i < p.rows; i += id.nwg.x) {
        var s0 = 0.0;
        var s1 = 0.0;
        for (var j = id.lid.x; j < p.cols; j += WG) {
            let k = iw(i, j);
            let a0 = 1.0 * w_old[k] + p.f0.y * gw[k];
            let a1 = 1.0 * w_old[k] + p.f0.w * gw[k];
            s0 += a0 * a0;
            s1 += a1 * a1;
        }
        let n = sqrt(wg_reduce(id.lid.x, vec4<f32>(s0, s1, 0.0, 0.0)).xy);
        let f0 = shrink_at(n.x, p.f0.x);
        let f1 = shrink_at(n.y, p.f0.z);
        for (var j = id.lid.x; j < p.cols; j += WG) {
            let t = step_write_pair(iw(i, j), f0, f1);
            acc0 += vec4<f32>(0.0, 0.0, t.xy);
            acc1 += vec4<f32>(0.0, 0.0, t.zw);
        }
        if (id.lid.x == 0u) {
            let e = step_row_end_pair(i, n.x, f0, n.y, f1);
            acc0 += e[0];
            acc1 += e[1];
        }
    }
    store_pair(id, acc0, acc1);
}

// One invocation per row (CPU adapters, as prox_step_rows_thread).
@compute @workgroup_size(256)
fn prox_step_rows_thread_pair(id: WgIds) {
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    for (var i = grid_x(id); i < p.rows; i += grid_stride_x(id)) {
        var s0 = 0.0;
        var s1 = 0.0;
        for (var j = 0u; j < p.cols; j++) {
            let k = iw(i, j);
            let a0 = 1.0 * w_old[k] + p.f0.y * gw[k];
            let a1 = 1.0 * w_old[k] + p.f0.w * gw[k];
            s0 += a0 * a0;
            s1 += a1 * a1;
        }
        let n0 = sqrt(s0);
        let n1 = sqrt(s1);
        let f0 = shrink_at(n0, p.f0.x);
        let f1 = shrink_at(n1, p.f0.z);
        for (var j = 0u; j < p.cols; j++) {
            let t = step_write_pair(iw(i, j), f0, f1);
            acc0 += vec4<f32>(0.0, 0.0, t.xy);
            acc1 += vec4<f32>(0.0, 0.0, t.zw);
        }
        let e = step_row_end_pair(i, n0, f0, n1, f1);
        acc0 += e[0];
        acc1 += e[1];
    }
    store_pair(id, acc0, acc1);
}
