// RMSNorm, as Llama computes it in f32: out = weight · x · rstd, rstd = 1 / sqrt(mean(x²) + eps).
// One workgroup per row. The weight is frozen, so backward gives only the input gradient. The
// row sums are reduce.wgsl's (or reduce_subgroup.wgsl's), placed before this file.

struct Params {
    N: u32,   // rows (B·T)
    C: u32,   // channels
    eps: f32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;    // forward: (N, C); backward: dinp (N, C), accumulated
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;   // (N): written by forward, read by backward
@group(0) @binding(3) var<storage, read> inp: array<f32>;          // (N, C)
@group(0) @binding(4) var<storage, read> weight: array<f32>;       // (C)
@group(0) @binding(5) var<storage, read> dout: array<f32>;         // backward only: (N, C)

fn row_index(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}

@compute @workgroup_size(WG)
fn rmsnorm_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let lid = lane.lid;
    let row = row_index(wid, nwg);
    if (row >= p.N) {
        return;
    }
    let base = row * p.C;
    var ss = 0.0;
    for (var i = lid; i < p.C; i += WG) {
        let x = inp[base + i];
        ss += x * x;
    }
    let r = inverseSqrt(workgroup_reduce(lane, ss, false) / f32(p.C) + p.eps);
    for (var i = lid; i < p.C; i += WG) {
        out[base + i] = weight[i] * (inp[base + i] * r);
    }
    if (lid == 0u) {
        rstd[row] = r;
    }
}

// dinp += rstd · w ⊙ dout − x · rstd³ · mean(w ⊙ dout ⊙ x)
@compute @workgroup_size(WG)
fn rmsnorm_backward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let lid = lane.lid;
    let row = row_index(wid, nwg);
    if (row >= p.N) {
        return;
    }
    let base = row * p.C;
    let r = rstd[row];
    var acc = 0.0;
    for (var i = lid; i < p.C; i += WG) {
        acc += weight[i] * dout[base + i] * inp[base + i];
    }
    let mean_dot = workgroup_reduce(lane, acc, false) / f32(p.C);
    for (var i = lid; i < p.C; i += WG) {
        let g = r * weight[i] * dout[base + i] - inp[base + i] * r * r * r * mean_dot;
        out[base + i] += g;
    }
}
