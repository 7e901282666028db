//! Wrappers of `shaders/matmul.wgsl` and `shaders/matmul_tiled.wgsl`: each matmul dispatches
//! to the kernel family of the program's device (the mat-vec is the same in both).

use bytemuck::{Pod, Zeroable};

use super::{expect_numel, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, KernelFamily, Program, Tensor};

/// The most rows (M) the mat-vec kernels take: decoding has one.
pub const MATVEC_ROWS: usize = 4;

/// Both families' parameters. A dispatch adds the products over k in [k_begin, k_end) only.
#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    alpha: f32,
    beta: f32,
    k_begin: u32,
    k_end: u32,
}

/// The most K one matmul dispatch walks: longer products are recorded as several dispatches over
/// spans of K, the later ones adding to C. Lavapipe stops any loop after 65535 iterations per
/// invocation (counted over nested loops), which returns sums cut short (the CPU family's tn at
/// K > 65535, the tiled family at K > ~58000); a bounded dispatch also stays clear of GPU driver
/// watchdogs. The head's input gradient reduces over a whole vocabulary part (K ~ 76K for
/// Qwen2's vocabulary in two parts).
pub const K_SPAN: usize = 16384;

/// Records a matmul with the kernel of the device's family: `kernels` is (CPU family, tiled
/// family). The CPU family's workgroup covers 32×32 of c, the tiled family's 64×64; each
/// dispatch walks at most [`K_SPAN`] of K.
fn record(
    prog: &mut Program,
    kernels: (Kernel, Kernel),
    op: &'static str,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    (m, n, k): (usize, usize, usize),
    alpha: f32,
    beta: f32,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Err(shape_err(op, format!("empty output ({m}, {n})")));
    }
    let (kernel, tile) = match prog.gpu().info.kernels {
        KernelFamily::Cpu => (kernels.0, 32),
        KernelFamily::Tiled => (kernels.1, 64),
    };
    let groups = [u32_of(op, n.div_ceil(tile))?, u32_of(op, m.div_ceil(tile))?, 1];
    let (m, n, k32) = (u32_of(op, m)?, u32_of(op, n)?, u32_of(op, k)?);
    // One dispatch even at K = 0, so that c is still scaled by beta.
    for span in 0..k.div_ceil(K_SPAN).max(1) {
        let k_begin = span * K_SPAN;
        let k_end = (k_begin + K_SPAN).min(k);
        let beta = if span == 0 { beta } else { 1.0 };
        let (k_begin, k_end) = (u32_of(op, k_begin)?, u32_of(op, k_end)?);
        let params = Params { m, n, k: k32, alpha, beta, k_begin, k_end };
        prog.dispatch(kernel, &params, &[(1, c), (2, a), (3, b)], groups)?;
    }
    Ok(())
}

fn need_mult4(op: &'static str, what: &str, v: usize) -> Result<()> {
    if !v.is_multiple_of(4) {
        return Err(shape_err(op, format!("{what} = {v} must be a multiple of 4 (vec4 loads)")));
    }
    Ok(())
}

/// c (M, N) = alpha · a (M, K) · b (N, K)ᵀ + beta · c. The forward of a linear layer, y = x·Wᵀ.
pub fn matmul_nt(
    prog: &mut Program,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matmul_nt";
    need_mult4(op, "K", k)?;
    expect_numel(op, "c", c, m * n)?;
    expect_numel(op, "a", a, m * k)?;
    expect_numel(op, "b", b, n * k)?;
    record(prog, (Kernel::MatmulNt, Kernel::MatmulNtTiled), op, c, a, b, (m, n, k), alpha, beta)
}

/// c (M, N) = alpha · a (M, K) · b (K, N) + beta · c. The input gradient of a linear layer, dx = dy·W.
pub fn matmul_nn(
    prog: &mut Program,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matmul_nn";
    need_mult4(op, "K", k)?;
    need_mult4(op, "N", n)?;
    expect_numel(op, "c", c, m * n)?;
    expect_numel(op, "a", a, m * k)?;
    expect_numel(op, "b", b, k * n)?;
    record(prog, (Kernel::MatmulNn, Kernel::MatmulNnTiled), op, c, a, b, (m, n, k), alpha, beta)
}

/// c (M, N) = alpha · a (K, M)ᵀ · b (K, N) + beta · c. The weight gradient of a linear layer, dW = dyᵀ·x.
pub fn matmul_tn(
    prog: &mut Program,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matmul_tn";
    need_mult4(op, "M", m)?;
    need_mult4(op, "N", n)?;
    expect_numel(op, "c", c, m * n)?;
    expect_numel(op, "a", a, k * m)?;
    expect_numel(op, "b", b, k * n)?;
    record(prog, (Kernel::MatmulTn, Kernel::MatmulTnTiled), op, c, a, b, (m, n, k), alpha, beta)
}

/// c (M, N) = alpha · a (M, K) · b (N, K)ᵀ + beta · c for M ≤ [`MATVEC_ROWS`]: the forward of a
/// linear layer when decoding, one invocation per column of c (`matmul_nt` computes four rows
/// per invocation, three of them wasted at M = 1). K must be a multiple of 4.
pub fn matvec_nt(
    prog: &mut Program,
    c: &Tensor,
    a: &Tensor,
    b: &Tensor,
    m: usize,
    n: usize,
    k: usize,
    alpha: f32,
    beta: f32,
) -> Result<()> {
    let op = "matvec_nt";
    need_mult4(op, "K", k)?;
    if m == 0 || m > MATVEC_ROWS || n == 0 {
        return Err(shape_err(op, format!("output ({m}, {n}): need 1 ≤ M ≤ {MATVEC_ROWS} and N > 0")));
    }
    expect_numel(op, "c", c, m * n)?;
    expect_numel(op, "a", a, m * k)?;
    expect_numel(op, "b", b, n * k)?;
    let k32 = u32_of(op, k)?;
    let params = Params { m: u32_of(op, m)?, n: u32_of(op, n)?, k: k32, alpha, beta, k_begin: 0, k_end: k32 };
    prog.dispatch(Kernel::MatvecNt, &params, &[(1, c), (2, a), (3, b)], grid(groups_for(n)))
}
