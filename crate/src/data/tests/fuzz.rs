//! Thousands of random and mutated inputs through the parsers (and some through tokenization):
//! none may panic. Deterministic, so a failure reproduces.

use super::smollm2;
use crate::data::{parse_file, DataOptions, Dataset, FileKind, ParseOptions, Rng};

const SEEDS: &[(&str, &str)] = &[
    ("a.jsonl", "{\"text\": \"héllo 世界 🙂\"}\n{\"prompt\": \"p\", \"completion\": \"c\"}\n"),
    ("b.jsonl", "{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}]}]}\n"),
    ("c.jsonl", "{\"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", \"value\": \"a\"}]}\n"),
    ("d.json", "[{\"instruction\": \"i\", \"input\": \"x\", \"output\": \"o\", \"system\": \"s\"}, {\"instruction\": \"j\", \"output\": \"p\"}]"),
    ("e.csv", "prompt,completion\n\"a, b\",\"c\"\"d\"\n你好,🙂\n"),
    ("f.tsv", "instruction\tinput\toutput\nx\t\ty\n"),
    ("g.txt", "block one\nline\n\nblock two\r\n\r\n"),
];

const SPICE: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\n",
    b"\r\n",
    b"\t",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"\xff",
    b"\xc3",
    b"\xe4\xb8",
    b"\xf0\x9f\x99",
    b"\0",
    b"null",
    b"true",
    b"1e999",
    b"-0",
    b"\"text\"",
    b"\"messages\"",
    b"\"role\"",
    b"\"assistant\"",
    b"\"content\"",
    b"{{",
    b"{%",
    b"<|im_end|>",
    b"\xEF\xBB\xBF",
];

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(v.len() + 1);
        match rng.below(6) {
            0 if !v.is_empty() => {
                let i = at.min(v.len() - 1);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let s = SPICE[rng.below(SPICE.len())];
                v.splice(at..at, s.iter().copied());
            }
            2 if !v.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(v.len());
                v.drain(at.min(end)..end);
            }
            3 => {
                let b = rng.next_u64() as u8;
                v.insert(at, b);
            }
            4 if !v.is_empty() => {
                let (a, b) = (rng.below(v.len()), rng.below(v.len()));
                let (a, b) = (a.min(b), a.max(b).min(a.min(b) + 32));
                let chunk = v[a..b].to_vec();
                v.splice(at..at, chunk);
            }
            _ => v.truncate(at),
        }
    }
    v
}

fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = rng.below(200);
    (0..n)
        .map(|_| if rng.below(2) == 0 { b"{}[]\",:\n\t abtx0\\"[rng.below(16)] } else { rng.next_u64() as u8 })
        .collect()
}

#[test]
fn the_parsers_never_panic() {
    let mut rng = Rng::new(0x5EED);
    let kinds = [
        None,
        Some(FileKind::Jsonl),
        Some(FileKind::Json),
        Some(FileKind::Csv),
        Some(FileKind::Tsv),
        Some(FileKind::Text),
    ];
    let mut parsed = 0;
    for n in 0..6000 {
        let (name, seed) = SEEDS[n % SEEDS.len()];
        let input = if n % 5 == 4 { random_bytes(&mut rng) } else { mutate(&mut rng, seed.as_bytes()) };
        let opts = ParseOptions {
            kind: kinds[rng.below(kinds.len())],
            skip_bad_lines: rng.below(2) == 0,
            ..Default::default()
        };
        let result = std::panic::catch_unwind(|| parse_file(name, &input, &opts));
        match result {
            Ok(Ok(_)) => parsed += 1,
            Ok(Err(e)) => {
                let _ = e.to_string();
            }
            Err(_) => panic!("parse_file panicked on {name} {:?} with {opts:?}", String::from_utf8_lossy(&input)),
        }
    }
    assert!(parsed > 500, "only {parsed} inputs parsed: the mutations are too harsh to test much");
}

#[test]
fn loading_mutated_files_never_panics() {
    let m = smollm2();
    let mut rng = Rng::new(0xF00D);
    for n in 0..700 {
        let (name, seed) = SEEDS[n % SEEDS.len()];
        let input = mutate(&mut rng, seed.as_bytes());
        let mut o = DataOptions::default();
        o.parse.skip_bad_lines = rng.below(2) == 0;
        o.seq_len = 2 + rng.below(40);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            Dataset::load(name, &input, &m.tokenizer, Some(&m.template), &o)
        }));
        assert!(result.is_ok(), "load panicked on {name} {:?}", String::from_utf8_lossy(&input));
    }
}
