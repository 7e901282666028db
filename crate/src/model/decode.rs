//! Token-by-token decoding with a KV cache, for generation: one token in, the next token's
//! logits out. The program is recorded once for a cache length; the position travels in a
//! one-element buffer, so each token is one submission and one (V) readback. One decoder can
//! hold several adapters' programs over the same buffers and switch between them.

use super::layer::{layer_forward, Attend, Ctx, LayerActs, Scratch, Sizes};
use super::Model;
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Readback, Tensor};
use crate::lora::{Lora, LoraConfig, LoraModule, Target};
use crate::ops::{self, AttentionShape};

pub struct Decoder {
    gpu: Gpu,
    max_t: usize,
    vocab: usize,
    id: Tensor,     // (1) u32: the token fed in
    pos: Tensor,    // (1) u32: its position
    logits: Tensor, // (1, V)
    /// One program per adapter given (the base alone for `None`), all recorded over the same
    /// activations, KV caches and base weights.
    programs: Vec<Program>,
    active: usize,
    readback: Readback,
    _keep: Vec<Tensor>,
}

impl Decoder {
    /// A decoder for sequences of up to `max_t` tokens, with the adapter or without it.
    pub fn new(gpu: &Gpu, model: &Model, lora: Option<&Lora>, max_t: usize) -> Result<Decoder> {
        Decoder::with_adapters(gpu, model, &[lora], max_t)
    }

    /// A decoder that answers with any one of `adapters` (`None`: the base alone) at a time,
    /// the first to begin with. Each adapter's program is recorded once, here, over one set of
    /// activations (sized for the largest rank and every adapted projection) and KV caches, so
    /// [`Decoder::select`] switches adapters without recording anything or touching the base.
    /// Each program is the one a decoder for that adapter alone records, so it computes the
    /// same logits.
    pub fn with_adapters(gpu: &Gpu, model: &Model, adapters: &[Option<&Lora>], max_t: usize) -> Result<Decoder> {
        let cfg = &model.config;
        if max_t == 0 || max_t > cfg.max_position_embeddings {
            return Err(Error::Input(format!(
                "generation length {max_t} must be in 1..={}",
                cfg.max_position_embeddings
            )));
        }
        if adapters.is_empty() {
            return Err(Error::Input("a decoder needs at least one adapter or the base (None)".into()));
        }
        let z = |name: &str, shape: &[usize]| Tensor::zeros(gpu, name, shape, DType::F32);
        let fallback =
            LoraConfig { r: 4, alpha: 4.0, dropout: 0.0, targets: vec![], use_rslora: false, use_dora: false };
        let mut targets: Vec<Target> = adapters.iter().flatten().flat_map(|l| l.config.targets.clone()).collect();
        targets.sort();
        targets.dedup();
        let rp_max = adapters.iter().flatten().map(|l| l.config.r_padded()).max().unwrap_or(fallback.r_padded());
        let dora = adapters.iter().flatten().any(|l| l.config.use_dora);
        let sizes = Sizes::new(cfg, 1, 1, &targets, rp_max, dora);
        let (c, v) = (cfg.hidden_size, cfg.vocab_size);
        let id = Tensor::zeros(gpu, "id", &[1], DType::U32)?;
        let pos = Tensor::zeros(gpu, "pos", &[1], DType::U32)?;
        let step = Tensor::zeros(gpu, "step", &[8], DType::U32)?;
        let (cos, sin) = cfg.rope().tables(cfg.head_dim(), max_t);
        let cos = Tensor::from_f32(gpu, "rope.cos", &[max_t, cfg.head_dim() / 2], &cos)?;
        let sin = Tensor::from_f32(gpu, "rope.sin", &[max_t, cfg.head_dim() / 2], &sin)?;
        let (x0, x1) = (z("x0", &[1, c])?, z("x1", &[1, c])?);
        let acts = LayerActs::allocate(&z, x0.clone(), &sizes)?;
        let scratch = Scratch::allocate(&z, &sizes)?;
        let (lnf, rstdf, logits) = (z("lnf", &[1, c])?, z("rstdf", &[1])?, z("logits", &[1, v])?);
        let caches = (0..cfg.num_hidden_layers)
            .map(|_| Ok((z("k_cache", &[max_t, cfg.kv_dim()])?, z("v_cache", &[max_t, cfg.kv_dim()])?)))
            .collect::<Result<Vec<_>>>()?;
        let shape =
            AttentionShape { b: 1, t: 1, nh: cfg.num_attention_heads, nkv: cfg.n_kv_heads(), hd: cfg.head_dim() };
        let w = &model.weights;
        let mut programs = Vec::new();
        for lora in adapters {
            let lora_cfg = lora.map(|l| &l.config).unwrap_or(&fallback);
            let rp = lora_cfg.r_padded();
            let cx = Ctx {
                n: 1,
                shape,
                eps: cfg.rms_norm_eps,
                lora_cfg,
                step: &step,
                cos: &cos,
                sin: &sin,
                pos: &pos,
                train: false,
            };
            let mut program = Program::new(gpu);
            ops::embedding_forward(&mut program, &x0, &id, &w.embed_tokens)?;
            // Layers alternate between two residual buffers.
            let (mut inp, mut out) = (x0.clone(), x1.clone());
            for ((l, lw), (kc, vc)) in w.layers.iter().enumerate().zip(&caches) {
                let layer_lora: Vec<&LoraModule> =
                    lora.map(|lo| lo.modules.iter().filter(|m| m.layer == l).collect()).unwrap_or_default();
                let mut a = acts.share(inp.clone());
                // This adapter's rank: the first (1, Rp) of each (1, Rp max) LoRA activation.
                a.lora_u = acts.lora_u.iter().map(|(t, u)| Ok((*t, u.view(0, &[1, rp])?))).collect::<Result<_>>()?;
                let attend = Attend::Cached { k: kc, v: vc, pos: &pos, max_t };
                layer_forward(&mut program, &cx, &out, &a, lw, &layer_lora, &scratch, attend)?;
                std::mem::swap(&mut inp, &mut out);
            }
            ops::rmsnorm_forward(&mut program, &lnf, &rstdf, &inp, &w.norm, 1, c, cfg.rms_norm_eps)?;
            // The head part by part (a mat-vec: one row), each into its own range of the logits.
            for (v0, part) in w.output().parts() {
                let vp = part.shape()[0];
                ops::frozen_nt(&mut program, &logits.view(v0, &[1, vp])?, &lnf, part, 1, 1.0, 0.0)?;
            }
            programs.push(program);
        }
        let mut keep = vec![x0, x1, step, cos, sin, lnf, rstdf];
        keep.extend(caches.into_iter().flat_map(|(k, v)| [k, v]));
        Ok(Decoder {
            gpu: gpu.clone(),
            max_t,
            vocab: v,
            id,
            pos,
            logits,
            programs,
            active: 0,
            readback: Readback::new(gpu, (v * 4) as u64),
            _keep: keep,
        })
    }

