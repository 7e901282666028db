//! The browser build's JavaScript interface: a thin, typed facade over the same library the CLI
//! uses. One [`Engine`] holds the GPU, the base model, the data, the training run and the adapter
//! library ([`adapters`]); the `weblora` npm package drives it from a Web Worker. Model bytes are
//! pushed in chunks as they arrive from a `ReadableStream` (a `fetch` body or `Blob.stream()`), so
//! the page never holds a whole model file. Errors become JavaScript `Error`s with the library's
//! messages.
//!
//! Calls must not overlap: the worker runs them one at a time (an overlapping call fails with
//! a "busy" error rather than corrupting state). That is why an async call may hold the state
//! across its awaits.
#![allow(clippy::await_holding_refcell_ref)]

mod adapters;

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::data::{self, ChatTemplate, Prepared, TemplateSource};
use crate::error::{Error, Result};
use crate::gpu::{DeviceLimits, Gpu, GpuOptions, KernelChoice};
use crate::lora::{gguf::gguf_lora_bytes, peft, Lora};
use crate::model::load::{tokenizer_from_gguf, tokenizer_from_hf, GgufLoader, HfLoader, LoadOptions};
use crate::model::memory::Limits;
use crate::model::{parse_model_url, Model, ModelMemory, RemoteKind};
use crate::tokenizer::Tokenizer;
use crate::train::settings::camel;
use crate::train::{Checkpoint, DataSettings, Fingerprint, Run, RunMeta, TrainSettings};
use adapters::{AdapterChoice, Stored};

/// A model on its way in (one at a time, so the variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum Loading {
    Gguf(GgufLoader),
    Hf { loader: HfLoader, tokenizer: Tokenizer, template: Option<crate::data::TemplateSource> },
}

/// A loaded base model with its tokenizer.
struct Base {
    name: String,
    model: Model,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    is_gguf: bool,
}

struct State {
    gpu: Gpu,
    loading: Option<Loading>,
    base: Option<Base>,
    /// The dataset, the settings it was read with, and its file's fingerprint.
    data: Option<(Prepared, DataSettings, Fingerprint)>,
    run: Option<(Run, Lora)>,
    /// The adapter library for the loaded base, apart from the run (see [`adapters`]).
    adapters: Vec<Stored>,
}

impl State {
    fn base(&self) -> Result<&Base> {
        self.base.as_ref().ok_or_else(|| Error::State("no model is loaded".into()))
    }

    fn run(&mut self) -> Result<&mut (Run, Lora)> {
        self.run.as_mut().ok_or_else(|| Error::State("no training run has been started".into()))
    }
}

/// A JavaScript `Error` with the library's message and a `kind` beside it ("setting", "io",
/// "run", "data", "load", "gpu", ...); a bad setting is named as the settings object names it.
/// What the facade's calls return: a JavaScript `Error` (see [`js_err`]) on failure.
type JsResult<T> = std::result::Result<T, JsValue>;

fn js_err(e: Error) -> JsValue {
    let message = match &e {
        Error::Setting { name, detail } => format!("{}: {detail}", camel(name)),
        other => other.to_string(),
    };
    let error = js_sys::Error::new(&message);
    let _ = js_sys::Reflect::set(&error, &"kind".into(), &e.kind().into());
    if let Error::Setting { name, .. } = &e {
        let _ = js_sys::Reflect::set(&error, &"setting".into(), &camel(name).into());
    }
    error.into()
}

fn from_js<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<T> {
    if value.is_undefined() || value.is_null() {
        return serde_json::from_str("{}").map_err(|e| Error::Input(format!("{what}: {e}")));
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| Error::Input(format!("{what}: {e}")))
}

/// A plain JavaScript object of `entries`.
fn js_object(entries: &[(&str, JsValue)]) -> Result<JsValue> {
    let out = js_sys::Object::new();
    for (key, value) in entries {
        js_sys::Reflect::set(&out, &(*key).into(), value)
            .map_err(|_| Error::Internal(format!("could not set {key} on a JavaScript object")))?;
    }
    Ok(out.into())
}

/// PEFT's two files as the package hands them on: `{"adapter_config.json": string,
/// "adapter_model.safetensors": Uint8Array}`.
fn peft_files_js(config: &str, safetensors: &[u8]) -> Result<JsValue> {
    js_object(&[
        ("adapter_config.json", config.into()),
        ("adapter_model.safetensors", Uint8Array::from(safetensors).into()),
    ])
}

