//! The trainer: a run interrupted and resumed from its checkpoint continues exactly as the
//! uninterrupted run; gradient accumulation equals one large batch; packed rows train as their
//! examples alone; a diverging step leaves the adapter as it was; warm-up starts from a zero
//! learning rate; a lost device is a typed error, and its run resumes on a new device; a step
//! timed kernel by kernel is the same step.

use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::{Batch, Model, Plan, PlanOptions};
use weblora::ops::StepParams;
use weblora::train::{Schedule, TrainConfig, Trainer};
use weblora_tests::tiny::{batches, config, random_batch, random_examples, random_lora, random_model};
use weblora_tests::{assert_close, gpu, private_gpu, read, Tolerance};

fn fresh_lora(model: &Model) -> Lora {
    fresh_lora_on(gpu(), model)
}

fn fresh_lora_on(g: &weblora::gpu::Gpu, model: &Model) -> Lora {
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: Target::ALL.to_vec(),
        use_rslora: false,
        use_dora: false,
    };
    let lora = Lora::new(g, &model.config, cfg).unwrap();
    lora.init_peft(g, 7).unwrap();
    lora
}

fn train_config() -> TrainConfig {
    TrainConfig {
        learning_rate: 5e-3,
        lr_scheduler_type: Schedule::Cosine,
        warmup_steps: 1,
        max_steps: 6,
        gradient_accumulation_steps: 2,
        weight_decay: 0.01,
        ..Default::default()
    }
}

fn data() -> Vec<Batch> {
    (0..12).map(|i| random_batch(2, 6 + i % 3, 64, 1, i as u64)).collect()
}

#[test]
fn resumed_run_equals_uninterrupted_run() {
    let g = gpu();
    let model = random_model(g, config("llama", false, true), 31);
    let batches = data();
    let run = |trainer: &mut Trainer, from: usize, to: usize| -> Vec<f32> {
        (from..to).map(|s| pollster::block_on(trainer.train_step(&batches[2 * s..2 * s + 2])).unwrap().loss).collect()
    };
    let lora = fresh_lora(&model);
    let mut full = Trainer::new(g, &model, &lora, train_config()).unwrap();
    let uninterrupted = run(&mut full, 0, 6);
    assert!(uninterrupted[5] < uninterrupted[0], "{uninterrupted:?}");

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("resume-checkpoint");
    let lora_a = fresh_lora(&model);
    let mut first = Trainer::new(g, &model, &lora_a, train_config()).unwrap();
    let before = run(&mut first, 0, 3);
    pollster::block_on(first.save_checkpoint(&dir, "tiny", serde_json::json!({ "next_batch": 6 }))).unwrap();
    drop(first);
    // A new process: a zero adapter, restored from the checkpoint.
    let lora_b = Lora::new(g, &model.config, lora_a.config.clone()).unwrap();
    let mut resumed = Trainer::new(g, &model, &lora_b, train_config()).unwrap();
    let state = resumed.load_checkpoint(&dir).unwrap();
    assert_eq!(state.position["next_batch"], 6);
    assert_eq!(resumed.step, 3);
    let after = run(&mut resumed, 3, 6);
    assert_eq!([before, after].concat(), uninterrupted, "losses step for step");
    assert_eq!(read(&lora_b.params), read(&lora.params), "the same adapter at the end");
}

#[test]
fn a_lost_device_is_a_typed_error_and_the_run_resumes_on_a_new_device() {
    let batches = data();
    let run = |trainer: &mut Trainer, from: usize, to: usize| -> Vec<f32> {
        (from..to).map(|s| pollster::block_on(trainer.train_step(&batches[2 * s..2 * s + 2])).unwrap().loss).collect()
    };
    let g = gpu();
    let model = random_model(g, config("llama", false, true), 32);
    let lora = fresh_lora(&model);
    let mut full = Trainer::new(g, &model, &lora, train_config()).unwrap();
    let uninterrupted = run(&mut full, 0, 5);

    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("lost-device-checkpoint");
    let lost = private_gpu();
    let lost_model = random_model(&lost, config("llama", false, true), 32);
    let lost_lora = fresh_lora_on(&lost, &lost_model);
    let mut first = Trainer::new(&lost, &lost_model, &lost_lora, train_config()).unwrap();
    let before = run(&mut first, 0, 2);
    pollster::block_on(first.save_checkpoint(&dir, "tiny", serde_json::json!({ "next_batch": 4 }))).unwrap();
    lost.destroy();
    for _ in 0..2 {
        let e = pollster::block_on(first.train_step(&batches[4..6])).unwrap_err();
        assert_eq!(e.kind(), "device-lost", "{e}");
        assert!(e.to_string().starts_with("the GPU device was lost: destroyed"), "{e}");
        assert!(e.to_string().contains("resume from the last checkpoint"), "{e}");
    }
    drop(first);

    // The checkpoint written before the loss, on a device opened again.
    let lora_b = Lora::new(g, &model.config, lost_lora.config.clone()).unwrap();
    let mut resumed = Trainer::new(g, &model, &lora_b, train_config()).unwrap();
    resumed.load_checkpoint(&dir).unwrap();
    assert_eq!(resumed.step, 2);
    let after = run(&mut resumed, 2, 5);
    assert_eq!([before, after].concat(), uninterrupted, "losses step for step");
    assert_eq!(read(&lora_b.params), read(&lora.params), "the same adapter at the end");
}

