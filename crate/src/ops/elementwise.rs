//! Wrappers of `shaders/swiglu.wgsl` and `shaders/elementwise.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{expect_numel, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, Program, Tensor};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct SwigluParams {
    n: u32,
}

/// h = silu(g) ⊙ u, all (N, F).
pub fn swiglu_forward(prog: &mut Program, h: &Tensor, g: &Tensor, u: &Tensor) -> Result<()> {
    let op = "swiglu_forward";
    let n = h.numel();
    expect_numel(op, "g", g, n)?;
    expect_numel(op, "u", u, n)?;
    prog.dispatch(
        Kernel::SwigluForward,
        &SwigluParams { n: u32_of(op, n)? },
        &[(1, h), (3, g), (4, u)],
        grid(groups_for(n)),
    )
}

/// dg, du (N, F) from dh (N, F); written, not accumulated.
pub fn swiglu_backward(
    prog: &mut Program,
    dg: &Tensor,
    du: &Tensor,
    dh: &Tensor,
    g: &Tensor,
    u: &Tensor,
) -> Result<()> {
    let op = "swiglu_backward";
    let n = dh.numel();
    for (name, t) in [("dg", dg), ("du", du), ("g", g), ("u", u)] {
        expect_numel(op, name, t, n)?;
    }
    prog.dispatch(
        Kernel::SwigluBackward,
        &SwigluParams { n: u32_of(op, n)? },
        &[(1, dg), (2, du), (3, g), (4, u), (5, dh)],
        grid(groups_for(n)),
    )
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct ElementwiseParams {
    n: u32,
    width: u32,
    p_drop: f32,
    stream: u32,
}

/// out += inp, same number of elements.
pub fn add_inplace(prog: &mut Program, out: &Tensor, inp: &Tensor) -> Result<()> {
    let op = "add_inplace";
    let n = out.numel();
    expect_numel(op, "inp", inp, n)?;
    let params = ElementwiseParams { n: u32_of(op, n)?, width: 0, p_drop: 0.0, stream: 0 };
    prog.dispatch(Kernel::AddInplace, &params, &[(1, out), (2, inp)], grid(groups_for(n)))
}

/// out (rows, W) += bias (W) on every row.
pub fn add_bias(prog: &mut Program, out: &Tensor, bias: &Tensor) -> Result<()> {
    let op = "add_bias";
    let (n, w) = (out.numel(), bias.numel());
    if w == 0 || n % w != 0 {
        return Err(shape_err(op, format!("bias {:?} does not divide out {:?}", bias.shape(), out.shape())));
    }
    let params = ElementwiseParams { n: u32_of(op, n)?, width: u32_of(op, w)?, p_drop: 0.0, stream: 0 };
    prog.dispatch(Kernel::AddBias, &params, &[(1, out), (2, bias)], grid(groups_for(n)))
}

/// out = inp ⊙ mask / (1 − p), the mask drawn from the step's seed and `stream`; the same
/// call on a gradient applies the same mask.
pub fn dropout(prog: &mut Program, out: &Tensor, inp: &Tensor, step: &Tensor, p_drop: f32, stream: u32) -> Result<()> {
    let op = "dropout";
    if !(0.0..1.0).contains(&p_drop) {
        return Err(shape_err(op, format!("probability {p_drop} is not in [0, 1)")));
    }
    let n = out.numel();
    expect_numel(op, "inp", inp, n)?;
    let params = ElementwiseParams { n: u32_of(op, n)?, width: 0, p_drop, stream };
    prog.dispatch(Kernel::Dropout, &params, &[(1, out), (2, inp), (3, step)], grid(groups_for(n)))
}
