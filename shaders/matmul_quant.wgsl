// Matrix products with a frozen weight W (N, K) that stays in its GGML format on the GPU and is
// dequantized inside the kernel, value for value as `io::ggml::dequantize` does on the CPU:
//
//   matmul_nt_<type>: y (M, N)  = alpha · x (M, K) · W (N, K)ᵀ + beta · y    forward y = x·Wᵀ
//   matmul_nn_<type>: dx (M, K) = alpha · dy (M, N) · W (N, K) + beta · dx   input grad dx = dy·W
//   matvec_nt_<type>: as matmul_nt_<type> for M ≤ 4 (decoding)
//   row_sumsq_<type>: out (N) = Σ_k W[n, k]², each row's squared norm (DoRA)
//   gather_<type>:    out (M, K) = rows ids[m] − v0 of W, for the ids in [v0, v0 + N): the token
//                     embedding lookup from one vocabulary part (rows of other ids are left alone)
//
// for <type> in f16, bf16, q8_0, q4_0, q4_1, q4_k, q6_k. M and N are arbitrary; K is a multiple of
// the type's block size (32 for q8_0, q4_0, q4_1; 256 for q4_k, q6_k; 8 for f16 and bf16).
// beta == 0 never reads the output, so it may hold garbage.
//
// The weight `w` is one array of u32 words, repacked on upload (`gpu::QuantTensor`). Rows run
// along N, blocks along K; block `b = row · (K / block size) + kb` of the whole tensor. Two
// regions: the quants from word 0, one run of words per block, and the metadata (scales) from
// word `p.meta_off`. Quants are in natural order: 4-bit values eight to a word, value i of the
// word in bits 4i..4i+3; 8-bit values four to a word, value i in bits 8i..8i+7.
//
//   type  quants (words per block)                    metadata                        bytes/block (GGML)
//   f16   K/2 words per row, value i in half i%2      none                            2 per value (2)
//   bf16  as f16; a bf16 is the top half of its f32    none                            2 per value (2)
//   q8_0  8: signed bytes, x = d·q                    d: f16, two blocks to a word    34 (34)
//   q4_0  4: nibbles, x = d·(q − 8)                   d: f16, two blocks to a word    18 (18)
//   q4_1  4: nibbles, x = d·q + m                     1 word: (d, m) f16 pair         20 (20)
//   q4_k  32: nibbles, 8 sub-blocks of 32,            5 words: (d, dmin) f16 pair;    148 (144)
//         x = (d·sc)·q − dmin·mn                      sc[0..8] bytes; mn[0..8] bytes
//   q6_k  48: 32 words of low nibbles, then 16 words  5 words: d as f32 bits;         212 (210)
//         of 2-bit high parts, 16 to a word,          sc[0..16] signed bytes
//         x = (d·sc[i/16])·(q − 32)
//
// Each invocation computes a register tile without workgroup memory (barriers are costly on CPU
// implementations of WebGPU): nt an 8×4 block of y, nn a 4×8 block of dx. Both walk W eight
// values of a row at a time through `deq8`, which reads the block's scales for each eight. The
// mat-vec computes one column of y for all M ≤ 4 rows, so decoding dequantizes and multiplies
// each weight once; at M = 1 it reads f16, q8_0, q4_0 and q4_1 quants as whole vec4s (binding 5,
// the same words) and each block's scales once, since CPU implementations pay per load.

