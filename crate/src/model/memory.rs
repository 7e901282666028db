//! The memory plan: every GPU buffer a training run allocates, from the model's config (or a
//! loaded model), the adapter's settings, the largest (B, T), recompute and the device's limits,
//! computed before anything is allocated and without a GPU. The activations come from the very
//! code that allocates a [`Plan`](super::Plan)'s (`Buffers::allocate`, run here with an allocator
//! that only records shapes), so the plan and the allocation cannot drift apart.
//!
//! WebGPU tells nobody how much memory a device has, and wgpu's native backends do not either,
//! so the total is checked against a budget only when one is given (`--memory-budget`, the
//! browser's `memoryBudget`, natively `WEBLORA_MEMORY`); the binding and buffer limits are hard
//! limits and always checked.

use std::cell::RefCell;

use serde::{Deserialize, Serialize};

use super::layer::Sizes;
use super::plan::{max_head_block, Buffers};
use super::{ModelConfig, ModelWeights, Weight};
use crate::error::{Error, Result};
use crate::gpu::{DType, GpuInfo, QuantTensor, SplitTensor, Tensor};
use crate::io::GgmlType;
use crate::lora::LoraConfig;

/// Whether backward recomputes each layer's activations from its input (less memory, slower).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Recompute {
    /// Only when the run does not fit without it.
    #[default]
    Auto,
    On,
    Off,
}

impl<'de> Deserialize<'de> for Recompute {
    /// "auto", "on", "off", or a boolean (what checkpoints before the three-way setting hold).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Bool(bool),
            Name(String),
        }
        match Repr::deserialize(d)? {
            Repr::Bool(true) => Ok(Recompute::On),
            Repr::Bool(false) => Ok(Recompute::Off),
            Repr::Name(n) => match n.as_str() {
                "auto" => Ok(Recompute::Auto),
                "on" => Ok(Recompute::On),
                "off" => Ok(Recompute::Off),
                _ => Err(serde::de::Error::custom(format!("recompute {n:?} is not one of auto, on, off"))),
            },
        }
    }
}

/// The device's limits a plan is checked against, by their WebGPU names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
}

impl Limits {
    pub fn of(info: &GpuInfo) -> Limits {
        Limits { max_storage_buffer_binding_size: info.max_storage_binding, max_buffer_size: info.max_buffer }
    }

    /// The most bytes one tensor may take: within one binding and one buffer.
    pub fn max_binding(&self) -> u64 {
        self.max_storage_buffer_binding_size.min(self.max_buffer_size)
    }
}

/// One buffer: its name and bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Buffer {
    pub name: String,
    pub bytes: u64,
}

fn largest(buffers: impl IntoIterator<Item = Buffer>) -> Buffer {
    buffers.into_iter().max_by_key(|b| b.bytes).unwrap_or_default()
}

/// The frozen weights on the GPU.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WeightMemory {
    pub bytes: u64,
    /// The seven projections of every layer.
    pub projections: u64,
    /// The largest buffer (one part of the embedding or head when they are split).
    pub largest: Buffer,
    /// The output projection's parts: rows, and whether f32 (the loss head's blocks follow them).
    #[serde(skip)]
    output_parts: Vec<(usize, bool)>,
    /// The most rows of a part of a projection split by output rows; 0 when none is split.
    #[serde(skip)]
    projection_part_rows: usize,
}

