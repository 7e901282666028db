// DoRA (weight-decomposed LoRA, as PEFT's `use_dora=True`): a linear layer with frozen W (N, K),
// LoRA A (R, K), B (N, R), scaling s and magnitude m (N) computes
//
//   y = m / ‖W + s·B·A‖ ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ)
//
// where the norm is of each output row (over K) and is a constant for the gradients (PEFT
// detaches it). Here N is the layer's output width, K its input width and M the rows of x.
// The norm is computed from three terms, none of which needs W in f32:
//
//   ‖W_j + s·(B·A)_j‖² = ‖W_j‖² + 2s·Σ_r B_jr·(A·Wᵀ)_rj + s²·Σ_rq B_jr·(A·Aᵀ)_rq·B_jq
//
// with ‖W_j‖² from `row_sumsq` (or `row_sumsq_<type>` of matmul_quant.wgsl for a weight kept
// in a GGML type) and A·Wᵀ from the frozen matmul. The per-column factors live in one buffer
// sc (2, N): row 0 is m / ‖·‖ (the scale), row 1 is 1 / ‖·‖.
//
//   row_sumsq:      out (N) = Σ_k W[j, k]²                   (W f32)
//   dora_norm:      out = sc (2, N) from wsq, A·Wᵀ, A·Aᵀ, B and m
//   dora_magnitude: out = m (N) = ‖W + s·B·A‖, PEFT's initial magnitude
//   dora_forward:   out = y (M, N) = beta·y + sc[0, j]·t[i, j]
//   dora_scale_dy:  out = dys (M, N) = sc[0, j]·dy[i, j]
//   dora_dmag:      out = dm (N) += Σ_i dy[i, j]·t[i, j]·sc[1, j]
//   dora_scale_rows: out = W (N, K), row j times sc[0, j]       (merging)

struct Params {
    M: u32,
    N: u32,
    K: u32,
    R: u32,
    s: f32,
    beta: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // see the table above
@group(0) @binding(2) var<storage, read> a: array<f32>;         // row_sumsq: W (N, K); norm, magnitude: wsq (N); forward: t (M, N); scale_dy, dmag: dy (M, N)
@group(0) @binding(3) var<storage, read> sc: array<f32>;        // (2, N)
@group(0) @binding(4) var<storage, read> aw: array<f32>;        // A·Wᵀ (R, N)
@group(0) @binding(5) var<storage, read> aa: array<f32>;        // A·Aᵀ (R, R)
@group(0) @binding(6) var<storage, read> b: array<f32>;         // B (N, R)
@group(0) @binding(7) var<storage, read> mag: array<f32>;       // m (N)
@group(0) @binding(8) var<storage, read> t: array<f32>;         // dmag: t (M, N)

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

@compute @workgroup_size(64)
fn row_sumsq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    if (j >= p.N) {
        return;
    }
    var acc = 0.0;
    for (var k = 0u; k < p.K; k++) {
        let v = a[j * p.K + k];
        acc += v * v;
    }
    out[j] = acc;
}

// ‖W_j + s·(B·A)_j‖ from its three terms (never below zero when rounding makes the sum so).
fn norm(j: u32) -> f32 {
    var cross = 0.0;
    var bab = 0.0;
    for (var r = 0u; r < p.R; r++) {
        let bjr = b[j * p.R + r];
        cross += bjr * aw[r * p.N + j];
        var row = 0.0;
        for (var q = 0u; q < p.R; q++) {
            row += aa[r * p.R + q] * b[j * p.R + q];
        }
        bab += bjr * row;
    }
    return sqrt(max(a[j] + 2.0 * p.s * cross + p.s * p.s * bab, 0.0));
}

@compute @workgroup_size(64)
fn dora_norm(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    if (j >= p.N) {
        return;
    }
    let inv = 1.0 / norm(j);
    out[j] = mag[j] * inv;
    out[p.N + j] = inv;
}

@compute @workgroup_size(64)
fn dora_magnitude(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    if (j < p.N) {
        out[j] = norm(j);
    }
}

@compute @workgroup_size(64)
fn dora_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.M * p.N) {
        return;
    }
    let v = sc[i % p.N] * a[i];
    // beta == 0 never reads y, which may hold garbage.
    out[i] = select(v, p.beta * out[i] + v, p.beta != 0.0);
}

@compute @workgroup_size(64)
fn dora_scale_dy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.M * p.N) {
        out[i] = sc[i % p.N] * a[i];
    }
}

@compute @workgroup_size(64)
fn dora_dmag(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let j = index(gid, nwg);
    if (j >= p.N) {
        return;
    }
    var acc = 0.0;
    for (var i = 0u; i < p.M; i++) {
        acc += a[i * p.N + j] * t[i * p.N + j];
    }
    out[j] += acc * sc[p.N + j];
}

@compute @workgroup_size(64)
fn dora_scale_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.N * p.K) {
        out[i] *= sc[i / p.K];
    }
}
