//! `weblora bench`: matmul throughput at SmolLM2-135M's training shapes and the speed of whole
//! training steps, on whatever adapter wgpu opens. Baselines are measured in the same run.
//! `weblora bench --load MODEL` measures loading a model instead: time, peak host memory and
//! GPU bytes, with the projections kept quantized and dequantized.

use std::path::{Path, PathBuf};
use std::time::Instant;

use weblora::gpu::{DType, Gpu, Program, QuantTensor, Tensor};
use weblora::io::ggml::GgmlType;
use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::{load, Batch, Linear, Model, ModelConfig, ModelWeights, Plan, PlanOptions, Weight};
use weblora::ops::{self, StepParams};
use weblora::Result;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Batch size of the training-step benchmark.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Sequence length of the training-step benchmark.
    #[arg(long, default_value_t = 128)]
    seq: usize,
    /// Decoder layers of the SmolLM2-shaped model (30 in the real one).
    #[arg(long, default_value_t = 30)]
    layers: usize,
    /// Rows (B·T) of the matmul benchmark.
    #[arg(long, default_value_t = 1024)]
    rows: usize,
    /// Timed training steps.
    #[arg(long, default_value_t = 3)]
    steps: usize,
    /// Also time the training step with the projections kept in this GGML type (q4_1, q8_0, …).
    #[arg(long)]
    quant: Option<String>,
    /// Measure loading this model (.gguf or Hugging Face folder) instead: load time, peak host
    /// memory and GPU bytes, with the projections kept quantized and dequantized.
    #[arg(long)]
    load: Option<PathBuf>,
    /// One load measurement, "quantized" or "f32", in this process (`--load` runs each in a
    /// fresh process so neither inherits the other's memory).
    #[arg(long, hide = true, requires = "load")]
    load_only: Option<String>,
}

/// SmolLM2-135M's shape with random weights.
fn smollm2_config(layers: usize) -> Result<ModelConfig> {
    let json = format!(
        r#"{{"model_type":"llama","hidden_size":576,"intermediate_size":1536,"num_attention_heads":9,
        "num_key_value_heads":3,"num_hidden_layers":{layers},"rms_norm_eps":1e-5,"rope_theta":100000,
        "vocab_size":49152,"tie_word_embeddings":true,"max_position_embeddings":8192}}"#
    );
    ModelConfig::from_json(&json, "SmolLM2-135M shape")
}

pub fn run(args: BenchArgs) -> Result<()> {
    let gpu = pollster::block_on(Gpu::new())?;
    let i = &gpu.info;
    say!(
        "adapter: {} ({}, {}), shader-f16 {}, subgroups {}",
        i.name,
        i.backend,
        i.device_type,
        i.shader_f16,
        i.subgroups
    );
    if let Some(path) = &args.load {
        return bench_load(&gpu, path, args.load_only.as_deref());
    }
    bench_matmuls(&gpu, args.rows)?;
    bench_quant_matmuls(&gpu, args.rows)?;
    bench_steps(&gpu, &args)
}

/// Times `reps` dispatches recorded into one program, after one warm-up submission.
fn time_program(gpu: &Gpu, prog: &Program, reps: usize) -> Result<f64> {
    gpu.submit(prog, None);
    gpu.wait()?;
    let start = Instant::now();
    for _ in 0..reps {
        gpu.submit(prog, None);
    }
    gpu.wait()?;
    Ok(start.elapsed().as_secs_f64() / reps as f64)
}

