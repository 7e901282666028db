//! DoRA, as PEFT's `LoraConfig(use_dora=True)` computes it (peft 0.21.2, `tuners/lora/dora.py`
//! and `variants.py`). For a projection with frozen W (out, in), A (R, in), B (out, R),
//! scaling s and a trainable magnitude m (out):
//!
//!   n = ‖W + s·B·A‖ per output row, a constant for the gradients (PEFT detaches it)
//!   y = x·Wᵀ + b + (m/n − 1) ⊙ (x'·Wᵀ) + (m/n) ⊙ s·(x'·Aᵀ)·Bᵀ,   x' = dropout(x)
//!
//! Without dropout (and always in evaluation) x' = x and y = (m/n) ⊙ (x·Wᵀ + s·(x·Aᵀ)·Bᵀ) + b.
//! With dropout in training PEFT computes x'·Wᵀ again from the dropped-out x, and so does the
//! engine. m starts as ‖W‖ per row (B = 0); merging gives W' = (m/n) ⊙ (W + s·B·A).
//!
//! n² is assembled from ‖W‖² (`ops::row_sumsq`, one pass over W in its storage type), A·Wᵀ
//! (the frozen matmul with R rows) and A·Aᵀ, so every storage type works without a kernel that
//! forms W + s·B·A (see `shaders/dora.wgsl`).

use super::{Lora, LoraModule};
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Program, Tensor};
use crate::model::{Linear, Model};
use crate::ops;

/// Scratch for computing one module's norm at a time: wsq (out), aw (Rp, out), aa (Rp, Rp),
/// each sized for the widest module.
#[derive(Clone)]
pub struct NormScratch<T = Tensor> {
    pub wsq: T,
    pub aw: T,
    pub aa: T,
}

impl NormScratch {
    /// Views of this scratch for a module of `out` rows and padded rank `rp`.
    fn views(&self, out: usize, rp: usize) -> Result<(Tensor, Tensor, Tensor)> {
        Ok((self.wsq.view(0, &[out])?, self.aw.view(0, &[rp, out])?, self.aa.view(0, &[rp, rp])?))
    }
}

/// Records the three terms of ‖W + s·B·A‖² for module `m` over projection `lin` into `scratch`;
/// returns the views holding them: wsq (out), aw (Rp, out), aa (Rp, Rp).
fn norm_terms(
    prog: &mut Program,
    lin: &Linear,
    m: &LoraModule,
    rp: usize,
    scratch: &NormScratch,
) -> Result<(Tensor, Tensor, Tensor)> {
    let (i, o) = (m.in_features, m.out_features);
    let (wsq, aw, aa) = scratch.views(o, rp)?;
    ops::row_sumsq(prog, &wsq, &lin.weight)?;
    ops::frozen_nt(prog, &aw, &m.a, &lin.weight, rp, 1.0, 0.0)?;
    ops::matmul_nt(prog, &aa, &m.a, &m.a, rp, rp, i, 1.0, 0.0)?;
    Ok((wsq, aw, aa))
}

/// Records sc (2, out) = (m / ‖W + s·B·A‖, 1 / ‖W + s·B·A‖) for module `m` of a DoRA adapter.
pub fn record_scale(
    prog: &mut Program,
    sc: &Tensor,
    lin: &Linear,
    m: &LoraModule,
    cfg: &super::LoraConfig,
    scratch: &NormScratch,
) -> Result<()> {
    let mag = m.mag.as_ref().ok_or_else(|| Error::Internal("a DoRA module without a magnitude".into()))?;
    let rp = cfg.r_padded();
    let (wsq, aw, aa) = norm_terms(prog, lin, m, rp, scratch)?;
    ops::dora_norm(prog, sc, &wsq, &aw, &aa, &m.b, mag, m.out_features, rp, cfg.scaling())
}

/// The projection of `model` that module `m` adapts.
pub fn projection<'a>(model: &'a Model, m: &LoraModule) -> Result<&'a Linear> {
    let layer = model.weights.layers.get(m.layer).ok_or_else(|| Error::Lora(format!("no layer {}", m.layer)))?;
    Ok(layer.linear(m.target))
}

/// Scratch for the norms of `lora`'s modules, one module at a time.
pub fn norm_scratch(gpu: &Gpu, lora: &Lora) -> Result<NormScratch> {
    let out = lora.modules.iter().map(|m| m.out_features).max().unwrap_or(1);
    let rp = lora.config.r_padded();
    Ok(NormScratch {
        wsq: Tensor::zeros(gpu, "dora.wsq", &[out], DType::F32)?,
        aw: Tensor::zeros(gpu, "dora.aw", &[rp * out], DType::F32)?,
        aa: Tensor::zeros(gpu, "dora.aa", &[rp * rp], DType::F32)?,
    })
}

/// Sets every magnitude of DoRA adapter `lora` to ‖W + s·B·A‖ per row, over `model`'s weights:
/// PEFT's initial magnitude (‖W‖ when B = 0).
pub fn init_magnitudes(gpu: &Gpu, model: &Model, lora: &Lora) -> Result<()> {
    let mut prog = Program::new(gpu);
    let scratch = norm_scratch(gpu, lora)?;
    let rp = lora.config.r_padded();
    let out = lora.modules.iter().map(|m| m.out_features).max().unwrap_or(1);
    // Written here, then copied: m and B share the adapter's buffer, which one dispatch cannot
    // bind both for writing and for reading.
    let norms = Tensor::zeros(gpu, "dora.norms", &[out], DType::F32)?;
    for m in &lora.modules {
        let mag = m.mag.as_ref().ok_or_else(|| Error::Internal("a DoRA module without a magnitude".into()))?;
        let (wsq, aw, aa) = norm_terms(&mut prog, projection(model, m)?, m, rp, &scratch)?;
        let n = norms.view(0, &[m.out_features])?;
        ops::dora_magnitude(&mut prog, &n, &wsq, &aw, &aa, &m.b, m.out_features, rp, lora.config.scaling())?;
        prog.copy(&n, mag)?;
    }
    gpu.submit(&prog, None);
    Ok(())
}
