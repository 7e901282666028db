//! Every format, with the ids and masks it must give.

use super::{expected, ids, load, smollm2, supervised_text, SYSTEM_DEFAULT};
use crate::data::{DataOptions, Dataset, EncodeOptions, FileKind, ParseOptions, RecordFormat, TextMode};

fn opts() -> DataOptions {
    DataOptions::default()
}

#[test]
fn text_jsonl_is_text_then_eos_all_supervised() {
    let d = load("d.jsonl", "{\"text\": \"Hello 世界 🙂 naïve\"}\n\n{\"text\": \"second\"}\n", &opts()).unwrap();
    assert_eq!((d.kind, d.format), (FileKind::Jsonl, RecordFormat::Text));
    assert_eq!(d.examples.len(), 2);
    let e = &d.examples[0];
    let mut want = ids("Hello 世界 🙂 naïve");
    want.push(2);
    assert_eq!(e.ids, want);
    assert!(e.mask.iter().all(|&m| m));
    assert_eq!(e.line, 1);
    assert_eq!(d.examples[1].line, 3);
    let back = smollm2().tokenizer.decode(&e.ids, false).unwrap();
    assert_eq!(back, "Hello 世界 🙂 naïve<|im_end|>");
}

#[test]
fn bos_only_when_the_tokenizer_asks() {
    let m = smollm2();
    let mut tok = crate::tokenizer::Tokenizer::from_gguf(&m.header).unwrap();
    tok.special.add_bos = true;
    let d = Dataset::load("d.jsonl", br#"{"prompt": "Q", "completion": "A"}"#, &tok, None, &opts()).unwrap();
    let e = &d.examples[0];
    assert_eq!(e.ids[0], 1);
    assert!(!e.mask[0]);
    let (mut want, mut mask) = expected(&[("Q", false), ("A", true)]);
    want.insert(0, 1);
    mask.insert(0, false);
    want.push(2);
    mask.push(true);
    assert_eq!((&e.ids, &e.mask), (&want, &mask));
}

#[test]
fn prompt_completion_supervises_completion_and_eos() {
    let d = load("pc.jsonl", r#"{"prompt": "2+2=", "completion": " 4 (四) ✅"}"#, &opts()).unwrap();
    assert_eq!(d.format, RecordFormat::PromptCompletion);
    let e = &d.examples[0];
    let (mut want, mut mask) = expected(&[("2+2=", false), (" 4 (四) ✅", true)]);
    want.push(2);
    mask.push(true);
    assert_eq!((&e.ids, &e.mask), (&want, &mask));
    assert_eq!(supervised_text(e), [" 4 (四) ✅<|im_end|>"]);
}

#[test]
fn messages_multi_turn_mask_is_exactly_the_assistant_tokens() {
    let line = serde_json::json!({"messages": [
        {"role": "system", "content": "Be brief. 简洁。"},
        {"role": "user", "content": "Hi 👋"},
        {"role": "assistant", "content": "Hello! 你好"},
        {"role": "user", "content": "2+2?"},
        {"role": "assistant", "content": "4 🎉"},
    ]})
    .to_string();
    let d = load("chat.jsonl", &line, &opts()).unwrap();
    assert_eq!(d.format, RecordFormat::Messages);
    assert_eq!(d.chat_template.as_deref(), Some("GGUF metadata"));
    let e = &d.examples[0];
    let (want, mask) = expected(&[
        ("<|im_start|>system\nBe brief. 简洁。<|im_end|>\n<|im_start|>user\nHi 👋<|im_end|>\n<|im_start|>assistant\n", false),
        ("Hello! 你好<|im_end|>", true),
        ("\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n", false),
        ("4 🎉<|im_end|>", true),
        ("\n", false),
    ]);
    assert_eq!(e.ids, want);
    assert_eq!(e.mask, mask);
    assert_eq!(supervised_text(e), ["Hello! 你好<|im_end|>", "4 🎉<|im_end|>"]);
}

#[test]
fn the_default_system_prompt_comes_from_the_gguf_template() {
    let d = load(
        "c.jsonl",
        r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}"#,
        &opts(),
    )
    .unwrap();
    let text = smollm2().tokenizer.decode(&d.examples[0].ids, false).unwrap();
    assert_eq!(text, format!("{SYSTEM_DEFAULT}<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"));
    assert_eq!(supervised_text(&d.examples[0]), ["Yo<|im_end|>"]);
}

#[test]
fn sharegpt_maps_roles_and_matches_messages() {
    let sg = r#"{"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"}, {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]}"#;
    let oa = r#"{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"}, {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"}, {"role": "assistant", "content": "A2"}]}"#;
    let a = load("sg.jsonl", sg, &opts()).unwrap();
    let b = load("oa.jsonl", oa, &opts()).unwrap();
    assert_eq!(a.format, RecordFormat::ShareGpt);
    assert_eq!(a.examples[0], b.examples[0]);
    assert_eq!(supervised_text(&a.examples[0]), ["A1<|im_end|>", "A2<|im_end|>"]);
}

#[test]
fn openai_content_parts_are_joined() {
    let d = load("p.jsonl", r#"{"messages": [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}, {"role": "assistant", "content": "c"}]}"#, &opts()).unwrap();
    let text = smollm2().tokenizer.decode(&d.examples[0].ids, false).unwrap();
    assert!(text.contains("<|im_start|>user\nab<|im_end|>"), "{text}");
}

#[test]
fn alpaca_with_input_and_system() {
    let d = load(
        "a.json",
        r#"[{"instruction": "Translate", "input": "猫", "output": "cat 🐱", "system": "You translate."},
            {"instruction": "Say hi", "input": "", "output": "hi"}]"#,
        &opts(),
    )
    .unwrap();
    assert_eq!((d.kind, d.format), (FileKind::Json, RecordFormat::Alpaca));
    assert_eq!((d.examples[0].line, d.examples[1].line), (1, 2));
    let (want, mask) = expected(&[
        ("<|im_start|>system\nYou translate.<|im_end|>\n<|im_start|>user\nTranslate\n\n猫<|im_end|>\n<|im_start|>assistant\n", false),
        ("cat 🐱<|im_end|>", true),
        ("\n", false),
    ]);
    assert_eq!((&d.examples[0].ids, &d.examples[0].mask), (&want, &mask));
    // Empty input: the user turn is the instruction alone; no system: the template's default.
    let text = smollm2().tokenizer.decode(&d.examples[1].ids, false).unwrap();
    assert_eq!(
        text,
        format!("{SYSTEM_DEFAULT}<|im_start|>user\nSay hi<|im_end|>\n<|im_start|>assistant\nhi<|im_end|>\n")
    );
}

#[test]
fn train_on_everything_option() {
    let mut o = opts();
    o.encode = EncodeOptions { assistant_only_loss: false };
    let d = load(
        "c.jsonl",
        r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}"#,
        &o,
    )
    .unwrap();
    assert!(d.examples[0].mask.iter().all(|&m| m));
}

