//! Tools and tool calls, end-of-turn markers other than EOS, `strftime_now`, where templates are
//! looked up, and conversational prompt/completion records.

use super::template::msgs;
use super::{smollm2, supervised_text};
use crate::data::{
    strftime, ChatTemplate, DataError, DataOptions, Dataset, EncodeOptions, Encoder, ParseOptions, Record,
    RecordFormat, TemplateSource,
};

/// 2026-03-07 12:00 UTC.
const TIME: i64 = 1_772_884_800;

fn vendor(name: &str) -> ChatTemplate {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/templates").join(name);
    let text = std::fs::read_to_string(dir.join("chat_template.jinja")).unwrap();
    let t = ChatTemplate::from_source(&smollm2().tokenizer, &TemplateSource::file(name, text)).unwrap();
    t.set_time(Some(TIME));
    t
}

fn record(line: &str) -> Record {
    let parsed = crate::data::parse_file("r.jsonl", line.as_bytes(), &ParseOptions::default()).unwrap();
    parsed.records.into_iter().next().unwrap().1
}

fn supervised(t: &ChatTemplate, line: &str) -> Vec<String> {
    let encoder =
        Encoder { tokenizer: &smollm2().tokenizer, template: Some(t), options: EncodeOptions::default(), file: "r" };
    supervised_text(&encoder.encode(1, &record(line)).unwrap())
}

const WEATHER: &str = r#"{"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}"#;

fn tool_chat(tools: &str) -> String {
    format!(
        r#"{{"tools": {tools}, "messages": [{{"role": "user", "content": "Weather in Oslo?"}}, {{"role": "assistant", "content": "", "tool_calls": [{{"id": "call1efgh", "type": "function", "function": {{"name": "get_weather", "arguments": "{{\"city\": \"Oslo\"}}"}}}}]}}, {{"role": "tool", "tool_call_id": "call1efgh", "content": "{{\"temp_c\": 5}}"}}, {{"role": "assistant", "content": "5 °C."}}]}}"#
    )
}

#[test]
fn a_tool_calling_chat_trains_the_call_and_not_the_result() {
    let qwen3 = vendor("qwen3");
    let line = tool_chat(&format!("[{WEATHER}]"));
    let full = qwen3
        .render_chat(
            match &record(&line) {
                Record::Chat(c) => c,
                _ => unreachable!(),
            },
            false,
        )
        .unwrap();
    assert!(
        full.text.contains("<tools>\n{\"type\": \"function\", \"function\": {\"name\": \"get_weather\""),
        "{}",
        full.text
    );
    let parts = supervised(&qwen3, &line);
    assert_eq!(
        parts,
        [
            "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>",
            "<think>\n\n</think>\n\n5 °C.<|im_end|>"
        ]
    );
    // The same with `tools` as a JSON string, and with Llama 3.2, which puts the call in its own words.
    let as_string = tool_chat(&serde_json::to_string(&format!("[{WEATHER}]")).unwrap());
    assert_eq!(supervised(&qwen3, &as_string), parts);
    // (SmolLM2's tokenizer has no <|eot_id|> token: its last piece is `><`, shared with the next
    // header, and a token that overlaps a trained span is trained, as in transformers' masks.)
    let llama = supervised(&vendor("llama3_2"), &line);
    assert_eq!(
        llama,
        ["{\"name\": \"get_weather\", \"parameters\": \"{\\\"city\\\": \\\"Oslo\\\"}\"}<|eot_id|><", "5 °C.<|eot_id|>"]
    );
    // A template with generation blocks (TRL's Qwen3 training template) trains what they hold:
    // the empty reasoning, the call, and the end of turn with its newline.
    let trl = supervised(&vendor("qwen3_training"), &line);
    assert_eq!(trl[0], format!("<think>\n\n</think>\n\n{}\n", parts[0]));
    assert!(trl.iter().all(|p| !p.contains("temp_c")));
}

