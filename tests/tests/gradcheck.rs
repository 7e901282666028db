//! Finite-difference checks of the analytic gradients through a whole tiny model: the LoRA A
//! and B gradients, and dx, the gradient at the input embeddings. Variants cover tied and
//! untied embeddings, q/k/v (and o) biases, GQA, rsLoRA with a rank that needs padding, LoRA
//! dropout (its mask is fixed by the step's seed, so the loss is a smooth function), and rows
//! that pack several examples.

use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::{Batch, Model, Plan, PlanOptions};
use weblora::ops::StepParams;
use weblora_tests::tiny::{batches, config, random_batch, random_examples, random_lora, random_model};
use weblora_tests::{gpu, read, Rng};

const EPS: f32 = 1e-3;

fn sp(batch: &Batch) -> StepParams {
    StepParams { inv_count: 1.0 / batch.supervised() as f32, dropout_seed: 77, ..Default::default() }
}

/// The loss at flat LoRA parameters `params` (no update).
fn loss_at(plan: &Plan, lora: &Lora, params: &[f32], batch: &Batch) -> f64 {
    lora.params.write_f32(gpu(), params).unwrap();
    pollster::block_on(plan.step(sp(batch), true, false)).unwrap().loss as f64
}

/// Compares the directional derivative along `dir` with the analytic gradient's projection.
fn check_direction(what: &str, plan: &Plan, lora: &Lora, p0: &[f32], grads: &[f32], dir: &[f32], batch: &Batch) {
    let plus: Vec<f32> = p0.iter().zip(dir).map(|(p, d)| p + EPS * d).collect();
    let minus: Vec<f32> = p0.iter().zip(dir).map(|(p, d)| p - EPS * d).collect();
    let fd = (loss_at(plan, lora, &plus, batch) - loss_at(plan, lora, &minus, batch)) / (2.0 * EPS as f64);
    let analytic: f64 = grads.iter().zip(dir).map(|(g, d)| *g as f64 * *d as f64).sum();
    let err = (fd - analytic).abs() / analytic.abs().max(1e-3);
    // f32 losses of magnitude ~4 over a 2·EPS step: about 1e-4 absolute noise in fd.
    assert!(err < 1e-2, "{what}: finite difference {fd} vs analytic {analytic} (relative error {err})");
}

/// Two rows of six tokens, the first with two padded positions.
fn plain_batch(model: &Model) -> Batch {
    random_batch(2, 6, model.config.vocab_size as u32, 2, 9)
}

fn check_model(name: &str, model: &Model, lora_cfg: LoraConfig, check_dx: bool, batch: Batch) {
    let g = gpu();
    let lora = random_lora(g, &model.config, lora_cfg, 5);
    let (b, t) = (batch.b, batch.t);
    let plan = Plan::new(g, model, &lora, b, t, PlanOptions::default()).unwrap();
    plan.set_batch(&batch).unwrap();
    let p0 = read(&lora.params);
    pollster::block_on(plan.step(sp(&batch), true, false)).unwrap();
    let grads = read(&plan.state().grads);
    let dx = read(plan.input_grad());

    // Directions over all A entries, all B entries, and everything, each random ±1.
    let mut rng = Rng::new(3);
    let key_of: Vec<bool> = {
        // true where the flat index belongs to an A matrix
        let mut is_a = vec![false; p0.len()];
        let marks: Vec<f32> = (0..p0.len()).map(|i| i as f32).collect();
        for (key, _, idx) in lora.unpack(&marks) {
            if key.contains("lora_A") {
                for i in idx {
                    is_a[i as usize] = true;
                }
            }
        }
        is_a
    };
    let signs: Vec<f32> = (0..p0.len()).map(|_| if rng.uniform() < 0.0 { -1.0 } else { 1.0 }).collect();
    let only = |want_a: bool| -> Vec<f32> {
        signs.iter().zip(&key_of).map(|(s, &a)| if a == want_a { *s } else { 0.0 }).collect()
    };
    check_direction(&format!("{name}: lora_A"), &plan, &lora, &p0, &grads, &only(true), &batch);
    check_direction(&format!("{name}: lora_B"), &plan, &lora, &p0, &grads, &only(false), &batch);
    // The largest single gradient entry alone.
    let (imax, _) =
        grads.iter().enumerate().fold((0, 0f32), |acc, (i, &v)| if v.abs() > acc.1 { (i, v.abs()) } else { acc });
    let mut one = vec![0.0; p0.len()];
    one[imax] = 1.0;
    check_direction(&format!("{name}: largest entry {imax}"), &plan, &lora, &p0, &grads, &one, &batch);
    lora.params.write_f32(g, &p0).unwrap();

    if check_dx {
        check_input_grad(name, model, &plan, &batch, &dx);
    }
}

