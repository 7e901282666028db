// reduce.wgsl's workgroup sums and maxima with subgroup operations, for devices that offer
// `subgroups` (the tiled kernel family, natively): each subgroup reduces its values at once, one
// invocation of each writes its subgroup's result to workgroup memory, and every subgroup
// reduces those after a single barrier. Subgroups are taken to hold consecutive invocation
// indices (lid / subgroup size is the subgroup's index), as GPUs lay out a one-dimensional
// workgroup. wgpu's WGSL front end takes subgroup operations from the device's feature, without
// the `enable subgroups;` a browser wants (which it does not implement).

// The invocation, as the entry points take it.
struct Lane {
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) sid: u32,
    @builtin(subgroup_size) size: u32,
}

var<workgroup> partial: array<f32, WG>;

fn subgroup_reduce(value: f32, is_max: bool) -> f32 {
    if (is_max) {
        return subgroupMax(value);
    }
    return subgroupAdd(value);
}

fn workgroup_reduce(lane: Lane, value: f32, is_max: bool) -> f32 {
    let own = subgroup_reduce(value, is_max);
    if (lane.sid == 0u) {
        partial[lane.lid / lane.size] = own;
    }
    workgroupBarrier();
    // Subgroups in the workgroup: one when a subgroup is as wide as the workgroup or wider.
    let count = (WG + lane.size - 1u) / lane.size;
    var acc = select(0.0, -3.0e38, is_max);
    for (var i = lane.sid; i < count; i += lane.size) {
        acc = select(acc + partial[i], max(acc, partial[i]), is_max);
    }
    let total = subgroup_reduce(acc, is_max);
    workgroupBarrier();
    return total;
}
