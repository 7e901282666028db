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
    beta: f32,
    src_width: u32,
    src_col: u32,
    dst_width: u32,
    dst_col: u32,
}

impl ElementwiseParams {
    fn new(n: u32, width: u32) -> Self {
        ElementwiseParams {
            n,
            width,
            p_drop: 0.0,
            stream: 0,
            beta: 0.0,
            src_width: 0,
            src_col: 0,
            dst_width: 0,
            dst_col: 0,
        }
    }
}

/// out += inp, same number of elements.
pub fn add_inplace(prog: &mut Program, out: &Tensor, inp: &Tensor) -> Result<()> {
    let op = "add_inplace";
    let n = out.numel();
    expect_numel(op, "inp", inp, n)?;
    let params = ElementwiseParams::new(u32_of(op, n)?, 0);
    prog.dispatch(Kernel::AddInplace, &params, &[(1, out), (2, inp)], grid(groups_for(n)))
}

/// out (rows, W) += bias (W) on every row.
pub fn add_bias(prog: &mut Program, out: &Tensor, bias: &Tensor) -> Result<()> {
    let op = "add_bias";
    let (n, w) = (out.numel(), bias.numel());
    if w == 0 || n % w != 0 {
        return Err(shape_err(op, format!("bias {:?} does not divide out {:?}", bias.shape(), out.shape())));
    }
    let params = ElementwiseParams::new(u32_of(op, n)?, u32_of(op, w)?);
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
    let params = ElementwiseParams { p_drop, stream, ..ElementwiseParams::new(u32_of(op, n)?, 0) };
    prog.dispatch(Kernel::Dropout, &params, &[(1, out), (2, inp), (3, step)], grid(groups_for(n)))
}

/// A block of columns from one row-major matrix to another, over `rows` rows: `dst` (rows,
/// dst_width) columns [dst_col, dst_col + width) = `src` (rows, src_width) columns [src_col,
/// src_col + width) + beta · their values in `dst` (beta 0 does not read them).
pub fn copy_columns(
    prog: &mut Program,
    (dst, dst_width, dst_col): (&Tensor, usize, usize),
    (src, src_width, src_col): (&Tensor, usize, usize),
    rows: usize,
    width: usize,
    beta: f32,
) -> Result<()> {
    let op = "copy_columns";
    if dst_col + width > dst_width || src_col + width > src_width {
        let detail = format!("columns {src_col}..+{width} of {src_width} into {dst_col}..+{width} of {dst_width}");
        return Err(shape_err(op, detail));
    }
    expect_numel(op, "dst", dst, rows * dst_width)?;
    expect_numel(op, "src", src, rows * src_width)?;
    let n = rows * width;
    let params = ElementwiseParams {
        beta,
        src_width: u32_of(op, src_width)?,
        src_col: u32_of(op, src_col)?,
        dst_width: u32_of(op, dst_width)?,
        dst_col: u32_of(op, dst_col)?,
        ..ElementwiseParams::new(u32_of(op, n)?, u32_of(op, width.max(1))?)
    };
    prog.dispatch(Kernel::CopyColumns, &params, &[(1, dst), (2, src)], grid(groups_for(n)))
}
