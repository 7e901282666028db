//! The engine on the real SmolLM2-135M-Instruct against transformers' numbers for the same
//! GGUF file (dequantized to f32): last-position logits and the full-sequence loss; and packed
//! rows against the same examples unpacked.

use weblora::data::{self, ChatTemplate, DataOptions, Dataset};
use weblora::generate::{generate, Sampling};
use weblora::gpu::{Gpu, KernelFamily};
use weblora::io::GgmlType;
use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::load::LoadOptions;
use weblora::model::{export, load, Batch, Plan, PlanOptions};
use weblora::tokenizer::Tokenizer;
use weblora::train::{Run, RunOptions};
use weblora_tests::fixture::{fixture_dir, read_safetensors};
use weblora_tests::smollm2::{gguf_path, reference};
use weblora_tests::{family_gpu, gpu};

#[test]
fn logits_and_loss_match_transformers() {
    let model = load::load_gguf_with(gpu(), &gguf_path(), LoadOptions::dequantized()).unwrap();
    assert!(!model.weights.is_quantized());
    matches_transformers("f32", &model);
}

/// The same with the projections kept as Q4_1 on the GPU and dequantized in the matmul kernels:
/// they use the very values transformers dequantized, so the tolerances are those of the f32
/// path; and the projections take 20 of every 128 bytes they take as f32.
#[test]
fn quantized_weights_match_transformers() {
    let g = gpu();
    let model = load::load_gguf(g, &gguf_path()).unwrap();
    let f32_model = load::load_gguf_with(g, &gguf_path(), LoadOptions::dequantized()).unwrap();
    let (q, f) = (model.weights.projection_gpu_bytes(), f32_model.weights.projection_gpu_bytes());
    drop(f32_model);
    // Q4_1 is 20 bytes per 32 values against 128 as f32: exactly 6.4× smaller (measured
    // 424673280 B against 66355200 B).
    assert_eq!(f * 20, q * 128, "{f} f32 bytes vs {q} quantized");
    assert!(model.weights.layers.iter().all(|l| l.q_proj.weight.ty() == GgmlType::Q4_1));
    matches_transformers("Q4_1", &model);
}

/// The same f32 model on a device forced to the tiled kernel family (the one for GPUs; lavapipe
/// runs the CPU family by default), so that every projection, LoRA product and the head go
/// through `shaders/matmul_tiled.wgsl`. Greedy decoding is left out: it runs the mat-vec kernels,
/// the same in both families.
#[test]
fn tiled_kernels_match_transformers() {
    let g = family_gpu(KernelFamily::Tiled);
    assert_eq!(g.info.kernels, KernelFamily::Tiled);
    let model = load::load_gguf_with(g, &gguf_path(), LoadOptions::dequantized()).unwrap();
    logits_and_loss_match(g, "f32, tiled kernels", &model);
}

fn matches_transformers(label: &str, model: &weblora::model::Model) {
    let g = gpu();
    let (ids, fwd) = logits_and_loss_match(g, label, model);
    let t = ids.len();
    // Greedy generation with the KV cache continues the prompt as transformers does.
    let want_greedy: Vec<u32> =
        fwd["greedy_40_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let decoder = Decoder::new(g, model, None, t + want_greedy.len()).unwrap();
    let sampling = Sampling { max_new_tokens: want_greedy.len(), ..Default::default() };
    let got = pollster::block_on(generate(&decoder, &ids, &sampling)).unwrap();
    assert_eq!(got, want_greedy, "greedy continuation");
}

/// Checks the last position's logits, their top 10 and the full-sequence loss against
/// transformers; returns the prompt's ids and the reference file.
fn logits_and_loss_match(g: &Gpu, label: &str, model: &weblora::model::Model) -> (Vec<u32>, serde_json::Value) {
    let c = &model.config;
    assert_eq!((c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.n_kv_heads()), (30, 576, 9, 3));
    assert_eq!((c.vocab_size, c.intermediate_size, c.head_dim(), c.tie_word_embeddings), (49152, 1536, 64, true));

    let fwd: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("smollm2_forward.json")).unwrap()).unwrap();
    let ids: Vec<u32> = fwd["input_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
    let t = ids.len();
    // A freshly initialised adapter (B = 0) leaves the base model's outputs unchanged.
    let cfg = LoraConfig::all_linear(8, 16.0);
    let lora = Lora::new(g, c, cfg).unwrap();
    lora.init_peft(g, 0).unwrap();
    let plan = Plan::new(g, model, &lora, 1, t, PlanOptions::default()).unwrap();

    // Loss over the whole sequence, labels = ids as transformers shifts them.
    let labels: Vec<i64> = ids.iter().map(|&i| i as i64).collect();
    let batch = Batch::from_labels(ids.clone(), &labels, t);
    let loss = pollster::block_on(plan.eval_loss(&batch)).unwrap();
    let want_loss = fwd["mean_loss_full_sequence"].as_f64().unwrap() as f32;
    let loss_err = (loss - want_loss).abs();

    let logits = pollster::block_on(plan.logits(&batch)).unwrap();
    let v = c.vocab_size;
    let last = &logits[(t - 1) * v..t * v];
    let want = &read_safetensors(&reference("smollm2_forward_last_logits.safetensors"))["last_logits"].data;
    let worst = last.iter().zip(want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    println!(
        "SmolLM2 ({label}): max |logit − transformers| {worst:.1e} (logits near 30), \
         loss {loss:.6} vs {want_loss:.6} (|difference| {loss_err:.1e})"
    );
    // Both sides are f32 over the same dequantized weights (the kernels dequantize exactly, up to
    // a fused multiply-add); only summation order differs. Measured: logits 5.1e-5 (f32), 4.7e-5
    // (Q4_1) and 7.4e-5 (f32, tiled kernels), loss 7.2e-6 on the first two and 4.8e-7 tiled;
    // PyTorch itself on another CPU differs from these reference logits by 3.8e-5.
    assert!(worst < 5e-4, "max logit error {worst}");
    assert!(loss_err < 7e-5, "loss {loss} vs transformers {want_loss}");
    let top = |x: &[f32]| {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]));
        idx.truncate(10);
        idx
    };
    let want_top: Vec<usize> =
        fwd["last_logits_top10_ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as usize).collect();
    assert_eq!(top(last), want_top, "top-10 ids (argmax first)");
    (ids, fwd)
}

