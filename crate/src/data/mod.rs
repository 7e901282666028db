//! The training-data path: a file of examples in whatever shape the user has, to token batches
//! with a loss mask, and a summary of what was found.
//!
//! ```text
//! bytes ──parse_file──▶ records ──Encoder──▶ Example { ids, mask } ──truncate──▶ Dataset
//!       (JSONL, JSON, CSV/TSV, text;   (chat template,          │
//!        format detected or chosen)     TRL conventions)        ├─ split_eval ─▶ (train, eval)
//!                                                                └─ Batcher ──▶ TokenBatch (B, T)
//! ```
//!
//! Formats ([`RecordFormat`]) and their loss, as TRL's `SFTTrainer` does it by default:
//!
//! | fields | rendered as | supervised |
//! |---|---|---|
//! | `text` | `tokenize(text) + EOS` | every token |
//! | `prompt`, `completion` | `tokenize(prompt) + tokenize(completion) + EOS` | completion and EOS |
//! | `prompt`, `completion` as lists of turns (TRL's conversational form) | chat template over both | the completion's assistant turns |
//! | `instruction`, `input`?, `output`, `system`? (Alpaca) | chat template: system?, user = instruction (+ blank line + input), assistant = output | assistant turns |
//! | `messages` [{`role`, `content`, `tool_calls`?, ...}], `tools`? (OpenAI) | chat template | assistant turns |
//! | `conversations` [{`from`, `value`}] (ShareGPT) | chat template; human/gpt → user/assistant | assistant turns |
//! | plain text | blocks separated by blank lines, each as `text`; or windows of `seq_len` tokens | every token |
//!
//! "Assistant turns" means the `{% generation %}` blocks of templates that have them, else each
//! assistant turn's text and tool calls through the end-of-turn text the template writes after
//! it (for ChatML `…<|im_end|>`, not the newline after it; see `spans.rs`);
//! [`EncodeOptions::assistant_only_loss`] `= false`
//! trains on every token. BOS is added only when the tokenizer asks for it (`add_bos`); chat
//! templates write their own. Examples longer than `seq_len` keep their first `seq_len` tokens
//! and are counted; one left with no supervised token is dropped and counted. The batch loss is
//! the mean over all supervised tokens in the batch, as transformers computes it.

mod batch;
mod encode;
mod error;
mod lookup;
mod parse;
mod record;
mod spans;
mod summary;
mod template;

#[cfg(test)]
mod tests;

#[cfg(not(target_arch = "wasm32"))]
pub mod bench;

pub use batch::{BatchOptions, Batcher, Rng, TokenBatch, IGNORE_INDEX};
pub use encode::{EncodeOptions, Encoder, Example};
pub use error::{DataError, Location, SkippedLine};
pub use lookup::TemplateSource;
pub use parse::{detect_kind, parse_file, FileKind, ParseOptions, ParsedFile, TextMode};
pub use record::{Chat, Message, Record, RecordFormat};
pub use spans::SpanError;
pub use summary::{DataSummary, MaskedSpan, RenderedExample};
pub use template::{strftime, ChatTemplate, Rendered, CHATML_TEMPLATE};

use serde::{Deserialize, Serialize};

use crate::tokenizer::Tokenizer;

/// Everything that decides how a file becomes examples.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct DataOptions {
    pub parse: ParseOptions,
    pub encode: EncodeOptions,
    /// Examples are cut to this many tokens (and text windows are this long).
    pub seq_len: usize,
    /// Fraction of the examples held out for evaluation when there is no eval file (0: none).
    pub eval_fraction: f64,
    /// Seed of the eval split.
    pub seed: u64,
}

impl Default for DataOptions {
    fn default() -> Self {
        Self {
            parse: ParseOptions::default(),
            encode: EncodeOptions::default(),
            seq_len: 1024,
            eval_fraction: 0.0,
            seed: 42,
        }
    }
}

/// Counts made while loading.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct LoadStats {
    /// Examples longer than `seq_len`, and the tokens cut from them.
    pub truncated_examples: usize,
    pub truncated_tokens: u64,
    /// Examples dropped because truncation left them no supervised token.
    pub dropped_unsupervised: usize,
    /// The longest example before truncation, in tokens, and its line.
    pub longest_example: usize,
    pub longest_example_line: usize,
}

