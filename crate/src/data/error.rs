//! Errors of the data path. Each names the file, and where it can the line (1-based) and the
//! field, so that a user can open the file and fix it.

use serde::Serialize;

/// Where in the input a problem is: the file, a 1-based line, and the field when there is one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Location {
    pub file: String,
    /// 1-based line of the record (JSONL: its line; JSON: the line its object starts on; CSV:
    /// the row's line; text: the block's first line). 0 where no line applies.
    pub line: usize,
    /// The field, e.g. `messages[2].content`, when the problem is in one.
    pub field: Option<String>,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ", line {}", self.line)?;
        }
        if let Some(field) = &self.field {
            write!(f, ", field `{field}`")?;
        }
        Ok(())
    }
}

/// A data error. With "skip bad lines" the per-record ones ([`DataError::is_record_error`])
/// are counted and reported instead of stopping the load.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{0}: the file is empty")]
    Empty(String),
    #[error("{at}: not UTF-8 text (invalid byte at offset {offset} of the line)")]
    NotUtf8 { at: Location, offset: usize },
    #[error("{at}: malformed JSON: {reason}")]
    Json { at: Location, reason: String },
    #[error("{at}: malformed CSV: {reason}")]
    Csv { at: Location, reason: String },
    #[error("{at}: missing field (expected for the {format} format)")]
    MissingField { at: Location, format: &'static str },
    #[error("{at}: wrong type: expected {expected}, found {found}")]
    WrongType { at: Location, expected: &'static str, found: &'static str },
    #[error("{at}: empty {what}")]
    EmptyField { at: Location, what: &'static str },
    #[error("{at}: unknown role `{role}` (expected system, user or assistant)")]
    UnknownRole { at: Location, role: String },
    #[error("{at}: cannot tell the format from the fields {found:?}; expected one of `text`, `prompt`+`completion`, `instruction`+`output`, `messages`, `conversations` (or choose the format explicitly)")]
    UnknownFormat { at: Location, found: Vec<String> },
    #[error("chat template does not parse: {0}")]
    TemplateSyntax(String),
    #[error("{at}: the chat template failed to render: {reason}")]
    Template { at: Location, reason: String },
    #[error("{at}: cannot find the assistant turns in the rendered chat: {reason}")]
    TemplateMask { at: Location, reason: String },
    #[error("{at}: tokenizer: {reason}")]
    Tokenize { at: Location, reason: String },
    #[error("{0}: no usable examples")]
    NoExamples(String),
    #[error("{file}: no usable examples: {reason}")]
    NoUsableExamples { file: String, reason: String },
    #[error("data options: {0}")]
    Options(String),
    #[error("data: {0}")]
    Worker(String),
}

impl DataError {
    /// Whether the error belongs to one record, so that "skip bad lines" may skip it.
    pub fn is_record_error(&self) -> bool {
        self.location().is_some_and(|at| at.line > 0)
    }

    /// The location the error names, if any.
    pub fn location(&self) -> Option<&Location> {
        match self {
            Self::NotUtf8 { at, .. }
            | Self::Json { at, .. }
            | Self::Csv { at, .. }
            | Self::MissingField { at, .. }
            | Self::WrongType { at, .. }
            | Self::EmptyField { at, .. }
            | Self::UnknownRole { at, .. }
            | Self::UnknownFormat { at, .. }
            | Self::Template { at, .. }
            | Self::TemplateMask { at, .. }
            | Self::Tokenize { at, .. } => Some(at),
            Self::Empty(_)
            | Self::TemplateSyntax(_)
            | Self::NoExamples(_)
            | Self::NoUsableExamples { .. }
            | Self::Options(_)
            | Self::Worker(_) => None,
        }
    }
}

/// A record left out under "skip bad lines".
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SkippedLine {
    pub line: usize,
    pub field: Option<String>,
    /// The error's message.
    pub reason: String,
}

impl SkippedLine {
    pub(crate) fn from_error(e: &DataError) -> Self {
        let at = e.location();
        Self { line: at.map_or(0, |a| a.line), field: at.and_then(|a| a.field.clone()), reason: e.to_string() }
    }
}
