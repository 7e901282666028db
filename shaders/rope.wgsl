// Rotary position embedding in the Hugging Face "rotate half" convention, in place:
//   x1 = x[i], x2 = x[i + HD/2]  →  (x1·cos − x2·sin, x2·cos + x1·sin)
// cos and sin come from a host-computed table (rope_theta and rope_scaling applied there).
// Backward applies the transposed rotation to the gradient.

struct Params {
    N: u32,    // tokens (B·T)
    NH: u32,   // heads in this tensor (NH for q, NKV for k)
    HD: u32,   // head dim
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;   // (N, NH, HD)
@group(0) @binding(2) var<storage, read> cos_t: array<f32>;     // (maxT, HD/2)
@group(0) @binding(3) var<storage, read> sin_t: array<f32>;     // (maxT, HD/2)
@group(0) @binding(4) var<storage, read> pos: array<u32>;       // (N) position of each token

fn rotate(gid: vec3<u32>, nwg: vec3<u32>, sign: f32) {
    let half = p.HD / 2u;
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.N * p.NH * half) {
        return;
    }
    let d = i % half;
    let row = i / half;   // (n, h)
    let n = row / p.NH;
    let t = pos[n] * half + d;
    let c = cos_t[t];
    let s = sign * sin_t[t];
    let i1 = row * p.HD + d;
    let i2 = i1 + half;
    let x1 = x[i1];
    let x2 = x[i2];
    x[i1] = x1 * c - x2 * s;
    x[i2] = x2 * c + x1 * s;
}

@compute @workgroup_size(64)
fn rope_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    rotate(gid, nwg, 1.0);
}

@compute @workgroup_size(64)
fn rope_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    rotate(gid, nwg, -1.0);
}
