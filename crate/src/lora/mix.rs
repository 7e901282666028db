//! Mixing adapters as PEFT's `add_weighted_adapter(adapters, weights, name, combination_type="cat")`
//! does, on the host (no GPU, no base model): for every module any adapter adapts, the mixed
//! A (R, in) stacks w_i·s_i·A_i of the adapters that adapt it, in the order given, and the mixed B
//! (out, R) puts their B_i side by side; rows and columns no adapter fills stay zero. R is the sum
//! of the ranks, lora_alpha = R, and the rest of the settings (dropout, rsLoRA) are the first
//! adapter's, as in PEFT (peft 0.21.2, `tuners/lora/model.py`). The mixed adapter so adds
//! s·Σ_i w_i·s_i·B_i·A_i, where s = R/R = 1 (or R/√R when the adapters use rsLoRA, as PEFT has it).

use std::collections::BTreeMap;

use super::{check_finite, parse_peft_key, peft_key, LoraConfig, Target};
use crate::error::{Error, Result};

/// One adapted projection of a [`HostAdapter`], unpadded.
#[derive(Clone, Debug)]
pub struct HostModule {
    pub layer: usize,
    pub target: Target,
    pub in_features: usize,
    pub out_features: usize,
    pub a: Vec<f32>, // (R, in)
    pub b: Vec<f32>, // (out, R)
}

/// A PEFT adapter on the host: its settings and tensors, sorted by (layer, target).
#[derive(Clone, Debug)]
pub struct HostAdapter {
    /// How the caller names it (a folder), for messages.
    pub name: String,
    pub config: LoraConfig,
    pub base_model: Option<String>,
    pub modules: Vec<HostModule>,
}

impl HostAdapter {
    /// An adapter from its adapter_config.json text and adapter_model.safetensors bytes;
    /// `config_file` and `tensors_file` name them in errors. Every tensor must be a lora_A or
    /// lora_B of a target the config lists, each module must have both, A (r, in), B (out, r),
    /// with finite values.
    pub fn parse(name: &str, config_text: &str, config_file: &str, tensors: &[u8], tensors_file: &str) -> Result<Self> {
        let config = super::peft::parse_adapter_config(config_text, config_file)?;
        if config.use_dora {
            return Err(Error::Unsupported(format!("{config_file}: mixing DoRA adapters is not supported")));
        }
        let bad = |detail: String| Error::Lora(format!("{tensors_file}: {detail}"));
        let values = crate::io::safetensors::read_f32_tensors(tensors_file, tensors)?;
        // (shape, values) of each module's A and B, as they come.
        type Half = Option<(Vec<usize>, Vec<f32>)>;
        let mut halves: BTreeMap<(usize, Target), [Half; 2]> = BTreeMap::new();
        for (key, shape, data) in values {
            let Some((layer, target, which)) = parse_peft_key(&key) else {
                return Err(bad(format!("unexpected tensor {key}")));
            };
            if !config.targets.contains(&target) {
                return Err(bad(format!("{key}: {} is not among the config's target_modules", target.hf_name())));
            }
            check_finite(&key, &data).map_err(|e| bad(e.to_string()))?;
            halves.entry((layer, target)).or_default()[usize::from(which == "B")] = Some((shape, data));
        }
        let r = config.r;
        let mut modules = Vec::new();
        for ((layer, target), [a, b]) in halves {
            let (ka, kb) = (peft_key(layer, target, "A"), peft_key(layer, target, "B"));
            let (Some((sa, a)), Some((sb, b))) = (a, b) else {
                return Err(bad(format!("{ka} and {kb} must both be present")));
            };
            if sa.len() != 2 || sa[0] != r || sb.len() != 2 || sb[1] != r {
                return Err(bad(format!(
                    "{ka} is {sa:?} and {kb} is {sb:?}; expected (r, in) and (out, r) with r = {r}"
                )));
            }
            modules.push(HostModule { layer, target, in_features: sa[1], out_features: sb[0], a, b });
        }
        if modules.is_empty() {
            return Err(bad("no LoRA tensors".into()));
        }
        let base_model = super::peft::adapter_base_model(config_text).filter(|s| !s.is_empty());
        Ok(HostAdapter { name: name.to_string(), config, base_model, modules })
    }

    /// (PEFT key, shape, values) of every tensor, as adapter_model.safetensors holds them.
    pub fn tensors(&self) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let r = self.config.r;
        let mut out = Vec::new();
        for m in &self.modules {
            out.push((peft_key(m.layer, m.target, "A"), vec![r, m.in_features], m.a.clone()));
            out.push((peft_key(m.layer, m.target, "B"), vec![m.out_features, r], m.b.clone()));
        }
        out
    }

    /// PEFT's scaling of this adapter, computed as PEFT computes it (in double precision).
    fn peft_scaling(&self) -> f64 {
        let (alpha, r) = (self.config.alpha as f64, self.config.r as f64);
        if self.config.use_rslora {
            alpha / r.sqrt()
        } else {
            alpha / r
        }
    }
}