/// The Hugging Face form of the same model, written by the engine from the GGUF, loads back
/// with the same logits, and its tokenizer.json gives the reference token ids.
#[test]
fn hugging_face_folder_from_the_gguf_gives_the_same_model() {
    let g = gpu();
    let path = gguf_path();
    // The folder holds f32 weights, so the model is loaded dequantized.
    let model = load::load_gguf_with(g, &path, LoadOptions::dequantized()).unwrap();
    let header = weblora::io::read_gguf_header(&path).unwrap();
    let tok = Tokenizer::from_gguf(&header).unwrap();
    let template = header.get_str("tokenizer.chat_template").ok();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-hf");
    pollster::block_on(export::write_hf_folder(g, &model, Some((&tok, template)), &dir)).unwrap();
    let hf = load::load_hf_folder(g, &dir).unwrap();

    let ids: Vec<u32> = (0..12).map(|i| (i * 4099 + 7) % 49152).collect();
    let cfg =
        LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec![Target::Q], use_rslora: false, use_dora: false };
    let logits = |m: &weblora::model::Model| {
        let lora = Lora::new(g, &m.config, cfg.clone()).unwrap();
        lora.init_peft(g, 0).unwrap();
        let plan = Plan::new(g, m, &lora, 1, ids.len(), PlanOptions::default()).unwrap();
        pollster::block_on(plan.logits(&Batch::new(1, ids.len(), ids.clone(), vec![-100; ids.len()]).unwrap())).unwrap()
    };
    assert_eq!(logits(&model), logits(&hf), "the same f32 weights give bit-identical logits");

    // generation_config.json's end-of-generation ids, a list here, end generation too.
    let (tok_hf, _) = load::load_tokenizer(&dir).unwrap();
    assert_eq!(tok_hf.special.eos, tok.special.eos);
    let gen = dir.join("generation_config.json");
    let mut cfg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&gen).unwrap()).unwrap();
    assert_eq!(cfg["eos_token_id"].as_u64().map(|v| v as u32), tok.special.eos);
    cfg["eos_token_id"] = serde_json::json!([tok.special.eos, 7]);
    std::fs::write(&gen, cfg.to_string()).unwrap();
    let (tok_hf, _) = load::load_tokenizer(&dir).unwrap();
    let stop = weblora::generate::stop_tokens(&tok_hf);
    assert!(stop.contains(&7) && stop.contains(&tok.special.eos.unwrap()), "{stop:?}");

    let tok_json = Tokenizer::from_json("tokenizer.json", &std::fs::read(dir.join("tokenizer.json")).unwrap()).unwrap();
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture_dir("tokenizer").join("smollm2_tokens.json")).unwrap())
            .unwrap();
    for case in cases["cases"].as_array().unwrap() {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap() as u32).collect();
        assert_eq!(tok_json.encode(text, false).unwrap(), want, "{text:?}");
    }
}

/// The llama.cpp adapter for the real model: PEFT's adapter of the reference run, written as a
/// GGUF LoRA next to the test outputs (`tests/fixtures/gguf_lora/check_gguf_lora.py` checks it
/// against the base with the `gguf` package), and read back with every tensor in place.
#[test]
fn gguf_lora_adapter_for_the_real_model() {
    let g = gpu();
    let header = weblora::io::read_gguf_header(&gguf_path()).unwrap();
    let config = load::config_from_gguf(&header).unwrap();
    let lora = weblora::lora::peft::read_peft_folder(g, &config, &reference("peft_run/init_adapter")).unwrap();
    let bytes = pollster::block_on(weblora::lora::gguf::gguf_lora_bytes(g, &lora, &config)).unwrap();
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("smollm2-lora.gguf");
    std::fs::write(&out, &bytes).unwrap();
    let back = weblora::io::read_gguf_header(&out).unwrap();
    assert_eq!(back.tensors.len(), 30 * 7 * 2);
    for t in &back.tensors {
        let base = header.tensor(t.name.rsplit_once('.').unwrap().0).expect("a base tensor for every adapter tensor");
        if t.name.ends_with("lora_a") {
            assert_eq!((t.dims[0], t.dims[1]), (base.dims[0], 8), "{}", t.name);
        } else {
            assert_eq!((t.dims[0], t.dims[1]), (8, base.dims[1]), "{}", t.name);
        }
    }
}

