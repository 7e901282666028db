//! The model shapes `weblora bench --json --config` names and the f32 matmuls of a training step
//! at those shapes: one list, read by `bench --json` and by the Burn peer
//! (`benchmarks/burn-peer`, which includes this file by path). It depends on nothing but std and
//! serde_json, so that the peer can compile it without the engine.

/// The shapes `--config` names, as their Hugging Face configs give them (the fields the engine reads).
pub const CONFIGS: [(&str, &str); 3] = [
    (
        "smollm2-135m",
        r#"{"model_type":"llama","hidden_size":576,"intermediate_size":1536,"num_attention_heads":9,
        "num_key_value_heads":3,"num_hidden_layers":30,"rms_norm_eps":1e-5,"rope_theta":100000,
        "vocab_size":49152,"tie_word_embeddings":true,"max_position_embeddings":8192}"#,
    ),
    (
        "qwen2.5-0.5b",
        r#"{"model_type":"qwen2","hidden_size":896,"intermediate_size":4864,"num_attention_heads":14,
        "num_key_value_heads":2,"num_hidden_layers":24,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
        "vocab_size":151936,"tie_word_embeddings":true,"max_position_embeddings":32768}"#,
    ),
    (
        "llama-3.2-1b",
        r#"{"model_type":"llama","hidden_size":2048,"intermediate_size":8192,"num_attention_heads":32,
        "num_key_value_heads":8,"head_dim":64,"num_hidden_layers":16,"rms_norm_eps":1e-5,
        "rope_parameters":{"factor":32.0,"high_freq_factor":4.0,"low_freq_factor":1.0,
        "original_max_position_embeddings":8192,"rope_theta":500000.0,"rope_type":"llama3"},
        "vocab_size":128256,"tie_word_embeddings":true,"max_position_embeddings":131072}"#,
    ),
];

/// The widths the matmuls depend on: C, F, NH·HD, NKV·HD and V.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub hidden: usize,
    pub intermediate: usize,
    pub q_dim: usize,
    pub kv_dim: usize,
    pub vocab: usize,
}

impl Dims {
    /// From the text of a Hugging Face `config.json`, read as `ModelConfig` reads these fields
    /// (`head_dim` defaults to C / NH, `num_key_value_heads` to NH). The engine takes its own
    /// from `ModelConfig`; a test in `bench_json` holds the two readings equal on `CONFIGS`.
    #[allow(dead_code)] // the CLI reads its widths from ModelConfig
    pub fn from_config_json(text: &str) -> Result<Dims, String> {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let field = |name: &str| v.get(name).and_then(|x| x.as_u64()).map(|x| x as usize);
        let need = |name: &str| field(name).ok_or_else(|| format!("config.json has no integer {name}"));
        let (hidden, heads) = (need("hidden_size")?, need("num_attention_heads")?);
        let head_dim = field("head_dim").unwrap_or(hidden / heads.max(1));
        let kv_heads = field("num_key_value_heads").unwrap_or(heads);
        Ok(Dims {
            hidden,
            intermediate: need("intermediate_size")?,
            q_dim: heads * head_dim,
            kv_dim: kv_heads * head_dim,
            vocab: need("vocab_size")?,
        })
    }
}

/// One matmul: name, layout (`nt`: A (M, K) · B (N, K)ᵀ; `nn`: A (M, K) · B (K, N);
/// `tn`: A (K, M)ᵀ · B (K, N)), M, N, K.
pub type MatmulShape = (&'static str, &'static str, usize, usize, usize);

/// Every f32 matmul layout a training step runs, at the model's shapes with `rows` = B·T and
/// LoRA r = 8 (rank padded to 8).
pub fn training_matmuls(d: &Dims, rows: usize) -> [MatmulShape; 10] {
    let (h, f, q, kv) = (d.hidden, d.intermediate, d.q_dim, d.kv_dim);
    // The head in 64-row chunks over at most 32768 vocabulary rows (one part's worth).
    let v = d.vocab.min(32768);
    [
        ("q_proj x·Wᵀ", "nt", rows, q, h),
        ("k/v_proj x·Wᵀ", "nt", rows, kv, h),
        ("gate/up x·Wᵀ", "nt", rows, f, h),
        ("down x·Wᵀ", "nt", rows, h, f),
        ("lm_head x·Wᵀ (64-row chunk)", "nt", 64, v, h),
        ("gate/up dy·W", "nn", rows, h, f),
        ("down dy·W", "nn", rows, f, h),
        ("lm_head dlogits·W (64-row chunk)", "nn", 64, h, v),
        ("lora dA duᵀ·x (gate/up)", "tn", 8, h, rows),
        ("lora dB dyᵀ·u (gate/up)", "tn", f, 8, rows),
    ]
}
