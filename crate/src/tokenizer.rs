//! The tokenizer: a `tokenizers::Tokenizer` built from a Hugging Face `tokenizer.json` or from a
//! GGUF file's `tokenizer.ggml.*` metadata.
//!
//! From GGUF, byte-level BPE (`tokenizer.ggml.model = "gpt2"`) is supported with the
//! pre-tokenizers (`tokenizer.ggml.pre`) `default`/`gpt2`, `smollm`, `llama-bpe`/`llama3` and
//! `qwen2`, each as the model's original `tokenizer.json` defines it; and SentencePiece BPE
//! (`"llama"`) as Hugging Face's Llama 2 `tokenizer.json` does it. Control tokens (token type
//! 3) become special tokens, user-defined ones (type 4) added tokens, so that text such as
//! `<|im_start|>` encodes to its one id.

use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::decoders::DecoderWrapper;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::prepend::Prepend;
use tokenizers::normalizers::replace::Replace;
use tokenizers::normalizers::unicode::NFC;
use tokenizers::normalizers::{NormalizerWrapper, Sequence as NormalizerSequence};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, SplitDelimiterBehavior};

use crate::io::{GgufArray, GgufHeader, LoadError};

/// Llama 3's pre-tokenizer split (`tokenizer.ggml.pre = "llama-bpe"`).
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's pre-tokenizer split: as Llama 3's, with digits one by one.
const QWEN2_SPLIT: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// GGUF token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_NORMAL: i32 = 1;
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error(transparent)]
    Metadata(#[from] LoadError),
    #[error("{file}: unsupported tokenizer: {what}")]
    Unsupported { file: String, what: String },
    #[error("{file}: cannot build the tokenizer: {reason}")]
    Build { file: String, reason: String },
    #[error("tokenizer: {0}")]
    Run(String),
}

