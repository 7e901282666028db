//! One decoder layer, forward and backward, as flat ordered lists of kernel calls. Backward is
//! forward walked in reverse. Residual gradients accumulate in one (N, C) buffer, `dres`.

use super::weights::{LayerWeights, Linear};
use super::ModelConfig;
use crate::error::Result;
use crate::gpu::{Program, Tensor};
use crate::lora::dora::{self, NormScratch};
use crate::lora::{LoraConfig, LoraModule, ModuleGrads, Target};
use crate::ops::{self, AttentionShape};

/// Activations of one layer that backward reads (shared by all layers under recompute).
pub(super) struct LayerActs<T = Tensor> {
    pub x: T,                     // (N, C) layer input: the residual stream
    pub ln1: T,                   // (N, C)
    pub rstd1: T,                 // (N)
    pub q: T,                     // (N, NH·HD), after RoPE
    pub k: T,                     // (N, NKV·HD), after RoPE
    pub v: T,                     // (N, NKV·HD)
    pub att: T,                   // (N, NH·HD)
    pub stats: T,                 // (2, B, NH, T) attention's log-sum-exp and rowsum(dO ⊙ O)
    pub xmid: T,                  // (N, C) residual after attention
    pub ln2: T,                   // (N, C)
    pub rstd2: T,                 // (N)
    pub g: T,                     // (N, F)
    pub u: T,                     // (N, F)
    pub h: T,                     // (N, F)
    pub lora_u: Vec<(Target, T)>, // (N, Rp) = dropout(x)·Aᵀ per adapted module
    /// DoRA, per adapted module: t (N, out) = x'·Wᵀ + s·u·Bᵀ and sc (2, out) (see `lora::dora`).
    pub dora: Vec<(Target, T, T)>,
}

/// The sizes activations are allocated for.
pub(super) struct Sizes {
    pub b: usize,
    pub t: usize,
    pub c: usize,
    pub f: usize,
    pub nh: usize,
    pub qd: usize,
    pub kvd: usize,
    pub rp: usize,
    pub targets: Vec<Target>,
    /// Whether the adapted modules are DoRA modules (their activations and scratch are planned).
    pub dora: bool,
}

impl Sizes {
    pub fn new(cfg: &ModelConfig, b: usize, t: usize, targets: &[Target], rp: usize, dora: bool) -> Sizes {
        Sizes {
            b,
            t,
            c: cfg.hidden_size,
            f: cfg.intermediate_size,
            nh: cfg.num_attention_heads,
            qd: cfg.q_dim(),
            kvd: cfg.kv_dim(),
            rp,
            targets: targets.to_vec(),
            dora,
        }
    }

    /// The output width of the projection `t` adapts.
    fn out_dim(&self, t: Target) -> usize {
        match t {
            Target::Q => self.qd,
            Target::K | Target::V => self.kvd,
            Target::O | Target::Down => self.c,
            Target::Gate | Target::Up => self.f,
        }
    }

    /// The widest projection output.
    fn max_out(&self) -> usize {
        self.c.max(self.f).max(self.qd).max(self.kvd)
    }
}

/// Allocates a named f32 tensor (the caller counts the bytes). A plan allocates [`Tensor`]s; the
/// memory plan runs the same allocation code with an allocator that only records the shapes.
pub(super) type Alloc<'a, T = Tensor> = dyn Fn(&str, &[usize]) -> Result<T> + 'a;

