//! Records: one training example as the file gives it, before tokenization, and the reading of
//! a JSON object (or a CSV row, as an object of strings) into one.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{DataError, Location};

/// The shape of the records in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordFormat {
    /// `{"text": ...}`; plain-text blocks and windows too. Loss on every token.
    Text,
    /// `{"prompt": ..., "completion": ...}`. Loss on the completion and EOS.
    PromptCompletion,
    /// `{"instruction", "input"?, "output", "system"?}`, rendered as a chat.
    Alpaca,
    /// OpenAI `{"messages": [{"role", "content"}]}`.
    Messages,
    /// ShareGPT `{"conversations": [{"from", "value"}]}`.
    ShareGpt,
}

impl RecordFormat {
    /// The format a `--format` name (text, prompt-completion, alpaca, messages, sharegpt) forces.
    pub fn from_flag(name: &str) -> Option<Self> {
        Some(match name {
            "text" => Self::Text,
            "prompt-completion" => Self::PromptCompletion,
            "alpaca" => Self::Alpaca,
            "messages" => Self::Messages,
            "sharegpt" => Self::ShareGpt,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::PromptCompletion => "prompt/completion",
            Self::Alpaca => "alpaca",
            Self::Messages => "messages",
            Self::ShareGpt => "sharegpt",
        }
    }

    /// The format that an object with these field names has, if any. Chat fields win over
    /// Alpaca, Alpaca over prompt/completion, and that over `text`.
    pub fn detect<'a>(mut keys: impl Iterator<Item = &'a str> + Clone) -> Option<Self> {
        let has = |k: &str| keys.clone().any(|x| x == k);
        if has("messages") {
            Some(Self::Messages)
        } else if has("conversations") {
            Some(Self::ShareGpt)
        } else if has("instruction") && has("output") {
            Some(Self::Alpaca)
        } else if has("prompt") && has("completion") {
            Some(Self::PromptCompletion)
        } else if keys.any(|k| k == "text") {
            Some(Self::Text)
        } else {
            None
        }
    }
}

/// One chat turn as the template sees it. `role` is `system`, `user`, `assistant` or `tool`;
/// ShareGPT's `human`/`gpt` are mapped to `user`/`assistant`, OpenAI's `developer` to `system`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub role: String,
    /// The text (OpenAI content parts joined); `None` when the turn has none, as an assistant
    /// turn that only calls tools.
    pub content: Option<String>,
    /// The turn's other fields as the file gives them (`tool_calls`, `tool_call_id`, `name`,
    /// `reasoning_content`, ...), in their order; given to the template as they are. Fields whose
    /// value is null are left out, as transformers leaves them out.
    pub extra: Map<String, Value>,
}

impl Message {
    /// A turn with text content and nothing else.
    pub fn new(role: &str, content: &str) -> Self {
        Self { role: role.into(), content: Some(content.into()), extra: Map::new() }
    }

    /// The text content, empty when there is none.
    pub fn text(&self) -> &str {
        self.content.as_deref().unwrap_or_default()
    }

    /// Whether the turn calls tools (a non-empty `tool_calls`).
    pub fn calls_tools(&self) -> bool {
        self.extra.get("tool_calls").is_some_and(|c| c.as_array().is_some_and(|a| !a.is_empty()))
    }
}

impl Serialize for Message {
    /// `{"role", "content"?, ...extra}`: the dict transformers gives the template.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(None)?;
        map.serialize_entry("role", &self.role)?;
        if let Some(c) = &self.content {
            map.serialize_entry("content", c)?;
        }
        for (k, v) in &self.extra {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// A conversation and what comes with it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Chat {
    pub messages: Vec<Message>,
    /// The record's `tools` (JSON schemas, a list), given to the template as `tools`.
    pub tools: Option<Value>,
    /// The record's `documents` (a list), given to the template as `documents`.
    pub documents: Option<Value>,
    /// Conversational prompt/completion: how many of `messages` are the prompt. Only turns after
    /// them are trained.
    pub prompt_len: usize,
}

impl Chat {
    /// A plain conversation without tools.
    pub fn new(messages: Vec<Message>) -> Self {
        Self { messages, ..Default::default() }
    }
}

/// One example as read from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Text(String),
    PromptCompletion {
        prompt: String,
        completion: String,
    },
    /// A conversation; Alpaca records become `[system?, user, assistant]`, conversational
    /// prompt/completion records `prompt + completion`.
    Chat(Chat),
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Reads records of one format, naming the file and line in errors.
pub(crate) struct RecordReader<'a> {
    pub file: &'a str,
    pub format: RecordFormat,
}

