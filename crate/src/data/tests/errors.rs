//! Bad input: each error names the line (and field); "skip bad lines" counts them instead.

use super::{load, smollm2};
use crate::data::{parse_file, ChatTemplate, DataError, DataOptions, Dataset, FileKind, ParseOptions};

fn err(file: &str, text: &[u8]) -> DataError {
    let m = smollm2();
    Dataset::load(file, text, &m.tokenizer, Some(&m.template), &DataOptions::default()).unwrap_err()
}

fn at(e: &DataError) -> (usize, Option<&str>) {
    let l = e.location().unwrap_or_else(|| panic!("no location in {e}"));
    (l.line, l.field.as_deref())
}

#[test]
fn malformed_json_line() {
    let e = err("d.jsonl", b"{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\",}\n");
    assert!(matches!(e, DataError::Json { .. }), "{e}");
    assert_eq!(at(&e), (3, None));
    assert!(e.to_string().starts_with("d.jsonl, line 3: malformed JSON"), "{e}");
}

#[test]
fn malformed_json_array_names_the_line() {
    let e = err("d.json", b"[\n{\"text\": \"a\"},\n{\"text\": \"b\" \"c\"}\n]");
    assert!(matches!(e, DataError::Json { .. }), "{e}");
    assert_eq!(at(&e).0, 3);
    let e = err("d.json", b"[\n{\"text\": \"a\"},\n\n  {\"text\": 7}\n]");
    assert_eq!(at(&e), (4, Some("text")));
}