impl<T: Clone> LayerActs<T> {
    pub fn allocate(z: &Alloc<T>, x: T, s: &Sizes) -> Result<LayerActs<T>> {
        let n = s.b * s.t;
        Ok(LayerActs {
            x,
            ln1: z("ln1", &[n, s.c])?,
            rstd1: z("rstd1", &[n])?,
            q: z("q", &[n, s.qd])?,
            k: z("k", &[n, s.kvd])?,
            v: z("v", &[n, s.kvd])?,
            att: z("att", &[n, s.qd])?,
            stats: z("attention_stats", &[2, s.b, s.nh, s.t])?,
            xmid: z("xmid", &[n, s.c])?,
            ln2: z("ln2", &[n, s.c])?,
            rstd2: z("rstd2", &[n])?,
            g: z("g", &[n, s.f])?,
            u: z("u", &[n, s.f])?,
            h: z("h", &[n, s.f])?,
            lora_u: s.targets.iter().map(|&tg| Ok((tg, z("lora_u", &[n, s.rp])?))).collect::<Result<_>>()?,
            dora: if s.dora {
                let act =
                    |tg: Target| Ok((tg, z("dora_t", &[n, s.out_dim(tg)])?, z("dora_scale", &[2, s.out_dim(tg)])?));
                s.targets.iter().map(|&tg| act(tg)).collect::<Result<_>>()?
            } else {
                Vec::new()
            },
        })
    }

    /// The same activations with another layer input: layers of a recomputing plan share all
    /// but their input.
    pub fn share(&self, x: T) -> LayerActs<T> {
        LayerActs {
            x,
            ln1: self.ln1.clone(),
            rstd1: self.rstd1.clone(),
            q: self.q.clone(),
            k: self.k.clone(),
            v: self.v.clone(),
            att: self.att.clone(),
            stats: self.stats.clone(),
            xmid: self.xmid.clone(),
            ln2: self.ln2.clone(),
            rstd2: self.rstd2.clone(),
            g: self.g.clone(),
            u: self.u.clone(),
            h: self.h.clone(),
            lora_u: self.lora_u.clone(),
            dora: self.dora.clone(),
        }
    }
}

impl LayerActs {
    fn lora_u(&self, t: Target) -> &Tensor {
        &self.lora_u.iter().find(|(x, _)| *x == t).expect("an activation for every adapted module").1
    }

    /// DoRA's t (N, out) and sc (2, out) of target `t`.
    fn dora(&self, t: Target) -> Result<(&Tensor, &Tensor)> {
        let found = self.dora.iter().find(|(x, _, _)| *x == t);
        found.map(|(_, tt, sc)| (tt, sc)).ok_or_else(|| crate::Error::Internal("no DoRA activations planned".into()))
    }
}

/// Gradient scratch shared by every layer.
pub(super) struct Scratch<T = Tensor> {
    pub dres: T,    // (N, C) gradient of the residual stream
    pub dln: T,     // (N, C)
    pub dq: T,      // (N, NH·HD)
    pub dk: T,      // (N, NKV·HD)
    pub dv: T,      // (N, NKV·HD)
    pub datt: T,    // (N, NH·HD)
    pub dh: T,      // (N, F)
    pub dg: T,      // (N, F)
    pub du: T,      // (N, F)
    pub dlora_u: T, // (N, Rp)
    pub drop_a: T,  // (N·max(C, F, NH·HD)) dropout scratch; attention backward's dk shares
    pub drop_b: T,  // (N·max(C, F, NH·HD)) dropout scratch; attention backward's dv shares
    /// DoRA: the norm's terms, and dys (N·max out) = dy scaled by m/n.
    pub dora: Option<(NormScratch<T>, T)>,
}

impl<T> Scratch<T> {
    pub fn allocate(z: &Alloc<T>, s: &Sizes) -> Result<Scratch<T>> {
        let n = s.b * s.t;
        let wide = s.c.max(s.f).max(s.qd);
        Ok(Scratch {
            dres: z("dres", &[n, s.c])?,
            dln: z("dln", &[n, s.c])?,
            dq: z("dq", &[n, s.qd])?,
            dk: z("dk", &[n, s.kvd])?,
            dv: z("dv", &[n, s.kvd])?,
            datt: z("datt", &[n, s.qd])?,
            dh: z("dh", &[n, s.f])?,
            dg: z("dg", &[n, s.f])?,
            du: z("du", &[n, s.f])?,
            dlora_u: z("dlora_u", &[n, s.rp])?,
            drop_a: z("drop_a", &[n * wide])?,
            drop_b: z("drop_b", &[n * wide])?,
            dora: if s.dora {
                let o = s.max_out();
                let norm = NormScratch {
                    wsq: z("dora_wsq", &[o])?,
                    aw: z("dora_aw", &[s.rp * o])?,
                    aa: z("dora_aa", &[s.rp * s.rp])?,
                };
                Some((norm, z("dora_dy", &[n * o])?))
            } else {
                None
            },
        })
    }
}