#[test]
fn a_step_timed_by_kernel_is_the_same_step() {
    let g = gpu();
    assert!(g.info.timestamps, "{} offers timestamp queries", g.info.name);
    let model = random_model(g, config("qwen2", true, false), 33);
    let batch = random_batch(2, 9, 64, 1, 5);
    let sp = StepParams {
        inv_count: 1.0 / batch.supervised() as f32,
        lr: 1e-2,
        bias_correction1: 0.1,
        bias_correction2_sqrt: 0.03,
        ..Default::default()
    };
    let run = |timed: bool| {
        let lora = random_lora(g, &model.config, LoraConfig { dropout: 0.0, ..fresh_lora(&model).config.clone() }, 8);
        let plan = Plan::new(g, &model, &lora, 2, 9, PlanOptions::default()).unwrap();
        plan.set_batch(&batch).unwrap();
        let (stats, times) = if timed {
            pollster::block_on(plan.time_step(sp)).unwrap()
        } else {
            (pollster::block_on(plan.step(sp, true, true)).unwrap(), vec![])
        };
        (stats.loss, stats.grad_norm, read(&lora.params), times)
    };
    let (loss, norm, params, _) = run(false);
    let start = std::time::Instant::now();
    let (timed_loss, timed_norm, timed_params, times) = run(true);
    let wall = start.elapsed().as_secs_f64();
    assert_eq!((timed_loss, timed_norm), (loss, norm));
    assert_eq!(timed_params, params, "the same update");
    let total: f64 = times.iter().map(|t| t.seconds).sum();
    let names: Vec<&str> = times.iter().map(|t| t.kernel.as_str()).collect();
    eprintln!("{} kernels, {total:.4} s of GPU time in {wall:.3} s: {times:?}", times.len());
    assert!(names.contains(&"AttentionForward") && names.contains(&"Adamw"), "{names:?}");
    assert!(times.iter().all(|t| t.seconds > 0.0 && t.dispatches > 0), "{times:?}");
    assert!(total > 0.0 && total < wall, "GPU time {total} s within the {wall} s the step took");
    assert!(times.windows(2).all(|w| w[0].seconds >= w[1].seconds), "longest first");
}

#[test]
fn accumulation_equals_one_large_batch() {
    let g = gpu();
    let model = random_model(g, config("qwen2", false, false), 32);
    let whole = random_batch(2, 7, 64, 2, 5);
    let half = |r: usize| {
        Batch::new(1, 7, whole.ids[r * 7..(r + 1) * 7].to_vec(), whole.targets[r * 7..(r + 1) * 7].to_vec()).unwrap()
    };
    let cfg = TrainConfig { lr_scheduler_type: Schedule::Constant, warmup_steps: 0, ..train_config() };
    let (la, lb) = (fresh_lora_no_dropout(&model), fresh_lora_no_dropout(&model));
    let mut a = Trainer::new(g, &model, &la, cfg.clone()).unwrap();
    let mut b = Trainer::new(g, &model, &lb, cfg).unwrap();
    let ra = pollster::block_on(a.train_step(std::slice::from_ref(&whole))).unwrap();
    let rb = pollster::block_on(b.train_step(&[half(0), half(1)])).unwrap();
    let tol = Tolerance { atol: 1e-6, rtol: 1e-5 };
    assert_close("loss", &[rb.loss], &[ra.loss], tol);
    assert_close("grad norm", &[rb.grad_norm], &[ra.grad_norm], tol);
    assert_close("updated adapter", &read(&lb.params), &read(&la.params), tol);
    assert_eq!(ra.tokens, rb.tokens);
}