#[test]
fn csv_and_tsv_choose_columns_by_name() {
    let csv = "id,Prompt,completion\n1,\"Hello, world\",\"line one\nline two\"\n2,你好,🙂\n";
    let d = load("d.csv", csv, &opts()).unwrap();
    assert_eq!((d.kind, d.format), (FileKind::Csv, RecordFormat::PromptCompletion));
    assert_eq!(d.examples.len(), 2);
    assert_eq!((d.examples[0].line, d.examples[1].line), (2, 4));
    assert_eq!(supervised_text(&d.examples[0]), ["line one\nline two<|im_end|>"]);
    assert_eq!(supervised_text(&d.examples[1]), ["🙂<|im_end|>"]);

    let tsv = "instruction\tinput\toutput\nAdd\t1 2\t3\nName a color\t\tred\n";
    let d = load("d.tsv", tsv, &opts()).unwrap();
    assert_eq!((d.kind, d.format), (FileKind::Tsv, RecordFormat::Alpaca));
    assert_eq!(supervised_text(&d.examples[0]), ["3<|im_end|>"]);
    let text = smollm2().tokenizer.decode(&d.examples[0].ids, false).unwrap();
    assert!(text.contains("user\nAdd\n\n1 2<|im_end|>"), "{text}");

    // Detected from the header without an extension.
    let d = load("upload", "prompt,completion\nhello,world\n", &opts()).unwrap();
    assert_eq!((d.kind, d.format), (FileKind::Csv, RecordFormat::PromptCompletion));
}

