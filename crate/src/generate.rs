//! Text generation for trying an adapter: greedy or sampled decoding (temperature, top-k,
//! top-p) with a KV cache, stopping at an end-of-sequence token.

use crate::data::{ChatTemplate, Message};
use crate::error::{Error, Result};
use crate::model::decode::Decoder;
use crate::rng::Rng;
use crate::tokenizer::Tokenizer;

/// How to pick each next token. `temperature` 0 means greedy.
#[derive(Clone, Debug)]
pub struct Sampling {
    pub max_new_tokens: usize,
    pub temperature: f32,
    /// Keep only the k most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches top_p (1 = all).
    pub top_p: f32,
    pub seed: u64,
    /// Token ids that end generation (not included in the output).
    pub stop: Vec<u32>,
}

impl Default for Sampling {
    fn default() -> Self {
        Sampling { max_new_tokens: 128, temperature: 0.0, top_k: 0, top_p: 1.0, seed: 0, stop: vec![] }
    }
}

/// The token ids of a one-turn chat asking `text`, ready for the answer: the model's chat
/// template when it has one, else `text` as it is.
pub fn chat_prompt(tok: &Tokenizer, template: Option<&ChatTemplate>, text: &str) -> Result<Vec<u32>> {
    let text = match template {
        Some(t) => {
            let user = Message::new("user", text);
            t.render(&[user], true).map_err(Error::Config)?
        }
        None => text.to_string(),
    };
    tok.encode(&text, tok.special.add_bos).map_err(|e| Error::Tokenizer(e.to_string()))
}

/// The tokens that end an answer: the tokenizer's end of sequence, generation_config.json's,
/// and ChatML's end of turn.
pub fn stop_tokens(tok: &Tokenizer) -> Vec<u32> {
    let mut ids: Vec<u32> = tok.special.eos.into_iter().chain(tok.special.stop.iter().copied()).collect();
    ids.extend(tok.token_to_id("<|im_end|>"));
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Continues `prompt` (token ids) and returns the new tokens.
pub async fn generate(decoder: &Decoder, prompt: &[u32], sampling: &Sampling) -> Result<Vec<u32>> {
    if prompt.is_empty() {
        return Err(Error::Input("the prompt is empty".into()));
    }
    if prompt.len() + sampling.max_new_tokens > decoder.max_len() {
        return Err(Error::Input(format!(
            "prompt of {} tokens plus {} new ones exceeds the decoder's length {}",
            prompt.len(),
            sampling.max_new_tokens,
            decoder.max_len()
        )));
    }
    let mut rng = Rng::new(sampling.seed);
    let mut logits = Vec::new();
    for (pos, &id) in prompt.iter().enumerate() {
        logits = decoder.next_logits(id, pos).await?;
    }
    let mut out = Vec::new();
    for _ in 0..sampling.max_new_tokens {
        let next = pick(&logits, sampling, &mut rng);
        if sampling.stop.contains(&next) {
            break;
        }
        out.push(next);
        if out.len() == sampling.max_new_tokens {
            break;
        }
        logits = decoder.next_logits(next, prompt.len() + out.len() - 1).await?;
    }
    Ok(out)
}

/// Chooses a token from `logits` as `s` says.
pub fn pick(logits: &[f32], s: &Sampling, rng: &mut Rng) -> u32 {
    let argmax =
        || logits.iter().enumerate().fold((0, f32::MIN), |b, (i, &v)| if v > b.1 { (i, v) } else { b }).0 as u32;
    if s.temperature <= 0.0 {
        return argmax();
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    if s.top_k > 0 {
        order.truncate(s.top_k);
    }
    let max = logits[order[0]];
    let mut probs: Vec<f64> = order.iter().map(|&i| (((logits[i] - max) / s.temperature) as f64).exp()).collect();
    let total: f64 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= total);
    let mut keep = probs.len();
    let mut acc = 0.0;
    for (i, p) in probs.iter().enumerate() {
        acc += p;
        if acc >= s.top_p as f64 {
            keep = i + 1;
            break;
        }
    }
    let total: f64 = probs[..keep].iter().sum();
    let mut u = rng.unit() * total;
    for (i, p) in probs[..keep].iter().enumerate() {
        u -= p;
        if u <= 0.0 {
            return order[i] as u32;
        }
    }
    order[keep - 1] as u32
}
