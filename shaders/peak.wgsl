// The device's f32 multiply-add ceiling, for `weblora bench --json`: every invocation runs eight
// independent chains of vec4 fma, four steps of each chain per loop iteration, on registers only
// (no memory traffic but one store at the end, so the compiler cannot drop the chains).
// FLOPs: invocations × iters × 8 chains × 4 steps × 4 lanes × 2.

struct Params {
    iters: u32,
    seed: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * 256u;
    let x = p.seed * f32(i % 1024u);
    var c0 = vec4(x, x + 1.0, x + 2.0, x + 3.0);
    var c1 = c0 + 0.5;
    var c2 = c0 + 1.5;
    var c3 = c0 + 2.5;
    var c4 = c0 - 0.5;
    var c5 = c0 - 1.5;
    var c6 = c0 - 2.5;
    var c7 = c0 * 0.5;
    let m = vec4(0.999);
    let s = vec4(0.001);
    for (var k = 0u; k < p.iters; k++) {
        for (var u = 0u; u < 4u; u++) {
            c0 = fma(c0, m, s);
            c1 = fma(c1, m, s);
            c2 = fma(c2, m, s);
            c3 = fma(c3, m, s);
            c4 = fma(c4, m, s);
            c5 = fma(c5, m, s);
            c6 = fma(c6, m, s);
            c7 = fma(c7, m, s);
        }
    }
    let sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
    out[i % arrayLength(&out)] = sum.x + sum.y + sum.z + sum.w;
}
