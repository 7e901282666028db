//! Importing MLX-LM adapters (`adapters.safetensors` + `adapter_config.json`). MLX-LM's LoRA
//! computes y += scale · (x·lora_a)·lora_b with lora_a (in, r) and lora_b (r, out), so in PEFT's
//! terms A = lora_aᵀ, B = lora_bᵀ and alpha = scale · r. MLX-LM adapts only the last
//! `num_layers` layers; the other layers get a zero adapter, which changes nothing.

use std::collections::HashMap;

use super::{Lora, LoraConfig, Target};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::model::ModelConfig;

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

/// Reads an MLX-LM adapter: `config_json` is its adapter_config.json, `tensors` its
/// adapters.safetensors bytes; `file` names the folder in errors.
pub fn read_mlx_adapter(gpu: &Gpu, model: &ModelConfig, config_json: &str, tensors: &[u8], file: &str) -> Result<Lora> {
    let bad = |what: String| Error::Lora(format!("{file}: {what}"));
    let cfg: serde_json::Value =
        serde_json::from_str(config_json).map_err(|e| bad(format!("adapter_config.json: {e}")))?;
    if let Some(kind) = cfg.get("fine_tune_type").and_then(|v| v.as_str()) {
        if kind != "lora" {
            return Err(bad(format!("fine_tune_type {kind:?} is not supported (lora)")));
        }
    }
    let params = cfg.get("lora_parameters").ok_or_else(|| bad("adapter_config.json has no lora_parameters".into()))?;
    let scale = params.get("scale").and_then(|v| v.as_f64()).unwrap_or(20.0) as f32;
    let dropout = params.get("dropout").and_then(|v| v.as_f64()).unwrap_or(0.0) as f32;
    let tensors = crate::io::safetensors::read_f32_tensors(&format!("{file}/adapters.safetensors"), tensors)?;
    // key "model.layers.{i}.{module path}.lora_a|lora_b"
    // (layer, target, is lora_a) → (shape, values)
    type Found = HashMap<(usize, Target, bool), (Vec<usize>, Vec<f32>)>;
    let mut found: Found = HashMap::new();
    for (name, shape, data) in tensors {
        let parsed = name.strip_prefix("model.layers.").and_then(|rest| {
            let (layer, rest) = rest.split_once('.')?;
            let (module, which) = rest.rsplit_once('.')?;
            let target = Target::ALL.into_iter().find(|t| t.module_path() == module)?;
            let is_a = match which {
                "lora_a" => true,
                "lora_b" => false,
                _ => return None,
            };
            Some((layer.parse::<usize>().ok()?, target, is_a))
        });
        let key = parsed.ok_or_else(|| bad(format!("unexpected tensor {name}")))?;
        if shape.len() != 2 {
            return Err(bad(format!("{name}: shape {shape:?} is not a matrix")));
        }
        found.insert(key, (shape, data));
    }
    let rank = params
        .get("rank")
        .and_then(|v| v.as_u64())
        .map(|r| r as usize)
        .or_else(|| found.iter().find(|((_, _, a), _)| *a).map(|(_, (shape, _))| shape[1]))
        .ok_or_else(|| bad("no rank and no tensors".into()))?;
    let mut targets: Vec<Target> = found.keys().map(|(_, t, _)| *t).collect();
    targets.sort();
    targets.dedup();
    if targets.is_empty() {
        return Err(bad("adapters.safetensors holds no LoRA tensors".into()));
    }
    let config =
        LoraConfig { r: rank, alpha: scale * rank as f32, dropout, targets, use_rslora: false, use_dora: false };
    let lora = Lora::new(gpu, model, config)?;
    let mut values: HashMap<String, Vec<f32>> = HashMap::new();
    for m in &lora.modules {
        let (i, o) = (m.in_features, m.out_features);
        let a = match found.get(&(m.layer, m.target, true)) {
            Some((shape, d)) if shape[..] == [i, rank] => transpose(d, i, rank),
            Some((shape, _)) => {
                return Err(bad(format!("{}: lora_a is {shape:?}, expected [{i}, {rank}]", m.peft_key("A"))))
            }
            None => vec![0.0; rank * i],
        };
        let b = match found.get(&(m.layer, m.target, false)) {
            Some((shape, d)) if shape[..] == [rank, o] => transpose(d, rank, o),
            Some((shape, _)) => {
                return Err(bad(format!("{}: lora_b is {shape:?}, expected [{rank}, {o}]", m.peft_key("B"))))
            }
            None => vec![0.0; o * rank],
        };
        values.insert(m.peft_key("A"), a);
        values.insert(m.peft_key("B"), b);
    }
    lora.load(gpu, |k| values.get(k).cloned())?;
    Ok(lora)
}

/// Reads an MLX-LM adapter folder.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_mlx_folder(gpu: &Gpu, model: &ModelConfig, dir: &std::path::Path) -> Result<Lora> {
    let read = |n: &str| std::fs::read(dir.join(n)).map_err(|e| Error::Lora(format!("{}: {e}", dir.join(n).display())));
    let config = String::from_utf8_lossy(&read("adapter_config.json")?).into_owned();
    read_mlx_adapter(gpu, model, &config, &read("adapters.safetensors")?, &dir.display().to_string())
}
