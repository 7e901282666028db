//! LoRA adapters as PEFT defines them: y = x·Wᵀ + s · B·(A·dropout(x)), with A (R, in),
//! B (out, R), s = alpha / R (or alpha / √R for rsLoRA), B initialised to zero.
//!
//! All adapter tensors live in one flat parameter buffer (P). Inside it each A is stored with R
//! rounded up to a multiple of 4 (Rp) and each B with Rp columns; the extra rows and columns are
//! zero, get zero gradients and stay zero, so the padded adapter computes exactly what the
//! unpadded one does. An adapter is only its values: the gradients and AdamW moments of a run
//! that trains it are a [`TrainState`] of the same layout, which the run owns.
//!
//! DoRA (PEFT's `use_dora=True`, see [`dora`]) adds to each module a trainable magnitude m
//! (out), stored after its B in the same flat buffer, so gradients, moments, AdamW and
//! checkpoints cover it with the rest.

pub mod dora;
pub mod gguf;
pub mod merge;
pub mod mix;
pub mod mlx;
pub mod peft;
mod state;

pub use state::{ModuleGrads, TrainState};

use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};
use crate::model::ModelConfig;

/// The projections LoRA can adapt, with their Hugging Face names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Q,
    K,
    V,
    O,
    Gate,
    Up,
    Down,
}

impl Target {
    pub const ALL: [Target; 7] = [Target::Q, Target::K, Target::V, Target::O, Target::Gate, Target::Up, Target::Down];

    pub fn hf_name(self) -> &'static str {
        match self {
            Target::Q => "q_proj",
            Target::K => "k_proj",
            Target::V => "v_proj",
            Target::O => "o_proj",
            Target::Gate => "gate_proj",
            Target::Up => "up_proj",
            Target::Down => "down_proj",
        }
    }

    /// The module path inside a decoder layer, as in PEFT keys.
    pub fn module_path(self) -> &'static str {
        match self {
            Target::Q => "self_attn.q_proj",
            Target::K => "self_attn.k_proj",
            Target::V => "self_attn.v_proj",
            Target::O => "self_attn.o_proj",
            Target::Gate => "mlp.gate_proj",
            Target::Up => "mlp.up_proj",
            Target::Down => "mlp.down_proj",
        }
    }

    /// (in, out) features of this projection.
    pub fn dims(self, c: &ModelConfig) -> (usize, usize) {
        let (h, f) = (c.hidden_size, c.intermediate_size);
        match self {
            Target::Q => (h, c.q_dim()),
            Target::K | Target::V => (h, c.kv_dim()),
            Target::O => (c.q_dim(), h),
            Target::Gate | Target::Up => (h, f),
            Target::Down => (f, h),
        }
    }

    /// Parses PEFT's `target_modules`: names such as "q_proj", or "all-linear".
    pub fn parse_list(names: &[String]) -> Result<Vec<Target>> {
        let mut out = Vec::new();
        for n in names {
            if n == "all-linear" {
                return Ok(Target::ALL.to_vec());
            }
            let t = Target::ALL
                .into_iter()
                .find(|t| t.hf_name() == n)
                .ok_or_else(|| Error::Lora(format!("unknown target module {n:?} (q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, all-linear)")))?;
            if !out.contains(&t) {
                out.push(t);
            }
        }
        out.sort();
        if out.is_empty() {
            return Err(Error::Lora("no target modules".into()));
        }
        Ok(out)
    }
}

/// LoRA settings, named as in PEFT's LoraConfig.
#[derive(Clone, Debug, PartialEq)]
pub struct LoraConfig {
    pub r: usize,
    pub alpha: f32,
    pub dropout: f32,
    pub targets: Vec<Target>,
    pub use_rslora: bool,
    /// DoRA: y = m / ‖W + s·B·A‖ ⊙ (x·Wᵀ + s·B·A·x), m trainable (PEFT's `use_dora`).
    pub use_dora: bool,
}

impl LoraConfig {
    /// Rank `r` and `alpha` on all seven projections, without dropout, rsLoRA or DoRA.
    pub fn all_linear(r: usize, alpha: f32) -> LoraConfig {
        LoraConfig { r, alpha, dropout: 0.0, targets: Target::ALL.to_vec(), use_rslora: false, use_dora: false }
    }

    /// s = alpha / r, or alpha / √r with rsLoRA.
    pub fn scaling(&self) -> f32 {
        if self.use_rslora {
            self.alpha / (self.r as f32).sqrt()
        } else {
            self.alpha / self.r as f32
        }
    }

