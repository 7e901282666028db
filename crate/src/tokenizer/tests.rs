//! The tokenizer against SmolLM2's reference ids (`tests/fixtures/tokenizer/`), and its errors.

use std::collections::BTreeMap;

use super::{Tokenizer, TokenizerError};
use crate::io::{read_gguf_header, GgufArray, GgufHeader, GgufValue};

fn smollm2() -> (GgufHeader, Tokenizer) {
    let path = crate::model_file::smollm2_gguf();
    let header = read_gguf_header(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&header).unwrap();
    (header, tokenizer)
}

/// (text, ids) of the reference cases.
fn reference_cases() -> Vec<(String, Vec<u32>)> {
    let path =
        std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tokenizer/smollm2_tokens.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let ids = c["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect();
            (c["text"].as_str().unwrap().to_string(), ids)
        })
        .collect()
}

#[test]
fn smollm2_from_gguf_reproduces_the_reference_ids() {
    let (_, tokenizer) = smollm2();
    assert_eq!(tokenizer.vocab_size(), 49152);
    let s = &tokenizer.special;
    assert_eq!((s.bos, s.eos, s.pad, s.unk, s.add_bos), (Some(1), Some(2), Some(2), Some(0), false));
    let cases = reference_cases();
    assert!(cases.len() >= 9);
    for (text, ids) in &cases {
        assert_eq!(&tokenizer.encode(text, true).unwrap(), ids, "{text:?}");
        assert_eq!(&tokenizer.decode(ids, false).unwrap(), text);
    }
    assert_eq!(tokenizer.encode("<|im_end|>", false).unwrap(), [2]);
    assert_eq!(tokenizer.decode(&[1, 19556, 2], true).unwrap(), "Hello");
}

#[test]
fn tokenizer_json_round_trip() {
    let (_, tokenizer) = smollm2();
    let json = tokenizer.inner().to_string(false).unwrap();
    let reloaded = Tokenizer::from_json("tokenizer.json", json.as_bytes()).unwrap();
    for (text, ids) in reference_cases() {
        assert_eq!(reloaded.encode(&text, false).unwrap(), ids, "{text:?}");
    }
    let err = Tokenizer::from_json("broken.json", b"{").err().unwrap();
    assert!(matches!(err, TokenizerError::Build { .. }) && err.to_string().contains("broken.json"));
}

