// Tiled products with a frozen weight W (N, K) kept in its GGML format, for GPUs (the tiled
// kernel family). This file is compiled appended to matmul_quant.wgsl, whose bindings, Params
// and `deq8` it uses:
//
//   matmul_nt_tiled_<type>: y (M, N)  = alpha · x (M, K) · W (N, K)ᵀ + beta · y    forward
//   matmul_nn_tiled_<type>: dx (M, K) = alpha · dy (M, N) · W (N, K) + beta · dx   input gradient
//
// The tiles of matmul_tiled.wgsl: a workgroup of 16×16 invocations computes 64×64 of the output
// and walks the contraction (K for nt, N for nn) in steps of 16, staging a 64×16 slice of the
// activations and a 16×64 slice of W in workgroup memory; each invocation adds the step to its
// 4×4 block. W is dequantized eight values at a time by half of the invocations, so each weight
// is read and dequantized once per 64 rows of the activations (matmul_quant.wgsl's register
// tiles read it once per 8 or 4 rows). Loads past an edge read zeros; stores past it are dropped.
//
// Workgroup z walks the slice [c_begin + z·c_slice, + c_slice) of the contraction span
// [c_begin, c_end) and writes output block z, as matmul_tiled.wgsl's split K (ops/matmul.rs).

const QT_TILE: u32 = 64u;
const QT_TILE4: u32 = 16u;
const QT_TK: u32 = 16u;

// K-major slices: qt_a[k * 16 + i] holds the tile's rows 4i..4i+3 of the activations at step
// row k, qt_b[k * 16 + j] its output columns 4j..4j+3 of W.
var<workgroup> qt_a: array<vec4<f32>, 256>;
var<workgroup> qt_b: array<vec4<f32>, 256>;

fn qt_range(z: u32) -> vec2<u32> {
    let begin = p.c_begin + z * p.c_slice;
    return vec2(begin, min(begin + p.c_slice, p.c_end));
}

// Eight values 8·ch.. of row n of W, zero past N or K.
fn qt_w8(ty: u32, n: u32, ch: u32) -> W8 {
    if (n >= p.N || 8u * ch >= p.K) {
        return W8(vec4(0.0), vec4(0.0));
    }
    return deq8(ty, n, ch);
}

// Writes a vec4 that runs along the contraction for tile row `row` at step rows k..k+3.
fn qt_store_a(k: u32, row: u32, v: vec4<f32>) {
    let i = k * QT_TILE4 + row / 4u;
    let c = row % 4u;
    qt_a[i][c] = v.x;
    qt_a[i + QT_TILE4][c] = v.y;
    qt_a[i + 2u * QT_TILE4][c] = v.z;
    qt_a[i + 3u * QT_TILE4][c] = v.w;
}

fn qt_accumulate(acc: ptr<function, array<vec4<f32>, 4>>, lid: vec3<u32>) {
    for (var k = 0u; k < QT_TK; k++) {
        let av = qt_a[k * QT_TILE4 + lid.y];
        let bv = qt_b[k * QT_TILE4 + lid.x];
        (*acc)[0] += av.x * bv;
        (*acc)[1] += av.y * bv;
        (*acc)[2] += av.z * bv;
        (*acc)[3] += av.w * bv;
    }
}

fn qt_store_block(wg: vec3<u32>, lid: vec3<u32>, cols: u32, acc: array<vec4<f32>, 4>) {
    let m0 = wg.y * QT_TILE + 4u * lid.y;
    let n0 = wg.x * QT_TILE + 4u * lid.x;
    let block = wg.z * p.M * cols;
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let row = m0 + i;
            let col = n0 + j;
            if (row < p.M && col < cols) {
                let o = block + row * cols + col;
                if (p.beta == 0.0) {
                    out[o] = p.alpha * acc[i][j];
                } else {
                    out[o] = p.alpha * acc[i][j] + p.beta * out[o];
                }
            }
        }
    }
}

