//! Folding an adapter into its base: W ← W + s·B·A for every adapted projection, on the GPU.
//! The merged model computes what base + adapter computed (dropout aside), with no adapter.

use super::Lora;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, Program};
use crate::lora::Target;
use crate::model::{Model, Weight};
use crate::ops;

/// Adds s·B·A into the base weights of `model` (which must be f32: loaded dequantized).
pub fn merge_into(gpu: &Gpu, model: &Model, lora: &Lora) -> Result<()> {
    let mut prog = Program::new(gpu);
    let (rp, s) = (lora.config.r_padded(), lora.config.scaling());
    for m in &lora.modules {
        let layer = model.weights.layers.get(m.layer).ok_or_else(|| Error::Lora(format!("no layer {}", m.layer)))?;
        let lin = match m.target {
            Target::Q => &layer.q_proj,
            Target::K => &layer.k_proj,
            Target::V => &layer.v_proj,
            Target::O => &layer.o_proj,
            Target::Gate => &layer.gate_proj,
            Target::Up => &layer.up_proj,
            Target::Down => &layer.down_proj,
        };
        let Weight::F32(w) = &lin.weight else {
            return Err(Error::Lora(format!(
                "layer {} {}: the base weight is kept as {} on the GPU; merging needs the model loaded dequantized",
                m.layer,
                m.target.hf_name(),
                lin.weight.ty().name()
            )));
        };
        // W (out, in) += s · B (out, Rp) · A (Rp, in)
        ops::matmul_nn(&mut prog, w, &m.b, &m.a, m.out_features, m.in_features, rp, s, 1.0)?;
    }
    gpu.submit(&prog, None);
    Ok(())
}
