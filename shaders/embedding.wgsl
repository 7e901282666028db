// Token embedding gather from one vocabulary part of the table: the rows of ids in
// [v0, v0 + Vp) are copied, the others left for the dispatches of the other parts. The table is
// frozen, so there is no backward kernel: the gradient stops at the first layer's input.

struct Params {
    N: u32,    // tokens (B·T)
    C: u32,    // channels
    V: u32,    // vocabulary
    v0: u32,   // first id of this part
    Vp: u32,   // ids in this part
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;   // (N, C)
@group(0) @binding(2) var<storage, read> ids: array<u32>;         // (N), each < V (checked on the host)
@group(0) @binding(3) var<storage, read> wte: array<f32>;         // (Vp, C): rows v0..v0 + Vp

@compute @workgroup_size(64)
fn embedding_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.N * p.C) {
        return;
    }
    let n = i / p.C;
    let ch = i % p.C;
    let id = min(ids[n], p.V - 1u);
    if (id < p.v0 || id >= p.v0 + p.Vp) {
        return;
    }
    out[i] = wte[(id - p.v0) * p.C + ch];
}
