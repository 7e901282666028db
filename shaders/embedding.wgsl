// Token embedding gather. The table is frozen, so there is no backward kernel: the gradient
// stops at the first layer's input.

struct Params {
    N: u32,   // tokens (B·T)
    C: u32,   // channels
    V: u32,   // vocabulary
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;   // (N, C)
@group(0) @binding(2) var<storage, read> ids: array<u32>;         // (N), each < V (checked on the host)
@group(0) @binding(3) var<storage, read> wte: array<f32>;         // (V, C)

@compute @workgroup_size(64)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.N * p.C) {
        return;
    }
    let n = i / p.C;
    let ch = i % p.C;
    let id = min(ids[n], p.V - 1u);
    out[i] = wte[id * p.C + ch];
}
