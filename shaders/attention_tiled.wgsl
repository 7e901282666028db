// Attention for GPUs (the tiled kernel family): the same products as attention.wgsl, to which
// this file is compiled appended (its Params, bindings, HD4 and index helpers), with each row's
// work spread over a workgroup's invocations. One invocation per row walks its row's keys (or
// queries) alone: a batch of 4 × 256 tokens with 9 heads is 9,216 invocations, a few per
// multiprocessor of a large GPU, each waiting on its loads in turn.
//
// Here a workgroup of 64 invocations takes ROWS = 64 / LANES consecutive rows of one (b, head),
// LANES = HD / 4 rounded up to a power of two invocations per row. It walks the rows' keys (or
// queries) in blocks of LANES: lane l first computes the whole dot products of its row with
// entry l of the block, shares them through workgroup memory, then adds the block's products
// to its own vec4 l of the row's head dim. Dot products and the online softmax give the same
// values as attention.wgsl, summed in another order.

const WG: u32 = 64u;

var<workgroup> w_row: array<vec4<f32>, 64>;   // (ROWS, LANES): each row's q (forward, dq) or k (dkv)
var<workgroup> w_row2: array<vec4<f32>, 64>;  // (ROWS, LANES): dq: each row's dO; dkv: each row's v
var<workgroup> w_a: array<f32, 64>;           // (ROWS, LANES): per block entry: score, ds or p
var<workgroup> w_b: array<f32, 64>;           // (ROWS, LANES): dkv: per block entry: ds
var<workgroup> w_edge: array<u32, 64>;        // (ROWS): each row's segment start (forward, dq) or last query (dkv)

// HD4 rounded up to a power of two (at most 32).
fn lanes() -> u32 {
    return 1u << (32u - countLeadingZeros(HD4 - 1u));
}

// The last query row t ≥ j of j's segment.
fn segment_end(b: u32, j: u32) -> u32 {
    let id = seg[b * p.T + j];
    var t = j;
    while (t + 1u < p.T && seg[b * p.T + t + 1u] == id) {
        t++;
    }
    return t;
}

// The workgroup's (b, head, first row), or T as first row when it has no rows (past the grid).
fn tile_of(wg: vec3<u32>, nwg: vec3<u32>, heads: u32, rows: u32) -> vec3<u32> {
    let w = wg.x + wg.y * nwg.x;
    let blocks = (p.T + rows - 1u) / rows;
    if (w >= p.B * heads * blocks) {
        return vec3(0u, 0u, p.T);
    }
    return vec3(w / (blocks * heads), (w / blocks) % heads, (w % blocks) * rows);
}

// An invocation's place in its workgroup's tile: its row r of the tile and lane l, the row's
// index (`ok` when it is inside T; `at` is it clamped there, for loads).
struct Lane {
    r: u32,
    l: u32,
    row: u32,
    ok: bool,
    at: u32,
}

fn lane_of(li: u32, n: u32, first: u32) -> Lane {
    let r = li / n;
    let row = first + r;
    return Lane(r, li % n, row, r < WG / n && row < p.T, min(row, p.T - 1u));
}

// Sum over the block entries of row r held in w_a.
fn row_sum(r: u32, n: u32) -> f32 {
    var s = 0.0;
    for (var e = 0u; e < n; e++) {
        s += w_a[r * n + e];
    }
    return s;
}

@compute @workgroup_size(64)
fn attention_forward_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n = lanes();
    let rows = WG / n;
    let tile = tile_of(wg, nwg, p.NH, rows);
    if (tile.z >= p.T) {
        return;
    }
    let b = tile.x;
    let h = tile.y;
    let me = lane_of(li, n, tile.z);
    let r = me.r;
    let l = me.l;
    let t = me.row;
    let ok = me.ok;
    let tc = me.at;
    let hk = h / (p.NH / p.NKV);
    if (l < HD4) {
        w_row[li] = q[q_row(b, tc, h) + l] * p.scale;
    }
    if (l == 0u) {
        w_edge[r] = segment_start(b, tc);
    }
    // Rows' segment starts never decrease with t: the first row's is the workgroup's lowest key.
    let lo = workgroupUniformLoad(&w_edge[0]);
    let hi = min(tile.z + rows, p.T) - 1u;
    let start = w_edge[r];
    var m = -3.0e38;
    var sum = 0.0;
    var acc = vec4(0.0);
    for (var j0 = lo; j0 <= hi; j0 += n) {
        let j = j0 + l;
        var s = -3.0e38;
        if (ok && j >= start && j <= t) {
            let kj = kv_row(b, j, hk);
            s = 0.0;
            for (var d = 0u; d < HD4; d++) {
                s += dot(w_row[r * n + d], k[kj + d]);
            }
        }
        w_a[li] = s;
        workgroupBarrier();
        var m_new = m;
        for (var e = 0u; e < n; e++) {
            m_new = max(m_new, w_a[r * n + e]);
        }
        let corr = exp(m - m_new);
        var psum = 0.0;
        var pv = vec4(0.0);
        for (var e = 0u; e < n; e++) {
            let se = w_a[r * n + e];
            if (se > -1.0e38) {
                let pe = exp(se - m_new);
                psum += pe;
                if (l < HD4) {
                    pv += pe * v[kv_row(b, j0 + e, hk) + l];
                }
            }
        }
        sum = sum * corr + psum;
        acc = acc * corr + pv;
        m = m_new;
        workgroupBarrier();
    }
    if (ok && l < HD4) {
        out[q_row(b, t, h) + l] = acc / sum;
    }
    if (ok && l == 0u) {
        stat[stat_index(b, h, t)] = m + log(sum);
    }
}

