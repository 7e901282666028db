//! The engine's adapter library: named adapters on the GPU for the loaded base model, kept apart
//! from the training run (which has its own adapter, gradients and moments). Every adapter
//! enters as PEFT's two files, whether imported or trained here and kept, so the library holds
//! exactly what a download gives. Answers come from one decoder that switches between the
//! chosen adapters ([`Decoder::with_adapters`]): the base is read once and nothing is recorded
//! again per adapter. Loading another base model empties the library; the package keeps its
//! files (in the origin's private storage) and loads them again.

use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;

use super::{busy, js_err, js_object, peft_files_js, serialize, Base, Engine, GenerateSettings, JsResult, State};
use crate::error::{Error, Result};
use crate::generate::{chat_prompt, generate, stop_tokens, Sampling};
use crate::gpu::Gpu;
use crate::lora::mix::{mix_cat, HostAdapter};
use crate::lora::{peft, Lora};
use crate::model::decode::Decoder;

/// An adapter of the library.
pub(super) struct Stored {
    name: String,
    lora: Lora,
    /// adapter_config.json's `base_model_name_or_path`.
    base_model: Option<String>,
}

/// Which adapter answers: `false` the base alone, `true` the adapter being trained, or the name
/// of one in the library.
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(super) enum AdapterChoice {
    Run(bool),
    Named(String),
}

impl Default for AdapterChoice {
    fn default() -> Self {
        AdapterChoice::Run(false)
    }
}

/// What the library says of an adapter.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AdapterInfo<'a> {
    name: &'a str,
    r: usize,
    alpha: f32,
    targets: Vec<&'static str>,
    dora: bool,
    rslora: bool,
    parameters: usize,
    base_model: Option<&'a str>,
}

impl Stored {
    fn info(&self) -> AdapterInfo<'_> {
        let c = &self.lora.config;
        AdapterInfo {
            name: &self.name,
            r: c.r,
            alpha: c.alpha,
            targets: c.targets.iter().map(|t| t.hf_name()).collect(),
            dora: c.use_dora,
            rslora: c.use_rslora,
            parameters: self.lora.num_params(),
            base_model: self.base_model.as_deref(),
        }
    }

    /// The adapter on the host, read back from the GPU, as PEFT's files would give it.
    async fn host(&self, gpu: &Gpu) -> Result<HostAdapter> {
        let bytes = self.lora.peft_safetensors(gpu).await?;
        let config = peft::adapter_config_json(&self.lora.config, self.base_model.as_deref().unwrap_or_default());
        let config = serde_json::to_string(&config).map_err(|e| Error::Internal(e.to_string()))?;
        let files = file_names(&self.name);
        HostAdapter::parse(&self.name, &config, &files.0, &bytes, &files.1)
    }
}

/// The names an adapter's two files go by in errors: `name/adapter_config.json`,
/// `name/adapter_model.safetensors`.
fn file_names(name: &str) -> (String, String) {
    (format!("{name}/adapter_config.json"), format!("{name}/adapter_model.safetensors"))
}

/// An adapter's name in the library: what a file system takes as a folder name, since the
/// package keeps each adapter in a folder of that name.
fn check_name(name: &str) -> Result<()> {
    let bad = |detail: &str| Error::Setting { name: "name".into(), detail: format!("{name:?} {detail}") };
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(bad("must have 1 to 64 characters, not all spaces"));
    }
    if name == "." || name == ".." || name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(bad("must not be . or .., nor hold / \\ or control characters"));
    }
    Ok(())
}

impl State {
    fn stored(&self, name: &str) -> Result<&Stored> {
        self.adapters.iter().find(|a| a.name == name).ok_or_else(|| Error::Adapter {
            adapter: name.to_string(),
            detail: "is not in the library (load it first)".into(),
        })
    }

    /// The adapter `choice` names; `None` for the base alone.
    pub(super) fn chosen(&self, choice: &AdapterChoice) -> Result<Option<&Lora>> {
        match choice {
            AdapterChoice::Run(false) => Ok(None),
            AdapterChoice::Run(true) => match &self.run {
                Some((_, lora)) => Ok(Some(lora)),
                None => Err(Error::State("there is no adapter yet: start training first".into())),
            },
            AdapterChoice::Named(name) => Ok(Some(&self.stored(name)?.lora)),
        }
    }

    /// Puts `stored` in the library, in place of an adapter of the same name.
    fn keep(&mut self, stored: Stored) {
        match self.adapters.iter_mut().find(|a| a.name == stored.name) {
            Some(slot) => *slot = stored,
            None => self.adapters.push(stored),
        }
    }
}

/// Answers `prompt` with each of `slots` in turn (`None`: the base alone), from one decoder
/// that switches between them: `(text, new tokens)` for each.
pub(super) async fn answers(
    gpu: &Gpu,
    base: &Base,
    slots: &[Option<&Lora>],
    prompt: &str,
    s: &GenerateSettings,
) -> Result<Vec<(String, usize)>> {
    let template = if s.raw { None } else { base.template.as_ref() };
    let ids = chat_prompt(&base.tokenizer, template, prompt)?;
    let mut decoder = Decoder::with_adapters(gpu, &base.model, slots, ids.len() + s.max_new_tokens)?;
    let sampling = Sampling {
        max_new_tokens: s.max_new_tokens,
        temperature: s.temperature,
        top_k: s.top_k,
        top_p: s.top_p,
        seed: s.seed,
        stop: stop_tokens(&base.tokenizer),
    };
    let mut out = Vec::new();
    for i in 0..slots.len() {
        decoder.select(i)?;
        let tokens = generate(&decoder, &ids, &sampling).await?;
        let text = base.tokenizer.decode(&tokens, true).map_err(|e| Error::Tokenizer(e.to_string()))?;
        out.push((text, tokens.len()));
    }
    Ok(out)
}

