// Sums and maxima over the workgroup, for the kernels that give one workgroup to a row
// (rmsnorm.wgsl, cross_entropy.wgsl): placed before such a file, which defines WG, its
// workgroup size (a power of two). This version goes through workgroup memory in log2(WG)
// halving steps, each ending at a barrier; reduce_subgroup.wgsl is the same with subgroup
// operations, used instead on GPUs that offer them. Every invocation gets the result.

// The invocation, as the entry points take it.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
}

var<workgroup> partial: array<f32, WG>;

fn workgroup_reduce(lane: Lane, value: f32, is_max: bool) -> f32 {
    let lid = lane.lid;
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
