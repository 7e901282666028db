//! Writing a model as a Hugging Face folder that transformers loads: config.json,
//! model.safetensors (f32, Hugging Face names and layout) and, when given, tokenizer.json and
//! tokenizer_config.json.

use super::ModelConfig;

/// The config.json transformers reads for `config` (rope settings in the long-standing
/// `rope_theta` / `rope_scaling` spelling, which transformers 5 also accepts).
pub fn hf_config_json(config: &ModelConfig) -> serde_json::Value {
    let qwen2 = config.model_type.as_deref() == Some("qwen2");
    let rope = config.rope();
    let mut j = serde_json::json!({
        "architectures": [if qwen2 { "Qwen2ForCausalLM" } else { "LlamaForCausalLM" }],
        "model_type": if qwen2 { "qwen2" } else { "llama" },
        "hidden_size": config.hidden_size,
        "intermediate_size": config.intermediate_size,
        "num_attention_heads": config.num_attention_heads,
        "num_key_value_heads": config.n_kv_heads(),
        "head_dim": config.head_dim(),
        "num_hidden_layers": config.num_hidden_layers,
        "rms_norm_eps": config.rms_norm_eps,
        "rope_theta": rope.rope_theta.unwrap_or(10000.0),
        "vocab_size": config.vocab_size,
        "tie_word_embeddings": config.tie_word_embeddings,
        "max_position_embeddings": config.max_position_embeddings,
        "hidden_act": "silu",
        "torch_dtype": "float32",
    });
    if !qwen2 {
        j["attention_bias"] = config.attention_bias.into();
        j["mlp_bias"] = false.into();
    }
    if rope.rope_type.as_deref().unwrap_or("default") != "default" {
        let mut scaling = serde_json::to_value(&rope).unwrap_or_default();
        if let Some(obj) = scaling.as_object_mut() {
            obj.remove("rope_theta");
            obj.retain(|_, v| !v.is_null());
        }
        j["rope_scaling"] = scaling;
    }
    for (key, v) in [("bos_token_id", &config.bos_token_id), ("eos_token_id", &config.eos_token_id)] {
        if let Some(v) = v {
            j[key] = v.clone();
        }
    }
    j
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::write_hf_folder;

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::path::Path;

    use super::hf_config_json;
    use crate::error::{Error, Result};
    use crate::gpu::Gpu;
    use crate::model::Model;
    use crate::tokenizer::Tokenizer;

    /// Writes `model` (its weights read back from the GPU) as a Hugging Face folder in `dir`. The
    /// weights must be f32: a model loaded with `keep_quantized` is refused.
    pub async fn write_hf_folder(
        gpu: &Gpu,
        model: &Model,
        tokenizer: Option<(&Tokenizer, Option<&str>)>,
        dir: &Path,
    ) -> Result<()> {
        let write = |name: &str, bytes: &[u8]| crate::io::atomic::write_file(&dir.join(name), bytes);
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let mut config = hf_config_json(&model.config);
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        for (name, w) in model.weights.named() {
            let data = w.read_f32(gpu, &name).await?;
            tensors.push((name, w.shape(), bytemuck::cast_slice(&data).to_vec()));
        }
        let views: Vec<(String, safetensors::tensor::TensorView)> = tensors
            .iter()
            .map(|(n, shape, bytes)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .map(|v| (n.clone(), v))
                    .map_err(|e| Error::Tensor { name: n.clone(), detail: e.to_string() })
            })
            .collect::<Result<_>>()?;
        let metadata = Some(std::collections::HashMap::from([("format".to_string(), "pt".to_string())]));
        let bytes = safetensors::tensor::serialize(views, metadata)
            .map_err(|e| Error::Run(format!("{}: model.safetensors: {e}", dir.display())))?;
        write("model.safetensors", &bytes)?;
        if let Some((tok, template)) = tokenizer {
            let json = tok.inner().to_string(true).map_err(|e| Error::Tokenizer(format!("tokenizer.json: {e}")))?;
            write("tokenizer.json", json.as_bytes())?;
            let name = |id: Option<u32>| id.and_then(|i| tok.inner().id_to_token(i));
            let mut tc = serde_json::json!({
                "tokenizer_class": "PreTrainedTokenizerFast",
                "add_bos_token": tok.special.add_bos,
                "add_eos_token": tok.special.add_eos,
                "bos_token": name(tok.special.bos),
                "eos_token": name(tok.special.eos),
                "pad_token": name(tok.special.pad),
                "unk_token": name(tok.special.unk),
                "model_max_length": model.config.max_position_embeddings,
            });
            if let Some(t) = template {
                tc["chat_template"] = t.into();
            }
            write("tokenizer_config.json", serde_json::to_string_pretty(&tc).unwrap_or_default().as_bytes())?;
            let mut generation = serde_json::json!({});
            for (key, id) in [("bos_token_id", tok.special.bos), ("eos_token_id", tok.special.eos)] {
                if let Some(id) = id {
                    config[key] = id.into();
                    generation[key] = id.into();
                }
            }
            let stop: Vec<u32> = tok.special.eos.into_iter().chain(tok.special.stop.iter().copied()).collect();
            if stop.len() > 1 {
                generation["eos_token_id"] = stop.into();
            }
            write("generation_config.json", serde_json::to_string_pretty(&generation).unwrap_or_default().as_bytes())?;
        }
        write("config.json", serde_json::to_string_pretty(&config).unwrap_or_default().as_bytes())
    }
}