    /// Answers with adapter `index` of those the decoder was made with from now on. The KV
    /// cache holds the previous adapter's keys and values, so feed the sequence again from
    /// position 0.
    pub fn select(&mut self, index: usize) -> Result<()> {
        if index >= self.programs.len() {
            return Err(Error::Input(format!(
                "adapter {index} is not one of the decoder's {} adapters",
                self.programs.len()
            )));
        }
        self.active = index;
        Ok(())
    }

    /// How many adapters (the base counting as one) the decoder can answer with.
    pub fn adapters(&self) -> usize {
        self.programs.len()
    }

    /// Feeds token `id` at position `pos` (positions 0..pos must have been fed before) and
    /// returns the logits (V) of the next token.
    pub async fn next_logits(&self, id: u32, pos: usize) -> Result<Vec<f32>> {
        if pos >= self.max_t {
            return Err(Error::Input(format!("position {pos} is past the decoder's length {}", self.max_t)));
        }
        if id as usize >= self.vocab {
            return Err(Error::Input(format!("token id {id} is outside the vocabulary of {}", self.vocab)));
        }
        self.id.write_u32(&self.gpu, &[id])?;
        self.pos.write_u32(&self.gpu, &[pos as u32])?;
        self.gpu.submit(&self.programs[self.active], Some((&self.readback, &self.logits)));
        Ok(bytemuck::pod_collect_to_vec(&self.readback.read(&self.gpu).await?))
    }

    pub fn max_len(&self) -> usize {
        self.max_t
    }
}
