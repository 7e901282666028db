//! DoRA against PEFT's `use_dora=True` (`tests/fixtures/dora/`, made by make_fixture.py on the
//! tiny Llama of `tests/fixtures/tiny/llama_tied`): the adapter folder loads and gives PEFT's
//! logits; the gradients of A, B and the magnitudes; 5 AdamW steps; PEFT's initial magnitudes;
//! export with PEFT's keys; merging; the llama.cpp export's refusal; a resumed run. And the norm
//! ‖W + s·B·A‖, assembled on the GPU from three terms, against a direct f64 computation; the
//! dropout path; SmolLM2's Q4_1 weights at initialisation.

use weblora::lora::{dora, merge, peft, Lora, LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::{Batch, Plan, PlanOptions};
use weblora::ops::{AdamwParams, StepParams};
use weblora_tests::fixture::{fixture_dir, load_adapter, load_model, read_safetensors, HostTensor};
use weblora_tests::tiny::{config, random_batch, random_lora, random_model};
use weblora_tests::{assert_close, gpu, read, rel_l2, Tolerance};

fn expected() -> std::collections::HashMap<String, HostTensor> {
    read_safetensors(&fixture_dir("dora/expected.safetensors"))
}

fn batch(exp: &std::collections::HashMap<String, HostTensor>) -> (usize, usize, Batch) {
    let (b, t) = (exp["input_ids"].shape[0], exp["input_ids"].shape[1]);
    let ids: Vec<u32> = exp["input_ids"].ints.iter().map(|&i| i as u32).collect();
    (b, t, Batch::from_labels(ids, &exp["labels"].ints, t))
}

/// The largest |got − want| over all elements.
fn max_abs(got: &[f32], want: &[f32]) -> f32 {
    got.iter().zip(want).map(|(g, w)| (g - w).abs()).fold(0.0, f32::max)
}

fn matches_peft(recompute: bool) {
    let g = gpu();
    let dir = fixture_dir("tiny/llama_tied");
    let model = load_model(g, &dir);
    let lora = load_adapter(g, &model.config, &fixture_dir("dora/adapter"));
    assert!(lora.config.use_dora);
    let exp = expected();
    let (b, t, batch) = batch(&exp);
    // torch.optim.AdamW(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0), no clipping.
    let opts = PlanOptions {
        recompute,
        max_grad_norm: 0.0,
        adamw: AdamwParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 },
    };
    let plan = Plan::new(g, &model, &lora, b, t, opts).unwrap();

    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    // Measured: max |err| 3.1e-6 (logits up to 4.3); 2.9e-6 with WEBLORA_KERNELS=tiled.
    let err = max_abs(&logits, &exp["logits"].data);
    println!("logits: max |err| {err:.2e}");
    assert!(err < 3e-5, "logits: max |err| {err}");

    plan.set_batch(&batch).unwrap();
    let mut losses = Vec::new();
    for step in 1..=5 {
        let sp = StepParams::for_update(step, 1e-2, &opts.adamw, batch.supervised(), 0);
        if step == 1 {
            let st = pollster::block_on(plan.step(sp, true, false)).unwrap();
            let err = (st.loss - exp["loss0"].data[0]).abs();
            println!("loss {} vs PEFT {} (|err| {err:.2e})", st.loss, exp["loss0"].data[0]);
            // Measured: 9.5e-7 (4.921224 vs 4.921223).
            assert!(err < 1e-5, "loss: |err| {err}");
            let mut worst = (0f32, String::new());
            for (key, _, grad) in pollster::block_on(plan.state().read_grads(g, &lora)).unwrap() {
                let e = rel_l2(&grad, &exp[&format!("grad.{key}")].data);
                if e > worst.0 {
                    worst = (e, key);
                }
            }
            println!("step 1 gradients: worst relative L2 error {:.2e} ({})", worst.0, worst.1);
            // Measured: 1.45e-6 (layer 0's q_proj magnitude); 2.1e-6 with WEBLORA_KERNELS=tiled.
            assert!(worst.0 < 1.5e-5, "gradient {}: relative L2 error {}", worst.1, worst.0);
        }
        losses.push(pollster::block_on(plan.step(sp, true, true)).unwrap().loss);
    }
    let err = max_abs(&losses, &exp["losses"].data);
    println!("losses {losses:?} vs PEFT {:?} (max |err| {err:.2e})", exp["losses"].data);
    // Measured: 3.3e-6 (losses from 4.92 down to 3.43).
    assert!(err < 3e-5, "AdamW losses: max |err| {err}");
    let mut worst = (0f32, String::new());
    for (key, _, value) in pollster::block_on(lora.read_params(g)).unwrap() {
        let e = rel_l2(&value, &exp[&format!("step5.{key}")].data);
        if e > worst.0 {
            worst = (e, key);
        }
    }
    println!("after 5 steps: worst relative L2 error {:.2e} ({})", worst.0, worst.1);
    // Measured: 1.3e-6 (layer 1's down_proj lora_A).
    assert!(worst.0 < 1.3e-5, "{} after 5 steps: relative L2 error {}", worst.1, worst.0);
}

