// Declarations shared by every shader module. WGSL has no include: src/backend/gpu/pipelines.rs
// prepends this file to each `shaders/*.wgsl` file at compile time (`concat!`), so a module
// is `common.wgsl` followed by its own file, which declares its bindings.

// Uniform block of every non-matmul kernel (`params::Params` on the Rust side). Operand k's
// element (i, j) of a column segment is at base_k + i * ld_k + j, with base0/ld0 holding
// operands 0..3, base1/ld1 operands 4..7 and base2/ld2 operands 8..11; f0/f1 are
// per-kernel scalars (see each file).
struct Params {
    rows: u32,
    cols: u32,
    part_off: u32,
    flags: u32,
    base0: vec4<u32>,
    base1: vec4<u32>,
    base2: vec4<u32>,
    ld0: vec4<u32>,
    ld1: vec4<u32>,
    ld2: vec4<u32>,
    f0: vec4<f32>,
    f1: vec4<f32>,
}

// Invocations per (1-D) workgroup; entry points declare `@workgroup_size(256)` to match.
const WG: u32 = 256u;

// Scratch of `wg_reduce`; it counts toward an entry point's workgroup memory (4 KiB) only
// where that entry point uses it.
var<workgroup> red: array<vec4<f32>, WG>;

// Sum of `val` over the workgroup, returned to every invocation. Call it in uniform control
// flow from all WG invocations. Ends with a barrier, so it may be called again right away.
fn wg_reduce(lid: u32, val: vec4<f32>) -> vec4<f32> {
    red[lid] = val;
    workgroupBarrier();
    for (var st = WG / 2u; st > 0u; st = st >> 1u) {
        if (lid < st) {
            red[lid] = red[lid] + red[lid + st];
        }
        workgroupBarrier();
    }
    let r = red[0];
    workgroupBarrier();
    return r;
}

// The builtins of a kernel that sums over its workgroup: `fn kernel(id: WgIds)`.
struct WgIds {
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
}

// Start and stride of a grid-stride loop over x, one index per invocation.
fn grid_x(id: WgIds) -> u32 {
    return id.wid.x * WG + id.lid.x;
}

fn grid_stride_x(id: WgIds) -> u32 {
    return id.nwg.x * WG;
}

// Slot of this workgroup's vec4 of partial sums (workgroups numbered x-major) in the partials
// buffer, whose first `part_off` slots are taken; reduce.wgsl:finalize sums them.
fn partial_slot(part_off: u32, id: WgIds) -> u32 {
    return part_off + id.wid.x + id.wid.y * id.nwg.x;
}

// Leaky ReLU σ(u) = u if u > 0 else α·u, and its derivative σ'(u) = 1 if u > 0 else α.
fn leaky_relu_of(u: f32, alpha: f32) -> f32 {
    return select(alpha * u, u, u > 0.0);
}

fn leaky_deriv_of(u: f32, alpha: f32) -> f32 {
    return select(alpha, 1.0, u > 0.0);
}

// The matmul-free W trial's pre-activation (method §6) of element u with B entry b, row
// shrink factor s and old/new biases bo/bn: s·(u − bo − t·b) + bn.
fn w_trial_of(u: f32, b: f32, s: f32, bo: f32, bn: f32, t: f32) -> f32 {
    return s * (u - bo - t * b) + bn;
}
