//! One thin wrapper per kernel of `shaders/`: it checks shapes, fills the kernel's `Params`,
//! sizes the grid and appends the dispatch to a [`Program`](crate::gpu::Program). It never
//! submits. Shapes use one alphabet: B batch, T tokens, N = B·T rows, C channels, NH heads,
//! NKV kv-heads, HD head dim, F ffn width, V vocab, R LoRA rank, P flat parameter count.

mod attention;
mod dora;
mod elementwise;
mod frozen;
mod loss;
mod matmul;
mod matmul_quant;
mod norm;
mod optim;
mod peak;

pub use attention::{
    attention_backward, attention_decode, attention_forward, kv_append, rope_backward, rope_forward, AttentionShape,
};
pub use dora::{dora_dmag, dora_forward, dora_magnitude, dora_norm, dora_scale_dy, dora_scale_rows, row_sumsq};
pub use elementwise::{add_bias, add_inplace, copy_columns, dropout, swiglu_backward, swiglu_forward};
pub use frozen::{frozen_nn, frozen_nt};
pub use loss::{cross_entropy_backward, cross_entropy_forward, loss_sum, CE_STATS};
pub use matmul::{matmul_nn, matmul_nt, matmul_tn, matvec_nt, split_k, K_SPAN, MATVEC_ROWS, SPLIT_K_MAX_PARTS};
pub use matmul_quant::{gather_quant, matmul_nn_quant, matmul_nt_quant, matvec_nt_quant};
pub use norm::{embedding_forward, rmsnorm_backward, rmsnorm_forward};
pub use optim::{adamw, grad_norm, AdamwParams, StepParams, PARTIALS, STATS_LEN};
pub use peak::fma_peak;

use crate::error::{shape_err, Result};
use crate::gpu::Tensor;

/// Checks that `t` has exactly `shape`.
fn expect(op: &'static str, name: &str, t: &Tensor, shape: &[usize]) -> Result<()> {
    if t.shape() != shape {
        return Err(shape_err(op, format!("{name} is {:?}, expected {shape:?}", t.shape())));
    }
    Ok(())
}

/// Checks that `t` holds exactly `numel` elements (any shape).
fn expect_numel(op: &'static str, name: &str, t: &Tensor, numel: usize) -> Result<()> {
    if t.numel() != numel {
        return Err(shape_err(op, format!("{name} {:?} has {} elements, expected {numel}", t.shape(), t.numel())));
    }
    Ok(())
}

/// Converts a size to the u32 the kernels take.
fn u32_of(op: &'static str, n: usize) -> Result<u32> {
    u32::try_from(n).map_err(|_| shape_err(op, format!("size {n} does not fit in u32")))
}

/// Workgroups of 64 invocations for one invocation per element.
fn groups_for(n: usize) -> u32 {
    (n.div_ceil(64)).min(u32::MAX as usize) as u32
}
