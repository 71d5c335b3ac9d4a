// A ladder trial decided on the device (method §6). `src/backend/ladder.rs` holds the f64
// twin of `decide` (which the host also uses) and says why. Every invocation decides from
// the slots; the first writes the block's report; when a candidate passed, every invocation
// copies its share of that candidate into the state: o0 ← x0 or y0 (`rows` elements),
// o1 ← x1 or y1 (`cols`), o2 ← x2 or y2 (`ld2.x`), o3 ← x3 or y3 (`ld2.y`), each operand
// one whole column chunk; when none passed, it voids the dispatches recorded after it
// (`later`).
// Uniform (`params::Params::ladder`): part_off = report slot; flags: bit 0 W model (else V),
// bit 1 has a previous report, bit 2 piece 0 hidden, bit 3 piece 1 present, bit 4 piece 1
// hidden, bits 5-6 / 7-8 / 9-10 where piece 0's / piece 1's / the penalty's current value is
// (0 sums, 1 value slot, 2 host value in ld0.x / ld0.y / ld0.z as f32 bits), bits 11-12 the
// width. base0 = (now 0, now 1, piece 0 candidate 0, candidate 1), base1 = (piece 1
// candidate 0, candidate 1, W: step sums of candidate 0 / V: ‖G_V‖², W: step sums of
// candidate 1), base2 = (penalty, previous report); f0 = (t0, t1, ρ, N), f1 = (λ, slack).

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> o0: array<f32>;
@group(0) @binding(2) var<storage, read> x0: array<f32>;
@group(0) @binding(3) var<storage, read> y0: array<f32>;
@group(0) @binding(4) var<storage, read_write> o1: array<f32>;
@group(0) @binding(5) var<storage, read> x1: array<f32>;
@group(0) @binding(6) var<storage, read> y1: array<f32>;
@group(0) @binding(7) var<storage, read_write> o2: array<f32>;
@group(0) @binding(8) var<storage, read> x2: array<f32>;
@group(0) @binding(9) var<storage, read> y2: array<f32>;
@group(0) @binding(10) var<storage, read_write> o3: array<f32>;
@group(0) @binding(11) var<storage, read> x3: array<f32>;
@group(0) @binding(12) var<storage, read> y3: array<f32>;
@group(0) @binding(13) var<storage, read_write> slots: array<f32>;
// The workgroup counts (x, y, z) of the dispatches recorded after this one, which are
// indirect (`recorder.rs`): a failed ladder zeroes entries ld1.x..ld1.y, and the work the
// host will redo after its readback costs nothing.
@group(0) @binding(14) var<storage, read_write> later: array<u32>;

const FAILED: u32 = 2u;

fn flag(bit: u32) -> bool {
    return (p.flags & (1u << bit)) != 0u;
}

fn field(bit: u32) -> u32 {
    return (p.flags >> bit) & 3u;
}

// A piece's value from its sums at `s`: hidden (⟨Λ,H⟩ + ρ/2‖H‖²)/N, output the loss.
fn piece(hidden: bool, s: u32) -> f32 {
    if (hidden) {
        return (slots[s + 1u] + 0.5 * p.f0.z * slots[s]) / p.f0.w;
    }
    return slots[s];
}

// A value at the current point, from sums (mode 0), a value slot (1) or the host (2).
fn now_value(mode: u32, hidden: bool, s: u32, host: u32) -> f32 {
    if (mode == 0u) {
        return piece(hidden, s);
    }
    if (mode == 1u) {
        return slots[s];
    }
    return bitcast<f32>(host);
}

struct Decision {
    choice: u32,
    map2: f32,
    v0: f32,
    v1: f32,
}

// `LadderTest::decide` in f32.
fn decide() -> Decision {
    let two = flag(3u);
    let h0 = flag(2u);
    let h1 = flag(4u);
    let now0 = now_value(field(5u), h0, p.base0.x, p.ld0.x);
    var now1 = 0.0;
    if (two) {
        now1 = now_value(field(7u), h1, p.base0.y, p.ld0.y);
    }
    let phi = now0 + now1;
    var alive = true;
    if (flag(1u)) {
        alive = u32(slots[p.base2.y]) < FAILED;
    }
    var d = Decision(FAILED + 1u, 0.0, now0, now1);
    if (alive) {
        d.choice = FAILED;
    }
    let w_model = flag(0u);
    var reg_old = 0.0;
    if (w_model) {
        reg_old = p.f1.x * now_value(field(9u), false, p.base2.x, p.ld0.z);
    }
    for (var c = 0u; c < field(11u); c++) {
        let t = select(p.f0.y, p.f0.x, c == 0u);
        let new0 = piece(h0, select(p.base0.w, p.base0.z, c == 0u));
        var new1 = 0.0;
        if (two) {
            new1 = piece(h1, select(p.base1.y, p.base1.x, c == 0u));
        }
        let phi_new = new0 + new1;
        var ok = false;
        if (w_model) {
            let st = select(p.base1.w, p.base1.z, c == 0u);
            let gd = slots[st + 2u];
            let d2 = slots[st + 3u];
            if (c == 0u) {
                d.map2 = d2 / (t * t);
            }
            let reg_new = p.f1.x * slots[st];
            let model = phi + gd + d2 / (2.0 * t);
            let slack = p.f1.y * (abs(phi) + abs(reg_old));
            ok = phi_new <= model + slack && phi_new + reg_new <= phi + reg_old + slack;
        } else {
            let g2 = slots[p.base1.z];
            d.map2 = p.f0.w * p.f0.w * g2;
            ok = phi_new <= phi - 0.5 * t * g2 + p.f1.y * abs(phi);
        }
        if (alive && ok && d.choice == FAILED) {
            d.choice = c;
            d.v0 = new0;
            d.v1 = new1;
        }
    }
    return d;
}

@compute @workgroup_size(256)
fn ladder_select(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let d = decide();
    if (gid.x == 0u) {
        slots[p.part_off] = f32(d.choice);
        slots[p.part_off + 1u] = d.map2;
        slots[p.part_off + 2u] = d.v0;
        slots[p.part_off + 3u] = d.v1;
    }
    let stride = nwg.x * WG;
    if (d.choice >= FAILED) {
        for (var e = p.ld1.x + gid.x; e < p.ld1.y; e += stride) {
            later[3u * e] = 0u;
        }
        return;
    }
    let first = d.choice == 0u;
    let n = max(max(p.rows, p.cols), max(p.ld2.x, p.ld2.y));
    for (var k = gid.x; k < n; k += stride) {
        if (k < p.rows) {
            o0[k] = select(y0[k], x0[k], first);
        }
        if (k < p.cols) {
            o1[k] = select(y1[k], x1[k], first);
        }
        if (k < p.ld2.x) {
            o2[k] = select(y2[k], x2[k], first);
        }
        if (k < p.ld2.y) {
            o3[k] = select(y3[k], x3[k], first);
        }
    }
}
