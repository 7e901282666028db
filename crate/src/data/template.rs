//! Chat templates: the model's Jinja template, rendered with `minijinja` as `transformers`
//! renders it (`trim_blocks`, `lstrip_blocks`, loop controls, `raise_exception`, Python string
//! methods such as `.strip()`), and the byte spans of the assistant turns in the result.
//!
//! Assistant spans are found by rendering prefixes of the conversation: the turn `i` spans from
//! the end of `render(messages[..i], add_generation_prompt = true)` (what the model is given
//! before it writes) to the end of `render(messages[..=i])`, cut after the end-of-turn text (the EOS token's text, e.g.
//! `<|im_end|>`) so that the newline after it is not supervised. Where a template does not
//! render prefixes consistently or have no generation prompt (some drop earlier reasoning, some refuse partial chats), the
//! turn's content is replaced by a marker and the text around the marker located in the full
//! rendering; failing that, the content is searched for. Both extend the span over the
//! end-of-turn text that follows the content.

use std::ops::Range;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};

use super::error::DataError;
use super::record::Message;
use crate::io::GgufHeader;

/// ChatML, used when a model has no template of its own.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A compiled chat template and the special-token texts it may use.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Text of the BOS token, given to the template as `bos_token`.
    pub bos_token: String,
    /// Text of the EOS token (`eos_token`); also the end-of-turn text the mask includes.
    pub eos_token: String,
    /// Whether this is the built-in ChatML fallback rather than the model's template.
    pub is_fallback: bool,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("is_fallback", &self.is_fallback)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template. `{% generation %}` markers (used by some templates for
    /// TRL's assistant masks) are removed: spans are found without them.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, DataError> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        env.add_filter("tojson", tojson);
        env.add_template_owned("chat_template", strip_generation_tags(source))
            .map_err(|e| DataError::TemplateSyntax(e.to_string()))?;
        Ok(Self { env, bos_token: bos_token.into(), eos_token: eos_token.into(), is_fallback: false })
    }

    /// A model's template `source`, or ChatML when it has none, with its tokenizer's bos and eos
    /// token texts.
    pub fn for_model(tok: &crate::tokenizer::Tokenizer, source: Option<&str>) -> Result<Self, DataError> {
        let name = |id: Option<u32>| id.and_then(|i| tok.inner().id_to_token(i)).unwrap_or_default();
        let (bos, eos) = (name(tok.special.bos), name(tok.special.eos));
        match source {
            Some(src) => Self::new(src, &bos, &eos),
            None => Self::chatml(&bos, &eos),
        }
    }

    /// The built-in ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`).
    pub fn chatml(bos_token: &str, eos_token: &str) -> Result<Self, DataError> {
        let mut t = Self::new(CHATML_TEMPLATE, bos_token, eos_token)?;
        t.is_fallback = true;
        Ok(t)
    }

    /// The template in a GGUF file's `tokenizer.chat_template`, if it has one.
    pub fn from_gguf(h: &GgufHeader) -> Result<Option<Self>, DataError> {
        let Ok(source) = h.get_str("tokenizer.chat_template") else {
            return Ok(None);
        };
        let tokens = h.get_string_array("tokenizer.ggml.tokens").unwrap_or_default();
        let text = |key: &str| h.get_u32(key).ok().and_then(|id| tokens.get(id as usize)).cloned().unwrap_or_default();
        let (bos, eos) = (text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id"));
        Self::new(source, &bos, &eos).map(Some)
    }

    /// The template in a Hugging Face `tokenizer_config.json` (`chat_template`, a string or a
    /// list of `{name, template}` of which `default` is taken), if it has one.
    pub fn from_tokenizer_config(json: &[u8]) -> Result<Option<Self>, DataError> {
        let config: serde_json::Value = serde_json::from_slice(json).map_err(|e| DataError::Json {
            at: super::error::Location { file: "tokenizer_config.json".into(), line: e.line(), field: None },
            reason: e.to_string(),
        })?;
        let source = match config.get("chat_template") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Array(list)) => {
                let named = |n: &str| {
                    list.iter()
                        .find(|t| t.get("name").and_then(|x| x.as_str()) == Some(n))
                        .and_then(|t| t.get("template")?.as_str())
                };
                match named("default") {
                    Some(s) => s.to_string(),
                    None => return Ok(None),
                }
            }
            _ => return Ok(None),
        };
        let token = |key: &str| match config.get(key) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Object(o)) => {
                o.get("content").and_then(|c| c.as_str()).unwrap_or_default().to_string()
            }
            _ => String::new(),
        };
        Self::new(&source, &token("bos_token"), &token("eos_token")).map(Some)
    }

    /// Renders `messages` as text. Errors are the template's own message.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        let tmpl = self.env.get_template("chat_template").map_err(|e| e.to_string())?;
        let ctx = minijinja::context! {
            messages => Value::from_serialize(messages),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.as_str(),
            eos_token => self.eos_token.as_str(),
            // transformers passes these as None when there are none.
            tools => (),
            documents => (),
        };
        tmpl.render(ctx).map_err(|e| {
            let mut msg = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                src = s.source();
            }
            msg
        })
    }

    /// The rendered conversation and the byte ranges of its assistant turns (content and
    /// end-of-turn text), in order, one per assistant message.
    pub fn render_with_spans(&self, messages: &[Message]) -> Result<(String, Vec<Range<usize>>), SpanError> {
        let full = self.render(messages, false).map_err(SpanError::Render)?;
        let mut spans = Vec::new();
        let mut cursor = 0;
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let span = self
                .span_by_prefix(messages, i, &full)
                .filter(|s| s.start >= cursor)
                .or_else(|| self.span_by_marker(messages, i, &full).filter(|s| s.start >= cursor))
                .or_else(|| self.span_by_search(&m.content, &full, cursor))
                .ok_or(SpanError::NotFound(i))?;
            cursor = span.end;
            spans.push(span);
        }
        Ok((full, spans))
    }

    fn span_by_prefix(&self, messages: &[Message], i: usize, full: &str) -> Option<Range<usize>> {
        let before = self.render(&messages[..i], true).ok()?;
        // Without a generation prompt the role header would count as the turn's: leave such
        // templates to the marker.
        if before == self.render(&messages[..i], false).ok()? {
            return None;
        }
        let through = self.render(&messages[..=i], false).ok()?;
        if !(full.starts_with(&through) && through.starts_with(&before)) {
            return None;
        }
        let (start, mut end) = (before.len(), through.len());
        let turn = &full[start..end];
        match (!self.eos_token.is_empty()).then(|| turn.rfind(&self.eos_token)).flatten() {
            Some(p) => end = start + p + self.eos_token.len(),
            None => end = start + turn.trim_end().len(),
        }
        (start < end).then_some(start..end)
    }

    /// Renders the conversation with turn `i`'s content replaced by a marker: the text before
    /// the marker and the text after it frame the turn's content in the full rendering, however
    /// the template transformed it.
    fn span_by_marker(&self, messages: &[Message], i: usize, full: &str) -> Option<Range<usize>> {
        const MARKER: &str = "\u{E000}weblora-assistant-turn\u{E001}";
        let mut marked = messages.to_vec();
        marked[i].content = MARKER.into();
        let r = self.render(&marked, false).ok()?;
        let p = r.find(MARKER)?;
        let (pre, post) = (&r[..p], &r[p + MARKER.len()..]);
        if post.contains(MARKER)
            || full.len() < pre.len() + post.len()
            || !full.starts_with(pre)
            || !full.ends_with(post)
        {
            return None;
        }
        let (start, end) = (pre.len(), full.len() - post.len());
        Some(start..self.extend_over_eos(full, end))
    }

    fn span_by_search(&self, content: &str, full: &str, cursor: usize) -> Option<Range<usize>> {
        let content = content.trim();
        if content.is_empty() {
            return None;
        }
        let start = cursor + full.get(cursor..)?.find(content)?;
        Some(start..self.extend_over_eos(full, start + content.len()))
    }

    /// `end`, moved past the end-of-turn text when that follows (after any whitespace).
    fn extend_over_eos(&self, full: &str, end: usize) -> usize {
        let rest = full.get(end..).unwrap_or_default();
        let gap = rest.len() - rest.trim_start().len();
        if !self.eos_token.is_empty() && rest[gap..].starts_with(&self.eos_token) {
            end + gap + self.eos_token.len()
        } else {
            end
        }
    }
}