// y = x·Wᵀ: the activations' slice is x's rows along K (invocation t loads row t / 4, the vec4
// at k0 + 4·(t % 4)); W's is 64 rows of W by 16 of K (invocation t < 128 dequantizes row t / 2,
// eight values at k0 + 8·(t % 2)), both transposed into K-major order.
fn nt_tiled(ty: u32, wg: vec3<u32>, lid: vec3<u32>) {
    let t = lid.y * QT_TILE4 + lid.x;
    let row = wg.y * QT_TILE + t / 4u;
    var acc: array<vec4<f32>, 4>;
    let span = qt_range(wg.z);
    for (var k0 = span.x; k0 < span.y; k0 += QT_TK) {
        let k = k0 + 4u * (t % 4u);
        var xv = vec4(0.0);
        if (row < p.M && k < p.K) {
            xv = x[(row * p.K + k) / 4u];
        }
        qt_store_a(4u * (t % 4u), t / 4u, xv);
        if (t < 128u) {
            let r = t / 2u;
            let half = t % 2u;
            let v = qt_w8(ty, wg.x * QT_TILE + r, k0 / 8u + half);
            let i = 8u * half * QT_TILE4 + r / 4u;
            let c = r % 4u;
            qt_b[i][c] = v.lo.x;
            qt_b[i + QT_TILE4][c] = v.lo.y;
            qt_b[i + 2u * QT_TILE4][c] = v.lo.z;
            qt_b[i + 3u * QT_TILE4][c] = v.lo.w;
            qt_b[i + 4u * QT_TILE4][c] = v.hi.x;
            qt_b[i + 5u * QT_TILE4][c] = v.hi.y;
            qt_b[i + 6u * QT_TILE4][c] = v.hi.z;
            qt_b[i + 7u * QT_TILE4][c] = v.hi.w;
        }
        workgroupBarrier();
        qt_accumulate(&acc, lid);
        workgroupBarrier();
    }
    qt_store_block(wg, lid, p.N, acc);
}

// dx = dy·W: the activations' slice is dy's rows along N (invocation t loads row t / 4, four
// values at n0 + 4·(t % 4)); W's is 16 rows of W by 64 of K, K-major already (invocation
// t < 128 dequantizes row n0 + t / 8, eight values at column 64·wg.x + 8·(t % 8)).
fn nn_tiled(ty: u32, wg: vec3<u32>, lid: vec3<u32>) {
    let t = lid.y * QT_TILE4 + lid.x;
    let row = wg.y * QT_TILE + t / 4u;
    var acc: array<vec4<f32>, 4>;
    let span = qt_range(wg.z);
    let last = p.N - 1u;
    for (var n0 = span.x; n0 < span.y; n0 += QT_TK) {
        let n = n0 + 4u * (t % 4u);
        var dv = vec4(0.0);
        if (row < p.M) {
            let r = row * p.N;
            dv = vec4(
                select(0.0, dy[r + min(n, last)], n < p.N),
                select(0.0, dy[r + min(n + 1u, last)], n + 1u < p.N),
                select(0.0, dy[r + min(n + 2u, last)], n + 2u < p.N),
                select(0.0, dy[r + min(n + 3u, last)], n + 3u < p.N),
            );
        }
        qt_store_a(4u * (t % 4u), t / 4u, dv);
        if (t < 128u) {
            let v = qt_w8(ty, n0 + t / 8u, wg.x * 8u + t % 8u);
            let i = (t / 8u) * QT_TILE4 + 2u * (t % 8u);
            qt_b[i] = v.lo;
            qt_b[i + 1u] = v.hi;
        }
        workgroupBarrier();
        qt_accumulate(&acc, lid);
        workgroupBarrier();
    }
    qt_store_block(wg, lid, p.K, acc);
}

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(F16, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_f16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(F16, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_bf16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(BF16, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_bf16(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(BF16, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_q8_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(Q8_0, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_q8_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(Q8_0, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_q4_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(Q4_0, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_q4_0(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(Q4_0, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_q4_1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(Q4_1, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_q4_1(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(Q4_1, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_q4_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(Q4_K, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_q4_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(Q4_K, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nt_tiled_q6_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nt_tiled(Q6_K, wg, lid); }

@compute @workgroup_size(16, 16)
fn matmul_nn_tiled_q6_k(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) { nn_tiled(Q6_K, wg, lid); }