impl RecordReader<'_> {
    fn at(&self, line: usize, field: impl Into<String>) -> Location {
        Location { file: self.file.to_string(), line, field: Some(field.into()) }
    }

    fn missing(&self, line: usize, field: &str) -> DataError {
        DataError::MissingField { at: self.at(line, field), format: self.format.name() }
    }

    fn wrong(&self, line: usize, field: &str, expected: &'static str, v: &Value) -> DataError {
        DataError::WrongType { at: self.at(line, field), expected, found: type_name(v) }
    }

    /// A string field; `None` when absent (or null, for optional fields).
    fn opt_str(&self, line: usize, obj: &Map<String, Value>, field: &str) -> Result<Option<String>, DataError> {
        match obj.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong(line, field, "a string", v)),
        }
    }

    fn req_str(&self, line: usize, obj: &Map<String, Value>, field: &str) -> Result<String, DataError> {
        match obj.get(field) {
            None => Err(self.missing(line, field)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.wrong(line, field, "a string", v)),
        }
    }

    fn non_empty(&self, line: usize, field: &str, what: &'static str, s: String) -> Result<String, DataError> {
        if s.trim().is_empty() {
            Err(DataError::EmptyField { at: self.at(line, field), what })
        } else {
            Ok(s)
        }
    }

    /// The record in `v`, a JSON value from line `line`.
    pub fn read(&self, line: usize, v: &Value) -> Result<Record, DataError> {
        let obj = match v {
            Value::Object(o) => o,
            other => {
                return Err(DataError::WrongType {
                    at: Location { file: self.file.into(), line, field: None },
                    expected: "an object",
                    found: type_name(other),
                })
            }
        };
        match self.format {
            RecordFormat::Text => {
                let text = self.req_str(line, obj, "text")?;
                Ok(Record::Text(self.non_empty(line, "text", "text", text)?))
            }
            RecordFormat::PromptCompletion if obj.get("prompt").is_some_and(Value::is_array) => {
                self.prompt_completion_chat(line, obj)
            }
            RecordFormat::PromptCompletion => {
                let prompt = self.req_str(line, obj, "prompt")?;
                let completion = self.req_str(line, obj, "completion")?;
                let completion = self.non_empty(line, "completion", "completion", completion)?;
                Ok(Record::PromptCompletion { prompt, completion })
            }
            RecordFormat::Alpaca => self.alpaca(line, obj),
            RecordFormat::Messages => self.chat(line, obj, "messages", "role", "content"),
            RecordFormat::ShareGpt => self.chat(line, obj, "conversations", "from", "value"),
        }
    }

    /// Alpaca: the user turn is `instruction`, then a blank line and `input` when there is one.
    fn alpaca(&self, line: usize, obj: &Map<String, Value>) -> Result<Record, DataError> {
        let instruction = self.req_str(line, obj, "instruction")?;
        let instruction = self.non_empty(line, "instruction", "instruction", instruction)?;
        let input = self.opt_str(line, obj, "input")?.unwrap_or_default();
        let output = self.req_str(line, obj, "output")?;
        let output = self.non_empty(line, "output", "output", output)?;
        let system = self.opt_str(line, obj, "system")?.filter(|s| !s.is_empty());
        let user = if input.trim().is_empty() { instruction } else { format!("{instruction}\n\n{input}") };
        let mut messages = Vec::with_capacity(3);
        if let Some(system) = system {
            messages.push(Message::new("system", &system));
        }
        messages.push(Message::new("user", &user));
        messages.push(Message::new("assistant", &output));
        Ok(Record::Chat(Chat::new(messages)))
    }

    /// OpenAI `messages` or ShareGPT `conversations`, with the record's `tools` and `documents`.
    fn chat(
        &self,
        line: usize,
        obj: &Map<String, Value>,
        list: &str,
        role_key: &str,
        content_key: &str,
    ) -> Result<Record, DataError> {
        let messages = self.turns(line, obj, list, role_key, content_key)?;
        if !messages.iter().any(|m| m.role == "assistant") {
            return Err(DataError::EmptyField { at: self.at(line, list), what: "assistant turn (there is none)" });
        }
        let (tools, documents) = self.tools(line, obj)?;
        Ok(Record::Chat(Chat { messages, tools, documents, prompt_len: 0 }))
    }

    /// TRL's conversational prompt/completion: `prompt` and `completion` are lists of turns.
    fn prompt_completion_chat(&self, line: usize, obj: &Map<String, Value>) -> Result<Record, DataError> {
        let mut messages = self.turns(line, obj, "prompt", "role", "content")?;
        let completion = self.turns(line, obj, "completion", "role", "content")?;
        if !completion.iter().any(|m| m.role == "assistant") {
            return Err(DataError::EmptyField {
                at: self.at(line, "completion"),
                what: "assistant turn (there is none)",
            });
        }
        let prompt_len = messages.len();
        messages.extend(completion);
        let (tools, documents) = self.tools(line, obj)?;
        Ok(Record::Chat(Chat { messages, tools, documents, prompt_len }))
    }

    /// `tools` (a list, or a JSON string of one) and `documents` (a list), when given.
    fn tools(&self, line: usize, obj: &Map<String, Value>) -> Result<(Option<Value>, Option<Value>), DataError> {
        let tools = match obj.get("tools") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(Value::Array(a.clone())),
            Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
                Ok(Value::Array(a)) => Some(Value::Array(a)),
                Ok(Value::Null) => None,
                Ok(v) => return Err(self.wrong(line, "tools", "a list of tools (as JSON)", &v)),
                Err(e) => {
                    return Err(DataError::Json { at: self.at(line, "tools"), reason: e.to_string() });
                }
            },
            Some(v) => return Err(self.wrong(line, "tools", "a list of tools", v)),
        };
        let documents = match obj.get("documents") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) => Some(Value::Array(a.clone())),
            Some(v) => return Err(self.wrong(line, "documents", "a list of documents", v)),
        };
        Ok((tools, documents))
    }

    /// The turns of the list `list`.
    fn turns(
        &self,
        line: usize,
        obj: &Map<String, Value>,
        list: &str,
        role_key: &str,
        content_key: &str,
    ) -> Result<Vec<Message>, DataError> {
        let turns = match obj.get(list) {
            None => return Err(self.missing(line, list)),
            Some(Value::Array(a)) => a,
            Some(v) => return Err(self.wrong(line, list, "an array of turns", v)),
        };
        if turns.is_empty() {
            return Err(DataError::EmptyField { at: self.at(line, list), what: "conversation" });
        }
        let sharegpt = self.format == RecordFormat::ShareGpt;
        let mut messages = Vec::with_capacity(turns.len());
        for (i, turn) in turns.iter().enumerate() {
            let field = |k: &str| format!("{list}[{i}].{k}");
            let t = match turn {
                Value::Object(t) => t,
                v => return Err(self.wrong(line, &format!("{list}[{i}]"), "an object", v)),
            };
            let role = match t.get(role_key) {
                None => return Err(self.missing(line, &field(role_key))),
                Some(Value::String(s)) => s.as_str(),
                Some(v) => return Err(self.wrong(line, &field(role_key), "a string", v)),
            };
            let role = match normalise_role(role, sharegpt) {
                Some(r) => r.to_string(),
                None => {
                    return Err(DataError::UnknownRole { at: self.at(line, field(role_key)), role: role.to_string() })
                }
            };
            // ShareGPT turns carry nothing for the template beyond the role and the text.
            let extra: Map<String, Value> = if sharegpt {
                Map::new()
            } else {
                t.iter()
                    .filter(|(k, v)| *k != role_key && *k != content_key && !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            };
            if let Some(calls) = extra.get("tool_calls").filter(|c| !c.is_array()) {
                return Err(self.wrong(line, &field("tool_calls"), "an array of tool calls", calls));
            }
            let content = match t.get(content_key) {
                None | Some(Value::Null) if role == "assistant" && !sharegpt && extra.contains_key("tool_calls") => {
                    None
                }
                None => return Err(self.missing(line, &field(content_key))),
                Some(Value::String(s)) => Some(s.clone()),
                // OpenAI content parts: [{"type": "text", "text": ...}].
                Some(Value::Array(parts)) => {
                    let mut s = String::new();
                    for (j, p) in parts.iter().enumerate() {
                        match p.get("text") {
                            Some(Value::String(t)) => s.push_str(t),
                            _ => {
                                let f = format!("{}[{j}].text", field(content_key));
                                return Err(self.wrong(line, &f, "a text part", p));
                            }
                        }
                    }
                    Some(s)
                }
                Some(v) => return Err(self.wrong(line, &field(content_key), "a string", v)),
            };
            messages.push(alias_reasoning(Message { role, content, extra }));
        }
        Ok(messages)
    }
}

