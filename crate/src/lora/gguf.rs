//! llama.cpp's LoRA adapter format: a GGUF file with `general.type = adapter`,
//! `adapter.type = lora`, `adapter.lora.alpha`, and tensors `blk.N.attn_q.weight.lora_a` /
//! `.lora_b` holding A (r, in) and B (out, r) as PyTorch lays them out (GGUF dims [in, r] and
//! [r, out], which llama.cpp checks against the base tensor). For llama-architecture bases the
//! rows of B for q and k are put back into llama.cpp's permuted order; rsLoRA's scaling is baked
//! into alpha, since llama.cpp scales by alpha / r.

use super::{Lora, Target};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::gguf_write::{write_gguf, GgufWriteTensor, GgufWriteValue};
use crate::io::{hf_to_gguf_qk_rows, GgmlType};
use crate::model::ModelConfig;

/// The GGUF name of the weight a target adapts in `layer`.
pub fn gguf_weight_name(layer: usize, target: Target) -> String {
    let t = match target {
        Target::Q => "attn_q",
        Target::K => "attn_k",
        Target::V => "attn_v",
        Target::O => "attn_output",
        Target::Gate => "ffn_gate",
        Target::Up => "ffn_up",
        Target::Down => "ffn_down",
    };
    format!("blk.{layer}.{t}.weight")
}

/// The adapter as a llama.cpp LoRA GGUF file for a base of `model`'s architecture.
pub async fn gguf_lora_bytes(gpu: &Gpu, lora: &Lora, model: &ModelConfig) -> Result<Vec<u8>> {
    let arch = model.model_type.clone().unwrap_or_else(|| "llama".into());
    let arch = if arch == "qwen2" { arch } else { "llama".to_string() };
    let permuted = arch == "llama";
    if lora.config.use_dora {
        return Err(Error::Unsupported(
            "llama.cpp's LoRA format has no DoRA magnitudes: fold the adapter into the base with `weblora merge` instead".into(),
        ));
    }
    let tensors = lora.read_params(gpu).await?;
    let mut out = Vec::new();
    for m in &lora.modules {
        let name = gguf_weight_name(m.layer, m.target);
        for (which, suffix) in [("A", "lora_a"), ("B", "lora_b")] {
            let key = m.peft_key(which);
            let (_, shape, data) = tensors.iter().find(|(k, _, _)| *k == key).expect("every module has A and B");
            let mut data = data.clone();
            let heads = match m.target {
                Target::Q => Some(model.num_attention_heads),
                Target::K => Some(model.n_kv_heads()),
                _ => None,
            };
            if let (true, "B", Some(h)) = (permuted, which, heads) {
                let moved =
                    hf_to_gguf_qk_rows(&key, bytemuck::cast_slice(&data), GgmlType::F32, shape[0], shape[1], h)?;
                data = bytemuck::pod_collect_to_vec(&moved);
            }
            out.push(GgufWriteTensor::f32(format!("{name}.{suffix}"), shape.clone(), &data));
        }
    }
    let r = lora.config.r as f32;
    let alpha = if lora.config.use_rslora { lora.config.alpha * r.sqrt() } else { lora.config.alpha };
    let metadata = [
        ("general.architecture", GgufWriteValue::Str(arch)),
        ("general.type", GgufWriteValue::Str("adapter".into())),
        ("general.name", GgufWriteValue::Str("WebLoRA adapter".into())),
        ("adapter.type", GgufWriteValue::Str("lora".into())),
        ("adapter.lora.alpha", GgufWriteValue::F32(alpha)),
        ("general.alignment", GgufWriteValue::U32(32)),
    ];
    Ok(write_gguf(&metadata, &out))
}