#[test]
fn a_phi_style_template_trains_its_end_marker_on_every_assistant_turn() {
    let phi = vendor("phi3_5");
    assert_eq!(phi.end_of_turn, "<|end|>");
    let m = r#"{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "user", "content": "e"}, {"role": "assistant", "content": "f"}]}"#;
    // The last turn runs to the end of the rendering: Phi ends a chat with EOS (<|im_end|> here).
    assert_eq!(supervised(&phi, m), ["b<|end|>", "d<|end|>", "f<|end|>\n<|im_end|>"]);
    for (name, eot) in [
        ("llama3_2", "<|eot_id|>"),
        ("gemma2", "<end_of_turn>"),
        ("granite3_3", "<|end_of_text|>"),
        ("qwen3", "<|im_end|>"),
        ("mistral_small3_2", "<|im_end|>"),
    ] {
        assert_eq!(vendor(name).end_of_turn, eot, "{name}");
    }
}

#[test]
fn strftime_now_is_python_strftime_at_the_template_clock() {
    assert_eq!(
        strftime("%d %b %Y|%B %d, %Y|%Y-%m-%d|%A %-d %j %H:%M:%S %p %%", TIME),
        "07 Mar 2026|March 07, 2026|2026-03-07|Saturday 7 066 12:00:00 PM %"
    );
    assert_eq!(strftime("%F %a %e %y %I", 0), "1970-01-01 Thu  1 70 12");
    assert_eq!(strftime("%F %j", 1_709_208_000), "2024-02-29 060");
    let llama = vendor("llama3_2");
    let out = llama.render(&msgs(&[("user", "hi")]), true).unwrap();
    assert!(out.contains("Today Date: 07 Mar 2026"), "{out}");
    let granite = vendor("granite3_3").render(&msgs(&[("user", "hi")]), true).unwrap();
    assert!(granite.contains("Today's Date: March 07, 2026."), "{granite}");
    llama.set_time(None);
    let today = llama.render(&msgs(&[("user", "hi")]), true).unwrap();
    assert!(!today.contains("26 Jul 2024") && !today.contains("07 Mar 2026"), "the clock's date: {today}");
}

#[test]
fn templates_are_found_as_transformers_finds_them() {
    let config = r#"{"eos_token": "</s>", "chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]}"#;
    let pick = |jinja, named, name| TemplateSource::from_hf(jinja, named, Some(config), name);
    let s = pick(None, None, None).unwrap().unwrap();
    assert_eq!((s.text.as_str(), s.origin.as_str()), ("D", "tokenizer_config.json (default)"));
    assert_eq!(s.tool_use.as_deref(), Some("T"), "records with tools take tool_use, as in transformers");
    let s = pick(None, None, Some("tool_use")).unwrap().unwrap();
    assert_eq!((s.text.as_str(), s.origin.as_str()), ("T", "tokenizer_config.json (tool_use)"));
    // chat_template.jinja wins over tokenizer_config.json, as in transformers.
    let s = pick(Some("J"), None, None).unwrap().unwrap();
    assert_eq!((s.text.as_str(), s.origin.as_str()), ("J", "chat_template.jinja"));
    let s = pick(Some("J"), Some("N"), Some("rag")).unwrap().unwrap();
    assert_eq!((s.text.as_str(), s.origin.as_str()), ("N", "additional_chat_templates/rag.jinja"));
    let e = pick(None, None, Some("rag")).unwrap_err().to_string();
    assert!(e.contains("\"rag\"") && e.contains("default, tool_use"), "{e}");
    assert!(TemplateSource::from_hf(None, None, Some("{}"), None).unwrap().is_none());
    let gguf = TemplateSource::from_gguf(&smollm2().header, None).unwrap().unwrap();
    assert_eq!(gguf.origin, "GGUF metadata");
    assert!(TemplateSource::from_gguf(&smollm2().header, Some("tool_use")).is_err());
}

