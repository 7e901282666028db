//! Decoding with a KV cache gives the same logits as the full forward pass, position by
//! position, with and without an adapter; sampling follows its settings.

use weblora::generate::{generate, pick, Sampling};
use weblora::lora::{LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::{Batch, Plan, PlanOptions};
use weblora_tests::tiny::{config, random_lora, random_model};
use weblora_tests::{assert_close, gpu, Rng, F32};

#[test]
fn cached_decoding_matches_the_full_forward() {
    let g = gpu();
    for (name, cfg) in [("llama tied", config("llama", true, false)), ("qwen2 untied", config("qwen2", false, false))] {
        let model = random_model(g, cfg, 21);
        let lcfg = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.1,
            targets: Target::ALL.to_vec(),
            use_rslora: false,
            use_dora: false,
        };
        let lora = random_lora(g, &model.config, lcfg, 3);
        let t = 9;
        let ids: Vec<u32> = (0..t as u32).map(|i| (i * 7 + 3) % 64).collect();
        let plan = Plan::new(g, &model, &lora, 1, t, PlanOptions::default()).unwrap();
        let full = pollster::block_on(plan.logits(&Batch::new(1, t, ids.clone(), vec![-100; t]).unwrap())).unwrap();
        let decoder = Decoder::new(g, &model, Some(&lora), 16).unwrap();
        let v = model.config.vocab_size;
        for (pos, &id) in ids.iter().enumerate() {
            let step = pollster::block_on(decoder.next_logits(id, pos)).unwrap();
            assert_close(&format!("{name} position {pos}"), &step, &full[pos * v..(pos + 1) * v], F32);
        }
        // Without the adapter the logits differ (B is non-zero here).
        let base = Decoder::new(g, &model, None, 16).unwrap();
        let first = pollster::block_on(base.next_logits(ids[0], 0)).unwrap();
        assert!(first.iter().zip(&full[..v]).any(|(a, b)| (a - b).abs() > 1e-3), "{name}: adapter had no effect");
    }
}

#[test]
fn greedy_generation_is_the_argmax_chain() {
    let g = gpu();
    let model = random_model(g, config("llama", true, false), 5);
    let decoder = Decoder::new(g, &model, None, 32).unwrap();
    let prompt = [5u32, 9, 11];
    let out =
        pollster::block_on(generate(&decoder, &prompt, &Sampling { max_new_tokens: 6, ..Default::default() })).unwrap();
    assert_eq!(out.len(), 6);
    // Replay: each generated token is the argmax after the tokens before it.
    let mut seq = prompt.to_vec();
    for &tok in &out {
        let mut logits = vec![];
        for (pos, &id) in seq.iter().enumerate() {
            logits = pollster::block_on(decoder.next_logits(id, pos)).unwrap();
        }
        let best = logits.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        assert_eq!(tok, best);
        seq.push(tok);
    }
    // A stop token ends generation before it.
    let stopped = pollster::block_on(generate(
        &decoder,
        &prompt,
        &Sampling { max_new_tokens: 6, stop: vec![out[2]], ..Default::default() },
    ))
    .unwrap();
    let first = out.iter().position(|&t| t == out[2]).unwrap();
    assert_eq!(stopped, out[..first]);
    let too_long =
        pollster::block_on(generate(&decoder, &prompt, &Sampling { max_new_tokens: 40, ..Default::default() }));
    assert!(too_long.is_err());
}

#[test]
fn sampling_respects_top_k_top_p_and_seed() {
    let mut rng = Rng::new(1);
    let logits: Vec<f32> = (0..50).map(|_| rng.uniform() * 3.0).collect();
    let mut order: Vec<usize> = (0..50).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let s = Sampling { temperature: 1.0, top_k: 3, ..Default::default() };
    let mut state = weblora::rng::Rng::new(7);
    let draws: Vec<u32> = (0..300).map(|_| pick(&logits, &s, &mut state)).collect();
    assert!(draws.iter().all(|d| order[..3].contains(&(*d as usize))), "top-k 3 keeps the 3 best");
    assert!(order[..3].iter().all(|o| draws.contains(&(*o as u32))), "all 3 are drawn in 300 tries");
    let mut again = weblora::rng::Rng::new(7);
    assert_eq!(draws, (0..300).map(|_| pick(&logits, &s, &mut again)).collect::<Vec<_>>(), "same seed, same draws");
    let tiny_p = Sampling { temperature: 1.0, top_p: 1e-6, ..Default::default() };
    assert_eq!(pick(&logits, &tiny_p, &mut state), order[0] as u32, "top-p near 0 is greedy");
}
