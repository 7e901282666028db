//! Tiny random models made inside the tests.

use weblora::data::{BatchOptions, Batcher, Example};
use weblora::gpu::Gpu;
use weblora::lora::{Lora, LoraConfig};
use weblora::model::{Batch, Model, ModelConfig, ModelWeights};

use crate::Rng;

/// A 2-layer GQA config: C = 32, F = 48, 4 heads of 8 over 2 kv heads, V = 64.
/// `model_type` "qwen2" gives q/k/v biases; `attention_bias` on a Llama adds o's too.
pub fn config(model_type: &str, tied: bool, attention_bias: bool) -> ModelConfig {
    let json = serde_json::json!({
        "model_type": model_type,
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 8,
        "num_hidden_layers": 2,
        "rms_norm_eps": 1e-5,
        "rope_theta": 10000.0,
        "vocab_size": 64,
        "tie_word_embeddings": tied,
        "attention_bias": attention_bias,
        "max_position_embeddings": 64,
    });
    ModelConfig::from_json(&json.to_string(), "tiny config").unwrap()
}

/// Random weights: norms 1 + 0.1·U, biases 0.1·U, everything else 0.3·U (U uniform in [-1, 1)).
pub fn random_model(gpu: &Gpu, config: ModelConfig, seed: u64) -> Model {
    let weights = ModelWeights::allocate(gpu, &config).unwrap();
    let mut rng = Rng::new(seed);
    for (name, t) in weights.named() {
        let n = t.numel();
        let data: Vec<f32> = if name.ends_with("norm.weight") {
            rng.vec(n, 0.1).iter().map(|v| v + 1.0).collect()
        } else if name.ends_with(".bias") {
            rng.vec(n, 0.1)
        } else {
            rng.vec(n, 0.3)
        };
        t.write_f32(gpu, &name, &data).unwrap();
    }
    Model { config, weights }
}

/// An adapter with random A and B (B non-zero, so every gradient is non-zero).
pub fn random_lora(gpu: &Gpu, model: &ModelConfig, config: LoraConfig, seed: u64) -> Lora {
    let lora = Lora::new(gpu, model, config).unwrap();
    let mut rng = Rng::new(seed);
    let values: std::collections::HashMap<String, Vec<f32>> = lora
        .unpack(&vec![0.0; lora.params.numel()])
        .into_iter()
        .map(|(k, shape, _)| (k, rng.vec(shape.iter().product(), 0.2)))
        .collect();
    lora.load(gpu, |k| values.get(k).cloned()).unwrap();
    lora
}

/// A random (B, T) batch with no loss on the first position of each row and right padding
/// (target −100) on the last `pad` positions of row 0.
pub fn random_batch(b: usize, t: usize, vocab: u32, pad: usize, seed: u64) -> Batch {
    let mut rng = Rng::new(seed);
    let ids: Vec<u32> = (0..b * t).map(|_| rng.below(vocab)).collect();
    let mut targets: Vec<i32> = (0..b * t).map(|_| rng.below(vocab) as i32).collect();
    for row in 0..b {
        targets[row * t] = -100;
    }
    for target in &mut targets[t - pad..t] {
        *target = -100;
    }
    Batch::new(b, t, ids, targets).unwrap()
}

/// Examples of these lengths with random ids below `vocab`, each supervised from its second token.
pub fn random_examples(lens: &[usize], vocab: u32, seed: u64) -> Vec<Example> {
    let mut rng = Rng::new(seed);
    let example = |(line, &len): (usize, &usize)| Example {
        ids: (0..len).map(|_| rng.below(vocab)).collect(),
        mask: (0..len).map(|i| i > 0).collect(),
        line: line + 1,
    };
    lens.iter().enumerate().map(example).collect()
}

/// The batches of one epoch of `examples` in file order, `b` rows of at most `t` tokens, with
/// several examples a row when `packing`.
pub fn batches(examples: &[Example], b: usize, t: usize, packing: bool) -> Vec<Batch> {
    let options = BatchOptions {
        batch_size: b,
        seq_len: t,
        packing,
        shuffle: false,
        group_by_length: false,
        pad_to_multiple_of: 1,
        ..Default::default()
    };
    Batcher::new(examples.to_vec(), options, 0).epoch(0).map(Batch::from).collect()
}
