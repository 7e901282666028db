//! Wrapper of `shaders/peak.wgsl`: the f32 multiply-add ceiling that benchmarks report their
//! matmuls against.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::error::{shape_err, Result};
use crate::gpu::{Kernel, Program, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    iters: u32,
    seed: f32,
}

/// Invocations per workgroup of the kernel.
const WG: usize = 256;

/// Records `groups` workgroups of 256 invocations, each running `iters` loop iterations of
/// 32 vec4 fma (256 FLOPs) on registers, and returns the FLOPs recorded. `out` takes one value
/// per invocation (wrapping), so nothing is optimised away.
pub fn fma_peak(prog: &mut Program, out: &Tensor, groups: usize, iters: usize) -> Result<f64> {
    let op = "fma_peak";
    if groups == 0 || out.numel() == 0 {
        return Err(shape_err(op, "no workgroups or an empty output"));
    }
    let params = Params { iters: u32_of(op, iters)?, seed: 1e-3 };
    let (x, y) = (groups.min(65535), groups.div_ceil(65535));
    prog.dispatch(Kernel::FmaPeak, &params, &[(1, out)], [u32_of(op, x)?, u32_of(op, y)?, 1])?;
    Ok((x * y * WG * iters * 256) as f64)
}
