// Matrix products for training on GPUs, tiled in workgroup memory: a workgroup of 16×16
// invocations computes a 64×64 tile of C and walks K in steps of 16. At each step it loads a
// 64×16 slice of A and a 16×64 slice of B into workgroup memory (one vec4 of each per
// invocation), waits at a barrier, and each invocation adds the step to its 4×4 block of C.
// The same products, constraints and alpha/beta semantics as matmul.wgsl (the family for CPU
// implementations of WebGPU, which has no workgroup memory):
//
//   matmul_nt_tiled: C (M, N) = alpha · A (M, K) · B (N, K)ᵀ + beta · C    needs K % 4 == 0
//   matmul_nn_tiled: C (M, N) = alpha · A (M, K) · B (K, N)  + beta · C    needs K, N % 4 == 0
//   matmul_tn_tiled: C (M, N) = alpha · A (K, M)ᵀ · B (K, N) + beta · C    needs M, N % 4 == 0
//
// Every matrix is row-major and dense. beta == 0 never reads C, so C may hold garbage. Loads past
// an edge of A or B read zeros, so ragged M, N and K need no special case; stores past the edge
// of C are dropped. Workgroup memory: 2 × 4 KiB, within WebGPU's default 16 KiB.
//
// A dispatch adds the products over k in [k_begin, k_end) only, k_begin a multiple of 16 and
// k_end either a multiple of 16 or K: long products are recorded as several dispatches, the later
// ones with beta = 1 (ops/matmul.rs).
//
// Split K: workgroup z walks its own slice of that span, [k_begin + z·k_slice, + k_slice), and
// writes its partial product to c's block z (c then holds `slices` blocks of M·N). `matmul_reduce`
// sums the blocks into the real C with alpha and beta. A product with few tiles of C and a long
// K (the head's input gradient, 64 rows × 576 columns over a vocabulary part; LoRA's rank-wide
// gradients) would otherwise keep most of a GPU idle. One slice is the plain product: k_slice
// covers the span and z is 0.