fn bench_matmuls(gpu: &Gpu, rows: usize) -> Result<()> {
    // (name, layout, M, N, K) as the training step issues them for SmolLM2-135M, r = 8.
    let shapes: [(&str, &str, usize, usize, usize); 7] = [
        ("q/o proj  x·Wᵀ", "nt", rows, 576, 576),
        ("gate/up   x·Wᵀ", "nt", rows, 1536, 576),
        ("down      x·Wᵀ", "nt", rows, 576, 1536),
        ("lm head   x·Wᵀ (64-row chunk)", "nt", 64, 49152, 576),
        ("down      dy·W", "nn", rows, 1536, 576),
        ("gate/up   dy·W", "nn", rows, 576, 1536),
        ("lora dA   duᵀ·x", "tn", 8, 576, rows),
    ];
    say!("\nmatmul, f32, {rows} rows; baseline: the same product on one CPU core (naive loop, first 16 rows)");
    say!("{:<32} {:>22} {:>10} {:>12} {:>10}", "shape", "M×N×K", "GFLOP/s", "CPU GFLOP/s", "ratio");
    for (name, layout, m, n, k) in shapes {
        let a = Tensor::zeros(gpu, "a", &[m * k], DType::F32)?;
        let b = Tensor::zeros(gpu, "b", &[n * k], DType::F32)?;
        let c = Tensor::zeros(gpu, "c", &[m, n], DType::F32)?;
        let data: Vec<f32> = (0..m.max(n) * k).map(|i| ((i % 97) as f32 - 48.0) / 97.0).collect();
        a.write_f32(gpu, &data[..m * k])?;
        b.write_f32(gpu, &data[..n * k])?;
        let mut prog = Program::new(gpu);
        let reps_in_program = 4;
        for _ in 0..reps_in_program {
            match layout {
                "nt" => ops::matmul_nt(&mut prog, &c, &a, &b, m, n, k, 1.0, 0.0)?,
                "nn" => ops::matmul_nn(&mut prog, &c, &a, &b, m, n, k, 1.0, 0.0)?,
                _ => ops::matmul_tn(&mut prog, &c, &a, &b, m, n, k, 1.0, 0.0)?,
            }
        }
        let secs = time_program(gpu, &prog, 2)? / reps_in_program as f64;
        let flops = 2.0 * (m * n * k) as f64;
        let cpu = cpu_gflops(&data, m, n, k);
        let gpu_gflops = flops / secs / 1e9;
        say!("{name:<32} {:>22} {gpu_gflops:>10.2} {cpu:>12.2} {:>9.1}×", format!("{m}×{n}×{k}"), gpu_gflops / cpu);
    }
    Ok(())
}

/// The frozen-weight products of the MLP's down projection (W 576 × 1536: K a multiple of 256) with the weight kept in each GGML format
/// and dequantized in the kernel, against the f32 kernels on the same shapes in the same run.
fn bench_quant_matmuls(gpu: &Gpu, rows: usize) -> Result<()> {
    let (m, n, k) = (rows, 576, 1536);
    let x = Tensor::zeros(gpu, "x", &[m, k], DType::F32)?;
    let y = Tensor::zeros(gpu, "y", &[m, n], DType::F32)?;
    let w32 = Tensor::zeros(gpu, "w", &[n, k], DType::F32)?;
    let flops = 2.0 * (m * n * k) as f64;
    say!("\nmatmul with a frozen weight W ({n}, {k}) dequantized in the kernel; baseline: f32 W, same run");
    say!("{:<6} {:>10} {:>14} {:>10} {:>14} {:>10}", "W", "MB", "x·Wᵀ GFLOP/s", "vs f32", "dy·W GFLOP/s", "vs f32");
    let mut base = None;
    for ty in [GgmlType::F32].into_iter().chain(QuantTensor::TYPES) {
        let w = match ty {
            GgmlType::F32 => None,
            _ => {
                let bytes = vec![0u8; ty.bytes_for((n * k) as u64).unwrap_or(0) as usize];
                Some(QuantTensor::from_ggml(gpu, "w", ty, n, k, &bytes)?)
            }
        };
        let mut times = [0.0; 2];
        for (layout, t) in times.iter_mut().enumerate() {
            let mut prog = Program::new(gpu);
            for _ in 0..4 {
                match (&w, layout) {
                    (None, 0) => ops::matmul_nt(&mut prog, &y, &x, &w32, m, n, k, 1.0, 0.0)?,
                    (None, _) => ops::matmul_nn(&mut prog, &x, &y, &w32, m, k, n, 1.0, 0.0)?,
                    (Some(w), 0) => ops::matmul_nt_quant(&mut prog, &y, &x, w, m, 1.0, 0.0)?,
                    (Some(w), _) => ops::matmul_nn_quant(&mut prog, &x, &y, w, m, 1.0, 0.0)?,
                }
            }
            *t = flops / (time_program(gpu, &prog, 2)? / 4.0) / 1e9;
        }
        let mb = w.as_ref().map_or(w32.byte_size(), |w| w.gpu_bytes()) as f64 / 1e6;
        let [b0, b1] = *base.get_or_insert(times);
        say!(
            "{:<6} {mb:>10.2} {:>14.2} {:>9.2}× {:>14.2} {:>9.2}×",
            ty.name(),
            times[0],
            times[0] / b0,
            times[1],
            times[1] / b1
        );
    }
    Ok(())
}

