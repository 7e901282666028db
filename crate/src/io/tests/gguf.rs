//! The GGUF reader on synthetic files and on the gguf-py fixture.

use super::{repo_root, GgufBuilder};
use crate::io::ggml::dequantize_to_vec;
use crate::io::{read_gguf_file, GgmlType, GgufArray, GgufEvent, GgufHeader, GgufReader, GgufValue, LoadError};

type Tensors = Vec<(String, Vec<u8>)>;

/// Streams `bytes` in chunks of `chunk` bytes; returns the header and every tensor's bytes.
fn read(bytes: &[u8], chunk: usize, total: Option<u64>) -> Result<(GgufHeader, Tensors), LoadError> {
    let mut reader = GgufReader::new("test.gguf", total);
    let mut tensors = Vec::new();
    let mut headers = 0;
    let mut on_event = |e: GgufEvent<'_>| {
        match e {
            GgufEvent::Header(_) => headers += 1,
            GgufEvent::Tensor { info, bytes } => {
                assert_eq!(bytes.len() as u64, info.n_bytes);
                tensors.push((info.name.clone(), bytes.to_vec()));
            }
        }
        Ok::<(), LoadError>(())
    };
    for c in bytes.chunks(chunk.max(1)) {
        reader.feed(c, &mut on_event)?;
    }
    reader.finish(&mut on_event)?;
    assert_eq!(headers, 1, "one Header event");
    assert_eq!(reader.progress().consumed, bytes.len() as u64);
    Ok((reader.into_header().unwrap(), tensors))
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A small valid file: metadata, an F32 matrix, an empty tensor, a Q8_0 block.
fn small() -> GgufBuilder {
    let mut q8 = vec![0u8; 34];
    q8[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
    q8[2..].iter_mut().enumerate().for_each(|(i, q)| *q = (i as i8 - 16) as u8);
    GgufBuilder::new()
        .kv_str("general.architecture", "llama")
        .kv_u32("llama.block_count", 2)
        .tensor("a", &[3, 2], 0, f32_bytes(&[1., 2., 3., 4., 5., 6.]))
        .tensor("empty", &[0], 0, Vec::new())
        .tensor("q", &[32], 8, q8)
}

#[test]
fn small_file_parses_whatever_the_chunk_size() {
    let bytes = small().build();
    let (header, want) = read(&bytes, bytes.len(), Some(bytes.len() as u64)).unwrap();
    assert_eq!(header.version, 3);
    assert_eq!(header.architecture().unwrap(), "llama");
    assert_eq!(header.get_u32("llama.block_count").unwrap(), 2);
    assert_eq!(header.data_offset % 32, 0);
    let a = header.tensor("a").unwrap();
    assert_eq!((a.dims.as_slice(), a.shape(), a.ty, a.n_bytes), (&[3, 2][..], vec![2, 3], GgmlType::F32, 24));
    let names: Vec<&str> = want.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "empty", "q"]);
    assert_eq!(want[0].1, f32_bytes(&[1., 2., 3., 4., 5., 6.]));
    let q = dequantize_to_vec("q", GgmlType::Q8_0, &want[2].1, 32).unwrap();
    assert_eq!(q[0], -8.0);
    for chunk in [1, 2, 3, 5, 7, 31, 64, 4096] {
        let (_, got) = read(&bytes, chunk, None).unwrap();
        assert_eq!(got, want, "chunk size {chunk}");
    }
}

#[test]
fn fixture_metadata_of_every_value_type() {
    let path = repo_root().join("tests/fixtures/gguf/quants.gguf");
    let header = read_gguf_file(&path, 1000, |_| Ok::<(), LoadError>(())).unwrap();
    assert_eq!(header.alignment, 64);
    let get = |k: &str| header.get(&format!("fixture.{k}")).unwrap().clone();
    assert_eq!(get("u8"), GgufValue::U8(200));
    assert_eq!(get("i8"), GgufValue::I8(-100));
    assert_eq!(get("u16"), GgufValue::U16(60000));
    assert_eq!(get("i16"), GgufValue::I16(-30000));
    assert_eq!(get("u32"), GgufValue::U32(4_000_000_000));
    assert_eq!(get("i32"), GgufValue::I32(-2_000_000_000));
    assert_eq!(get("f32"), GgufValue::F32(0.25));
    assert_eq!(get("bool"), GgufValue::Bool(true));
    assert_eq!(get("string"), GgufValue::String("héllo, wörld ✨".into()));
    assert_eq!(get("u64"), GgufValue::U64((1 << 63) + 5));
    assert_eq!(get("i64"), GgufValue::I64(-(1 << 62)));
    assert_eq!(get("f64"), GgufValue::F64(-1.5e300));
    let strings = GgufValue::Array(GgufArray::String(vec!["a".into(), "".into(), "ĠĠ".into()]));
    assert_eq!(get("strings"), strings);
    let nested = GgufArray::Array(vec![GgufArray::I32(vec![1, 2]), GgufArray::I32(vec![3])]);
    assert_eq!(get("nested"), GgufValue::Array(nested));
    assert_eq!(get("f32s"), GgufValue::Array(GgufArray::F32(vec![1.0, -2.5])));
    assert!(matches!(header.get_u32("fixture.string"), Err(LoadError::WrongValueType { .. })));
    let err = header.get_str("fixture.missing").unwrap_err();
    assert!(matches!(err, LoadError::MissingKey { .. }) && err.to_string().contains("fixture.missing"));
}

