//! Weights kept in their 16-bit or quantized type on the GPU. A Hugging Face folder whose config
//! says float16 or bfloat16 keeps its projections, embedding and head in that type (norms and
//! biases f32), and gives the logits, loss and LoRA gradients of the same folder loaded as f32,
//! with the embedding and the head in vocabulary parts: the gather dequantizes rows part by part,
//! the head's products and the cross-entropy's online log-sum-exp run over the parts, and the
//! decoder's head too. Also: how parts are sized for each type under WebGPU's default limits.

use std::path::{Path, PathBuf};

use half::{bf16, f16};
use weblora::gpu::{SplitTensor, Weight};
use weblora::io::GgmlType;
use weblora::lora::{LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::load::{load_hf_folder, load_model_with, LoadOptions};
use weblora::model::{Model, ModelConfig, Plan, PlanOptions};
use weblora::ops::StepParams;
use weblora_tests::tiny::{random_batch, random_lora, random_model};
use weblora_tests::{assert_close, gpu, read, rel_l2, Tolerance, F32};

const V: usize = 200;
const C: usize = 32;

fn config(tied: bool) -> ModelConfig {
    let json = serde_json::json!({
        "model_type": "qwen2",
        "hidden_size": C,
        "intermediate_size": 48,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "num_hidden_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0,
        "vocab_size": V,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 64,
    });
    ModelConfig::from_json(&json.to_string(), "16-bit test config").unwrap()
}

/// A random f32 model written as a Hugging Face folder, then rewritten with every tensor in
/// `ty` (F16 or BF16) and the config's `dtype` saying so, as transformers saves such models.
fn folder_16bit(ty: GgmlType, tied: bool) -> PathBuf {
    let g = gpu();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("hf-{}-{tied}", ty.name()));
    let model = random_model(g, config(tied), 21);
    pollster::block_on(weblora::model::export::write_hf_folder(g, &model, None, &dir)).unwrap();
    let file = std::fs::read(dir.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&file).unwrap();
    let converted: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let bytes = match ty {
                GgmlType::F16 => values.flat_map(|v| f16::from_f32(v).to_le_bytes()).collect(),
                _ => values.flat_map(|v| bf16::from_f32(v).to_le_bytes()).collect(),
            };
            (name, view.shape().to_vec(), bytes)
        })
        .collect();
    let dtype = if ty == GgmlType::F16 { safetensors::Dtype::F16 } else { safetensors::Dtype::BF16 };
    let views = converted.iter().map(|(name, shape, bytes)| {
        (name.clone(), safetensors::tensor::TensorView::new(dtype, shape.clone(), bytes).unwrap())
    });
    std::fs::write(dir.join("model.safetensors"), safetensors::tensor::serialize(views, None).unwrap()).unwrap();
    let mut cfg: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json")).unwrap()).unwrap();
    let name = if ty == GgmlType::F16 { "float16" } else { "bfloat16" };
    cfg["dtype"] = serde_json::Value::String(name.into());
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

/// The logits, loss, LoRA gradients and decoder logits of one step, of a LoRA or a DoRA adapter.
fn run(model: &Model, use_dora: bool) -> (Vec<f32>, f32, Vec<f32>, Vec<f32>) {
    let g = gpu();
    let cfg = LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: Target::ALL.to_vec(), use_rslora: false, use_dora };
    let lora = random_lora(g, &model.config, cfg, 5);
    let (b, t) = (2, 6);
    let mut batch = random_batch(b, t, V as u32, 2, 9);
    // Ids and targets in every part of 64 rows, at both ends of the vocabulary.
    batch.ids[..4].copy_from_slice(&[0, V as u32 - 1, 64, 63]);
    batch.targets[1..4].copy_from_slice(&[V as i32 - 1, 128, 127]);
    let plan = Plan::new(g, model, &lora, b, t, PlanOptions::default()).unwrap();
    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    plan.set_batch(&batch).unwrap();
    let sp = StepParams { inv_count: 1.0 / batch.supervised() as f32, ..Default::default() };
    let loss = pollster::block_on(plan.step(sp, true, false)).unwrap().loss;
    let decoder = Decoder::new(g, model, Some(&lora), t).unwrap();
    let decoded = (0..t).flat_map(|pos| pollster::block_on(decoder.next_logits(batch.ids[pos], pos)).unwrap());
    (logits, loss, read(&plan.state().grads), decoded.collect())
}