/// A JavaScript array as a list of `T`; nothing given is an empty list.
fn from_js_list<T: for<'de> Deserialize<'de>>(value: JsValue, what: &str) -> Result<Vec<T>> {
    if value.is_undefined() || value.is_null() {
        return Ok(Vec::new());
    }
    serde_wasm_bindgen::from_value(value).map_err(|e| Error::Input(format!("{what}: {e}")))
}

#[derive(Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct GenerateSettings {
    max_new_tokens: usize,
    temperature: f32,
    top_k: usize,
    top_p: f32,
    seed: u64,
    /// `false`: the base alone; `true`: the adapter being trained; a name: that adapter of the
    /// library.
    adapter: AdapterChoice,
    /// Feed the prompt as it is, without the chat template.
    raw: bool,
}

impl Default for GenerateSettings {
    fn default() -> Self {
        GenerateSettings {
            max_new_tokens: 64,
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
            seed: 0,
            adapter: AdapterChoice::default(),
            raw: false,
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelInfo {
    name: String,
    architecture: String,
    layers: usize,
    hidden_size: usize,
    intermediate_size: usize,
    heads: usize,
    kv_heads: usize,
    vocab_size: usize,
    parameters: usize,
    gpu_bytes: u64,
    chat_template: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RunInfo {
    total_steps: usize,
    trainable_parameters: usize,
    has_eval: bool,
    step: usize,
}

impl RunInfo {
    fn of(run: &Run, lora: &Lora) -> RunInfo {
        RunInfo {
            total_steps: run.total_steps(),
            trainable_parameters: lora.num_params(),
            has_eval: run.has_eval(),
            step: run.trainer.step,
        }
    }
}

/// The engine behind the `weblora` npm package; see the module docs.
#[wasm_bindgen]
pub struct Engine {
    state: Rc<RefCell<State>>,
}

impl Engine {
    /// Runs `f` on the state; fails when another call holds it.
    fn with<T>(&self, f: impl FnOnce(&mut State) -> Result<T>) -> JsResult<T> {
        f(&mut *busy(&self.state).map_err(js_err)?).map_err(js_err)
    }

    /// A promise of `fut`, run on the state.
    fn spawn<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<RefCell<State>>) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<JsValue>> + 'static,
    {
        let state = self.state.clone();
        future_to_promise(async move { f(state).await.map_err(js_err) })
    }
}

/// Borrows the state mutably for an async call, or says it is busy.
fn busy(state: &Rc<RefCell<State>>) -> Result<std::cell::RefMut<'_, State>> {
    state.try_borrow_mut().map_err(|_| Error::State("the engine is busy with another call".into()))
}

/// `value` as a plain JavaScript object (maps as objects, 64-bit numbers as numbers).
fn serialize<T: Serialize>(value: &T) -> Result<JsValue> {
    value.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| Error::Internal(e.to_string()))
}

#[wasm_bindgen]
impl Engine {
    /// Opens the GPU through WebGPU with the matmul kernels `kernels` names: "auto" (the
    /// default: the CPU family on SwiftShader and other software adapters, the tiled family on
    /// GPUs), "tiled" or "cpu", and the limits `limits` names: "adapter" (the default: every
    /// limit the adapter offers) or "webgpu-default" (only WebGPU's defaults, as many phones and
    /// integrated GPUs offer). Fails with a message saying what to do when the browser has no
    /// WebGPU.
    pub async fn open(kernels: Option<String>, limits: Option<String>) -> JsResult<Engine> {
        console_error_panic_hook::set_once();
        let name = kernels.as_deref().unwrap_or("auto");
        let kernels = KernelChoice::from_name(name).ok_or_else(|| {
            js_err(Error::Setting {
                name: "kernels".into(),
                detail: format!("{name:?} is not one of {}", KernelChoice::NAMES),
            })
        })?;
        let name = limits.as_deref().unwrap_or("adapter");
        let limits = DeviceLimits::parse(name).map_err(|_| {
            js_err(Error::Setting {
                name: "limits".into(),
                detail: format!("{name:?} is not one of \"adapter\", \"webgpu-default\""),
            })
        })?;
        let options = GpuOptions { kernels, limits };
        let gpu = Gpu::with_options(options).await.map_err(|e| {
            let e: JsValue = js_sys::Error::new(&format!(
                "{e}. This page needs WebGPU: use a recent Chrome or Edge (on Linux start it with \
                 --enable-unsafe-webgpu), or Safari 26 / Firefox 141 or newer, with hardware acceleration on."
            ))
            .into();
            e
        })?;
        let state = State { gpu, loading: None, base: None, data: None, run: None, adapters: Vec::new() };
        Ok(Engine { state: Rc::new(RefCell::new(state)) })
    }

