//! One base, many experts: adapters mixed as PEFT's `add_weighted_adapter(..., "cat")` mixes
//! them (`tests/fixtures/mix/`, made by make_fixture.py), and one decoder answering with several
//! adapters in turn exactly as a decoder for each adapter alone does.

use weblora::gpu::Gpu;
use weblora::lora::mix::{mix_cat, read_host_adapter, write_host_adapter, HostAdapter};
use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::decode::Decoder;
use weblora::model::{Batch, Model, Plan, PlanOptions};
use weblora::Error;
use weblora_tests::fixture::{fixture_dir, load_adapter, load_model, read_safetensors};
use weblora_tests::tiny::random_lora;
use weblora_tests::{assert_close, gpu, Tolerance};

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The fixture's two adapters on the host, named "a" and "b".
fn fixture_adapters() -> (HostAdapter, HostAdapter) {
    let mut a = read_host_adapter(&fixture_dir("tiny/llama_tied/adapter")).unwrap();
    let mut b = read_host_adapter(&fixture_dir("mix/adapter_b")).unwrap();
    a.name = "a".into();
    b.name = "b".into();
    (a, b)
}

/// The logits (T, V) of the whole-sequence forward pass with `lora`.
fn plan_logits(g: &Gpu, model: &Model, lora: &Lora, ids: &[u32]) -> Vec<f32> {
    let t = ids.len();
    let plan = Plan::new(g, model, lora, 1, t, PlanOptions::default()).unwrap();
    pollster::block_on(plan.logits(&Batch::new(1, t, ids.to_vec(), vec![-100; t]).unwrap())).unwrap()
}

#[test]
fn the_cat_mix_is_peft_add_weighted_adapter() {
    let g = gpu();
    let (a, b) = fixture_adapters();
    let mixed = mix_cat(&[(&a, 0.7), (&b, 0.3)]).unwrap();
    let exp = read_safetensors(&fixture_dir("mix/expected.safetensors"));
    // PEFT's mixed config: r and alpha the sum of the ranks, the union of the targets.
    assert_eq!((mixed.config.r, mixed.config.alpha), (10, 10.0));
    assert_eq!(mixed.config.targets, Target::ALL.to_vec());
    assert!(!mixed.config.use_rslora);

    // The same tensors, key for key. Measured: bit for bit (0.0); both are the same f32 products.
    let tensors = mixed.tensors();
    assert_eq!(tensors.len(), exp.keys().filter(|k| k.starts_with("mix.")).count());
    let mut worst = 0f32;
    for (key, shape, values) in &tensors {
        let want = &exp[&format!("mix.{key}")];
        assert_eq!(shape, &want.shape, "{key}");
        worst = worst.max(max_abs_diff(values, &want.data));
    }
    println!("mixed tensors: max |ours − PEFT's| {worst:e}");
    assert!(worst <= 1e-7, "mixed tensors differ from PEFT's by {worst}");

    // Written as a PEFT folder and read back onto the GPU, it gives PEFT's logits with the mixed
    // adapter active; each adapter alone gives its own.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("experts-mix");
    let _ = std::fs::remove_dir_all(&dir);
    write_host_adapter(&mixed, &dir).unwrap();
    let model = load_model(g, &fixture_dir("tiny/llama_tied"));
    let ids: Vec<u32> = exp["input_ids"].ints.iter().map(|&i| i as u32).collect();
    let cases =
        [("mix", dir.clone()), ("a", fixture_dir("tiny/llama_tied/adapter")), ("b", fixture_dir("mix/adapter_b"))];
    for (name, adapter) in cases {
        let lora = load_adapter(g, &model.config, &adapter);
        let got = plan_logits(g, &model, &lora, &ids);
        let want = &exp[&format!("logits_{name}")].data;
        println!("logits with {name}: max |ours − PEFT's| {:e}", max_abs_diff(&got, want));
        // Measured 2.1e-6 at most (logits of O(1)); as pytorch_fixture.rs's tolerance.
        assert_close(&format!("logits with {name}"), &got, want, Tolerance { atol: 2e-5, rtol: 1e-4 });
    }
}

