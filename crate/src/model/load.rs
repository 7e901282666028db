//! Base models in: a llama.cpp GGUF file or a Hugging Face folder (config.json and safetensors,
//! sharded or not), streamed tensor by tensor onto the GPU. The projections of a GGUF file stay
//! in their GGML format on the GPU where the kernels support it ([`LoadOptions`]); every other
//! weight is dequantized to f32 on the way, a few rows at a time. GGUF's Q/K row permutation is
//! undone on the file's bytes, whole rows of blocks at a time, so one RoPE convention serves
//! every format.

use std::collections::{HashMap, HashSet};

use super::{Model, ModelConfig, ModelWeights};
use crate::data::TemplateSource;
use crate::error::{Error, Result};
use crate::gpu::{Gpu, QuantTensor};
use crate::io::{gguf_to_hf_qk_rows, GgmlType, GgufEvent, GgufHeader, GgufReader, SafetensorsEvent, SafetensorsReader};
use crate::tokenizer::Tokenizer;

/// The Hugging Face config of a GGUF model, from its metadata (llama and qwen2 architectures).
pub fn config_from_gguf(h: &GgufHeader) -> Result<ModelConfig> {
    let arch = h.architecture()?;
    if arch != "llama" && arch != "qwen2" {
        return Err(Error::Config(format!("{}: architecture {arch:?} is not supported (llama, qwen2)", h.file)));
    }
    let key = |k: &str| format!("{arch}.{k}");
    let heads = h.get_u64(&key("attention.head_count"))?;
    let kv_heads = if h.get(&key("attention.head_count_kv")).is_some() {
        h.get_u64(&key("attention.head_count_kv"))?
    } else {
        heads
    };
    let hidden = h.get_u64(&key("embedding_length"))?;
    let head_dim = if h.get(&key("attention.key_length")).is_some() {
        h.get_u64(&key("attention.key_length"))?
    } else {
        hidden / heads.max(1)
    };
    let embd = h
        .tensor("token_embd.weight")
        .ok_or_else(|| Error::Tensor { name: format!("{}: token_embd.weight", h.file), detail: "missing".into() })?;
    let vocab = embd.shape().first().copied().unwrap_or(0);
    let theta =
        if h.get(&key("rope.freq_base")).is_some() { h.get_f32(&key("rope.freq_base"))? as f64 } else { 10000.0 };
    let mut rope = serde_json::json!({ "rope_type": "default", "rope_theta": theta });
    if h.get(&key("rope.scaling.type")).is_some() {
        let kind = h.get_str(&key("rope.scaling.type"))?;
        if kind != "none" {
            rope["rope_type"] = kind.into();
            rope["factor"] = (h.get_f32(&key("rope.scaling.factor"))? as f64).into();
        }
    }
    if h.tensor("rope_freqs.weight").is_some() {
        return Err(Error::Config(format!(
            "{}: rope_freqs.weight (Llama 3.1 frequency factors) is not supported yet",
            h.file
        )));
    }
    let json = serde_json::json!({
        "model_type": arch,
        "hidden_size": hidden,
        "intermediate_size": h.get_u64(&key("feed_forward_length"))?,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "num_hidden_layers": h.get_u64(&key("block_count"))?,
        "rms_norm_eps": h.get_f32(&key("attention.layer_norm_rms_epsilon"))?,
        "rope_parameters": rope,
        "vocab_size": vocab,
        "tie_word_embeddings": h.tensor("output.weight").is_none(),
        "max_position_embeddings": h.get_u64(&key("context_length"))?,
    });
    ModelConfig::from_json(&json.to_string(), &h.file)
}

/// The Hugging Face name of a GGUF tensor.
pub fn hf_name(gguf: &str) -> Option<String> {
    match gguf {
        "token_embd.weight" => return Some("model.embed_tokens.weight".into()),
        "output_norm.weight" => return Some("model.norm.weight".into()),
        "output.weight" => return Some("lm_head.weight".into()),
        _ => {}
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let hf = match module {
        "attn_norm" => "input_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_norm" => "post_attention_layernorm",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{hf}.{suffix}"))
}

/// How a loader keeps the weights on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoadOptions {
    /// Keep each projection (q, k, v, o, gate, up, down), the embedding and the output head in
    /// the file's type when the kernels support it (f16, bf16, Q8_0, Q4_0, Q4_1, Q4_K, Q6_K,
    /// with the row length a multiple of the block size): a GGUF file's types as they are, a
    /// Hugging Face folder's as its config's `dtype` says (float16 or bfloat16; a tensor of
    /// another type is rounded to it, as transformers does). A Q4 weight takes about a quarter
    /// of its f16 size, an f16 one half its f32 size. Otherwise, and for norms and biases,
    /// weights are f32.
    pub keep_quantized: bool,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions { keep_quantized: true }
    }
}