impl WeightMemory {
    /// What [`ModelWeights::allocate_with`] allocates for `config`, `kept` giving the type a
    /// projection, the embedding or the head is kept in (as the loaders decide it), under `limits`.
    pub fn plan(config: &ModelConfig, kept: &dyn Fn(&str) -> Option<GgmlType>, limits: &Limits) -> Result<Self> {
        let (c, f, qd, kvd, v) =
            (config.hidden_size, config.intermediate_size, config.q_dim(), config.kv_dim(), config.vocab_size);
        let f32_bytes = |numel: usize| numel as u64 * DType::F32.size();
        let quant_bytes = |name: &str, ty, rows, cols| {
            Ok::<_, Error>(Tensor::buffer_bytes(
                (QuantTensor::gpu_bytes_for(name, ty, rows, cols)? / 4) as usize,
                DType::U32,
            ))
        };
        let mut buffers = Vec::new();
        // A (rows, cols) tensor as the device stores it: whole, or in parts of its rows within
        // the limits (as `SplitTensor::zeros_as` splits it); its bytes and its part rows.
        let store = |buffers: &mut Vec<Buffer>, name: &str, rows: usize, cols: usize| -> Result<(u64, Option<usize>)> {
            let ty = kept(name).unwrap_or(GgmlType::F32);
            let bytes =
                |rows| if ty == GgmlType::F32 { Ok(f32_bytes(rows * cols)) } else { quant_bytes(name, ty, rows, cols) };
            let part_rows = SplitTensor::part_rows_for(name, ty, rows, cols, limits.max_binding())?;
            if part_rows >= rows {
                let b = bytes(rows)?;
                buffers.push(Buffer { name: name.into(), bytes: b });
                return Ok((b, None));
            }
            let mut total = 0;
            for (i, start) in (0..rows).step_by(part_rows).enumerate() {
                let b = bytes(part_rows.min(rows - start))?;
                buffers.push(Buffer { name: format!("{name}[{i}]"), bytes: b });
                total += b;
            }
            Ok((total, Some(part_rows)))
        };
        // The output projection's parts (rows, whether f32) from its part rows (None: whole).
        let vocab_parts = |name: &str, part_rows: Option<usize>| {
            let (f32, part_rows) = (kept(name).is_none_or(|ty| ty == GgmlType::F32), part_rows.unwrap_or(v).max(1));
            (0..v.max(1)).step_by(part_rows).map(|start| (part_rows.min(v - start), f32)).collect::<Vec<_>>()
        };
        let (_, embed_part_rows) = store(&mut buffers, "model.embed_tokens.weight", v, c)?;
        let mut output_parts = vocab_parts("model.embed_tokens.weight", embed_part_rows);
        let (mut projections, mut projection_part_rows) = (0, 0);
        let (qkv_bias, o_bias) = (config.qkv_bias(), config.o_bias());
        for l in 0..config.num_hidden_layers {
            let p = format!("model.layers.{l}");
            let linears = [
                ("self_attn.q_proj", qd, c, qkv_bias),
                ("self_attn.k_proj", kvd, c, qkv_bias),
                ("self_attn.v_proj", kvd, c, qkv_bias),
                ("self_attn.o_proj", c, qd, o_bias),
                ("mlp.gate_proj", f, c, false),
                ("mlp.up_proj", f, c, false),
                ("mlp.down_proj", c, f, false),
            ];
            for (i, (name, out, inp, bias)) in linears.into_iter().enumerate() {
                // The norms come where the checkpoint names them: before q and before gate.
                if i == 0 || i == 4 {
                    let norm = if i == 0 { "input_layernorm" } else { "post_attention_layernorm" };
                    buffers.push(Buffer { name: format!("{p}.{norm}.weight"), bytes: f32_bytes(c) });
                }
                let name = format!("{p}.{name}");
                let (bytes, part_rows) = store(&mut buffers, &format!("{name}.weight"), out, inp)?;
                projections += bytes;
                projection_part_rows = projection_part_rows.max(part_rows.unwrap_or(0));
                if bias {
                    buffers.push(Buffer { name: format!("{name}.bias"), bytes: f32_bytes(out) });
                }
            }
        }
        buffers.push(Buffer { name: "model.norm.weight".into(), bytes: f32_bytes(c) });
        if !config.tie_word_embeddings {
            let (_, head_part_rows) = store(&mut buffers, "lm_head.weight", v, c)?;
            output_parts = vocab_parts("lm_head.weight", head_part_rows);
        }
        let bytes = buffers.iter().map(|b| b.bytes).sum();
        Ok(WeightMemory { bytes, projections, largest: largest(buffers), output_parts, projection_part_rows })
    }

    /// The weights of a loaded model.
    pub fn of(weights: &ModelWeights) -> WeightMemory {
        let mut buffers = Vec::new();
        for (name, w) in weights.named() {
            match &w {
                Weight::Split(s) if s.num_parts() > 1 => buffers.extend(
                    s.parts()
                        .enumerate()
                        .map(|(i, (_, p))| Buffer { name: format!("{name}[{i}]"), bytes: p.gpu_bytes() }),
                ),
                _ => buffers.push(Buffer { name, bytes: w.gpu_bytes() }),
            }
        }
        let output_parts = weights.output().parts().map(|(_, p)| (p.shape()[0], p.ty() == GgmlType::F32)).collect();
        WeightMemory {
            bytes: weights.gpu_bytes(),
            projections: weights.projection_gpu_bytes(),
            largest: largest(buffers),
            output_parts,
            projection_part_rows: weights.projection_part_rows(),
        }
    }
}

