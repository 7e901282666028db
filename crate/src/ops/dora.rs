//! Wrappers of `shaders/dora.wgsl` (and of `row_sumsq_<type>` in `shaders/matmul_quant.wgsl`):
//! the pieces of a DoRA linear layer. Letters: M rows of x, N the layer's output width (out),
//! K its input width (in), R the padded LoRA rank (Rp). `sc` (2, N) holds m / ‖W + s·B·A‖ in
//! row 0 and 1 / ‖W + s·B·A‖ in row 1.

use bytemuck::{Pod, Zeroable};

use super::{expect_numel, groups_for, u32_of, K_SPAN};
use crate::error::Result;
use crate::gpu::{grid, Kernel, Program, Tensor, Weight};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    r: u32,
    s: f32,
    beta: f32,
}

fn params(op: &'static str, m: usize, n: usize, k: usize, r: usize, s: f32, beta: f32) -> Result<Params> {
    Ok(Params { m: u32_of(op, m)?, n: u32_of(op, n)?, k: u32_of(op, k)?, r: u32_of(op, r)?, s, beta })
}

/// out (N) = Σ_k W[n, k]² for a frozen weight W (N, K) of any storage type: f32, or kept in a
/// GGML type (dequantized in the kernel, as the matmuls do), or split by rows into parts of either.
pub fn row_sumsq(prog: &mut Program, out: &Tensor, w: &Weight) -> Result<()> {
    let op = "row_sumsq";
    let shape = w.shape();
    let (n, k) = (shape[0], shape[1]);
    expect_numel(op, "out", out, n)?;
    match w {
        Weight::F32(t) => {
            let p = params(op, 1, n, k, 0, 0.0, 0.0)?;
            prog.dispatch(Kernel::RowSumsq, &p, &[(1, out), (2, t)], grid(groups_for(n)))
        }
        Weight::Quant(q) => super::matmul_quant::row_sumsq_quant(prog, out, q),
        Weight::Split(w) => {
            for (first, part) in w.parts() {
                row_sumsq(prog, &out.view(first, &[part.shape()[0]])?, part)?;
            }
            Ok(())
        }
    }
}

/// sc (2, N) = (m / ‖W + s·B·A‖, 1 / ‖W + s·B·A‖) per output row, from wsq (N) = ‖W‖² per row,
/// aw (R, N) = A·Wᵀ, aa (R, R) = A·Aᵀ, B (N, R) and the magnitude m (N).
#[allow(clippy::too_many_arguments)]
pub fn dora_norm(
    prog: &mut Program,
    sc: &Tensor,
    wsq: &Tensor,
    aw: &Tensor,
    aa: &Tensor,
    b: &Tensor,
    mag: &Tensor,
    n: usize,
    r: usize,
    s: f32,
) -> Result<()> {
    let op = "dora_norm";
    for (name, t, len) in
        [("sc", sc, 2 * n), ("wsq", wsq, n), ("aw", aw, r * n), ("aa", aa, r * r), ("b", b, n * r), ("mag", mag, n)]
    {
        expect_numel(op, name, t, len)?;
    }
    let p = params(op, 1, n, 0, r, s, 0.0)?;
    let bindings = [(1, sc), (2, wsq), (4, aw), (5, aa), (6, b), (7, mag)];
    prog.dispatch(Kernel::DoraNorm, &p, &bindings, grid(groups_for(n)))
}

/// mag (N) = ‖W + s·B·A‖ per output row (PEFT's initial magnitude), from the same terms as
/// [`dora_norm`].
#[allow(clippy::too_many_arguments)]
pub fn dora_magnitude(
    prog: &mut Program,
    mag: &Tensor,
    wsq: &Tensor,
    aw: &Tensor,
    aa: &Tensor,
    b: &Tensor,
    n: usize,
    r: usize,
    s: f32,
) -> Result<()> {
    let op = "dora_magnitude";
    for (name, t, len) in [("mag", mag, n), ("wsq", wsq, n), ("aw", aw, r * n), ("aa", aa, r * r), ("b", b, n * r)] {
        expect_numel(op, name, t, len)?;
    }
    let p = params(op, 1, n, 0, r, s, 0.0)?;
    prog.dispatch(Kernel::DoraMagnitude, &p, &[(1, mag), (2, wsq), (4, aw), (5, aa), (6, b)], grid(groups_for(n)))
}

/// y (M, N) = beta·y + sc[0, j]·t (M, N): the DoRA layer's output from t = x·Wᵀ + s·(x·Aᵀ)·Bᵀ.
pub fn dora_forward(
    prog: &mut Program,
    y: &Tensor,
    t: &Tensor,
    sc: &Tensor,
    m: usize,
    n: usize,
    beta: f32,
) -> Result<()> {
    let op = "dora_forward";
    expect_numel(op, "y", y, m * n)?;
    expect_numel(op, "t", t, m * n)?;
    expect_numel(op, "sc", sc, 2 * n)?;
    let p = params(op, m, n, 0, 0, 0.0, beta)?;
    prog.dispatch(Kernel::DoraForward, &p, &[(1, y), (2, t), (3, sc)], grid(groups_for(m * n)))
}

/// dys (M, N) = sc[0, j]·dy (M, N): the gradient that reaches W's and the LoRA path's inputs.
pub fn dora_scale_dy(prog: &mut Program, dys: &Tensor, dy: &Tensor, sc: &Tensor, m: usize, n: usize) -> Result<()> {
    let op = "dora_scale_dy";
    expect_numel(op, "dys", dys, m * n)?;
    expect_numel(op, "dy", dy, m * n)?;
    expect_numel(op, "sc", sc, 2 * n)?;
    let p = params(op, m, n, 0, 0, 0.0, 0.0)?;
    prog.dispatch(Kernel::DoraScaleDy, &p, &[(1, dys), (2, dy), (3, sc)], grid(groups_for(m * n)))
}

/// dm (N) += Σ_i dy[i, j]·t[i, j] / ‖W + s·B·A‖_j: the magnitude's gradient (accumulated), in
/// dispatches of at most [`K_SPAN`] rows each.
pub fn dora_dmag(
    prog: &mut Program,
    dm: &Tensor,
    dy: &Tensor,
    t: &Tensor,
    sc: &Tensor,
    m: usize,
    n: usize,
) -> Result<()> {
    let op = "dora_dmag";
    expect_numel(op, "dm", dm, n)?;
    expect_numel(op, "dy", dy, m * n)?;
    expect_numel(op, "t", t, m * n)?;
    expect_numel(op, "sc", sc, 2 * n)?;
    for start in (0..m).step_by(K_SPAN) {
        let rows = (m - start).min(K_SPAN);
        let (dyv, tv) = (dy.view(start * n, &[rows, n])?, t.view(start * n, &[rows, n])?);
        let p = params(op, rows, n, 0, 0, 0.0, 0.0)?;
        prog.dispatch(Kernel::DoraDmag, &p, &[(1, dm), (2, &dyv), (3, sc), (8, &tv)], grid(groups_for(n)))?;
    }
    Ok(())
}

/// W (N, K): row j times sc[0, j] (merging DoRA into an f32 base weight).
pub fn dora_scale_rows(prog: &mut Program, w: &Tensor, sc: &Tensor, n: usize, k: usize) -> Result<()> {
    let op = "dora_scale_rows";
    expect_numel(op, "w", w, n * k)?;
    expect_numel(op, "sc", sc, 2 * n)?;
    let p = params(op, 1, n, k, 0, 0.0, 0.0)?;
    prog.dispatch(Kernel::DoraScaleRows, &p, &[(1, w), (3, sc)], grid(groups_for(n * k)))
}