/// One adapter of a mix and its weight.
#[derive(Deserialize)]
struct MixPart {
    name: String,
    weight: f32,
}

#[wasm_bindgen]
impl Engine {
    /// Puts an adapter in the library as `name` (in place of one of that name) from PEFT's files:
    /// adapter_config.json's text and adapter_model.safetensors' bytes. Fails, naming the file
    /// and tensor, when they do not fit the loaded base. Returns the adapter's
    /// `{name, r, alpha, targets, dora, rslora, parameters, baseModel}`.
    #[wasm_bindgen(js_name = loadAdapter)]
    pub fn load_adapter(&self, name: &str, config_json: &str, safetensors: &[u8]) -> JsResult<JsValue> {
        let info = self.with(|st| {
            check_name(name)?;
            let base = st.base()?;
            let files = file_names(name);
            let config = (config_json, files.0.as_str());
            let lora = peft::lora_from_peft_files(&st.gpu, &base.model.config, config, (safetensors, &files.1))?;
            let stored = Stored { name: name.to_string(), lora, base_model: peft::adapter_base_model(config_json) };
            st.keep(stored);
            serde_json::to_value(st.stored(name)?.info()).map_err(|e| Error::Internal(e.to_string()))
        })?;
        serialize(&info).map_err(js_err)
    }

    /// The library's adapters, in the order they came.
    #[wasm_bindgen(js_name = listAdapters)]
    pub fn list_adapters(&self) -> JsResult<JsValue> {
        let list = self.with(|st| Ok(serde_json::json!(st.adapters.iter().map(Stored::info).collect::<Vec<_>>())))?;
        serialize(&list).map_err(js_err)
    }

    /// Takes `name` out of the library; false when it was not there.
    #[wasm_bindgen(js_name = deleteAdapter)]
    pub fn delete_adapter(&self, name: &str) -> JsResult<bool> {
        self.with(|st| {
            let before = st.adapters.len();
            st.adapters.retain(|a| a.name != name);
            Ok(st.adapters.len() < before)
        })
    }

    /// Answers `prompt` with each of `adapters` (library names; null for the base alone) side
    /// by side, from one decoder over the base; `settings` as [`Engine::generate`] takes them.
    /// Resolves to `[{adapter, text, tokens}]`, in the order asked; each answer is the one
    /// `generate` gives with that adapter alone.
    pub fn compare(&self, prompt: String, adapters: JsValue, settings: JsValue) -> Promise {
        self.spawn(|state| async move {
            let names: Vec<Option<String>> = super::from_js_list(adapters, "adapters")?;
            let s: GenerateSettings = super::from_js(settings, "generation settings")?;
            if names.is_empty() {
                return Err(Error::Input("compare: give at least one adapter, or null for the base".into()));
            }
            let st = busy(&state)?;
            let base = st.base()?;
            let slots = names
                .iter()
                .map(|n| n.as_deref().map(|n| st.stored(n).map(|a| &a.lora)).transpose())
                .collect::<Result<Vec<_>>>()?;
            let out = answers(&st.gpu, base, &slots, &prompt, &s).await?;
            let list: Vec<_> = names
                .iter()
                .zip(out)
                .map(|(name, (text, tokens))| serde_json::json!({ "adapter": name, "text": text, "tokens": tokens }))
                .collect();
            serialize(&list)
        })
    }

    /// Mixes library adapters as PEFT's `add_weighted_adapter(..., combination_type="cat")`
    /// (`parts`: `[{name, weight}]`, two or more) into a new library adapter `name`. Resolves to
    /// `{adapter: its info, files: {"adapter_config.json": string, "adapter_model.safetensors":
    /// Uint8Array}}`.
    pub fn mix(&self, parts: JsValue, name: String) -> Promise {
        self.spawn(|state| async move {
            let parts: Vec<MixPart> = super::from_js_list(parts, "mix parts")?;
            check_name(&name)?;
            let mut st = busy(&state)?;
            let mut hosts = Vec::new();
            for p in &parts {
                hosts.push((st.stored(&p.name)?.host(&st.gpu).await?, p.weight));
            }
            let mixed = mix_cat(&hosts.iter().map(|(h, w)| (h, *w)).collect::<Vec<_>>())?;
            let (config, bytes) = mixed.peft_files()?;
            let model = &st.base()?.model.config;
            let files = file_names(&name);
            let lora = peft::lora_from_peft_files(&st.gpu, model, (&config, &files.0), (&bytes, &files.1))?;
            st.keep(Stored { name: name.clone(), lora, base_model: mixed.base_model.clone() });
            let info = serialize(&st.stored(&name)?.info())?;
            js_object(&[("adapter", info), ("files", peft_files_js(&config, &bytes)?)])
        })
    }
}
