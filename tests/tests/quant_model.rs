//! A tiny llama GGUF whose projections are Q4_1, Q4_0, Q8_0 and F16 and whose (tied) embedding
//! is Q8_0, loaded twice: with those weights kept in their GGML format on the GPU (the embedding
//! gathered and the head multiplied from the Q8_0 words), and dequantized to f32. Both hold the same
//! values (q/k rows un-permuted on the file's blocks in one case, on f32 rows in the other), so
//! the logits and the LoRA gradients agree to f32 rounding, and the kept model is smaller.

use half::f16;
use weblora::io::gguf_write::{write_gguf, GgufWriteTensor, GgufWriteValue};
use weblora::io::GgmlType;
use weblora::lora::{LoraConfig, Target};
use weblora::model::load::{load_gguf_with, LoadOptions};
use weblora::model::{Model, Plan, PlanOptions, Weight};
use weblora::ops::StepParams;
use weblora_tests::tiny::{random_batch, random_lora};
use weblora_tests::{assert_close, gpu, read, rel_l2, Rng, Tolerance, F32};

// C = 64, F = 96, 4 heads of 16 over 2 kv heads, V = 64, 2 layers, tied embeddings.
const C: usize = 64;
const F: usize = 96;
const V: usize = 64;

/// The GGML bytes of a random (rows, cols) tensor of type `ty`, scales chosen so values stay
/// around ±0.3.
fn random_ggml(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    let mut out = Vec::new();
    let half = |v: f32| f16::from_f32(v).to_le_bytes();
    let mut bytes = |k: usize| (0..k).map(|_| rng.below(256) as u8).collect::<Vec<u8>>();
    match ty {
        GgmlType::F16 => (0..n).for_each(|_| out.extend(half(0.3 * (bytes(1)[0] as f32 / 128.0 - 1.0)))),
        GgmlType::Q8_0 => (0..n / 32).for_each(|_| {
            out.extend(half(0.3 / 128.0));
            out.extend(bytes(32));
        }),
        GgmlType::Q4_0 => (0..n / 32).for_each(|_| {
            out.extend(half(0.3 / 8.0));
            out.extend(bytes(16));
        }),
        GgmlType::Q4_1 => (0..n / 32).for_each(|_| {
            let d = 0.02 + 0.02 * bytes(1)[0] as f32 / 256.0;
            out.extend(half(d));
            out.extend(half(-8.0 * d));
            out.extend(bytes(16));
        }),
        _ => unreachable!(),
    }
    assert_eq!(out.len() as u64, ty.bytes_for(n as u64).unwrap());
    out
}

/// Writes the tiny GGUF to the test's output folder and returns its path.
fn tiny_gguf() -> std::path::PathBuf {
    // Written once: the tests of this file run in parallel and share it.
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(write_tiny_gguf).clone()
}

fn write_tiny_gguf() -> std::path::PathBuf {
    let mut rng = Rng::new(11);
    let u32v = GgufWriteValue::U32;
    let metadata = [
        ("general.architecture", GgufWriteValue::Str("llama".into())),
        ("llama.attention.head_count", u32v(4)),
        ("llama.attention.head_count_kv", u32v(2)),
        ("llama.embedding_length", u32v(C as u32)),
        ("llama.feed_forward_length", u32v(F as u32)),
        ("llama.block_count", u32v(2)),
        ("llama.context_length", u32v(64)),
        ("llama.attention.layer_norm_rms_epsilon", GgufWriteValue::F32(1e-5)),
        ("llama.rope.freq_base", GgufWriteValue::F32(10000.0)),
    ];
    let norm = |name: String, rng: &mut Rng| {
        let data: Vec<f32> = rng.vec(C, 0.1).iter().map(|v| v + 1.0).collect();
        GgufWriteTensor::f32(name, vec![C], &data)
    };
    let embd = random_ggml(&mut rng, GgmlType::Q8_0, V, C);
    let mut tensors =
        vec![GgufWriteTensor { name: "token_embd.weight".into(), shape: vec![V, C], ty: GgmlType::Q8_0, bytes: embd }];
    for l in 0..2 {
        tensors.push(norm(format!("blk.{l}.attn_norm.weight"), &mut rng));
        tensors.push(norm(format!("blk.{l}.ffn_norm.weight"), &mut rng));
        let projections = [
            ("attn_q", GgmlType::Q4_1, 64, C),
            ("attn_k", GgmlType::Q4_0, 32, C),
            ("attn_v", GgmlType::Q8_0, 32, C),
            ("attn_output", GgmlType::F16, C, 64),
            ("ffn_gate", GgmlType::Q4_1, F, C),
            ("ffn_up", GgmlType::Q8_0, F, C),
            ("ffn_down", GgmlType::Q4_0, C, F),
        ];
        for (name, ty, rows, cols) in projections {
            let bytes = random_ggml(&mut rng, ty, rows, cols);
            tensors.push(GgufWriteTensor {
                name: format!("blk.{l}.{name}.weight"),
                shape: vec![rows, cols],
                ty,
                bytes,
            });
        }
    }
    tensors.push(norm("output_norm.weight".into(), &mut rng));
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-quant.gguf");
    std::fs::write(&path, write_gguf(&metadata, &tensors)).unwrap();
    path
}

