//! The data-file parsers (JSONL, JSON, CSV, TSV, text) on arbitrary bytes: errors, never panics.
//! The first byte picks the file kind and "skip bad lines"; the rest is the file.
//!
//! cargo +nightly fuzz run data_parse

#![no_main]

use libfuzzer_sys::fuzz_target;
use weblora::data::{parse_file, FileKind, ParseOptions, TextMode};

const KINDS: [Option<FileKind>; 6] = [
    None,
    Some(FileKind::Jsonl),
    Some(FileKind::Json),
    Some(FileKind::Csv),
    Some(FileKind::Tsv),
    Some(FileKind::Text),
];

fuzz_target!(|data: &[u8]| {
    let Some((&first, bytes)) = data.split_first() else {
        return;
    };
    let options = ParseOptions {
        kind: KINDS[first as usize % KINDS.len()],
        format: None,
        text_mode: if first & 0x40 != 0 { TextMode::Windows } else { TextMode::Blocks },
        skip_bad_lines: first & 0x80 != 0,
    };
    if let Err(e) = parse_file("fuzz.jsonl", bytes, &options) {
        let _ = e.to_string();
    }
});
