//! Wrappers of `shaders/rope.wgsl` and `shaders/attention.wgsl`.

use bytemuck::{Pod, Zeroable};

use super::{expect, expect_numel, groups_for, u32_of};
use crate::error::{shape_err, Result};
use crate::gpu::{grid, Kernel, KernelFamily, Program, Tensor};

/// The sizes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttentionShape {
    pub b: usize,
    pub t: usize,
    pub nh: usize,
    pub nkv: usize,
    pub hd: usize,
}

impl AttentionShape {
    fn check(&self, op: &'static str) -> Result<()> {
        if !self.hd.is_multiple_of(4) || self.hd > 128 || self.hd == 0 {
            return Err(shape_err(op, format!("head dim {} must be a multiple of 4 and at most 128", self.hd)));
        }
        if self.nkv == 0 || !self.nh.is_multiple_of(self.nkv) {
            return Err(shape_err(op, format!("{} heads are not a multiple of {} kv heads", self.nh, self.nkv)));
        }
        Ok(())
    }

    /// Refuses a shape whose invocations would run more loop iterations than the device allows
    /// (`GpuInfo::loop_limit`: lavapipe ends loops past 65535, which would leave the attention
    /// silently wrong). Each invocation walks `steps(t)` keys or queries, each with two loops
    /// over HD/4 inside and a step back through its segment, after a few loops over HD/4 of its
    /// own. Measured on lavapipe at HD = 64: the forward goes wrong from query 1816 (1817 keys,
    /// about 36 iterations a key). Backward walks as many: dk and dv take one query head per
    /// invocation. One iteration a step more is counted than measured, to stay clear of the limit.
    fn check_loops(&self, prog: &Program, op: &'static str, steps: impl Fn(u64) -> u64) -> Result<()> {
        let info = &prog.gpu().info;
        let Some(limit) = info.loop_limit else {
            return Ok(());
        };
        let hd4 = self.hd as u64 / 4;
        let (per_step, prologue) = (2 * hd4 + 5, 4 * hd4 + 16);
        let need = steps(self.t as u64) * per_step + prologue;
        if need <= limit {
            return Ok(());
        }
        let most = (1..=self.t as u64).rev().find(|&t| steps(t) * per_step + prologue <= limit).unwrap_or(0);
        Err(shape_err(
            op,
            format!(
                "{} tokens with head dim {} and {} query heads per kv head need {need} loop iterations in one \
                 invocation; {} ends any loop after {limit}, which would leave the result wrong: at most {most} \
                 tokens per sequence on this adapter (a GPU has no such limit)",
                self.t,
                self.hd,
                self.nh / self.nkv,
                info.name
            ),
        ))
    }

    /// The head dim in vec4s: the attention kernels' pipeline constant `HD4`.
    fn hd4(&self) -> u32 {
        (self.hd / 4) as u32
    }

    /// Workgroups of the CPU family's kernels: one invocation per (b, head, row).
    fn row_groups(&self) -> u32 {
        groups_for(self.b * self.nh * self.t)
    }

    /// Workgroups of the tiled family's kernels (`attention_tiled.wgsl`): 64 invocations take
    /// 64 / lanes rows of one (b, head), lanes = HD/4 rounded up to a power of two.
    fn tile_groups(&self) -> u32 {
        let rows = 64 / (self.hd / 4).next_power_of_two();
        (self.b * self.nh * self.t.div_ceil(rows)).min(u32::MAX as usize) as u32
    }

    fn q_numel(&self) -> usize {
        self.b * self.t * self.nh * self.hd
    }

    fn kv_numel(&self) -> usize {
        self.b * self.t * self.nkv * self.hd
    }

