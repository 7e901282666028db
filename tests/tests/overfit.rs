//! A tiny model memorises one small batch through its LoRA adapter alone.

use weblora::lora::LoraConfig;
use weblora::model::{Plan, PlanOptions};
use weblora::ops::{AdamwParams, StepParams};
use weblora_tests::gpu;
use weblora_tests::tiny::{config, random_batch, random_model};

#[test]
fn lora_overfits_a_small_batch() {
    let g = gpu();
    let model = random_model(g, config("llama", true, false), 11);
    let cfg = LoraConfig::all_linear(8, 16.0);
    let lora = weblora::lora::Lora::new(g, &model.config, cfg).unwrap();
    lora.init_peft(g, 1).unwrap();
    let batch = random_batch(2, 8, model.config.vocab_size as u32, 0, 4);
    let hp = AdamwParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let opts = PlanOptions { adamw: hp, ..Default::default() };
    let plan = Plan::new(g, &model, &lora, 2, 8, opts).unwrap();
    plan.set_batch(&batch).unwrap();
    let mut losses = Vec::new();
    for step in 1..=150 {
        let sp = StepParams::for_update(step, 2e-2, &hp, batch.supervised(), 0);
        losses.push(pollster::block_on(plan.step(sp, true, true)).unwrap().loss);
    }
    let (first, last) = (losses[0], *losses.last().unwrap());
    assert!(losses.iter().all(|l| l.is_finite()), "{losses:?}");
    assert!(last < 0.1 * first, "loss went from {first} to {last}: {losses:?}");
}