impl LoadOptions {
    /// Every weight as f32.
    pub fn dequantized() -> Self {
        LoadOptions { keep_quantized: false }
    }
}

const PROJECTIONS: [&str; 7] = [
    "self_attn.q_proj.weight",
    "self_attn.k_proj.weight",
    "self_attn.v_proj.weight",
    "self_attn.o_proj.weight",
    "mlp.gate_proj.weight",
    "mlp.up_proj.weight",
    "mlp.down_proj.weight",
];

/// The GGML type weight `name` (Hugging Face) of `shape`, `ty` in the file, is kept in on the
/// GPU, or `None` for f32.
fn kept_type(opts: LoadOptions, name: &str, ty: GgmlType, shape: &[usize]) -> Option<GgmlType> {
    let large = PROJECTIONS.iter().any(|p| name.ends_with(p))
        || name == "model.embed_tokens.weight"
        || name == "lm_head.weight";
    let fits = matches!(shape, [rows, cols] if *rows > 0 && cols.is_multiple_of(QuantTensor::col_multiple(ty)));
    (opts.keep_quantized && large && QuantTensor::supports(ty) && fits).then_some(ty)
}

/// The GGML type each weight of a GGUF file (by Hugging Face name) is kept in on the GPU; the
/// others are f32.
pub fn gguf_kept_types(h: &GgufHeader, opts: LoadOptions) -> HashMap<String, GgmlType> {
    h.tensors
        .iter()
        .filter_map(|t| {
            let name = hf_name(&t.name)?;
            let shape: Vec<usize> = t.shape().iter().map(|&d| d as usize).collect();
            Some((name.clone(), kept_type(opts, &name, t.ty, &shape)?))
        })
        .collect()
}

/// The GGML type weight `name` of a Hugging Face folder with `config` is kept in on the GPU, or
/// `None` for f32.
pub fn hf_kept_type(config: &ModelConfig, options: LoadOptions, name: &str) -> Option<GgmlType> {
    // Rows run along the layer's input: the FFN width for down, the query width for o.
    let cols = match name {
        n if n.ends_with("mlp.down_proj.weight") => config.intermediate_size,
        n if n.ends_with("self_attn.o_proj.weight") => config.q_dim(),
        _ => config.hidden_size,
    };
    kept_type(options, name, config.stored_type()?, &[1, cols])
}

/// The memory a model of GGUF header `header` takes on a device with `limits`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn gguf_memory(
    header: &GgufHeader,
    options: LoadOptions,
    limits: &super::memory::Limits,
) -> Result<super::ModelMemory> {
    let config = config_from_gguf(header)?;
    let kept = gguf_kept_types(header, options);
    let weights = super::memory::WeightMemory::plan(&config, &|n| kept.get(n).copied(), limits)?;
    Ok(super::ModelMemory { config, weights })
}

/// The memory a Hugging Face model of config.json `text` (from `file`) takes on a device with
/// `limits`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn hf_memory(
    text: &str,
    file: &str,
    options: LoadOptions,
    limits: &super::memory::Limits,
) -> Result<super::ModelMemory> {
    let config = ModelConfig::from_json(text, file)?;
    let weights = super::memory::WeightMemory::plan(&config, &|n| hf_kept_type(&config, options, n), limits)?;
    Ok(super::ModelMemory { config, weights })
}

/// Checks, converts and uploads tensors as they arrive in file order, and remembers which came.
pub struct WeightSink {
    /// (NH, NKV) when Q/K rows come in llama.cpp's permuted order.
    permuted_qk: Option<(usize, usize)>,
    file: String,
    seen: HashSet<String>,
}

impl WeightSink {
    pub fn new(config: &ModelConfig, file: &str, gguf_permuted: bool) -> Self {
        let permuted_qk = gguf_permuted.then(|| (config.num_attention_heads, config.n_kv_heads()));
        WeightSink { permuted_qk, file: file.to_string(), seen: HashSet::new() }
    }

    /// One tensor: `name` (Hugging Face), row-major `shape`, raw `bytes` of GGML type `ty`.
    pub fn tensor(
        &mut self,
        gpu: &Gpu,
        weights: &ModelWeights,
        name: &str,
        shape: &[usize],
        ty: GgmlType,
        bytes: &[u8],
    ) -> Result<()> {
        let err = |detail: String| Error::Tensor { name: format!("{}: {name}", self.file), detail };
        let Some(target) = weights.get(name) else {
            return Err(err("the model has no such tensor".into()));
        };
        if target.shape() != shape {
            return Err(err(format!("shape {shape:?}, the config says {:?}", target.shape())));
        }
        if !self.seen.insert(name.to_string()) {
            return Err(err("appears twice".into()));
        }
        let is_q = name.ends_with("self_attn.q_proj.weight") || name.ends_with("self_attn.q_proj.bias");
        let is_k = name.ends_with("self_attn.k_proj.weight") || name.ends_with("self_attn.k_proj.bias");
        let moved;
        let bytes = match (self.permuted_qk, is_q || is_k) {
            (Some((nh, nkv)), true) => {
                let cols = shape.get(1).copied().unwrap_or(1);
                moved = gguf_to_hf_qk_rows(name, bytes, ty, shape[0], cols, if is_q { nh } else { nkv })?;
                &moved[..]
            }
            _ => bytes,
        };
        target.write_ggml(gpu, name, ty, bytes)
    }

