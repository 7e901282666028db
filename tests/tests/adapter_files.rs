//! PEFT adapter files: written and read back unchanged, with the keys and config PEFT expects,
//! and clear errors for adapters the engine cannot use.

use weblora::lora::peft::{parse_adapter_config, read_peft_folder, write_peft_folder};
use weblora::lora::{LoraConfig, Target};
use weblora_tests::tiny::{config, random_lora};
use weblora_tests::{gpu, read};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn peft_folder_round_trip() {
    let g = gpu();
    let cfg = config("llama", true, false);
    let lcfg = LoraConfig {
        r: 3,
        alpha: 6.0,
        dropout: 0.05,
        targets: vec![Target::Q, Target::Down],
        use_rslora: true,
        use_dora: false,
    };
    let lora = random_lora(g, &cfg, lcfg, 8);
    let dir = tmp("peft-round-trip");
    pollster::block_on(write_peft_folder(g, &lora, "tiny-llama", &dir)).unwrap();
    let back = read_peft_folder(g, &cfg, &dir).unwrap();
    assert_eq!(read(&back.params), read(&lora.params));
    assert_eq!((back.config.r, back.config.alpha, back.config.use_rslora), (3, 6.0, true));
    assert_eq!(back.config.targets, vec![Target::Q, Target::Down]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("adapter_config.json")).unwrap()).unwrap();
    assert_eq!(json["peft_type"], "LORA");
    assert_eq!(json["task_type"], "CAUSAL_LM");
    assert_eq!(json["target_modules"], serde_json::json!(["q_proj", "down_proj"]));
    let bytes = std::fs::read(dir.join("adapter_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut keys: Vec<String> = st.names().into_iter().map(String::from).collect();
    keys.sort();
    assert_eq!(keys.len(), 2 * 2 * 2);
    assert_eq!(keys[0], "base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
    let a = st.tensor("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight").unwrap();
    assert_eq!(a.shape(), &[3, 48]);
    let b = st.tensor("base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight").unwrap();
    assert_eq!(b.shape(), &[32, 3]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    assert_eq!(meta.metadata().as_ref().unwrap()["format"], "pt");
}

#[test]
fn unusable_adapters_give_errors() {
    let g = gpu();
    let cfg = config("llama", true, false);
    let base = r#"{"peft_type": "LORA", "r": 4, "lora_alpha": 8, "target_modules": ["q_proj"]}"#;
    assert!(parse_adapter_config(base, "a.json").is_ok());
    // DoRA adapters load (tests/tests/dora.rs checks them against PEFT).
    let dora = r#"{"r": 4, "target_modules": ["q_proj"], "use_dora": true}"#;
    assert!(parse_adapter_config(dora, "a.json").unwrap().use_dora);
    for (text, needle) in [
        (r#"{"r": 4, "target_modules": ["q_proj"], "bias": "all"}"#, "bias"),
        (r#"{"r": 4, "target_modules": ["embed_tokens"]}"#, "embed_tokens"),
        (r#"{"target_modules": ["q_proj"]}"#, "\"r\""),
        (r#"{"r": 4, "target_modules": ["q_proj"], "rank_pattern": {"q_proj": 8}}"#, "rank_pattern"),
        ("{not json", "invalid JSON"),
    ] {
        let err = parse_adapter_config(text, "a.json").unwrap_err().to_string();
        assert!(err.contains(needle), "{text}: {err}");
    }
    // A rank above a projection's width, and tensors that do not match the config.
    let dir = tmp("peft-bad");
    let lora = random_lora(
        g,
        &cfg,
        LoraConfig { r: 2, alpha: 4.0, dropout: 0.0, targets: vec![Target::Q], use_rslora: false, use_dora: false },
        1,
    );
    pollster::block_on(write_peft_folder(g, &lora, "tiny", &dir)).unwrap();
    let cfg_path = dir.join("adapter_config.json");
    let text = std::fs::read_to_string(&cfg_path).unwrap();
    std::fs::write(&cfg_path, text.replace("\"r\": 2", "\"r\": 4")).unwrap();
    let err = read_peft_folder(g, &cfg, &dir).err().unwrap().to_string();
    assert!(err.contains("adapter_model.safetensors") && err.contains("lora_A"), "{err}");
    std::fs::write(&cfg_path, text.replace("\"q_proj\"", "\"v_proj\"")).unwrap();
    let err = read_peft_folder(g, &cfg, &dir).err().unwrap().to_string();
    assert!(err.contains("unexpected tensor"), "{err}");
    std::fs::write(&cfg_path, text.replace("\"r\": 2", "\"r\": 64")).unwrap();
    let err = read_peft_folder(g, &cfg, &dir).err().unwrap().to_string();
    assert!(err.contains("larger than"), "{err}");
}

/// A merged model computes what base + adapter computed, and survives a trip through a
/// Hugging Face folder.
#[test]
fn merged_model_matches_base_plus_adapter() {
    use weblora::model::{export, load, Plan, PlanOptions};
    let g = gpu();
    let model = weblora_tests::tiny::random_model(g, config("qwen2", false, false), 12);
    let lcfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: Target::ALL.to_vec(),
        use_rslora: false,
        use_dora: false,
    };
    let lora = random_lora(g, &model.config, lcfg.clone(), 4);
    let batch = weblora_tests::tiny::random_batch(1, 8, 64, 0, 3);
    let logits = |m: &weblora::model::Model, l: &weblora::lora::Lora| {
        let plan = Plan::new(g, m, l, 1, 8, PlanOptions::default()).unwrap();
        pollster::block_on(plan.logits(&batch)).unwrap()
    };
    let with_adapter = logits(&model, &lora);
    weblora::lora::merge::merge_into(g, &model, &lora).unwrap();
    let dir = tmp("merged-hf");
    pollster::block_on(export::write_hf_folder(g, &model, None, &dir)).unwrap();
    let merged = load::load_hf_folder(g, &dir).unwrap();
    let zero = weblora::lora::Lora::new(g, &merged.config, lcfg).unwrap();
    let plain = logits(&merged, &zero);
    weblora_tests::assert_close("merged logits", &plain, &with_adapter, weblora_tests::F32);
}

/// The llama.cpp adapter: metadata, tensor names, the orientation llama.cpp checks
/// (lora_a dims [in, r], lora_b dims [r, out]), q/k rows of B in llama.cpp's order, rsLoRA
/// baked into alpha.
#[test]
fn gguf_lora_adapter_for_llama_cpp() {
    use weblora::io::{gguf_to_hf_qk_rows, GgmlType, GgufEvent, GgufReader};
    let g = gpu();
    let cfg = config("llama", true, false);
    let lcfg =
        LoraConfig { r: 4, alpha: 8.0, dropout: 0.0, targets: Target::ALL.to_vec(), use_rslora: true, use_dora: false };
    let lora = random_lora(g, &cfg, lcfg, 6);
    let bytes = pollster::block_on(weblora::lora::gguf::gguf_lora_bytes(g, &lora, &cfg)).unwrap();
    let dir = tmp("gguf-lora");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("adapter.gguf"), &bytes).unwrap();

    let hf: std::collections::HashMap<String, Vec<f32>> =
        pollster::block_on(lora.read_params(g)).unwrap().into_iter().map(|(k, _, d)| (k, d)).collect();
    let mut reader = GgufReader::new("adapter.gguf", Some(bytes.len() as u64));
    let mut seen = 0;
    let mut check = |ev: GgufEvent| -> Result<(), weblora::io::LoadError> {
        match ev {
            GgufEvent::Header(h) => {
                assert_eq!(h.get_str("general.type").unwrap(), "adapter");
                assert_eq!(h.get_str("adapter.type").unwrap(), "lora");
                assert_eq!(h.get_str("general.architecture").unwrap(), "llama");
                assert!((h.get_f32("adapter.lora.alpha").unwrap() - 16.0).abs() < 1e-6, "8·√4");
                assert_eq!(h.tensors.len(), 2 * 7 * 2);
            }
            GgufEvent::Tensor { info, bytes } => {
                seen += 1;
                let values: Vec<f32> = bytemuck::pod_collect_to_vec(bytes);
                let (weight, which) = info.name.rsplit_once('.').unwrap();
                let (layer, module) = weight.strip_prefix("blk.").unwrap().split_once('.').unwrap();
                let (hf_module, (inp, out)) = match module {
                    "attn_q.weight" => ("self_attn.q_proj", (32, 32)),
                    "attn_k.weight" => ("self_attn.k_proj", (32, 16)),
                    "attn_v.weight" => ("self_attn.v_proj", (32, 16)),
                    "attn_output.weight" => ("self_attn.o_proj", (32, 32)),
                    "ffn_gate.weight" => ("mlp.gate_proj", (32, 48)),
                    "ffn_up.weight" => ("mlp.up_proj", (32, 48)),
                    "ffn_down.weight" => ("mlp.down_proj", (48, 32)),
                    other => panic!("unexpected tensor {other}"),
                };
                let ab = if which == "lora_a" { "A" } else { "B" };
                let want = &hf[&format!("base_model.model.model.layers.{layer}.{hf_module}.lora_{ab}.weight")];
                if which == "lora_a" {
                    assert_eq!(info.dims, vec![inp, 4], "{}", info.name);
                    assert_eq!(&values, want);
                } else {
                    assert_eq!(info.dims, vec![4, out], "{}", info.name);
                    let heads = match module {
                        "attn_q.weight" => Some(4),
                        "attn_k.weight" => Some(2),
                        _ => None,
                    };
                    if let Some(h) = heads {
                        assert_ne!(&values, want, "{}: q/k rows are permuted", info.name);
                        let back = gguf_to_hf_qk_rows(&info.name, bytes, GgmlType::F32, out as usize, 4, h).unwrap();
                        assert_eq!(&bytemuck::pod_collect_to_vec::<u8, f32>(&back), want);
                    } else {
                        assert_eq!(&values, want);
                    }
                }
            }
        }
        Ok(())
    };
    reader.feed(&bytes, &mut check).unwrap();
    reader.finish(&mut check).unwrap();
    assert_eq!(seen, 28);
}

/// An MLX-LM adapter (lora_a (in, r), lora_b (r, out), scale, last layers only) imports as the
/// PEFT adapter it stands for.
#[test]
fn mlx_lm_adapter_import() {
    let g = gpu();
    let cfg = config("llama", true, false);
    let lcfg = LoraConfig {
        r: 4,
        alpha: 8.0,
        dropout: 0.0,
        targets: vec![Target::Q, Target::V, Target::Down],
        use_rslora: false,
        use_dora: false,
    };
    let peft = random_lora(g, &cfg, lcfg, 9);
    let tensors = pollster::block_on(peft.read_params(g)).unwrap();
    // MLX-LM's layout for the last layer only (num_layers = 1); scale = alpha / r.
    let mut mlx: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    let mut expected = std::collections::HashMap::new();
    for (key, shape, data) in &tensors {
        let layer1 = key.contains("layers.1.");
        let (rows, cols) = (shape[0], shape[1]);
        let mut t = vec![0.0f32; data.len()];
        for r in 0..rows {
            for c in 0..cols {
                t[c * rows + r] = data[r * cols + c];
            }
        }
        expected.insert(key.clone(), if layer1 { data.clone() } else { vec![0.0; data.len()] });
        if layer1 {
            let name = key
                .replace("base_model.model.", "")
                .replace("lora_A.weight", "lora_a")
                .replace("lora_B.weight", "lora_b");
            mlx.push((name, vec![cols, rows], bytemuck::cast_slice(&t).to_vec()));
        }
    }
    let views: Vec<(String, safetensors::tensor::TensorView)> = mlx
        .iter()
        .map(|(n, s, b)| {
            (n.clone(), safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b).unwrap())
        })
        .collect();
    let bytes = safetensors::tensor::serialize(views, None).unwrap();
    let config_json =
        r#"{"fine_tune_type": "lora", "num_layers": 1, "lora_parameters": {"rank": 4, "scale": 2.0, "dropout": 0.0}}"#;
    let lora = weblora::lora::mlx::read_mlx_adapter(g, &cfg, config_json, &bytes, "mlx-adapter").unwrap();
    assert_eq!(
        (lora.config.r, lora.config.alpha, lora.config.targets.clone()),
        (4, 8.0, vec![Target::Q, Target::V, Target::Down])
    );
    for (key, _, data) in pollster::block_on(lora.read_params(g)).unwrap() {
        assert_eq!(&data, &expected[&key], "{key}");
    }
    let err = weblora::lora::mlx::read_mlx_adapter(
        g,
        &cfg,
        r#"{"fine_tune_type": "dora", "lora_parameters": {}}"#,
        &bytes,
        "x",
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("dora"), "{err}");
}