#[test]
fn logits_gradients_and_adamw_steps_match_peft() {
    matches_peft(false);
}

#[test]
fn recompute_gives_the_same_numbers() {
    matches_peft(true);
}

#[test]
fn magnitudes_start_at_peft_values() {
    let g = gpu();
    let model = load_model(g, &fixture_dir("tiny/llama_tied"));
    let exp = expected();
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec![Target::Q, Target::V, Target::Down],
        use_rslora: false,
        use_dora: true,
    };
    let lora = Lora::new(g, &model.config, cfg).unwrap();
    assert!(lora.init_peft(g, 3).is_err(), "a DoRA adapter needs the base to start");
    lora.init_peft_on(g, &model, 3).unwrap();
    let mut worst = 0f32;
    for (key, _, value) in pollster::block_on(lora.read_params(g)).unwrap() {
        if key.ends_with("lora_magnitude_vector") {
            worst = worst.max(rel_l2(&value, &exp[&format!("init.{key}")].data));
        }
    }
    println!("initial magnitudes: worst relative L2 error {worst:.2e}");
    // Measured: 7.0e-8.
    assert!(worst < 7e-7, "initial magnitudes: relative L2 error {worst}");
}

#[test]
fn export_writes_peft_keys_and_reads_back() {
    let g = gpu();
    let model = load_model(g, &fixture_dir("tiny/llama_tied"));
    let lora = load_adapter(g, &model.config, &fixture_dir("dora/adapter"));
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dora-export");
    pollster::block_on(peft::write_peft_folder(g, &lora, "tiny", &out)).unwrap();
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(config["use_dora"], true);
    let mut ours: Vec<String> = read_safetensors(&out.join("adapter_model.safetensors")).into_keys().collect();
    let mut peft: Vec<String> =
        read_safetensors(&fixture_dir("dora/adapter/adapter_model.safetensors")).into_keys().collect();
    ours.sort();
    peft.sort();
    assert_eq!(ours, peft, "the keys PEFT's save_pretrained writes");
    let back = load_adapter(g, &model.config, &out);
    assert_eq!(back.config, lora.config);
    assert_eq!(read(&back.params), read(&lora.params));
}

#[test]
fn generation_and_merging_give_the_adapter_logits() {
    let g = gpu();
    let dir = fixture_dir("tiny/llama_tied");
    let exp = expected();
    let v = 96;
    let t = exp["input_ids"].shape[1];
    let ids: Vec<u32> = exp["input_ids"].ints[..t].iter().map(|&i| i as u32).collect();
    let decode = |model: &weblora::model::Model, lora: Option<&Lora>| -> Vec<f32> {
        let decoder = Decoder::new(g, model, lora, t).unwrap();
        ids.iter()
            .enumerate()
            .flat_map(|(pos, &id)| pollster::block_on(decoder.next_logits(id, pos)).unwrap())
            .collect()
    };
    let model = load_model(g, &dir);
    let lora = load_adapter(g, &model.config, &fixture_dir("dora/adapter"));
    let want = &exp["logits"].data[..t * v];
    let got = decode(&model, Some(&lora));
    // Measured: 4.5e-6.
    let err = max_abs(&got, want);
    println!("decoder with the DoRA adapter: max |err| {err:.2e}");
    assert!(err < 4.5e-5, "decoding: max |err| {err}");
    merge::merge_into(g, &model, &lora).unwrap();
    let merged = decode(&model, None);
    let err = max_abs(&merged, &exp["merged_logits"].data[..t * v]);
    println!("merged base: max |err| {err:.2e} against PEFT's merge_and_unload");
    // Measured: 2.3e-6.
    assert!(err < 2.3e-5, "merged: max |err| {err}");
}

