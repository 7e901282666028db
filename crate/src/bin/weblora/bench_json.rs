//! `weblora bench --json`: one JSON object for scripts and for comparison with the PEFT baseline
//! (`benchmarks/peft_baseline.py` prints the same fields): the device, its f32 multiply-add
//! ceiling measured by a microbenchmark, the f32 matmuls of a training step at the model's
//! shapes as GFLOP/s and percent of that ceiling, whole training steps, and decoding. Any model
//! shape runs with zero-filled weights: `--config smollm2-135m|qwen2.5-0.5b|llama-3.2-1b` or a
//! Hugging Face `config.json`.

use serde_json::{json, Value};
use weblora::gpu::{DType, Gpu, Program, QuantTensor, Tensor};
use weblora::io::ggml::GgmlType;
use weblora::lora::{Lora, LoraConfig};
use weblora::model::{Batch, Model, ModelConfig, ModelWeights, Plan, PlanOptions};
use weblora::ops::{self, StepParams};
use weblora::{Error, Result};

use crate::bench::{matmul_gflops, time_decode, time_program, time_steps};
use crate::bench_shapes::{training_matmuls, Dims, CONFIGS};

/// The names `--config` takes besides a path.
pub fn config_names() -> String {
    CONFIGS.iter().map(|(name, _)| *name).collect::<Vec<_>>().join(", ")
}

/// `--config`: a named shape or the path of a Hugging Face `config.json`.
pub fn resolve_config(name: &str) -> Result<(String, ModelConfig)> {
    if let Some((name, json)) = CONFIGS.iter().find(|(n, _)| *n == name) {
        return Ok((name.to_string(), ModelConfig::from_json(json, name)?));
    }
    let path = std::path::Path::new(name);
    let file = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| Error::Setting {
        name: "config".into(),
        detail: format!("{name:?} is not one of {} nor a readable config.json: {e}", config_names()),
    })?;
    Ok((file.display().to_string(), ModelConfig::from_json(&text, &file.display().to_string())?))
}

/// What `--json` measures.
pub struct JsonBench {
    pub config: String,
    pub batch: usize,
    pub seq: usize,
    pub steps: usize,
    pub tokens: usize,
    pub quant: Option<GgmlType>,
}

pub fn run(gpu: &Gpu, opts: &JsonBench) -> Result<()> {
    let (model_name, config) = resolve_config(&opts.config)?;
    // Progress goes to stderr: stdout holds only the JSON.
    eprintln!("bench --json: {model_name} on {}: FMA ceiling", gpu.info);
    let peak = fma_peak_gflops(gpu)?;
    eprintln!("bench --json: matmuls at {} rows", opts.batch * opts.seq);
    let matmul = matmuls(gpu, &config, opts.batch * opts.seq, peak)?;
    // One weight type at a time (f32, f16, then --quant), so only one copy is held; decoding
    // runs on the f32 weights. `--steps 0` times no training and `--tokens 0` no decoding: with
    // both, only the ceiling and the matmuls are measured and no model is allocated.
    let mut train = vec![];
    let mut decode = Value::Null;
    let kept_types: Vec<Option<GgmlType>> = match (opts.steps, opts.tokens) {
        (0, 0) => vec![],
        (0, _) => vec![None],
        _ => [None, Some(GgmlType::F16)].into_iter().chain(opts.quant.map(Some)).collect(),
    };
    for kept in kept_types {
        let label = kept.map_or("f32".to_string(), |ty| ty.name().to_lowercase());
        let model = Model { config: config.clone(), weights: ModelWeights::allocate_with(gpu, &config, &|_| kept)? };
        for recompute in [false, true].into_iter().filter(|_| opts.steps > 0) {
            eprintln!("bench --json: training, {label} weights, recompute {recompute}");
            train.push(train_row(gpu, &model, &model_name, &label, recompute, opts)?);
        }
        if kept.is_none() && opts.tokens > 0 {
            let prompt: Vec<u32> = (0..4).map(|i| i * 31 + 7).collect();
            eprintln!("bench --json: decoding {} tokens", opts.tokens);
            let tokens_per_s = time_decode(gpu, &model, &prompt, opts.tokens)?.0;
            decode =
                json!({ "model": model_name, "weights": "f32", "tokens": opts.tokens, "tokens_per_s": tokens_per_s });
        }
    }
    let i = &gpu.info;
    let report = json!({
        "device": {
            "name": i.name, "backend": i.backend, "device_type": i.device_type, "kernels": i.kernels.name(),
            "shader_f16": i.shader_f16, "subgroups": i.subgroups, "max_storage_binding": i.max_storage_binding,
        },
        "fma_peak_gflops": peak,
        "matmul": matmul,
        "train": train,
        "decode": decode,
    });
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| Error::Run(e.to_string()))?);
    Ok(())
}

