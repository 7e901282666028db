//! The frozen base weights on the GPU, named as in Hugging Face checkpoints. Loaders allocate
//! them from a config, then fill each tensor by name as its bytes arrive.

use super::ModelConfig;
use crate::error::{Error, Result};
use crate::gpu::{DType, Gpu, Tensor};

/// A linear layer y = x·Wᵀ (+ b): weight (out, in), bias (out).
#[derive(Clone)]
pub struct Linear {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub in_features: usize,
    pub out_features: usize,
}

/// One decoder layer's weights.
#[derive(Clone)]
pub struct LayerWeights {
    pub input_layernorm: Tensor,          // (C)
    pub q_proj: Linear,                   // (NH·HD, C)
    pub k_proj: Linear,                   // (NKV·HD, C)
    pub v_proj: Linear,                   // (NKV·HD, C)
    pub o_proj: Linear,                   // (C, NH·HD)
    pub post_attention_layernorm: Tensor, // (C)
    pub gate_proj: Linear,                // (F, C)
    pub up_proj: Linear,                  // (F, C)
    pub down_proj: Linear,                // (C, F)
}

/// The whole model's weights. Like [`Tensor`], a clone is another handle to the same GPU buffers.
#[derive(Clone)]
pub struct ModelWeights {
    pub embed_tokens: Tensor, // (V, C)
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,            // (C)
    pub lm_head: Option<Tensor>, // (V, C); None when tied to embed_tokens
}

fn zeros(gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(gpu, name, shape, DType::F32)
}

fn linear(gpu: &Gpu, name: &str, out: usize, inp: usize, bias: bool) -> Result<Linear> {
    Ok(Linear {
        weight: zeros(gpu, &format!("{name}.weight"), &[out, inp])?,
        bias: if bias { Some(zeros(gpu, &format!("{name}.bias"), &[out])?) } else { None },
        in_features: inp,
        out_features: out,
    })
}

impl ModelWeights {
    /// Zero-filled weights for `config`, ready to be filled by name.
    pub fn allocate(gpu: &Gpu, config: &ModelConfig) -> Result<ModelWeights> {
        let (c, f) = (config.hidden_size, config.intermediate_size);
        let (qd, kvd) = (config.q_dim(), config.kv_dim());
        let (qkv_bias, o_bias) = (config.qkv_bias(), config.o_bias());
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            layers.push(LayerWeights {
                input_layernorm: zeros(gpu, &format!("{p}.input_layernorm.weight"), &[c])?,
                q_proj: linear(gpu, &format!("{p}.self_attn.q_proj"), qd, c, qkv_bias)?,
                k_proj: linear(gpu, &format!("{p}.self_attn.k_proj"), kvd, c, qkv_bias)?,
                v_proj: linear(gpu, &format!("{p}.self_attn.v_proj"), kvd, c, qkv_bias)?,
                o_proj: linear(gpu, &format!("{p}.self_attn.o_proj"), c, qd, o_bias)?,
                post_attention_layernorm: zeros(gpu, &format!("{p}.post_attention_layernorm.weight"), &[c])?,
                gate_proj: linear(gpu, &format!("{p}.mlp.gate_proj"), f, c, false)?,
                up_proj: linear(gpu, &format!("{p}.mlp.up_proj"), f, c, false)?,
                down_proj: linear(gpu, &format!("{p}.mlp.down_proj"), c, f, false)?,
            });
        }
        Ok(ModelWeights {
            embed_tokens: zeros(gpu, "model.embed_tokens.weight", &[config.vocab_size, c])?,
            layers,
            norm: zeros(gpu, "model.norm.weight", &[c])?,
            lm_head: if config.tie_word_embeddings {
                None
            } else {
                Some(zeros(gpu, "lm_head.weight", &[config.vocab_size, c])?)
            },
        })
    }

    /// Every tensor with its Hugging Face name, in checkpoint order.
    pub fn named(&self) -> Vec<(String, &Tensor)> {
        let mut out = vec![("model.embed_tokens.weight".to_string(), &self.embed_tokens)];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), &l.input_layernorm));
            let linears = [
                ("self_attn.q_proj", &l.q_proj),
                ("self_attn.k_proj", &l.k_proj),
                ("self_attn.v_proj", &l.v_proj),
                ("self_attn.o_proj", &l.o_proj),
                ("mlp.gate_proj", &l.gate_proj),
                ("mlp.up_proj", &l.up_proj),
                ("mlp.down_proj", &l.down_proj),
            ];
            for (name, lin) in linears {
                out.push((format!("{p}.{name}.weight"), &lin.weight));
                if let Some(b) = &lin.bias {
                    out.push((format!("{p}.{name}.bias"), b));
                }
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), &l.post_attention_layernorm));
        }
        out.push(("model.norm.weight".to_string(), &self.norm));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), h));
        }
        out
    }

    /// The tensor called `name`, if the model has one.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.named().into_iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Writes f32 values into the tensor `name`, checking its shape.
    pub fn write(&self, gpu: &Gpu, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        let t = self
            .get(name)
            .ok_or_else(|| Error::Tensor { name: name.into(), detail: "the model has no such tensor".into() })?;
        if t.shape() != shape {
            return Err(Error::Tensor {
                name: name.into(),
                detail: format!("shape {shape:?}, the config says {:?}", t.shape()),
            });
        }
        t.write_f32(gpu, data)
    }

    /// The output projection (V, C): lm_head, or the embedding when tied.
    pub fn output(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Bytes the weights take on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        self.named().iter().map(|(_, t)| t.byte_size()).sum()
    }
}
