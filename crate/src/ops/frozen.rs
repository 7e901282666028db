//! Products with a frozen weight of any kind ([`Weight`]: f32, kept in a GGML type, or split by
//! output rows into parts of either), each sent to the kernel for its type: what a linear layer
//! and the output head call.

use super::{
    copy_columns, expect_numel, matmul_nn, matmul_nn_quant, matmul_nt, matmul_nt_quant, matvec_nt, matvec_nt_quant,
    MATVEC_ROWS,
};
use crate::error::Result;
use crate::gpu::{Program, SplitTensor, Tensor, Weight};

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
        (Weight::Split(w), _) => split_nt(prog, y, x, w, m, alpha, beta),
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
        Weight::Split(w) => split_nn(prog, dx, dy, w, m, alpha, beta),
    }
}

/// [`frozen_nt`] over a weight split by output rows: each part's product goes to the program's
/// part scratch, then into its columns of y.
fn split_nt(
    prog: &mut Program,
    y: &Tensor,
    x: &Tensor,
    w: &SplitTensor,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let [n, _] = w.shape();
    expect_numel("frozen_nt", "y", y, m * n)?;
    for (first, part) in w.parts() {
        let rows = part.shape()[0];
        let out = prog.part_scratch(m, rows)?;
        frozen_nt(prog, &out, x, part, m, alpha, 0.0)?;
        copy_columns(prog, (y, n, first), (&out, rows, 0), m, rows, beta)?;
    }
    Ok(())
}

/// [`frozen_nn`] over a weight split by output rows: dx sums each part's product with the
/// columns of dy that belong to it, gathered into the program's part scratch.
fn split_nn(
    prog: &mut Program,
    dx: &Tensor,
    dy: &Tensor,
    w: &SplitTensor,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let [n, _] = w.shape();
    expect_numel("frozen_nn", "dy", dy, m * n)?;
    for (i, (first, part)) in w.parts().enumerate() {
        let rows = part.shape()[0];
        let dy_part = prog.part_scratch(m, rows)?;
        copy_columns(prog, (&dy_part, rows, 0), (dy, n, first), m, rows, 0.0)?;
        frozen_nn(prog, dx, &dy_part, part, m, alpha, if i == 0 { beta } else { 1.0 })?;
    }
    Ok(())
}