#[test]
fn conversational_prompt_completion_trains_the_completion_only() {
    let line = r#"{"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}], "completion": [{"role": "assistant", "content": "Bye!"}]}"#;
    let m = smollm2();
    let d =
        Dataset::load("pc.jsonl", line.as_bytes(), &m.tokenizer, Some(&m.template), &DataOptions::default()).unwrap();
    assert_eq!(d.format, RecordFormat::PromptCompletion);
    assert_eq!(d.chat_template.as_deref(), Some("GGUF metadata"));
    assert_eq!(supervised_text(&d.examples[0]), ["Bye!<|im_end|>"]);
    let none = r#"{"prompt": [{"role": "user", "content": "Hi"}], "completion": [{"role": "user", "content": "x"}]}"#;
    let e = Dataset::load("pc.jsonl", none.as_bytes(), &m.tokenizer, Some(&m.template), &DataOptions::default());
    assert!(
        matches!(e, Err(DataError::EmptyField { ref at, .. }) if at.field.as_deref() == Some("completion")),
        "{e:?}"
    );
}

#[test]
fn bad_tools_and_tool_calls_name_the_field() {
    let load = |line: &str| crate::data::parse_file("t.jsonl", line.as_bytes(), &ParseOptions::default()).err();
    let cases = [
        (r#"{"tools": 3, "messages": [{"role": "assistant", "content": "a"}]}"#, "tools"),
        (r#"{"tools": "[{", "messages": [{"role": "assistant", "content": "a"}]}"#, "tools"),
        (r#"{"messages": [{"role": "assistant", "tool_calls": {}}]}"#, "messages[0].tool_calls"),
        (r#"{"messages": [{"role": "assistant"}]}"#, "messages[0].content"),
    ];
    for (line, field) in cases {
        let e = load(line).unwrap_or_else(|| panic!("{line} is refused"));
        let at = e.location().unwrap();
        assert_eq!((at.line, at.field.as_deref()), (1, Some(field)), "{e}");
    }
    // A tool call without content is a turn; null fields are left out, as transformers does.
    let Record::Chat(c) = record(
        r#"{"messages": [{"role": "user", "content": "q", "name": null}, {"role": "assistant", "content": null, "tool_calls": []}]}"#,
    ) else {
        panic!()
    };
    assert_eq!(
        serde_json::to_string(&c.messages).unwrap(),
        r#"[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[]}]"#
    );
}

#[test]
fn tools_a_template_ignores_are_reported() {
    let m = smollm2();
    let line = tool_chat(&format!("[{WEATHER}]"));
    let phi = vendor("phi3_5");
    let d = Dataset::load("t.jsonl", line.as_bytes(), &m.tokenizer, Some(&phi), &DataOptions::default());
    // Phi-3.5 reads message['content'], which a tool call here has ("").
    let w = d.unwrap().warnings;
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("1 record(s) list tools") && w[1].contains("1 record(s) call tools"), "{w:?}");
    let qwen = vendor("qwen3");
    let d = Dataset::load("t.jsonl", line.as_bytes(), &m.tokenizer, Some(&qwen), &DataOptions::default()).unwrap();
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn records_with_tools_take_the_tool_use_template_when_the_model_has_one() {
    let config = r#"{"chat_template": [{"name": "default", "template": "{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}"}, {"name": "tool_use", "template": "[{{ tools | length }} tools]{% for m in messages %}<{{ m.role }}>{{ m.content }}</s>{% endfor %}"}]}"#;
    let source = TemplateSource::from_hf(None, None, Some(config), None).unwrap().unwrap();
    let t = ChatTemplate::from_source(&smollm2().tokenizer, &source).unwrap();
    assert_eq!(t.origin, "tokenizer_config.json (default) with tool_use for records with tools");
    let m = smollm2();
    let lines = format!(
        "{}\n{}",
        r#"{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}"#,
        tool_chat(&format!("[{WEATHER}]"))
    );
    let d = Dataset::load("t.jsonl", lines.as_bytes(), &m.tokenizer, Some(&t), &DataOptions::default()).unwrap();
    let text = |i: usize| m.tokenizer.decode(&d.examples[i].ids, false).unwrap();
    assert_eq!(text(0), "<user>q</s><assistant>a</s>");
    assert!(text(1).starts_with("[1 tools]<user>Weather in Oslo?</s>"), "{}", text(1));
}
