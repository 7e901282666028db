//! Wrappers of `shaders/matmul.wgsl` and `shaders/matmul_tiled.wgsl`: each matmul dispatches
//! to the kernel family of the program's device (the mat-vec is the same in both).

use bytemuck::{Pod, Zeroable};

use super::{expect_numel, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, KernelFamily, Program, Tensor};

/// The most rows (M) the mat-vec kernels take: decoding has one.
pub const MATVEC_ROWS: usize = 4;

/// Both families' parameters. A dispatch adds the products over k in [k_begin, k_end) only;
/// the tiled family's workgroup z walks the slice [k_begin + z·k_slice, + k_slice) of that.
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
    k_slice: u32,
    slices: u32,
}

/// The most K one matmul dispatch walks: longer products are recorded as several dispatches over
/// spans of K, the later ones adding to C. Lavapipe stops any loop after 65535 iterations per
/// invocation (counted over nested loops), which returns sums cut short (the CPU family's tn at
/// K > 65535, the tiled family at K > ~58000); a bounded dispatch also stays clear of GPU driver
/// watchdogs. The head's input gradient reduces over a whole vocabulary part (K ~ 76K for
/// Qwen2's vocabulary in two parts).
pub const K_SPAN: usize = 16384;

/// The CPU family's dy·W walks K (the rows of B) in spans of at most this many rows. On a CPU
/// implementation the invocations of a workgroup run one SIMD batch after another, each over the
/// whole span, so the workgroup's strip of B (32 columns of each row) is read once per batch;
/// 2048 rows of it (256 KiB) stay in a core's cache for the next batch, where the head's input
/// gradient over a whole vocabulary part (K up to 32768) would go back to memory each time.
/// Measured on lavapipe at 64×576×32768: 6.8 GFLOP/s against 4.1 over spans of [`K_SPAN`].
const CPU_NN_SPAN: usize = 2048;

/// Split K (tiled family): a product whose C has fewer than this many 64×64 tiles is split
/// along K into slices that run side by side, so that about [`SPLIT_K_GROUPS`] workgroups run.
const SPLIT_K_BELOW: usize = 64;
const SPLIT_K_GROUPS: usize = 256;
/// The shortest K slice: shorter ones add more partial sums than they save.
const SPLIT_K_MIN_SLICE: usize = 128;
/// The most partial-product f32s a split product holds (4 MiB): a training plan keeps one buffer
/// of this size for them (`matmul_partials`), counted in its memory plan.
pub const SPLIT_K_MAX_PARTS: usize = 1 << 20;

/// How a tiled product with `tiles` tiles of C, (M·N) = `mn`, is split along `k`: Some((slices,
/// slice length)), the length a multiple of the kernel's K step (16) and at most [`K_SPAN`],
/// or None to walk K in one workgroup per tile.
pub fn split_k(tiles: usize, mn: usize, k: usize) -> Option<(usize, usize)> {
    if tiles >= SPLIT_K_BELOW || k < 2 * SPLIT_K_MIN_SLICE {
        return None;
    }
    let most = (k / SPLIT_K_MIN_SLICE).min(SPLIT_K_MAX_PARTS / mn);
    let slices = SPLIT_K_GROUPS.div_ceil(tiles).min(most).max(k.div_ceil(K_SPAN));
    if slices < 2 || slices > most {
        return None;
    }
    let len = k.div_ceil(slices).next_multiple_of(16);
    Some((k.div_ceil(len), len))
}

/// One dispatch of a product: the span [begin, end) of the contraction it walks, the slice of
/// that span each workgroup z takes (`slices` of them, each into its own block of the target),
/// and the alpha and beta it applies.
#[derive(Clone, Copy)]
pub(super) struct Pass {
    pub begin: u32,
    pub end: u32,
    pub slice: u32,
    pub slices: u32,
    pub alpha: f32,
    pub beta: f32,
}

/// Records a product of C (M, N) over a contraction of length `k` as passes of `dispatch(prog,
/// target, pass)`, which records the product's kernel writing into `target`. With `split`
/// (from [`split_k`]), one pass of all slices into the program's scratch, then `matmul_reduce`
/// sums them into C; else spans of at most `k_span` (at most [`K_SPAN`]), the later ones adding
/// to C.
pub(super) fn record_passes(
    prog: &mut Program,
    op: &'static str,
    c: &Tensor,
    (m, n, k): (usize, usize, usize),
    split: Option<(usize, usize)>,
    k_span: usize,
    alpha: f32,
    beta: f32,
    mut dispatch: impl FnMut(&mut Program, &Tensor, Pass) -> Result<()>,
) -> Result<()> {
    let (m32, n32, k32) = (u32_of(op, m)?, u32_of(op, n)?, u32_of(op, k)?);
    if let Some((slices, len)) = split {
        let parts = prog.scratch(slices * m * n)?;
        let slices = u32_of(op, slices)?;
        dispatch(prog, &parts, Pass { begin: 0, end: k32, slice: u32_of(op, len)?, slices, alpha: 1.0, beta: 0.0 })?;
        let params = Params { m: m32, n: n32, k: k32, alpha, beta, k_begin: 0, k_end: k32, k_slice: 0, slices };
        return prog.dispatch(Kernel::MatmulReduce, &params, &[(1, c), (4, &parts)], grid(groups_for(m * n)));
    }
    // One pass even at K = 0, so that c is still scaled by beta.
    let k_span = k_span.min(K_SPAN);
    for span in 0..k.div_ceil(k_span).max(1) {
        let begin = u32_of(op, span * k_span)?;
        let end = u32_of(op, ((span + 1) * k_span).min(k))?;
        let beta = if span == 0 { beta } else { 1.0 };
        dispatch(prog, c, Pass { begin, end, slice: end - begin, slices: 1, alpha, beta })?;
    }
    Ok(())
}

/// Records a matmul with the kernel of the device's family: `kernels` is (CPU family, tiled
/// family). The CPU family's workgroup covers 32×32 of c, the tiled family's 64×64 and splits
/// a product with few tiles and a long K ([`split_k`]).
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
    let (kernel, tile, split) = match prog.gpu().info.kernels {
        KernelFamily::Cpu => (kernels.0, 32, None),
        KernelFamily::Tiled => (kernels.1, 64, split_k(m.div_ceil(64) * n.div_ceil(64), m * n, k)),
    };
    let k_span = if kernel == Kernel::MatmulNn { CPU_NN_SPAN } else { K_SPAN };
    let (gx, gy) = (u32_of(op, n.div_ceil(tile))?, u32_of(op, m.div_ceil(tile))?);
    let (m32, n32, k32) = (u32_of(op, m)?, u32_of(op, n)?, u32_of(op, k)?);
    record_passes(prog, op, c, (m, n, k), split, k_span, alpha, beta, |prog, target, pass| {
        let Pass { begin, end, slice, slices, alpha, beta } = pass;
        let params = Params { m: m32, n: n32, k: k32, alpha, beta, k_begin: begin, k_end: end, k_slice: slice, slices };
        prog.dispatch(kernel, &params, &[(1, target), (2, a), (3, b)], [gx, gy, slices])
    })
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
    let params = Params {
        m: u32_of(op, m)?,
        n: u32_of(op, n)?,
        k: k32,
        alpha,
        beta,
        k_begin: 0,
        k_end: k32,
        k_slice: k32,
        slices: 1,
    };
    prog.dispatch(Kernel::MatvecNt, &params, &[(1, c), (2, a), (3, b)], grid(groups_for(n)))
}