#[test]
fn llama_cpp_export_is_refused() {
    let g = gpu();
    let model = load_model(g, &fixture_dir("tiny/llama_tied"));
    let lora = load_adapter(g, &model.config, &fixture_dir("dora/adapter"));
    let err = pollster::block_on(weblora::lora::gguf::gguf_lora_bytes(g, &lora, &model.config)).unwrap_err();
    assert_eq!(err.kind(), "unsupported");
    assert!(err.to_string().contains("weblora merge"), "{err}");
}

/// ‖W + s·B·A‖ per row from the GPU's three terms against f64 straight from W, A and B, on rows
/// whose LoRA update is as large as W itself (so the cross term is not small).
#[test]
fn norm_from_three_terms_matches_a_direct_computation() {
    let g = gpu();
    let model = random_model(g, config("qwen2", false, true), 5);
    let cfg = LoraConfig {
        r: 3,
        alpha: 6.0,
        dropout: 0.0,
        targets: vec![Target::K, Target::Up],
        use_rslora: false,
        use_dora: true,
    };
    let lora = random_lora(g, &model.config, cfg.clone(), 9);
    // W is 0.3·U; A and B 0.2·U: B times 5 makes s·B·A about as large as W.
    let values: std::collections::HashMap<String, Vec<f32>> = pollster::block_on(lora.read_params(g))
        .unwrap()
        .into_iter()
        .map(|(k, _, v)| {
            let f = if k.ends_with("lora_B.weight") { 5.0 } else { 1.0 };
            (k, v.iter().map(|x| x * f).collect())
        })
        .collect();
    lora.load(g, |k| values.get(k).cloned()).unwrap();
    let scratch = dora::norm_scratch(g, &lora).unwrap();
    for m in &lora.modules {
        let lin = dora::projection(&model, m).unwrap();
        let sc = weblora::gpu::Tensor::zeros(g, "sc", &[2, m.out_features], weblora::gpu::DType::F32).unwrap();
        let mut prog = weblora::gpu::Program::new(g);
        dora::record_scale(&mut prog, &sc, lin, m, &cfg, &scratch).unwrap();
        g.submit(&prog, None);
        let got = read(&sc);
        let w = pollster::block_on(lin.weight.read_f32(g, "w")).unwrap();
        let (a, bm, mag) = (&values[&m.peft_key("A")], &values[&m.peft_key("B")], &values[&m.peft_key("M")]);
        let (i, r, s) = (m.in_features, cfg.r, cfg.scaling() as f64);
        let mut want = Vec::new();
        for j in 0..m.out_features {
            let sq: f64 = (0..i)
                .map(|k| {
                    let ba: f64 = (0..r).map(|q| bm[j * r + q] as f64 * a[q * i + k] as f64).sum();
                    (w[j * i + k] as f64 + s * ba).powi(2)
                })
                .sum();
            want.push((mag[j] as f64 / sq.sqrt()) as f32);
        }
        let worst = got.iter().zip(&want).map(|(g, w)| ((g - w) / w).abs()).fold(0.0, f32::max);
        println!("{:?}: m/‖W + sBA‖ worst relative error {worst:.2e}", m.target);
        // Measured: at most 1.4e-7 relative.
        let tol = Tolerance { atol: 0.0, rtol: 1.5e-6 };
        assert_close(&format!("{:?} m/‖W + sBA‖", m.target), &got[..m.out_features], &want, tol);
    }
}