/// What every layer call needs besides its weights and activations.
pub(super) struct Ctx<'a> {
    pub n: usize,
    pub shape: AttentionShape,
    pub eps: f32,
    pub lora_cfg: &'a LoraConfig,
    pub step: &'a Tensor,
    pub cos: &'a Tensor,
    pub sin: &'a Tensor,
    pub pos: &'a Tensor,
    /// Training applies LoRA dropout; evaluation does not (as PEFT in eval mode).
    pub train: bool,
}

impl Ctx<'_> {
    /// The LoRA input: x itself, or dropout(x) drawn into `scratch`.
    fn lora_input(&self, prog: &mut Program, x: &Tensor, m: &LoraModule, scratch: &Tensor) -> Result<Tensor> {
        if !self.train || self.lora_cfg.dropout == 0.0 {
            return Ok(x.clone());
        }
        let xd = scratch.view(0, &[self.n, m.in_features])?;
        ops::dropout(prog, &xd, x, self.step, self.lora_cfg.dropout, m.dropout_stream())?;
        Ok(xd)
    }

    /// Whether LoRA dropout applies: in training, with a nonzero probability.
    fn dropped(&self) -> bool {
        self.train && self.lora_cfg.dropout != 0.0
    }

    /// y (N, out) = beta·y + x·Wᵀ + b + s·(dropout(x)·Aᵀ)·Bᵀ, keeping u = dropout(x)·Aᵀ; for a
    /// DoRA module the output of `lora::dora`, keeping t and sc as well.
    #[allow(clippy::too_many_arguments)]
    fn linear_forward(
        &self,
        prog: &mut Program,
        y: &Tensor,
        x: &Tensor,
        lin: &Linear,
        lora: Option<Adapted>,
        beta: f32,
        s: &Scratch,
    ) -> Result<()> {
        let (n, i, o) = (self.n, lin.in_features, lin.out_features);
        // A few rows (decoding) take the mat-vec kernels, which do not compute rows that are not there.
        let matvec = n <= ops::MATVEC_ROWS;
        let nt = if matvec { ops::matvec_nt } else { ops::matmul_nt };
        let (rp, scale) = (self.lora_cfg.r_padded(), self.lora_cfg.scaling());
        match lora {
            None => ops::frozen_nt(prog, y, x, &lin.weight, n, 1.0, beta)?,
            Some(Adapted { m, u, dora: None }) => {
                ops::frozen_nt(prog, y, x, &lin.weight, n, 1.0, beta)?;
                let xin = self.lora_input(prog, x, m, &s.drop_a)?;
                nt(prog, u, &xin, &m.a, n, rp, i, 1.0, 0.0)?;
                nt(prog, y, u, &m.b, n, o, rp, scale, 1.0)?;
            }
            Some(Adapted { m, u, dora: Some((t, sc)) }) => {
                let (norm, _) = s.dora.as_ref().ok_or_else(no_dora_scratch)?;
                dora::record_scale(prog, sc, lin, m, self.lora_cfg, norm)?;
                let xin = self.lora_input(prog, x, m, &s.drop_a)?;
                // With dropout: y = beta·y + x·Wᵀ − x'·Wᵀ + sc ⊙ t, PEFT's base result plus
                // (m/n − 1) ⊙ x'·Wᵀ + (m/n) ⊙ s·(x'·Aᵀ)·Bᵀ.
                let beta_t = if self.dropped() {
                    ops::frozen_nt(prog, y, x, &lin.weight, n, 1.0, beta)?;
                    ops::frozen_nt(prog, y, &xin, &lin.weight, n, -1.0, 1.0)?;
                    1.0
                } else {
                    beta
                };
                ops::frozen_nt(prog, t, &xin, &lin.weight, n, 1.0, 0.0)?;
                nt(prog, u, &xin, &m.a, n, rp, i, 1.0, 0.0)?;
                nt(prog, t, u, &m.b, n, o, rp, scale, 1.0)?;
                ops::dora_forward(prog, y, t, sc, n, o, beta_t)?;
            }
        }
        if let Some(bias) = &lin.bias {
            ops::add_bias(prog, y, bias)?;
        }
        Ok(())
    }

    /// dx (N, in) = beta·dx + dy·W (+ the LoRA path's share), and the LoRA gradients
    /// gB += s·dyᵀ·u, gA += (s·dy·B)ᵀ·dropout(x); for a DoRA module dy scaled by m/n on the
    /// LoRA path (and on W's, without dropout) and the magnitude's gradient gm += Σ dy ⊙ t / n.
    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        prog: &mut Program,
        dx: &Tensor,
        dy: &Tensor,
        x: &Tensor,
        lin: &Linear,
        lora: Option<(Adapted, &ModuleGrads)>,
        beta: f32,
        s: &Scratch,
    ) -> Result<()> {
        let (n, i, o) = (self.n, lin.in_features, lin.out_features);
        let Some((Adapted { m, u, dora }, g)) = lora else {
            return ops::frozen_nn(prog, dx, dy, &lin.weight, n, 1.0, beta);
        };
        let (rp, scale) = (self.lora_cfg.r_padded(), self.lora_cfg.scaling());
        // The gradient the LoRA path sees: dy, or dys = (m/n) ⊙ dy for DoRA.
        let dyl = match dora {
            None => {
                ops::frozen_nn(prog, dx, dy, &lin.weight, n, 1.0, beta)?;
                dy.clone()
            }
            Some((t, sc)) => {
                let (_, dys) = s.dora.as_ref().ok_or_else(no_dora_scratch)?;
                let gm = g.gm.as_ref().ok_or_else(|| crate::Error::Internal("a DoRA module without gm".into()))?;
                let dys = dys.view(0, &[n, o])?;
                ops::dora_dmag(prog, gm, dy, t, sc, n, o)?;
                ops::dora_scale_dy(prog, &dys, dy, sc, n, o)?;
                let base = if self.dropped() { dy } else { &dys };
                ops::frozen_nn(prog, dx, base, &lin.weight, n, 1.0, beta)?;
                dys
            }
        };
        let du = &s.dlora_u;
        ops::matmul_tn(prog, &g.gb, &dyl, u, o, rp, n, scale, 1.0)?;
        ops::matmul_nn(prog, du, &dyl, &m.b, n, rp, o, scale, 0.0)?;
        let xin = self.lora_input(prog, x, m, &s.drop_a)?;
        ops::matmul_tn(prog, &g.ga, du, &xin, rp, i, n, 1.0, 1.0)?;
        if !self.dropped() {
            return ops::matmul_nn(prog, dx, du, &m.a, n, i, rp, 1.0, 1.0);
        }
        let dxd = s.drop_b.view(0, &[n, i])?;
        let dxm = s.drop_a.view(0, &[n, i])?;
        ops::matmul_nn(prog, &dxd, du, &m.a, n, i, rp, 1.0, 0.0)?;
        if dora.is_some() {
            // d/dx' of (m/n − 1) ⊙ x'·Wᵀ: dys·W − dy·W.
            ops::frozen_nn(prog, &dxd, &dyl, &lin.weight, n, 1.0, 1.0)?;
            ops::frozen_nn(prog, &dxd, dy, &lin.weight, n, -1.0, 1.0)?;
        }
        ops::dropout(prog, &dxm, &dxd, self.step, self.lora_cfg.dropout, m.dropout_stream())?;
        ops::add_inplace(prog, dx, &dxm)
    }
}