/// The f32 multiply-add ceiling: the peak kernel grown until one run takes at least 50 ms.
fn fma_peak_gflops(gpu: &Gpu) -> Result<f64> {
    let out = Tensor::zeros(gpu, "peak", &[1 << 16], DType::F32)?;
    let iters = 256;
    let mut groups = 16;
    loop {
        let mut prog = Program::new(gpu);
        let flops = ops::fma_peak(&mut prog, &out, groups, iters)?;
        let secs = time_program(gpu, &prog, 3)?;
        if secs >= 0.05 || groups >= 1 << 20 {
            return Ok(flops / secs / 1e9);
        }
        groups *= 4;
    }
}

/// Every f32 matmul layout a training step runs ([`training_matmuls`]), at the model's shapes
/// with `rows` = B·T, in the device's kernel family.
fn matmuls(gpu: &Gpu, c: &ModelConfig, rows: usize, peak: f64) -> Result<Vec<Value>> {
    let mut out = vec![];
    for (name, layout, m, n, k) in training_matmuls(&dims(c), rows) {
        let gflops = matmul_gflops(gpu, layout, None, m, n, k)?;
        out.push(json!({
            "name": name, "layout": layout, "m": m, "n": n, "k": k, "gflops": gflops,
            "percent_of_peak": 100.0 * gflops / peak,
        }));
    }
    Ok(out)
}

/// The widths of `c` that the matmuls depend on.
fn dims(c: &ModelConfig) -> Dims {
    Dims {
        hidden: c.hidden_size,
        intermediate: c.intermediate_size,
        q_dim: c.q_dim(),
        kv_dim: c.kv_dim(),
        vocab: c.vocab_size,
    }
}

/// One training configuration: LoRA r = 8 on every linear layer, `steps` timed steps after one
/// warm-up. `peak_gpu_bytes` adds the weights, the adapter with its gradients and moments, and
/// the plan's activations.
fn train_row(gpu: &Gpu, model: &Model, name: &str, weights: &str, recompute: bool, opts: &JsonBench) -> Result<Value> {
    let cfg = LoraConfig::all_linear(8, 16.0);
    let lora = Lora::new(gpu, &model.config, cfg)?;
    lora.init_peft(gpu, 0)?;
    let (b, t) = (opts.batch, opts.seq);
    let v = model.config.vocab_size;
    let ids: Vec<u32> = (0..b * t).map(|i| (i * 31 % v) as u32).collect();
    let targets: Vec<i32> = (0..b * t).map(|i| ((i * 17 + 1) % v) as i32).collect();
    let batch = Batch::new(b, t, ids, targets)?;
    let plan = Plan::new(gpu, model, &lora, b, t, PlanOptions { recompute, ..Default::default() })?;
    let step_s = time_steps(&plan, &batch, opts.steps)?;
    let adapter_bytes = 4 * lora.params.byte_size();
    let peak = model.weights.gpu_bytes() + adapter_bytes + plan.activation_bytes();
    let mut row = json!({
        "model": name, "batch": b, "seq": t, "weights": weights, "recompute": recompute,
        "tokens_per_s": (b * t) as f64 / step_s, "step_s": step_s, "peak_gpu_bytes": peak,
    });
    if gpu.info.timestamps {
        let (kernels, matmul_share) = kernel_times(&plan, &batch)?;
        row["kernels"] = kernels;
        row["matmul_share"] = matmul_share.into();
    }
    Ok(row)
}

/// One more step of `plan` timed kernel by kernel (each dispatch in a pass of its own):
/// `[{kernel, seconds, dispatches, share}]`, longest first, and the matmuls' share of the sum.
fn kernel_times(plan: &Plan, batch: &Batch) -> Result<(Value, f64)> {
    let sp = StepParams { inv_count: 1.0 / batch.supervised() as f32, lr: 1e-4, ..StepParams::default() };
    let (_, times) = pollster::block_on(plan.time_step(sp))?;
    let total: f64 = times.iter().map(|t| t.seconds).sum::<f64>().max(f64::MIN_POSITIVE);
    let matmuls: f64 = times.iter().filter(|t| t.matmul).map(|t| t.seconds).sum();
    let rows = times
        .iter()
        .map(|t| json!({ "kernel": t.kernel, "seconds": t.seconds, "dispatches": t.dispatches, "share": t.seconds / total }))
        .collect();
    Ok((Value::Array(rows), matmuls / total))
}

/// `--quant NAME` as a kept GGML type.
pub fn quant_type(name: &str) -> Result<GgmlType> {
    QuantTensor::TYPES.into_iter().find(|t| t.name().eq_ignore_ascii_case(name)).ok_or_else(|| Error::Setting {
        name: "quant".into(),
        detail: format!("{name} is not one of {:?}", QuantTensor::TYPES),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Burn peer reads the widths from the config's JSON itself (`Dims::from_config_json`);
    /// they must be the engine's, or the two benchmarks time different products.
    #[test]
    fn the_peer_reads_the_engines_widths() {
        for (name, json) in CONFIGS {
            let engine = dims(&ModelConfig::from_json(json, name).unwrap());
            assert_eq!(Dims::from_config_json(json).unwrap(), engine, "{name}");
        }
    }
}
