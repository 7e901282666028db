// Softmax cross-entropy over the vocabulary for a chunk of rows, one block of the vocabulary
// at a time, so that the model never holds logits for more than one chunk and no binding spans
// the whole vocabulary. Forward folds each block into running per-row statistics with an online
// log-sum-exp (max m, Σ exp(x − m), the target's logit) and writes the losses after the last
// block; backward replaces each block of logits in place by dlogits = (softmax − onehot) ·
// inv_count. Blocks are dispatched in vocabulary order starting at 0. Rows whose target is
// negative (-100, as Hugging Face) are ignored: zero loss, zero gradient. Forward takes one
// workgroup per row (its reductions are reduce.wgsl's or reduce_subgroup.wgsl's, placed before
// this file), backward one invocation per logit.

struct Params {
    rows: u32,    // rows in this chunk
    V: u32,       // vocabulary ids in this block
    v0: u32,      // first vocabulary id of this block
    vocab: u32,   // the whole vocabulary
}

struct Step {
    inv_count: f32,   // 1 / supervised tokens of the batch: the loss is their mean
    lr: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
    dropout_seed: u32,
}

const WG: u32 = 256u;   // forward: one workgroup per row

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;   // (rows, V) in, dlogits out (backward)
@group(0) @binding(2) var<storage, read_write> losses: array<f32>;   // (rows): −log softmax[target], 0 if ignored
@group(0) @binding(3) var<storage, read> targets: array<i32>;        // (rows)
@group(0) @binding(4) var<storage, read> step: Step;
@group(0) @binding(5) var<storage, read_write> stats: array<f32>;    // (rows, 4): m, Σ exp(x − m), target logit, unused

fn is_ignored(label: i32) -> bool {
    return label < 0 || u32(label) >= p.vocab;
}

@compute @workgroup_size(WG)
fn cross_entropy_forward(
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    lane: Lane,
) {
    let lid = lane.lid;
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) {
        return;
    }
    let base = row * p.V;
    // One pass: each invocation keeps its own max and Σ exp(x − max) over its columns.
    var m = -3.0e38;
    var s = 0.0;
    for (var i = lid; i < p.V; i += WG) {
        let x = logits[base + i];
        if (x > m) {
            s = s * exp(m - x) + 1.0;
            m = x;
        } else {
            s += exp(x - m);
        }
    }
    let row_m = workgroup_reduce(lane, m, true);
    s = workgroup_reduce(lane, s * exp(m - row_m), false);
    m = row_m;
    if (lid == 0u) {
        let label = targets[row];
        // The running statistics of the blocks before this one (none for the first).
        var run_m = -3.0e38;
        var run_s = 0.0;
        var target_logit = 0.0;
        if (p.v0 > 0u) {
            run_m = stats[row * 4u];
            run_s = stats[row * 4u + 1u];
            target_logit = stats[row * 4u + 2u];
        }
        let new_m = max(run_m, m);
        run_s = run_s * exp(run_m - new_m) + s * exp(m - new_m);
        if (!is_ignored(label) && u32(label) >= p.v0 && u32(label) < p.v0 + p.V) {
            target_logit = logits[base + u32(label) - p.v0];
        }
        stats[row * 4u] = new_m;
        stats[row * 4u + 1u] = run_s;
        stats[row * 4u + 2u] = target_logit;
        if (p.v0 + p.V == p.vocab) {
            losses[row] = select(log(run_s) + new_m - target_logit, 0.0, is_ignored(label));
        }
    }
}

// One invocation per logit of the chunk's block.
@compute @workgroup_size(64)
fn cross_entropy_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 64u;
    if (i >= p.rows * p.V) {
        return;
    }
    let row = i / p.V;
    let col = i % p.V;
    let label = targets[row];
    let scale = select(step.inv_count, 0.0, is_ignored(label));
    let onehot = select(0.0, 1.0, i32(p.v0 + col) == label);
    logits[i] = (exp(logits[i] - stats[row * 4u]) * (1.0 / stats[row * 4u + 1u]) - onehot) * scale;
}
