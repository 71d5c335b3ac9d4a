// gather_cols: out[:, j] ← src[:, idx[j]] for one (out segment, src chunk) pair.
// Columns whose index falls outside this src chunk are left for another dispatch.
//   rows, cols   : rows, number of out columns in the segment
//   base0.x/ld0.x: out segment addressing (out(i, j) at base + i * ld + j)
//   base0.y      : first global column held by this src chunk
//   base0.z      : number of columns held by this src chunk (also its row stride)
//   base0.w      : offset of idx[j0] in the index arena

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read> idx: array<u32>;

@compute @workgroup_size(256)
fn gather_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let c0 = p.base0.y;
    let nc = p.base0.z;
    for (var j = gid.x; j < p.cols; j += nwg.x * WG) {
        let c = idx[p.base0.w + j];
        if (c >= c0 && c < c0 + nc) {
            let lc = c - c0;
            for (var i = gid.y; i < p.rows; i += nwg.y) {
                o[p.base0.x + i * p.ld0.x + j] = src[i * nc + lc];
            }
        }
    }
}
