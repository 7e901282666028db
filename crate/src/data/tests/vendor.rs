//! Vendors' chat templates (`tests/fixtures/templates/`, each as `chat_template.jinja` and in
//! `tokenizer_config.json`) with SmolLM2's tokenizer, against transformers' own renderings, token
//! ids and masks (`make_fixtures.py` made them; see its README).

use std::path::PathBuf;

use serde::Deserialize;

use super::smollm2;
use crate::data::{parse_file, ChatTemplate, EncodeOptions, Encoder, ParseOptions, Record, TemplateSource};

/// 2026-03-07 12:00 UTC, the time `make_fixtures.py` gives `strftime_now`.
const FIXTURE_TIME: i64 = 1_772_884_800;

#[derive(Deserialize)]
struct Expected {
    now: String,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    template: String,
    line: usize,
    rendered: Option<String>,
    ids: Option<Vec<u32>>,
    mask: Option<Vec<u8>>,
    error: Option<String>,
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/templates")
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The template `name` as a copy of the SmolLM2 folder gives it: from `chat_template.jinja`,
/// and from `tokenizer_config.json`.
fn templates(name: &str) -> [ChatTemplate; 2] {
    let dir = fixtures().join(name);
    let jinja = read(dir.join("chat_template.jinja"));
    let config = read(dir.join("tokenizer_config.json"));
    let from_jinja = TemplateSource::from_hf(Some(&jinja), None, Some(&config), None).unwrap().unwrap();
    let from_config = TemplateSource::from_hf(None, None, Some(&config), None).unwrap().unwrap();
    assert_eq!(from_jinja.origin, "chat_template.jinja");
    assert_eq!(from_config.origin, "tokenizer_config.json");
    assert_eq!(from_jinja.text, from_config.text, "{name}: the two places hold the same template");
    [from_jinja, from_config].map(|s| {
        let t = ChatTemplate::from_source(&smollm2().tokenizer, &s).unwrap();
        t.set_time(Some(FIXTURE_TIME));
        t
    })
}

/// The records of conversations.jsonl by line, each read on its own (the file mixes formats).
fn records() -> Vec<(usize, Record)> {
    let text = read(fixtures().join("conversations.jsonl"));
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let parsed = parse_file("conversations.jsonl", line.as_bytes(), &ParseOptions::default()).unwrap();
        out.push((i + 1, parsed.records.into_iter().next().unwrap().1));
    }
    out
}

#[test]
fn vendor_templates_render_tokenize_and_mask_as_transformers_does() {
    let expected: Expected = serde_json::from_str(&read(fixtures().join("expected.json"))).unwrap();
    assert_eq!(expected.now, "2026-03-07T12:00:00");
    let records = records();
    let tok = &smollm2().tokenizer;
    let mut names: Vec<&str> = expected.cases.iter().map(|c| c.template.as_str()).collect();
    names.dedup();
    let (mut rendered, mut refused) = (0, 0);
    for name in &names {
        for t in templates(name) {
            let encoder = Encoder { tokenizer: tok, template: Some(&t), options: EncodeOptions::default(), file: "c" };
            for case in expected.cases.iter().filter(|c| c.template == *name) {
                let what = format!("{name} from {}, line {}", t.origin, case.line);
                let record = &records.iter().find(|(l, _)| *l == case.line).expect("a record for each case").1;
                let got = encoder.encode(case.line, record);
                if let Some(err) = &case.error {
                    assert!(got.is_err(), "{what}: transformers refuses this record ({err}); so must we");
                    refused += 1;
                    continue;
                }
                let Record::Chat(chat) = record else { panic!("{what}: not a chat") };
                let text = t.render_chat(chat, false).unwrap().text;
                assert_eq!(Some(&text), case.rendered.as_ref(), "{what}: rendering");
                let e = got.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(Some(&e.ids), case.ids.as_ref(), "{what}: token ids");
                let mask: Vec<u8> = e.mask.iter().map(|&m| u8::from(m)).collect();
                if Some(&mask) != case.mask.as_ref() {
                    let want = case.mask.clone().unwrap_or_default();
                    let at = mask.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(mask.len().min(want.len()));
                    let piece = tok.decode(&e.ids[at.saturating_sub(3)..(at + 3).min(e.ids.len())], false).unwrap();
                    panic!(
                        "{what}: masks differ first at token {at} (got {:?}, want {:?}) near {piece:?}",
                        mask.get(at),
                        want.get(at)
                    );
                }
                assert!(e.supervised() > 0, "{what}: something is trained");
                rendered += 1;
            }
        }
    }
    // 10 templates, 7 records, each template from both places.
    assert_eq!(names.len(), 10);
    assert_eq!((rendered, refused), (2 * 62, 2 * 8));
}
