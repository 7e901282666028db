// Causal self-attention with grouped-query heads, flash style: the (T, T) score matrix is never
// stored. Forward keeps only the log-sum-exp of each query row; backward recomputes the
// probabilities from it. Query head h reads kv head h / (NH / NKV), as Hugging Face's repeat_kv.
//
// A row of the batch may hold several examples (packing): each token carries a segment id, a
// segment is a run of equal ids, and a query attends only to the keys of its own segment up to
// itself. A row with one segment is plain causal attention.
//
// One invocation per query row (forward, dq) or per key row and query head (dk, dv); HD % 4 == 0,
// HD ≤ 128.

struct Params {
    B: u32,
    T: u32,
    NH: u32,    // query heads
    NKV: u32,   // key/value heads
    HD: u32,    // head dim
    scale: f32, // 1 / sqrt(HD)
}

const MAX_HD4: u32 = 32u;   // HD / 4 ≤ 32

// HD / 4, set when the pipeline is made (ops/attention.rs): the loops over the head dim then have
// a fixed count, which a GPU's compiler unrolls, keeping the rows below in registers rather than
// in memory. Forward, decode, dq and dkv take it.
override HD4: u32;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<vec4<f32>>;   // forward: (B, T, NH, HD); dq: dq (B, T, NH, HD); dkv: dk's shares (B, T, NH, HD); dkv_reduce: dk (B, T, NKV, HD); kv_append: cache (T, NKV, HD)
@group(0) @binding(2) var<storage, read_write> stat: array<f32>;       // (2, B, NH, T): [0] lse of each query row, written by forward; [1] D = rowsum(dO ⊙ O), written by dq
@group(0) @binding(3) var<storage, read> q: array<vec4<f32>>;          // (B, T, NH, HD); kv_append: the new row (NKV, HD)
@group(0) @binding(4) var<storage, read> k: array<vec4<f32>>;          // (B, T, NKV, HD)
@group(0) @binding(5) var<storage, read> v: array<vec4<f32>>;          // (B, T, NKV, HD)
@group(0) @binding(6) var<storage, read> dout: array<vec4<f32>>;       // backward: dO (B, T, NH, HD)
@group(0) @binding(7) var<storage, read> o: array<vec4<f32>>;          // dq: O (B, T, NH, HD)
@group(0) @binding(8) var<storage, read> seg: array<u32>;              // forward, backward: (B, T) segment id of each token
@group(0) @binding(9) var<storage, read_write> dv: array<vec4<f32>>;   // dkv: dv's shares (B, T, NH, HD); dkv_reduce: dv (B, T, NKV, HD)
@group(0) @binding(10) var<storage, read> decode_pos: array<u32>;      // decode, kv_append: (1) position of the new token
@group(0) @binding(11) var<storage, read> dk_heads: array<vec4<f32>>;   // dkv_reduce: (B, T, NH, HD)
@group(0) @binding(12) var<storage, read> dv_heads: array<vec4<f32>>;   // dkv_reduce: (B, T, NH, HD)

fn q_row(b: u32, t: u32, h: u32) -> u32 {
    return ((b * p.T + t) * p.NH + h) * (p.HD / 4u);
}

fn kv_row(b: u32, t: u32, h: u32) -> u32 {
    return ((b * p.T + t) * p.NKV + h) * (p.HD / 4u);
}

// Index of the log-sum-exp of query row t of head h in `stat`; D's is this plus `d_offset()`.
fn stat_index(b: u32, h: u32, t: u32) -> u32 {
    return (b * p.NH + h) * p.T + t;
}

fn d_offset() -> u32 {
    return p.B * p.NH * p.T;
}

// The first column of the segment that column t of row b belongs to.
fn segment_start(b: u32, t: u32) -> u32 {
    let id = seg[b * p.T + t];
    var j = t;
    while (j > 0u && seg[b * p.T + j - 1u] == id) {
        j--;
    }
    return j;
}

// Attends query row qi (head h of batch b, at column t) over keys j0..=t of kv head hk:
// writes the output row and returns the log-sum-exp of the scores.
fn attend(qi: u32, b: u32, hk: u32, j0: u32, t: u32) -> f32 {
    let hd4 = HD4;
    var qv: array<vec4<f32>, MAX_HD4>;
    var acc: array<vec4<f32>, MAX_HD4>;
    for (var d = 0u; d < hd4; d++) {
        qv[d] = q[qi + d] * p.scale;
    }
    var m = -3.0e38;
    var l = 0.0;
    for (var j = j0; j <= t; j++) {
        let kj = kv_row(b, j, hk);
        var s = 0.0;
        for (var d = 0u; d < hd4; d++) {
            s += dot(qv[d], k[kj + d]);
        }
        let m_new = max(m, s);
        let corr = exp(m - m_new);
        let pj = exp(s - m_new);
        l = l * corr + pj;
        for (var d = 0u; d < hd4; d++) {
            acc[d] = acc[d] * corr + pj * v[kj + d];
        }
        m = m_new;
    }
    let inv_l = 1.0 / l;
    for (var d = 0u; d < hd4; d++) {
        out[qi + d] = acc[d] * inv_l;
    }
    return m + log(l);
}

@compute @workgroup_size(64)
fn attention_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;   // (b, h, t)
    if (i >= p.B * p.NH * p.T) {
        return;
    }
    let t = i % p.T;
    let h = (i / p.T) % p.NH;
    let b = i / (p.T * p.NH);
    stat[stat_index(b, h, t)] = attend(q_row(b, t, h), b, h / (p.NH / p.NKV), segment_start(b, t), t);
}

