//! Wrappers of `shaders/cross_entropy.wgsl` and the loss reduction of `shaders/optimizer.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::optim::OptimParams;
use super::{expect, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, Program, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct CrossEntropyParams {
    rows: u32,
    v: u32,
    v0: u32,
    vocab: u32,
}

/// Columns of running statistics per row that the cross-entropy keeps between vocabulary blocks.
pub const CE_STATS: usize = 4;

fn ce_params(op: &'static str, logits: &Tensor, rows: usize, v0: usize, vocab: usize) -> Result<CrossEntropyParams> {
    let &[r, v] = logits.shape() else {
        return Err(shape_err(op, format!("logits is {:?}, expected (rows, V)", logits.shape())));
    };
    if r != rows || v == 0 || v0 + v > vocab {
        return Err(shape_err(op, format!("logits {:?} at vocabulary {v0} of {vocab}, {rows} rows", logits.shape())));
    }
    Ok(CrossEntropyParams {
        rows: u32_of(op, rows)?,
        v: u32_of(op, v)?,
        v0: u32_of(op, v0)?,
        vocab: u32_of(op, vocab)?,
    })
}

/// Folds a block of logits (rows, Vb) — vocabulary ids v0..v0 + Vb of `vocab` — into the running
/// statistics (rows, CE_STATS) with an online log-sum-exp; the block at v0 = 0 starts them, and
/// the last block writes losses (rows) = −log softmax(logits)[target]. targets (rows) i32, < 0
/// ignored. Blocks go in vocabulary order.
pub fn cross_entropy_forward(
    prog: &mut Program,
    stats: &Tensor,
    losses: &Tensor,
    logits: &Tensor,
    targets: &Tensor,
    rows: usize,
    v0: usize,
    vocab: usize,
) -> Result<()> {
    let op = "cross_entropy_forward";
    let params = ce_params(op, logits, rows, v0, vocab)?;
    expect(op, "stats", stats, &[rows, CE_STATS])?;
    expect(op, "losses", losses, &[rows])?;
    expect(op, "targets", targets, &[rows])?;
    prog.dispatch(
        Kernel::CrossEntropyForward,
        &params,
        &[(1, logits), (2, losses), (3, targets), (5, stats)],
        grid(params.rows),
    )
}

/// Replaces a block of logits (rows, Vb) at vocabulary ids v0.. by dlogits = (softmax − onehot)
/// · step.inv_count, from the statistics every block's forward left in stats (rows, CE_STATS).
pub fn cross_entropy_backward(
    prog: &mut Program,
    logits: &Tensor,
    stats: &Tensor,
    targets: &Tensor,
    step: &Tensor,
    rows: usize,
    v0: usize,
    vocab: usize,
) -> Result<()> {
    let op = "cross_entropy_backward";
    let params = ce_params(op, logits, rows, v0, vocab)?;
    expect(op, "stats", stats, &[rows, CE_STATS])?;
    expect(op, "targets", targets, &[rows])?;
    prog.dispatch(
        Kernel::CrossEntropyBackward,
        &params,
        &[(1, logits), (3, targets), (4, step), (5, stats)],
        grid(groups_for(logits.numel())),
    )
}

/// stats[0] = Σ losses (N) · step.inv_count: the mean loss over supervised tokens.
pub fn loss_sum(prog: &mut Program, stats: &Tensor, losses: &Tensor, step: &Tensor) -> Result<()> {
    let op = "loss_sum";
    let params = OptimParams { n: u32_of(op, losses.numel())?, ..OptimParams::zeroed() };
    prog.dispatch(Kernel::LossSum, &params, &[(1, stats), (3, losses), (4, step)], [1, 1, 1])
}
