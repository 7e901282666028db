//! `weblora bench --json` as a real process on a tiny shape given as a `config.json`: stdout is
//! one JSON object with the fields `benchmarks/peft_baseline.py` prints too (and the step's time
//! by kernel), and its figures agree with each other.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

#[test]
fn bench_json_prints_one_object_with_the_peer_fields() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-json");
    std::fs::create_dir_all(&dir).unwrap();
    let config = serde_json::json!({
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "max_position_embeddings": 64,
    });
    let path = dir.join("config.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weblora"))
        .args(["bench", "--json", "--config"])
        .arg(&path)
        .args(["--batch", "2", "--seq", "16", "--steps", "1", "--tokens", "3", "--quant", "q8_0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");

    assert!(report["device"]["name"].is_string() && report["device"]["kernels"].is_string(), "{report}");
    let peak = report["fma_peak_gflops"].as_f64().unwrap();
    assert!(peak.is_finite() && peak > 0.0, "{peak}");
    let matmul = report["matmul"].as_array().unwrap();
    assert_eq!(matmul.len(), 10);
    for m in matmul {
        let (gflops, percent) = (m["gflops"].as_f64().unwrap(), m["percent_of_peak"].as_f64().unwrap());
        assert!(gflops > 0.0 && (percent - 100.0 * gflops / peak).abs() < 1e-6 * percent.max(1.0), "{m}");
    }
    // The gate/up projection at B·T = 32 rows: (32, F = 128, C = 64).
    let gate = matmul.iter().find(|m| m["name"] == "gate/up x·Wᵀ").unwrap();
    assert_eq!((gate["m"].as_u64(), gate["n"].as_u64(), gate["k"].as_u64()), (Some(32), Some(128), Some(64)));

    let train = report["train"].as_array().unwrap();
    let rows: Vec<(&str, bool)> =
        train.iter().map(|r| (r["weights"].as_str().unwrap(), r["recompute"].as_bool().unwrap())).collect();
    let want = [("f32", false), ("f32", true), ("f16", false), ("f16", true), ("q8_0", false), ("q8_0", true)];
    assert_eq!(rows, want);
    for r in train {
        let (tps, step_s) = (r["tokens_per_s"].as_f64().unwrap(), r["step_s"].as_f64().unwrap());
        assert!((tps * step_s - 32.0).abs() < 1e-6 * 32.0, "tokens/s × s/step is the batch's 32 tokens: {r}");
        assert_eq!((r["batch"].as_u64(), r["seq"].as_u64()), (Some(2), Some(16)));
        assert!(r["peak_gpu_bytes"].as_u64().unwrap() > 0);
        // The step by kernel (lavapipe offers timestamp queries): shares of one sum, longest
        // first, the matmuls' share theirs; q8_0 weights are multiplied by the quantized kernels.
        let kernels = r["kernels"].as_array().unwrap_or_else(|| panic!("timed by kernel: {r}"));
        let share = |k: &Value| k["share"].as_f64().unwrap();
        assert!((kernels.iter().map(share).sum::<f64>() - 1.0).abs() < 1e-9, "{r}");
        assert!(kernels.windows(2).all(|w| w[0]["seconds"].as_f64() >= w[1]["seconds"].as_f64()), "{r}");
        let name = |k: &Value| k["kernel"].as_str().unwrap().to_string();
        let matmul_share: f64 =
            kernels.iter().filter(|k| name(k).starts_with("Mat") || name(k).starts_with("Quant(Mat")).map(share).sum();
        assert!((r["matmul_share"].as_f64().unwrap() - matmul_share).abs() < 1e-9, "{r}");
        assert!(kernels.iter().any(|k| name(k) == "Adamw"), "{r}");
        let quant = kernels.iter().any(|k| name(k).starts_with("Quant(MatmulNt, Q8_0"));
        assert_eq!(quant, r["weights"] == "q8_0", "{r}");
    }
    // Recompute keeps fewer activations; f16 and q8_0 weights take fewer bytes than f32.
    let bytes = |i: usize| train[i]["peak_gpu_bytes"].as_u64().unwrap();
    assert!(bytes(1) < bytes(0) && bytes(2) < bytes(0) && bytes(4) < bytes(2), "{train:?}");
    assert!(report["decode"]["tokens_per_s"].as_f64().unwrap() > 0.0);
    assert!(stderr.contains("bench --json: decoding 3 tokens"), "progress goes to stderr: {stderr}");
}