/// A run with DoRA interrupted and resumed from its checkpoint continues exactly.
#[test]
fn a_resumed_dora_run_equals_the_uninterrupted_run() {
    use weblora::train::{Schedule, TrainConfig, Trainer};
    let g = gpu();
    let model = random_model(g, config("llama", false, true), 31);
    let cfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.1,
        targets: vec![Target::Q, Target::O, Target::Down],
        use_rslora: false,
        use_dora: true,
    };
    let fresh = || {
        let lora = Lora::new(g, &model.config, cfg.clone()).unwrap();
        lora.init_peft_on(g, &model, 7).unwrap();
        lora
    };
    let tc = TrainConfig {
        learning_rate: 5e-3,
        lr_scheduler_type: Schedule::Cosine,
        warmup_steps: 1,
        max_steps: 4,
        weight_decay: 0.01,
        ..Default::default()
    };
    let batches: Vec<Batch> = (0..4).map(|i| random_batch(2, 6, 64, 1, i as u64)).collect();
    let run = |trainer: &mut Trainer, from: usize, to: usize| -> Vec<f32> {
        (from..to).map(|s| pollster::block_on(trainer.train_step(&batches[s..s + 1])).unwrap().loss).collect()
    };
    let lora = fresh();
    let mut full = Trainer::new(g, &model, &lora, tc.clone()).unwrap();
    let uninterrupted = run(&mut full, 0, 4);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dora-checkpoint");
    let lora_a = fresh();
    let mut first = Trainer::new(g, &model, &lora_a, tc.clone()).unwrap();
    let before = run(&mut first, 0, 2);
    pollster::block_on(first.save_checkpoint(&dir, "tiny", serde_json::json!({}))).unwrap();
    drop(first);
    let lora_b = Lora::new(g, &model.config, cfg.clone()).unwrap();
    let mut resumed = Trainer::new(g, &model, &lora_b, tc).unwrap();
    resumed.load_checkpoint(&dir).unwrap();
    let after = run(&mut resumed, 2, 4);
    assert_eq!([before, after].concat(), uninterrupted, "losses step for step");
    assert_eq!(read(&lora_b.params), read(&lora.params), "the same adapter, magnitudes included");
}