#[test]
fn mixing_refuses_adapters_that_do_not_fit_naming_them() {
    let (a, b) = fixture_adapters();
    let mut rs = b.clone();
    rs.config.use_rslora = true;
    match mix_cat(&[(&a, 0.5), (&rs, 0.5)]) {
        Err(Error::Adapter { adapter, detail }) => {
            assert_eq!(adapter, "b");
            assert!(detail.contains("rsLoRA"), "{detail}");
        }
        other => panic!("a mix of rsLoRA and plain adapters: {other:?}"),
    }
    // A module of another width: an adapter of another base model.
    let mut wide = b.clone();
    let m = &mut wide.modules[0];
    m.in_features += 1;
    m.a = vec![0.1; wide.config.r * m.in_features];
    match mix_cat(&[(&a, 0.5), (&wide, 0.5)]) {
        Err(Error::Adapter { adapter, detail }) => {
            assert_eq!(adapter, "b");
            assert!(detail.contains("different base models"), "{detail}");
        }
        other => panic!("a mix of adapters of different bases: {other:?}"),
    }
    assert!(matches!(mix_cat(&[(&a, 1.0)]), Err(Error::Input(_))), "one adapter is no mix");
    assert!(matches!(mix_cat(&[(&a, f32::NAN), (&b, 1.0)]), Err(Error::Adapter { .. })));
}

/// Feeds `prompt` and `new` more greedy tokens through `decoder` from position 0: the tokens
/// chosen and the logits (V) after every token fed.
fn greedy(decoder: &Decoder, prompt: &[u32], new: usize) -> Answer {
    let (mut seq, mut all) = (prompt.to_vec(), Vec::new());
    let mut pos = 0;
    while pos < seq.len() {
        let logits = pollster::block_on(decoder.next_logits(seq[pos], pos)).unwrap();
        if pos + 1 == seq.len() && seq.len() < prompt.len() + new {
            seq.push(logits.iter().enumerate().max_by(|x, y| x.1.total_cmp(y.1)).unwrap().0 as u32);
        }
        all.push(logits);
        pos += 1;
    }
    (seq[prompt.len()..].to_vec(), all)
}

/// Greedy answer tokens and the logits after every token fed.
type Answer = (Vec<u32>, Vec<Vec<f32>>);

/// Every adapter of `adapters` answers through one switching decoder exactly as through a
/// decoder of its own; returns each adapter's answer.
fn side_by_side_as_alone(
    g: &Gpu,
    model: &Model,
    adapters: &[Option<&Lora>],
    prompt: &[u32],
    new: usize,
) -> Vec<Answer> {
    let max_t = prompt.len() + new;
    let alone: Vec<_> =
        adapters.iter().map(|l| greedy(&Decoder::new(g, model, *l, max_t).unwrap(), prompt, new)).collect();
    let mut decoder = Decoder::with_adapters(g, model, adapters, max_t).unwrap();
    assert_eq!(decoder.adapters(), adapters.len());
    // Last to first, then the last again: switching leaves no trace of the adapter before.
    let order: Vec<usize> = (0..adapters.len()).rev().chain([adapters.len() - 1]).collect();
    for i in order {
        decoder.select(i).unwrap();
        let (tokens, logits) = greedy(&decoder, prompt, new);
        assert_eq!(tokens, alone[i].0, "adapter {i}: the answer differs from its own decoder's");
        let worst = logits.iter().zip(&alone[i].1).map(|(x, y)| max_abs_diff(x, y)).fold(0.0, f32::max);
        println!("adapter {i} switched in: max |logits − its own decoder's| {worst:e}");
        // The same kernels over the same values: measured bit for bit (0.0).
        assert!(worst <= 1e-6, "adapter {i}: logits differ from its own decoder's by {worst}");
    }
    assert!(decoder.select(adapters.len()).is_err());
    // The adapters do change the answers' logits (else this would show nothing).
    for (i, (_, logits)) in alone.iter().enumerate().skip(1) {
        let d = max_abs_diff(logits.last().unwrap(), alone[0].1.last().unwrap());
        println!("adapter {i}: last logits max |adapter − base| {d:e}");
        assert!(d > 1e-3, "adapter {i} does not change the logits ({d})");
    }
    alone
}

