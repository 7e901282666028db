// The optimizer side of a step over the flat LoRA parameter buffer: the mean loss, the global
// gradient norm with clipping, and AdamW. Results land in `stats`:
//   stats[0] mean loss, stats[1] gradient norm before clipping, stats[2] clip factor.

struct Params {
    n: u32,              // elements: losses (loss_sum) or parameters (P)
    max_norm: f32,       // grad_norm_finalize: clip threshold, 0 = no clipping
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}

struct Step {
    inv_count: f32,
    lr: f32,
    bias_correction1: f32,         // 1 − beta1^step
    bias_correction2_sqrt: f32,    // sqrt(1 − beta2^step)
    dropout_seed: u32,
}

const WG: u32 = 64u;
const PARTIALS: u32 = 64u;   // workgroups of grad_sumsq_partial

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> stats: array<f32>;      // (4)
@group(0) @binding(2) var<storage, read_write> partials: array<f32>;   // (PARTIALS)
@group(0) @binding(3) var<storage, read> inp: array<f32>;              // loss_sum: losses (n); sumsq: grads (P)
@group(0) @binding(4) var<storage, read> step: Step;
@group(0) @binding(5) var<storage, read_write> param: array<f32>;      // adamw: (P)
@group(0) @binding(6) var<storage, read_write> m1: array<f32>;         // adamw: first moment (P)
@group(0) @binding(7) var<storage, read_write> m2: array<f32>;         // adamw: second moment (P)

var<workgroup> scratch: array<f32, WG>;

fn workgroup_sum(lid: u32, value: f32) -> f32 {
    scratch[lid] = value;
    workgroupBarrier();
    for (var stride = WG / 2u; stride > 0u; stride /= 2u) {
        if (lid < stride) {
            scratch[lid] += scratch[lid + stride];
        }
        workgroupBarrier();
    }
    return scratch[0];
}

// stats[0] = Σ losses · inv_count (one workgroup)
@compute @workgroup_size(WG)
fn loss_sum(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < p.n; i += WG) {
        s += inp[i];
    }
    let total = workgroup_sum(lid, s);
    if (lid == 0u) {
        stats[0] = total * step.inv_count;
    }
}

// partials[w] = Σ grad² over a strided slice (PARTIALS workgroups)
@compute @workgroup_size(WG)
fn grad_sumsq_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = wid.x * WG + lid; i < p.n; i += WG * PARTIALS) {
        let g = inp[i];
        s += g * g;
    }
    let total = workgroup_sum(lid, s);
    if (lid == 0u) {
        partials[wid.x] = total;
    }
}

// stats[1] = ‖g‖, stats[2] = min(1, max_norm / (‖g‖ + 1e-6)), as torch's clip_grad_norm_ (one workgroup)
@compute @workgroup_size(WG)
fn grad_norm_finalize(@builtin(local_invocation_index) lid: u32) {
    var s = 0.0;
    for (var i = lid; i < PARTIALS; i += WG) {
        s += partials[i];
    }
    let total = workgroup_sum(lid, s);
    if (lid == 0u) {
        let norm = sqrt(total);
        stats[1] = norm;
        var clip = 1.0;
        if (p.max_norm > 0.0) {
            clip = min(1.0, p.max_norm / (norm + 1e-6));
        }
        stats[2] = clip;
    }
}

// AdamW as torch.optim.AdamW: decoupled decay, then the bias-corrected Adam update.
@compute @workgroup_size(WG)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    // A non-finite gradient norm (NaN fails every comparison) leaves the adapter and its
    // moments untouched, so the last good state survives a diverging step.
    if (i >= p.n || !(stats[1] <= 3.0e38)) {
        return;
    }
    let g = inp[i] * stats[2];
    let m = p.beta1 * m1[i] + (1.0 - p.beta1) * g;
    let v = p.beta2 * m2[i] + (1.0 - p.beta2) * g * g;
    m1[i] = m;
    m2[i] = v;
    let denom = sqrt(v) / step.bias_correction2_sqrt + p.eps;
    let decayed = param[i] * (1.0 - step.lr * p.weight_decay);
    param[i] = decayed - (step.lr / step.bias_correction1) * m / denom;
}