#[test]
fn missing_field() {
    let e = err("d.jsonl", b"{\"prompt\": \"a\", \"completion\": \"b\"}\n{\"prompt\": \"a\"}\n");
    assert!(matches!(e, DataError::MissingField { .. }), "{e}");
    assert_eq!(at(&e), (2, Some("completion")));
    let e = err("d.jsonl", br#"{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}"#);
    assert_eq!(at(&e), (1, Some("messages[0].content")));
}

#[test]
fn wrong_type() {
    let e = err("d.jsonl", b"{\"text\": 5}");
    assert!(matches!(&e, DataError::WrongType { expected: "a string", found: "a number", .. }), "{e}");
    assert_eq!(at(&e), (1, Some("text")));
    let e = err(
        "d.jsonl",
        b"{\"messages\": [{\"role\": \"user\", \"content\": \"q\"}, {\"role\": \"assistant\", \"content\": null}]}",
    );
    assert_eq!(at(&e), (1, Some("messages[1].content")));
    let e = err("d.jsonl", b"{\"messages\": \"hi\"}");
    assert_eq!(at(&e), (1, Some("messages")));
    let e = err("d.jsonl", b"{\"text\": \"a\"}\n[1, 2]\n");
    assert!(matches!(e, DataError::WrongType { expected: "an object", .. }), "{e}");
    assert_eq!(at(&e), (2, None));
}

#[test]
fn empty_fields_and_files() {
    assert!(matches!(err("d.jsonl", b""), DataError::Empty(_)));
    assert!(matches!(err("d.jsonl", b"\n  \n"), DataError::Empty(_)));
    assert!(matches!(err("d.txt", b"\xEF\xBB\xBF"), DataError::Empty(_)));
    let e = err("d.jsonl", b"{\"text\": \"\"}");
    assert!(matches!(e, DataError::EmptyField { .. }), "{e}");
    assert_eq!(at(&e), (1, Some("text")));
    let e = err("d.jsonl", br#"{"instruction": "x", "output": " "}"#);
    assert_eq!(at(&e), (1, Some("output")));
    let e = err("d.jsonl", br#"{"messages": []}"#);
    assert_eq!(at(&e), (1, Some("messages")));
    let e = err("d.jsonl", br#"{"messages": [{"role": "user", "content": "x"}]}"#);
    assert!(e.to_string().contains("assistant"), "{e}");
    // A header and no rows.
    assert!(matches!(err("d.csv", b"prompt,completion\n"), DataError::NoExamples(_)));
}

#[test]
fn not_utf8() {
    let e = err("d.jsonl", b"{\"text\": \"a\"}\n{\"text\": \"\xff\xfe\"}\n");
    assert!(matches!(e, DataError::NotUtf8 { offset: 10, .. }), "{e}");
    assert_eq!(at(&e), (2, None));
    let e = err("d.txt", b"ok\n\nfine\nbad \xc3\x28 here\n");
    assert!(matches!(e, DataError::NotUtf8 { offset: 4, .. }), "{e}");
    assert_eq!(at(&e).0, 4);
    let e = err("d.csv", b"text\nok\n\xff\n");
    assert!(matches!(e, DataError::NotUtf8 { .. }), "{e}");
    assert_eq!(at(&e).0, 3);
    let e = err("d.json", b"[{\"text\": \"\xff\"}]");
    assert!(matches!(e, DataError::NotUtf8 { .. }), "{e}");
}

#[test]
fn csv_errors() {
    let e = err("d.csv", b"prompt,completion\na,b\nc,d,e\n");
    assert!(matches!(e, DataError::Csv { .. }), "{e}");
    assert_eq!(at(&e).0, 3);
    let e = err("d.csv", b"question,answer\na,b\n");
    match &e {
        DataError::UnknownFormat { found, .. } => assert_eq!(found, &["question", "answer"]),
        _ => panic!("{e}"),
    }
}

#[test]
fn unknown_format_and_role() {
    let e = err("d.jsonl", b"{\"question\": \"a\", \"answer\": \"b\"}");
    assert!(matches!(e, DataError::UnknownFormat { .. }), "{e}");
    assert_eq!(at(&e).0, 1);
    let e = err("d.jsonl", br#"{"conversations": [{"from": "human", "value": "a"}, {"from": "robot", "value": "b"}]}"#);
    assert!(matches!(&e, DataError::UnknownRole { role, .. } if role == "robot"), "{e}");
    assert_eq!(at(&e), (1, Some("conversations[1].from")));
}

#[test]
fn template_errors() {
    let m = smollm2();
    let strict = ChatTemplate::new(
        "{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{{ m.role }}: {{ m.content }}{{ eos_token }}\n{% endfor %}",
        "",
        "<|im_end|>",
    )
    .unwrap();
    let text = b"{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n";
    let e = Dataset::load("d.jsonl", text, &m.tokenizer, Some(&strict), &DataOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Template { .. }), "{e}");
    assert_eq!(at(&e).0, 2);
    assert!(e.to_string().contains("System role not supported"), "{e}");
    let mut o = DataOptions::default();
    o.parse.skip_bad_lines = true;
    let d = Dataset::load("d.jsonl", text, &m.tokenizer, Some(&strict), &o).unwrap();
    assert_eq!((d.examples.len(), d.skipped.len(), d.skipped[0].line), (1, 1, 2));

    let e = ChatTemplate::new("{% for m in messages %}{{ m.content }", "", "").unwrap_err();
    assert!(matches!(e, DataError::TemplateSyntax(_)), "{e}");
}

#[test]
fn skip_bad_lines_counts_and_keeps_the_rest() {
    let text = b"{\"text\": \"a\"}\n{bad\n{\"text\": 5}\n{\"text\": \"b\"}\n\xff\n{\"txt\": \"c\"}\n{\"text\": \"\"}\n{\"text\": \"d\"}\n";
    let mut o = DataOptions::default();
    o.parse.skip_bad_lines = true;
    let d = load("d.jsonl", "", &o).map(|_| ()).unwrap_err();
    assert!(matches!(d, DataError::Empty(_)));
    let m = smollm2();
    let d = Dataset::load("d.jsonl", text, &m.tokenizer, Some(&m.template), &o).unwrap();
    assert_eq!(d.examples.iter().map(|e| e.line).collect::<Vec<_>>(), [1, 4, 8]);
    let lines: Vec<_> = d.skipped.iter().map(|s| (s.line, s.field.as_deref())).collect();
    assert_eq!(lines, [(2, None), (3, Some("text")), (5, None), (6, Some("text")), (7, Some("text"))]);
    // Without the option the first one stops the load.
    assert_eq!(at(&err("d.jsonl", text)).0, 2);
    // Nothing good at all.
    let p = parse_file("d.jsonl", b"{bad\n", &ParseOptions { skip_bad_lines: true, ..Default::default() });
    assert!(matches!(p, Err(DataError::NoExamples(_))));
    // The first record decides the format even when it is skipped-free but later ones differ.
    let p = parse_file(
        "d.jsonl",
        b"{\"text\": \"a\"}\n{\"prompt\": \"p\", \"completion\": \"c\"}\n",
        &ParseOptions { skip_bad_lines: true, kind: Some(FileKind::Jsonl), ..Default::default() },
    )
    .unwrap();
    assert_eq!((p.records.len(), p.skipped.len()), (1, 1));
}