// dq_t = scale · Σ_j p_tj (dO_t·v_j − D_t) k_j, with D_t = dO_t·O_t (written for dkv).
@compute @workgroup_size(64)
fn attention_backward_dq_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n = lanes();
    let rows = WG / n;
    let tile = tile_of(wg, nwg, p.NH, rows);
    if (tile.z >= p.T) {
        return;
    }
    let b = tile.x;
    let h = tile.y;
    let me = lane_of(li, n, tile.z);
    let r = me.r;
    let l = me.l;
    let t = me.row;
    let ok = me.ok;
    let tc = me.at;
    let hk = h / (p.NH / p.NKV);
    let qi = q_row(b, tc, h);
    var part = 0.0;
    if (l < HD4) {
        w_row[li] = q[qi + l] * p.scale;
        w_row2[li] = dout[qi + l];
        part = dot(dout[qi + l], o[qi + l]);
    }
    if (l == 0u) {
        w_edge[r] = segment_start(b, tc);
    }
    w_a[li] = part;
    workgroupBarrier();
    let dsum = row_sum(r, n);
    let lo = workgroupUniformLoad(&w_edge[0]);
    let hi = min(tile.z + rows, p.T) - 1u;
    let start = w_edge[r];
    let si = stat_index(b, h, tc);
    let lse = stat[si];
    var acc = vec4(0.0);
    for (var j0 = lo; j0 <= hi; j0 += n) {
        let j = j0 + l;
        var ds = 0.0;
        if (ok && j >= start && j <= t) {
            let kj = kv_row(b, j, hk);
            var s = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < HD4; d++) {
                s += dot(w_row[r * n + d], k[kj + d]);
                dp += dot(w_row2[r * n + d], v[kj + d]);
            }
            ds = exp(s - lse) * (dp - dsum);
        }
        workgroupBarrier();
        w_a[li] = ds;
        workgroupBarrier();
        if (l < HD4) {
            for (var e = 0u; e < n; e++) {
                let de = w_a[r * n + e];
                if (de != 0.0) {
                    acc += de * k[kv_row(b, j0 + e, hk) + l];
                }
            }
        }
    }
    if (ok && l < HD4) {
        out[q_row(b, t, h) + l] = acc * p.scale;
    }
    if (ok && l == 0u) {
        stat[d_offset() + si] = dsum;
    }
}

// For key row j and query head h (one row of a workgroup), over the queries t ≥ j of j's
// segment: head h's share of dv_j = Σ p_tj dO_t and dk_j = scale · Σ p_tj (dO_t·v_j − D_t) q_t,
// written at (b, j, h) as attention_backward_dkv does.
@compute @workgroup_size(64)
fn attention_backward_dkv_tiled(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    let n = lanes();
    let rows = WG / n;
    let tile = tile_of(wg, nwg, p.NH, rows);
    if (tile.z >= p.T) {
        return;
    }
    let b = tile.x;
    let h = tile.y;
    let me = lane_of(li, n, tile.z);
    let r = me.r;
    let l = me.l;
    let j = me.row;
    let ok = me.ok;
    let jc = me.at;
    let kj = kv_row(b, jc, h / (p.NH / p.NKV));
    if (l < HD4) {
        w_row[li] = k[kj + l];
        w_row2[li] = v[kj + l];
    }
    if (l == 0u) {
        w_edge[r] = segment_end(b, jc);
    }
    // Segment ends never decrease with j: the last row's is the workgroup's last query.
    let last = min(tile.z + rows, p.T) - 1u - tile.z;
    let hi = workgroupUniformLoad(&w_edge[last]);
    let end = w_edge[r];
    var dk = vec4(0.0);
    var dv_acc = vec4(0.0);
    for (var t0 = tile.z; t0 <= hi; t0 += n) {
        let t = t0 + l;
        var pr = 0.0;
        var ds = 0.0;
        if (ok && t >= j && t <= end) {
            let qi = q_row(b, t, h);
            var s = 0.0;
            var dp = 0.0;
            for (var d = 0u; d < HD4; d++) {
                s += dot(q[qi + d], w_row[r * n + d]);
                dp += dot(dout[qi + d], w_row2[r * n + d]);
            }
            let si = stat_index(b, h, t);
            pr = exp(s * p.scale - stat[si]);
            ds = pr * (dp - stat[d_offset() + si]);
        }
        workgroupBarrier();
        w_a[li] = pr;
        w_b[li] = ds;
        workgroupBarrier();
        if (l < HD4) {
            for (var e = 0u; e < n; e++) {
                let pe = w_a[r * n + e];
                let de = w_b[r * n + e];
                if (pe != 0.0 || de != 0.0) {
                    let qe = q_row(b, t0 + e, h) + l;
                    dv_acc += pe * dout[qe];
                    dk += de * q[qe];
                }
            }
        }
    }
    if (ok && l < HD4) {
        let oj = q_row(b, j, h);
        out[oj + l] = dk * p.scale;
        dv[oj + l] = dv_acc;
    }
}
