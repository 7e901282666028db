//! What was found in the data, for the user to check before training: the page shows it, the
//! CLI prints it (its `Display`).

use serde::Serialize;

use super::encode::Example;
use super::error::SkippedLine;
use super::parse::FileKind;
use super::record::RecordFormat;
use super::Dataset;
use crate::tokenizer::Tokenizer;

/// At most this many skipped lines are listed (all are counted).
const LISTED_SKIPS: usize = 20;

/// A run of tokens with the same mask, as text.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MaskedSpan {
    pub text: String,
    pub supervised: bool,
    pub tokens: usize,
}

/// One example as text, cut where supervision starts and stops.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RenderedExample {
    pub line: usize,
    pub tokens: usize,
    pub supervised: usize,
    pub spans: Vec<MaskedSpan>,
}

impl RenderedExample {
    /// Decodes `e` run by run. The first token is shown unsupervised, as it is never predicted.
    pub fn new(e: &Example, tokenizer: &Tokenizer) -> Self {
        let mut spans = Vec::new();
        let mut start = 0;
        let sup = |i: usize| i > 0 && e.mask.get(i).copied().unwrap_or(false);
        for i in 1..=e.ids.len() {
            if i == e.ids.len() || sup(i) != sup(start) {
                let ids = &e.ids[start..i];
                let text = tokenizer.decode(ids, false).unwrap_or_else(|_| format!("{ids:?}"));
                spans.push(MaskedSpan { text, supervised: sup(start), tokens: ids.len() });
                start = i;
            }
        }
        Self { line: e.line, tokens: e.len(), supervised: e.supervised(), spans }
    }
}

impl std::fmt::Display for RenderedExample {
    /// The text with supervised spans between `[[` and `]]`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for s in &self.spans {
            if s.supervised {
                write!(f, "[[{}]]", s.text)?;
            } else {
                f.write_str(&s.text)?;
            }
        }
        Ok(())
    }
}

/// The summary of a prepared data set.
#[derive(Clone, Debug, Serialize)]
pub struct DataSummary {
    pub file: String,
    pub kind: FileKind,
    pub format: RecordFormat,
    /// Where the chat template came from (`chat_template.jinja`, `tokenizer_config.json`,
    /// `GGUF metadata`, a file, `chatml (fallback)`), or none when the format needs no template.
    pub chat_template: Option<String>,
    pub seq_len: usize,
    pub examples: usize,
    pub tokens: u64,
    pub supervised_tokens: u64,
    pub eval_examples: usize,
    pub eval_tokens: u64,
    pub eval_supervised_tokens: u64,
    pub truncated_examples: usize,
    pub truncated_tokens: u64,
    pub dropped_unsupervised: usize,
    /// In tokens, before truncation.
    pub longest_example: usize,
    pub longest_example_line: usize,
    pub mean_tokens: f64,
    pub skipped_lines: usize,
    /// The first skipped lines, with why.
    pub skipped: Vec<SkippedLine>,
    pub warnings: Vec<String>,
    pub first_example: Option<RenderedExample>,
}

impl DataSummary {
    pub fn new(data: &Dataset, eval: &[Example], tokenizer: &Tokenizer, seq_len: usize) -> Self {
        let tokens = data.tokens();
        Self {
            file: data.file.clone(),
            kind: data.kind,
            format: data.format,
            chat_template: data.chat_template.clone(),
            seq_len,
            examples: data.examples.len(),
            tokens,
            supervised_tokens: data.supervised_tokens(),
            eval_examples: eval.len(),
            eval_tokens: eval.iter().map(|e| e.len() as u64).sum(),
            eval_supervised_tokens: eval.iter().map(|e| e.supervised() as u64).sum(),
            truncated_examples: data.stats.truncated_examples,
            truncated_tokens: data.stats.truncated_tokens,
            dropped_unsupervised: data.stats.dropped_unsupervised,
            longest_example: data.stats.longest_example,
            longest_example_line: data.stats.longest_example_line,
            mean_tokens: tokens as f64 / data.examples.len().max(1) as f64,
            skipped_lines: data.skipped.len(),
            skipped: data.skipped.iter().take(LISTED_SKIPS).cloned().collect(),
            warnings: data.warnings.clone(),
            first_example: data.examples.first().map(|e| RenderedExample::new(e, tokenizer)),
        }
    }
}

impl std::fmt::Display for DataSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "file:               {} ({:?}, format {})", self.file, self.kind, self.format.name())?;
        if let Some(t) = &self.chat_template {
            writeln!(f, "chat template:      {t}")?;
        }
        writeln!(f, "examples:           {} (+ {} eval)", self.examples, self.eval_examples)?;
        writeln!(f, "tokens:             {} ({} supervised)", self.tokens, self.supervised_tokens)?;
        writeln!(f, "eval tokens:        {} ({} supervised)", self.eval_tokens, self.eval_supervised_tokens)?;
        writeln!(f, "mean length:        {:.1} tokens", self.mean_tokens)?;
        writeln!(f, "longest example:    {} tokens (line {})", self.longest_example, self.longest_example_line)?;
        writeln!(
            f,
            "truncated:          {} examples to {} tokens ({} tokens cut)",
            self.truncated_examples, self.seq_len, self.truncated_tokens
        )?;
        if self.dropped_unsupervised > 0 {
            writeln!(f, "dropped:            {} with nothing to learn after truncation", self.dropped_unsupervised)?;
        }
        writeln!(f, "skipped lines:      {}", self.skipped_lines)?;
        for s in &self.skipped {
            writeln!(f, "  {}", s.reason)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        if let Some(e) = &self.first_example {
            writeln!(
                f,
                "first example (line {}, {} tokens, {} supervised, in [[ ]]):\n{e}",
                e.line, e.tokens, e.supervised
            )?;
        }
        Ok(())
    }
}
