//! Chat templates: SmolLM2's own from the GGUF file, Hugging Face helpers, and assistant spans
//! for templates that do not render prefixes consistently.

use super::smollm2;
use crate::data::{Chat, ChatTemplate, Message, SpanError};

pub(super) fn msgs(turns: &[(&str, &str)]) -> Vec<Message> {
    turns.iter().map(|(r, c)| Message::new(r, c)).collect()
}

pub(super) fn spans_text(t: &ChatTemplate, m: &[Message]) -> (String, Vec<String>) {
    let (full, spans) = t.render_with_spans(&Chat::new(m.to_vec())).unwrap();
    let parts = spans.iter().map(|s| full[s.clone()].to_string()).collect();
    (full, parts)
}

#[test]
fn smollm2_template_renders_chatml_with_its_default_system_prompt() {
    let t = &smollm2().template;
    assert_eq!((t.bos_token.as_str(), t.eos_token.as_str()), ("<|im_start|>", "<|im_end|>"));
    let m = msgs(&[("user", "Hi"), ("assistant", "Hello")]);
    let want = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n";
    assert_eq!(t.render(&m, false).unwrap(), want);
    assert!(t.render(&m[..1], true).unwrap().ends_with("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
    let (_, parts) = spans_text(t, &m);
    assert_eq!(parts, ["Hello<|im_end|>"]);
}

#[test]
fn hugging_face_helpers() {
    let src = r#"{%- set ns = namespace(n=0) -%}
{%- for m in messages -%}
  {%- if m['role'] not in ['user', 'assistant'] -%}{{ raise_exception('bad role ' + m['role']) }}{%- endif -%}
  {%- if loop.index > 3 %}{% break %}{% endif -%}
  {%- if m.content.startswith('skip') %}{% continue %}{% endif -%}
  {%- set ns.n = ns.n + 1 -%}
  {%- if m['role'] == 'assistant' -%}
    {{ '<a>' }}{% generation %}{{ m['content'].strip() }}{{ eos_token }}{% endgeneration %}{{ '\n' }}
  {%- else -%}
    {{ '<u>' + m['content'] | trim + '</u>' }}
  {%- endif -%}
{%- endfor -%}
{{ ns.n }}{{ messages[0] | tojson }}{% if tools is not none %}tools!{% endif %}"#;
    let t = ChatTemplate::new(src, "<s>", "</s>").unwrap();
    let m = msgs(&[("user", " q "), ("assistant", "  a1  "), ("user", "skip me"), ("assistant", "a2")]);
    let out = t.render(&m, false).unwrap();
    assert_eq!(out, "<u>q</u><a>a1</s>\n2{\"role\": \"user\", \"content\": \" q \"}");
    let json = ChatTemplate::new("{{ messages | tojson }}|{{ messages[0] | tojson(indent=2) }}|{{ [] | tojson }}{{ {'n': 1.5, 'b': true, 'z': none} | tojson }}", "", "").unwrap();
    let out = json.render(&msgs(&[("user", "<é>\n")]), false).unwrap();
    assert_eq!(out, "[{\"role\": \"user\", \"content\": \"<é>\\n\"}]|{\n  \"role\": \"user\",\n  \"content\": \"<é>\\n\"\n}|[]{\"n\": 1.5, \"b\": true, \"z\": null}");
    let err = t.render(&msgs(&[("system", "x")]), false).unwrap_err();
    assert!(err.contains("bad role system"), "{err}");
}

#[test]
fn spans_when_prefixes_are_not_consistent() {
    // Drops the reasoning of earlier turns and trims content: prefix renderings differ from the
    // full one, so spans come from searching the content.
    let src = "{% for m in messages %}{% if m.role == 'assistant' %}{% set c = m.content %}{% if not loop.last and '</think>' in c %}{% set c = c.split('</think>')[-1] %}{% endif %}<|im_start|>assistant\n{{ c | trim }}<|im_end|>\n{% else %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let t = ChatTemplate::new(src, "", "<|im_end|>").unwrap();
    let m = msgs(&[
        ("user", "q1"),
        ("assistant", "<think>hmm</think> a1"),
        ("user", "q2"),
        ("assistant", "<think>ok</think> a2 "),
    ]);
    let (full, parts) = spans_text(&t, &m);
    assert_eq!(full, "<|im_start|>user\nq1<|im_end|>\n<|im_start|>assistant\na1<|im_end|>\n<|im_start|>user\nq2<|im_end|>\n<|im_start|>assistant\n<think>ok</think> a2<|im_end|>\n");
    assert_eq!(parts, ["a1<|im_end|>", "<think>ok</think> a2<|im_end|>"]);
}

#[test]
fn spans_in_a_template_without_an_eos_marker() {
    let t = ChatTemplate::new("{% for m in messages %}### {{ m.role }}: {{ m.content }}\n\n{% endfor %}{% if add_generation_prompt %}### assistant: {% endif %}", "", "").unwrap();
    let m = msgs(&[("user", "hi"), ("assistant", "hello 你好"), ("user", "x"), ("assistant", "y")]);
    let (_, parts) = spans_text(&t, &m);
    assert_eq!(parts, ["hello 你好", "y"]);
}

#[test]
fn an_assistant_turn_the_template_drops_is_an_error() {
    let t = ChatTemplate::new(
        "{% for m in messages %}{% if m.role != 'assistant' %}{{ m.content }}{% endif %}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let e = t.render_with_spans(&Chat::new(msgs(&[("user", "a"), ("assistant", "zzz")]))).unwrap_err();
    assert_eq!(e, SpanError::NotFound(1));
}

#[test]
fn from_tokenizer_config() {
    let cfg = br#"{"bos_token": {"content": "<s>"}, "eos_token": "</s>", "chat_template": [{"name": "tool_use", "template": "x"}, {"name": "default", "template": "{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}{{ eos_token }}{% endfor %}"}]}"#;
    let t = ChatTemplate::from_tokenizer_config(cfg).unwrap().unwrap();
    let m = msgs(&[("user", "a"), ("assistant", "b")]);
    assert_eq!(t.render(&m, false).unwrap(), "<s>[user]a</s>[assistant]b</s>");
    assert_eq!(spans_text(&t, &m).1, ["b</s>"]);
    assert!(ChatTemplate::from_tokenizer_config(br#"{"eos_token": "</s>"}"#).unwrap().is_none());
    assert!(ChatTemplate::from_tokenizer_config(b"{").is_err());
}

#[test]
fn generation_blocks_are_tracked_with_their_whitespace_control() {
    let src = "{# a {% generation %} in a comment #}{% for m in messages %}<{{ m.role }}>\n  {%- if m.role == 'assistant' -%}\n    {%- generation -%}\n  {{ m.content }}</s>\n    {%- endgeneration %}\n{% else %}{{ m.content }}{% endif %}{% endfor %}";
    let t = ChatTemplate::new(src, "", "</s>").unwrap();
    assert!(t.has_generation);
    let chat = Chat::new(msgs(&[("user", "q"), ("assistant", "a"), ("user", "r"), ("assistant", "b")]));
    let (full, spans) = t.render_with_spans(&chat).unwrap();
    assert_eq!(full, "<user>q<assistant>a</s><user>r<assistant>b</s>");
    let parts: Vec<&str> = spans.iter().map(|s| &full[s.clone()]).collect();
    assert_eq!(parts, ["a</s>", "b</s>"]);
    let commented = ChatTemplate::new("{# {% generation %} #}{{ messages[0].content }}", "", "").unwrap();
    assert!(!commented.has_generation);
}

#[test]
fn a_template_that_does_not_parse_names_where_it_came_from() {
    let e =
        ChatTemplate::with_tokens("{% for m in messages %}", "chat_template.jinja", "", "", None, None).unwrap_err();
    assert!(e.to_string().contains("chat_template.jinja"), "{e}");
}
