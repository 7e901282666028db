//! A Qwen2-shaped model (q/k/v biases, GQA) with Qwen2's vocabulary of 151936 on a device opened
//! with WebGPU's default limits: its f32 embedding (155.6 MB) is over the 128 MiB binding limit,
//! so the embedding and the head are stored in vocabulary parts. The embedding gather, the head,
//! the cross-entropy's online log-sum-exp and the decoder run across the parts, and the logits,
//! the loss and the LoRA gradients must equal the CPU reference (`cpu_model`).

use std::sync::OnceLock;

use weblora::gpu::{DeviceLimits, Gpu, GpuOptions, KernelChoice};
use weblora::lora::{LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::{ModelConfig, Plan, PlanOptions};
use weblora::ops::StepParams;
use weblora_tests::cpu_model;
use weblora_tests::tiny::{random_batch, random_lora, random_model};
use weblora_tests::{assert_close, rel_l2, Tolerance};

const V: usize = 151936;

/// A device with WebGPU's default limits (and the kernels `WEBLORA_KERNELS` asks for), opened
/// once for this test binary.
fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let options = GpuOptions {
            limits: DeviceLimits::WebgpuDefault,
            kernels: KernelChoice::from_env().expect("WEBLORA_KERNELS"),
        };
        pollster::block_on(Gpu::with_options(options)).expect("a wgpu adapter")
    })
}

fn config(tied: bool) -> ModelConfig {
    let json = serde_json::json!({
        "model_type": "qwen2",
        "hidden_size": 256,
        "intermediate_size": 384,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "num_hidden_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "vocab_size": V,
        "tie_word_embeddings": tied,
        "max_position_embeddings": 64,
    });
    ModelConfig::from_json(&json.to_string(), "qwen2 vocabulary config").unwrap()
}

fn check(tied: bool) {
    let g = gpu();
    assert_eq!((g.info.max_storage_binding, g.info.max_buffer), (128 << 20, 256 << 20), "WebGPU's defaults");
    let cfg = config(tied);
    let model = random_model(g, cfg.clone(), if tied { 11 } else { 12 });
    let w = &model.weights;
    assert!(w.embed_tokens.num_parts() > 1, "the embedding is in {} part(s)", w.embed_tokens.num_parts());
    assert!(w.output().num_parts() > 1);
    let first_part = w.embed_tokens.parts().nth(1).map(|(v0, _)| v0).unwrap();

    let lora_cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
        use_rslora: false,
        use_dora: false,
    };
    let lora = random_lora(g, &cfg, lora_cfg, 5);
    let (b, t) = (2, 5);
    let mut batch = random_batch(b, t, V as u32, 1, 9);
    // Tokens and targets on both sides of the first part boundary, and at the vocabulary's ends.
    batch.ids[..4].copy_from_slice(&[0, V as u32 - 1, first_part as u32, first_part as u32 - 1]);
    batch.targets[1..4].copy_from_slice(&[V as i32 - 1, first_part as i32, first_part as i32 - 1]);
    batch.targets[6] = 0;

    let plan = Plan::new(g, &model, &lora, b, t, PlanOptions::default()).unwrap();
    plan.set_batch(&batch).unwrap();
    let params = StepParams { inv_count: 1.0 / batch.supervised() as f32, ..Default::default() };
    let loss = pollster::block_on(plan.step(params, true, false)).unwrap().loss;
    let grads = cpu_model::lora_pairs(&lora, &pollster::block_on(plan.state().grads.read_f32(g)).unwrap());
    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    let decoder = Decoder::new(g, &model, Some(&lora), t).unwrap();
    let decoded: Vec<f32> =
        (0..t).flat_map(|pos| pollster::block_on(decoder.next_logits(batch.ids[pos], pos)).unwrap()).collect();

    let (weights, adapter) = (cpu_model::read_weights(g, &model), cpu_model::read_adapter(g, &lora));
    let want = cpu_model::forward_backward(&cfg, &weights, &adapter, &batch);

    let name = if tied { "tied" } else { "untied" };
    let max_err = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    let logit_err = max_err(&logits, &want.logits);
    let decode_err = max_err(&decoded, &want.logits[..t * V]);
    let loss_err = (loss - want.loss).abs();
    let grad_err = want.grads.iter().map(|(key, (ga, gb))| {
        let (a, b) = &grads[key];
        rel_l2(a, ga).max(rel_l2(b, gb))
    });
    let grad_err = grad_err.fold(0f32, f32::max);
    println!(
        "{name}: {} parts; logits max |err| {logit_err:.2e}, decoder {decode_err:.2e}, loss {} vs {} (|err| \
         {loss_err:.2e}), LoRA gradients worst relative L2 {grad_err:.2e}",
        w.output().num_parts(),
        loss,
        want.loss
    );
    assert_eq!(want.grads.len(), 2 * 7, "every projection of both layers is adapted");
    // Measured on lavapipe: logits (magnitude ~10, dot products of 256 terms) within 2.6e-5 of the
    // f64 reference, the loss within 3e-6, gradients within 5.5e-6 relative L2.
    let logit_tol = Tolerance { atol: 3e-4, rtol: 0.0 };
    assert_close(&format!("{name} logits"), &logits, &want.logits, logit_tol);
    assert_close(&format!("{name} decoder logits"), &decoded, &want.logits[..t * V], logit_tol);
    assert!(loss_err < 3e-5, "{name}: loss {loss} vs {}", want.loss);
    assert!(grad_err < 5e-5, "{name}: LoRA gradients relative L2 error {grad_err}");
}

#[test]
fn tied_qwen2_vocabulary_in_parts_matches_the_cpu_reference() {
    check(true);
}

#[test]
fn untied_qwen2_vocabulary_in_parts_matches_the_cpu_reference() {
    check(false);
}