#[test]
fn dequantization_matches_gguf_py_bit_for_bit() {
    let path = repo_root().join("tests/fixtures/gguf/quants.gguf");
    let mut tensors = std::collections::HashMap::new();
    let header = read_gguf_file(&path, 4096, |e| {
        if let GgufEvent::Tensor { info, bytes } = e {
            tensors.insert(info.name.clone(), (info.clone(), bytes.to_vec()));
        }
        Ok::<(), LoadError>(())
    })
    .unwrap();
    let mut checked = Vec::new();
    for info in header.tensors.iter().filter(|t| tensors.contains_key(&format!("{}.expected", t.name))) {
        let (_, raw) = &tensors[&info.name];
        let (expected_info, expected) = &tensors[&format!("{}.expected", info.name)];
        assert_eq!(expected_info.n_elements(), info.n_elements());
        let got = dequantize_to_vec(&info.name, info.ty, raw, info.n_elements() as usize).unwrap();
        let want = dequantize_to_vec("expected", GgmlType::F32, expected, got.len()).unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g.to_bits(), w.to_bits(), "{} [{i}]: got {g}, expected {w}", info.name);
        }
        checked.push(info.ty);
    }
    use GgmlType::*;
    assert_eq!(checked, [Q8_0, Q4_0, Q4_1, BF16, F16, Q4_K, Q6_K]);
}