fn no_dora_scratch() -> crate::Error {
    crate::Error::Internal("a DoRA module in a plan without DoRA buffers".into())
}

/// An adapted module in one layer call: the module, its activation u (N, Rp) and, for DoRA,
/// its t (N, out) and sc (2, out).
#[derive(Clone, Copy)]
pub(super) struct Adapted<'a> {
    m: &'a LoraModule,
    u: &'a Tensor,
    dora: Option<(&'a Tensor, &'a Tensor)>,
}

impl<'a> Adapted<'a> {
    fn of(m: &'a LoraModule, acts: &'a LayerActs, t: Target) -> Result<Adapted<'a>> {
        let dora = if m.mag.is_some() { Some(acts.dora(t)?) } else { None };
        Ok(Adapted { m, u: acts.lora_u(t), dora })
    }
}

fn adapted<'a>(lora: &'a [&'a LoraModule], acts: &'a LayerActs, t: Target) -> Result<Option<Adapted<'a>>> {
    lora.iter().find(|m| m.target == t).map(|m| Adapted::of(m, acts, t)).transpose()
}

/// An adapted module with its gradients, for training.
pub(super) type Trained<'a> = (&'a LoraModule, &'a ModuleGrads);

/// The adapted module of target `t` with its gradients, if `t` is adapted.
fn adapted_grads<'a>(
    lora: &'a [Trained<'a>],
    acts: &'a LayerActs,
    t: Target,
) -> Result<Option<(Adapted<'a>, &'a ModuleGrads)>> {
    lora.iter().find(|(m, _)| m.target == t).map(|(m, g)| Ok((Adapted::of(m, acts, t)?, *g))).transpose()
}

