//! PEFT's adapter files: `adapter_config.json` and `adapter_model.safetensors`, with keys such
//! as `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`, A (r, in), B (out, r), and
//! for DoRA (`use_dora: true`) `...q_proj.lora_magnitude_vector`, m (out).

use std::collections::HashMap;

use super::{Lora, LoraConfig, Target};
use crate::error::{Error, Result};

/// The adapter_config.json PEFT writes for `config`.
pub fn adapter_config_json(config: &LoraConfig, base_model: &str) -> serde_json::Value {
    let targets: Vec<&str> = config.targets.iter().map(|t| t.hf_name()).collect();
    serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": config.r,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": targets,
        "use_rslora": config.use_rslora,
        "use_dora": config.use_dora,
        "bias": "none",
        "fan_in_fan_out": false,
        "init_lora_weights": true,
        "inference_mode": true,
        "modules_to_save": null,
        "layers_to_transform": null,
        "rank_pattern": {},
        "alpha_pattern": {},
    })
}

/// Reads the LoRA settings of an adapter_config.json; `file` names it in errors. Settings the
/// engine does not implement (trained biases, per-module ranks...) are refused.
pub fn parse_adapter_config(text: &str, file: &str) -> Result<LoraConfig> {
    let bad = |what: String| Error::Lora(format!("{file}: {what}"));
    let j: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(format!("invalid JSON: {e}")))?;
    if let Some(t) = j.get("peft_type").and_then(|v| v.as_str()) {
        if t != "LORA" {
            return Err(bad(format!("peft_type {t:?} is not LORA")));
        }
    }
    let r = j.get("r").and_then(|v| v.as_u64()).ok_or_else(|| bad("missing integer field \"r\"".into()))? as usize;
    let alpha = j.get("lora_alpha").and_then(|v| v.as_f64()).unwrap_or(8.0) as f32;
    let dropout = j.get("lora_dropout").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32;
    let targets: Vec<String> = match j.get("target_modules") {
        Some(serde_json::Value::String(s)) => vec![s.clone()],
        Some(v) => {
            serde_json::from_value(v.clone()).map_err(|_| bad("target_modules must be a list of names".into()))?
        }
        None => return Err(bad("missing field \"target_modules\"".into())),
    };
    let flag = |k: &str| j.get(k).and_then(|v| v.as_bool()).unwrap_or(false);
    if flag("fan_in_fan_out") {
        return Err(bad("fan_in_fan_out adapters are not supported".into()));
    }
    if let Some(b) = j.get("bias").and_then(|v| v.as_str()) {
        if b != "none" {
            return Err(bad(format!("bias {b:?} is not supported (none)")));
        }
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if j.get(k).and_then(|v| v.as_object()).is_some_and(|m| !m.is_empty()) {
            return Err(bad(format!("{k} is not supported")));
        }
    }
    if j.get("layers_to_transform").is_some_and(|v| !v.is_null()) {
        return Err(bad("layers_to_transform is not supported".into()));
    }
    Ok(LoraConfig {
        r,
        alpha,
        dropout,
        targets: Target::parse_list(&targets)?,
        use_rslora: flag("use_rslora"),
        use_dora: flag("use_dora"),
    })
}

/// The tensors of an adapter_model.safetensors (f32, f16 or bf16), by key, as f32.
pub fn parse_adapter_tensors(bytes: &[u8], file: &str) -> Result<HashMap<String, Vec<f32>>> {
    let tensors = crate::io::safetensors::read_f32_tensors(file, bytes)?;
    Ok(tensors.into_iter().map(|(name, _, values)| (name, values)).collect())
}

/// adapter_config.json's `base_model_name_or_path`, when it names one.
pub fn adapter_base_model(text: &str) -> Option<String> {
    let j: serde_json::Value = serde_json::from_str(text).ok()?;
    j.get("base_model_name_or_path").and_then(|v| v.as_str()).map(str::to_string)
}