/// Examples packed several to a row (positions restarting, attention within each example), with
/// and without recompute, give the loss, gradient and update of the same examples one to a row.
#[test]
fn packed_rows_train_as_their_examples_alone() {
    let g = gpu();
    let model = random_model(g, config("llama", false, true), 35);
    let examples = random_examples(&[5, 3, 7, 2, 4, 6, 1, 3, 8], 64, 6);
    let (unpacked, packed) = (batches(&examples, 2, 12, false), batches(&examples, 2, 12, true));
    assert!(packed.len() < unpacked.len(), "{} packed batches", packed.len());
    assert!(packed.iter().any(|b| b.segments.iter().any(|&s| s > 1)), "rows hold several examples");
    let cfg = TrainConfig { lr_scheduler_type: Schedule::Constant, warmup_steps: 0, ..train_config() };
    // Dropout 0: masks are drawn per (row, column), so they would differ between the layouts.
    let lora_cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
        use_rslora: false,
        use_dora: false,
    };
    let update = |micro: &[Batch], recompute: bool| {
        let lora = random_lora(g, &model.config, lora_cfg.clone(), 5);
        let mut trainer = Trainer::new(g, &model, &lora, TrainConfig { recompute, ..cfg.clone() }).unwrap();
        let eval = pollster::block_on(trainer.evaluate(micro)).unwrap();
        let record = pollster::block_on(trainer.train_step(micro)).unwrap();
        (eval, record, read(&trainer.state.grads), read(&lora.params))
    };
    let (eval, want, grads, params) = update(&unpacked, false);
    // Measured on lavapipe: losses within 1e-7 relative, the gradient norm equal, gradient entries
    // within 9e-6 (sums in another order).
    let tol = Tolerance { atol: 1e-6, rtol: 1e-5 };
    for recompute in [false, true] {
        let (packed_eval, got, packed_grads, packed_params) = update(&packed, recompute);
        let case = format!("packed, recompute {recompute}");
        assert_eq!((packed_eval.1, got.tokens), (eval.1, want.tokens), "{case}: supervised tokens");
        assert_close(&format!("{case}: eval loss"), &[packed_eval.0], &[eval.0], tol);
        assert_close(&format!("{case}: loss"), &[got.loss], &[want.loss], tol);
        assert_close(&format!("{case}: grad norm"), &[got.grad_norm], &[want.grad_norm], tol);
        assert_close(&format!("{case}: gradients"), &packed_grads, &grads, tol);
        assert_close(&format!("{case}: updated adapter"), &packed_params, &params, tol);
    }
}

fn fresh_lora_no_dropout(model: &Model) -> Lora {
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec![Target::Q, Target::V, Target::Down],
        use_rslora: false,
        use_dora: false,
    };
    let lora = Lora::new(gpu(), &model.config, cfg).unwrap();
    lora.init_peft(gpu(), 3).unwrap();
    lora
}

#[test]
fn diverging_step_keeps_the_last_good_adapter() {
    let g = gpu();
    let model = random_model(g, config("llama", true, false), 33);
    let lora = fresh_lora_no_dropout(&model);
    let cfg = TrainConfig { warmup_steps: 0, ..train_config() };
    let mut trainer = Trainer::new(g, &model, &lora, cfg).unwrap();
    let batch = random_batch(2, 6, 64, 0, 1);
    assert!(pollster::block_on(trainer.train_step(std::slice::from_ref(&batch))).unwrap().is_finite());
    let good = read(&lora.params);
    let (m, v) = (read(&trainer.state.m), read(&trainer.state.v));
    // Poison the base model: every loss is now NaN.
    let norm = model.weights.get_f32("model.norm.weight").unwrap();
    norm.write_f32(g, &vec![f32::NAN; norm.numel()]).unwrap();
    let record = pollster::block_on(trainer.train_step(&[batch])).unwrap();
    assert!(!record.is_finite(), "{record:?}");
    assert_eq!(trainer.step, 1, "a diverged update does not count");
    assert_eq!(read(&lora.params), good, "the adapter is untouched");
    assert_eq!((read(&trainer.state.m), read(&trainer.state.v)), (m, v), "so are the moments");
}

#[test]
fn warmup_starts_at_zero_and_bad_settings_are_refused() {
    let g = gpu();
    let model = random_model(g, config("llama", true, false), 34);
    let lora = fresh_lora_no_dropout(&model);
    let before = read(&lora.params);
    let mut trainer =
        Trainer::new(g, &model, &lora, TrainConfig { warmup_steps: 3, weight_decay: 0.0, ..train_config() }).unwrap();
    let r = pollster::block_on(trainer.train_step(&[random_batch(1, 5, 64, 0, 2)])).unwrap();
    assert_eq!(r.learning_rate, 0.0);
    assert_eq!(read(&lora.params), before, "lr 0 and no decay: no change");
    assert!((trainer.next_lr() - 5e-3 / 3.0).abs() < 1e-9);
    let no_tokens = Batch::new(1, 4, vec![1, 2, 3, 4], vec![-100; 4]).unwrap();
    assert!(pollster::block_on(trainer.train_step(&[no_tokens])).is_err());
    assert!(Trainer::new(g, &model, &lora, TrainConfig { max_steps: 0, ..train_config() }).is_err());
}