/// The tokenized examples of one file.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub file: String,
    pub kind: FileKind,
    pub format: RecordFormat,
    pub examples: Vec<Example>,
    pub skipped: Vec<SkippedLine>,
    pub stats: LoadStats,
    /// Things the user should know (e.g. the ChatML fallback was used).
    pub warnings: Vec<String>,
    /// Where the chat template came from (`chat_template.jinja`, `tokenizer_config.json`,
    /// `GGUF metadata`, a file, `chatml (fallback)`), or `None` when no template was needed.
    pub chat_template: Option<String>,
}

impl Dataset {
    /// Reads, tokenizes and truncates the file `file` (its bytes). `template` is the model's
    /// chat template; chat data without one uses ChatML, with a warning.
    pub fn load(
        file: &str,
        bytes: &[u8],
        tokenizer: &Tokenizer,
        template: Option<&ChatTemplate>,
        options: &DataOptions,
    ) -> Result<Self, DataError> {
        let parsed = parse_file(file, bytes, &options.parse)?;
        Self::encode(parsed, tokenizer, template, options)
    }

    /// Tokenizes and truncates records read by [`parse_file`].
    pub fn encode(
        parsed: ParsedFile,
        tokenizer: &Tokenizer,
        template: Option<&ChatTemplate>,
        options: &DataOptions,
    ) -> Result<Self, DataError> {
        if options.seq_len < 2 {
            return Err(DataError::Options(format!("seq_len {} is below 2", options.seq_len)));
        }
        let file = parsed.file.as_str();
        let mut warnings = Vec::new();
        let is_chat = parsed.records.iter().any(|(_, r)| matches!(r, Record::Chat(_)));
        let fallback;
        let template = match (is_chat, template) {
            (false, _) => None,
            (true, Some(t)) => Some(t),
            (true, None) => {
                let text = |id: Option<u32>| id.and_then(|i| tokenizer.inner().id_to_token(i)).unwrap_or_default();
                let eos = tokenizer
                    .token_to_id("<|im_end|>")
                    .map_or_else(|| text(tokenizer.special.eos), |_| "<|im_end|>".into());
                fallback = ChatTemplate::chatml(&text(tokenizer.special.bos), &eos)?;
                let mut w = "the model has no chat template: the conversations are rendered as ChatML".to_string();
                if tokenizer.token_to_id("<|im_start|>").is_none() {
                    w.push_str(" (and its vocabulary has no <|im_start|> token)");
                }
                warnings.push(w);
                Some(&fallback)
            }
        };
        if template.is_some_and(|t| t.is_fallback) && warnings.is_empty() {
            warnings.push("the conversations are rendered with the built-in ChatML template".into());
        }
        let chat_template = template.map(|t| t.origin.clone());
        if let Some(t) = template {
            warnings.extend(tool_warnings(t, &parsed.records));
        }
        let encoder = Encoder { tokenizer, template, options: options.encode.clone(), file };
        let mut skipped = parsed.skipped;
        let mut stats = LoadStats::default();
        let mut examples = Vec::with_capacity(parsed.records.len());
        let mut shortest_prompt: Option<usize> = None;
        let windows =
            (parsed.kind == FileKind::Text && parsed.text_mode == TextMode::Windows).then_some(options.seq_len);
        for encoded in encoder.encode_all(&parsed.records, windows) {
            let encoded = match encoded {
                Ok(e) => e,
                Err(e) if options.parse.skip_bad_lines && e.is_record_error() => {
                    skipped.push(SkippedLine::from_error(&e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            for mut e in encoded {
                if e.len() > stats.longest_example {
                    stats.longest_example = e.len();
                    stats.longest_example_line = e.line;
                }
                // Where the first supervised token stands before truncation, to say why an
                // example was dropped.
                let first_answer = e.mask.iter().position(|&m| m);
                if e.len() > options.seq_len {
                    stats.truncated_examples += 1;
                    stats.truncated_tokens += (e.len() - options.seq_len) as u64;
                    e.ids.truncate(options.seq_len);
                    e.mask.truncate(options.seq_len);
                }
                if e.supervised() == 0 {
                    stats.dropped_unsupervised += 1;
                    if let Some(p) = first_answer {
                        shortest_prompt = Some(shortest_prompt.map_or(p, |s: usize| s.min(p)));
                    }
                    continue;
                }
                examples.push(e);
            }
        }
        skipped.sort_by_key(|s| s.line);
        if stats.dropped_unsupervised > 0 {
            warnings.push(format!(
                "{} example(s) had no supervised token left after truncation to {} tokens and were dropped",
                stats.dropped_unsupervised, options.seq_len
            ));
        }
        if examples.is_empty() {
            let n = stats.dropped_unsupervised;
            let reason = match shortest_prompt {
                Some(p) => format!(
                    "all {n} examples have their first answer token past --seq-len {}; the shortest prompt is {p} tokens",
                    options.seq_len
                ),
                None => format!("none of the {n} examples has a token to train on"),
            };
            return Err(DataError::NoUsableExamples { file: file.into(), reason });
        }
        Ok(Self {
            file: file.into(),
            kind: parsed.kind,
            format: parsed.format,
            examples,
            skipped,
            stats,
            warnings,
            chat_template,
        })
    }

    /// Holds out `fraction` of the examples (at least one when `fraction > 0` and there are two
    /// or more), chosen by `seed`; both parts keep the file order.
    pub fn split_eval(mut self, fraction: f64, seed: u64) -> (Dataset, Vec<Example>) {
        let n = self.examples.len();
        if fraction.is_nan() || fraction <= 0.0 || n < 2 {
            return (self, Vec::new());
        }
        let k = ((n as f64 * fraction.min(1.0)).round() as usize).clamp(1, n - 1);
        let mut order: Vec<usize> = (0..n).collect();
        Rng::new(seed).shuffle(&mut order);
        let mut held = vec![false; n];
        for &i in &order[..k] {
            held[i] = true;
        }
        let (mut train, mut eval) = (Vec::with_capacity(n - k), Vec::with_capacity(k));
        for (i, e) in std::mem::take(&mut self.examples).into_iter().enumerate() {
            if held[i] {
                eval.push(e)
            } else {
                train.push(e)
            }
        }
        self.examples = train;
        (self, eval)
    }

    pub fn tokens(&self) -> u64 {
        self.examples.iter().map(|e| e.len() as u64).sum()
    }

    pub fn supervised_tokens(&self) -> u64 {
        self.examples.iter().map(|e| e.supervised() as u64).sum()
    }
}

/// Warnings for records with tools or tool calls that the template never looks at (it would
/// drop them silently, as transformers does).
fn tool_warnings(t: &ChatTemplate, records: &[(usize, Record)]) -> Vec<String> {
    let chats = || records.iter().filter_map(|(_, r)| if let Record::Chat(c) = r { Some(c) } else { None });
    let with_tools = chats().filter(|c| c.tools.is_some()).count();
    let with_calls = chats().filter(|c| c.messages.iter().any(|m| m.calls_tools())).count();
    let mut out = Vec::new();
    let t = t.tool_use.as_deref().unwrap_or(t);
    if with_tools > 0 && !t.reads("tools") {
        out.push(format!(
            "{with_tools} record(s) list tools, but the chat template ({}) does not show tools to the model",
            t.origin
        ));
    }
    if with_calls > 0 && !t.reads("tool_calls") {
        out.push(format!(
            "{with_calls} record(s) call tools, but the chat template ({}) does not render tool calls",
            t.origin
        ));
    }
    out
}

/// A training set, its eval set and their summary.
#[derive(Clone, Debug)]
pub struct Prepared {
    pub train: Dataset,
    pub eval: Vec<Example>,
    pub summary: DataSummary,
}

/// Loads the training file and the eval file if there is one (else holds out
/// `options.eval_fraction` of the training examples), and summarises them.
pub fn prepare(
    train: (&str, &[u8]),
    eval: Option<(&str, &[u8])>,
    tokenizer: &Tokenizer,
    template: Option<&ChatTemplate>,
    options: &DataOptions,
) -> Result<Prepared, DataError> {
    let data = Dataset::load(train.0, train.1, tokenizer, template, options)?;
    let (data, eval) = match eval {
        Some((file, bytes)) => {
            let e = Dataset::load(file, bytes, tokenizer, template, options)?;
            (data, e.examples)
        }
        None => data.split_eval(options.eval_fraction, options.seed),
    };
    let summary = DataSummary::new(&data, &eval, tokenizer, options.seq_len);
    Ok(Prepared { train: data, eval, summary })
}

/// The pad id for batches: the tokenizer's pad token, else its EOS, else 0.
pub fn pad_id(tokenizer: &Tokenizer) -> u32 {
    tokenizer.special.pad.or(tokenizer.special.eos).unwrap_or(0)
}
