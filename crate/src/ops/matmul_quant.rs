//! Wrappers of `shaders/matmul_quant.wgsl`: matrix products with a frozen weight kept in its
//! GGML format ([`QuantTensor`]), dequantized inside the kernel.

use bytemuck::{Pod, Zeroable};

use super::matmul::{record_passes, split_k, Pass, K_SPAN};
use super::{expect_numel, groups_for, u32_of, MATVEC_ROWS};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, KernelFamily, Program, QuantOp, QuantTensor, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    beta: f32,
    meta: u32,
    v0: u32,
    c_begin: u32,
    c_end: u32,
    c_slice: u32,
}

/// Checks the weight and the sizes every layout shares; returns `Params`.
fn prepare(op: &'static str, w: &QuantTensor, m: usize, alpha: f32, beta: f32) -> Result<Params> {
    let (n, k) = (w.rows(), w.cols());
    if !QuantTensor::supports(w.ty()) {
        return Err(shape_err(op, format!("no kernel for {}", w.ty().name())));
    }
    let mult = QuantTensor::col_multiple(w.ty());
    if m == 0 || n == 0 || k == 0 || !k.is_multiple_of(mult) {
        return Err(shape_err(
            op,
            format!("M = {m}, W ({n}, {k}) {}: need M, N > 0 and K a multiple of {mult}", w.ty().name()),
        ));
    }
    let meta = w.meta_offset();
    let (m, n, k) = (u32_of(op, m)?, u32_of(op, n)?, u32_of(op, k)?);
    Ok(Params { m, n, k, alpha, beta, meta, v0: 0, c_begin: 0, c_end: 0, c_slice: 0 })
}

/// The tiled family's product of `out` (M, `cols`) over a contraction of length `len`, in
/// 64×64 tiles (`matmul_quant_tiled.wgsl`), split along the contraction or walked in spans as
/// the f32 products are (`ops::matmul`).
fn record_tiled(
    prog: &mut Program,
    op: &'static str,
    kernel: Kernel,
    params: Params,
    out: &Tensor,
    (act_slot, act): (u32, &Tensor),
    w: &QuantTensor,
    (m, cols, len): (usize, usize, usize),
) -> Result<()> {
    let split = split_k(m.div_ceil(64) * cols.div_ceil(64), m * cols, len);
    let (gx, gy) = (u32_of(op, cols.div_ceil(64))?, u32_of(op, m.div_ceil(64))?);
    record_passes(prog, op, out, (m, cols, len), split, K_SPAN, params.alpha, params.beta, |prog, target, pass| {
        let Pass { begin, end, slice, slices, alpha, beta } = pass;
        let params = Params { alpha, beta, c_begin: begin, c_end: end, c_slice: slice, ..params };
        prog.dispatch(kernel, &params, &[(1, target), (act_slot, act), (3, w.data())], [gx, gy, slices])
    })
}

/// y (M, N) = alpha · x (M, K) · W (N, K)ᵀ + beta · y, with W frozen in its GGML format: the
/// forward of a linear layer. K must be a multiple of the type's block size (8 for F16).
pub fn matmul_nt_quant(
    prog: &mut Program,
    y: &Tensor,
    x: &Tensor,
    w: &QuantTensor,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matmul_nt_quant";
    let params = prepare(op, w, m, alpha, beta)?;
    let (n, k) = (w.rows(), w.cols());
    expect_numel(op, "y", y, m * n)?;
    expect_numel(op, "x", x, m * k)?;
    if prog.gpu().info.kernels == KernelFamily::Tiled {
        let kernel = Kernel::Quant(QuantOp::MatmulNtTiled, w.ty());
        return record_tiled(prog, op, kernel, params, y, (2, x), w, (m, n, k));
    }
    // 8×8 invocations of 8 rows × 4 columns: 32 columns of N and 64 rows of M per workgroup.
    let groups = [u32_of(op, n.div_ceil(32))?, u32_of(op, m.div_ceil(64))?, 1];
    prog.dispatch(Kernel::Quant(QuantOp::MatmulNt, w.ty()), &params, &[(1, y), (2, x), (3, w.data())], groups)
}

