//! Which bytes of a rendered chat are trained.
//!
//! A template with `{% generation %}` blocks says it itself: the blocks' output is trained, as
//! transformers' `assistant_masks` (and TRL's `assistant_only_loss`) take it. For any other
//! template each assistant turn is trained from where its text starts through the end-of-turn
//! text the template writes after it, never system, user or tool text:
//!
//! - **start**: the end of the generation prompt, `render(messages[..i], add_generation_prompt)`,
//!   the text the model is given before it writes. Where that is not how the full chat begins
//!   (templates that render the last turn differently, or have no generation prompt), the text
//!   before the turn's content, found by rendering the chat with the content replaced by a
//!   marker; failing that, the rendering before `messages[..i]` when the full chat starts with it,
//!   or where the chat rendered without the turn stops agreeing with it (Mistral's tool calls),
//!   then the content searched for. A generation prompt that the full chat follows only in part
//!   (DeepSeek-R1's `<｜Assistant｜><think>\n` before a turn without reasoning) counts as far as
//!   the two agree on whole markers.
//! - **end**: the first end-of-turn text ([`ChatTemplate::end_of_turn`]) after the turn's content
//!   and tool calls and before the next message's content: `<|im_end|>`, `<|eot_id|>`, Phi's
//!   `<|end|>` (not only EOS). The last message of a chat is trained through the end of the
//!   rendering (Phi's `<|end|>\n<|endoftext|>`), without trailing whitespace.
//!
//! The end-of-turn text is found once per template from a probe conversation: what the template
//! writes after an assistant turn's content both when the turn is last and when a user turn
//! follows, cut where the two differ (at whitespace or after a `>`), trimmed.

use std::ops::Range;

use super::record::{Chat, Message};
use super::template::ChatTemplate;

/// Stands for a turn's content, to find where the template puts it.
const MARKER: &str = "\u{E000}weblora-turn\u{E001}";

/// Why assistant spans could not be found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpanError {
    /// The template failed on the conversation.
    Render(String),
    /// Message `i` (an assistant turn) was not found in the rendering.
    NotFound(usize),
}

/// The end-of-turn text of `t` (see the module's documentation); empty when it has none or the
/// probe does not render.
pub(crate) fn probe_end_of_turn(t: &ChatTemplate) -> String {
    let user = Message::new("user", "Hello.");
    let assistant = Message::new("assistant", MARKER);
    let last = [user.clone(), assistant.clone()];
    let followed = [user.clone(), assistant, user];
    // Without tools, as transformers renders most chats; else with an empty list (a template
    // that only serves chats with tools).
    let no_tools = serde_json::Value::Array(Vec::new());
    let rendered = [None, Some(&no_tools)].into_iter().find_map(|tools| {
        let a = t.render_parts(&last, tools, None, false).ok()?.text;
        let b = t.render_parts(&followed, tools, None, false).ok()?.text;
        Some((a, b))
    });
    let Some((last, followed)) = rendered else {
        return String::new();
    };
    let (Some(a), Some(b)) = (last.find(MARKER), followed.find(MARKER)) else {
        return String::new();
    };
    let (tail, next) = (&last[a + MARKER.len()..], &followed[b + MARKER.len()..]);
    let common = common_prefix(tail, next);
    let cut = if common == tail.len() { common } else { snap(&tail[..common]) };
    tail[..cut].trim().to_string()
}

/// The length of `s` cut back to just after its last whitespace, `>` or `]`: where two texts
/// that went on differently still agree on whole markers (`<|end|>`, `[/INST]`).
fn snap(s: &str) -> usize {
    s.rfind(|c: char| c.is_whitespace() || c == '>' || c == ']')
        .map_or(0, |p| p + s[p..].chars().next().map_or(1, char::len_utf8))
}

/// Byte length of the common prefix of `a` and `b`, on a character boundary.
fn common_prefix(a: &str, b: &str) -> usize {
    a.char_indices().zip(b.chars()).find(|((_, x), y)| x != y).map_or(a.len().min(b.len()), |((i, _), _)| i)
}

impl ChatTemplate {
    /// The rendered conversation and the sorted byte ranges to train: the generation blocks
    /// when the template has them, else one range per assistant turn (from the prompt of a
    /// conversational prompt/completion record on).
    pub fn render_with_spans(&self, chat: &Chat) -> Result<(String, Vec<Range<usize>>), SpanError> {
        let full = self.render_chat(chat, false).map_err(SpanError::Render)?;
        if self.has_generation {
            let from = match chat.prompt_len {
                0 => 0,
                n => self.prefix_end(chat, n, &full.text).unwrap_or(0),
            };
            let spans = full.generation.into_iter().filter(|s| s.start >= from).collect();
            return Ok((full.text, spans));
        }
        let text = full.text;
        let mut spans = Vec::new();
        let mut cursor = 0;
        for (i, m) in chat.messages.iter().enumerate().skip(chat.prompt_len) {
            if m.role != "assistant" {
                continue;
            }
            let start = self.turn_start(chat, i, &text, cursor).ok_or(SpanError::NotFound(i))?;
            let end = self.turn_end(chat, i, &text, start);
            if start < end {
                spans.push(start..end);
            } else if !m.text().trim().is_empty() || m.calls_tools() {
                return Err(SpanError::NotFound(i));
            }
            cursor = end.max(start);
        }
        Ok((text, spans))
    }