    /// Resolves with the message when the GPU device is lost (a crashed GPU process, a driver
    /// reset), so that a page can say so at once; nothing can run on it after that. Resolves
    /// with null when the device ends otherwise.
    #[wasm_bindgen(js_name = deviceLost)]
    pub fn device_lost(&self) -> JsResult<Promise> {
        let gpu = self.with(|st| Ok(st.gpu.clone()))?;
        Ok(future_to_promise(async move { Ok(gpu.lost().await.map(JsValue::from).unwrap_or(JsValue::NULL)) }))
    }

    /// The adapter: name, backend, features, limits and kernel family.
    #[wasm_bindgen(js_name = gpuInfo)]
    pub fn gpu_info(&self) -> JsResult<JsValue> {
        self.with(|st| {
            let i = &st.gpu.info;
            Ok(serde_json::json!({
                "name": i.name, "backend": i.backend, "deviceType": i.device_type, "shaderF16": i.shader_f16,
                "subgroups": i.subgroups, "maxStorageBinding": i.max_storage_binding, "maxBuffer": i.max_buffer,
                "kernels": i.kernels.name(),
            }))
        })
        .and_then(|v| serialize(&v).map_err(js_err))
    }

    /// Starts loading a GGUF file named `name` of `total` bytes (when known); its bytes follow
    /// through [`Engine::feed`]. Drops the model and run loaded before.
    #[wasm_bindgen(js_name = beginGguf)]
    pub fn begin_gguf(&self, name: &str, total: Option<f64>) -> JsResult<()> {
        self.with(|st| {
            st.run = None;
            st.base = None;
            st.adapters.clear();
            st.loading = Some(Loading::Gguf(GgufLoader::new(name, total.map(|t| t as u64))));
            Ok(())
        })
    }

    /// Starts loading a Hugging Face model `name` from its small files (the chat template from
    /// `chat_template.jinja` when the folder has one, else from `tokenizer_config.json`); the
    /// safetensors files follow, each through [`Engine::begin_file`], [`Engine::feed`] and [`Engine::end_file`].
    #[wasm_bindgen(js_name = beginHf)]
    pub fn begin_hf(
        &self,
        name: &str,
        config_json: &str,
        tokenizer_json: &[u8],
        tokenizer_config_json: Option<String>,
        generation_config_json: Option<String>,
        chat_template_jinja: Option<String>,
    ) -> JsResult<()> {
        self.with(|st| {
            st.run = None;
            st.base = None;
            st.adapters.clear();
            let (tokenizer, mut template) = tokenizer_from_hf(
                &format!("{name}/tokenizer.json"),
                tokenizer_json,
                tokenizer_config_json.as_deref(),
                generation_config_json.as_deref(),
            )?;
            // A folder's chat_template.jinja comes before tokenizer_config.json's, as in transformers.
            if chat_template_jinja.is_some() {
                let jinja = chat_template_jinja.as_deref();
                template = TemplateSource::from_hf(jinja, None, tokenizer_config_json.as_deref(), None)?;
            }
            let loader = HfLoader::new(&st.gpu, name, config_json, LoadOptions::default())?;
            st.loading = Some(Loading::Hf { loader, tokenizer, template });
            Ok(())
        })
    }

    /// Starts the next safetensors file of a Hugging Face model.
    #[wasm_bindgen(js_name = beginFile)]
    pub fn begin_file(&self, name: &str, total: Option<f64>) -> JsResult<()> {
        self.with(|st| match &mut st.loading {
            Some(Loading::Hf { loader, .. }) => {
                loader.begin_file(name, total.map(|t| t as u64));
                Ok(())
            }
            _ => Err(Error::State("begin_file: no Hugging Face model is being loaded".into())),
        })
    }

    /// The next chunk of the file being loaded.
    pub fn feed(&self, chunk: &[u8]) -> JsResult<()> {
        self.with(|st| match &mut st.loading {
            Some(Loading::Gguf(l)) => l.feed(&st.gpu, chunk),
            Some(Loading::Hf { loader, .. }) => loader.feed(&st.gpu, chunk),
            None => Err(Error::State("feed: no model is being loaded".into())),
        })
    }

