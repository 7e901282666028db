//! PEFT's own LoRA run on SmolLM2-135M-Instruct (`tests/fixtures/reference/peft_run/`): from the
//! same adapter on the same batches, the engine's step-1 gradients match PEFT's (relative
//! error per tensor ≤ 1e-3) and its 20 losses track PEFT's within 1% at every step.

use std::collections::HashMap;

use weblora::model::{load, Batch, Plan, PlanOptions};
use weblora::ops::{AdamwParams, StepParams};
use weblora_tests::fixture::{load_adapter, read_safetensors};
use weblora_tests::smollm2::{gguf_path, reference};
use weblora_tests::{gpu, rel_l2};

#[test]
fn twenty_steps_track_peft() {
    let g = gpu();
    let model = load::load_gguf(g, &gguf_path()).unwrap();
    let lora = load_adapter(g, &model.config, &reference("peft_run/init_adapter"));
    let batches: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("peft_run/batches.json")).unwrap()).unwrap();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("peft_run/losses.json")).unwrap()).unwrap();
    let want_grads = read_safetensors(&reference("peft_run/grads_step1.safetensors"));
    // The recipe of losses.json: AdamW lr 2e-4, betas (0.9, 0.999), eps 1e-8, no decay, no clipping.
    let opts = PlanOptions {
        recompute: true,
        max_grad_norm: 0.0,
        adamw: AdamwParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
    };
    let mut plans: HashMap<usize, Plan> = HashMap::new();
    for (i, b) in batches.as_array().unwrap().iter().enumerate() {
        let step = i as i32 + 1;
        let rows: Vec<Vec<i64>> = serde_json::from_value(b["input_ids"].clone()).unwrap();
        let labels: Vec<Vec<i64>> = serde_json::from_value(b["labels"].clone()).unwrap();
        let (bs, t) = (rows.len(), rows[0].len());
        let ids: Vec<u32> = rows.iter().flatten().map(|&x| x as u32).collect();
        let batch = Batch::from_labels(ids, &labels.concat(), t);
        let plan = plans.entry(t).or_insert_with(|| Plan::new(g, &model, &lora, bs, t, opts).unwrap());
        plan.set_batch(&batch).unwrap();
        let sp = StepParams::for_update(step, 2e-4, &opts.adamw, batch.supervised(), 0);
        if step == 1 {
            pollster::block_on(plan.step(sp, true, false)).unwrap();
            for (key, _, grad) in pollster::block_on(lora.read_grads(g)).unwrap() {
                let want = &want_grads[&key].data;
                if want.iter().all(|&x| x == 0.0) {
                    // lora_A gradients are exactly zero at step 1: B starts at zero.
                    assert!(grad.iter().all(|&x| x == 0.0), "{key}: expected an exactly zero gradient");
                } else {
                    let err = rel_l2(&grad, want);
                    assert!(err <= 1e-3, "{key}: relative error {err}");
                }
            }
        }
        let st = pollster::block_on(plan.step(sp, true, true)).unwrap();
        let want = &record["steps"][i];
        let (wl, wn) = (want["loss"].as_f64().unwrap() as f32, want["grad_norm"].as_f64().unwrap() as f32);
        println!(
            "step {step:2} (B {bs} × T {t}): loss {:.6} vs PEFT {wl:.6}, grad norm {:.5} vs {wn:.5}",
            st.loss, st.grad_norm
        );
        assert!((st.loss - wl).abs() <= 0.01 * wl, "step {step}: loss {} vs PEFT {wl}", st.loss);
        assert!((st.grad_norm - wn).abs() <= 0.01 * wn, "step {step}: grad norm {} vs PEFT {wn}", st.grad_norm);
    }
}
