// SwiGLU: h = silu(g) ⊙ u, with silu(g) = g·σ(g).

struct Params {
    n: u32,   // elements (B·T·F)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;    // forward: h (B·T, F); backward: dg (B·T, F)
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;   // backward only: du (B·T, F)
@group(0) @binding(3) var<storage, read> g: array<f32>;            // (B·T, F)
@group(0) @binding(4) var<storage, read> u: array<f32>;            // (B·T, F)
@group(0) @binding(5) var<storage, read> dh: array<f32>;           // backward only: (B·T, F)

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(64)
fn swiglu_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    out[i] = g[i] * sigmoid(g[i]) * u[i];
}

// dg = dh · u · σ(g)·(1 + g·(1 − σ(g))),  du = dh · silu(g)
@compute @workgroup_size(64)
fn swiglu_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let x = g[i];
    let s = sigmoid(x);
    out[i] = dh[i] * u[i] * s * (1.0 + x * (1.0 - s));
    out2[i] = dh[i] * x * s;
}
