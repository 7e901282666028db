//! Products with a frozen weight of any kind ([`Weight`]: f32, or kept in a GGML type), each
//! sent to the kernel for its type: what a linear layer and the output head call.

use super::{matmul_nn, matmul_nn_quant, matmul_nt, matmul_nt_quant, matvec_nt, matvec_nt_quant, MATVEC_ROWS};
use crate::error::{shape_err, Result};
use crate::gpu::{Program, Tensor, Weight};

fn whole<'a>(op: &'static str, w: &'a Weight) -> Result<(&'a Weight, usize, usize)> {
    match w.shape()[..] {
        [n, k] if !matches!(w, Weight::Split(_)) => Ok((w, n, k)),
        _ => Err(shape_err(op, "a weight split into parts: call it part by part")),
    }
}

/// y (M, N) = alpha · x (M, K) · W (N, K)ᵀ + beta · y: a linear layer's forward. With at most
/// [`MATVEC_ROWS`] rows (decoding) the mat-vec kernels, which compute no rows that are not there.
#[allow(clippy::too_many_arguments)]
pub fn frozen_nt(
    prog: &mut Program,
    y: &Tensor,
    x: &Tensor,
    w: &Weight,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let (w, n, k) = whole("frozen_nt", w)?;
    let matvec = m <= MATVEC_ROWS;
    match (w, matvec) {
        (Weight::F32(w), false) => matmul_nt(prog, y, x, w, m, n, k, alpha, beta),
        (Weight::F32(w), true) => matvec_nt(prog, y, x, w, m, n, k, alpha, beta),
        (Weight::Quant(w), false) => matmul_nt_quant(prog, y, x, w, m, alpha, beta),
        (Weight::Quant(w), true) => matvec_nt_quant(prog, y, x, w, m, alpha, beta),
        (Weight::Split(_), _) => unreachable!("whole() refuses split weights"),
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
    let (w, n, k) = whole("frozen_nn", w)?;
    match w {
        Weight::F32(w) => matmul_nn(prog, dx, dy, w, m, k, n, alpha, beta),
        Weight::Quant(w) => matmul_nn_quant(prog, dx, dy, w, m, alpha, beta),
        Weight::Split(_) => unreachable!("whole() refuses split weights"),
    }
}
