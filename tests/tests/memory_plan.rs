//! The memory plan against what is really allocated: a plan's activations for several (B, T),
//! with and without recompute; a trainer's one arena for batches of several shapes; the weights
//! of a loaded model, f32 and kept quantized (planned from the GGUF header alone); the adapter.
//! Then the decisions: recompute only when needed, and a refusal that says what would fit.

use weblora::lora::{LoraConfig, Target};
use weblora::model::load::{self, LoadOptions, ModelSource};
use weblora::model::memory::Limits;
use weblora::model::{MemoryPlan, ModelMemory, Plan, PlanOptions, Recompute, RunMemory, WeightMemory};
use weblora::train::{TrainConfig, Trainer};
use weblora_tests::tiny::{config, random_batch, random_lora, random_model};
use weblora_tests::{gpu, model_file};

fn lora_config() -> LoraConfig {
    LoraConfig {
        r: 3,
        alpha: 6.0,
        dropout: 0.1,
        targets: vec![Target::Q, Target::V, Target::Down],
        use_rslora: false,
        use_dora: false,
    }
}

#[test]
fn the_plan_is_what_plans_and_trainers_allocate() {
    let g = gpu();
    let limits = Limits::of(&g.info);
    // DoRA adds each module's t and sc activations, the norm's scratch and the magnitudes.
    for (model_type, tied, use_dora) in [("llama", true, false), ("qwen2", false, false), ("llama", true, true)] {
        let model = random_model(g, config(model_type, tied, false), 3);
        let lora = random_lora(g, &model.config, LoraConfig { use_dora, ..lora_config() }, 1);
        let model_type = if use_dora { "llama DoRA" } else { model_type };
        let memory = ModelMemory::of(&model);
        assert_eq!(WeightMemory::plan(&model.config, &|_| None, &limits).unwrap(), memory.weights, "{model_type}");
        // (3, 40): more rows than one chunk of the loss head's logits.
        for (b, t) in [(1, 5), (2, 8), (3, 40)] {
            for recompute in [false, true] {
                let plan = Plan::new(g, &model, &lora, b, t, PlanOptions { recompute, ..Default::default() }).unwrap();
                let want = MemoryPlan::new(&memory, &lora.config, b, t, recompute, &limits).unwrap();
                let case = format!("{model_type} {b} × {t}, recompute {recompute}");
                assert_eq!(want.activations, plan.activation_bytes(), "{case}");
                assert_eq!(want.weights, model.weights.gpu_bytes(), "{case}");
                assert_eq!(want.adapter + want.optimizer, 4 * lora.params.byte_size(), "{case}");
            }
        }
        // A trainer keeps one arena, sized for the most tokens it has seen.
        let mut trainer =
            Trainer::new(g, &model, &lora, TrainConfig { recompute: true, ..Default::default() }).unwrap();
        for (b, t, seed) in [(2, 12, 1), (1, 30, 2), (3, 6, 3)] {
            pollster::block_on(trainer.train_step(&[random_batch(b, t, 64, 1, seed)])).unwrap();
        }
        let want = MemoryPlan::new(&memory, &lora.config, 1, 30, true, &limits).unwrap();
        assert_eq!(trainer.activation_bytes(), want.activations, "{model_type} trainer");
    }
}

#[test]
fn a_gguf_file_is_planned_from_its_header() {
    let g = gpu();
    let limits = Limits::of(&g.info);
    let path = model_file::smollm2_gguf();
    // Kept as the file's Q4_1 and Q8_0 (f32 weights are checked on the tiny models above).
    let planned = load::model_memory(&ModelSource::GgufFile(path.clone()), LoadOptions::default(), &limits).unwrap();
    let model = load::load_model_with(g, &path, LoadOptions::default()).unwrap();
    assert_eq!(planned.weights, WeightMemory::of(&model.weights));
    assert!(planned.weights.bytes < 100_000_000, "{}", planned.weights.bytes);
}

/// SmolLM2-135M's shape, planned without a GPU.
fn smollm2() -> ModelMemory {
    let limits = webgpu_default();
    load::model_memory(&ModelSource::GgufFile(model_file::smollm2_gguf()), LoadOptions::default(), &limits).unwrap()
}

fn webgpu_default() -> Limits {
    Limits { max_storage_buffer_binding_size: 128 << 20, max_buffer_size: 256 << 20 }
}

#[test]
fn recompute_is_turned_on_only_when_needed_and_a_refusal_says_what_fits() {
    let model = smollm2();
    let lora = LoraConfig::all_linear(8, 16.0);
    let plan = |b, t, r, budget| RunMemory::new(&model, &lora, b, t, r, budget, webgpu_default()).unwrap();
    let off = MemoryPlan::new(&model, &lora, 4, 256, false, &webgpu_default()).unwrap();
    let on = MemoryPlan::new(&model, &lora, 4, 256, true, &webgpu_default()).unwrap();
    assert!(on.activations < off.activations / 3, "{} {}", on.activations, off.activations);

    // No budget: auto keeps recompute off (only the hard limits are checked).
    let m = plan(4, 256, Recompute::Auto, None);
    assert!(m.fits && !m.plan.recompute, "{}", m.message);
    // Room for the plan without recompute: off.
    assert!(!plan(4, 256, Recompute::Auto, Some(off.total)).plan.recompute);
    // Room only with recompute: auto turns it on; off refuses and says so.
    let between = (on.total + off.total) / 2;
    let m = plan(4, 256, Recompute::Auto, Some(between));
    assert!(m.fits && m.plan.recompute, "{}", m.message);
    assert!(m.message.starts_with("recompute on (auto: without it the run needs"), "{}", m.message);
    let m = plan(4, 256, Recompute::Off, Some(between));
    assert!(!m.fits && m.check().is_err());
    assert!(m.message.starts_with("batch 4 × 256 needs"), "{}", m.message);
    assert!(m.message.contains("; with recompute, or at batch "), "{}", m.message);
    // Not even with recompute: a smaller batch.
    let m = plan(4, 256, Recompute::Auto, Some(on.total - 1));
    assert!(!m.fits, "{}", m.message);
    let fits = MemoryPlan::new(&model, &lora, 3, 256, true, &webgpu_default()).unwrap();
    assert!(fits.total < on.total - 1);
    assert!(m.message.ends_with("or at batch 3, it fits") || m.message.contains("at batch 3"), "{}", m.message);
    assert_eq!(m.check().unwrap_err().kind(), "memory");
    // A budget below the weights: nothing fits.
    let m = plan(1, 64, Recompute::Auto, Some(off.weights / 2));
    assert!(m.message.contains("nothing fits"), "{}", m.message);
    // Too many tokens for one binding (an (N, F) activation past 128 MiB), whatever the budget.
    let m = plan(64, 1024, Recompute::On, None);
    assert!(!m.fits && m.message.contains("needs a binding of"), "{}", m.message);
    assert!(m.message.contains("at batch "), "{}", m.message);
}