    /// Ends the current safetensors file.
    #[wasm_bindgen(js_name = endFile)]
    pub fn end_file(&self) -> JsResult<()> {
        self.with(|st| match &mut st.loading {
            Some(Loading::Hf { loader, .. }) => loader.end_file(&st.gpu),
            _ => Err(Error::State("end_file: no Hugging Face model is being loaded".into())),
        })
    }

    /// Ends loading: checks that every tensor came, and returns what the model is.
    #[wasm_bindgen(js_name = finishModel)]
    pub fn finish_model(&self) -> JsResult<JsValue> {
        let info = self.with(|st| {
            let loading = st.loading.take().ok_or_else(|| Error::State("no model is being loaded".into()))?;
            let (name, model, tokenizer, template, is_gguf) = match loading {
                Loading::Gguf(l) => {
                    let name = l.header().map(|h| h.file.clone()).unwrap_or_default();
                    let (model, header) = l.finish(&st.gpu)?;
                    let (tok, template) = tokenizer_from_gguf(&header)?;
                    (name, model, tok, template, true)
                }
                Loading::Hf { loader, tokenizer, template } => {
                    let model = loader.finish(&st.gpu)?;
                    (String::new(), model, tokenizer, template, false)
                }
            };
            let template = template.as_ref().map(|src| ChatTemplate::from_source(&tokenizer, src)).transpose()?;
            let c = &model.config;
            let info = ModelInfo {
                name: name.clone(),
                architecture: c.model_type.clone().unwrap_or_else(|| "llama".into()),
                layers: c.num_hidden_layers,
                hidden_size: c.hidden_size,
                intermediate_size: c.intermediate_size,
                heads: c.num_attention_heads,
                kv_heads: c.n_kv_heads(),
                vocab_size: c.vocab_size,
                parameters: model.weights.named().iter().map(|(_, t)| t.numel()).sum(),
                gpu_bytes: model.weights.gpu_bytes(),
                chat_template: template.is_some(),
            };
            st.base = Some(Base { name, model, tokenizer, template, is_gguf });
            Ok(info)
        })?;
        serialize(&info).map_err(js_err)
    }

    /// Reads a dataset (JSONL, JSON, CSV/TSV or text, named `name`) with `settings`
    /// ([`DataSettings`]); returns its summary, with the first example's trained spans.
    #[wasm_bindgen(js_name = setData)]
    pub fn set_data(&self, name: &str, bytes: &[u8], settings: JsValue) -> JsResult<JsValue> {
        let summary = self.with(|st| {
            let s: DataSettings = from_js(settings, "data settings")?;
            let base = st.base()?;
            let options = s.data_options()?;
            let fallback;
            let template = match &base.template {
                Some(t) => t,
                None => {
                    fallback = ChatTemplate::for_model(&base.tokenizer, None)?;
                    &fallback
                }
            };
            let prepared = data::prepare((name, bytes), None, &base.tokenizer, Some(template), &options)?;
            if prepared.train.supervised_tokens() == 0 {
                return Err(crate::data::DataError::NoUsableExamples {
                    file: name.to_string(),
                    reason: "no supervised tokens to train on".into(),
                }
                .into());
            }
            let summary = serde_json::to_value(&prepared.summary).map_err(|e| Error::Internal(e.to_string()))?;
            st.run = None;
            st.data = Some((prepared, s, Fingerprint::of(name, bytes)));
            Ok(summary)
        })?;
        serialize(&summary).map_err(js_err)
    }

    /// The memory plan of a run with `settings` ([`TrainSettings`]) on the loaded model and data,
    /// before anything is allocated: `{setting, plan, other, limits, budget, fits, message}`
    /// (bytes) and `text`, the plan as `weblora train --dry-run` prints it.
    #[wasm_bindgen(js_name = memoryPlan)]
    pub fn memory_plan(&self, settings: JsValue) -> JsResult<JsValue> {
        let value = self.with(|st| {
            let s: TrainSettings = from_js(settings, "training settings")?;
            let base = st.base()?;
            let (prepared, _, _) = st.data.as_ref().ok_or_else(|| Error::State("no dataset is loaded".into()))?;
            let options = s.run_options(prepared.summary.seq_len)?;
            let (train, eval) = (&prepared.train.examples, &prepared.eval);
            let model = ModelMemory::of(&base.model);
            let memory = Run::memory_plan(&model, &s.lora_config()?, train, eval, &options, Limits::of(&st.gpu.info))?;
            let mut value = serde_json::to_value(&memory).map_err(|e| Error::Internal(e.to_string()))?;
            value["text"] = memory.to_string().into();
            Ok(value)
        })?;
        serialize(&value).map_err(js_err)
    }

