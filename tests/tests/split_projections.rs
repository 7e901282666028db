//! A Qwen2-shaped model whose MLP projections are larger than its device's bindings: the device
//! is opened with 8 MiB storage bindings and buffers, so the f32 gate and up projections (24576 ×
//! 128, 12 MiB) are stored in two parts of output rows (16384 and 8192) and down (128 × 24576) in
//! two of 64. The forward (each part's product moved into its columns), the input gradient
//! (summed over the parts' columns of dy), the decoder's mat-vecs, DoRA's row norms and merging
//! run across the parts; the logits, the loss and the LoRA gradients must equal the CPU reference
//! (`cpu_model`), and DoRA's must equal the same model on a device where nothing is split.

use std::sync::OnceLock;

use weblora::gpu::{DeviceLimits, Gpu, GpuOptions, KernelChoice, Weight};
use weblora::lora::{merge, Lora, LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::memory::Limits;
use weblora::model::{MemoryPlan, Model, ModelConfig, ModelMemory, Plan, PlanOptions, WeightMemory};
use weblora::ops::StepParams;
use weblora_tests::cpu_model;
use weblora_tests::tiny::{random_batch, random_lora, random_model};
use weblora_tests::{assert_close, gpu, rel_l2, Tolerance};

const LIMIT: u64 = 8 << 20;
const V: usize = 256;

/// A device whose bindings and buffers take at most [`LIMIT`] bytes (and the kernels
/// `WEBLORA_KERNELS` asks for), opened once for this test binary.
fn small_gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        let options = GpuOptions {
            limits: DeviceLimits::Smaller { max_storage_binding: LIMIT, max_buffer: LIMIT },
            kernels: KernelChoice::from_env().expect("WEBLORA_KERNELS"),
        };
        pollster::block_on(Gpu::with_options(options)).expect("a wgpu adapter")
    })
}

fn config() -> ModelConfig {
    let json = serde_json::json!({
        "model_type": "qwen2",
        "hidden_size": 128,
        "intermediate_size": 24576,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 32,
        "num_hidden_layers": 2,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "vocab_size": V,
        "tie_word_embeddings": true,
        "max_position_embeddings": 64,
    });
    ModelConfig::from_json(&json.to_string(), "split projections config").unwrap()
}

fn lora_config(use_dora: bool) -> LoraConfig {
    LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: Target::ALL.to_vec(), use_rslora: false, use_dora }
}

/// The number of parts of each of layer 0's MLP projections.
fn mlp_parts(model: &Model) -> [usize; 3] {
    let l = &model.weights.layers[0];
    [&l.gate_proj, &l.up_proj, &l.down_proj].map(|lin| match &lin.weight {
        Weight::Split(s) => s.num_parts(),
        _ => 1,
    })
}

/// One training step's loss and LoRA gradients, the plan's logits and the decoder's.
struct Outputs {
    loss: f32,
    grads: Vec<f32>,
    logits: Vec<f32>,
    decoded: Vec<f32>,
}

fn run(g: &Gpu, model: &Model, lora: &Lora, b: usize, t: usize) -> Outputs {
    let batch = random_batch(b, t, V as u32, 1, 9);
    let plan = Plan::new(g, model, lora, b, t, PlanOptions::default()).unwrap();
    plan.set_batch(&batch).unwrap();
    let params = StepParams { inv_count: 1.0 / batch.supervised() as f32, ..Default::default() };
    let loss = pollster::block_on(plan.step(params, true, false)).unwrap().loss;
    let grads = pollster::block_on(plan.state().grads.read_f32(g)).unwrap();
    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    let decoded = decode(g, model, Some(lora), &batch.ids[..t]);
    Outputs { loss, grads, logits, decoded }
}

/// The decoder's logits for each of `ids` in turn.
fn decode(g: &Gpu, model: &Model, lora: Option<&Lora>, ids: &[u32]) -> Vec<f32> {
    let decoder = Decoder::new(g, model, lora, ids.len()).unwrap();
    ids.iter().enumerate().flat_map(|(pos, &id)| pollster::block_on(decoder.next_logits(id, pos)).unwrap()).collect()
}

