//! Wrappers of the gradient-norm and AdamW kernels of `shaders/optimizer.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{expect, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, Program, Tensor};

/// Workgroups of the first pass of the gradient norm (`PARTIALS` in the shader).
pub const PARTIALS: usize = 64;
/// Length of the stats tensor: mean loss, gradient norm, clip factor, spare.
pub const STATS_LEN: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
pub(super) struct OptimParams {
    pub n: u32,
    pub max_norm: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// The values that change from one step to the next, written to the `step` tensor (8 × u32)
/// before each submission; kernels read them instead of baking them into their uniforms.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct StepParams {
    /// 1 / number of supervised tokens: the loss is their mean.
    pub inv_count: f32,
    pub lr: f32,
    /// 1 − beta1^step
    pub bias_correction1: f32,
    /// sqrt(1 − beta2^step)
    pub bias_correction2_sqrt: f32,
    pub dropout_seed: u32,
    pub _pad: [u32; 3],
}

impl StepParams {
    /// The scalars of AdamW update number `step` (1-based) at learning rate `lr`, for a batch
    /// whose loss is the mean over `supervised` tokens.
    pub fn for_update(step: i32, lr: f32, adamw: &AdamwParams, supervised: usize, dropout_seed: u32) -> StepParams {
        StepParams {
            inv_count: 1.0 / supervised.max(1) as f32,
            lr,
            bias_correction1: 1.0 - adamw.beta1.powi(step),
            bias_correction2_sqrt: (1.0 - adamw.beta2.powi(step)).sqrt(),
            dropout_seed,
            _pad: [0; 3],
        }
    }
}

/// AdamW's constant settings.
#[derive(Clone, Copy, Debug)]
pub struct AdamwParams {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

/// stats[1] = ‖grads‖₂, stats[2] = min(1, max_norm / (‖grads‖ + 1e-6)) (1 when max_norm is 0).
/// `partials` (PARTIALS) is scratch.
pub fn grad_norm(prog: &mut Program, stats: &Tensor, partials: &Tensor, grads: &Tensor, max_norm: f32) -> Result<()> {
    let op = "grad_norm";
    expect(op, "stats", stats, &[STATS_LEN])?;
    expect(op, "partials", partials, &[PARTIALS])?;
    let params = OptimParams { n: u32_of(op, grads.numel())?, max_norm, ..OptimParams::zeroed() };
    prog.dispatch(Kernel::GradSumsqPartial, &params, &[(2, partials), (3, grads)], [PARTIALS as u32, 1, 1])?;
    prog.dispatch(Kernel::GradNormFinalize, &params, &[(1, stats), (2, partials)], [1, 1, 1])
}

/// One AdamW update of params (P) from grads (P) scaled by stats[2], with moments m, v (P).
pub fn adamw(
    prog: &mut Program,
    params: &Tensor,
    m: &Tensor,
    v: &Tensor,
    grads: &Tensor,
    stats: &Tensor,
    step: &Tensor,
    hp: AdamwParams,
) -> Result<()> {
    let op = "adamw";
    let n = params.numel();
    for (name, t) in [("m", m), ("v", v), ("grads", grads)] {
        if t.numel() != n {
            return Err(shape_err(op, format!("{name} {:?} does not match params {:?}", t.shape(), params.shape())));
        }
    }
    let p = OptimParams {
        n: u32_of(op, n)?,
        max_norm: 0.0,
        beta1: hp.beta1,
        beta2: hp.beta2,
        eps: hp.eps,
        weight_decay: hp.weight_decay,
    };
    prog.dispatch(
        Kernel::Adamw,
        &p,
        &[(1, stats), (3, grads), (4, step), (5, params), (6, m), (7, v)],
        grid(groups_for(n)),
    )
}