/// dx (M, K) = alpha · dy (M, N) · W (N, K) + beta · dx, with W frozen in its GGML format: the
/// input gradient of a linear layer. K must be a multiple of the type's block size (8 for F16).
pub fn matmul_nn_quant(
    prog: &mut Program,
    dx: &Tensor,
    dy: &Tensor,
    w: &QuantTensor,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matmul_nn_quant";
    let params = prepare(op, w, m, alpha, beta)?;
    let (n, k) = (w.rows(), w.cols());
    expect_numel(op, "dx", dx, m * k)?;
    expect_numel(op, "dy", dy, m * n)?;
    if prog.gpu().info.kernels == KernelFamily::Tiled {
        let kernel = Kernel::Quant(QuantOp::MatmulNnTiled, w.ty());
        return record_tiled(prog, op, kernel, params, dx, (4, dy), w, (m, k, n));
    }
    // 8×8 invocations of 4 rows × 8 columns: 64 columns of K and 32 rows of M per workgroup.
    let groups = [u32_of(op, k.div_ceil(64))?, u32_of(op, m.div_ceil(32))?, 1];
    prog.dispatch(Kernel::Quant(QuantOp::MatmulNn, w.ty()), &params, &[(1, dx), (4, dy), (3, w.data())], groups)
}

/// y (M, N) = alpha · x (M, K) · W (N, K)ᵀ + beta · y for M ≤ [`MATVEC_ROWS`], with W frozen in
/// its GGML format: the forward of a linear layer when decoding, one invocation per column of y,
/// each weight dequantized and multiplied once per row of x.
pub fn matvec_nt_quant(
    prog: &mut Program,
    y: &Tensor,
    x: &Tensor,
    w: &QuantTensor,
    m: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matvec_nt_quant";
    let params = prepare(op, w, m, alpha, beta)?;
    if m > MATVEC_ROWS {
        return Err(shape_err(op, format!("M = {m} rows: the mat-vec takes at most {MATVEC_ROWS}")));
    }
    let (n, k) = (w.rows(), w.cols());
    expect_numel(op, "y", y, m * n)?;
    expect_numel(op, "x", x, m * k)?;
    // Binding 5 is the same words again, read a vec4 at a time.
    let bindings = [(1, y), (2, x), (3, w.data()), (5, w.data())];
    prog.dispatch(Kernel::Quant(QuantOp::MatvecNt, w.ty()), &params, &bindings, grid(groups_for(n)))
}

/// out (M, K) row m = row ids[m] − v0 of W (N, K), for the ids in [v0, v0 + N): the embedding
/// lookup from a vocabulary part whose first id is `v0`, kept in its GGML format. Rows of other
/// ids are left as they are, for the other parts' dispatches.
pub fn gather_quant(prog: &mut Program, out: &Tensor, ids: &Tensor, w: &QuantTensor, v0: usize) -> Result<()> {
    let op = "gather_quant";
    let m = ids.numel();
    let params = Params { v0: u32_of(op, v0)?, ..prepare(op, w, m, 1.0, 0.0)? };
    expect_numel(op, "out", out, m * w.cols())?;
    prog.dispatch(
        Kernel::Quant(QuantOp::Gather, w.ty()),
        &params,
        &[(1, out), (6, ids), (3, w.data())],
        grid(groups_for(m * w.cols() / 8)),
    )
}

/// out (N) = Σ_k W[n, k]² for each row of W (N, K) kept in its GGML format: DoRA's ‖W‖² per
/// output row (`ops::row_sumsq` sends a quantized weight here).
pub(super) fn row_sumsq_quant(prog: &mut Program, out: &Tensor, w: &QuantTensor) -> Result<()> {
    let op = "row_sumsq_quant";
    let params = prepare(op, w, 1, 1.0, 0.0)?;
    expect_numel(op, "out", out, w.rows())?;
    let groups = grid(groups_for(w.rows()));
    prog.dispatch(Kernel::Quant(QuantOp::RowSumsq, w.ty()), &params, &[(1, out), (3, w.data())], groups)
}