/// With dropout on, a DoRA layer computes x'·Wᵀ again from the dropped-out x, as PEFT does. At a
/// probability so small that nothing is dropped (x' = x), that path must give the loss and
/// every gradient of the path without dropout.
#[test]
fn the_dropout_path_equals_the_plain_path_when_nothing_is_dropped() {
    let g = gpu();
    let model = load_model(g, &fixture_dir("tiny/llama_tied"));
    let plain = load_adapter(g, &model.config, &fixture_dir("dora/adapter"));
    let dropped = Lora::new(g, &model.config, LoraConfig { dropout: 1e-9, ..plain.config.clone() }).unwrap();
    dropped.params.write_f32(g, &read(&plain.params)).unwrap();
    let exp = expected();
    let (b, t, batch) = batch(&exp);
    let step = |lora: &Lora| {
        let plan = Plan::new(g, &model, lora, b, t, PlanOptions::default()).unwrap();
        plan.set_batch(&batch).unwrap();
        let adamw = AdamwParams { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
        let sp = StepParams::for_update(1, 1e-2, &adamw, batch.supervised(), 0);
        let loss = pollster::block_on(plan.step(sp, true, false)).unwrap().loss;
        (loss, read(&plan.state().grads))
    };
    let ((l0, g0), (l1, g1)) = (step(&plain), step(&dropped));
    let err = rel_l2(&g1, &g0);
    println!("loss {l1} vs {l0}; gradients relative L2 {err:.2e}");
    // Measured: loss 4.9212246 vs 4.921224 (6e-7), gradients 3.9e-7.
    assert!((l1 - l0).abs() < 6e-6, "loss {l1} vs {l0}");
    assert!(err < 4e-6, "gradients: relative L2 {err}");
}

/// On SmolLM2's Q4_1 weights, a DoRA adapter as initialised (B = 0, m = ‖W‖ per row, ‖W‖² from
/// the quantized rows) answers with the base's logits.
#[test]
fn smollm2_q4_1_dora_at_initialisation_is_the_base() {
    let g = gpu();
    let model = weblora::model::load::load_gguf(g, &weblora_tests::smollm2::gguf_path()).unwrap();
    let cfg = LoraConfig {
        r: 4,
        alpha: 16.0,
        dropout: 0.0,
        targets: vec![Target::Q, Target::V, Target::Down],
        use_rslora: false,
        use_dora: true,
    };
    let lora = Lora::new(g, &model.config, cfg).unwrap();
    lora.init_peft_on(g, &model, 1).unwrap();
    let mut decoder = Decoder::with_adapters(g, &model, &[None, Some(&lora)], 3).unwrap();
    let ids = [1u32, 504, 3458];
    let mut logits = Vec::new();
    for which in 0..2 {
        decoder.select(which).unwrap();
        logits.push(
            ids.iter()
                .enumerate()
                .flat_map(|(pos, &id)| pollster::block_on(decoder.next_logits(id, pos)).unwrap())
                .collect::<Vec<f32>>(),
        );
    }
    let err = max_abs(&logits[1], &logits[0]);
    println!("SmolLM2 Q4_1, DoRA at initialisation vs the base: max |err| {err:.2e}");
    // Measured: 4.6e-5 (m / ‖W‖ is 1 up to rounding).
    assert!(err < 5e-4, "max |err| {err}");
}

/// The element-wise DoRA kernels against the CPU, at sizes off the workgroup grid; dm over more
/// rows than one dispatch walks (`ops::K_SPAN`).
#[test]
fn dora_kernels_match_the_cpu() {
    use weblora::gpu::{DType, Program, Tensor};
    use weblora::ops;
    use weblora_tests::{Rng, F32, F32_LONG};
    let g = gpu();
    let mut rng = Rng::new(17);
    let up = |name: &str, shape: &[usize], v: &[f32]| Tensor::from_f32(g, name, shape, v).unwrap();
    for (m, n) in [(37, 45), (ops::K_SPAN + 3, 3)] {
        let (t, dy, y0) = (rng.vec(m * n, 1.0), rng.vec(m * n, 1.0), rng.vec(m * n, 1.0));
        let sc: Vec<f32> = rng.vec(2 * n, 1.0);
        let dm0 = rng.vec(n, 1.0);
        let (tt, dyt, sct) = (up("t", &[m, n], &t), up("dy", &[m, n], &dy), up("sc", &[2, n], &sc));
        let (y, dys, dm) =
            (up("y", &[m, n], &y0), Tensor::zeros(g, "dys", &[m, n], DType::F32).unwrap(), up("dm", &[n], &dm0));
        let w = up("w", &[m, n], &y0);
        let mut prog = Program::new(g);
        ops::dora_forward(&mut prog, &y, &tt, &sct, m, n, 0.5).unwrap();
        ops::dora_scale_dy(&mut prog, &dys, &dyt, &sct, m, n).unwrap();
        ops::dora_dmag(&mut prog, &dm, &dyt, &tt, &sct, m, n).unwrap();
        // W (m, n), row i times sc'[0, i], sc' (2, m) the first 2m values of sc (the first case).
        if m <= n {
            ops::dora_scale_rows(&mut prog, &w, &up("sc_rows", &[2, m], &sc[..2 * m]), m, n).unwrap();
        }
        g.submit(&prog, None);
        let want_y: Vec<f32> = (0..m * n).map(|i| 0.5 * y0[i] + sc[i % n] * t[i]).collect();
        let want_dys: Vec<f32> = (0..m * n).map(|i| sc[i % n] * dy[i]).collect();
        let want_dm: Vec<f32> = (0..n)
            .map(|j| {
                dm0[j]
                    + ((0..m).map(|i| dy[i * n + j] as f64 * t[i * n + j] as f64).sum::<f64>() * sc[n + j] as f64)
                        as f32
            })
            .collect();
        assert_close("dora_forward", &read(&y), &want_y, F32);
        assert_close("dora_scale_dy", &read(&dys), &want_dys, F32);
        assert_close("dora_dmag", &read(&dm), &want_dm, F32_LONG);
        if m <= n {
            let want_w: Vec<f32> = (0..m * n).map(|i| y0[i] * sc[i / n]).collect();
            assert_close("dora_scale_rows", &read(&w), &want_w, F32);
        }
    }
}
