//! Where a model's files come from natively: a local `.gguf` file or folder, or an HTTP(S) URL
//! of a `.gguf` file or of a folder (a URL ending in `/`, such as a Hugging Face `resolve/main/`
//! URL; a Hugging Face repo id `owner/name` that is not a local path means that). Every file is
//! read as a stream of chunks into the push-based loaders, with progress reported as it goes.

use std::io::Read;
use std::path::{Path, PathBuf};

use super::load::{gguf_memory, hf_memory, tokenizer_from_gguf, tokenizer_from_hf, GgufLoader, HfLoader, LoadOptions};
use super::location::{is_repo_id, parse_model_url, RemoteKind};
use super::memory::Limits;
use super::{Model, ModelMemory};
use crate::data::TemplateSource;
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::io::{read_chunks, read_gguf_header_from, Progress, SafetensorsIndex, DEFAULT_CHUNK_SIZE};
use crate::tokenizer::Tokenizer;

/// A model's location; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    GgufFile(PathBuf),
    Folder(PathBuf),
    GgufUrl(String),
    /// The base URL of a folder, ending in `/`.
    FolderUrl(String),
}

/// One open file: a reader, its length when known, and its name for messages.
struct Opened {
    reader: Box<dyn Read>,
    total: Option<u64>,
    name: String,
}