/// A header holding a tiny byte-level vocabulary: the 256 byte symbols, then `extra` tokens.
fn tiny(pre: &str, extra: &[&str], merges: &[&str]) -> GgufHeader {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    let mut tokens: Vec<String> = ByteLevel::alphabet().into_iter().map(String::from).collect();
    tokens.sort();
    tokens.extend(extra.iter().map(|s| s.to_string()));
    let strings = |v: Vec<String>| GgufValue::Array(GgufArray::String(v));
    let mut metadata = BTreeMap::new();
    metadata.insert("tokenizer.ggml.model".into(), GgufValue::String("gpt2".into()));
    metadata.insert("tokenizer.ggml.pre".into(), GgufValue::String(pre.into()));
    metadata.insert("tokenizer.ggml.tokens".into(), strings(tokens));
    metadata.insert("tokenizer.ggml.merges".into(), strings(merges.iter().map(|s| s.to_string()).collect()));
    metadata.insert("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(0));
    metadata.insert("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(true));
    GgufHeader { file: "tiny.gguf".into(), version: 3, metadata, tensors: Vec::new(), alignment: 32, data_offset: 0 }
}

#[test]
fn pre_tokenizers_split_digits_as_their_models_do() {
    let symbols = |t: &Tokenizer, text: &str| -> Vec<String> {
        let ids = t.encode(text, false).unwrap();
        ids.iter().map(|&id| t.inner().id_to_token(id).unwrap()).collect()
    };
    // Merges that would join "1" "2" "3" if the pre-tokenizer let digits stay together.
    let merges = ["1 2", "12 3"];
    let llama3 = Tokenizer::from_gguf(&tiny("llama-bpe", &["12", "123"], &merges)).unwrap();
    assert_eq!(symbols(&llama3, "1234"), ["123", "4"]);
    let qwen2 = Tokenizer::from_gguf(&tiny("qwen2", &["12", "123"], &merges)).unwrap();
    assert_eq!(symbols(&qwen2, "1234"), ["1", "2", "3", "4"]);
    let gpt2 = Tokenizer::from_gguf(&tiny("gpt2", &["12", "123"], &merges)).unwrap();
    assert_eq!(symbols(&gpt2, "1234"), ["123", "4"]);
    // add_bos_token puts token 0 first.
    assert_eq!(llama3.encode("a", true).unwrap()[0], 0);
}

#[test]
fn unsupported_tokenizers_are_errors() {
    let mut h = tiny("gpt2", &[], &[]);
    h.metadata.insert("tokenizer.ggml.model".into(), GgufValue::String("bert".into()));
    let err = Tokenizer::from_gguf(&h).err().unwrap();
    assert!(matches!(err, TokenizerError::Unsupported { .. }) && err.to_string().contains("tiny.gguf"), "{err}");
    let err = Tokenizer::from_gguf(&tiny("mystery", &[], &[])).err().unwrap();
    assert!(err.to_string().contains("mystery"), "{err}");
    let mut h = tiny("gpt2", &[], &[]);
    h.metadata.remove("tokenizer.ggml.tokens");
    let err = Tokenizer::from_gguf(&h).err().unwrap();
    assert!(err.to_string().contains("tokenizer.ggml.tokens"), "{err}");
}

#[test]
fn sentencepiece_merges_by_score_with_byte_fallback() {
    let mut tokens: Vec<String> = ["<unk>", "<s>", "</s>"].map(String::from).to_vec();
    tokens.extend((0..=255).map(|b| format!("<0x{b:02X}>")));
    tokens.extend(["▁", "a", "b", "▁a", "ab", "▁ab"].map(String::from));
    let mut types = vec![2, 3, 3];
    types.extend([6; 256]);
    types.extend([1; 6]);
    let mut scores = vec![0.0f32; 259];
    scores.extend([-1.0, -2.0, -3.0, -4.0, -5.0, -6.0]);
    let mut metadata = BTreeMap::new();
    metadata.insert("tokenizer.ggml.model".into(), GgufValue::String("llama".into()));
    metadata.insert("tokenizer.ggml.tokens".into(), GgufValue::Array(GgufArray::String(tokens)));
    metadata.insert("tokenizer.ggml.token_type".into(), GgufValue::Array(GgufArray::I32(types)));
    metadata.insert("tokenizer.ggml.scores".into(), GgufValue::Array(GgufArray::F32(scores)));
    metadata.insert("tokenizer.ggml.unknown_token_id".into(), GgufValue::U32(0));
    metadata.insert("tokenizer.ggml.bos_token_id".into(), GgufValue::U32(1));
    metadata.insert("tokenizer.ggml.add_bos_token".into(), GgufValue::Bool(true));
    let h = GgufHeader {
        file: "spm.gguf".into(),
        version: 3,
        metadata,
        tensors: Vec::new(),
        alignment: 32,
        data_offset: 0,
    };
    let t = Tokenizer::from_gguf(&h).unwrap();
    let (space, a_b) = (259, 264);
    assert_eq!(t.encode("ab ab", false).unwrap(), [a_b, a_b]);
    assert_eq!(t.encode("ab", true).unwrap(), [1, a_b]);
    // "é" is not in the vocabulary: its UTF-8 bytes C3 A9 fall back to byte tokens.
    let e = t.encode("é", false).unwrap();
    assert_eq!(e, [space, 3 + 0xC3, 3 + 0xA9]);
    assert_eq!(t.decode(&e, false).unwrap(), "é");
    assert_eq!(t.decode(&[1, a_b, a_b], true).unwrap(), "ab ab");
}