/// Adapters written by `weblora train` (`tests/fixtures/peft_eval/`: `adapter/` LoRA,
/// `adapter_dora/` DoRA) load in PEFT with no missing or unexpected keys, and PEFT's loss with
/// each (expected*.json, from make_fixture.py) is the engine's evaluation loss with it.
#[test]
fn peft_agrees_on_the_loss_of_our_adapters() {
    let g = gpu();
    let model = load::load_gguf(g, &gguf_path()).unwrap();
    let dir = weblora_tests::fixture::fixture_dir("peft_eval");
    let batches: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(reference("peft_run/batches.json")).unwrap()).unwrap();
    let rows: Vec<Vec<i64>> = serde_json::from_value(batches[0]["input_ids"].clone()).unwrap();
    let labels: Vec<Vec<i64>> = serde_json::from_value(batches[0]["labels"].clone()).unwrap();
    let t = rows[0].len();
    let batch = Batch::from_labels(rows.iter().flatten().map(|&x| x as u32).collect(), &labels.concat(), t);
    let adapters = [("adapter", "expected.json", false), ("adapter_dora", "expected_dora.json", true)];
    for (adapter, expected, dora) in adapters {
        let lora = weblora::lora::peft::read_peft_folder(g, &model.config, &dir.join(adapter)).unwrap();
        assert_eq!(lora.config.use_dora, dora, "{adapter}");
        let expected: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(expected)).unwrap()).unwrap();
        let keys = (expected["unexpected_keys"].as_u64(), expected["missing_adapter_keys"].as_u64());
        assert_eq!(keys, (Some(0), Some(0)), "{adapter}");
        let plan = Plan::new(g, &model, &lora, rows.len(), t, PlanOptions::default()).unwrap();
        let loss = pollster::block_on(plan.eval_loss(&batch)).unwrap();
        let want = expected["loss"].as_f64().unwrap() as f32;
        println!("{adapter}: engine {loss}, PEFT {want}, relative difference {:.2e}", (loss - want).abs() / want);
        // Measured: 6.1e-6 (LoRA) and 4.8e-6 (DoRA) relative.
        assert!((loss - want).abs() <= 6e-5 * want, "{adapter}: engine {loss} vs PEFT {want}");
    }
}

/// Packing keeps examples apart: `weblora eval`'s path (a [`Run`] over eval examples) gives the
/// same loss over the first 6 sample chats (50–67 tokens each) packed three to a row as one to
/// a row. (Lavapipe evaluates a few tokens a second here: the test is kept that small.)
#[test]
fn packed_eval_equals_unpacked_eval() {
    let g = gpu();
    let path = gguf_path();
    let model = load::load_gguf(g, &path).unwrap();
    let (tok, source) = load::load_tokenizer_and_template(&path, None).unwrap();
    let template = ChatTemplate::from_source(&tok, &source.unwrap()).unwrap();
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/pirate_chat.jsonl");
    let text = std::fs::read_to_string(file).unwrap();
    let lines: String = text.lines().take(6).map(|l| format!("{l}\n")).collect();
    let options = DataOptions { seq_len: 192, ..Default::default() };
    let examples =
        Dataset::load("pirate_chat.jsonl", lines.as_bytes(), &tok, Some(&template), &options).unwrap().examples;
    let lora = Lora::new(
        g,
        &model.config,
        LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: vec![Target::Q], use_rslora: false, use_dora: false },
    )
    .unwrap();
    lora.init_peft(g, 0).unwrap();
    let eval = |packing: bool| {
        let options = RunOptions { batch_size: 2, seq_len: 192, packing, ..Default::default() };
        let mut run = Run::new(g, &model, &lora, Vec::new(), examples.clone(), data::pad_id(&tok), &options).unwrap();
        pollster::block_on(run.evaluate()).unwrap()
    };
    let ((unpacked, n), (packed, m)) = (eval(false), eval(true));
    let rel = ((packed - unpacked) / unpacked).abs();
    println!("eval loss over {n} tokens: unpacked {unpacked}, packed {packed}, relative difference {rel:.2e}");
    assert_eq!(n, m, "the same supervised tokens");
    // Measured on lavapipe over 8 chats in rows of 256: equal to the last bit (3.784553 both;
    // `weblora eval`, batches of 4: 6e-8 relative).
    assert!(rel < 1e-4, "packed {packed} vs unpacked {unpacked}");
}