/// What a model brings to a plan: its config and its weights' memory.
#[derive(Clone, Debug)]
pub struct ModelMemory {
    pub config: ModelConfig,
    pub weights: WeightMemory,
}

impl ModelMemory {
    pub fn of(model: &super::Model) -> ModelMemory {
        ModelMemory { config: model.config.clone(), weights: WeightMemory::of(&model.weights) }
    }
}

/// Every activation and scratch buffer a plan of `b` × `t` allocates, in order, with its bytes.
pub fn activation_buffers(
    model: &ModelMemory,
    lora: &LoraConfig,
    b: usize,
    t: usize,
    recompute: bool,
    limits: &Limits,
) -> Result<Vec<Buffer>> {
    let list = RefCell::new(Vec::new());
    let record = |name: &str, shape: &[usize]| {
        let bytes = shape.iter().product::<usize>() as u64 * DType::F32.size();
        list.borrow_mut().push(Buffer { name: name.into(), bytes });
        Ok::<(), Error>(())
    };
    let blocks = SplitTensor::block_rows(&model.weights.output_parts, max_head_block(limits.max_binding()))?;
    let head: Vec<usize> = blocks.into_iter().map(|(_, rows)| rows).collect();
    let sizes = Sizes::new(&model.config, b, t, &lora.targets, lora.r_padded(), lora.use_dora);
    let part_rows = model.weights.projection_part_rows;
    Buffers::<()>::allocate(&record, &sizes, model.config.num_hidden_layers, recompute, &head, part_rows)?;
    Ok(list.into_inner())
}

/// What a training run of one (B, T) shape takes on the GPU, in bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MemoryPlan {
    pub batch: usize,
    pub seq_len: usize,
    pub recompute: bool,
    pub weights: u64,
    /// The adapter's parameters and gradients: 2 × P f32.
    pub adapter: u64,
    /// AdamW's two moments: 2 × P f32.
    pub optimizer: u64,
    /// Activations and scratch ([`Plan::activation_bytes`](super::Plan::activation_bytes)).
    pub activations: u64,
    /// The batch's ids, targets, positions and segments, the step's scalars and the RoPE tables.
    pub inputs: u64,
    pub total: u64,
    /// The largest buffer bound to a kernel: a weight (or part) or an activation.
    pub largest_binding: Buffer,
}

impl MemoryPlan {
    pub fn new(
        model: &ModelMemory,
        lora: &LoraConfig,
        b: usize,
        t: usize,
        recompute: bool,
        limits: &Limits,
    ) -> Result<MemoryPlan> {
        let acts = activation_buffers(model, lora, b, t, recompute, limits)?;
        let activations = acts.iter().map(|a| a.bytes).sum();
        let flat = lora.flat_len(&model.config) as u64 * DType::F32.size();
        let n = b * t;
        let half_hd = model.config.head_dim() / 2;
        let inputs = 4 * Tensor::buffer_bytes(n, DType::U32)
            + Tensor::buffer_bytes(8, DType::U32)
            + 2 * Tensor::buffer_bytes(t * half_hd, DType::F32);
        let largest_act = largest(acts);
        let largest_binding =
            if largest_act.bytes > model.weights.largest.bytes { largest_act } else { model.weights.largest.clone() };
        let (adapter, optimizer) = (2 * flat, 2 * flat);
        let weights = model.weights.bytes;
        let total = weights + adapter + optimizer + activations + inputs;
        Ok(MemoryPlan {
            batch: b,
            seq_len: t,
            recompute,
            weights,
            adapter,
            optimizer,
            activations,
            inputs,
            total,
            largest_binding,
        })
    }
}

/// A run's memory: the plan chosen for its largest (B, T), whether it fits, and why.
#[derive(Clone, Debug, Serialize)]
pub struct RunMemory {
    /// The setting the decision was made from.
    pub setting: Recompute,
    /// The plan the run allocates (recompute as decided).
    pub plan: MemoryPlan,
    /// The same shape with recompute the other way.
    pub other: MemoryPlan,
    pub limits: Limits,
    /// The memory budget in bytes, when one is known.
    pub budget: Option<u64>,
    pub fits: bool,
    /// The decision, or what does not fit and what would.
    pub message: String,
}