/// PEFT's `cat` combination of `adapters` with their weights (see the module's help). Refuses,
/// naming the adapter, one whose rsLoRA setting differs from the first's or whose module shapes
/// differ from another's for the same module (adapters of different bases).
pub fn mix_cat(adapters: &[(&HostAdapter, f32)]) -> Result<HostAdapter> {
    let Some(&(first, _)) = adapters.first() else {
        return Err(Error::Input("mixing needs at least two adapters".into()));
    };
    if adapters.len() < 2 {
        return Err(Error::Input(format!("mixing needs at least two adapters; only {} was given", first.name)));
    }
    let refuse = |a: &HostAdapter, detail: String| Error::Adapter { adapter: a.name.clone(), detail };
    // (in, out) of every module, and the adapter that first gave it.
    let mut shapes: BTreeMap<(usize, Target), (usize, usize, &str)> = BTreeMap::new();
    for &(a, w) in adapters {
        if !w.is_finite() {
            return Err(refuse(a, format!("weight {w} is not finite")));
        }
        if a.config.use_rslora != first.config.use_rslora {
            let says = |c: &LoraConfig| if c.use_rslora { "uses rsLoRA" } else { "does not use rsLoRA" };
            return Err(refuse(a, format!("{} but {} {}", says(&a.config), first.name, says(&first.config))));
        }
        for m in &a.modules {
            let (i, o, by) = *shapes.entry((m.layer, m.target)).or_insert((m.in_features, m.out_features, &a.name));
            if (i, o) != (m.in_features, m.out_features) {
                return Err(refuse(
                    a,
                    format!(
                        "layer {} {} maps {} → {} features where {by}'s maps {i} → {o}: the adapters are for different base models",
                        m.layer,
                        m.target.hf_name(),
                        m.in_features,
                        m.out_features
                    ),
                ));
            }
        }
    }
    let rank: usize = adapters.iter().map(|(a, _)| a.config.r).sum();
    let mut modules = Vec::new();
    for (&(layer, target), &(i, o, _)) in &shapes {
        let (mut a, mut b) = (vec![0.0f32; rank * i], vec![0.0f32; o * rank]);
        // PEFT concatenates the adapters that adapt this module, from row 0.
        let mut row = 0;
        for &(adapter, w) in adapters {
            let Some(m) = adapter.modules.iter().find(|m| m.layer == layer && m.target == target) else { continue };
            let (r, s) = (adapter.config.r, adapter.peft_scaling() as f32);
            // PyTorch's `A * weight * scaling`: f32 products, left to right.
            for (dst, &src) in a[row * i..(row + r) * i].iter_mut().zip(&m.a) {
                *dst = src * w * s;
            }
            for out in 0..o {
                b[out * rank + row..out * rank + row + r].copy_from_slice(&m.b[out * r..(out + 1) * r]);
            }
            row += r;
        }
        modules.push(HostModule { layer, target, in_features: i, out_features: o, a, b });
    }
    let mut targets: Vec<Target> = shapes.keys().map(|&(_, t)| t).collect();
    targets.sort();
    targets.dedup();
    let config = LoraConfig { r: rank, alpha: rank as f32, targets, ..first.config.clone() };
    let names: Vec<String> = adapters.iter().map(|(a, w)| format!("{}:{w}", a.name)).collect();
    Ok(HostAdapter { name: names.join(" + "), config, base_model: first.base_model.clone(), modules })
}

/// Reads a PEFT adapter folder (adapter_config.json, adapter_model.safetensors) to the host;
/// the adapter is named by the folder as given.
#[cfg(not(target_arch = "wasm32"))]
pub fn read_host_adapter(dir: &std::path::Path) -> Result<HostAdapter> {
    let path = |n: &str| dir.join(n);
    let read = |n: &str| std::fs::read(path(n)).map_err(|e| Error::io(path(n), e));
    let (config, tensors) = (read("adapter_config.json")?, read("adapter_model.safetensors")?);
    HostAdapter::parse(
        &dir.display().to_string(),
        &String::from_utf8_lossy(&config),
        &path("adapter_config.json").display().to_string(),
        &tensors,
        &path("adapter_model.safetensors").display().to_string(),
    )
}

impl HostAdapter {
    /// The adapter as PEFT's two files: adapter_config.json's text and adapter_model.safetensors'
    /// bytes. Refuses an adapter whose values are not all finite.
    pub fn peft_files(&self) -> Result<(String, Vec<u8>)> {
        let tensors = self.tensors();
        for (key, _, values) in &tensors {
            check_finite(key, values)?;
        }
        let bytes = super::peft::safetensors_bytes(&tensors)?;
        let base = self.base_model.as_deref().unwrap_or_default();
        let config = super::peft::adapter_config_json(&self.config, base);
        Ok((serde_json::to_string_pretty(&config).unwrap_or_default(), bytes))
    }
}

/// Writes `adapter` as a PEFT folder, each file whole or not at all.
#[cfg(not(target_arch = "wasm32"))]
pub fn write_host_adapter(adapter: &HostAdapter, dir: &std::path::Path) -> Result<()> {
    let (config, bytes) = adapter.peft_files()?;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    crate::io::atomic::write_file(&dir.join("adapter_config.json"), config.as_bytes())?;
    crate::io::atomic::write_file(&dir.join("adapter_model.safetensors"), &bytes)
}