    /// Checks that every tensor of the model arrived.
    pub fn finish(self, weights: &ModelWeights) -> Result<()> {
        for (name, _) in weights.named() {
            if !self.seen.contains(&name) {
                return Err(Error::Tensor {
                    name: format!("{}: {name}", self.file),
                    detail: "missing from the file".into(),
                });
            }
        }
        Ok(())
    }
}

/// Builds a [`Model`] from a GGUF byte stream fed in chunks of any size (a file read in pieces, a
/// browser `ReadableStream`): the header makes the config and allocates the weights, then each
/// tensor is converted and uploaded as soon as its bytes are complete.
pub struct GgufLoader {
    file: String,
    options: LoadOptions,
    reader: GgufReader,
    model: Option<(ModelConfig, ModelWeights, WeightSink)>,
}

impl GgufLoader {
    /// A loader for the file named `file` (used in messages), of `total` bytes when known, with
    /// the default [`LoadOptions`] (projections kept quantized).
    pub fn new(file: &str, total: Option<u64>) -> Self {
        Self::with_options(file, total, LoadOptions::default())
    }

    /// A loader that keeps the weights as `options` says.
    pub fn with_options(file: &str, total: Option<u64>, options: LoadOptions) -> Self {
        GgufLoader { file: file.to_string(), options, reader: GgufReader::new(file, total), model: None }
    }

    /// The file's header, once its bytes have arrived.
    pub fn header(&self) -> Option<&GgufHeader> {
        self.reader.header()
    }

    pub fn feed(&mut self, gpu: &Gpu, chunk: &[u8]) -> Result<()> {
        let (file, opts, model) = (&self.file, self.options, &mut self.model);
        self.reader.feed(chunk, |ev| on_gguf_event(gpu, file, opts, model, ev))
    }

    /// Ends the stream; fails when it was cut short or a tensor of the model never came.
    pub fn finish(mut self, gpu: &Gpu) -> Result<(Model, GgufHeader)> {
        let (file, opts, model) = (&self.file, self.options, &mut self.model);
        self.reader.finish(|ev| on_gguf_event(gpu, file, opts, model, ev))?;
        let (config, weights, sink) = self.model.take().expect("finish succeeded, so the header was parsed");
        sink.finish(&weights)?;
        let header = self.reader.into_header().expect("finish succeeded, so the header was parsed");
        Ok((Model { config, weights }, header))
    }
}

fn on_gguf_event(
    gpu: &Gpu,
    file: &str,
    opts: LoadOptions,
    model: &mut Option<(ModelConfig, ModelWeights, WeightSink)>,
    ev: GgufEvent<'_>,
) -> Result<()> {
    match ev {
        GgufEvent::Header(h) => {
            let config = config_from_gguf(h)?;
            let kept = gguf_kept_types(h, opts);
            let weights = ModelWeights::allocate_with(gpu, &config, &|name| kept.get(name).copied())?;
            let sink = WeightSink::new(&config, file, config.model_type.as_deref() == Some("llama"));
            *model = Some((config, weights, sink));
            Ok(())
        }
        GgufEvent::Tensor { info, bytes } => {
            let (_, weights, sink) = model.as_mut().expect("the header comes before any tensor");
            let name = hf_name(&info.name).ok_or_else(|| Error::Tensor {
                name: format!("{file}: {}", info.name),
                detail: "not a tensor of a llama-family model".into(),
            })?;
            let shape: Vec<usize> = info.shape().iter().map(|&d| d as usize).collect();
            sink.tensor(gpu, weights, &name, &shape, info.ty, bytes)
        }
    }
}

/// Builds a [`Model`] from a Hugging Face config.json and its safetensors files, each streamed in
/// chunks of any size in turn.
pub struct HfLoader {
    config: ModelConfig,
    weights: ModelWeights,
    sink: WeightSink,
    reader: Option<SafetensorsReader>,
}

impl HfLoader {
    /// Allocates the weights that `config_json` (read from `folder`, used in messages) describes,
    /// kept as `options` says.
    pub fn new(gpu: &Gpu, folder: &str, config_json: &str, options: LoadOptions) -> Result<HfLoader> {
        let config = ModelConfig::from_json(config_json, &format!("{folder}/config.json"))?;
        let kept = |name: &str| hf_kept_type(&config, options, name);
        let weights = ModelWeights::allocate_with(gpu, &config, &kept)?;
        let sink = WeightSink::new(&config, folder, false);
        Ok(HfLoader { config, weights, sink, reader: None })
    }

