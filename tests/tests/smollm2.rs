//! The engine on the real SmolLM2-135M-Instruct against transformers' numbers for the same
//! GGUF file (dequantized to f32): last-position logits and the full-sequence loss.

use weblora::generate::{generate, Sampling};
use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::{load, Batch, Plan, PlanOptions};
use weblora_tests::fixture::read_safetensors;
use weblora_tests::gpu;
use weblora_tests::smollm2::{gguf_path, reference};

#[test]
fn logits_and_loss_match_transformers() {
    let g = gpu();
    let model = load::load_gguf(g, &gguf_path()).unwrap();
    let c = &model.config;
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.n_kv_heads()), (30, 576, 9, 3));
    assert_eq!((c.vocab_size, c.intermediate_size, c.head_dim(), c.tie_word_embeddings), (49152, 1536, 64, true));

    let fwd: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("smollm2_forward.json")).unwrap()).unwrap();
    let ids: Vec<u32> = fwd["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let t = ids.len();
    // A freshly initialised adapter (B = 0) leaves the base model's outputs unchanged.
    let cfg = LoraConfig { r: 8, alpha: 16.0, dropout: 0.0, targets: Target::ALL.to_vec(), use_rslora: false };
    let lora = Lora::new(g, c, cfg).unwrap();
    lora.init_peft(g, 0).unwrap();
    let plan = Plan::new(g, &model, &lora, 1, t, PlanOptions::default()).unwrap();

    // Loss over the whole sequence, labels = ids as transformers shifts them.
    let labels: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let batch = Batch::from_labels(ids.clone(), &labels, t);
    let loss = pollster::block_on(plan.eval_loss(&batch)).unwrap();
    let want_loss = fwd["mean_loss_full_sequence"].as_f64().unwrap() as f32;
    assert!((loss - want_loss).abs() < 1e-4, "loss {loss} vs transformers {want_loss}");

    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    let v = c.vocab_size;
    let last = &logits[(t - 1) * v..t * v];
    let want = &read_safetensors(&reference("smollm2_forward_last_logits.safetensors"))["last_logits"].data;
    let worst = last.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!("SmolLM2 last-position logits: max |engine − transformers| = {worst:e}, loss {loss} vs {want_loss}");
    // Both sides are f32 over the same dequantized weights; only summation order differs.
    assert!(worst < 1e-3, "max logit error {worst}");
    let top = |x: &[f32]| {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
        idx.truncate(10);
        idx
    };
    let want_top: Vec<usize> =
        fwd["last_logits_top10_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(top(last), want_top, "top-10 ids (argmax first)");

    // Greedy generation with the KV cache continues the prompt as transformers does.
    let want_greedy: Vec<u32> =
        fwd["greedy_40_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let decoder = Decoder::new(g, &model, None, t + want_greedy.len()).unwrap();
    let sampling = Sampling { max_new_tokens: want_greedy.len(), ..Default::default() };
    let got = pollster::block_on(generate(&decoder, &ids, &sampling)).unwrap();
    assert_eq!(got, want_greedy, "greedy continuation");
}
