//! Throughput of the data path: generates a JSONL file (50 MB by default), then parses,
//! tokenizes and batches it with SmolLM2's tokenizer and chat template, and prints MB/s.
//!
//! cargo run --release -p weblora --example data_bench -- [MB] [text|prompt|alpaca|messages|sharegpt] [model.gguf]

use std::path::PathBuf;

use weblora::data::{bench, BatchOptions, ChatTemplate, DataOptions, RecordFormat};
use weblora::io::read_gguf_header;
use weblora::tokenizer::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mb: f64 = args.first().map(|s| s.parse()).transpose()?.unwrap_or(50.0);
    let format = match args.get(1).map(String::as_str).unwrap_or("messages") {
        "text" => RecordFormat::Text,
        "prompt" => RecordFormat::PromptCompletion,
        "alpaca" => RecordFormat::Alpaca,
        "messages" => RecordFormat::Messages,
        "sharegpt" => RecordFormat::ShareGpt,
        other => return Err(format!("unknown format {other}").into()),
    };
    let model = args.get(2).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    });
    let header = read_gguf_header(&model)?;
    let tokenizer = Tokenizer::from_gguf(&header)?;
    let template = ChatTemplate::from_gguf(&header)?;

    let path = std::env::temp_dir().join(format!("weblora-bench-{}.jsonl", format.name().replace('/', "-")));
    std::fs::write(&path, bench::synthetic_jsonl((mb * 1e6) as usize, format, 1))?;
    let bytes = std::fs::read(&path)?;
    println!("{}: {:.1} MB of {} records", path.display(), bytes.len() as f64 / 1e6, format.name());

    let options = DataOptions { seq_len: 1024, ..Default::default() };
    let batching = BatchOptions { batch_size: 8, seq_len: 1024, ..Default::default() };
    let report = bench::run("bench.jsonl", &bytes, &tokenizer, template.as_ref(), &options, &batching)?;
    println!("{report}");
    std::fs::remove_file(&path)?;
    Ok(())
}