struct Params {
    M: u32,
    N: u32,
    K: u32,
    alpha: f32,
    beta: f32,
    // First word of the metadata region of `w`.
    meta_off: u32,
    // gather: the id of row 0 of W.
    v0: u32,
    // The tiled products (matmul_quant_tiled.wgsl): the span of the contraction, and each
    // workgroup z's slice of it.
    c_begin: u32,
    c_end: u32,
    c_slice: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;  // nt: y (M, N); nn: dx (M, K)
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;    // nt: x (M, K)
@group(0) @binding(3) var<storage, read> w: array<u32>;          // W (N, K), layout above
@group(0) @binding(4) var<storage, read> dy: array<f32>;         // nn: dy (M, N)
@group(0) @binding(5) var<storage, read> w4: array<vec4<u32>>;   // matvec: the same words as w, four at a time
@group(0) @binding(6) var<storage, read> ids: array<u32>;        // gather: (M) token ids

// Weight types; the entry points pass them as constants, so each pipeline keeps one branch.
const F16: u32 = 0u;
const Q8_0: u32 = 1u;
const Q4_0: u32 = 2u;
const Q4_1: u32 = 3u;
const Q4_K: u32 = 4u;
const Q6_K: u32 = 5u;
const BF16: u32 = 6u;

// Eight consecutive values of one row of W.
struct W8 {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// ---------------------------------------------------------------------------------------------
// Unpacking helpers.

fn nibbles_lo(v: u32) -> vec4<u32> {
    return (vec4(v) >> vec4(0u, 4u, 8u, 12u)) & vec4(15u);
}

fn nibbles_hi(v: u32) -> vec4<u32> {
    return (vec4(v) >> vec4(16u, 20u, 24u, 28u)) & vec4(15u);
}

// The four signed bytes of a word, as f32.
fn bytes_i8(v: u32) -> vec4<f32> {
    return vec4<f32>(bitcast<vec4<i32>>(vec4(v) << vec4(24u, 16u, 8u, 0u)) >> vec4(24u));
}

// Byte i (0..3) of a word: unsigned, and sign-extended.
fn byte_u8(v: u32, i: u32) -> u32 {
    return (v >> (8u * i)) & 255u;
}

fn byte_i8(v: u32, i: u32) -> i32 {
    return bitcast<i32>(v << (24u - 8u * i)) >> 24u;
}

// The f16 scale of block b, two blocks to a metadata word.
fn half_scale(b: u32) -> f32 {
    let pair = unpack2x16float(w[p.meta_off + b / 2u]);
    return select(pair.x, pair.y, (b & 1u) == 1u);
}

// ---------------------------------------------------------------------------------------------
// Values 8·ch .. 8·ch + 7 of row `row` of W, one function per type.

// The two bf16 values of a word, as f32: each is the top half of its f32.
fn unpack2xbf16(v: u32) -> vec2<f32> {
    return vec2(bitcast<f32>(v << 16u), bitcast<f32>(v & 0xFFFF0000u));
}

// The eight 16-bit values of four words, as f32.
fn halves8(ty: u32, h: vec4<u32>) -> W8 {
    if (ty == BF16) {
        return W8(vec4(unpack2xbf16(h.x), unpack2xbf16(h.y)), vec4(unpack2xbf16(h.z), unpack2xbf16(h.w)));
    }
    return W8(vec4(unpack2x16float(h.x), unpack2x16float(h.y)), vec4(unpack2x16float(h.z), unpack2x16float(h.w)));
}

fn deq8_16bit(ty: u32, row: u32, ch: u32) -> W8 {
    let i = row * (p.K / 2u) + 4u * ch;
    return halves8(ty, vec4(w[i], w[i + 1u], w[i + 2u], w[i + 3u]));
}

fn deq8_q8_0(row: u32, ch: u32) -> W8 {
    let b = row * (p.K / 32u) + ch / 4u;
    let d = half_scale(b);
    let q = 8u * b + 2u * (ch % 4u);
    return W8(bytes_i8(w[q]) * d, bytes_i8(w[q + 1u]) * d);
}

fn deq8_q4_0(row: u32, ch: u32) -> W8 {
    let b = row * (p.K / 32u) + ch / 4u;
    let d = half_scale(b);
    let v = w[4u * b + ch % 4u];
    return W8(
        vec4<f32>(vec4<i32>(nibbles_lo(v)) - vec4(8)) * d,
        vec4<f32>(vec4<i32>(nibbles_hi(v)) - vec4(8)) * d,
    );
}

fn deq8_q4_1(row: u32, ch: u32) -> W8 {
    let b = row * (p.K / 32u) + ch / 4u;
    let dm = unpack2x16float(w[p.meta_off + b]);
    let v = w[4u * b + ch % 4u];
    return W8(vec4<f32>(nibbles_lo(v)) * dm.x + dm.y, vec4<f32>(nibbles_hi(v)) * dm.x + dm.y);
}

fn deq8_q4_k(row: u32, ch: u32) -> W8 {
    let b = row * (p.K / 256u) + ch / 32u;
    let sub = (ch % 32u) / 4u;
    let mb = p.meta_off + 5u * b;
    let dd = unpack2x16float(w[mb]);
    let d1 = dd.x * f32(byte_u8(w[mb + 1u + sub / 4u], sub % 4u));
    let m1 = dd.y * f32(byte_u8(w[mb + 3u + sub / 4u], sub % 4u));
    let v = w[32u * b + ch % 32u];
    return W8(d1 * vec4<f32>(nibbles_lo(v)) - m1, d1 * vec4<f32>(nibbles_hi(v)) - m1);
}

fn deq8_q6_k(row: u32, ch: u32) -> W8 {
    let b = row * (p.K / 256u) + ch / 32u;
    let c = ch % 32u;
    let mb = p.meta_off + 5u * b;
    let s = c / 2u;
    let ds = bitcast<f32>(w[mb]) * f32(byte_i8(w[mb + 1u + s / 4u], s % 4u));
    let lo = w[48u * b + c];
    let hi = vec4(w[48u * b + 32u + c / 2u] >> (16u * (c % 2u)));
    let q0 = nibbles_lo(lo) | (((hi >> vec4(0u, 2u, 4u, 6u)) & vec4(3u)) << vec4(4u));
    let q1 = nibbles_hi(lo) | (((hi >> vec4(8u, 10u, 12u, 14u)) & vec4(3u)) << vec4(4u));
    return W8(ds * vec4<f32>(vec4<i32>(q0) - vec4(32)), ds * vec4<f32>(vec4<i32>(q1) - vec4(32)));
}

fn deq8(ty: u32, row: u32, ch: u32) -> W8 {
    switch ty {
        case F16, BF16: { return deq8_16bit(ty, row, ch); }
        case Q8_0: { return deq8_q8_0(row, ch); }
        case Q4_0: { return deq8_q4_0(row, ch); }
        case Q4_1: { return deq8_q4_1(row, ch); }
        case Q4_K: { return deq8_q4_k(row, ch); }
        default: { return deq8_q6_k(row, ch); }
    }
}

// ---------------------------------------------------------------------------------------------
// The two tiles.

fn store(row: u32, col: u32, cols: u32, value: f32) {
    if (row >= p.M || col >= cols) {
        return;
    }
    let i = row * cols + col;
    if (p.beta == 0.0) {
        out[i] = p.alpha * value;
    } else {
        out[i] = p.alpha * value + p.beta * out[i];
    }
}

fn dot8(a: W8, b: W8) -> f32 {
    return dot(a.lo, b.lo) + dot(a.hi, b.hi);
}

// Values 8·ch .. 8·ch + 7 of row `row` of x (clamped to the last row).
fn x8(row: u32, ch: u32) -> W8 {
    let i = min(row, p.M - 1u) * (p.K / 4u) + 2u * ch;
    return W8(x[i], x[i + 1u]);
}

// y rows m0..m0+7, columns n0..n0+3.
fn nt_tile(ty: u32, gid: vec3<u32>) {
    let m0 = gid.y * 8u;
    let n0 = gid.x * 4u;
    if (m0 >= p.M || n0 >= p.N) {
        return;
    }
    // Rows past the edge are clamped for loading and dropped at the store.
    let n1 = min(n0 + 1u, p.N - 1u);
    let n2 = min(n0 + 2u, p.N - 1u);
    let n3 = min(n0 + 3u, p.N - 1u);
    var acc: array<vec4<f32>, 8>;
    for (var ch = 0u; ch < p.K / 8u; ch++) {
        let b0 = deq8(ty, n0, ch);
        let b1 = deq8(ty, n1, ch);
        let b2 = deq8(ty, n2, ch);
        let b3 = deq8(ty, n3, ch);
        for (var i = 0u; i < 8u; i++) {
            let a = x8(m0 + i, ch);
            acc[i] += vec4(dot8(a, b0), dot8(a, b1), dot8(a, b2), dot8(a, b3));
        }
    }
    for (var i = 0u; i < 8u; i++) {
        store(m0 + i, n0, p.N, acc[i].x);
        store(m0 + i, n0 + 1u, p.N, acc[i].y);
        store(m0 + i, n0 + 2u, p.N, acc[i].z);
        store(m0 + i, n0 + 3u, p.N, acc[i].w);
    }
}

// dy[row, n..n+3]; columns past N read as zero.
fn dy4(row: u32, n: u32) -> vec4<f32> {
    let r = min(row, p.M - 1u) * p.N;
    let last = p.N - 1u;
    return vec4(
        dy[r + n],
        select(0.0, dy[r + min(n + 1u, last)], n + 1u < p.N),
        select(0.0, dy[r + min(n + 2u, last)], n + 2u < p.N),
        select(0.0, dy[r + min(n + 3u, last)], n + 3u < p.N),
    );
}

fn axpy4(acc: W8, a: vec4<f32>, b0: W8, b1: W8, b2: W8, b3: W8) -> W8 {
    return W8(
        acc.lo + a.x * b0.lo + a.y * b1.lo + a.z * b2.lo + a.w * b3.lo,
        acc.hi + a.x * b0.hi + a.y * b1.hi + a.z * b2.hi + a.w * b3.hi,
    );
}

// dx rows m0..m0+3, columns 8·ch .. 8·ch + 7 (one chunk of eight, never past K).
fn nn_tile(ty: u32, gid: vec3<u32>) {
    let m0 = gid.y * 4u;
    let ch = gid.x;
    if (m0 >= p.M || 8u * ch >= p.K) {
        return;
    }
    let last = p.N - 1u;
    var acc0 = W8(vec4(0.0), vec4(0.0));
    var acc1 = acc0;
    var acc2 = acc0;
    var acc3 = acc0;
    for (var n = 0u; n < p.N; n += 4u) {
        let b0 = deq8(ty, n, ch);
        let b1 = deq8(ty, min(n + 1u, last), ch);
        let b2 = deq8(ty, min(n + 2u, last), ch);
        let b3 = deq8(ty, min(n + 3u, last), ch);
        acc0 = axpy4(acc0, dy4(m0, n), b0, b1, b2, b3);
        acc1 = axpy4(acc1, dy4(m0 + 1u, n), b0, b1, b2, b3);
        acc2 = axpy4(acc2, dy4(m0 + 2u, n), b0, b1, b2, b3);
        acc3 = axpy4(acc3, dy4(m0 + 3u, n), b0, b1, b2, b3);
    }
    var accs = array<W8, 4>(acc0, acc1, acc2, acc3);
    let k0 = 8u * ch;
    for (var i = 0u; i < 4u; i++) {
        let v = accs[i];
        for (var j = 0u; j < 4u; j++) {
            store(m0 + i, k0 + j, p.K, v.lo[j]);
            store(m0 + i, k0 + 4u + j, p.K, v.hi[j]);
        }
    }
}

// Row n of W times x over 32 values from 32·kb, for M = 1, reading the quants as whole vec4s
// (q8_0, q4_0, q4_1): CPU implementations pay per load more than per byte. The block's scale
// applies once: d·Σ q·x, then + m·Σ x (q4_1) or − 8d·Σ x (q4_0).
fn dot32(ty: u32, n: u32, kb: u32) -> f32 {
    let xi = 8u * kb;
    var acc = vec4(0.0);
    var xs = vec4(0.0);
    let b = n * (p.K / 32u) + kb;
    if (ty == Q8_0) {
        let q0 = w4[2u * b];
        let q1 = w4[2u * b + 1u];
        acc = bytes_i8(q0.x) * x[xi] + bytes_i8(q0.y) * x[xi + 1u] + bytes_i8(q0.z) * x[xi + 2u]
            + bytes_i8(q0.w) * x[xi + 3u] + bytes_i8(q1.x) * x[xi + 4u] + bytes_i8(q1.y) * x[xi + 5u]
            + bytes_i8(q1.z) * x[xi + 6u] + bytes_i8(q1.w) * x[xi + 7u];
        return half_scale(b) * (acc.x + acc.y + acc.z + acc.w);
    }
    let q = w4[b];
    for (var j = 0u; j < 4u; j++) {
        let lo = x[xi + 2u * j];
        let hi = x[xi + 2u * j + 1u];
        acc += vec4<f32>(nibbles_lo(q[j])) * lo + vec4<f32>(nibbles_hi(q[j])) * hi;
        xs += lo + hi;
    }
    let sq = acc.x + acc.y + acc.z + acc.w;
    let sx = xs.x + xs.y + xs.z + xs.w;
    if (ty == Q4_0) {
        let d = half_scale(b);
        return d * sq - 8.0 * d * sx;
    }
    let dm = unpack2x16float(w[p.meta_off + b]);
    return dm.x * sq + dm.y * sx;
}

// y rows 0..M-1 (M ≤ 4), column col.
fn nt_vec(ty: u32, col: u32) {
    // Columns past N are clamped for loading and dropped at the store: no early return, so the
    // loop runs in uniform control flow and x is read once for all invocations.
    let n = min(col, p.N - 1u);
    if (p.M == 1u && (ty == F16 || ty == BF16)) {
        // Eight 16-bit values, one vec4 of words, at a time.
        var acc = vec4(0.0);
        for (var ch = 0u; ch < p.K / 8u; ch++) {
            let h = halves8(ty, w4[n * (p.K / 8u) + ch]);
            acc += h.lo * x[2u * ch] + h.hi * x[2u * ch + 1u];
        }
        store(0u, col, p.N, acc.x + acc.y + acc.z + acc.w);
        return;
    }
    if (p.M == 1u && ty != Q4_K && ty != Q6_K) {
        var sum = 0.0;
        for (var kb = 0u; kb < p.K / 32u; kb++) {
            sum += dot32(ty, n, kb);
        }
        store(0u, col, p.N, sum);
        return;
    }
    if (p.M == 1u) {
        var acc = vec4(0.0);
        for (var ch = 0u; ch < p.K / 8u; ch++) {
            let b = deq8(ty, n, ch);
            acc += b.lo * x[2u * ch] + b.hi * x[2u * ch + 1u];
        }
        store(0u, col, p.N, acc.x + acc.y + acc.z + acc.w);
        return;
    }
    // Rows past M are clamped by x8 for loading and dropped at the store.
    var acc = vec4(0.0);
    for (var ch = 0u; ch < p.K / 8u; ch++) {
        let b = deq8(ty, n, ch);
        acc += vec4(dot8(x8(0u, ch), b), dot8(x8(1u, ch), b), dot8(x8(2u, ch), b), dot8(x8(3u, ch), b));
    }
    for (var i = 0u; i < 4u; i++) {
        store(i, col, p.N, acc[i]);
    }
}

// Embedding rows: invocation i copies values 8·ch .. 8·ch + 7 of token m's row, i = m · K/8 + ch.
fn gather(ty: u32, i: u32) {
    let chunks = p.K / 8u;
    if (i >= p.M * chunks) {
        return;
    }
    let m = i / chunks;
    let ch = i % chunks;
    let id = ids[m];
    if (id < p.v0 || id - p.v0 >= p.N) {
        return;
    }
    let v = deq8(ty, id - p.v0, ch);
    let o = m * p.K + 8u * ch;
    for (var j = 0u; j < 4u; j++) {
        out[o + j] = v.lo[j];
        out[o + 4u + j] = v.hi[j];
    }
}

// Row sums of squares: out (N) = Σ_k W[n, k]², invocation n (DoRA's ‖W_n‖²).
fn row_sumsq(ty: u32, n: u32) {
    if (n >= p.N) {
        return;
    }
    var acc = 0.0;
    for (var ch = 0u; ch < p.K / 8u; ch++) {
        let v = deq8(ty, n, ch);
        acc += dot(v.lo, v.lo) + dot(v.hi, v.hi);
    }
    out[n] = acc;
}

// The column of a mat-vec invocation: workgroups of 64 along x, continued along y past 65535.
fn column(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// ---------------------------------------------------------------------------------------------
// Entry points: one per (type, layout). nt: grid (N/4, M/8) invocations; nn: (K/8, M/4);
// matvec: N; gather: M·K/8; row_sumsq: N.

@compute @workgroup_size(8, 8)
fn matmul_nt_f16(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(F16, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_f16(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(F16, gid); }

@compute @workgroup_size(64)
fn matvec_nt_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(F16, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(F16, column(gid, nwg));
}

@compute @workgroup_size(8, 8)
fn matmul_nt_bf16(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(BF16, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_bf16(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(BF16, gid); }

@compute @workgroup_size(64)
fn matvec_nt_bf16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(BF16, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_bf16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(BF16, column(gid, nwg));
}

@compute @workgroup_size(8, 8)
fn matmul_nt_q8_0(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(Q8_0, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_q8_0(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(Q8_0, gid); }

@compute @workgroup_size(64)
fn matvec_nt_q8_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(Q8_0, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_q8_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(Q8_0, column(gid, nwg));
}

@compute @workgroup_size(8, 8)
fn matmul_nt_q4_0(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(Q4_0, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_q4_0(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(Q4_0, gid); }

@compute @workgroup_size(64)
fn matvec_nt_q4_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(Q4_0, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_q4_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(Q4_0, column(gid, nwg));
}

@compute @workgroup_size(8, 8)
fn matmul_nt_q4_1(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(Q4_1, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_q4_1(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(Q4_1, gid); }

@compute @workgroup_size(64)
fn matvec_nt_q4_1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(Q4_1, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_q4_1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(Q4_1, column(gid, nwg));
}

@compute @workgroup_size(8, 8)
fn matmul_nt_q4_k(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(Q4_K, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_q4_k(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(Q4_K, gid); }

@compute @workgroup_size(64)
fn matvec_nt_q4_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(Q4_K, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_q4_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(Q4_K, column(gid, nwg));
}

@compute @workgroup_size(8, 8)
fn matmul_nt_q6_k(@builtin(global_invocation_id) gid: vec3<u32>) { nt_tile(Q6_K, gid); }

@compute @workgroup_size(8, 8)
fn matmul_nn_q6_k(@builtin(global_invocation_id) gid: vec3<u32>) { nn_tile(Q6_K, gid); }

@compute @workgroup_size(64)
fn matvec_nt_q6_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    nt_vec(Q6_K, column(gid, nwg));
}

@compute @workgroup_size(64)
fn gather_q6_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    gather(Q6_K, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_f16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(F16, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_bf16(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(BF16, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_q8_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(Q8_0, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_q4_0(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(Q4_0, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_q4_1(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(Q4_1, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_q4_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(Q4_K, column(gid, nwg));
}

@compute @workgroup_size(64)
fn row_sumsq_q6_k(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    row_sumsq(Q6_K, column(gid, nwg));
}