    fn params(&self, op: &'static str) -> Result<AttentionParams> {
        Ok(AttentionParams {
            b: u32_of(op, self.b)?,
            t: u32_of(op, self.t)?,
            nh: u32_of(op, self.nh)?,
            nkv: u32_of(op, self.nkv)?,
            hd: u32_of(op, self.hd)?,
            scale: 1.0 / (self.hd as f32).sqrt(),
        })
    }
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct RopeParams {
    n: u32,
    nh: u32,
    hd: u32,
}

fn rope(
    prog: &mut Program,
    kernel: Kernel,
    op: &'static str,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pos: &Tensor,
    nh: usize,
    hd: usize,
) -> Result<()> {
    let n = pos.numel();
    expect_numel(op, "x", x, n * nh * hd)?;
    if !hd.is_multiple_of(2) || cos.numel() != sin.numel() || !cos.numel().is_multiple_of((hd / 2).max(1)) {
        return Err(shape_err(op, format!("tables {:?} do not fit head dim {hd}", cos.shape())));
    }
    let params = RopeParams { n: u32_of(op, n)?, nh: u32_of(op, nh)?, hd: u32_of(op, hd)? };
    prog.dispatch(kernel, &params, &[(1, x), (2, cos), (3, sin), (4, pos)], grid(groups_for(n * nh * hd / 2)))
}

/// Rotates x (N, NH, HD) in place by the angles of positions pos (N); cos, sin (maxT, HD/2).
pub fn rope_forward(
    prog: &mut Program,
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pos: &Tensor,
    nh: usize,
    hd: usize,
) -> Result<()> {
    rope(prog, Kernel::RopeForward, "rope_forward", x, cos, sin, pos, nh, hd)
}

/// Applies the inverse rotation to a gradient dx (N, NH, HD), in place.
pub fn rope_backward(
    prog: &mut Program,
    dx: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    pos: &Tensor,
    nh: usize,
    hd: usize,
) -> Result<()> {
    rope(prog, Kernel::RopeBackward, "rope_backward", dx, cos, sin, pos, nh, hd)
}

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable)]
struct AttentionParams {
    b: u32,
    t: u32,
    nh: u32,
    nkv: u32,
    hd: u32,
    scale: f32,
}

/// out (B, T, NH, HD) = causal softmax(q·kᵀ/√HD)·v, each query over the keys of its own
/// segment: `seg` (B, T) gives every token a segment id, and a segment is a run of equal ids
/// (packed examples; one id per row is plain causal attention). `stats` (2, B, NH, T) gets the
/// log-sum-exp of each query row in its first half, for backward.
pub fn attention_forward(
    prog: &mut Program,
    out: &Tensor,
    stats: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    seg: &Tensor,
    s: AttentionShape,
) -> Result<()> {
    let op = "attention_forward";
    s.check(op)?;
    s.check_loops(prog, op, |t| t)?;
    expect_numel(op, "out", out, s.q_numel())?;
    expect(op, "stats", stats, &[2, s.b, s.nh, s.t])?;
    expect_numel(op, "q", q, s.q_numel())?;
    expect_numel(op, "k", k, s.kv_numel())?;
    expect_numel(op, "v", v, s.kv_numel())?;
    expect_numel(op, "seg", seg, s.b * s.t)?;
    let (kernel, groups) = match prog.gpu().info.kernels {
        KernelFamily::Cpu => (Kernel::AttentionForward, s.row_groups()),
        KernelFamily::Tiled => (Kernel::AttentionForwardTiled, s.tile_groups()),
    };
    let bindings = [(1, out), (2, stats), (3, q), (4, k), (5, v), (8, seg)];
    prog.dispatch_with(kernel, s.hd4(), &s.params(op)?, &bindings, grid(groups))
}