/// The names a turn's reasoning goes by. As transformers does, when one is set `thinking` and
/// `reasoning_content` both carry it (`thinking` first, `reasoning_content` where it was or last).
const REASONING_FIELDS: [&str; 3] = ["reasoning_content", "thinking", "reasoning"];

fn alias_reasoning(mut m: Message) -> Message {
    let Some(reasoning) = REASONING_FIELDS.iter().find_map(|k| m.extra.get(*k).filter(|v| !v.is_null())).cloned()
    else {
        return m;
    };
    let thinking = m.extra.get("thinking").cloned().unwrap_or_else(|| reasoning.clone());
    let mut extra = Map::new();
    extra.insert("thinking".into(), thinking);
    for (k, v) in std::mem::take(&mut m.extra) {
        if k != "thinking" {
            extra.insert(k, v);
        }
    }
    extra.insert("reasoning_content".into(), reasoning);
    m.extra = extra;
    m
}

/// The chat-template role of `role`: OpenAI roles as they are (`developer` as `system`);
/// ShareGPT's `human`/`gpt` and their variants mapped.
fn normalise_role(role: &str, sharegpt: bool) -> Option<&'static str> {
    Some(match role.trim().to_ascii_lowercase().as_str() {
        "system" | "developer" => "system",
        "user" => "user",
        "assistant" => "assistant",
        "tool" | "function" | "ipython" => "tool",
        "human" if sharegpt => "user",
        "gpt" | "chatgpt" | "bard" | "bing" | "model" if sharegpt => "assistant",
        "observation" if sharegpt => "tool",
        _ => return None,
    })
}