/// adapter_model.safetensors bytes (f32, metadata format = pt) of (PEFT key, shape, values).
pub fn safetensors_bytes(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> Result<Vec<u8>> {
    let bytes: Vec<Vec<u8>> = tensors.iter().map(|(_, _, d)| bytemuck::cast_slice(d).to_vec()).collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((k, shape, _), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (k.clone(), v))
                .map_err(|e| Error::Lora(format!("{k}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let metadata = Some(HashMap::from([("format".to_string(), "pt".to_string())]));
    safetensors::tensor::serialize(views, metadata).map_err(|e| Error::Lora(e.to_string()))
}

impl Lora {
    /// The adapter as adapter_model.safetensors bytes (f32, metadata format = pt).
    pub async fn peft_safetensors(&self, gpu: &crate::gpu::Gpu) -> Result<Vec<u8>> {
        safetensors_bytes(&self.read_params(gpu).await?)
    }

    /// Loads values from PEFT adapter tensors (as [`parse_adapter_tensors`] gives them),
    /// refusing unexpected keys.
    pub fn load_peft(&self, gpu: &crate::gpu::Gpu, tensors: &HashMap<String, Vec<f32>>, file: &str) -> Result<()> {
        let keys = |m: &super::LoraModule| {
            let mag = self.config.use_dora.then(|| m.peft_key("M"));
            [Some(m.peft_key("A")), Some(m.peft_key("B")), mag].into_iter().flatten()
        };
        let expected: std::collections::HashSet<String> = self.modules.iter().flat_map(keys).collect();
        if let Some(k) = tensors.keys().find(|k| !expected.contains(*k)) {
            return Err(Error::Lora(format!("{file}: unexpected tensor {k}")));
        }
        self.load(gpu, |k| tensors.get(k).cloned()).map_err(|e| match e {
            Error::Lora(detail) => Error::Lora(format!("{file}: {detail}")),
            other => other,
        })
    }
}

/// Writes a PEFT adapter folder: adapter_config.json and adapter_model.safetensors, each
/// written whole or not at all. Refuses an adapter whose values are not all finite.
#[cfg(not(target_arch = "wasm32"))]
pub async fn write_peft_folder(
    gpu: &crate::gpu::Gpu,
    lora: &Lora,
    base_model: &str,
    dir: &std::path::Path,
) -> Result<()> {
    let bytes = lora.peft_safetensors(gpu).await?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let config = serde_json::to_string_pretty(&adapter_config_json(&lora.config, base_model)).unwrap_or_default();
    crate::io::atomic::write_file(&dir.join("adapter_config.json"), config.as_bytes())?;
    crate::io::atomic::write_file(&dir.join("adapter_model.safetensors"), &bytes)
}

/// Reads a PEFT adapter folder onto the GPU for `model`.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_peft_folder(
    gpu: &crate::gpu::Gpu,
    model: &crate::model::ModelConfig,
    dir: &std::path::Path,
) -> Result<Lora> {
    let path = |n: &str| dir.join(n);
    let read = |n: &str| std::fs::read(path(n)).map_err(|e| Error::io(path(n), e));
    let files =
        [path("adapter_config.json").display().to_string(), path("adapter_model.safetensors").display().to_string()];
    let config = String::from_utf8_lossy(&read("adapter_config.json")?).into_owned();
    lora_from_peft_files(gpu, model, (&config, &files[0]), (&read("adapter_model.safetensors")?, &files[1]))
}

/// An adapter for `model` on the GPU from PEFT's two files: adapter_config.json's text and
/// adapter_model.safetensors' bytes, each with the name errors give it.
pub fn lora_from_peft_files(
    gpu: &crate::gpu::Gpu,
    model: &crate::model::ModelConfig,
    (config, config_file): (&str, &str),
    (tensors, tensors_file): (&[u8], &str),
) -> Result<Lora> {
    let config = parse_adapter_config(config, config_file)?;
    let tensors = parse_adapter_tensors(tensors, tensors_file)?;
    let lora = Lora::new(gpu, model, config)?;
    lora.load_peft(gpu, &tensors, tensors_file)?;
    Ok(lora)
}
