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

/// One chat turn. `role` is `system`, `user`, `assistant` or `tool`; ShareGPT's `human`/`gpt`
/// are mapped to `user`/`assistant`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// One example as read from the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    Text(String),
    PromptCompletion {
        prompt: String,
        completion: String,
    },
    /// A conversation; Alpaca records become `[system?, user, assistant]`.
    Chat(Vec<Message>),
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
            messages.push(Message { role: "system".into(), content: system });
        }
        messages.push(Message { role: "user".into(), content: user });
        messages.push(Message { role: "assistant".into(), content: output });
        Ok(Record::Chat(messages))
    }

    fn chat(
        &self,
        line: usize,
        obj: &Map<String, Value>,
        list: &str,
        role_key: &str,
        content_key: &str,
    ) -> Result<Record, DataError> {
        let turns = match obj.get(list) {
            None => return Err(self.missing(line, list)),
            Some(Value::Array(a)) => a,
            Some(v) => return Err(self.wrong(line, list, "an array of turns", v)),
        };
        if turns.is_empty() {
            return Err(DataError::EmptyField { at: self.at(line, list), what: "conversation" });
        }
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
            let role = match normalise_role(role, self.format == RecordFormat::ShareGpt) {
                Some(r) => r.to_string(),
                None => {
                    return Err(DataError::UnknownRole { at: self.at(line, field(role_key)), role: role.to_string() })
                }
            };
            let content = match t.get(content_key) {
                None => return Err(self.missing(line, &field(content_key))),
                Some(Value::String(s)) => s.clone(),
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
                    s
                }
                Some(v) => return Err(self.wrong(line, &field(content_key), "a string", v)),
            };
            messages.push(Message { role, content });
        }
        if !messages.iter().any(|m| m.role == "assistant") {
            return Err(DataError::EmptyField { at: self.at(line, list), what: "assistant turn (there is none)" });
        }
        Ok(Record::Chat(messages))
    }
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