/// Special token ids, where the model has them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpecialTokens {
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub unk: Option<u32>,
    /// Whether encoding with special tokens puts BOS first.
    pub add_bos: bool,
    /// Whether encoding with special tokens puts EOS last.
    pub add_eos: bool,
    /// More ids that end generation (`eos_token_id` of generation_config.json, which may list
    /// several).
    pub stop: Vec<u32>,
}

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub special: SpecialTokens,
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json` (its special tokens are not read here; they come
    /// from `tokenizer_config.json`).
    pub fn from_json(file: &str, json: &[u8]) -> Result<Self, TokenizerError> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|e| TokenizerError::Build { file: file.into(), reason: e.to_string() })?;
        Ok(Self { inner, special: SpecialTokens::default() })
    }

    /// Builds the tokenizer that the GGUF metadata describes.
    pub fn from_gguf(h: &GgufHeader) -> Result<Self, TokenizerError> {
        let file = h.file.as_str();
        let unsupported = |what: String| TokenizerError::Unsupported { file: file.into(), what };
        let build = |reason: String| TokenizerError::Build { file: file.into(), reason };
        let tokens = h.get_string_array("tokenizer.ggml.tokens")?;
        let mut inner = match h.get_str("tokenizer.ggml.model")? {
            "gpt2" => byte_level_bpe(h, tokens)?,
            "llama" => sentencepiece_bpe(h, tokens)?,
            other => return Err(unsupported(format!("tokenizer.ggml.model = \"{other}\" (supported: gpt2, llama)"))),
        };
        add_typed_tokens(&mut inner, h, tokens)?;

        let id = |key: &str| h.get(key).map(|_| h.get_u32(key)).transpose();
        let flag = |key: &str| h.get(key).map(|_| h.get_bool(key)).transpose();
        let special = SpecialTokens {
            bos: id("tokenizer.ggml.bos_token_id")?,
            eos: id("tokenizer.ggml.eos_token_id")?,
            pad: id("tokenizer.ggml.padding_token_id")?,
            unk: id("tokenizer.ggml.unknown_token_id")?,
            add_bos: flag("tokenizer.ggml.add_bos_token")?.unwrap_or(false),
            add_eos: flag("tokenizer.ggml.add_eos_token")?.unwrap_or(false),
            stop: Vec::new(),
        };
        for (key, v) in [("bos", special.bos), ("eos", special.eos), ("padding", special.pad), ("unknown", special.unk)]
        {
            if v.is_some_and(|v| v as usize >= tokens.len()) {
                return Err(build(format!("`tokenizer.ggml.{key}_token_id` is past the vocabulary")));
            }
        }
        if let Some(template) = template(&special, tokens).map_err(build)? {
            inner.with_post_processor(Some(template));
        }
        Ok(Self { inner, special })
    }

    /// Token ids of `text`; with `add_special_tokens`, BOS/EOS as the model asks.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, TokenizerError> {
        let encoding = self.inner.encode(text, add_special_tokens).map_err(|e| TokenizerError::Run(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; with `skip_special_tokens`, special tokens are left out.
    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String, TokenizerError> {
        self.inner.decode(ids, skip_special_tokens).map_err(|e| TokenizerError::Run(e.to_string()))
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The underlying `tokenizers` tokenizer.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Token → id; the first of duplicated tokens wins.
fn vocab(tokens: &[String]) -> Vocab {
    let mut vocab = Vocab::default();
    for (id, token) in (0u32..).zip(tokens) {
        vocab.entry(token.clone()).or_insert(id);
    }
    vocab
}

/// Byte-level BPE (`tokenizer.ggml.model = "gpt2"`) with its pre-tokenizer.
fn byte_level_bpe(h: &GgufHeader, tokens: &[String]) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let file = h.file.as_str();
    let unsupported = |what: String| TokenizerError::Unsupported { file: file.into(), what };
    let build = |reason: String| TokenizerError::Build { file: file.into(), reason };
    let merges = h
        .get_string_array("tokenizer.ggml.merges")?
        .iter()
        .map(|m| m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| build("a `tokenizer.ggml.merges` entry has no space".into()))?;
    let vocab = vocab(tokens);
    let pre = h.get_str("tokenizer.ggml.pre").unwrap_or("default");
    let byte_level = ByteLevel::new(false, true, false);
    let split = |regex: &str| {
        Split::new(SplitPattern::Regex(regex.into()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| build(e.to_string()))
    };
    let (pre_tokenizers, ignore_merges, nfc): (Vec<PreTokenizerWrapper>, _, _) = match pre {
        "default" | "gpt2" => (vec![ByteLevel::new(false, true, true).into()], false, false),
        "smollm" => (vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()], false, false),
        "llama-bpe" | "llama3" => (vec![split(LLAMA3_SPLIT)?.into(), byte_level.into()], true, false),
        "qwen2" => (vec![split(QWEN2_SPLIT)?.into(), byte_level.into()], false, true),
        other => return Err(unsupported(format!("tokenizer.ggml.pre = \"{other}\""))),
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| build(e.to_string()))?;
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(Sequence::new(pre_tokenizers)));
    inner.with_decoder(Some(ByteLevelDecoder::default()));
    if nfc {
        inner.with_normalizer(Some(NFC));
    }
    Ok(inner)
}

/// `tokenizer.ggml.token_type`, when present.
fn token_types(h: &GgufHeader) -> Result<Option<Vec<i32>>, TokenizerError> {
    let key = "tokenizer.ggml.token_type";
    if h.get(key).is_none() {
        return Ok(None);
    }
    match h.get_array(key)? {
        GgufArray::I32(v) => Ok(Some(v.clone())),
        GgufArray::U32(v) => Ok(Some(v.iter().map(|&t| t as i32).collect())),
        _ => {
            Err(LoadError::WrongValueType { file: h.file.clone(), key: key.into(), expected: "an array of i32" }.into())
        }
    }
}

/// SentencePiece BPE (`tokenizer.ggml.model = "llama"`), as Hugging Face converts it: merges
/// ranked by the merged piece's score, byte fallback to `<0xXX>` tokens, `▁` for spaces.
fn sentencepiece_bpe(h: &GgufHeader, tokens: &[String]) -> Result<tokenizers::Tokenizer, TokenizerError> {
    let build = |reason: String| TokenizerError::Build { file: h.file.clone(), reason };
    let scores = match h.get_array("tokenizer.ggml.scores")? {
        GgufArray::F32(v) if v.len() == tokens.len() => v,
        _ => return Err(build("`tokenizer.ggml.scores` should be one f32 per token".into())),
    };
    let types = token_types(h)?;
    let vocab = vocab(tokens);
    // Every split of a normal piece into two pieces of the vocabulary, best score first.
    let mut merges = Vec::new();
    for (id, piece) in tokens.iter().enumerate() {
        if types.as_ref().is_some_and(|t| t.get(id) != Some(&TOKEN_TYPE_NORMAL)) {
            continue;
        }
        let mut local: Vec<(u32, u32, &str, &str)> = piece
            .char_indices()
            .skip(1)
            .filter_map(|(i, _)| {
                let (l, r) = piece.split_at(i);
                Some((*vocab.get(l)?, *vocab.get(r)?, l, r))
            })
            .collect();
        local.sort_unstable();
        merges.extend(local.into_iter().map(|(_, _, l, r)| (scores[id], l.to_string(), r.to_string())));
    }
    merges.sort_by(|a, b| b.0.total_cmp(&a.0));
    let merges = merges.into_iter().map(|(_, l, r)| (l, r)).collect();
    let mut bpe = BPE::builder().vocab_and_merges(vocab, merges).fuse_unk(true).byte_fallback(true);
    if let Some(unk) =
        h.get("tokenizer.ggml.unknown_token_id").map(|_| h.get_u32("tokenizer.ggml.unknown_token_id")).transpose()?
    {
        let unk = tokens
            .get(unk as usize)
            .ok_or_else(|| build("`tokenizer.ggml.unknown_token_id` is past the vocabulary".into()))?;
        bpe = bpe.unk_token(unk.clone());
    }
    let bpe = bpe.build().map_err(|e| build(e.to_string()))?;
    let replace = |from: &str, to: &str| Replace::new(from, to).map_err(|e| build(e.to_string()));
    let add_space_prefix = h
        .get("tokenizer.ggml.add_space_prefix")
        .map(|_| h.get_bool("tokenizer.ggml.add_space_prefix"))
        .transpose()?
        .unwrap_or(true);
    let mut normalizers: Vec<NormalizerWrapper> = vec![replace(" ", "\u{2581}")?.into()];
    let mut decoders: Vec<DecoderWrapper> =
        vec![replace("\u{2581}", " ")?.into(), ByteFallback::default().into(), Fuse::default().into()];
    if add_space_prefix {
        normalizers.insert(0, Prepend::new("\u{2581}".into()).into());
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_normalizer(Some(NormalizerSequence::new(normalizers)));
    inner.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(inner)
}

/// Registers control tokens as special tokens and user-defined tokens as added tokens.
fn add_typed_tokens(
    inner: &mut tokenizers::Tokenizer,
    h: &GgufHeader,
    tokens: &[String],
) -> Result<(), TokenizerError> {
    let Some(types) = token_types(h)? else {
        return Ok(());
    };
    let of_type = |ty: i32, special: bool| -> Vec<AddedToken> {
        tokens.iter().zip(&types).filter(|(_, &t)| t == ty).map(|(s, _)| AddedToken::from(s.clone(), special)).collect()
    };
    inner.add_special_tokens(&of_type(TOKEN_TYPE_CONTROL, true));
    inner.add_tokens(&of_type(TOKEN_TYPE_USER_DEFINED, false));
    Ok(())
}

/// The post-processor that adds BOS and/or EOS, when the model asks for either.
fn template(special: &SpecialTokens, tokens: &[String]) -> Result<Option<TemplateProcessing>, String> {
    let bos = special.bos.filter(|_| special.add_bos);
    let eos = special.eos.filter(|_| special.add_eos);
    if bos.is_none() && eos.is_none() {
        return Ok(None);
    }
    let name = |id: u32| tokens[id as usize].clone();
    let (mut single, mut pair, mut specials) = (Vec::new(), Vec::new(), Vec::new());
    if let Some(b) = bos {
        single.push(name(b));
        pair.push(name(b));
        specials.push((name(b), b));
    }
    single.push("$A".to_string());
    pair.push("$A".to_string());
    if let Some(e) = eos {
        single.push(name(e));
        pair.push(name(e));
        specials.push((name(e), e));
    }
    if let Some(b) = bos {
        pair.push(format!("{}:1", name(b)));
    }
    pair.push("$B:1".to_string());
    if let Some(e) = eos {
        pair.push(format!("{}:1", name(e)));
    }
    specials.dedup();
    TemplateProcessing::builder()
        .try_single(single.join(" "))
        .and_then(|b| b.try_pair(pair.join(" ")))
        .map_err(|e| e.to_string())?
        .special_tokens(specials)
        .build()
        .map(Some)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
