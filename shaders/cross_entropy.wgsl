// Softmax cross-entropy over the vocabulary for a chunk of rows, fused with its gradient:
// the logits of the chunk are replaced in place by dlogits = (softmax − onehot) · inv_count,
// so the model never holds logits for more than one chunk. Rows whose target is negative
// (-100, as Hugging Face) are ignored: zero loss, zero gradient. One workgroup per row.

struct Params {
    rows: u32,   // rows in this chunk
    V: u32,      // vocabulary
}

struct Step {
    inv_count: f32,   // 1 / supervised tokens of the batch: the loss is their mean
    lr: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
    dropout_seed: u32,
}

const WG: u32 = 64u;

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;   // (rows, V) in, dlogits out
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;   // (rows): −log softmax[target], 0 if ignored
@group(0) @binding(3) var<storage, read> targets: array<i32>;        // (rows)
@group(0) @binding(4) var<storage, read> step: Step;

var<workgroup> partial: array<f32, WG>;

fn workgroup_reduce(lid: u32, value: f32, is_max: bool) -> f32 {
    partial[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            let other = partial[lid + stride];
            partial[lid] = select(partial[lid] + other, max(partial[lid], other), is_max);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WG)
fn cross_entropy_fused(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.V;
    var m = -3.0e38;
    for (var i = lid; i < p.V; i += WG) {
        m = max(m, logits[base + i]);
    }
    m = workgroup_reduce(lid, m, true);
    var s = 0.0;
    for (var i = lid; i < p.V; i += WG) {
        s += exp(logits[base + i] - m);
    }
    s = workgroup_reduce(lid, s, false);
    let label = targets[row];
    let ignored = label < 0 || u32(label) >= p.V;
    if (lid == 0u) {
        var loss = 0.0;
        if (!ignored) {
            loss = log(s) + m - logits[base + u32(label)];
        }
        losses[row] = loss;
    }
    workgroupBarrier();
    let scale = select(step.inv_count, 0.0, ignored);
    let inv_s = 1.0 / s;
    for (var i = lid; i < p.V; i += WG) {
        let onehot = select(0.0, 1.0, i32(i) == label);
        logits[base + i] = (exp(logits[base + i] - m) * inv_s - onehot) * scale;
    }
}
