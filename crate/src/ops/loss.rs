//! Wrappers of `shaders/cross_entropy.wgsl` and the loss reduction of `shaders/optimizer.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::optim::OptimParams;
use super::{expect, u32_of};
use crate::error::Result;
use crate::gpu::{grid, Kernel, Program, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CrossEntropyParams {
    rows: u32,
    v: u32,
}

/// For a chunk of rows: losses (rows) = −log softmax(logits)[target], and logits (rows, V) are
/// replaced by dlogits = (softmax − onehot) · step.inv_count. targets (rows) i32, < 0 ignored.
pub fn cross_entropy_fused(
    prog: &mut Program,
    logits: &Tensor,
    losses: &Tensor,
    targets: &Tensor,
    step: &Tensor,
    rows: usize,
    v: usize,
) -> Result<()> {
    let op = "cross_entropy_fused";
    expect(op, "logits", logits, &[rows, v])?;
    expect(op, "losses", losses, &[rows])?;
    expect(op, "targets", targets, &[rows])?;
    let params = CrossEntropyParams { rows: u32_of(op, rows)?, v: u32_of(op, v)? };
    prog.dispatch(
        Kernel::CrossEntropyFused,
        &params,
        &[(1, logits), (2, losses), (3, targets), (4, step)],
        grid(u32_of(op, rows)?),
    )
}

/// stats[0] = Σ losses (N) · step.inv_count: the mean loss over supervised tokens.
pub fn loss_sum(prog: &mut Program, stats: &Tensor, losses: &Tensor, step: &Tensor) -> Result<()> {
    let op = "loss_sum";
    let params = OptimParams { n: u32_of(op, losses.numel())?, ..OptimParams::zeroed() };
    prog.dispatch(Kernel::LossSum, &params, &[(1, stats), (3, losses), (4, step)], [1, 1, 1])
}