struct Params {
    M: u32,
    N: u32,
    K: u32,
    alpha: f32,
    beta: f32,
    k_begin: u32,
    k_end: u32,
    k_slice: u32,
    slices: u32,   // matmul_reduce: how many partial blocks
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> parts: array<f32>;   // matmul_reduce: (slices, M, N)

const TILE: u32 = 64u;   // rows and columns of C per workgroup
const TILE4: u32 = 16u;  // TILE / 4: vec4s across the tile, and invocations along each side
const TK: u32 = 16u;     // K per step

// The step's slices, K-major: a_tile[k * TILE4 + i] holds the tile's rows 4i..4i+3 of A at k,
// b_tile[k * TILE4 + j] its columns 4j..4j+3 of B at k.
var<workgroup> a_tile: array<vec4<f32>, 256>;   // (TK, TILE / 4)
var<workgroup> b_tile: array<vec4<f32>, 256>;   // (TK, TILE / 4)

// The vec4 at (row, k4) of a row-major (rows, K) matrix seen as vec4s along K, zero outside.
fn load_a_row(row: u32, k4: u32) -> vec4<f32> {
    let kv = p.K / 4u;
    if (row >= p.M || k4 >= kv) {
        return vec4(0.0);
    }
    return a[row * kv + k4];
}

fn load_b_row(row: u32, k4: u32) -> vec4<f32> {
    let kv = p.K / 4u;
    if (row >= p.N || k4 >= kv) {
        return vec4(0.0);
    }
    return b[row * kv + k4];
}

// The vec4 at (k, col4) of a row-major (K, cols) matrix seen as vec4s along its columns.
fn load_a_col(k: u32, col4: u32) -> vec4<f32> {
    let mv = p.M / 4u;
    if (k >= p.K || col4 >= mv) {
        return vec4(0.0);
    }
    return a[k * mv + col4];
}

fn load_b_col(k: u32, col4: u32) -> vec4<f32> {
    let nv = p.N / 4u;
    if (k >= p.K || col4 >= nv) {
        return vec4(0.0);
    }
    return b[k * nv + col4];
}

// A slice whose rows run along K (A in nt and nn, B in nt) is loaded by invocation t as tile row
// t / 4, the vec4 of K at 4·(t % 4) in the step: four consecutive invocations read 64 contiguous
// bytes. The vec4 runs along K, so it is written transposed into the K-major tile: the tile's
// element (k, r) is component r % 4 of tile[k * TILE4 + r / 4].
fn tile_index_transposed(t: u32) -> vec2<u32> {
    let row = t / 4u;
    return vec2((t % 4u) * 4u * TILE4 + row / 4u, row % 4u);
}

fn store_a_transposed(t: u32, v: vec4<f32>) {
    let at = tile_index_transposed(t);
    a_tile[at.x][at.y] = v.x;
    a_tile[at.x + TILE4][at.y] = v.y;
    a_tile[at.x + 2u * TILE4][at.y] = v.z;
    a_tile[at.x + 3u * TILE4][at.y] = v.w;
}

fn store_b_transposed(t: u32, v: vec4<f32>) {
    let at = tile_index_transposed(t);
    b_tile[at.x][at.y] = v.x;
    b_tile[at.x + TILE4][at.y] = v.y;
    b_tile[at.x + 2u * TILE4][at.y] = v.z;
    b_tile[at.x + 3u * TILE4][at.y] = v.w;
}

// Adds one step's slices to the invocation's 4×4 block: rows 4·lid.y.., columns 4·lid.x.. of the tile.
fn accumulate(acc: ptr<function, array<vec4<f32>, 4>>, lid: vec3<u32>) {
    for (var k = 0u; k < TK; k++) {
        let av = a_tile[k * TILE4 + lid.y];
        let bv = b_tile[k * TILE4 + lid.x];
        (*acc)[0] += av.x * bv;
        (*acc)[1] += av.y * bv;
        (*acc)[2] += av.z * bv;
        (*acc)[3] += av.w * bv;
    }
}

fn store(row: u32, col: u32, block: u32, value: f32) {
    if (row >= p.M || col >= p.N) {
        return;
    }
    let i = block * p.M * p.N + row * p.N + col;
    if (p.beta == 0.0) {
        c[i] = p.alpha * value;
    } else {
        c[i] = p.alpha * value + p.beta * c[i];
    }
}

fn store_block(wg: vec3<u32>, lid: vec3<u32>, acc: array<vec4<f32>, 4>) {
    let m0 = wg.y * TILE + 4u * lid.y;
    let n0 = wg.x * TILE + 4u * lid.x;
    for (var i = 0u; i < 4u; i++) {
        store(m0 + i, n0, wg.z, acc[i].x);
        store(m0 + i, n0 + 1u, wg.z, acc[i].y);
        store(m0 + i, n0 + 2u, wg.z, acc[i].z);
        store(m0 + i, n0 + 3u, wg.z, acc[i].w);
    }
}

// The span of K that workgroup z walks: its slice of [k_begin, k_end).
fn k_range(z: u32) -> vec2<u32> {
    let begin = p.k_begin + z * p.k_slice;
    return vec2(begin, min(begin + p.k_slice, p.k_end));
}

// Every invocation runs the K loop to the end (no early return), so the barriers are reached in
// uniform control flow.
@compute @workgroup_size(16, 16)
fn matmul_nt_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * TILE4 + lid.x;
    let row = t / 4u;
    var acc: array<vec4<f32>, 4>;
    let span = k_range(wg.z);
    for (var k0 = span.x; k0 < span.y; k0 += TK) {
        store_a_transposed(t, load_a_row(wg.y * TILE + row, k0 / 4u + t % 4u));
        store_b_transposed(t, load_b_row(wg.x * TILE + row, k0 / 4u + t % 4u));
        workgroupBarrier();
        accumulate(&acc, lid);
        workgroupBarrier();
    }
    store_block(wg, lid, acc);
}

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * TILE4 + lid.x;
    let row = t / 4u;
    var acc: array<vec4<f32>, 4>;
    let span = k_range(wg.z);
    for (var k0 = span.x; k0 < span.y; k0 += TK) {
        store_a_transposed(t, load_a_row(wg.y * TILE + row, k0 / 4u + t % 4u));
        // B's slice is K-major already: invocation t loads its row lid.y, vec4 column lid.x.
        b_tile[t] = load_b_col(k0 + lid.y, wg.x * TILE4 + lid.x);
        workgroupBarrier();
        accumulate(&acc, lid);
        workgroupBarrier();
    }
    store_block(wg, lid, acc);
}

@compute @workgroup_size(16, 16)
fn matmul_tn_tiled(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let t = lid.y * TILE4 + lid.x;
    var acc: array<vec4<f32>, 4>;
    let span = k_range(wg.z);
    for (var k0 = span.x; k0 < span.y; k0 += TK) {
        a_tile[t] = load_a_col(k0 + lid.y, wg.y * TILE4 + lid.x);
        b_tile[t] = load_b_col(k0 + lid.y, wg.x * TILE4 + lid.x);
        workgroupBarrier();
        accumulate(&acc, lid);
        workgroupBarrier();
    }
    store_block(wg, lid, acc);
}

// c (M, N) = alpha · Σ_z parts[z] + beta · c: the end of a split-K product, one invocation per
// element of C, the blocks summed in order (the same sum on every run).
@compute @workgroup_size(64)
fn matmul_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    let mn = p.M * p.N;
    if (i >= mn) {
        return;
    }
    var sum = 0.0;
    for (var z = 0u; z < p.slices; z++) {
        sum += parts[z * mn + i];
    }
    if (p.beta == 0.0) {
        c[i] = p.alpha * sum;
    } else {
        c[i] = p.alpha * sum + p.beta * c[i];
    }
}