// Generation with a KV cache: one new query row per head, q (NH, HD), against the cached keys
// and values (T = cache length, B = 1) at positions 0..=pos[0].
@compute @workgroup_size(64)
fn attention_decode(@builtin(global_invocation_id) gid: vec3<u32>) {
    let h = gid.x;
    if (h >= p.NH) {
        return;
    }
    attend(h * (p.HD / 4u), 0u, h / (p.NH / p.NKV), 0u, decode_pos[0]);
}

// Writes the new key or value row (NKV·HD) into the cache at row pos[0].
@compute @workgroup_size(64)
fn kv_append(@builtin(global_invocation_id) gid: vec3<u32>) {
    let w = p.NKV * p.HD / 4u;
    if (gid.x >= w) {
        return;
    }
    out[decode_pos[0] * w + gid.x] = q[gid.x];
}

// dq_t = scale · Σ_j p_tj (dO_t·v_j − D_t) k_j over the keys j of t's segment up to t, with
// D_t = dO_t·O_t (also written for the dkv pass).
@compute @workgroup_size(64)
fn attention_backward_dq(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.B * p.NH * p.T) {
        return;
    }
    let t = i % p.T;
    let h = (i / p.T) % p.NH;
    let b = i / (p.T * p.NH);
    let hk = h / (p.NH / p.NKV);
    let hd4 = HD4;
    let qi = q_row(b, t, h);
    var qv: array<vec4<f32>, MAX_HD4>;
    var dov: array<vec4<f32>, MAX_HD4>;
    var acc: array<vec4<f32>, MAX_HD4>;
    var dsum = 0.0;
    for (var d = 0u; d < hd4; d++) {
        qv[d] = q[qi + d] * p.scale;
        dov[d] = dout[qi + d];
        dsum += dot(dov[d], o[qi + d]);
    }
    let si = stat_index(b, h, t);
    let lse_t = stat[si];
    for (var j = segment_start(b, t); j <= t; j++) {
        let kj = kv_row(b, j, hk);
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < hd4; d++) {
            s += dot(qv[d], k[kj + d]);
            dp += dot(dov[d], v[kj + d]);
        }
        let ds = exp(s - lse_t) * (dp - dsum);
        for (var d = 0u; d < hd4; d++) {
            acc[d] += ds * k[kj + d];
        }
    }
    for (var d = 0u; d < hd4; d++) {
        out[qi + d] = acc[d] * p.scale;
    }
    stat[d_offset() + si] = dsum;
}

// For key row j and query head h, over the rows t ≥ j of j's segment, head h's share of the
// gradients of key row j of kv head h / (NH / NKV):
//   dv_j += Σ_t p_tj dO_t,   dk_j += scale · Σ_t p_tj (dO_t·v_j − D_t) q_t
// written at (b, j, h) of `out` and `dv` in the query heads' layout (B, T, NH, HD). With one query
// head per kv head these are dk and dv; else `attention_dkv_reduce` sums each group's shares.
// One invocation per (b, h, j): a kv head's work spread over its query heads, so a GPU has
// NH·B·T invocations to run rather than NKV·B·T.
@compute @workgroup_size(64)
fn attention_backward_dkv(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;   // (b, h, j)
    if (i >= p.B * p.NH * p.T) {
        return;
    }
    let j = i % p.T;
    let h = (i / p.T) % p.NH;
    let b = i / (p.T * p.NH);
    let hd4 = HD4;
    let kj = kv_row(b, j, h / (p.NH / p.NKV));
    var kv: array<vec4<f32>, MAX_HD4>;
    var vv: array<vec4<f32>, MAX_HD4>;
    var dk: array<vec4<f32>, MAX_HD4>;
    var dvv: array<vec4<f32>, MAX_HD4>;
    for (var d = 0u; d < hd4; d++) {
        kv[d] = k[kj + d];
        vv[d] = v[kj + d];
    }
    let id = seg[b * p.T + j];
    for (var t = j; t < p.T && seg[b * p.T + t] == id; t++) {
        let qi = q_row(b, t, h);
        var s = 0.0;
        var dp = 0.0;
        for (var d = 0u; d < hd4; d++) {
            s += dot(q[qi + d], kv[d]);
            dp += dot(dout[qi + d], vv[d]);
        }
        let si = stat_index(b, h, t);
        let pr = exp(s * p.scale - stat[si]);
        let ds = pr * (dp - stat[d_offset() + si]);
        for (var d = 0u; d < hd4; d++) {
            dvv[d] += pr * dout[qi + d];
            dk[d] += ds * q[qi + d];
        }
    }
    let oj = q_row(b, j, h);
    for (var d = 0u; d < hd4; d++) {
        out[oj + d] = dk[d] * p.scale;
        dv[oj + d] = dvv[d];
    }
}

// dk, dv (B, T, NKV, HD) = the sums of `attention_backward_dkv`'s shares over each kv head's
// query heads, in order. One invocation per vec4 of dk.
@compute @workgroup_size(64)
fn attention_dkv_reduce(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;   // ((b, t, hk), d)
    let hd4 = p.HD / 4u;
    if (i >= p.B * p.T * p.NKV * hd4) {
        return;
    }
    let d = i % hd4;
    let row = i / hd4;
    let group = p.NH / p.NKV;
    let first = ((row / p.NKV) * p.NH + (row % p.NKV) * group) * hd4 + d;
    var sk = vec4(0.0);
    var sv = vec4(0.0);
    for (var g = 0u; g < group; g++) {
        sk += dk_heads[first + g * hd4];
        sv += dv_heads[first + g * hd4];
    }
    out[i] = sk;
    dv[i] = sv;
}
