//! Chat templates: the model's Jinja template, rendered with `minijinja` as `transformers`
//! renders it: `trim_blocks`, `lstrip_blocks`, loop controls, Python string and dict methods
//! (`.strip()`, `.get()`), and the globals transformers gives a template: `messages`, `tools`,
//! `documents`, `add_generation_prompt`, the special tokens (`bos_token`, `eos_token`,
//! `unk_token`, `pad_token`), `raise_exception`, `strftime_now`, and its own `tojson`.
//!
//! `{% generation %}` … `{% endgeneration %}` blocks (which TRL and transformers use to mark what
//! the model writes) are kept: their output's byte ranges come back with the rendering.
//! Where the template came from is [`super::TemplateSource`]; which parts of a rendering are
//! trained, [`super::spans`].

use std::ops::Range;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use minijinja::value::{Kwargs, ValueKind};
use minijinja::{Environment, Error as JinjaError, ErrorKind, Value};

use super::error::DataError;
use super::lookup::TemplateSource;
use super::record::{Chat, Message};
use crate::io::GgufHeader;

/// ChatML, used when a model has no template of its own.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// Written where a `{% generation %}` block opens and closes, and removed after rendering.
const GENERATION_OPEN: char = '\u{F8F0}';
const GENERATION_CLOSE: char = '\u{F8F1}';

/// `strftime_now` reads the clock when this is the fixed time.
const CLOCK_NOW: i64 = i64::MIN;

/// A rendered conversation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    pub text: String,
    /// Byte ranges of `text` written inside `{% generation %}` blocks, in order.
    pub generation: Vec<Range<usize>>,
}

/// A compiled chat template and the special-token texts it may use.
pub struct ChatTemplate {
    env: Environment<'static>,
    /// Text of the BOS token, given to the template as `bos_token`.
    pub bos_token: String,
    /// Text of the EOS token (`eos_token`).
    pub eos_token: String,
    /// `unk_token` and `pad_token`, when the tokenizer has them.
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
    /// Whether this is the built-in ChatML fallback rather than the model's template.
    pub is_fallback: bool,
    /// Where the template came from: `chat_template.jinja`, `tokenizer_config.json`,
    /// `GGUF metadata`, a file name, ...
    pub origin: String,
    /// Whether the template marks the trained text with `{% generation %}` blocks.
    pub has_generation: bool,
    /// The text the template writes after an assistant turn's content to end the turn (e.g.
    /// `<|im_end|>`, `<|eot_id|>`, `<|end|>`), found by rendering a probe conversation; empty
    /// when it writes none.
    pub end_of_turn: String,
    /// The model's `tool_use` template, for records with tools (see [`TemplateSource::tool_use`]).
    pub tool_use: Option<Box<ChatTemplate>>,
    /// Seconds since 1970 that `strftime_now` reports, or [`CLOCK_NOW`].
    clock: Arc<AtomicI64>,
    /// The Jinja source.
    source: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("end_of_turn", &self.end_of_turn)
            .field("has_generation", &self.has_generation)
            .field("is_fallback", &self.is_fallback)
            .finish_non_exhaustive()
    }
}

impl ChatTemplate {
    /// Compiles a Jinja chat template with these bos and eos token texts.
    pub fn new(source: &str, bos_token: &str, eos_token: &str) -> Result<Self, DataError> {
        Self::with_tokens(source, "the chat template", bos_token, eos_token, None, None)
    }