fn max_err(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

#[test]
fn lora_over_projections_in_parts_matches_the_cpu_reference_and_merges() {
    let g = small_gpu();
    assert_eq!((g.info.max_storage_binding, g.info.max_buffer), (LIMIT, LIMIT));
    let cfg = config();
    let model = random_model(g, cfg.clone(), 21);
    assert_eq!(mlp_parts(&model), [2, 2, 2], "gate, up and down in two parts each");
    let lora = random_lora(g, &cfg, lora_config(false), 5);

    // The memory plan splits as the device did, and counts the part products' scratch.
    let (limits, memory) = (Limits::of(&g.info), ModelMemory::of(&model));
    assert_eq!(WeightMemory::plan(&cfg, &|_| None, &limits).unwrap(), memory.weights);
    assert!(memory.weights.largest.bytes <= LIMIT, "{:?}", memory.weights.largest);
    let (b, t) = (2, 5);
    let plan = Plan::new(g, &model, &lora, b, t, PlanOptions::default()).unwrap();
    let planned = MemoryPlan::new(&memory, &lora.config, b, t, false, &limits).unwrap();
    assert_eq!(planned.activations, plan.activation_bytes());
    drop(plan);

    let got = run(g, &model, &lora, b, t);
    let (weights, adapter) = (cpu_model::read_weights(g, &model), cpu_model::read_adapter(g, &lora));
    let batch = random_batch(b, t, V as u32, 1, 9);
    let want = cpu_model::forward_backward(&cfg, &weights, &adapter, &batch);
    let grads = cpu_model::lora_pairs(&lora, &got.grads);
    let grad_err = want.grads.iter().map(|(key, (ga, gb))| {
        let (a, b) = &grads[key];
        rel_l2(a, ga).max(rel_l2(b, gb))
    });
    let grad_err = grad_err.fold(0f32, f32::max);
    println!(
        "logits max |err| {:.2e}, decoder {:.2e}, loss {} vs {} (|err| {:.2e}), LoRA gradients worst relative L2 \
         {grad_err:.2e}",
        max_err(&got.logits, &want.logits),
        max_err(&got.decoded, &want.logits[..t * V]),
        got.loss,
        want.loss,
        (got.loss - want.loss).abs()
    );
    assert_eq!(want.grads.len(), 2 * 7, "every projection of both layers is adapted");
    // Measured on lavapipe (both kernel families): logits within 1.3e-5 of the f64 reference,
    // the loss within 2.4e-6, gradients within 6.5e-6 relative L2; the merged model's logits
    // within 2.0e-5 of base + adapter.
    let logit_tol = Tolerance { atol: 1e-4, rtol: 0.0 };
    assert_close("logits", &got.logits, &want.logits, logit_tol);
    assert_close("decoder logits", &got.decoded, &want.logits[..t * V], logit_tol);
    assert!((got.loss - want.loss).abs() < 3e-5, "loss {} vs {}", got.loss, want.loss);
    assert!(grad_err < 5e-5, "LoRA gradients relative L2 error {grad_err}");

    // Merged into the split weights, the base alone answers as base + adapter did.
    merge::merge_into(g, &model, &lora).unwrap();
    let merged = decode(g, &model, None, &batch.ids[..t]);
    let merge_err = max_err(&merged, &got.decoded);
    println!("merged decoder logits max |err| {merge_err:.2e}");
    assert_close("merged decoder logits", &merged, &got.decoded, logit_tol);
}

#[test]
fn dora_over_projections_in_parts_matches_whole_projections() {
    let cfg = config();
    let (b, t) = (2, 5);
    let outputs: Vec<Outputs> = [(small_gpu(), [2, 2, 2]), (gpu(), [1, 1, 1])]
        .into_iter()
        .map(|(g, parts)| {
            let model = random_model(g, cfg.clone(), 22);
            assert_eq!(mlp_parts(&model), parts, "{}", g.info.max_storage_binding);
            let lora = random_lora(g, &cfg, lora_config(true), 6);
            let out = run(g, &model, &lora, b, t);
            if parts[0] > 1 {
                // DoRA merges whole rows scaled by their norms: refused over parts, naming the first.
                let err = merge::merge_into(g, &model, &lora).unwrap_err().to_string();
                assert!(
                    err.contains("layer 0") && err.contains("gate_proj") && err.contains("split into 2 parts"),
                    "{err}"
                );
            }
            out
        })
        .collect();
    let (split, whole) = (&outputs[0], &outputs[1]);
    let (logit_err, decode_err) = (max_err(&split.logits, &whole.logits), max_err(&split.decoded, &whole.decoded));
    let grad_err = rel_l2(&split.grads, &whole.grads);
    println!(
        "DoRA split vs whole: logits max |err| {logit_err:.2e}, decoder {decode_err:.2e}, loss {} vs {}, gradients \
         relative L2 {grad_err:.2e}",
        split.loss, whole.loss
    );
    // Measured on lavapipe: in the CPU family the forward's products are the same sums in the
    // same order whole or in parts (logits and loss equal to the bit), in the tiled family the
    // logits differ by up to 3.8e-6; the gradients by 1.0e-7 and 1.6e-7 relative L2 (the input
    // gradient sums the parts' products one after the other).
    let logit_tol = Tolerance { atol: 4e-5, rtol: 0.0 };
    assert_close("DoRA logits", &split.logits, &whole.logits, logit_tol);
    assert_close("DoRA decoder logits", &split.decoded, &whole.decoded, logit_tol);
    assert!((split.loss - whole.loss).abs() < 2e-5, "DoRA loss {} vs {}", split.loss, whole.loss);
    assert!(grad_err < 2e-6, "DoRA gradients relative L2 error {grad_err}");
}