    /// Starts the next safetensors file, named `file`, of `total` bytes when known.
    pub fn begin_file(&mut self, file: &str, total: Option<u64>) {
        self.reader = Some(SafetensorsReader::new(file, total));
    }

    pub fn feed(&mut self, gpu: &Gpu, chunk: &[u8]) -> Result<()> {
        let Some(reader) = &mut self.reader else {
            return Err(Error::State("a safetensors chunk came before begin_file".into()));
        };
        let (weights, sink) = (&self.weights, &mut self.sink);
        reader.feed(chunk, |ev| on_safetensors_event(gpu, weights, sink, ev))
    }

    /// Ends the current file; fails when it was cut short.
    pub fn end_file(&mut self, gpu: &Gpu) -> Result<()> {
        let Some(mut reader) = self.reader.take() else { return Ok(()) };
        let (weights, sink) = (&self.weights, &mut self.sink);
        reader.finish(|ev| on_safetensors_event(gpu, weights, sink, ev))
    }

    /// The model, when every one of its tensors has come.
    pub fn finish(mut self, gpu: &Gpu) -> Result<Model> {
        self.end_file(gpu)?;
        self.sink.finish(&self.weights)?;
        Ok(Model { config: self.config, weights: self.weights })
    }
}

fn on_safetensors_event(
    gpu: &Gpu,
    weights: &ModelWeights,
    sink: &mut WeightSink,
    ev: SafetensorsEvent<'_>,
) -> Result<()> {
    let SafetensorsEvent::Tensor { info, bytes } = ev else { return Ok(()) };
    let shape: Vec<usize> = info.shape.iter().map(|&d| d as usize).collect();
    sink.tensor(gpu, weights, &info.name, &shape, info.ty, bytes)
}

/// The tokenizer of a Hugging Face folder: `tokenizer.json` (named `file` in messages) with the
/// special tokens of `tokenizer_config.json` and the end-of-generation ids of
/// `generation_config.json`, when there are those; also the chat template of
/// `tokenizer_config.json` (the default one; a folder's `chat_template.jinja` comes first, see
/// [`TemplateSource::from_hf`]).
pub fn tokenizer_from_hf(
    file: &str,
    json: &[u8],
    config_json: Option<&str>,
    generation_json: Option<&str>,
) -> Result<(Tokenizer, Option<TemplateSource>)> {
    let err = |e: crate::tokenizer::TokenizerError| Error::Tokenizer(e.to_string());
    let mut tok = Tokenizer::from_json(file, json).map_err(err)?;
    let mut template = None;
    if let Some(text) = config_json {
        let cfg: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("{file}: tokenizer_config.json: {e}")))?;
        template = TemplateSource::from_hf(None, None, Some(text), None)?;
        let id = |key: &str| {
            cfg.get(key)
                .and_then(|v| v.as_str().or_else(|| v.get("content").and_then(|c| c.as_str())))
                .and_then(|t| tok.token_to_id(t))
        };
        let (bos, eos, pad) = (id("bos_token"), id("eos_token"), id("pad_token"));
        tok.special.bos = bos.or(tok.special.bos);
        tok.special.eos = eos.or(tok.special.eos);
        tok.special.pad = pad.or(tok.special.pad);
        tok.special.add_bos = cfg.get("add_bos_token").and_then(|v| v.as_bool()).unwrap_or(false);
    }
    if let Some(text) = generation_json {
        let cfg: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("{file}: generation_config.json: {e}")))?;
        let ids = match cfg.get("eos_token_id") {
            Some(serde_json::Value::Array(list)) => list.iter().filter_map(|v| v.as_u64()).collect(),
            Some(v) => v.as_u64().into_iter().collect(),
            None => Vec::new(),
        };
        tok.special.stop = ids.into_iter().filter_map(|id| u32::try_from(id).ok()).collect();
    }
    Ok((tok, template))
}

/// The tokenizer and (default) chat template of a GGUF file's metadata.
pub fn tokenizer_from_gguf(header: &GgufHeader) -> Result<(Tokenizer, Option<TemplateSource>)> {
    let tok = Tokenizer::from_gguf(header).map_err(|e| Error::Tokenizer(e.to_string()))?;
    Ok((tok, TemplateSource::from_gguf(header, None)?))
}

#[cfg(not(target_arch = "wasm32"))]
pub use super::source::{
    load_from, load_gguf, load_gguf_with, load_hf_folder, load_model, load_model_with, load_tokenizer,
    load_tokenizer_and_template, model_memory, tokenizer_and_template, tokenizer_from, ModelSource,
};