/// How a layer attends: over the whole (B, T) batch, each token within its segment `seg` (B, T)
/// (see [`ops::attention_forward`]), or, when generating, one new token over this layer's KV
/// cache (maxT, NKV·HD) at position `pos`.
#[derive(Clone, Copy)]
pub(super) enum Attend<'a> {
    Full { seg: &'a Tensor },
    Cached { k: &'a Tensor, v: &'a Tensor, pos: &'a Tensor, max_t: usize },
}

/// Records layer forward: reads `a.x`, writes the other activations and `out` (N, C).
#[allow(clippy::too_many_arguments)]
pub(super) fn layer_forward(
    prog: &mut Program,
    cx: &Ctx,
    out: &Tensor,
    a: &LayerActs,
    w: &LayerWeights,
    lora: &[&LoraModule],
    s: &Scratch,
    attend: Attend,
) -> Result<()> {
    let (n, sh) = (cx.n, cx.shape);
    let c = w.input_layernorm.numel();
    ops::rmsnorm_forward(prog, &a.ln1, &a.rstd1, &a.x, &w.input_layernorm, n, c, cx.eps)?;
    cx.linear_forward(prog, &a.q, &a.ln1, &w.q_proj, adapted(lora, a, Target::Q)?, 0.0, s)?;
    cx.linear_forward(prog, &a.k, &a.ln1, &w.k_proj, adapted(lora, a, Target::K)?, 0.0, s)?;
    cx.linear_forward(prog, &a.v, &a.ln1, &w.v_proj, adapted(lora, a, Target::V)?, 0.0, s)?;
    ops::rope_forward(prog, &a.q, cx.cos, cx.sin, cx.pos, sh.nh, sh.hd)?;
    ops::rope_forward(prog, &a.k, cx.cos, cx.sin, cx.pos, sh.nkv, sh.hd)?;
    match attend {
        Attend::Full { seg } => ops::attention_forward(prog, &a.att, &a.stats, &a.q, &a.k, &a.v, seg, sh)?,
        Attend::Cached { k, v, pos, max_t } => {
            let cs = AttentionShape { b: 1, t: max_t, ..sh };
            ops::kv_append(prog, k, &a.k, pos, cs)?;
            ops::kv_append(prog, v, &a.v, pos, cs)?;
            ops::attention_decode(prog, &a.att, &a.q, k, v, pos, cs)?;
        }
    }
    prog.copy(&a.x, &a.xmid)?;
    cx.linear_forward(prog, &a.xmid, &a.att, &w.o_proj, adapted(lora, a, Target::O)?, 1.0, s)?;
    ops::rmsnorm_forward(prog, &a.ln2, &a.rstd2, &a.xmid, &w.post_attention_layernorm, n, c, cx.eps)?;
    cx.linear_forward(prog, &a.g, &a.ln2, &w.gate_proj, adapted(lora, a, Target::Gate)?, 0.0, s)?;
    cx.linear_forward(prog, &a.u, &a.ln2, &w.up_proj, adapted(lora, a, Target::Up)?, 0.0, s)?;
    ops::swiglu_forward(prog, &a.h, &a.g, &a.u)?;
    prog.copy(&a.xmid, out)?;
    cx.linear_forward(prog, out, &a.h, &w.down_proj, adapted(lora, a, Target::Down)?, 1.0, s)
}

/// Records layer backward: on entry `s.dres` holds dL/d(out); on exit dL/d(a.x), and the LoRA
/// gradients of `lora` (each module with its gradients) accumulate. `seg` (B, T): the segments
/// forward attended within.
pub(super) fn layer_backward(
    prog: &mut Program,
    cx: &Ctx,
    a: &LayerActs,
    w: &LayerWeights,
    lora: &[Trained],
    s: &Scratch,
    seg: &Tensor,
) -> Result<()> {
    let (n, sh) = (cx.n, cx.shape);
    let c = w.input_layernorm.numel();
    cx.linear_backward(prog, &s.dh, &s.dres, &a.h, &w.down_proj, adapted_grads(lora, a, Target::Down)?, 0.0, s)?;
    ops::swiglu_backward(prog, &s.dg, &s.du, &s.dh, &a.g, &a.u)?;
    cx.linear_backward(prog, &s.dln, &s.du, &a.ln2, &w.up_proj, adapted_grads(lora, a, Target::Up)?, 0.0, s)?;
    cx.linear_backward(prog, &s.dln, &s.dg, &a.ln2, &w.gate_proj, adapted_grads(lora, a, Target::Gate)?, 1.0, s)?;
    ops::rmsnorm_backward(prog, &s.dres, &s.dln, &a.xmid, &a.rstd2, &w.post_attention_layernorm, n, c)?;
    cx.linear_backward(prog, &s.datt, &s.dres, &a.att, &w.o_proj, adapted_grads(lora, a, Target::O)?, 0.0, s)?;
    // The dropout scratch (N·max(C, F, NH·HD) each) is free here: each query head's share of dk, dv.
    let heads = (&s.drop_a, &s.drop_b);
    ops::attention_backward(prog, &s.dq, &s.dk, &s.dv, heads, &a.stats, &s.datt, &a.att, &a.q, &a.k, &a.v, seg, sh)?;
    ops::rope_backward(prog, &s.dk, cx.cos, cx.sin, cx.pos, sh.nkv, sh.hd)?;
    ops::rope_backward(prog, &s.dq, cx.cos, cx.sin, cx.pos, sh.nh, sh.hd)?;
    cx.linear_backward(prog, &s.dln, &s.dv, &a.ln1, &w.v_proj, adapted_grads(lora, a, Target::V)?, 0.0, s)?;
    cx.linear_backward(prog, &s.dln, &s.dk, &a.ln1, &w.k_proj, adapted_grads(lora, a, Target::K)?, 1.0, s)?;
    cx.linear_backward(prog, &s.dln, &s.dq, &a.ln1, &w.q_proj, adapted_grads(lora, a, Target::Q)?, 1.0, s)?;
    ops::rmsnorm_backward(prog, &s.dres, &s.dln, &a.x, &a.rstd1, &w.input_layernorm, n, c)
}