impl ModelSource {
    /// Reads a `--model` argument: a local file or folder first, then a URL or repo id as
    /// [`parse_model_url`] reads them (the browser's reading too).
    pub fn parse(spec: &str) -> Result<ModelSource> {
        let is_url = spec.starts_with("http://") || spec.starts_with("https://");
        let path = PathBuf::from(spec);
        if !is_url && path.is_dir() {
            return Ok(ModelSource::Folder(path));
        }
        if !is_url && path.exists() {
            return Ok(ModelSource::GgufFile(path));
        }
        if !is_url && !is_repo_id(spec) {
            return Err(Error::io(spec, std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or folder")));
        }
        let remote = parse_model_url(spec, None)?;
        Ok(match remote.kind {
            RemoteKind::Gguf => ModelSource::GgufUrl(remote.url),
            RemoteKind::Folder => ModelSource::FolderUrl(remote.url),
        })
    }

    /// Whether this is a GGUF file (else a folder).
    pub fn is_gguf(&self) -> bool {
        matches!(self, ModelSource::GgufFile(_) | ModelSource::GgufUrl(_))
    }

    /// How messages name it.
    pub fn name(&self) -> String {
        match self {
            ModelSource::GgufFile(p) | ModelSource::Folder(p) => p.display().to_string(),
            ModelSource::GgufUrl(u) | ModelSource::FolderUrl(u) => u.clone(),
        }
    }

    /// Opens the GGUF file, or the file `name` of the folder. A missing optional file is `None`.
    fn open(&self, file: Option<&str>, optional: bool) -> Result<Option<Opened>> {
        match (self, file) {
            (ModelSource::GgufFile(p), None) => open_path(p, optional),
            (ModelSource::Folder(dir), Some(f)) => open_path(&dir.join(f), optional),
            (ModelSource::GgufUrl(u), None) => open_url(u, optional),
            (ModelSource::FolderUrl(base), Some(f)) => open_url(&format!("{base}{f}"), optional),
            _ => Err(Error::io(
                self.name(),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    if file.is_some() { "not a folder" } else { "not a file" },
                ),
            )),
        }
    }

    fn open_required(&self, file: Option<&str>) -> Result<Opened> {
        Ok(self.open(file, false)?.expect("a required file is never None"))
    }

    fn read_text(&self, file: &str, optional: bool) -> Result<Option<String>> {
        let Some(mut f) = self.open(Some(file), optional)? else { return Ok(None) };
        let mut text = String::new();
        f.reader.read_to_string(&mut text).map_err(|e| Error::io(&f.name, e))?;
        Ok(Some(text))
    }
}

fn open_path(path: &Path, optional: bool) -> Result<Option<Opened>> {
    let name = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if optional && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let total = file.metadata().map_err(|e| Error::io(path, e))?.len();
    Ok(Some(Opened { reader: Box::new(file), total: Some(total), name }))
}

fn open_url(url: &str, optional: bool) -> Result<Option<Opened>> {
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let resp = agent.get(url).call().map_err(|e| Error::Http {
        url: url.into(),
        status: None,
        detail: format!("the download failed: {e}"),
    })?;
    let status = resp.status();
    if optional && status == 404 {
        return Ok(None);
    }
    if !status.is_success() {
        let code = status.as_u16();
        return Err(Error::Http {
            url: url.into(),
            status: Some(code),
            detail: format!("the server answered HTTP {status}"),
        });
    }
    let total = resp.headers().get("content-length").and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    let reader = resp.into_body().into_reader();
    Ok(Some(Opened { reader: Box::new(reader), total, name: url.to_string() }))
}

/// Reads `f` chunk by chunk into `feed`, reporting progress for its name.
fn stream(
    mut f: Opened,
    progress: &mut dyn FnMut(&str, Progress),
    mut feed: impl FnMut(&[u8]) -> Result<()>,
) -> Result<()> {
    let mut done = 0u64;
    let name = f.name.clone();
    let reader: &mut dyn Read = &mut f.reader;
    read_chunks(reader, &name, DEFAULT_CHUNK_SIZE, |chunk| {
        feed(chunk)?;
        done += chunk.len() as u64;
        progress(&name, Progress { consumed: done, total: f.total });
        Ok::<bool, Error>(true)
    })
}

/// Loads a model from `source`, calling `progress` as bytes arrive.
pub fn load_from(
    gpu: &Gpu,
    source: &ModelSource,
    options: LoadOptions,
    progress: &mut dyn FnMut(&str, Progress),
) -> Result<Model> {
    if source.is_gguf() {
        let f = source.open_required(None)?;
        let mut loader = GgufLoader::with_options(&f.name, f.total, options);
        stream(f, progress, |chunk| loader.feed(gpu, chunk))?;
        return Ok(loader.finish(gpu)?.0);
    }
    let config = source.read_text("config.json", false)?.unwrap_or_default();
    let mut loader = HfLoader::new(gpu, &source.name(), &config, options)?;
    let shards = match source.read_text("model.safetensors.index.json", true)? {
        Some(index) => {
            let name = format!("{}/model.safetensors.index.json", source.name());
            SafetensorsIndex::parse(&name, index.as_bytes())?.shards().into_iter().map(String::from).collect()
        }
        None => vec!["model.safetensors".to_string()],
    };
    for shard in shards {
        let f = source.open_required(Some(&shard))?;
        loader.begin_file(&f.name, f.total);
        stream(f, progress, |chunk| loader.feed(gpu, chunk))?;
        loader.end_file(gpu)?;
    }
    loader.finish(gpu)
}

/// The tokenizer and chat template text of `source`: a GGUF file's metadata (only its header is
/// read), or a folder's tokenizer.json, and its chat_template.jinja or tokenizer_config.json.
pub fn tokenizer_from(source: &ModelSource) -> Result<(Tokenizer, Option<String>)> {
    let (tok, template) = tokenizer_and_template(source, None)?;
    Ok((tok, template.map(|t| t.text)))
}

/// The tokenizer of `source` and its chat template named `name` (`None`: the default one),
/// found as transformers finds it (see [`TemplateSource::from_hf`]).
pub fn tokenizer_and_template(source: &ModelSource, name: Option<&str>) -> Result<(Tokenizer, Option<TemplateSource>)> {
    if !source.is_gguf() {
        let json = source.read_text("tokenizer.json", false)?.unwrap_or_default();
        let config = source.read_text("tokenizer_config.json", true)?;
        let generation = source.read_text("generation_config.json", true)?;
        let jinja = source.read_text("chat_template.jinja", true)?;
        let named = match name.filter(|n| *n != "default") {
            Some(n) => source.read_text(&format!("additional_chat_templates/{n}.jinja"), true)?,
            None => None,
        };
        let file = format!("{}/tokenizer.json", source.name());
        let (tok, _) = tokenizer_from_hf(&file, json.as_bytes(), config.as_deref(), generation.as_deref())?;
        let template = TemplateSource::from_hf(jinja.as_deref(), named.as_deref(), config.as_deref(), name)?;
        return Ok((tok, template));
    }
    let f = source.open_required(None)?;
    let header = read_gguf_header_from(f.reader, &f.name, f.total)?;
    let (tok, _) = tokenizer_from_gguf(&header)?;
    Ok((tok, TemplateSource::from_gguf(&header, name)?))
}

/// The memory a model of `source` takes on a device with `limits`, from the GGUF header or the
/// folder's config.json alone (a URL is read only that far): nothing is uploaded.
pub fn model_memory(source: &ModelSource, options: LoadOptions, limits: &Limits) -> Result<ModelMemory> {
    if source.is_gguf() {
        let f = source.open_required(None)?;
        let header = read_gguf_header_from(f.reader, &f.name, f.total)?;
        return gguf_memory(&header, options, limits);
    }
    let text = source.read_text("config.json", false)?.unwrap_or_default();
    hf_memory(&text, &format!("{}/config.json", source.name()), options, limits)
}

fn no_progress(_: &str, _: Progress) {}

/// Loads a GGUF file, projections kept quantized.
pub fn load_gguf(gpu: &Gpu, path: &Path) -> Result<Model> {
    load_gguf_with(gpu, path, LoadOptions::default())
}

/// Loads a GGUF file, keeping the weights as `options` says.
pub fn load_gguf_with(gpu: &Gpu, path: &Path, options: LoadOptions) -> Result<Model> {
    load_from(gpu, &ModelSource::GgufFile(path.to_path_buf()), options, &mut no_progress)
}

/// Loads a Hugging Face folder: config.json, then model.safetensors or the shards named by
/// model.safetensors.index.json.
pub fn load_hf_folder(gpu: &Gpu, dir: &Path) -> Result<Model> {
    load_from(gpu, &ModelSource::Folder(dir.to_path_buf()), LoadOptions::default(), &mut no_progress)
}

/// Loads a model from a `--model` argument (see [`ModelSource::parse`]), projections of a GGUF
/// file kept quantized.
pub fn load_model(gpu: &Gpu, path: &Path) -> Result<Model> {
    load_model_with(gpu, path, LoadOptions::default())
}

/// Loads a model from a `--model` argument, keeping the weights as `options` says.
pub fn load_model_with(gpu: &Gpu, path: &Path, options: LoadOptions) -> Result<Model> {
    load_from(gpu, &ModelSource::parse(&path.to_string_lossy())?, options, &mut no_progress)
}

/// The tokenizer and chat template text of a `--model` argument.
pub fn load_tokenizer(path: &Path) -> Result<(Tokenizer, Option<String>)> {
    let (tok, template) = load_tokenizer_and_template(path, None)?;
    Ok((tok, template.map(|t| t.text)))
}

/// The tokenizer and chat template (`name`d, or the default one) of a `--model` argument.
pub fn load_tokenizer_and_template(path: &Path, name: Option<&str>) -> Result<(Tokenizer, Option<TemplateSource>)> {
    tokenizer_and_template(&ModelSource::parse(&path.to_string_lossy())?, name)
}