/// The embedding and the head of `model` again, in parts of 64 rows of `ty`, filled from the
/// folder's file: the parts a large vocabulary gets, at a size a test can run.
fn split_in_parts(model: &mut Model, dir: &Path, ty: GgmlType) {
    let g = gpu();
    let file = std::fs::read(dir.join("model.safetensors")).unwrap();
    let tensors = safetensors::SafeTensors::deserialize(&file).unwrap();
    let parts = |name: &str| {
        let t = SplitTensor::zeros_in_parts_as(g, name, ty, V, C, 64).unwrap();
        t.write_ggml(g, name, ty, tensors.tensor(name).unwrap().data()).unwrap();
        assert_eq!(t.num_parts(), 4);
        t
    };
    model.weights.embed_tokens = parts("model.embed_tokens.weight");
    if model.weights.lm_head.is_some() {
        model.weights.lm_head = Some(parts("lm_head.weight"));
    }
}

fn check(ty: GgmlType, tied: bool, use_dora: bool) {
    let g = gpu();
    let dir = folder_16bit(ty, tied);
    let mut kept = load_hf_folder(g, &dir).unwrap();
    let f32s = load_model_with(g, &dir, LoadOptions::dequantized()).unwrap();
    let w = &kept.weights;
    for (name, weight) in w.named() {
        let large = name.ends_with("proj.weight") || !name.contains("layers") && !name.contains("norm");
        let want = if large { ty } else { GgmlType::F32 };
        assert_eq!(weight.ty(), want, "{name}");
    }
    assert!(f32s.weights.named().iter().all(|(_, w)| matches!(w, Weight::F32(_) | Weight::Split(_))));
    assert!(f32s.weights.named().iter().all(|(_, w)| w.ty() == GgmlType::F32));
    let (k, f) = (w.gpu_bytes(), f32s.weights.gpu_bytes());
    println!("{} tied={tied}: GPU weights {k} B kept, {f} B as f32", ty.name());
    assert!((f as f64 / k as f64) > 1.9, "{f} vs {k}");

    split_in_parts(&mut kept, &dir, ty);
    let (logits_k, loss_k, grads_k, decoded_k) = run(&kept, use_dora);
    let (logits_f, loss_f, grads_f, decoded_f) = run(&f32s, use_dora);
    println!(
        "{} tied={tied} DoRA={use_dora}, 4 vocabulary parts vs f32: logits rel. L2 {:e}, loss {loss_k} vs {loss_f}, LoRA gradients \
         rel. L2 {:e}, decoder rel. L2 {:e}",
        ty.name(),
        rel_l2(&logits_k, &logits_f),
        rel_l2(&grads_k, &grads_f),
        rel_l2(&decoded_k, &decoded_f),
    );
    // The same values on both sides (16-bit values widen to f32 exactly): only summation order
    // differs.
    assert_close("logits", &logits_k, &logits_f, F32);
    assert_close("decoder logits", &decoded_k, &decoded_f, F32);
    assert_close("decoder vs forward logits", &decoded_k, &logits_k[..decoded_k.len()], F32);
    assert!((loss_k - loss_f).abs() < 1e-5 * loss_f.abs().max(1.0), "loss {loss_k} vs {loss_f}");
    assert_close("LoRA gradients", &grads_k, &grads_f, Tolerance { atol: 1e-5, rtol: 1e-3 });
    assert!(grads_k.iter().any(|&x| x != 0.0));
}

#[test]
fn bf16_folder_stays_bf16_and_matches_f32() {
    check(GgmlType::BF16, true, false);
}

#[test]
fn f16_folder_stays_f16_and_matches_f32() {
    check(GgmlType::F16, false, false);
}

/// DoRA over a 16-bit weight: ‖W‖² and A·Wᵀ from the weight in its own type.
#[test]
fn dora_on_an_f16_folder_matches_f32() {
    check(GgmlType::F16, false, true);
}

/// Parts are whole multiples of 64 rows within the 128 MiB binding, sized by each type's bytes.
#[test]
fn parts_are_sized_by_the_type_kept() {
    let g = gpu();
    let (rows, cols) = (151936, 512);
    let bf = SplitTensor::zeros_as(g, "bf16", GgmlType::BF16, rows, cols).unwrap();
    let q8 = SplitTensor::zeros_as(g, "q8_0", GgmlType::Q8_0, rows, cols).unwrap();
    let limit = g.info.max_tensor_bytes();
    println!("{rows} × {cols}: BF16 in {} parts, Q8_0 in {}", bf.num_parts(), q8.num_parts());
    assert_eq!((bf.num_parts(), q8.num_parts()), (2, 1));
    assert_eq!(bf.gpu_bytes(), (rows * cols * 2) as u64);
    for (first, part) in bf.parts() {
        assert!(first % 64 == 0 && part.gpu_bytes() <= limit, "part at {first}: {} B", part.gpu_bytes());
    }
}