/// GFLOP/s of a naive single-core matmul over the first rows of the same shape.
fn cpu_gflops(data: &[f32], m: usize, n: usize, k: usize) -> f64 {
    let rows = m.min(16);
    let mut out = vec![0f32; rows * n];
    let start = Instant::now();
    for i in 0..rows {
        for j in 0..n {
            let mut s = 0f32;
            for x in 0..k {
                s += data[(i * k + x) % data.len()] * data[(j * k + x) % data.len()];
            }
            out[i * n + j] = s;
        }
    }
    std::hint::black_box(&out);
    2.0 * (rows * n * k) as f64 / start.elapsed().as_secs_f64() / 1e9
}

/// The value in kB of `key` (VmRSS, VmHWM) in /proc/self/status.
fn proc_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets VmHWM to the current resident size (Linux 4.0 and later).
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn model_file_bytes(path: &Path) -> u64 {
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    if !path.is_dir() {
        return len(path);
    }
    let files = std::fs::read_dir(path).into_iter().flatten().flatten().map(|e| e.path());
    files.filter(|p| p.extension().is_some_and(|e| e == "safetensors")).map(|p| len(&p)).sum()
}

/// Loads the model with the projections kept quantized, then dequantized, each in a fresh
/// process, measuring the load time, the peak resident host memory during the load (VmHWM
/// reset before it) and the GPU bytes of the weights. On a software adapter (lavapipe) GPU
/// buffers are host memory, so the peak includes the weights themselves.
fn bench_load(gpu: &Gpu, path: &Path, only: Option<&str>) -> Result<()> {
    let Some(mode) = only else {
        say!("\nloading {} ({:.1} MB on disk)", path.display(), model_file_bytes(path) as f64 / 1e6);
        say!(
            "{:<10} {:>7} {:>14} {:>12} {:>12} {:>10} {:>15} {:>15}",
            "weights",
            "load s",
            "RSS before MB",
            "peak MB",
            "increase MB",
            "GPU MB",
            "projections MB",
            "increase − GPU"
        );
        let exe = std::env::current_exe().map_err(|e| weblora::Error::io("the weblora executable", e))?;
        for mode in ["quantized", "f32"] {
            let out = std::process::Command::new(&exe)
                .args(["bench", "--load"])
                .arg(path)
                .args(["--load-only", mode])
                .output()
                .map_err(|e| weblora::Error::io(&exe, e))?;
            let text = String::from_utf8_lossy(&out.stdout);
            let row = text.lines().last().unwrap_or_default();
            if !out.status.success() {
                return Err(weblora::Error::Run(format!(
                    "bench --load {mode}: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
            say!("{row}");
        }
        return Ok(());
    };
    let opts = match mode {
        "quantized" => load::LoadOptions::default(),
        _ => load::LoadOptions::dequantized(),
    };
    let mb = |kb: u64| kb as f64 / 1e3;
    gpu.wait()?;
    let exact = reset_peak();
    let before = proc_kb("VmRSS").unwrap_or(0);
    let start = Instant::now();
    let model = load::load_model_with(gpu, path, opts)?;
    // The copies of the writes still queued run now, as they would at the first step.
    gpu.queue.submit([]);
    gpu.wait()?;
    let secs = start.elapsed().as_secs_f64();
    let peak = proc_kb("VmHWM").unwrap_or(0);
    let w = &model.weights;
    let increase = peak.saturating_sub(before);
    say!(
        "{mode:<10} {secs:>7.2} {:>14.1} {:>12.1} {:>12.1} {:>10.1} {:>15.1} {:>15.1}{}",
        mb(before),
        mb(peak),
        mb(increase),
        w.gpu_bytes() as f64 / 1e6,
        w.projection_gpu_bytes() as f64 / 1e6,
        mb(increase) - w.gpu_bytes() as f64 / 1e6,
        if exact { "" } else { "  (VmHWM could not be reset: the peak is the process's)" }
    );
    Ok(())
}

/// Replaces every projection of `weights` with a zero-filled weight of GGML type `ty`.
fn quantize_projections(gpu: &Gpu, weights: &mut ModelWeights, ty: GgmlType) -> Result<()> {
    for l in &mut weights.layers {
        let linears = [
            &mut l.q_proj,
            &mut l.k_proj,
            &mut l.v_proj,
            &mut l.o_proj,
            &mut l.gate_proj,
            &mut l.up_proj,
            &mut l.down_proj,
        ];
        for lin in linears {
            let Linear { out_features: n, in_features: k, .. } = *lin;
            lin.weight = Weight::Quant(QuantTensor::zeros(gpu, "w", ty, n, k)?);
        }
    }
    Ok(())
}

fn bench_steps(gpu: &Gpu, args: &BenchArgs) -> Result<()> {
    let config = smollm2_config(args.layers)?;
    let weights = ModelWeights::allocate(gpu, &config)?;
    for (n, (name, w)) in weights.named().into_iter().enumerate() {
        let values: Vec<f32> = (0..w.numel()).map(|i| (((i * 7 + n) % 13) as f32 - 6.0) * 0.01).collect();
        w.write_f32(gpu, &name, &values)?;
    }
    let mut models = vec![("f32".to_string(), Model { config: config.clone(), weights: weights.clone() })];
    if let Some(name) = &args.quant {
        let ty = QuantTensor::TYPES.into_iter().find(|t| t.name().eq_ignore_ascii_case(name)).ok_or_else(|| {
            weblora::Error::Setting {
                name: "quant".into(),
                detail: format!("{name} is not one of {:?}", QuantTensor::TYPES),
            }
        })?;
        let mut q = weights.clone();
        quantize_projections(gpu, &mut q, ty)?;
        models.push((ty.name().to_string(), Model { config: config.clone(), weights: q }));
    }
    let model = &models[0].1;
    let cfg = LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, targets: Target::ALL.to_vec(), use_rslora: false };
    let lora = Lora::new(gpu, &model.config, cfg)?;
    lora.init_peft(gpu, 0)?;
    let (b, t) = (args.batch, args.seq);
    let ids: Vec<u32> = (0..b * t).map(|i| (i * 31 % 49152) as u32).collect();
    let targets: Vec<i32> = (0..b * t).map(|i| ((i * 17 + 1) % 49152) as i32).collect();
    let batch = Batch::new(b, t, ids, targets)?;
    say!(
        "\ntraining step: SmolLM2-135M shape ({} layers, random weights), LoRA r=8 all-linear, batch {b} × seq {t}",
        args.layers,
    );
    say!("baseline: f32 weights without recompute");
    let mut baseline = None;
    for (label, model) in &models {
        for recompute in [false, true] {
            let plan = Plan::new(gpu, model, &lora, b, t, PlanOptions { recompute, ..Default::default() })?;
            plan.set_batch(&batch)?;
            let sp = StepParams {
                inv_count: 1.0 / batch.supervised() as f32,
                lr: 1e-4,
                bias_correction1: 0.1,
                bias_correction2_sqrt: 0.03,
                ..Default::default()
            };
            pollster::block_on(plan.step(sp, true, true))?;
            let start = Instant::now();
            for _ in 0..args.steps {
                pollster::block_on(plan.step(sp, true, true))?;
            }
            let secs = start.elapsed().as_secs_f64() / args.steps as f64;
            let tps = (b * t) as f64 / secs;
            let base = *baseline.get_or_insert(tps);
            say!(
                "{label:<5} weights ({:>4.0} MB)  recompute {:<5}  {secs:>8.3} s/step  {tps:>9.1} tokens/s  {:.2}× baseline  ({} activation MB)",
                model.weights.gpu_bytes() as f64 / 1e6,
                recompute,
                tps / base,
                plan.activation_bytes() / 1_000_000
            );
        }
    }
    Ok(())
}