    /// Starts a training run on the loaded model and data with `settings` ([`TrainSettings`]):
    /// a fresh adapter, initialized as PEFT does.
    #[wasm_bindgen(js_name = startRun)]
    pub fn start_run(&self, settings: JsValue) -> JsResult<JsValue> {
        let info = self.with(|st| {
            let s: TrainSettings = from_js(settings, "training settings")?;
            let base = st.base()?;
            let (prepared, data_settings, fingerprint) =
                st.data.as_ref().ok_or_else(|| Error::State("no dataset is loaded".into()))?;
            let options = s.run_options(prepared.summary.seq_len)?;
            let lora = Lora::new(&st.gpu, &base.model.config, s.lora_config()?)?;
            lora.init_peft_on(&st.gpu, &base.model, s.seed)?;
            let pad = data::pad_id(&base.tokenizer);
            let (train, eval) = (prepared.train.examples.clone(), prepared.eval.clone());
            let mut run = Run::new(&st.gpu, &base.model, &lora, train, eval, pad, &options)?;
            run.meta = Some(RunMeta {
                base_model: base.name.clone(),
                settings: s,
                data: data_settings.clone(),
                data_file: fingerprint.clone(),
            });
            let info = RunInfo::of(&run, &lora);
            st.run = Some((run, lora));
            Ok(info)
        })?;
        serialize(&info).map_err(js_err)
    }

    /// The next optimizer update (and an evaluation when one is due): resolves to the step's
    /// record `{step, loss, gradNorm, learningRate, tokens, batchTokens, epoch, eval, done,
    /// diverged, divergence (the message when diverged), checkpointDue, seconds, tokensPerSecond}`.
    pub fn step(&self) -> Promise {
        self.spawn(|state| async move {
            let mut st = busy(&state)?;
            let (run, _) = st.run()?;
            let done = run.step().await?;
            let r = &done.record;
            // A diverged update's loss or gradient norm is null (JSON has no NaN).
            serialize(&serde_json::json!({
                "step": r.step, "loss": r.loss, "gradNorm": r.grad_norm, "learningRate": r.learning_rate,
                "tokens": r.tokens, "batchTokens": done.batch_tokens, "epoch": done.epoch, "eval": done.eval,
                "done": run.is_done(), "diverged": done.diverged(), "checkpointDue": done.checkpoint_due,
                "seconds": done.seconds, "tokensPerSecond": done.tokens_per_second,
                "divergence": if done.diverged() { Some(done.divergence()) } else { None },
            }))
        })
    }

    /// Continues `prompt` with the base model, the adapter being trained, or a library adapter
    /// (`settings.adapter`: false, true or a name); resolves to `{text, tokens}`.
    pub fn generate(&self, prompt: String, settings: JsValue) -> Promise {
        self.spawn(|state| async move {
            let s: GenerateSettings = from_js(settings, "generation settings")?;
            let st = busy(&state)?;
            let lora = st.chosen(&s.adapter)?;
            let answers = adapters::answers(&st.gpu, st.base()?, &[lora], &prompt, &s).await?;
            let (text, tokens) = &answers[0];
            serialize(&serde_json::json!({ "text": text, "tokens": tokens }))
        })
    }

    /// The adapter as PEFT files: resolves to `{"adapter_config.json": string,
    /// "adapter_model.safetensors": Uint8Array}`.
    #[wasm_bindgen(js_name = exportPeft)]
    pub fn export_peft(&self) -> Promise {
        self.spawn(|state| async move {
            let mut st = busy(&state)?;
            let name = st.base()?.name.clone();
            let gpu = st.gpu.clone();
            let (_, lora) = st.run()?;
            let config = serde_json::to_string_pretty(&peft::adapter_config_json(&lora.config, &name))
                .map_err(|e| Error::Internal(e.to_string()))?;
            peft_files_js(&config, &lora.peft_safetensors(&gpu).await?)
        })
    }