/// Why assistant spans could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanError {
    /// The template failed on the conversation.
    Render(String),
    /// Message `i` (an assistant turn) was not found in the rendering.
    NotFound(usize),
}

/// `tojson` as transformers defines it for chat templates: Python's `json.dumps` with
/// `ensure_ascii=False` (`", "` and `": "` separators, keys in their order, an optional
/// `indent`), without the HTML escaping of Jinja's own filter.
fn tojson(value: &Value, kwargs: Kwargs) -> Result<Value, JinjaError> {
    let indent: Option<usize> = kwargs.get("indent")?;
    for unused in ["ensure_ascii", "separators", "sort_keys"] {
        let _: Option<Value> = kwargs.get(unused)?;
    }
    kwargs.assert_all_used()?;
    let mut out = String::new();
    write_json(value, indent, 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn write_json(v: &Value, indent: Option<usize>, level: usize, out: &mut String) -> Result<(), JinjaError> {
    let newline = |out: &mut String, level: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat_n(' ', n * level));
        }
    };
    let (sep, colon) = if indent.is_some() { (",", ": ") } else { (", ", ": ") };
    let bad = |e: serde_json::Error| JinjaError::new(ErrorKind::InvalidOperation, e.to_string());
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Seq | ValueKind::Iterable | ValueKind::Map => {
            let is_map = v.kind() == ValueKind::Map;
            let items: Vec<Value> = v.try_iter()?.collect();
            out.push(if is_map { '{' } else { '[' });
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(sep);
                }
                newline(out, level + 1);
                if is_map {
                    let key = item.as_str().map_or_else(|| item.to_string(), str::to_string);
                    out.push_str(&serde_json::to_string(&key).map_err(bad)?);
                    out.push_str(colon);
                    write_json(&v.get_item(item)?, indent, level + 1, out)?;
                } else {
                    write_json(item, indent, level + 1, out)?;
                }
            }
            if !items.is_empty() {
                newline(out, level);
            }
            out.push(if is_map { '}' } else { ']' });
        }
        ValueKind::String => out.push_str(&serde_json::to_string(v.as_str().unwrap_or_default()).map_err(bad)?),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        _ => out.push_str(&serde_json::to_string(v).map_err(bad)?),
    }
    Ok(())
}

/// Removes `{% generation %}` and `{% endgeneration %}` tags (with any `-`/`+` trim markers).
fn strip_generation_tags(source: &str) -> String {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    while let Some(open) = rest.find("{%") {
        let Some(len) = rest[open..].find("%}") else {
            break;
        };
        let tag = &rest[open + 2..open + len];
        let name = tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..open]);
        if name != "generation" && name != "endgeneration" {
            out.push_str(&rest[open..open + len + 2]);
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}