    /// Where message `n` starts in `full` (for the prompt of a prompt/completion record): the
    /// end of the generation prompt after `messages[..n]`, or of `messages[..n]` itself.
    fn prefix_end(&self, chat: &Chat, n: usize, full: &str) -> Option<usize> {
        if n == 0 {
            return Some(0);
        }
        let head = &chat.messages[..n];
        let tools = (chat.tools.as_ref(), chat.documents.as_ref());
        [true, false].into_iter().find_map(|g| {
            let p = self.render_parts(head, tools.0, tools.1, g).ok()?.text;
            full.starts_with(&p).then_some(p.len())
        })
    }

    fn render_text(&self, chat: &Chat, messages: &[Message], add_generation_prompt: bool) -> Option<String> {
        self.render_parts(messages, chat.tools.as_ref(), chat.documents.as_ref(), add_generation_prompt)
            .ok()
            .map(|r| r.text)
    }

    /// Where assistant turn `i` starts in `full`, not before `cursor`.
    fn turn_start(&self, chat: &Chat, i: usize, full: &str, cursor: usize) -> Option<usize> {
        let head = &chat.messages[..i];
        let plain = self.render_text(chat, head, false).filter(|p| full.starts_with(p.as_str()));
        let prompt = self.render_text(chat, head, true);
        // The generation prompt as far as the full chat has it, cut after a whole marker or at
        // whitespace when it goes on differently (DeepSeek-R1's `<｜Assistant｜><think>\n`).
        if let (Some(plain), Some(prompt)) = (&plain, &prompt) {
            if let Some(gen) = prompt.strip_prefix(plain.as_str()).filter(|g| !g.is_empty()) {
                let c = common_prefix(gen, &full[plain.len()..]);
                let c = if c == gen.len() { c } else { snap(&gen[..c]) };
                if c > 0 && plain.len() + c >= cursor {
                    return Some(plain.len() + c);
                }
            }
        }
        if let Some(p) = self.content_start(chat, i, full).filter(|&p| p >= cursor) {
            return Some(p);
        }
        if let Some(p) = plain.filter(|p| p.len() >= cursor) {
            return Some(p.len());
        }
        // The chat without this turn goes on as the full one does up to where the turn begins
        // (Mistral's tool calls, which follow `[/INST]` with no header of their own).
        let mut without = chat.messages.clone();
        without.remove(i);
        if let Some(r) = self.render_text(chat, &without, false) {
            let c = snap(&full[..common_prefix(full, &r)]);
            if c >= cursor && c < full.len() && c > 0 {
                return Some(c);
            }
        }
        let content = chat.messages[i].text().trim();
        let found = full.get(cursor..).and_then(|rest| rest.find(content));
        found.filter(|_| !content.is_empty()).map(|p| cursor + p)
    }

    /// Where message `i`'s content starts in `full`: the rendering with that content replaced
    /// by a marker, up to the marker, when `full` starts with it.
    fn content_start(&self, chat: &Chat, i: usize, full: &str) -> Option<usize> {
        let mut marked = chat.messages.clone();
        marked[i].content = Some(MARKER.into());
        let r = self.render_text(chat, &marked, false)?;
        let p = r.find(MARKER)?;
        full.starts_with(&r[..p]).then_some(p)
    }

    /// Where assistant turn `i`, starting at `start`, ends in `full`.
    fn turn_end(&self, chat: &Chat, i: usize, full: &str, start: usize) -> usize {
        let tail_start = |to: usize| start + full[start..to].trim_end().len();
        if i + 1 == chat.messages.len() {
            return tail_start(full.len());
        }
        let limit = self.content_start(chat, i + 1, full).filter(|&p| p >= start).unwrap_or(full.len());
        let region = &full[start..limit];
        let content = chat.messages[i].text().trim();
        let after_content = match (!content.is_empty()).then(|| region.find(content)).flatten() {
            Some(p) => p + content.len(),
            None => 0,
        };
        let eot = &self.end_of_turn;
        match (!eot.is_empty()).then(|| region[after_content..].find(eot.as_str())).flatten() {
            Some(p) => start + after_content + p + eot.len(),
            None => start + after_content,
        }
    }
}
