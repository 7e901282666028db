//! Finding a model's chat template as transformers and llama.cpp do: in a Hugging Face folder,
//! `chat_template.jinja` first, then `tokenizer_config.json`'s `chat_template` (a string, or a
//! list of named templates of which `default` is taken unless another name is asked for); in a
//! GGUF file, `tokenizer.chat_template` (named ones under `tokenizer.chat_template.NAME`). When
//! no name is asked for and the model also has a `tool_use` template, records with tools are
//! rendered with it, as transformers does.

use serde_json::Value;

use super::error::{DataError, Location};
use crate::io::GgufHeader;

/// A chat template's Jinja text and where it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateSource {
    pub text: String,
    /// `chat_template.jinja`, `tokenizer_config.json`, `tokenizer_config.json (tool_use)`,
    /// `GGUF metadata`, or the file given.
    pub origin: String,
    /// The model's `tool_use` template when the default one was taken from a list of named
    /// templates: transformers renders records that have tools with it.
    pub tool_use: Option<String>,
}

impl TemplateSource {
    /// A template read from the file `path` (`--chat-template`).
    pub fn file(path: &str, text: String) -> Self {
        Self { text, origin: path.into(), tool_use: None }
    }

    /// The template of a Hugging Face folder from its files' texts: `chat_template.jinja`
    /// (`jinja`), `additional_chat_templates/NAME.jinja` (`named_jinja`, when `name` is asked
    /// for), `tokenizer_config.json` (`tokenizer_config`). `name` picks a named template;
    /// `None` or `default` the default one. Naming a template the folder does not have is an
    /// error that lists the names it has.
    pub fn from_hf(
        jinja: Option<&str>,
        named_jinja: Option<&str>,
        tokenizer_config: Option<&str>,
        name: Option<&str>,
    ) -> Result<Option<Self>, DataError> {
        let name = name.filter(|n| *n != "default");
        let source = |text: &str, origin: String| Some(Self { text: text.into(), origin, tool_use: None });
        match (name, named_jinja) {
            (Some(n), Some(text)) => return Ok(source(text, format!("additional_chat_templates/{n}.jinja"))),
            (None, _) if jinja.is_some() => return Ok(source(jinja.unwrap_or_default(), "chat_template.jinja".into())),
            _ => {}
        }
        let config: Option<Value> = match tokenizer_config {
            Some(text) => Some(serde_json::from_str(text).map_err(|e| DataError::Json {
                at: Location { file: "tokenizer_config.json".into(), line: e.line(), field: None },
                reason: e.to_string(),
            })?),
            None => None,
        };
        let mut names = Vec::new();
        if jinja.is_some() {
            names.push("default".to_string());
        }
        match config.as_ref().and_then(|c| c.get("chat_template")) {
            Some(Value::String(s)) if name.is_none() => return Ok(source(s, "tokenizer_config.json".into())),
            Some(Value::String(_)) => names.push("default".into()),
            Some(Value::Array(list)) => {
                let named = |wanted: &str| {
                    list.iter()
                        .find(|t| t.get("name").and_then(Value::as_str) == Some(wanted))
                        .and_then(|t| t.get("template")?.as_str())
                };
                if let Some(text) = named(name.unwrap_or("default")) {
                    let mut found = source(text, format!("tokenizer_config.json ({})", name.unwrap_or("default")));
                    if let (Some(f), None) = (found.as_mut(), name) {
                        f.tool_use = named("tool_use").map(String::from);
                    }
                    return Ok(found);
                }
                names
                    .extend(list.iter().map(|t| t.get("name").and_then(Value::as_str).unwrap_or_default().to_string()));
            }
            _ => {}
        }
        match name {
            Some(n) => Err(no_such_template(n, &names)),
            None => Ok(None),
        }
    }

    /// The template in a GGUF file's metadata: `tokenizer.chat_template`, or
    /// `tokenizer.chat_template.NAME` when `name` is given.
    pub fn from_gguf(h: &GgufHeader, name: Option<&str>) -> Result<Option<Self>, DataError> {
        let name = name.filter(|n| *n != "default");
        let key = match name {
            Some(n) => format!("tokenizer.chat_template.{n}"),
            None => "tokenizer.chat_template".into(),
        };
        match (h.get_str(&key), name) {
            (Ok(text), Some(n)) => {
                Ok(Some(Self { text: text.into(), origin: format!("GGUF metadata ({n})"), tool_use: None }))
            }
            (Ok(text), None) => {
                let tool_use = h.get_str("tokenizer.chat_template.tool_use").ok().map(String::from);
                Ok(Some(Self { text: text.into(), origin: "GGUF metadata".into(), tool_use }))
            }
            (Err(_), None) => Ok(None),
            (Err(_), Some(n)) => {
                let mut names: Vec<String> =
                    h.get_string_array("tokenizer.chat_templates").unwrap_or_default().to_vec();
                if h.get_str("tokenizer.chat_template").is_ok() {
                    names.insert(0, "default".into());
                }
                Err(no_such_template(n, &names))
            }
        }
    }
}

fn no_such_template(name: &str, names: &[String]) -> DataError {
    let has = if names.is_empty() { "none".to_string() } else { names.join(", ") };
    DataError::Options(format!("the model has no chat template named {name:?} (it has: {has})"))
}
