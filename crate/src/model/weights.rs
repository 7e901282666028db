//! The frozen base weights on the GPU, named as in Hugging Face checkpoints. Loaders allocate
//! them from a config, then fill each tensor by name as its bytes arrive. The seven projections
//! of each layer, the embedding and the output head may be kept in a GGML type ([`QuantTensor`]:
//! f16, bf16 or quantized) instead of f32; norms and biases are f32. The embedding and the
//! output head are split by vocabulary range into parts that fit the device's limits
//! ([`SplitTensor`]); a tied head is the embedding. A projection larger than those limits is
//! split the same way, by output rows.

use super::ModelConfig;
use crate::error::{Error, Result};
pub use crate::gpu::Weight;
use crate::gpu::{DType, Gpu, QuantTensor, SplitTensor, Tensor};
use crate::io::GgmlType;

/// A linear layer y = x·Wᵀ (+ b): weight (out, in), bias (out).
#[derive(Clone)]
pub struct Linear {
    pub weight: Weight,
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

impl LayerWeights {
    /// The projection a LoRA target adapts.
    pub fn linear(&self, target: crate::lora::Target) -> &Linear {
        use crate::lora::Target;
        match target {
            Target::Q => &self.q_proj,
            Target::K => &self.k_proj,
            Target::V => &self.v_proj,
            Target::O => &self.o_proj,
            Target::Gate => &self.gate_proj,
            Target::Up => &self.up_proj,
            Target::Down => &self.down_proj,
        }
    }
}

/// The whole model's weights. Like [`Tensor`], a clone is another handle to the same GPU buffers.
#[derive(Clone)]
pub struct ModelWeights {
    pub embed_tokens: SplitTensor, // (V, C)
    pub layers: Vec<LayerWeights>,
    pub norm: Tensor,                 // (C)
    pub lm_head: Option<SplitTensor>, // (V, C); None when tied to embed_tokens
}

fn zeros(gpu: &Gpu, name: &str, shape: &[usize]) -> Result<Tensor> {
    Tensor::zeros(gpu, name, shape, DType::F32)
}

fn linear(
    gpu: &Gpu,
    name: &str,
    out: usize,
    inp: usize,
    bias: bool,
    quant: &dyn Fn(&str) -> Option<GgmlType>,
) -> Result<Linear> {
    let wname = format!("{name}.weight");
    let ty = quant(&wname).unwrap_or(GgmlType::F32);
    // Larger than one binding or buffer: split by output rows.
    let part_rows = SplitTensor::part_rows_for(&wname, ty, out, inp, gpu.info.max_tensor_bytes())?;
    let weight = match ty {
        _ if part_rows < out => Weight::Split(SplitTensor::zeros_in_parts_as(gpu, &wname, ty, out, inp, part_rows)?),
        GgmlType::F32 => Weight::F32(zeros(gpu, &wname, &[out, inp])?),
        _ => Weight::Quant(QuantTensor::zeros(gpu, &wname, ty, out, inp)?),
    };
    Ok(Linear {
        weight,
        bias: if bias { Some(zeros(gpu, &format!("{name}.bias"), &[out])?) } else { None },
        in_features: inp,
        out_features: out,
    })
}

fn split(
    gpu: &Gpu,
    name: &str,
    rows: usize,
    cols: usize,
    quant: &dyn Fn(&str) -> Option<GgmlType>,
) -> Result<SplitTensor> {
    SplitTensor::zeros_as(gpu, name, quant(name).unwrap_or(GgmlType::F32), rows, cols)
}

impl ModelWeights {
    /// Zero-filled f32 weights for `config`, ready to be filled by name.
    pub fn allocate(gpu: &Gpu, config: &ModelConfig) -> Result<ModelWeights> {
        Self::allocate_with(gpu, config, &|_| None)
    }

