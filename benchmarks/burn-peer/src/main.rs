//! The Burn peer of `weblora bench --json`'s matmuls: Burn's f32 matmul (burn-wgpu, CubeCL,
//! autotuned) on the adapter WebLoRA opens, at the training shapes of the same `--config`, as
//! one JSON object with the same fields (`device`, `matmul: [{name, layout, m, n, k, gflops}]`).
//! No `percent_of_peak`: this peer measures no FMA ceiling of its own.
//!
//!   burn-peer [--config smollm2-135m|qwen2.5-0.5b|llama-3.2-1b|CONFIG.JSON] [--batch B] [--seq T]
//!
//! The shapes come from the file `weblora bench --json` reads them from, included below.

#[path = "../../../crate/src/bin/weblora/bench_shapes.rs"]
mod bench_shapes;

use std::process::ExitCode;
use std::time::Instant;

use bench_shapes::{training_matmuls, Dims, CONFIGS};
use burn::tensor::wgpu::WgpuSetup;
use burn::tensor::{Device, Tensor};
use serde_json::json;

/// The Burn release pinned in Cargo.toml, and the wgpu it resolves to (ours as well).
const BURN_VERSION: &str = "0.22.1";
const WGPU_VERSION: &str = "30.0.2";

/// The matmuls each timed run and each warm-up holds, as `weblora bench`'s `matmul_gflops`
/// records four dispatches into one program.
const REPS: usize = 4;

struct Args {
    config: String,
    batch: usize,
    seq: usize,
}

fn parse_args() -> Result<Args, String> {
    // `weblora bench`'s defaults.
    let mut args = Args { config: "smollm2-135m".into(), batch: 1, seq: 128 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--config" => args.config = value()?,
            "--batch" => args.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--seq" => args.seq = value()?.parse().map_err(|e| format!("--seq: {e}"))?,
            "-h" | "--help" => {
                return Err("usage: burn-peer [--config NAME|CONFIG.JSON] [--batch B] [--seq T]".into());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

/// `--config`: a named shape or the path of a Hugging Face `config.json` (or its folder).
fn resolve_config(name: &str) -> Result<(String, Dims), String> {
    if let Some((name, json)) = CONFIGS.iter().find(|(n, _)| *n == name) {
        return Ok((name.to_string(), Dims::from_config_json(json)?));
    }
    let path = std::path::Path::new(name);
    let file = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| format!("--config {name:?}: {e}"))?;
    Ok((file.display().to_string(), Dims::from_config_json(&text).map_err(|e| format!("{}: {e}", file.display()))?))
}

/// The adapter `weblora` opens (`Gpu::with_options`: the primary backends unless `WGPU_BACKEND`
/// names one, high-performance preference), with the device Burn requests for itself (every
/// feature the adapter offers but mappable primary buffers, as cubecl-wgpu does) and the limits
/// `WEBLORA_LIMITS` chooses (the adapter's unless it says `webgpu-default`).
fn open_adapter() -> Result<(WgpuSetup, wgpu::AdapterInfo), String> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    if std::env::var_os("WGPU_BACKEND").is_none() {
        desc.backends = wgpu::Backends::PRIMARY;
    }
    let instance = wgpu::Instance::new(desc);
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
        power_preference: wgpu::PowerPreference::HighPerformance,
        force_fallback_adapter: false,
        compatible_surface: None,
        ..Default::default()
    }))
    .map_err(|e| format!("no adapter: {e}"))?;
    let limits = match std::env::var("WEBLORA_LIMITS").as_deref() {
        Ok("webgpu-default") => wgpu::Limits::default(),
        Ok("adapter") | Err(_) => adapter.limits(),
        Ok(other) => return Err(format!("WEBLORA_LIMITS: {other:?} is not one of \"adapter\", \"webgpu-default\"")),
    };
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("burn-peer"),
        required_features: adapter.features().difference(wgpu::Features::MAPPABLE_PRIMARY_BUFFERS),
        required_limits: limits,
        memory_hints: wgpu::MemoryHints::MemoryUsage,
        ..Default::default()
    }))
    .map_err(|e| format!("requesting a device: {e}"))?;
    let info = adapter.get_info();
    Ok((WgpuSetup { instance, adapter, device, queue, backend: info.backend }, info))
}

/// GFLOP/s of Burn's f32 matmul in `layout` (see `bench_shapes::MatmulShape`) on zero-filled
/// operands, timed as `weblora bench` times its own: a warm-up (here two, so that autotune has
/// run and its winner is compiled), then 2 × `REPS` products ended by one sync, their mean.
fn matmul_gflops(device: &Device, layout: &str, m: usize, n: usize, k: usize) -> Result<f64, String> {
    let (a, b) = match layout {
        "nt" => (Tensor::<2>::zeros([m, k], device), Tensor::<2>::zeros([n, k], device).transpose()),
        "nn" => (Tensor::<2>::zeros([m, k], device), Tensor::<2>::zeros([k, n], device)),
        "tn" => (Tensor::<2>::zeros([k, m], device).transpose(), Tensor::<2>::zeros([k, n], device)),
        other => return Err(format!("unknown layout {other}")),
    };
    let run = |count: usize| -> Result<(), String> {
        let products: Vec<Tensor<2>> = (0..count).map(|_| a.clone().matmul(b.clone())).collect();
        device.sync().map_err(|e| format!("sync: {e:?}"))?;
        drop(products);
        Ok(())
    };
    run(REPS)?;
    run(REPS)?;
    let start = Instant::now();
    run(2 * REPS)?;
    let secs = start.elapsed().as_secs_f64() / (2 * REPS) as f64;
    Ok(2.0 * (m * n * k) as f64 / secs / 1e9)
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let (model_name, dims) = resolve_config(&args.config)?;
    let (setup, info) = open_adapter()?;
    let device = Device::wgpu_options().setup(setup).init().map_err(|e| format!("Burn on {}: {e}", info.name))?;
    let rows = args.batch * args.seq;
    eprintln!(
        "burn-peer: {model_name} on {} ({:?}), Burn {BURN_VERSION}: matmuls at {rows} rows",
        info.name, info.backend
    );
    let mut matmul = vec![];
    for (name, layout, m, n, k) in training_matmuls(&dims, rows) {
        let gflops = matmul_gflops(&device, layout, m, n, k)?;
        matmul.push(json!({ "name": name, "layout": layout, "m": m, "n": n, "k": k, "gflops": gflops }));
    }
    let report = json!({
        "device": {
            "name": info.name, "backend": format!("{:?}", info.backend),
            "device_type": format!("{:?}", info.device_type), "driver": info.driver_info,
        },
        "burn": BURN_VERSION,
        "wgpu": WGPU_VERSION,
        "matmul": matmul,
    });
    println!("{}", serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("burn-peer: {e}");
            ExitCode::FAILURE
        }
    }
}