/// Asserts that reading `bytes` fails (whatever the chunk size) with an error that `check`
/// accepts and whose message names `name`.
fn assert_fails(bytes: &[u8], total: Option<u64>, name: &str, check: impl Fn(&LoadError) -> bool) {
    for chunk in [1, 7, bytes.len().max(1)] {
        let err = read(bytes, chunk, total).unwrap_err();
        assert!(check(&err), "chunk {chunk}: unexpected error {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("test.gguf") && msg.contains(name), "chunk {chunk}: `{msg}` should name `{name}`");
    }
}

#[test]
fn bad_magic_and_version() {
    let mut bytes = small().build();
    bytes[..4].copy_from_slice(b"GGML");
    assert_fails(&bytes, None, "GGUF", |e| matches!(e, LoadError::BadMagic { .. }));
    let mut b = small();
    b.version = 1;
    assert_fails(&b.build(), None, "version 1", |e| matches!(e, LoadError::UnsupportedVersion { version: 1, .. }));
    b.version = 3u32.swap_bytes();
    assert_fails(&b.build(), None, "version", |e| matches!(e, LoadError::UnsupportedVersion { .. }));
}

#[test]
fn truncated_files() {
    let bytes = small().build();
    // The preamble, the metadata, the tensor infos, tensor `a`, tensor `q`.
    for cut in [0, 3, 10, 30, 60, 150, 234, bytes.len() - 1] {
        let err = read(&bytes[..cut], 5, None).unwrap_err();
        assert!(matches!(err, LoadError::Truncated { .. }), "cut {cut}: {err:?}");
    }
    let err = read(&bytes[..bytes.len() - 1], 5, None).unwrap_err();
    assert!(err.to_string().contains("tensor `q`"), "{err}");
    // A string longer than what is left of the file, with the length known or not.
    let mut long = 1000u64.to_le_bytes().to_vec();
    long.extend(b"abc");
    let long_file = GgufBuilder::new().kv_raw(b"k", 8, &long).build();
    for total in [None, Some(long_file.len() as u64)] {
        assert_fails(&long_file, total, "metadata entry #0", |e| matches!(e, LoadError::Truncated { .. }));
    }
    // With the length known, a tensor past the end is caught with the header.
    let n = bytes.len() as u64 - 1;
    assert_fails(&bytes[..n as usize], Some(n), "q", |e| matches!(e, LoadError::TensorOutOfBounds { .. }));
}

#[test]
fn absurd_counts_lengths_and_dims() {
    let mut b = small();
    b.n_tensors = Some(1 << 40);
    assert_fails(&b.build(), None, "tensor count", |e| matches!(e, LoadError::LimitExceeded { .. }));

    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend(b"abc");
    let bytes = GgufBuilder::new().kv_raw(b"k", 8, &huge).build();
    assert_fails(&bytes, None, "`k`", |e| matches!(e, LoadError::LimitExceeded { .. }));

    let mut array = 4u32.to_le_bytes().to_vec();
    array.extend((1u64 << 40).to_le_bytes());
    let bytes = GgufBuilder::new().kv_raw(b"arr", 9, &array).build();
    assert_fails(&bytes, None, "`arr`", |e| matches!(e, LoadError::LimitExceeded { .. }));

    // Arrays nested deeper than the limit.
    let mut nested = Vec::new();
    for _ in 0..6 {
        nested.extend(9u32.to_le_bytes());
        nested.extend(1u64.to_le_bytes());
    }
    let bytes = GgufBuilder::new().kv_raw(b"deep", 9, &nested).build();
    assert_fails(&bytes, None, "`deep`", |e| matches!(e, LoadError::LimitExceeded { .. }));

    let bytes = GgufBuilder::new().tensor("five_dims", &[1, 1, 1, 1, 1], 0, vec![0; 4]).build();
    assert_fails(&bytes, None, "five_dims", |e| matches!(e, LoadError::BadShape { .. }));
    let bytes = GgufBuilder::new().tensor("overflow", &[1 << 32, 1 << 32, 4], 0, vec![]).build();
    assert_fails(&bytes, None, "overflow", |e| matches!(e, LoadError::BadShape { .. }));
    let bytes = GgufBuilder::new().tensor("partial_block", &[33], 8, vec![0; 34]).build();
    assert_fails(&bytes, None, "partial_block", |e| matches!(e, LoadError::BadShape { .. }));
}

#[test]
fn bad_keys_types_and_order() {
    let bytes = GgufBuilder::new().kv_raw(b"bad\xffkey", 4, &[0; 4]).build();
    assert_fails(&bytes, None, "metadata key #0", |e| matches!(e, LoadError::InvalidUtf8 { .. }));
    let bytes = GgufBuilder::new().kv_raw(b"odd", 13, &[0; 4]).build();
    assert_fails(&bytes, None, "`odd`", |e| matches!(e, LoadError::UnknownValueType { type_id: 13, .. }));
    let bytes = GgufBuilder::new().kv_u32("twice", 1).kv_u32("twice", 2).build();
    assert_fails(&bytes, None, "`twice`", |e| matches!(e, LoadError::DuplicateKey { .. }));
    let bytes = GgufBuilder::new().kv_u32("general.alignment", 3).build();
    assert_fails(&bytes, None, "alignment", |e| matches!(e, LoadError::BadAlignment { value: 3, .. }));
    let bytes = GgufBuilder::new().tensor("mystery", &[4], 4, vec![0; 4]).build();
    assert_fails(&bytes, None, "mystery", |e| matches!(e, LoadError::UnknownGgmlType { type_id: 4, .. }));
    let b = GgufBuilder::new().tensor("first", &[8], 0, vec![1; 32]).tensor("second", &[8], 0, vec![2; 32]);
    let bytes = b.build_with_offsets(Some(&[32, 0]));
    assert_fails(&bytes, None, "second", |e| matches!(e, LoadError::OutOfOrder { .. }));
    let bytes = b.build_with_offsets(Some(&[0, 16]));
    assert_fails(&bytes, None, "second", |e| matches!(e, LoadError::BadShape { .. }));
    let b = GgufBuilder::new().tensor("dup", &[8], 0, vec![1; 32]).tensor("dup", &[8], 0, vec![2; 32]);
    assert_fails(&b.build(), None, "dup", |e| matches!(e, LoadError::DuplicateTensor { .. }));
}

#[test]
fn mutated_files_give_errors_not_panics() {
    let bytes = small().build();
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..2000 {
        let mut m = bytes.clone();
        for _ in 0..1 + rand() % 4 {
            let i = (rand() % m.len() as u64) as usize;
            m[i] = rand() as u8;
        }
        let cut = m.len() - (rand() % 8) as usize;
        let _ = read(&m[..cut], 1 + (rand() % 50) as usize, None);
    }
}