    /// Zero-filled weights for `config`, where `quant` gives the GGML type a projection, the
    /// embedding or the output head (by its Hugging Face name) is kept in, or `None` for f32.
    pub fn allocate_with(
        gpu: &Gpu,
        config: &ModelConfig,
        quant: &dyn Fn(&str) -> Option<GgmlType>,
    ) -> Result<ModelWeights> {
        let (c, f) = (config.hidden_size, config.intermediate_size);
        let (qd, kvd) = (config.q_dim(), config.kv_dim());
        let (qkv_bias, o_bias) = (config.qkv_bias(), config.o_bias());
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = format!("model.layers.{i}");
            let lin = |name: &str, out, inp, bias| linear(gpu, &format!("{p}.{name}"), out, inp, bias, quant);
            layers.push(LayerWeights {
                input_layernorm: zeros(gpu, &format!("{p}.input_layernorm.weight"), &[c])?,
                q_proj: lin("self_attn.q_proj", qd, c, qkv_bias)?,
                k_proj: lin("self_attn.k_proj", kvd, c, qkv_bias)?,
                v_proj: lin("self_attn.v_proj", kvd, c, qkv_bias)?,
                o_proj: lin("self_attn.o_proj", c, qd, o_bias)?,
                post_attention_layernorm: zeros(gpu, &format!("{p}.post_attention_layernorm.weight"), &[c])?,
                gate_proj: lin("mlp.gate_proj", f, c, false)?,
                up_proj: lin("mlp.up_proj", f, c, false)?,
                down_proj: lin("mlp.down_proj", c, f, false)?,
            });
        }
        Ok(ModelWeights {
            embed_tokens: split(gpu, "model.embed_tokens.weight", config.vocab_size, c, quant)?,
            layers,
            norm: zeros(gpu, "model.norm.weight", &[c])?,
            lm_head: if config.tie_word_embeddings {
                None
            } else {
                Some(split(gpu, "lm_head.weight", config.vocab_size, c, quant)?)
            },
        })
    }

    /// Every weight with its Hugging Face name, in checkpoint order (handles to the buffers).
    pub fn named(&self) -> Vec<(String, Weight)> {
        let f32 = |t: &Tensor| Weight::F32(t.clone());
        let mut out = vec![("model.embed_tokens.weight".to_string(), Weight::Split(self.embed_tokens.clone()))];
        for (i, l) in self.layers.iter().enumerate() {
            let p = format!("model.layers.{i}");
            out.push((format!("{p}.input_layernorm.weight"), f32(&l.input_layernorm)));
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
                out.push((format!("{p}.{name}.weight"), lin.weight.clone()));
                if let Some(b) = &lin.bias {
                    out.push((format!("{p}.{name}.bias"), f32(b)));
                }
            }
            out.push((format!("{p}.post_attention_layernorm.weight"), f32(&l.post_attention_layernorm)));
        }
        out.push(("model.norm.weight".to_string(), f32(&self.norm)));
        if let Some(h) = &self.lm_head {
            out.push(("lm_head.weight".to_string(), Weight::Split(h.clone())));
        }
        out
    }

    /// The weight called `name`, if the model has one.
    pub fn get(&self, name: &str) -> Option<Weight> {
        self.named().into_iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// The f32 tensor called `name`; an error when there is none, or it is split or quantized.
    pub fn get_f32(&self, name: &str) -> Result<Tensor> {
        let err = |detail: &str| Error::Tensor { name: name.into(), detail: detail.into() };
        match self.get(name) {
            None => Err(err("the model has no such tensor")),
            Some(w @ Weight::Quant(_)) => Err(w.not_f32(name)),
            Some(Weight::Split(_)) => Err(err("split by rows into parts; read it as a Weight")),
            Some(Weight::F32(t)) => Ok(t),
        }
    }

    /// Writes f32 values into the f32 or split weight `name`, checking its shape.
    pub fn write(&self, gpu: &Gpu, name: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        let w = self
            .get(name)
            .ok_or_else(|| Error::Tensor { name: name.into(), detail: "the model has no such tensor".into() })?;
        if w.shape() != shape {
            return Err(Error::Tensor {
                name: name.into(),
                detail: format!("shape {shape:?}, the config says {:?}", w.shape()),
            });
        }
        w.write_f32(gpu, name, data)
    }

    /// The output projection (V, C): lm_head, or the embedding when tied.
    pub fn output(&self) -> &SplitTensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// Whether any weight is kept in a GGML type rather than f32.
    pub fn is_quantized(&self) -> bool {
        self.named().iter().any(|(_, w)| w.ty() != GgmlType::F32)
    }

    /// Bytes the weights take on the GPU.
    pub fn gpu_bytes(&self) -> u64 {
        self.named().iter().map(|(_, w)| w.gpu_bytes()).sum()
    }

    fn projections(&self) -> impl Iterator<Item = &Linear> {
        let l = self.layers.iter();
        l.flat_map(|l| [&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj])
    }

    /// Bytes the seven projections of every layer take on the GPU.
    pub fn projection_gpu_bytes(&self) -> u64 {
        self.projections().map(|lin| lin.weight.gpu_bytes()).sum()
    }

    /// The most rows of a part of a projection split by output rows; 0 when none is split.
    pub fn projection_part_rows(&self) -> usize {
        let parts = self.projections().filter_map(|lin| match &lin.weight {
            Weight::Split(s) => Some(s.part_rows()),
            _ => None,
        });
        parts.max().unwrap_or(0)
    }
}