/// The logits and the LoRA gradients of one step (every target adapted, no dropout).
fn logits_and_grads(model: &Model) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let g = gpu();
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
        use_rslora: false,
        use_dora: false,
    };
    let lora = random_lora(g, &model.config, cfg, 5);
    let (b, t) = (2, 6);
    let batch = random_batch(b, t, V as u32, 2, 9);
    let plan = Plan::new(g, model, &lora, b, t, PlanOptions::default()).unwrap();
    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    plan.set_batch(&batch).unwrap();
    let sp = StepParams { inv_count: 1.0 / batch.supervised() as f32, ..Default::default() };
    pollster::block_on(plan.step(sp, true, false)).unwrap();
    (logits, read(&plan.state().grads), read(plan.input_grad()))
}

#[test]
fn quantized_projections_give_the_gradients_of_their_f32_values() {
    let g = gpu();
    let path = tiny_gguf();
    let kept = load_gguf_with(g, &path, LoadOptions::default()).unwrap();
    let f32s = load_gguf_with(g, &path, LoadOptions::dequantized()).unwrap();
    let l0 = &kept.weights.layers[0];
    let types = [&l0.q_proj, &l0.k_proj, &l0.v_proj, &l0.o_proj, &l0.gate_proj, &l0.up_proj, &l0.down_proj]
        .map(|lin| lin.weight.ty());
    use GgmlType::{Q4_0, Q4_1, Q8_0};
    assert_eq!(types, [Q4_1, Q4_0, Q8_0, GgmlType::F16, Q4_1, Q8_0, Q4_0]);
    assert_eq!(kept.weights.get("model.embed_tokens.weight").map(|w| w.ty()), Some(Q8_0));
    assert!(f32s.weights.named().iter().all(|(_, w)| w.ty() == GgmlType::F32 && !matches!(w, Weight::Quant(_))));
    let (q, f) = (kept.weights.projection_gpu_bytes(), f32s.weights.projection_gpu_bytes());
    println!("tiny projections: f32 {f} B, kept {q} B (×{:.2})", f as f64 / q as f64);
    assert!(f as f64 / q as f64 > 3.0, "{f} vs {q}");

    let (logits_q, grads_q, dx_q) = logits_and_grads(&kept);
    let (logits_f, grads_f, dx_f) = logits_and_grads(&f32s);
    println!(
        "tiny model, quantized vs f32 projections: logits rel. L2 {:e}, LoRA gradients rel. L2 {:e}, dx rel. L2 {:e}",
        rel_l2(&logits_q, &logits_f),
        rel_l2(&grads_q, &grads_f),
        rel_l2(&dx_q, &dx_f)
    );
    // The same weight values on both sides: only summation order (and the kernels' fused
    // multiply-adds in dequantization) differ.
    assert_close("logits", &logits_q, &logits_f, F32);
    // Gradients pass back through two layers of products: a little more rounding.
    let grad_tol = Tolerance { atol: 1e-5, rtol: 1e-3 };
    assert_close("LoRA gradients", &grads_q, &grads_f, grad_tol);
    assert_close("dx", &dx_q, &dx_f, grad_tol);
    assert!(grads_q.iter().any(|&x| x != 0.0));
}

/// What needs f32 weights says so instead of working on the quantized words.
#[test]
fn merge_and_export_refuse_quantized_weights() {
    let g = gpu();
    let kept = load_gguf_with(g, &tiny_gguf(), LoadOptions::default()).unwrap();
    let cfg =
        LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec![Target::Q], use_rslora: false, use_dora: false };
    let lora = random_lora(g, &kept.config, cfg, 1);
    let err = weblora::lora::merge::merge_into(g, &kept, &lora).expect_err("merge refuses").to_string();
    assert!(err.contains("Q4_1") && err.contains("dequantized"), "{err}");
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("tiny-quant-hf");
    let err =
        pollster::block_on(weblora::model::export::write_hf_folder(g, &kept, None, &dir)).unwrap_err().to_string();
    assert!(err.contains("embed_tokens") && err.contains("dequantized"), "{err}");
    let err = kept.weights.write(g, "model.layers.0.self_attn.q_proj.weight", &[64, C], &[0.0; 64 * C]).unwrap_err();
    assert!(err.to_string().contains("Q4_1"), "{err}");
}