/// dx: perturb the embedding row of a token; its gradient is the sum of dx over the positions
/// holding it. (Untied models only: with tied embeddings the row is also the output projection.)
fn check_input_grad(name: &str, model: &Model, plan: &Plan, batch: &Batch, dx: &[f32]) {
    let g = gpu();
    let c = model.config.hidden_size;
    let tok = batch.ids[3];
    let wte = pollster::block_on(model.weights.embed_tokens.read_f32(g)).unwrap();
    let shape = [model.config.vocab_size, c];
    for j in [0, c / 2, c - 1] {
        let mut loss = [0.0f64; 2];
        for (k, sign) in [1.0f32, -1.0].into_iter().enumerate() {
            let mut w = wte.clone();
            w[tok as usize * c + j] += sign * EPS;
            model.weights.write(g, "model.embed_tokens.weight", &shape, &w).unwrap();
            loss[k] = pollster::block_on(plan.step(sp(batch), true, false)).unwrap().loss as f64;
        }
        let fd = (loss[0] - loss[1]) / (2.0 * EPS as f64);
        let analytic: f64 =
            batch.ids.iter().enumerate().filter(|(_, &id)| id == tok).map(|(pos, _)| dx[pos * c + j] as f64).sum();
        let err = (fd - analytic).abs() / analytic.abs().max(1e-2);
        assert!(err < 2e-2, "{name}: dx[{j}] of token {tok}: finite difference {fd} vs analytic {analytic}");
    }
    model.weights.write(g, "model.embed_tokens.weight", &shape, &wte).unwrap();
}

fn lora(r: usize, targets: &[Target], dropout: f32, use_rslora: bool) -> LoraConfig {
    LoraConfig { r, alpha: 2.0 * r as f32, dropout, targets: targets.to_vec(), use_rslora, use_dora: false }
}

#[test]
fn llama_tied_all_linear() {
    let model = random_model(gpu(), config("llama", true, false), 1);
    check_model("llama tied", &model, lora(4, &Target::ALL, 0.0, false), false, plain_batch(&model));
}

#[test]
fn llama_untied_with_attention_bias_and_dropout() {
    let model = random_model(gpu(), config("llama", false, true), 2);
    check_model("llama untied biased", &model, lora(4, &Target::ALL, 0.2, false), true, plain_batch(&model));
}

#[test]
fn qwen2_untied_rslora_padded_rank() {
    let model = random_model(gpu(), config("qwen2", false, false), 3);
    let targets = [Target::Q, Target::V, Target::Down];
    check_model("qwen2 untied", &model, lora(3, &targets, 0.0, true), true, plain_batch(&model));
}

#[test]
fn llama_untied_packed_rows() {
    let model = random_model(gpu(), config("llama", false, false), 4);
    // Rows of 4 + 3 tokens and of 2 + 2 + 1 tokens and two of padding.
    let examples = random_examples(&[3, 2, 4, 1, 2], model.config.vocab_size as u32, 13);
    let batch = batches(&examples, 2, 7, true).remove(0);
    assert!(batch.segments.contains(&1), "{:?}", batch.segments);
    check_model("llama untied packed", &model, lora(4, &Target::ALL, 0.0, false), true, batch);
}

/// DoRA holds ‖W + s·B·A‖ constant for the gradients (as PEFT does), so its A and B gradients
/// are not the loss's; the magnitudes' and dx are (the norm depends on neither), and dx reaches
/// the first layer through every DoRA projection's input gradient, here with LoRA dropout (PEFT's
/// path that computes x'·Wᵀ again) and biases.
#[test]
fn dora_magnitudes_and_dx_with_dropout_and_biases() {
    let g = gpu();
    let model = random_model(g, config("llama", false, true), 6);
    let targets = [Target::Q, Target::V, Target::O, Target::Down];
    let cfg = LoraConfig { use_dora: true, ..lora(4, &targets, 0.2, false) };
    let lora = random_lora(g, &model.config, cfg, 5);
    let batch = plain_batch(&model);
    let plan = Plan::new(g, &model, &lora, batch.b, batch.t, PlanOptions::default()).unwrap();
    plan.set_batch(&batch).unwrap();
    let p0 = read(&lora.params);
    pollster::block_on(plan.step(sp(&batch), true, false)).unwrap();
    let grads = read(&plan.state().grads);
    let dx = read(plan.input_grad());
    let marks: Vec<f32> = (0..p0.len()).map(|i| i as f32).collect();
    let mut is_mag = vec![false; p0.len()];
    for (key, _, idx) in lora.unpack(&marks) {
        if key.ends_with("lora_magnitude_vector") {
            for i in idx {
                is_mag[i as usize] = true;
            }
        }
    }
    let mut rng = Rng::new(4);
    let dir: Vec<f32> = is_mag
        .iter()
        .map(|&m| {
            if !m {
                0.0
            } else if rng.uniform() < 0.0 {
                -1.0
            } else {
                1.0
            }
        })
        .collect();
    check_direction("DoRA magnitudes", &plan, &lora, &p0, &grads, &dir, &batch);
    let (imax, _) =
        grads
            .iter()
            .zip(&is_mag)
            .enumerate()
            .fold((0, 0f32), |acc, (i, (&v, &m))| if m && v.abs() > acc.1 { (i, v.abs()) } else { acc });
    let mut one = vec![0.0; p0.len()];
    one[imax] = 1.0;
    check_direction(&format!("DoRA largest magnitude entry {imax}"), &plan, &lora, &p0, &grads, &one, &batch);
    lora.params.write_f32(g, &p0).unwrap();
    check_input_grad("DoRA", &model, &plan, &batch, &dx);
}
