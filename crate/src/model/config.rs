//! The model's shape, read from a Hugging Face `config.json` (Llama, SmolLM, Mistral, Qwen2):
//! one config type and one code path for every variant.

use serde::Deserialize;

use crate::error::{Error, Result};

/// RoPE frequency settings: `rope_parameters` (transformers 5) or `rope_theta` + `rope_scaling`.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, PartialEq)]
pub struct RopeParameters {
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default, alias = "type")]
    pub rope_type: Option<String>,
    #[serde(default)]
    pub factor: Option<f64>,
    #[serde(default)]
    pub low_freq_factor: Option<f64>,
    #[serde(default)]
    pub high_freq_factor: Option<f64>,
    #[serde(default)]
    pub original_max_position_embeddings: Option<f64>,
}

/// The fields of `config.json` the engine uses.
#[derive(Clone, Debug, Deserialize)]
pub struct ModelConfig {
    #[serde(default)]
    pub model_type: Option<String>,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_attention_heads: usize,
    #[serde(default)]
    pub num_key_value_heads: Option<usize>,
    #[serde(default)]
    pub head_dim: Option<usize>,
    pub num_hidden_layers: usize,
    #[serde(default = "default_eps")]
    pub rms_norm_eps: f32,
    #[serde(default)]
    pub rope_theta: Option<f64>,
    #[serde(default)]
    pub rope_scaling: Option<RopeParameters>,
    #[serde(default)]
    pub rope_parameters: Option<RopeParameters>,
    pub vocab_size: usize,
    #[serde(default)]
    pub tie_word_embeddings: bool,
    /// The weights' type: "float32", "float16" or "bfloat16" (transformers 5 says `dtype`,
    /// earlier versions `torch_dtype`).
    #[serde(default)]
    pub dtype: Option<String>,
    #[serde(default)]
    pub torch_dtype: Option<String>,
    /// Llama: biases on q, k, v and o. Qwen2 always has q/k/v biases (and never o).
    #[serde(default)]
    pub attention_bias: bool,
    #[serde(default)]
    pub mlp_bias: bool,
    #[serde(default = "default_max_pos")]
    pub max_position_embeddings: usize,
    #[serde(default)]
    pub hidden_act: Option<String>,
    #[serde(default)]
    pub bos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    pub eos_token_id: Option<serde_json::Value>,
}

fn default_eps() -> f32 {
    1e-6
}

fn default_max_pos() -> usize {
    2048
}

impl ModelConfig {
    /// Parses and checks a `config.json`; `file` names it in errors.
    pub fn from_json(text: &str, file: &str) -> Result<ModelConfig> {
        let c: ModelConfig = serde_json::from_str(text).map_err(|e| Error::Config(format!("{file}: {e}")))?;
        c.validate().map_err(|e| Error::Config(format!("{file}: {e}")))?;
        Ok(c)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        match self.model_type.as_deref() {
            None | Some("llama" | "mistral" | "qwen2" | "smollm") => {}
            Some(other) => {
                return Err(format!("unsupported architecture model_type={other:?} (llama, mistral, qwen2)"))
            }
        }
        if let Some(act) = self.hidden_act.as_deref() {
            if act != "silu" {
                return Err(format!("hidden_act {act:?} is not supported (silu)"));
            }
        }
        if self.mlp_bias {
            return Err("mlp_bias is not supported".into());
        }
        let nonzero = [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("num_hidden_layers", self.num_hidden_layers),
            ("vocab_size", self.vocab_size),
            ("num_key_value_heads", self.n_kv_heads()),
            ("head_dim", self.head_dim()),
        ];
        for (name, v) in nonzero {
            if v == 0 || v > 1 << 24 {
                return Err(format!("{name} = {v} is out of range"));
            }
        }
        if !self.num_attention_heads.is_multiple_of(self.n_kv_heads()) {
            return Err(format!(
                "num_attention_heads {} is not a multiple of num_key_value_heads {}",
                self.num_attention_heads,
                self.n_kv_heads()
            ));
        }
        for (name, v) in [
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("vocab_size", self.vocab_size),
        ] {
            if v % 4 != 0 {
                return Err(format!("{name} = {v} must be a multiple of 4"));
            }
        }
        if !self.head_dim().is_multiple_of(4) || self.head_dim() > 128 {
            return Err(format!("head_dim {} must be a multiple of 4 and at most 128", self.head_dim()));
        }
        self.rope().rope_type_checked().map(|_| ())
    }

