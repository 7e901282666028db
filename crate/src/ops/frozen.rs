//! Products with a frozen weight of any kind ([`Weight`]: f32, or kept in a GGML type), each
//! sent to the kernel for its type: what a linear layer and the output head call.

use super::{matmul_nn, matmul_nn_quant, matmul_nt, matmul_nt_quant, matvec_nt, matvec_nt_quant, MATVEC_ROWS};
use crate::error::{shape_err, Error, Result};
use crate::gpu::{Program, Tensor, Weight};

fn split_err(op: &'static str) -> Error {
    shape_err(op, "a weight split into parts: call it part by part")
}

/// y (M, N) = alpha · x (M, K) · W (N, K)ᵀ + beta · y: a linear layer's forward. With at most
/// [`MATVEC_ROWS`] rows (decoding) the mat-vec kernels, which compute no rows that are not there.
pub fn frozen_nt(
    prog: &mut Program,
    y: &Tensor,
    x: &Tensor,
    w: &Weight,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    match (w, m <= MATVEC_ROWS) {
        (Weight::F32(w), false) => matmul_nt(prog, y, x, w, m, w.shape()[0], w.shape()[1], alpha, beta),
        (Weight::F32(w), true) => matvec_nt(prog, y, x, w, m, w.shape()[0], w.shape()[1], alpha, beta),
        (Weight::Quant(w), false) => matmul_nt_quant(prog, y, x, w, m, alpha, beta),
        (Weight::Quant(w), true) => matvec_nt_quant(prog, y, x, w, m, alpha, beta),
        (Weight::Split(_), _) => Err(split_err("frozen_nt")),
    }
}

/// dx (M, K) = alpha · dy (M, N) · W (N, K) + beta · dx: a linear layer's input gradient.
pub fn frozen_nn(
    prog: &mut Program,
    dx: &Tensor,
    dy: &Tensor,
    w: &Weight,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    match w {
        Weight::F32(w) => matmul_nn(prog, dx, dy, w, m, w.shape()[1], w.shape()[0], alpha, beta),
        Weight::Quant(w) => matmul_nn_quant(prog, dx, dy, w, m, alpha, beta),
        Weight::Split(_) => Err(split_err("frozen_nn")),
    }
}
