//! The readers on the real SmolLM2-135M-Instruct Q4_1 GGUF (the test model, fetched on first use).

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use super::{repo_root, smollm2_path};
use crate::io::ggml::dequantize_to_vec;
use crate::io::{read_gguf_file, read_gguf_header, GgmlType, GgufArray, GgufEvent, LoadError};

#[test]
fn smollm2_header() {
    let h = read_gguf_header(&smollm2_path()).unwrap();
    assert_eq!(h.architecture().unwrap(), "llama");
    assert_eq!(h.get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(h.get_u32("llama.embedding_length").unwrap(), 576);
    assert_eq!(h.get_u32("llama.attention.head_count").unwrap(), 9);
    assert_eq!(h.get_u32("llama.attention.head_count_kv").unwrap(), 3);
    assert_eq!(h.get_string_array("tokenizer.ggml.tokens").unwrap().len(), 49152);
    let count = |ty| h.tensors.iter().filter(|t| t.ty == ty).count();
    assert_eq!((count(GgmlType::Q4_1), count(GgmlType::Q8_0), count(GgmlType::F32)), (210, 1, 61));
    assert_eq!(h.tensors.len(), 272);
    let embd = h.tensor("token_embd.weight").unwrap();
    assert_eq!((embd.ty, embd.shape()), (GgmlType::Q8_0, vec![49152, 576]));
    assert!(h.tensors.iter().filter(|t| t.ty == GgmlType::F32).all(|t| t.name.ends_with("norm.weight")));
}

/// Tensor names and hashes in file order.
type Hashes = Vec<(String, u64)>;

/// Streams the model in `chunk`-byte chunks; returns a hash of every tensor, and the bytes of
/// the tensors named in `keep`.
fn stream(chunk: usize, keep: &[&str]) -> (Hashes, HashMap<String, Vec<u8>>) {
    let mut hashes = Vec::new();
    let mut kept = HashMap::new();
    read_gguf_file(&smollm2_path(), chunk, |e| {
        if let GgufEvent::Tensor { info, bytes } = e {
            let mut h = DefaultHasher::new();
            bytes.hash(&mut h);
            hashes.push((info.name.clone(), h.finish()));
            if keep.contains(&info.name.as_str()) {
                kept.insert(info.name.clone(), bytes.to_vec());
            }
        }
        Ok::<(), LoadError>(())
    })
    .unwrap();
    (hashes, kept)
}

#[test]
fn smollm2_streams_identically_whatever_the_chunk_size() {
    let (big, _) = stream(1 << 20, &[]);
    assert_eq!(big.len(), 272);
    let (small, _) = stream(4096, &[]);
    assert_eq!(big, small);
    let (odd, _) = stream(1_000_003, &[]);
    assert_eq!(big, odd);
}

/// The row indices the fixture stored under `key`.
fn fixture_rows(h: &crate::io::GgufHeader, key: &str) -> Vec<usize> {
    match h.get_array(key).unwrap() {
        GgufArray::I32(v) => v.iter().map(|&r| r as usize).collect(),
        other => panic!("{key}: {other:?}"),
    }
}

#[test]
fn smollm2_rows_dequantize_like_gguf_py() {
    let names = ["token_embd.weight", "blk.0.attn_q.weight"];
    let (_, model) = stream(1 << 20, &names);
    let mut fixture = HashMap::new();
    let path = repo_root().join("tests/fixtures/gguf/quants.gguf");
    let header = read_gguf_file(&path, 1 << 16, |e| {
        if let GgufEvent::Tensor { info, bytes } = e {
            fixture.insert(info.name.clone(), bytes.to_vec());
        }
        Ok::<(), LoadError>(())
    })
    .unwrap();
    for (name, key, ty) in [(names[0], "token_embd", GgmlType::Q8_0), (names[1], "attn_q", GgmlType::Q4_1)] {
        let rows = fixture_rows(&header, &format!("fixture.{key}_rows"));
        let expected = &fixture[&format!("smollm2.{key}.rows")];
        let row_bytes = ty.bytes_for(576).unwrap() as usize;
        for (k, &r) in rows.iter().enumerate() {
            let got = dequantize_to_vec(name, ty, &model[name][r * row_bytes..(r + 1) * row_bytes], 576).unwrap();
            let want =
                dequantize_to_vec("expected", GgmlType::F32, &expected[k * 576 * 4..(k + 1) * 576 * 4], 576).unwrap();
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{name} row {r} [{i}]: got {g}, expected {w}");
            }
        }
    }
}