/// Bytes as a person reads them: "3.1 GB", "412.5 MB".
pub fn show_bytes(bytes: u64) -> String {
    if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

impl RunMemory {
    /// Decides recompute for a run whose largest shape is `b` × `t` and checks the result
    /// against `limits` and `budget`, looking for what would fit when it does not.
    pub fn new(
        model: &ModelMemory,
        lora: &LoraConfig,
        b: usize,
        t: usize,
        setting: Recompute,
        budget: Option<u64>,
        limits: Limits,
    ) -> Result<RunMemory> {
        let plan = |b, t, r| MemoryPlan::new(model, lora, b, t, r, &limits);
        let fits =
            |p: &MemoryPlan| p.largest_binding.bytes <= limits.max_binding() && budget.is_none_or(|m| p.total <= m);
        let (off, on) = (plan(b, t, false)?, plan(b, t, true)?);
        let recompute = match setting {
            Recompute::On => true,
            Recompute::Off => false,
            // On when the budget is what the run without it exceeds (a binding too large is
            // too large either way).
            Recompute::Auto => !fits(&off) && budget.is_some_and(|m| off.total > m),
        };
        let (chosen, other) = if recompute { (on, off) } else { (off, on) };
        let ok = fits(&chosen);
        let budget_text = |m: u64| format!("the memory budget allows {}", show_bytes(m));
        let message = if ok {
            let why = match (setting, recompute, budget) {
                (Recompute::Auto, false, None) => {
                    " (auto: no memory budget is set, so only the device's limits are checked)".to_string()
                }
                (Recompute::Auto, false, Some(m)) => format!(" (auto: it fits without; {})", budget_text(m)),
                (Recompute::Auto, true, Some(m)) => {
                    format!(" (auto: without it the run needs {}; {})", show_bytes(other.total), budget_text(m))
                }
                _ => String::new(),
            };
            format!("recompute {}{why}", if recompute { "on" } else { "off" })
        } else {
            let need = if chosen.largest_binding.bytes > limits.max_binding() {
                format!(
                    "batch {b} × {t} needs a binding of {} for {}; this GPU allows {} per binding",
                    show_bytes(chosen.largest_binding.bytes),
                    chosen.largest_binding.name,
                    show_bytes(limits.max_binding())
                )
            } else {
                let m = budget.unwrap_or_default();
                format!("batch {b} × {t} needs {}; {}", show_bytes(chosen.total), budget_text(m))
            };
            let allowed: &[bool] = match setting {
                Recompute::Auto => &[false, true],
                Recompute::On => &[true],
                Recompute::Off => &[false],
            };
            // The largest shape that fits with the allowed recompute settings, else with either.
            let fit = |b2, t2, r| plan(b2, t2, r).is_ok_and(|p| fits(&p));
            let mut shapes: Vec<(usize, usize)> = (1..b).rev().map(|b2| (b2, t)).collect();
            shapes.extend((8..t).rev().filter(|t2| t2 % 8 == 0).map(|t2| (1, t2)));
            let shorter = |rs: &[bool]| {
                shapes.iter().find_map(|&(b2, t2)| rs.iter().find(|&&r| fit(b2, t2, r)).map(|&r| (b2, t2, r)))
            };
            let with = |r: bool| if r && !allowed.contains(&true) { " with recompute" } else { "" };
            let mut hints = Vec::new();
            if !recompute && fits(&other) {
                hints.push("with recompute".to_string());
            }
            if let Some((b2, t2, r)) = shorter(allowed).or_else(|| shorter(&[false, true])) {
                let shape = if t2 == t { format!("{b2}") } else { format!("{b2} × {t2}") };
                hints.push(format!("at batch {shape}{}", with(r)));
            }
            if hints.is_empty() {
                let fixed = chosen.weights + chosen.adapter + chosen.optimizer;
                format!("{need}; nothing fits: the weights, adapter and optimizer alone take {}", show_bytes(fixed))
            } else {
                format!("{need}; {}, it fits", hints.join(", or "))
            }
        };
        Ok(RunMemory { setting, plan: chosen, other, limits, budget, fits: ok, message })
    }

    /// One line: the largest batch, its total and activations, and the decision.
    pub fn summary(&self) -> String {
        let p = &self.plan;
        format!(
            "batch {} × {} takes {} (activations {}), {}",
            p.batch,
            p.seq_len,
            show_bytes(p.total),
            show_bytes(p.activations),
            if self.fits { self.message.clone() } else { format!("does not fit: {}", self.message) }
        )
    }

    /// An [`Error::Memory`] with the message when the run does not fit.
    pub fn check(&self) -> Result<()> {
        if self.fits {
            Ok(())
        } else {
            Err(Error::Memory(self.message.clone()))
        }
    }
}

impl std::fmt::Display for RunMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (p, o) = (&self.plan, &self.other);
        let mb = |b: u64| format!("{:>10.1} MB", b as f64 / 1e6);
        let on = if p.recompute { "on" } else { "off" };
        match self.fits {
            true => writeln!(f, "memory plan for batch {} × {}, {}", p.batch, p.seq_len, self.message)?,
            false => {
                writeln!(f, "memory plan for batch {} × {} (recompute {on}): it does not fit", p.batch, p.seq_len)?
            }
        }
        writeln!(f, "  weights      {}", mb(p.weights))?;
        writeln!(f, "  adapter      {}  (parameters and gradients)", mb(p.adapter))?;
        writeln!(f, "  optimizer    {}  (AdamW moments)", mb(p.optimizer))?;
        let r = |on: bool| if on { "with recompute" } else { "without recompute" };
        writeln!(
            f,
            "  activations  {}  ({}; {} {})",
            mb(p.activations),
            r(p.recompute),
            mb(o.activations).trim(),
            r(o.recompute)
        )?;
        writeln!(f, "  inputs       {}  (ids, targets, positions, segments, RoPE tables)", mb(p.inputs))?;
        let budget = self.budget.map_or("no budget known".to_string(), |m| format!("budget {}", show_bytes(m)));
        writeln!(f, "  total        {}  ({budget})", mb(p.total))?;
        let lb = &p.largest_binding;
        write!(
            f,
            "  largest binding {} ({}) of the device's {} (maxStorageBufferBindingSize {}, maxBufferSize {})",
            show_bytes(lb.bytes),
            lb.name,
            show_bytes(self.limits.max_binding()),
            self.limits.max_storage_buffer_binding_size,
            self.limits.max_buffer_size
        )
    }
}

