//! The whole engine against PyTorch + transformers + PEFT on tiny random models
//! (`tests/fixtures/tiny/`, made by make_fixture.py): logits, loss, every LoRA gradient, and the
//! losses of 5 AdamW steps with clipping.

use weblora::model::{Batch, Plan, PlanOptions};
use weblora::ops::{AdamwParams, StepParams};
use weblora_tests::fixture::{fixture_dir, load_adapter, load_model, read_safetensors};
use weblora_tests::{assert_close, gpu, rel_l2, Tolerance};

fn check_case(case: &str, recompute: bool) {
    let g = gpu();
    let dir = fixture_dir(&format!("tiny/{case}"));
    let model = load_model(g, &dir);
    let lora = load_adapter(g, &model.config, &dir.join("adapter"));
    let exp = read_safetensors(&dir.join("expected.safetensors"));
    let (b, t) = (exp["input_ids"].shape[0], exp["input_ids"].shape[1]);
    let ids: Vec<u32> = exp["input_ids"].ints.iter().map(|&i| i as u32).collect();
    let batch = Batch::from_labels(ids, &exp["labels"].ints, t);
    let opts = PlanOptions {
        recompute,
        max_grad_norm: 1.0,
        adamw: AdamwParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.01 },
    };
    let plan = Plan::new(g, &model, &lora, b, t, opts).unwrap();

    // Logits of every real position. Padded positions differ by design: transformers masks a
    // padded query's own key, the engine does not; no loss is taken there, so nothing else moves.
    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    let v = model.config.vocab_size;
    let real = |x: &[f32]| -> Vec<f32> {
        x.chunks(v)
            .zip(&exp["attention_mask"].ints)
            .filter(|(_, &m)| m == 1)
            .flat_map(|(row, _)| row.to_vec())
            .collect()
    };
    // Logits are O(1) sums of a few hundred f32 products: f32 rounding differs from PyTorch's.
    assert_close(
        &format!("{case} logits"),
        &real(&logits),
        &real(&exp["logits"].data),
        Tolerance { atol: 2e-5, rtol: 1e-4 },
    );

    // Step 1: loss and gradients at the initial adapter; then 4 more AdamW steps.
    plan.set_batch(&batch).unwrap();
    let mut losses = Vec::new();
    let mut norms = Vec::new();
    for step in 1..=5 {
        let sp = StepParams::for_update(step, 1e-2, &opts.adamw, batch.supervised(), 0);
        if step == 1 {
            // Gradients before the update, to compare with PEFT's.
            let st = pollster::block_on(plan.step(sp, true, false)).unwrap();
            assert_close(&format!("{case} loss"), &[st.loss], &exp["loss"].data, Tolerance { atol: 1e-5, rtol: 1e-5 });
            for (key, _, grad) in pollster::block_on(plan.state().read_grads(g, &lora)).unwrap() {
                let want = &exp[&format!("grad.{key}")].data;
                let err = rel_l2(&grad, want);
                assert!(err < 1e-4, "{case} grad {key}: relative L2 error {err}");
            }
        }
        let st = pollster::block_on(plan.step(sp, true, true)).unwrap();
        losses.push(st.loss);
        norms.push(st.grad_norm);
    }
    // Five steps of f32 AdamW from the same start: differences stay at rounding level.
    assert_close(
        &format!("{case} AdamW losses"),
        &losses,
        &exp["adamw_losses"].data,
        Tolerance { atol: 1e-5, rtol: 1e-4 },
    );
    assert_close(
        &format!("{case} grad norms"),
        &norms,
        &exp["adamw_grad_norms"].data,
        Tolerance { atol: 1e-5, rtol: 1e-4 },
    );
    for (key, _, value) in pollster::block_on(lora.read_params(g)).unwrap() {
        let want = &exp[&format!("after.{key}")].data;
        let err = rel_l2(&value, want);
        assert!(err < 1e-4, "{case} adapter {key} after 5 steps: relative L2 error {err}");
    }
}

#[test]
fn llama_tied_with_llama3_rope_matches_pytorch() {
    check_case("llama_tied", false);
}

#[test]
fn qwen2_untied_with_biases_and_rslora_matches_pytorch() {
    check_case("qwen2_untied", false);
}

#[test]
fn recompute_gives_the_same_numbers() {
    check_case("llama_tied", true);
}