/// dq, dk, dv from dout, recomputing probabilities from q, k, v and the log-sum-exp in the
/// first half of `stats` (2, B, NH, T); its second half gets rowsum(dout ⊙ out). `seg` as in
/// [`attention_forward`]. `heads` is scratch of at least dq's size each, where each query head's
/// share of dk and dv is summed over its group when a kv head serves several query heads.
pub fn attention_backward(
    prog: &mut Program,
    dq: &Tensor,
    dk: &Tensor,
    dv: &Tensor,
    heads: (&Tensor, &Tensor),
    stats: &Tensor,
    dout: &Tensor,
    out: &Tensor,
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    seg: &Tensor,
    s: AttentionShape,
) -> Result<()> {
    let op = "attention_backward";
    s.check(op)?;
    s.check_loops(prog, op, |t| t)?;
    for (name, t) in [("dq", dq), ("dout", dout), ("out", out), ("q", q)] {
        expect_numel(op, name, t, s.q_numel())?;
    }
    for (name, t) in [("dk", dk), ("dv", dv), ("k", k), ("v", v)] {
        expect_numel(op, name, t, s.kv_numel())?;
    }
    expect(op, "stats", stats, &[2, s.b, s.nh, s.t])?;
    expect_numel(op, "seg", seg, s.b * s.t)?;
    let params = s.params(op)?;
    let (dq_kernel, dkv_kernel, groups) = match prog.gpu().info.kernels {
        KernelFamily::Cpu => (Kernel::AttentionBackwardDq, Kernel::AttentionBackwardDkv, s.row_groups()),
        KernelFamily::Tiled => (Kernel::AttentionBackwardDqTiled, Kernel::AttentionBackwardDkvTiled, s.tile_groups()),
    };
    let bindings = [(1, dq), (2, stats), (3, q), (4, k), (5, v), (6, dout), (7, out), (8, seg)];
    prog.dispatch_with(dq_kernel, s.hd4(), &params, &bindings, grid(groups))?;
    if s.nh == s.nkv {
        let bindings = [(1, dk), (2, stats), (3, q), (4, k), (5, v), (6, dout), (8, seg), (9, dv)];
        return prog.dispatch_with(dkv_kernel, s.hd4(), &params, &bindings, grid(groups));
    }
    let dk_heads = heads.0.view(0, &[s.q_numel()])?;
    let dv_heads = heads.1.view(0, &[s.q_numel()])?;
    let bindings = [(1, &dk_heads), (2, stats), (3, q), (4, k), (5, v), (6, dout), (8, seg), (9, &dv_heads)];
    prog.dispatch_with(dkv_kernel, s.hd4(), &params, &bindings, grid(groups))?;
    prog.dispatch(
        Kernel::AttentionDkvReduce,
        &params,
        &[(1, dk), (9, dv), (11, &dk_heads), (12, &dv_heads)],
        grid(groups_for(s.kv_numel() / 4)),
    )
}

/// Generation step: out (NH, HD) = attention of the new query q (NH, HD) over the cached keys
/// and values (maxT, NKV, HD) at positions 0..=pos[0]. `s.b` must be 1 and `s.t` the cache length.
pub fn attention_decode(
    prog: &mut Program,
    out: &Tensor,
    q: &Tensor,
    k_cache: &Tensor,
    v_cache: &Tensor,
    pos: &Tensor,
    s: AttentionShape,
) -> Result<()> {
    let op = "attention_decode";
    s.check(op)?;
    s.check_loops(prog, op, |t| t)?;
    if s.b != 1 {
        return Err(shape_err(op, format!("batch {} (decoding takes one sequence)", s.b)));
    }
    expect_numel(op, "out", out, s.nh * s.hd)?;
    expect_numel(op, "q", q, s.nh * s.hd)?;
    expect_numel(op, "k_cache", k_cache, s.kv_numel())?;
    expect_numel(op, "v_cache", v_cache, s.kv_numel())?;
    expect_numel(op, "pos", pos, 1)?;
    prog.dispatch_with(
        Kernel::AttentionDecode,
        s.hd4(),
        &s.params(op)?,
        &[(1, out), (3, q), (4, k_cache), (5, v_cache), (10, pos)],
        [groups_for(s.nh), 1, 1],
    )
}

/// Writes row (NKV, HD) into cache (maxT, NKV, HD) at position pos[0].
pub fn kv_append(prog: &mut Program, cache: &Tensor, row: &Tensor, pos: &Tensor, s: AttentionShape) -> Result<()> {
    let op = "kv_append";
    s.check(op)?;
    expect_numel(op, "cache", cache, s.kv_numel())?;
    expect_numel(op, "row", row, s.nkv * s.hd)?;
    expect_numel(op, "pos", pos, 1)?;
    prog.dispatch(
        Kernel::KvAppend,
        &s.params(op)?,
        &[(1, cache), (3, row), (10, pos)],
        [groups_for(s.nkv * s.hd / 4), 1, 1],
    )
}