/// The memory budget in bytes: `setting` in GB (10⁹ bytes) when given; natively, else
/// `WEBLORA_MEMORY` ("3.5GB", "3500MB", "4GiB", or a number of GB); else unknown.
pub fn budget(setting: Option<f64>) -> Result<Option<u64>> {
    if let Some(gb) = setting {
        return Ok(Some((gb * 1e9) as u64));
    }
    #[cfg(not(target_arch = "wasm32"))]
    if let Ok(value) = std::env::var(BUDGET_ENV) {
        return parse_bytes(&value).map(Some).ok_or_else(|| Error::Env {
            name: BUDGET_ENV,
            detail: format!("{value:?} is not an amount of memory (such as 3.5GB, 3500MB or 4GiB)"),
        });
    }
    Ok(None)
}

/// The environment variable that gives a memory budget natively.
pub const BUDGET_ENV: &str = "WEBLORA_MEMORY";

/// "3.5GB", "3500MB", "4GiB", "512MiB" or "2" (GB) in bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.trim().parse().ok()?;
    let scale = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "gb" | "g" => 1e9,
        "mb" | "m" => 1e6,
        "gib" => (1u64 << 30) as f64,
        "mib" => (1u64 << 20) as f64,
        _ => return None,
    };
    (value.is_finite() && value > 0.0).then_some((value * scale) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_parse_with_units() {
        assert_eq!(parse_bytes("3.5GB"), Some(3_500_000_000));
        assert_eq!(parse_bytes("3500 MB"), Some(3_500_000_000));
        assert_eq!(parse_bytes("4GiB"), Some(4 << 30));
        assert_eq!(parse_bytes("2"), Some(2_000_000_000));
        assert_eq!(parse_bytes("lots"), None);
        assert_eq!(parse_bytes("-1GB"), None);
    }

    #[test]
    fn recompute_reads_old_booleans() {
        let r: Vec<Recompute> = serde_json::from_str(r#"["auto", "on", "off", true, false]"#).unwrap();
        assert_eq!(r, [Recompute::Auto, Recompute::On, Recompute::Off, Recompute::On, Recompute::Off]);
        assert!(serde_json::from_str::<Recompute>(r#""sometimes""#).is_err());
    }
}
