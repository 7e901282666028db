//! Records to token ids with a loss mask, by the conventions of TRL's `SFTTrainer`:
//!
//! - `text`: `tokenize(text) + [EOS]`; every token is supervised.
//! - prompt/completion: `tokenize(prompt) + tokenize(completion) + [EOS]`; the completion and
//!   the EOS are supervised, the prompt is not.
//! - Alpaca and chat: the conversation rendered with the chat template and tokenized without
//!   added special tokens (the template writes its own); only the assistant turns (content and
//!   end-of-turn token) are supervised, or every token with `assistant_only_loss = false`.
//!
//! BOS is put first (text, prompt/completion) only when the tokenizer's config says so
//! (`add_bos`). EOS is not repeated when the text already ends with it.

use serde::{Deserialize, Serialize};

use super::error::{DataError, Location};
use super::record::Record;
use super::spans::SpanError;
use super::template::ChatTemplate;
use crate::tokenizer::Tokenizer;

/// One tokenized example. `ids` and `mask` have the same length L; `mask[i]` says whether
/// token `i` is supervised, that is, whether predicting it from `ids[..i]` enters the loss.
/// `mask[0]` never counts (nothing predicts the first token).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Example {
    pub ids: Vec<u32>,   // (L)
    pub mask: Vec<bool>, // (L)
    /// The record's 1-based line in its file.
    pub line: usize,
}

impl Example {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Supervised tokens that are predicted: `mask[1..]` set.
    pub fn supervised(&self) -> usize {
        self.mask.iter().skip(1).filter(|&&m| m).count()
    }
}

/// Options of tokenization.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct EncodeOptions {
    /// Chat and Alpaca: loss on assistant turns only (default); `false` trains on every token.
    pub assistant_only_loss: bool,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        Self { assistant_only_loss: true }
    }
}

/// Tokenizes records of one file.
pub struct Encoder<'a> {
    pub tokenizer: &'a Tokenizer,
    /// Needed for chat and Alpaca records.
    pub template: Option<&'a ChatTemplate>,
    pub options: EncodeOptions,
    pub file: &'a str,
}

impl Encoder<'_> {
    fn at(&self, line: usize) -> Location {
        Location { file: self.file.into(), line, field: None }
    }

    fn tokens(&self, line: usize, text: &str) -> Result<Vec<u32>, DataError> {
        self.tokenizer
            .inner()
            .encode_fast(text, false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| DataError::Tokenize { at: self.at(line), reason: e.to_string() })
    }

    fn bos(&self) -> Option<u32> {
        self.tokenizer.special.bos.filter(|_| self.tokenizer.special.add_bos)
    }

    fn push_eos(&self, ids: &mut Vec<u32>, mask: &mut Vec<bool>) {
        if let Some(eos) = self.tokenizer.special.eos {
            if ids.last() != Some(&eos) {
                ids.push(eos);
                mask.push(true);
            }
        }
    }

    /// The example of record `r` from line `line`.
    pub fn encode(&self, line: usize, r: &Record) -> Result<Example, DataError> {
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        if let Some(bos) = self.bos().filter(|_| !matches!(r, Record::Chat(_))) {
            ids.push(bos);
            mask.push(false);
        }
        match r {
            Record::Text(text) => {
                ids.extend(self.tokens(line, text)?);
                mask.resize(ids.len(), true);
                self.push_eos(&mut ids, &mut mask);
            }
            Record::PromptCompletion { prompt, completion } => {
                ids.extend(self.tokens(line, prompt)?);
                mask.resize(ids.len(), false);
                ids.extend(self.tokens(line, completion)?);
                mask.resize(ids.len(), true);
                self.push_eos(&mut ids, &mut mask);
            }
            Record::Chat(chat) => {
                let Some(template) = self.template else {
                    return Err(DataError::Template {
                        at: self.at(line),
                        reason: "no chat template given for chat data".into(),
                    });
                };
                let (text, spans) = template.for_chat(chat).render_with_spans(chat).map_err(|e| match e {
                    SpanError::Render(reason) => DataError::Template { at: self.at(line), reason },
                    SpanError::NotFound(i) => DataError::TemplateMask {
                        at: Location { field: Some(format!("messages[{i}]")), ..self.at(line) },
                        reason: "the assistant turn is not in the rendered text".into(),
                    },
                })?;
                let enc = self
                    .tokenizer
                    .inner()
                    .encode(text.as_str(), false)
                    .map_err(|e| DataError::Tokenize { at: self.at(line), reason: e.to_string() })?;
                ids.extend_from_slice(enc.get_ids());
                if self.options.assistant_only_loss {
                    mask.extend(enc.get_offsets().iter().map(|&(s, e)| in_spans(&spans, s, e)));
                } else {
                    mask.resize(ids.len(), true);
                }
            }
        }
        Ok(Example { ids, mask, line })
    }

    /// Every record, in order (plain text cut into windows of `windows` tokens when given).
    /// Natively the records are spread over the CPU's threads; in wasm they run in turn.
    pub fn encode_all(
        &self,
        records: &[(usize, Record)],
        windows: Option<usize>,
    ) -> Vec<Result<Vec<Example>, DataError>> {
        let one = |(line, r): &(usize, Record)| match (windows, r) {
            (Some(len), Record::Text(text)) => self.windows(*line, text, len),
            _ => self.encode(*line, r).map(|e| vec![e]),
        };
        #[cfg(not(target_arch = "wasm32"))]
        {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
            let threads = threads.min(records.len() / 256).max(1);
            if threads > 1 {
                let chunk = records.len().div_ceil(threads);
                return std::thread::scope(|s| {
                    let workers: Vec<_> =
                        records.chunks(chunk).map(|c| s.spawn(move || c.iter().map(one).collect::<Vec<_>>())).collect();
                    workers
                        .into_iter()
                        .flat_map(|w| {
                            w.join()
                                .unwrap_or_else(|_| vec![Err(DataError::Worker("a tokenizer thread failed".into()))])
                        })
                        .collect()
                });
            }
        }
        records.iter().map(one).collect()
    }

    /// The token stream of `text` cut into windows of `len` tokens, each fully supervised;
    /// EOS ends the stream. (Plain text in [`super::TextMode::Windows`].)
    pub fn windows(&self, line: usize, text: &str, len: usize) -> Result<Vec<Example>, DataError> {
        let mut ids = self.tokens(line, text)?;
        let mut mask = vec![true; ids.len()];
        self.push_eos(&mut ids, &mut mask);
        let len = len.max(2);
        let bos = self.bos();
        let body = len - usize::from(bos.is_some());
        Ok(ids
            .chunks(body)
            .filter(|c| c.len() >= 2)
            .map(|c| {
                let ids: Vec<u32> = bos.into_iter().chain(c.iter().copied()).collect();
                let mut mask = vec![true; ids.len()];
                if bos.is_some() {
                    mask[0] = false;
                }
                Example { ids, mask, line }
            })
            .collect())
    }
}

/// Whether a token at bytes `s..e` lies in (overlaps) one of the sorted `spans`.
fn in_spans(spans: &[std::ops::Range<usize>], s: usize, e: usize) -> bool {
    let e = e.max(s + 1);
    let i = spans.partition_point(|r| r.end <= s);
    spans.get(i).is_some_and(|r| r.start < e)
}
