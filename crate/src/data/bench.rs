//! Throughput of the data path: a synthetic JSONL file of a given size, parsed, tokenized,
//! truncated and batched for one epoch. `examples/data_bench.rs` runs it; the CLI's `bench`
//! can call [`run`]. Native only (it reads the clock).

use std::time::Instant;

use serde::Serialize;

use super::batch::{BatchOptions, Batcher, Rng};
use super::record::RecordFormat;
use super::template::ChatTemplate;
use super::{pad_id, parse_file, DataError, DataOptions, Dataset};
use crate::tokenizer::Tokenizer;

const WORDS: &[&str] = &[
    "the",
    "model",
    "learns",
    "from",
    "examples",
    "of",
    "questions",
    "and",
    "answers",
    "a",
    "small",
    "language",
    "with",
    "adapter",
    "weights",
    "trained",
    "on",
    "your",
    "own",
    "GPU",
    "inside",
    "browser",
    "tab",
    "quickly",
    "because",
    "only",
    "low-rank",
    "matrices",
    "change",
    "data",
    "is",
    "never",
    "uploaded",
    "anywhere",
    "42",
    "3.14",
    "2024",
    "naïve",
    "café",
    "数据",
    "训练",
    "模型",
    "🙂",
    "🚀",
    "résumé",
    "über",
    "straße",
    "(see",
    "below)",
    "—",
    "etc.",
];

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(WORDS[rng.below(WORDS.len())]);
    }
    s.push('.');
    s
}

/// A JSONL file of about `target_bytes` bytes whose records have `format`; the same seed gives
/// the same file.
pub fn synthetic_jsonl(target_bytes: usize, format: RecordFormat, seed: u64) -> Vec<u8> {
    let mut rng = Rng::new(seed);
    let mut out = Vec::with_capacity(target_bytes + 4096);
    while out.len() < target_bytes {
        let (nq, na) = (8 + rng.below(30), 20 + rng.below(150));
        let q = sentence(&mut rng, nq);
        let a = sentence(&mut rng, na);
        let record = match format {
            RecordFormat::Text => serde_json::json!({ "text": format!("{q} {a}") }),
            RecordFormat::PromptCompletion => serde_json::json!({ "prompt": q, "completion": a }),
            RecordFormat::Alpaca => {
                serde_json::json!({ "instruction": q, "input": "", "output": a })
            }
            RecordFormat::Messages => serde_json::json!({ "messages": [
                { "role": "user", "content": q },
                { "role": "assistant", "content": a },
            ]}),
            RecordFormat::ShareGpt => serde_json::json!({ "conversations": [
                { "from": "human", "value": q },
                { "from": "gpt", "value": a },
            ]}),
        };
        out.extend_from_slice(record.to_string().as_bytes());
        out.push(b'\n');
    }
    out
}

/// What a run measured.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub bytes: usize,
    pub examples: usize,
    pub tokens: u64,
    pub supervised_tokens: u64,
    pub batches: usize,
    /// Reading the file into records.
    pub parse_seconds: f64,
    /// Parsing, tokenizing and truncating.
    pub load_seconds: f64,
    /// Building every batch of one epoch.
    pub batch_seconds: f64,
    /// Bytes of input per second over both, in MB (10^6 bytes).
    pub mb_per_second: f64,
    pub tokens_per_second: f64,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} MB, {} examples, {} tokens ({} supervised), {} batches: load {:.2} s (parse {:.2} s) + batch {:.2} s = {:.1} MB/s, {:.0} tokens/s",
            self.bytes as f64 / 1e6,
            self.examples,
            self.tokens,
            self.supervised_tokens,
            self.batches,
            self.load_seconds,
            self.parse_seconds,
            self.batch_seconds,
            self.mb_per_second,
            self.tokens_per_second
        )
    }
}

/// Loads `bytes` as the file `file` and builds one epoch of batches, timing both.
pub fn run(
    file: &str,
    bytes: &[u8],
    tokenizer: &Tokenizer,
    template: Option<&ChatTemplate>,
    options: &DataOptions,
    batching: &BatchOptions,
) -> Result<BenchReport, DataError> {
    let t0 = Instant::now();
    let parsed = parse_file(file, bytes, &options.parse)?;
    let parse_seconds = t0.elapsed().as_secs_f64();
    let data = Dataset::encode(parsed, tokenizer, template, options)?;
    let load_seconds = t0.elapsed().as_secs_f64();
    let (examples, tokens, supervised_tokens) = (data.examples.len(), data.tokens(), data.supervised_tokens());
    let t1 = Instant::now();
    let batcher = Batcher::new(data.examples, batching.clone(), pad_id(tokenizer));
    let mut batches = 0;
    let mut checksum = 0usize;
    for b in batcher.epoch(0) {
        batches += 1;
        checksum = checksum.wrapping_add(b.supervised);
    }
    std::hint::black_box(checksum);
    let batch_seconds = t1.elapsed().as_secs_f64();
    let total = (load_seconds + batch_seconds).max(1e-9);
    Ok(BenchReport {
        bytes: bytes.len(),
        examples,
        tokens,
        supervised_tokens,
        batches,
        parse_seconds,
        load_seconds,
        batch_seconds,
        mb_per_second: bytes.len() as f64 / 1e6 / total,
        tokens_per_second: tokens as f64 / total,
    })
}