#[test]
fn plain_text_blocks_and_windows() {
    let txt = "First block\nstill first\r\n\r\n\n  \nSecond 第二 🙂\n\n";
    let d = load("notes.txt", txt, &opts()).unwrap();
    assert_eq!((d.kind, d.format), (FileKind::Text, RecordFormat::Text));
    assert_eq!(d.examples.len(), 2);
    assert_eq!((d.examples[0].line, d.examples[1].line), (1, 6));
    let mut want = ids("First block\nstill first");
    want.push(2);
    assert_eq!(d.examples[0].ids, want);

    let long = "word ".repeat(100);
    let mut o = opts();
    o.seq_len = 16;
    o.parse = ParseOptions { text_mode: TextMode::Windows, ..Default::default() };
    let d = load("book.txt", &long, &o).unwrap();
    let mut all = ids(&long);
    all.push(2);
    let joined: Vec<u32> = d.examples.iter().flat_map(|e| e.ids.clone()).collect();
    assert_eq!(joined, all);
    assert!(d.examples.iter().all(|e| e.len() <= 16 && e.mask.iter().all(|&m| m)));
    assert_eq!(d.stats.truncated_examples, 0);
}

#[test]
fn format_override_and_detection_order() {
    let line = r#"{"text": "t", "prompt": "p", "completion": "c"}"#;
    assert_eq!(load("d.jsonl", line, &opts()).unwrap().format, RecordFormat::PromptCompletion);
    let mut o = opts();
    o.parse.format = Some(RecordFormat::Text);
    let d = load("d.jsonl", line, &o).unwrap();
    assert_eq!(d.format, RecordFormat::Text);
    assert_eq!(supervised_text(&d.examples[0]), ["<|im_end|>"]);
    // A .json file holding JSON lines, and an explicit kind.
    assert_eq!(load("d.json", "{\"text\": \"a\"}\n{\"text\": \"b\"}", &opts()).unwrap().examples.len(), 2);
    o.parse.kind = Some(FileKind::Text);
    o.parse.format = None;
    assert_eq!(load("d.jsonl", line, &o).unwrap().kind, FileKind::Text);
}

#[test]
fn truncation_is_counted_and_unsupervised_leftovers_dropped() {
    let mut o = opts();
    o.seq_len = 8;
    let text = format!(
        "{}\n{}\n{}\n",
        serde_json::json!({"prompt": "one two three four five six seven eight nine ten", "completion": "x"}),
        serde_json::json!({"prompt": "a", "completion": "one two three four five six seven eight nine ten eleven"}),
        serde_json::json!({"prompt": "a", "completion": "b"}),
    );
    let d = load("t.jsonl", &text, &o).unwrap();
    assert_eq!(d.stats.truncated_examples, 2);
    assert_eq!(d.stats.dropped_unsupervised, 1);
    assert_eq!(d.examples.len(), 2);
    assert_eq!(d.stats.longest_example_line, 2);
    assert!(d.examples.iter().all(|e| e.len() <= 8));
    assert_eq!(d.warnings.len(), 1);
}

#[test]
fn chatml_fallback_without_a_template_warns() {
    let m = smollm2();
    let d = Dataset::load(
        "c.jsonl",
        br#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}"#,
        &m.tokenizer,
        None,
        &opts(),
    )
    .unwrap();
    assert_eq!(d.chat_template.as_deref(), Some("chatml (fallback)"));
    assert_eq!(d.warnings.len(), 1, "{:?}", d.warnings);
    let text = m.tokenizer.decode(&d.examples[0].ids, false).unwrap();
    assert_eq!(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n");
    assert_eq!(supervised_text(&d.examples[0]), ["Yo<|im_end|>"]);
}

#[test]
fn summary_shows_counts_and_the_first_example_masked() {
    let text = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo 🙂"}]}
{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
not json
"#;
    let m = smollm2();
    let mut o = opts();
    o.parse.skip_bad_lines = true;
    o.eval_fraction = 0.5;
    let p = crate::data::prepare(("s.jsonl", text.as_bytes()), None, &m.tokenizer, Some(&m.template), &o).unwrap();
    let s = &p.summary;
    assert_eq!((s.examples, s.eval_examples, s.skipped_lines), (1, 1, 1));
    assert_eq!(s.skipped[0].line, 3);
    assert_eq!(s.format, RecordFormat::Messages);
    let first = s.first_example.as_ref().unwrap();
    let shown = first.to_string();
    assert!(
        shown.ends_with("<|im_start|>assistant\n[[Yo 🙂<|im_end|>]]\n")
            || shown.ends_with("<|im_start|>assistant\n[[A<|im_end|>]]\n"),
        "{shown}"
    );
    let json = serde_json::to_value(s).unwrap();
    assert_eq!(json["format"], "messages");
    assert!(json["first_example"]["spans"].as_array().unwrap().iter().any(|s| s["supervised"] == true));
    let printed = s.to_string();
    assert!(printed.contains("skipped lines:      1"), "{printed}");
}