    pub fn n_kv_heads(&self) -> usize {
        self.num_key_value_heads.unwrap_or(self.num_attention_heads)
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim.unwrap_or(self.hidden_size / self.num_attention_heads.max(1))
    }

    /// Width of q (NH·HD) and of k and v (NKV·HD).
    pub fn q_dim(&self) -> usize {
        self.num_attention_heads * self.head_dim()
    }

    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads() * self.head_dim()
    }

    /// The 16-bit type `dtype` (or `torch_dtype`) names: F16 or BF16; `None` for float32 or
    /// when absent.
    pub fn stored_type(&self) -> Option<crate::io::GgmlType> {
        match self.dtype.as_deref().or(self.torch_dtype.as_deref()) {
            Some("float16") => Some(crate::io::GgmlType::F16),
            Some("bfloat16") => Some(crate::io::GgmlType::BF16),
            _ => None,
        }
    }

    pub fn qkv_bias(&self) -> bool {
        self.attention_bias || self.model_type.as_deref() == Some("qwen2")
    }

    pub fn o_bias(&self) -> bool {
        self.attention_bias && self.model_type.as_deref() != Some("qwen2")
    }

    /// The RoPE settings, whichever way the file spelled them.
    pub fn rope(&self) -> RopeParameters {
        let mut r = self.rope_parameters.clone().or_else(|| self.rope_scaling.clone()).unwrap_or_default();
        if r.rope_theta.is_none() {
            r.rope_theta = Some(self.rope_theta.unwrap_or(10000.0));
        }
        r
    }
}

impl RopeParameters {
    /// The rope type, checked to be one the engine computes.
    pub fn rope_type_checked(&self) -> std::result::Result<&str, String> {
        let t = self.rope_type.as_deref().unwrap_or("default");
        match t {
            "default" => Ok(t),
            "linear" if self.factor.is_some() => Ok(t),
            "llama3"
                if self.factor.is_some()
                    && self.low_freq_factor.is_some()
                    && self.high_freq_factor.is_some()
                    && self.original_max_position_embeddings.is_some() =>
            {
                Ok(t)
            }
            "linear" | "llama3" => Err(format!("rope_scaling {t:?} is missing its factors")),
            other => Err(format!("rope type {other:?} is not supported (default, linear, llama3)")),
        }
    }

    /// The inverse frequencies (HD/2) as transformers computes them.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f64> {
        let theta = self.rope_theta.unwrap_or(10000.0);
        let base: Vec<f64> = (0..head_dim / 2).map(|i| 1.0 / theta.powf((2 * i) as f64 / head_dim as f64)).collect();
        match self.rope_type_checked() {
            Ok("linear") => {
                let f = self.factor.unwrap_or(1.0);
                base.iter().map(|x| x / f).collect()
            }
            Ok("llama3") => {
                let factor = self.factor.unwrap_or(1.0);
                let (low, high) = (self.low_freq_factor.unwrap_or(1.0), self.high_freq_factor.unwrap_or(1.0));
                let old = self.original_max_position_embeddings.unwrap_or(8192.0);
                let (low_wavelen, high_wavelen) = (old / low, old / high);
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            _ => base,
        }
    }

    /// cos and sin tables (max_t, HD/2): the angle pos·inv_freq is formed in f32, as transformers does.
    pub fn tables(&self, head_dim: usize, max_t: usize) -> (Vec<f32>, Vec<f32>) {
        let inv: Vec<f32> = self.inv_freq(head_dim).iter().map(|&x| x as f32).collect();
        let mut cos = Vec::with_capacity(max_t * inv.len());
        let mut sin = Vec::with_capacity(max_t * inv.len());
        for t in 0..max_t {
            for &f in &inv {
                let angle = (t as f32 * f) as f64;
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        (cos, sin)
    }
}