    /// Compiles `source` (from `origin`) with the special-token texts given to it.
    pub fn with_tokens(
        source: &str,
        origin: &str,
        bos_token: &str,
        eos_token: &str,
        unk_token: Option<&str>,
        pad_token: Option<&str>,
    ) -> Result<Self, DataError> {
        let clock = Arc::new(AtomicI64::new(CLOCK_NOW));
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", |msg: String| -> Result<Value, JinjaError> {
            Err(JinjaError::new(ErrorKind::InvalidOperation, msg))
        });
        let c = clock.clone();
        env.add_function("strftime_now", move |format: String| -> Result<Value, JinjaError> {
            let secs = match c.load(Ordering::Relaxed) {
                CLOCK_NOW => now_seconds(),
                fixed => fixed,
            };
            Ok(Value::from(strftime(&format, secs)))
        });
        env.add_filter("tojson", tojson);
        let (marked, has_generation) = mark_generation_tags(source);
        env.add_template_owned("chat_template", marked)
            .map_err(|e| DataError::TemplateSyntax(format!("{origin}: {}", jinja_message(&e))))?;
        let mut t = Self {
            env,
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
            unk_token: unk_token.map(String::from),
            pad_token: pad_token.map(String::from),
            is_fallback: false,
            origin: origin.into(),
            has_generation,
            end_of_turn: String::new(),
            tool_use: None,
            clock,
            source: source.to_string(),
        };
        t.end_of_turn = super::spans::probe_end_of_turn(&t);
        Ok(t)
    }

    /// The template `source` came with, with the special tokens of `tok`.
    pub fn from_source(tok: &crate::tokenizer::Tokenizer, source: &TemplateSource) -> Result<Self, DataError> {
        let name = |id: Option<u32>| id.and_then(|i| tok.inner().id_to_token(i));
        let (bos, eos) = (name(tok.special.bos).unwrap_or_default(), name(tok.special.eos).unwrap_or_default());
        let (unk, pad) = (name(tok.special.unk), name(tok.special.pad));
        let mut t = Self::with_tokens(&source.text, &source.origin, &bos, &eos, unk.as_deref(), pad.as_deref())?;
        if let Some(text) = &source.tool_use {
            let origin = format!("{} with tool_use for records with tools", source.origin);
            let u = Self::with_tokens(text, &origin, &bos, &eos, unk.as_deref(), pad.as_deref())?;
            t.origin = origin;
            t.tool_use = Some(Box::new(u));
        }
        Ok(t)
    }

    /// A model's template `source`, or ChatML when it has none, with its tokenizer's special
    /// token texts.
    pub fn for_model(tok: &crate::tokenizer::Tokenizer, source: Option<&str>) -> Result<Self, DataError> {
        match source {
            Some(src) => Self::from_source(tok, &TemplateSource::file("the model", src.into())),
            None => {
                let mut t = Self::from_source(tok, &TemplateSource::file("", CHATML_TEMPLATE.into()))?;
                t.is_fallback = true;
                t.origin = "chatml (fallback)".into();
                Ok(t)
            }
        }
    }

    /// The built-in ChatML template (`<|im_start|>role\ncontent<|im_end|>\n`).
    pub fn chatml(bos_token: &str, eos_token: &str) -> Result<Self, DataError> {
        let mut t = Self::new(CHATML_TEMPLATE, bos_token, eos_token)?;
        t.is_fallback = true;
        t.origin = "chatml (fallback)".into();
        Ok(t)
    }

    /// The template in a GGUF file's `tokenizer.chat_template`, if it has one.
    pub fn from_gguf(h: &GgufHeader) -> Result<Option<Self>, DataError> {
        let Some(source) = TemplateSource::from_gguf(h, None)? else {
            return Ok(None);
        };
        let tokens = h.get_string_array("tokenizer.ggml.tokens").unwrap_or_default();
        let text = |key: &str| h.get_u32(key).ok().and_then(|id| tokens.get(id as usize)).cloned();
        let (bos, eos) = (text("tokenizer.ggml.bos_token_id"), text("tokenizer.ggml.eos_token_id"));
        let (unk, pad) = (text("tokenizer.ggml.unknown_token_id"), text("tokenizer.ggml.padding_token_id"));
        Self::with_tokens(
            &source.text,
            &source.origin,
            &bos.unwrap_or_default(),
            &eos.unwrap_or_default(),
            unk.as_deref(),
            pad.as_deref(),
        )
        .map(Some)
    }

    /// The template in a Hugging Face `tokenizer_config.json` (`chat_template`, a string or a
    /// list of `{name, template}` of which `default` is taken), if it has one.
    pub fn from_tokenizer_config(json: &[u8]) -> Result<Option<Self>, DataError> {
        let text = std::str::from_utf8(json).map_err(|e| DataError::Json {
            at: super::error::Location { file: "tokenizer_config.json".into(), line: 0, field: None },
            reason: e.to_string(),
        })?;
        let Some(source) = TemplateSource::from_hf(None, None, Some(text), None)? else {
            return Ok(None);
        };
        let config: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
        let token = |key: &str| match config.get(key) {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            Some(serde_json::Value::Object(o)) => o.get("content").and_then(|c| c.as_str()).map(String::from),
            _ => None,
        };
        Self::with_tokens(
            &source.text,
            &source.origin,
            &token("bos_token").unwrap_or_default(),
            &token("eos_token").unwrap_or_default(),
            token("unk_token").as_deref(),
            token("pad_token").as_deref(),
        )
        .map(Some)
    }

    /// Whether the template's source names `name` (e.g. `tools`, `tool_calls`) at all.
    pub fn reads(&self, name: &str) -> bool {
        self.source.contains(name)
    }

    /// Fixes the time `strftime_now` reports (seconds since 1970, UTC), for renderings that must
    /// not change from day to day; `None` goes back to the clock.
    pub fn set_time(&self, seconds: Option<i64>) {
        self.clock.store(seconds.unwrap_or(CLOCK_NOW), Ordering::Relaxed);
        if let Some(u) = &self.tool_use {
            u.set_time(seconds);
        }
    }

    /// The template for `chat`: the `tool_use` one when the chat has tools and the model has
    /// one, else this one.
    pub fn for_chat(&self, chat: &Chat) -> &ChatTemplate {
        match (&self.tool_use, &chat.tools) {
            (Some(u), Some(_)) => u,
            _ => self,
        }
    }

    /// Renders `messages` (no tools) as text. Errors are the template's own message.
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String, String> {
        self.render_parts(messages, None, None, add_generation_prompt).map(|r| r.text)
    }

    /// Renders `chat` (its messages, tools and documents).
    pub fn render_chat(&self, chat: &Chat, add_generation_prompt: bool) -> Result<Rendered, String> {
        self.render_parts(&chat.messages, chat.tools.as_ref(), chat.documents.as_ref(), add_generation_prompt)
    }

    /// Renders `messages` with `tools` and `documents` (None when there are none, as
    /// transformers passes them).
    pub fn render_parts(
        &self,
        messages: &[Message],
        tools: Option<&serde_json::Value>,
        documents: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<Rendered, String> {
        let tmpl = self.env.get_template("chat_template").map_err(|e| jinja_message(&e))?;
        let mut vars = vec![
            ("messages", Value::from_serialize(messages)),
            ("tools", Value::from_serialize(tools)),
            ("documents", Value::from_serialize(documents)),
            ("add_generation_prompt", Value::from(add_generation_prompt)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
        ];
        if let Some(t) = &self.unk_token {
            vars.push(("unk_token", Value::from(t.as_str())));
        }
        if let Some(t) = &self.pad_token {
            vars.push(("pad_token", Value::from(t.as_str())));
        }
        let ctx = Value::from_iter(vars);
        let text = tmpl.render(ctx).map_err(|e| jinja_message(&e))?;
        Ok(split_generation(&text))
    }
}

/// The error's message with its causes and the template line.
fn jinja_message(e: &JinjaError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    msg
}

/// Replaces `{% generation %}` and `{% endgeneration %}` (with any `-`/`+` trim markers) by a
/// block tag of the same whitespace behaviour that writes a marker character; says whether there
/// were any. Comments are copied as they are.
fn mark_generation_tags(source: &str) -> (String, bool) {
    let mut out = String::with_capacity(source.len());
    let mut rest = source;
    let mut found = false;
    loop {
        let (tag_at, comment_at) = (rest.find("{%"), rest.find("{#"));
        if let Some(c) = comment_at.filter(|&c| tag_at.is_none_or(|t| c < t)) {
            let end = rest[c..].find("#}").map_or(rest.len(), |e| c + e + 2);
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let Some(open) = tag_at else { break };
        let Some(len) = rest[open..].find("%}") else { break };
        let tag = &rest[open + 2..open + len];
        let left = if tag.starts_with(['-', '+']) { &tag[..1] } else { "" };
        let right = if tag.ends_with(['-', '+']) { &tag[tag.len() - 1..] } else { "" };
        let name = tag.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        out.push_str(&rest[..open]);
        let marker = match name {
            "generation" => Some(GENERATION_OPEN),
            "endgeneration" => Some(GENERATION_CLOSE),
            _ => None,
        };
        match marker {
            Some(m) => {
                found = true;
                out.push_str(&format!("{{%{left} if true %}}{{{{ '{m}' }}}}{{% endif {right}%}}"));
            }
            None => out.push_str(&rest[open..open + len + 2]),
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    (out, found)
}

/// Removes the generation markers from a rendering, keeping where they were.
fn split_generation(marked: &str) -> Rendered {
    if !marked.contains([GENERATION_OPEN, GENERATION_CLOSE]) {
        return Rendered { text: marked.to_string(), generation: Vec::new() };
    }
    let mut text = String::with_capacity(marked.len());
    let mut generation = Vec::new();
    let mut open: Option<usize> = None;
    let mut depth = 0usize;
    for c in marked.chars() {
        match c {
            GENERATION_OPEN => {
                if depth == 0 {
                    open = Some(text.len());
                }
                depth += 1;
            }
            GENERATION_CLOSE => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    if let Some(start) = open.take() {
                        if start < text.len() {
                            generation.push(start..text.len());
                        }
                    }
                }
            }
            c => text.push(c),
        }
    }
    Rendered { text, generation }
}

/// Seconds since 1970 now (UTC).
fn now_seconds() -> i64 {
    #[cfg(target_arch = "wasm32")]
    {
        (js_sys::Date::now() / 1000.0).floor() as i64
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

/// Python's `datetime.strftime` for the time `secs` (UTC): `%d %-d %e %m %-m %y %Y %b %B %a %A
/// %H %-H %I %M %S %p %j %F %T %D %Z %z %%`; other directives are written as they are.
pub fn strftime(format: &str, secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (sod / 3600, sod / 60 % 60, sod % 60);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let yday = days - days_from_civil(y, 1, 1) + 1;
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let pad = if chars.peek() == Some(&'-') {
            chars.next();
            false
        } else {
            true
        };
        let num = |v: i64, w: usize| if pad { format!("{v:0w$}") } else { v.to_string() };
        match chars.next() {
            Some('d') => out.push_str(&num(d, 2)),
            Some('e') => out.push_str(&format!("{d:2}")),
            Some('m') => out.push_str(&num(m, 2)),
            Some('y') => out.push_str(&num(y.rem_euclid(100), 2)),
            Some('Y') => out.push_str(&y.to_string()),
            Some('b') | Some('h') => out.push_str(&MONTHS[m as usize - 1][..3]),
            Some('B') => out.push_str(MONTHS[m as usize - 1]),
            Some('a') => out.push_str(&DAYS[weekday][..3]),
            Some('A') => out.push_str(DAYS[weekday]),
            Some('H') => out.push_str(&num(hh, 2)),
            Some('I') => out.push_str(&num((hh + 11) % 12 + 1, 2)),
            Some('M') => out.push_str(&num(mm, 2)),
            Some('S') => out.push_str(&num(ss, 2)),
            Some('p') => out.push_str(if hh < 12 { "AM" } else { "PM" }),
            Some('j') => out.push_str(&num(yday, 3)),
            Some('F') => out.push_str(&format!("{y}-{m:02}-{d:02}")),
            Some('T') => out.push_str(&format!("{hh:02}:{mm:02}:{ss:02}")),
            Some('D') => out.push_str(&format!("{m:02}/{d:02}/{:02}", y.rem_euclid(100))),
            Some('Z') => out.push_str("UTC"),
            Some('z') => out.push_str("+0000"),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                if !pad {
                    out.push('-');
                }
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    out
}

/// (year, month, day) of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Days since 1970-01-01 of a date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
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