    /// The rank as stored on the GPU: r rounded up to a multiple of 4.
    pub fn r_padded(&self) -> usize {
        self.r.next_multiple_of(4)
    }

    /// Whether `other` describes the same adapter (rank, alpha, dropout, targets, rsLoRA, DoRA).
    pub fn same_adapter(&self, other: &LoraConfig) -> bool {
        self == other
    }

    /// "r 8, alpha 16, dropout 0.05, q_proj,v_proj", for messages.
    pub fn describe(&self) -> String {
        let targets: Vec<&str> = self.targets.iter().map(|t| t.hf_name()).collect();
        let rs = if self.use_rslora { ", rsLoRA" } else { "" };
        let dora = if self.use_dora { ", DoRA" } else { "" };
        format!("r {}, alpha {}, dropout {}, {}{rs}{dora}", self.r, self.alpha, self.dropout, targets.join(","))
    }

    /// P, the elements of each flat buffer (parameters, gradients, each moment) for `model`.
    pub fn flat_len(&self, model: &ModelConfig) -> usize {
        self.layout(model).1
    }

    /// Each module's place in the flat buffers, and P.
    fn layout(&self, model: &ModelConfig) -> (Vec<Place>, usize) {
        let rp = self.r_padded();
        let mut layout = Vec::new();
        let mut p = 0;
        for layer in 0..model.num_hidden_layers {
            for &target in &self.targets {
                let (i, o) = target.dims(model);
                let a_start = p;
                p = (p + rp * i).next_multiple_of(ALIGN);
                let b_start = p;
                p = (p + o * rp).next_multiple_of(ALIGN);
                let m_start = p;
                if self.use_dora {
                    p = (p + o).next_multiple_of(ALIGN);
                }
                layout.push(Place { layer, target, i, o, a_start, b_start, m_start });
            }
        }
        (layout, p)
    }

    fn validate(&self, model: &ModelConfig) -> Result<()> {
        if self.r == 0 {
            return Err(Error::Lora("rank r must be at least 1".into()));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::Lora(format!("dropout {} must be in [0, 1)", self.dropout)));
        }
        for t in &self.targets {
            let (i, o) = t.dims(model);
            if self.r > i.min(o) {
                return Err(Error::Lora(format!("rank {} is larger than {} ({i} → {o})", self.r, t.hf_name())));
            }
        }
        Ok(())
    }
}

/// Where one module's tensors start in the flat buffers: A, B, and (DoRA) the magnitude.
struct Place {
    layer: usize,
    target: Target,
    i: usize,
    o: usize,
    a_start: usize,
    b_start: usize,
    m_start: usize,
}

/// PEFT's key for lora_A ("A") or lora_B ("B") of `target` in `layer`, or ("M") its DoRA
/// magnitude, which `save_pretrained` writes as `...q_proj.lora_magnitude_vector` (no `.weight`).
pub fn peft_key(layer: usize, target: Target, which: &str) -> String {
    if which == "M" {
        return format!("base_model.model.model.layers.{layer}.{}.lora_magnitude_vector", target.module_path());
    }
    format!("base_model.model.model.layers.{layer}.{}.lora_{which}.weight", target.module_path())
}

