//! Wrappers of `shaders/rmsnorm.wgsl` and `shaders/embedding.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{expect, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, Program, SplitTensor, Tensor, Weight};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct NormParams {
    n: u32,
    c: u32,
    eps: f32,
}

/// out (N, C) = weight ⊙ inp · rstd; rstd (N) is kept for backward.
pub fn rmsnorm_forward(
    prog: &mut Program,
    out: &Tensor,
    rstd: &Tensor,
    inp: &Tensor,
    weight: &Tensor,
    n: usize,
    c: usize,
    eps: f32,
) -> Result<()> {
    let op = "rmsnorm_forward";
    expect(op, "out", out, &[n, c])?;
    expect(op, "rstd", rstd, &[n])?;
    expect(op, "inp", inp, &[n, c])?;
    expect(op, "weight", weight, &[c])?;
    let params = NormParams { n: u32_of(op, n)?, c: u32_of(op, c)?, eps };
    prog.dispatch(Kernel::RmsnormForward, &params, &[(1, out), (2, rstd), (3, inp), (4, weight)], grid(u32_of(op, n)?))
}

/// dinp (N, C) += the input gradient of rmsnorm for dout (N, C).
pub fn rmsnorm_backward(
    prog: &mut Program,
    dinp: &Tensor,
    dout: &Tensor,
    inp: &Tensor,
    rstd: &Tensor,
    weight: &Tensor,
    n: usize,
    c: usize,
) -> Result<()> {
    let op = "rmsnorm_backward";
    expect(op, "dinp", dinp, &[n, c])?;
    expect(op, "dout", dout, &[n, c])?;
    expect(op, "inp", inp, &[n, c])?;
    expect(op, "rstd", rstd, &[n])?;
    expect(op, "weight", weight, &[c])?;
    let params = NormParams { n: u32_of(op, n)?, c: u32_of(op, c)?, eps: 0.0 };
    prog.dispatch(
        Kernel::RmsnormBackward,
        &params,
        &[(1, dinp), (2, rstd), (3, inp), (4, weight), (5, dout)],
        grid(u32_of(op, n)?),
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct EmbeddingParams {
    n: u32,
    c: u32,
    v: u32,
    v0: u32,
    vp: u32,
}

/// out (N, C) = wte[ids] with ids (N) u32 and wte (V, C), one dispatch per vocabulary part: a
/// copy from an f32 part, a gather that dequantizes rows from a part kept in a GGML type.
pub fn embedding_forward(prog: &mut Program, out: &Tensor, ids: &Tensor, wte: &SplitTensor) -> Result<()> {
    let op = "embedding_forward";
    let [v, c] = wte.shape();
    let n = ids.numel();
    expect(op, "out", out, &[n, c])?;
    for (v0, part) in wte.parts() {
        let part = match part {
            Weight::F32(t) => t,
            Weight::Quant(q) => {
                super::gather_quant(prog, out, ids, q, v0)?;
                continue;
            }
            Weight::Split(_) => return Err(shape_err(op, "a part split again")),
        };
        let vp = part.shape()[0];
        let params = EmbeddingParams {
            n: u32_of(op, n)?,
            c: u32_of(op, c)?,
            v: u32_of(op, v)?,
            v0: u32_of(op, v0)?,
            vp: u32_of(op, vp)?,
        };
        prog.dispatch(Kernel::EmbeddingForward, &params, &[(1, out), (2, ids), (3, part)], grid(groups_for(n * c)))?;
    }
    Ok(())
}