    /// The adapter as a llama.cpp GGUF LoRA file (GGUF base models only).
    #[wasm_bindgen(js_name = exportGguf)]
    pub fn export_gguf(&self) -> Promise {
        self.spawn(|state| async move {
            let mut st = busy(&state)?;
            let base = st.base()?;
            if !base.is_gguf {
                return Err(Error::State("a GGUF adapter needs a GGUF base model".into()));
            }
            let config = base.model.config.clone();
            let gpu = st.gpu.clone();
            let (_, lora) = st.run()?;
            let bytes = gguf_lora_bytes(&gpu, lora, &config).await?;
            Ok(Uint8Array::from(bytes.as_slice()).into())
        })
    }

    /// The run's checkpoint: resolves to an object of file name → bytes (`adapter_config.json`,
    /// `adapter_model.safetensors`, `optimizer.safetensors`, `trainer_state.json`).
    pub fn checkpoint(&self) -> Promise {
        self.spawn(|state| async move {
            let mut st = busy(&state)?;
            let name = st.base()?.name.clone();
            let (run, _) = st.run()?;
            let ckpt = run.checkpoint(&name).await?;
            let files: Vec<_> = Checkpoint::FILES
                .iter()
                .enumerate()
                .map(|(i, f)| (*f, Uint8Array::from(ckpt.file(i)).into()))
                .collect();
            js_object(&files)
        })
    }

    /// Continues the started run from a checkpoint's files (`adapter_config.json`,
    /// `adapter_model.safetensors`, `optimizer.safetensors`, `trainer_state.json`), which must
    /// come from a run with the same settings and data; returns the run's state.
    pub fn restore(
        &self,
        adapter_config: &[u8],
        adapter: &[u8],
        optimizer: &[u8],
        trainer_state: &[u8],
    ) -> JsResult<JsValue> {
        let info = self.with(|st| {
            let (run, lora) = st.run()?;
            let files = [adapter_config.to_vec(), adapter.to_vec(), optimizer.to_vec(), trainer_state.to_vec()];
            let ckpt = Checkpoint::from_files("checkpoint", files)?;
            let saved = ckpt.parse_state("checkpoint")?;
            if let (Some(then), Some(now)) = (&saved.run, &run.meta) {
                then.data_file.check(&now.data_file)?;
                let every = |_: &str| true;
                now.data.resume_from(&then.data, &every)?;
                now.settings.resume_from(&then.settings, &every)?;
            }
            run.restore("checkpoint", &ckpt)?;
            Ok(RunInfo::of(run, lora))
        })?;
        serialize(&info).map_err(js_err)
    }

    /// What a model URL or Hugging Face repo id names (`model::parse_model_url`), relative URLs
    /// read against `base`: `{kind: "gguf" | "folder", url, name}`.
    #[wasm_bindgen(js_name = resolveModelUrl)]
    pub fn resolve_model_url(text: &str, base: Option<String>) -> JsResult<JsValue> {
        let m = parse_model_url(text, base.as_deref()).map_err(js_err)?;
        let kind = match m.kind {
            RemoteKind::Gguf => "gguf",
            RemoteKind::Folder => "folder",
        };
        serialize(&serde_json::json!({ "kind": kind, "url": m.url, "name": m.name })).map_err(js_err)
    }

    /// Every training and data setting as a form shows it (`train::settings_table`): name,
    /// group, help, default, kind, choices, range.
    #[wasm_bindgen(js_name = settingsTable)]
    pub fn settings_table() -> JsResult<JsValue> {
        serialize(&crate::train::settings_table()).map_err(js_err)
    }

    /// The names of a checkpoint's files, in the order [`Engine::restore`] takes them.
    #[wasm_bindgen(js_name = checkpointFiles)]
    pub fn checkpoint_files() -> Vec<String> {
        Checkpoint::FILES.iter().map(|f| f.to_string()).collect()
    }

    /// Checks training settings without starting anything: resolves nothing, throws the error
    /// a run would give (with `kind` "setting" and the setting's name).
    #[wasm_bindgen(js_name = checkSettings)]
    pub fn check_settings(settings: JsValue, data_settings: JsValue) -> JsResult<()> {
        let s: TrainSettings = from_js(settings, "training settings").map_err(js_err)?;
        s.validate().map_err(js_err)?;
        let d: DataSettings = from_js(data_settings, "data settings").map_err(js_err)?;
        d.validate().map_err(js_err)
    }
}