/// The (layer, target, "A" or "B") a PEFT key names, if it is one of [`peft_key`]'s.
pub fn parse_peft_key(key: &str) -> Option<(usize, Target, &'static str)> {
    let rest = key.strip_prefix("base_model.model.model.layers.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer = layer.parse().ok().filter(|_| layer.bytes().all(|b| b.is_ascii_digit()))?;
    let (path, which) = if let Some(p) = rest.strip_suffix(".lora_A.weight") {
        (p, "A")
    } else if let Some(p) = rest.strip_suffix(".lora_B.weight") {
        (p, "B")
    } else {
        (rest.strip_suffix(".lora_magnitude_vector")?, "M")
    };
    let target = Target::ALL.into_iter().find(|t| t.module_path() == path)?;
    Some((layer, target, which))
}

/// One adapted projection: views into the flat parameter buffer.
#[derive(Clone)]
pub struct LoraModule {
    pub layer: usize,
    pub target: Target,
    pub in_features: usize,
    pub out_features: usize,
    pub a: Tensor, // (Rp, in)
    pub b: Tensor, // (out, Rp)
    /// DoRA's magnitude m (out), when the adapter is a DoRA adapter.
    pub mag: Option<Tensor>,
    a_start: usize,
    b_start: usize,
    m_start: usize,
}

impl LoraModule {
    /// PEFT's key for lora_A ("A"), lora_B ("B") or the DoRA magnitude ("M") of this module.
    pub fn peft_key(&self, which: &str) -> String {
        peft_key(self.layer, self.target, which)
    }

    /// A stream number for this module's dropout masks.
    pub fn dropout_stream(&self) -> u32 {
        (self.layer * 8 + self.target as usize) as u32
    }
}

/// Elements per alignment unit of views into the flat buffer (256 bytes).
const ALIGN: usize = 64;

/// An adapter's parameters on the GPU. A clone shares the GPU buffers: training through one
/// changes both.
#[derive(Clone)]
pub struct Lora {
    pub config: LoraConfig,
    pub params: Tensor, // (P)
    pub modules: Vec<LoraModule>,
}

impl Lora {
    /// A zero adapter for `model` (call [`Lora::init_peft`] or load values next).
    pub fn new(gpu: &Gpu, model: &ModelConfig, config: LoraConfig) -> Result<Lora> {
        config.validate(model)?;
        let rp = config.r_padded();
        let (layout, p) = config.layout(model);
        let params = Tensor::zeros(gpu, "lora.params", &[p], DType::F32)?;
        let mut modules = Vec::new();
        for Place { layer, target, i, o, a_start, b_start, m_start } in layout {
            let mag = if config.use_dora { Some(params.view(m_start, &[o])?) } else { None };
            modules.push(LoraModule {
                layer,
                target,
                in_features: i,
                out_features: o,
                a: params.view(a_start, &[rp, i])?,
                b: params.view(b_start, &[o, rp])?,
                mag,
                a_start,
                b_start,
                m_start,
            });
        }
        Ok(Lora { config, params, modules })
    }

    /// The module adapting `target` in `layer`, if any.
    pub fn module(&self, layer: usize, target: Target) -> Option<&LoraModule> {
        self.modules.iter().find(|m| m.layer == layer && m.target == target)
    }

    /// Trainable parameters (unpadded), as PEFT counts them (with DoRA's magnitudes).
    pub fn num_params(&self) -> usize {
        let dora = usize::from(self.config.use_dora);
        self.modules.iter().map(|m| self.config.r * (m.in_features + m.out_features) + dora * m.out_features).sum()
    }

    /// Packs unpadded host tensors, A (r, in) and B (out, r) by PEFT key, and with DoRA each
    /// magnitude (out), into the flat layout (P). Every tensor must be given, with finite values.
    pub fn pack(&self, get: impl Fn(&str) -> Option<Vec<f32>>) -> Result<Vec<f32>> {
        let (r, rp) = (self.config.r, self.config.r_padded());
        let mut flat = vec![0.0f32; self.params.numel()];
        for m in &self.modules {
            let (ka, kb) = (m.peft_key("A"), m.peft_key("B"));
            let a = get(&ka).ok_or_else(|| Error::Lora(format!("missing tensor {ka}")))?;
            let b = get(&kb).ok_or_else(|| Error::Lora(format!("missing tensor {kb}")))?;
            if a.len() != r * m.in_features {
                return Err(Error::Lora(format!("{ka} has {} values, expected ({r}, {})", a.len(), m.in_features)));
            }
            if b.len() != m.out_features * r {
                return Err(Error::Lora(format!("{kb} has {} values, expected ({}, {r})", b.len(), m.out_features)));
            }
            check_finite(&ka, &a)?;
            check_finite(&kb, &b)?;
            flat[m.a_start..m.a_start + a.len()].copy_from_slice(&a);
            for row in 0..m.out_features {
                let dst = m.b_start + row * rp;
                flat[dst..dst + r].copy_from_slice(&b[row * r..(row + 1) * r]);
            }
            if self.config.use_dora {
                let km = m.peft_key("M");
                let mag = get(&km).ok_or_else(|| Error::Lora(format!("missing tensor {km}")))?;
                if mag.len() != m.out_features {
                    return Err(Error::Lora(format!("{km} has {} values, expected ({})", mag.len(), m.out_features)));
                }
                check_finite(&km, &mag)?;
                flat[m.m_start..m.m_start + mag.len()].copy_from_slice(&mag);
            }
        }
        Ok(flat)
    }

    /// The inverse of [`Lora::pack`]: (PEFT key, shape, values) for every tensor.
    pub fn unpack(&self, flat: &[f32]) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let (r, rp) = (self.config.r, self.config.r_padded());
        let mut out = Vec::new();
        for m in &self.modules {
            let a = flat[m.a_start..m.a_start + r * m.in_features].to_vec();
            let b = (0..m.out_features)
                .flat_map(|row| flat[m.b_start + row * rp..m.b_start + row * rp + r].to_vec())
                .collect();
            out.push((m.peft_key("A"), vec![r, m.in_features], a));
            out.push((m.peft_key("B"), vec![m.out_features, r], b));
            if self.config.use_dora {
                let mag = flat[m.m_start..m.m_start + m.out_features].to_vec();
                out.push((m.peft_key("M"), vec![m.out_features], mag));
            }
        }
        out
    }

    /// PEFT's default initialisation: A ~ U(−1/√in, 1/√in) (kaiming_uniform with a = √5),
    /// B = 0, drawn from `seed`. A DoRA adapter's magnitudes depend on the base: initialise it
    /// with [`Lora::init_peft_on`].
    pub fn init_peft(&self, gpu: &Gpu, seed: u64) -> Result<()> {
        if self.config.use_dora {
            return Err(Error::Lora(
                "a DoRA adapter's magnitudes come from the base weights: initialise it on the model".into(),
            ));
        }
        self.init_ab(gpu, seed)
    }

    /// PEFT's initialisation for a base `model`: [`Lora::init_peft`], and with DoRA each
    /// magnitude set to ‖W‖ per output row (‖W + s·B·A‖ with B = 0), as PEFT does.
    pub fn init_peft_on(&self, gpu: &Gpu, model: &crate::model::Model, seed: u64) -> Result<()> {
        self.init_ab(gpu, seed)?;
        if self.config.use_dora {
            dora::init_magnitudes(gpu, model, self)?;
        }
        Ok(())
    }

    fn init_ab(&self, gpu: &Gpu, seed: u64) -> Result<()> {
        let mut rng = crate::rng::Rng::new(seed);
        let mut values = std::collections::HashMap::new();
        for m in &self.modules {
            let bound = 1.0 / (m.in_features as f64).sqrt();
            let a: Vec<f32> =
                (0..self.config.r * m.in_features).map(|_| ((rng.unit() * 2.0 - 1.0) * bound) as f32).collect();
            values.insert(m.peft_key("A"), a);
            values.insert(m.peft_key("B"), vec![0.0; m.out_features * self.config.r]);
            // Set from the base by init_peft_on.
            values.insert(m.peft_key("M"), vec![0.0; m.out_features]);
        }
        self.load(gpu, |k| values.get(k).cloned())
    }

    /// Loads A, B (and DoRA magnitude) values by PEFT key (see [`Lora::pack`]).
    pub fn load(&self, gpu: &Gpu, get: impl Fn(&str) -> Option<Vec<f32>>) -> Result<()> {
        self.params.write_f32(gpu, &self.pack(get)?)
    }

    /// Reads the adapter back: (PEFT key, shape, values). Fails, naming the tensor, when a
    /// value is not finite: such an adapter is never written anywhere.
    pub async fn read_params(&self, gpu: &Gpu) -> Result<Vec<(String, Vec<usize>, Vec<f32>)>> {
        let tensors = self.unpack(&self.params.read_f32(gpu).await?);
        for (key, _, values) in &tensors {
            check_finite(key, values)?;
        }
        Ok(tensors)
    }
}

/// Fails, naming tensor `key` and the first bad index, unless every value is finite.
pub(crate) fn check_finite(key: &str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        None => Ok(()),
        Some(i) => Err(Error::Lora(format!("{key}[{i}] is {}: the adapter's values are not all finite", values[i]))),
    }
}

/// Reads an adapter folder, PEFT (adapter_model.safetensors) or MLX-LM (adapters.safetensors).
#[cfg(not(target_arch = "wasm32"))]
pub fn read_adapter_folder(gpu: &Gpu, model: &ModelConfig, dir: &std::path::Path) -> Result<Lora> {
    if dir.join("adapters.safetensors").exists() && !dir.join("adapter_model.safetensors").exists() {
        mlx::read_mlx_folder(gpu, model, dir)
    } else {
        peft::read_peft_folder(gpu, model, dir)
    }
}