#[test]
fn a_decoder_switches_adapters_of_other_ranks_and_targets() {
    let g = gpu();
    let dir = fixture_dir("tiny/llama_tied");
    let model = load_model(g, &dir);
    // r 4 on all seven projections, r 6 (padded to 8) on q, v and down.
    let a = load_adapter(g, &model.config, &dir.join("adapter"));
    let b = load_adapter(g, &model.config, &fixture_dir("mix/adapter_b"));
    let exp = read_safetensors(&fixture_dir("mix/expected.safetensors"));
    let ids: Vec<u32> = exp["input_ids"].ints.iter().map(|&i| i as u32).collect();
    side_by_side_as_alone(g, &model, &[None, Some(&a), Some(&b)], &ids[..3], 3);
    // And each adapter's decoding is PEFT's forward, position by position.
    let v = model.config.vocab_size;
    let mut decoder = Decoder::with_adapters(g, &model, &[Some(&b), Some(&a)], ids.len()).unwrap();
    for (i, name) in [(1, "a"), (0, "b")] {
        decoder.select(i).unwrap();
        let (_, logits) = greedy(&decoder, &ids, 0);
        let want = &exp[&format!("logits_{name}")].data;
        for (pos, l) in logits.iter().enumerate() {
            let tol = Tolerance { atol: 2e-5, rtol: 1e-4 };
            assert_close(&format!("{name} at {pos}"), l, &want[pos * v..(pos + 1) * v], tol);
        }
    }
}

#[test]
fn smollm2_answers_with_two_adapters_side_by_side_as_each_alone() {
    let g = gpu();
    let path = weblora_tests::smollm2::gguf_path();
    let model = weblora::model::load::load_gguf(g, &path).unwrap();
    let (tok, _) = weblora::model::load::load_tokenizer(&path).unwrap();
    let c = &model.config;
    // Two random adapters of different ranks and targets, standing in for two trained on
    // different data: A and B uniform in ±0.25, B non-zero and large enough that each changes
    // the answer.
    let cfg_a = LoraConfig {
        r: 8,
        alpha: 16.0,
        dropout: 0.0,
        targets: vec![Target::Q, Target::V],
        use_rslora: false,
        use_dora: false,
    };
    let cfg_b = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec![Target::Gate, Target::Up, Target::Down],
        use_rslora: false,
        use_dora: false,
    };
    let a = random_lora_scaled(g, c, cfg_a, 1, 0.25);
    let b = random_lora_scaled(g, c, cfg_b, 2, 0.25);
    let prompt = tok.encode("Once upon a time", false).unwrap();
    let answers = side_by_side_as_alone(g, &model, &[None, Some(&a), Some(&b)], &prompt, 3);
    let text: Vec<String> = answers.iter().map(|(t, _)| tok.decode(t, true).unwrap()).collect();
    println!("base {:?}, a {:?}, b {:?}", text[0], text[1], text[2]);
    // Measured: ", the city", " and \" and", " that through in".
    let tokens: Vec<&Vec<u32>> = answers.iter().map(|(t, _)| t).collect();
    assert!(tokens[0] != tokens[1] && tokens[0] != tokens[2] && tokens[1] != tokens[2], "{text:?}");
}

/// [`random_lora`] with its values scaled by `scale` / 0.2.
fn random_lora_scaled(g: &Gpu, model: &weblora::model::ModelConfig, cfg: LoraConfig, seed: u64, scale: f32) -> Lora {
    let lora = random_lora(g, model, cfg, seed);
    let values: std::collections::HashMap<String, Vec<f32>> = pollster::block_on(lora.read_params(g))
        .unwrap()
        .into_iter()
        .map(|(k, _, v)| (k, v.iter().map(|x| x * scale / 0.2).collect()))
        .collect();
    lora.load(g, |k| values.get(k).cloned()).unwrap();
    lora
}
