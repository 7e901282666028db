// Small element-wise kernels: residual and bias adds, dropout, and a block of columns copied
// between two row-major matrices.

struct Params {
    n: u32,       // elements of out (copy_columns: elements copied)
    width: u32,   // add_bias: row width (bias length); copy_columns: columns copied
    p_drop: f32,  // dropout probability
    stream: u32,  // dropout: which module's mask (mixed with the step's seed)
    beta: f32,        // copy_columns: out = inp + beta · out (0: out is not read)
    src_width: u32,   // copy_columns: inp's row length and first column copied
    src_col: u32,
    dst_width: u32,   // copy_columns: out's row length and first column written
    dst_col: u32,
}

struct Step {
    inv_count: f32,
    lr: f32,
    bias_correction1: f32,
    bias_correction2_sqrt: f32,
    dropout_seed: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;   // (n)
@group(0) @binding(2) var<storage, read> inp: array<f32>;         // add: (n); add_bias: (width); dropout: (n)
@group(0) @binding(3) var<storage, read> step: Step;              // dropout only

fn index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

// out += inp
@compute @workgroup_size(64)
fn add_inplace(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        out[i] += inp[i];
    }
}

// out (rows, width) += bias (width), broadcast over rows
@compute @workgroup_size(64)
fn add_bias(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i < p.n) {
        out[i] += inp[i % p.width];
    }
}

// out (rows, dst_width)[:, dst_col..+width] = inp (rows, src_width)[:, src_col..+width] + beta · out
// there: a product over one part of a weight split by output rows moved into its columns of the
// whole product, or the columns of a gradient that belong to one part gathered for its product.
@compute @workgroup_size(64)
fn copy_columns(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let row = i / p.width;
    let col = i % p.width;
    let o = row * p.dst_width + p.dst_col + col;
    let v = inp[row * p.src_width + p.src_col + col];
    if (p.beta == 0.0) {
        out[o] = v;
    } else {
        out[o] = v + p.beta * out[o];
    }
}

// A 32-bit integer hash (lowbias32), good enough to draw dropout masks.
fn hash(x_in: u32) -> u32 {
    var x = x_in;
    x ^= x >> 16u;
    x *= 0x7feb352du;
    x ^= x >> 15u;
    x *= 0x846ca68bu;
    x ^= x >> 16u;
    return x;
}

// out = inp ⊙ keep / (1 − p_drop), keep drawn from (step seed, stream, index); the same draw
// in forward (on x) and backward (on the gradient) gives the same mask.
@compute @workgroup_size(64)
fn dropout(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = index(gid, nwg);
    if (i >= p.n) {
        return;
    }
    let r = hash(hash(step.dropout_seed ^ hash(p.stream)) ^ i);
    let u = f32(r >> 8u) * (1.0 / 16777216.0);
    out[i] = select(0.0, inp[i] / (1.0 - p.p_drop), u >= p.p_drop);
}
