// Matrix products for training, register-tiled: each invocation computes a 4×4 block of C with
// vec4 loads and no workgroup memory (barriers are costly on CPU implementations of WebGPU).
//
//   matmul_nt: C (M, N) = alpha · A (M, K) · B (N, K)ᵀ + beta · C    forward y = x·Wᵀ; needs K % 4 == 0
//   matmul_nn: C (M, N) = alpha · A (M, K) · B (K, N)  + beta · C    input grad dx = dy·W; needs K, N % 4 == 0
//   matmul_tn: C (M, N) = alpha · A (K, M)ᵀ · B (K, N) + beta · C    weight grad dW = dyᵀ·x; needs M, N % 4 == 0
//   matvec_nt: as matmul_nt for M ≤ 4 (decoding): one invocation per column of C     needs K % 4 == 0
//
// Every matrix is row-major and dense. beta == 0 never reads C, so C may hold garbage. The matmuls
// add the products over k in [k_begin, k_end) only (multiples of 4, or K): long products are
// recorded as several dispatches, the later ones with beta = 1 (ops/matmul.rs). The mat-vec
// walks all of K.

struct Params {
    M: u32,
    N: u32,
    K: u32,
    alpha: f32,
    beta: f32,
    k_begin: u32,
    k_end: u32,
    k_slice: u32,   // split K: the tiled family only
    slices: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;

fn store(row: u32, col: u32, value: f32) {
    if (row >= p.M || col >= p.N) {
        return;
    }
    let i = row * p.N + col;
    if (p.beta == 0.0) {
        c[i] = p.alpha * value;
    } else {
        c[i] = p.alpha * value + p.beta * c[i];
    }
}

fn store_block(m0: u32, n0: u32, acc: array<vec4<f32>, 4>) {
    for (var i = 0u; i < 4u; i++) {
        store(m0 + i, n0, acc[i].x);
        store(m0 + i, n0 + 1u, acc[i].y);
        store(m0 + i, n0 + 2u, acc[i].z);
        store(m0 + i, n0 + 3u, acc[i].w);
    }
}

@compute @workgroup_size(8, 8)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    if (m0 >= p.M || n0 >= p.N) {
        return;
    }
    let k4 = p.K / 4u;
    // Rows past the edge are clamped for loading and dropped at the store.
    let ra0 = m0 * k4;
    let ra1 = min(m0 + 1u, p.M - 1u) * k4;
    let ra2 = min(m0 + 2u, p.M - 1u) * k4;
    let ra3 = min(m0 + 3u, p.M - 1u) * k4;
    let rb0 = n0 * k4;
    let rb1 = min(n0 + 1u, p.N - 1u) * k4;
    let rb2 = min(n0 + 2u, p.N - 1u) * k4;
    let rb3 = min(n0 + 3u, p.N - 1u) * k4;
    var acc: array<vec4<f32>, 4>;
    for (var k = p.k_begin / 4u; k < p.k_end / 4u; k++) {
        let b0 = b[rb0 + k];
        let b1 = b[rb1 + k];
        let b2 = b[rb2 + k];
        let b3 = b[rb3 + k];
        let a0 = a[ra0 + k];
        acc[0] += vec4(dot(a0, b0), dot(a0, b1), dot(a0, b2), dot(a0, b3));
        let a1 = a[ra1 + k];
        acc[1] += vec4(dot(a1, b0), dot(a1, b1), dot(a1, b2), dot(a1, b3));
        let a2 = a[ra2 + k];
        acc[2] += vec4(dot(a2, b0), dot(a2, b1), dot(a2, b2), dot(a2, b3));
        let a3 = a[ra3 + k];
        acc[3] += vec4(dot(a3, b0), dot(a3, b1), dot(a3, b2), dot(a3, b3));
    }
    store_block(m0, n0, acc);
}

@compute @workgroup_size(8, 8)
fn matmul_nn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    if (m0 >= p.M || n0 >= p.N) {
        return;
    }
    let k4 = p.K / 4u;
    let n4 = p.N / 4u;
    let col = n0 / 4u;
    let ra0 = m0 * k4;
    let ra1 = min(m0 + 1u, p.M - 1u) * k4;
    let ra2 = min(m0 + 2u, p.M - 1u) * k4;
    let ra3 = min(m0 + 3u, p.M - 1u) * k4;
    var acc: array<vec4<f32>, 4>;
    for (var k = p.k_begin / 4u; k < p.k_end / 4u; k++) {
        let row = 4u * k * n4 + col;
        let b0 = b[row];
        let b1 = b[row + n4];
        let b2 = b[row + 2u * n4];
        let b3 = b[row + 3u * n4];
        let a0 = a[ra0 + k];
        acc[0] += a0.x * b0 + a0.y * b1 + a0.z * b2 + a0.w * b3;
        let a1 = a[ra1 + k];
        acc[1] += a1.x * b0 + a1.y * b1 + a1.z * b2 + a1.w * b3;
        let a2 = a[ra2 + k];
        acc[2] += a2.x * b0 + a2.y * b1 + a2.z * b2 + a2.w * b3;
        let a3 = a[ra3 + k];
        acc[3] += a3.x * b0 + a3.y * b1 + a3.z * b2 + a3.w * b3;
    }
    store_block(m0, n0, acc);
}

@compute @workgroup_size(8, 8)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let n0 = gid.x * 4u;
    if (m0 >= p.M || n0 >= p.N) {
        return;
    }
    let m4 = p.M / 4u;
    let n4 = p.N / 4u;
    let colm = m0 / 4u;
    let coln = n0 / 4u;
    var acc: array<vec4<f32>, 4>;
    for (var k = p.k_begin; k < p.k_end; k++) {
        let av = a[k * m4 + colm];
        let bv = b[k * n4 + coln];
        acc[0] += av.x * bv;
        acc[1] += av.y * bv;
        acc[2] += av.z * bv;
        acc[3] += av.w * bv;
    }
    store_block(m0, n0, acc);
}

// Mat-vec for decoding (M ≤ 4): one invocation per column n of C walks K once, reading row n
// of B once for every row of A. The 4×4 tiles above would compute four rows of A where decoding
// has one; here M == 1 costs one product per weight. Grid: N invocations, 64 to a workgroup.
@compute @workgroup_size(64)
fn matvec_nt(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    // Columns past N are clamped for loading and dropped at the store: no early return, so the
    // loop runs in uniform control flow and A is read once for all invocations.
    let col = gid.x + gid.y * nwg.x * 64u;
    let n = min(col, p.N - 1u);
    let k4 = p.K / 4u;
    let rb = n * k4;
    if (p.M == 1u) {
        var acc = vec4(0.0);
        for (var k = 0u; k < k4; k++) {
            acc += a[k] * b[rb + k];
        }
        store(0u, col, acc.x + acc.y + acc.z + acc.w);
        return;
    }
    // Rows past M are clamped for loading and dropped at the store.
    let ra1 = min(1u, p.M - 1u) * k4;
    let ra2 = min(2u, p.M - 1u) * k4;
    let ra3 = min(3u, p.M - 1u) * k4;
    var acc = vec4(0.0);
    for (var k = 0u; k < k4; k++) {
        let bv = b[rb + k];
        acc += vec4(dot(a[k], bv), dot(a[ra1 + k], bv), dot(a[ra2 + k], bv), dot(a[ra3 + k], bv));
    }
    store(0u, col, acc.x);
    store(1u, col, acc.y);
    store(2u, col, acc.z);
    store(3u, col, acc.w);
}
