//! Malformed model files through both streaming readers, whatever the chunk size and whether the
//! file length is known: a typed `LoadError` naming the file, never a panic, a hang or an
//! allocation the bytes do not justify. Each tensor handed over is dequantized, and a matrix has
//! its Q/K rows un-permuted, as the model loader does it. The inputs found by the fuzz targets
//! (`fuzz/fuzz_targets/gguf_read.rs`, `safetensors_read.rs`) are kept in `tests/fixtures/fuzz/`;
//! the others are made here. (Cases already in `weblora::io`'s unit tests are not repeated.)

use weblora::io::ggml::dequantize_to_vec;
use weblora::io::safetensors::read_f32_tensors;
use weblora::io::{
    gguf_to_hf_qk_rows, GgmlType, GgufEvent, GgufReader, LoadError, SafetensorsEvent, SafetensorsIndex,
    SafetensorsReader,
};
use weblora_tests::fixture::fixture_dir;

const CHUNKS: [usize; 6] = [1, 2, 7, 64, 4096, usize::MAX];

/// Streams `bytes` through a GGUF reader in `chunk`-byte pieces; returns the number of tensors.
fn read_gguf(file: &str, bytes: &[u8], chunk: usize, total: Option<u64>) -> Result<usize, LoadError> {
    let mut reader = GgufReader::new(file, total);
    let mut n = 0;
    let mut on_event = |ev: GgufEvent<'_>| -> Result<(), LoadError> {
        let GgufEvent::Tensor { info, bytes } = ev else { return Ok(()) };
        n += 1;
        if info.ty.can_dequantize() {
            let values = dequantize_to_vec(&info.name, info.ty, bytes, info.n_elements() as usize)?;
            if let [rows, cols] = info.shape()[..] {
                let f32_bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
                let _ = gguf_to_hf_qk_rows(&info.name, &f32_bytes, GgmlType::F32, rows as usize, cols as usize, 1);
            }
        }
        Ok(())
    };
    for c in bytes.chunks(chunk) {
        reader.feed(c, &mut on_event)?;
    }
    reader.finish(&mut on_event)?;
    Ok(n)
}

/// Streams `bytes` through a safetensors reader in `chunk`-byte pieces; returns the number of
/// tensors.
fn read_safetensors(file: &str, bytes: &[u8], chunk: usize, total: Option<u64>) -> Result<usize, LoadError> {
    let mut reader = SafetensorsReader::new(file, total);
    let mut n = 0;
    let mut on_event = |ev: SafetensorsEvent<'_>| -> Result<(), LoadError> {
        let SafetensorsEvent::Tensor { info, bytes } = ev else { return Ok(()) };
        n += 1;
        dequantize_to_vec(&info.name, info.ty, bytes, info.n_elements() as usize).map(drop)
    };
    for c in bytes.chunks(chunk) {
        reader.feed(c, &mut on_event)?;
    }
    reader.finish(&mut on_event)?;
    Ok(n)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Gguf,
    Safetensors,
}

/// Reads `bytes`, named `file`, every way: when `valid_as` is set, that reader must accept the
/// file; otherwise each reader must fail with a message naming `file`, and the reader of the
/// file's `kind` with a message that also contains `says`.
fn check(file: &str, kind: Kind, bytes: &[u8], valid_as: Option<Kind>, says: &str) {
    for total in [None, Some(bytes.len() as u64)] {
        for chunk in CHUNKS {
            let results = [
                (Kind::Gguf, read_gguf(file, bytes, chunk, total)),
                (Kind::Safetensors, read_safetensors(file, bytes, chunk, total)),
            ];
            for (reader, result) in results {
                let at = format!("{file} through the {reader:?} reader, chunk {chunk}, length {total:?}");
                match (result, valid_as == Some(reader)) {
                    (Ok(_), true) => {}
                    (Ok(n), false) => panic!("{at}: read {n} tensors"),
                    (Err(e), true) => panic!("{at}: {e}"),
                    (Err(e), false) => {
                        let msg = e.to_string();
                        assert!(msg.contains(file), "{at}: `{msg}` should name the file");
                        if reader == kind {
                            assert!(msg.contains(says), "{at}: `{msg}` should say `{says}`");
                        }
                    }
                }
            }
        }
    }
    let whole = read_f32_tensors(file, bytes);
    assert_eq!(whole.is_ok(), valid_as == Some(Kind::Safetensors), "{file}: read_f32_tensors");
    let err = SafetensorsIndex::parse(file, bytes).expect_err("not an index");
    assert!(err.to_string().contains(file), "{err}");
}

/// A GGUF file: the preamble with counts `n_tensors` and `n_kv`, then `rest` (key/values and
/// tensor infos, already encoded), padded to 32 bytes, then `data`.
fn gguf(n_tensors: u64, n_kv: u64, rest: &[u8], data: &[u8]) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    out.extend(3u32.to_le_bytes());
    out.extend(n_tensors.to_le_bytes());
    out.extend(n_kv.to_le_bytes());
    out.extend(rest);
    out.resize(out.len().div_ceil(32) * 32, 0);
    out.extend(data);
    out
}

fn gguf_string(s: &str) -> Vec<u8> {
    let mut out = (s.len() as u64).to_le_bytes().to_vec();
    out.extend(s.as_bytes());
    out
}

/// One tensor info: name, dims (innermost first), GGML type id, data offset.
fn tensor_info(name: &str, dims: &[u64], type_id: u32, offset: u64) -> Vec<u8> {
    let mut out = gguf_string(name);
    out.extend((dims.len() as u32).to_le_bytes());
    dims.iter().for_each(|d| out.extend(d.to_le_bytes()));
    out.extend(type_id.to_le_bytes());
    out.extend(offset.to_le_bytes());
    out
}

/// One metadata entry: key, value type id, encoded value.
fn key_value(key: &str, type_id: u32, value: &[u8]) -> Vec<u8> {
    let mut out = gguf_string(key);
    out.extend(type_id.to_le_bytes());
    out.extend(value);
    out
}

/// A safetensors file: the length prefix, `json`, then `data`.
fn safetensors(json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json.as_bytes());
    out.extend(data);
    out
}

#[test]
fn fuzz_found_inputs() {
    // Each file with the reader that must accept it (None: both must fail) and, for a
    // rejected file, what its own reader's message says.
    let cases: [(&str, Kind, Option<Kind>, &str); 1] = [
        // Tensor `f32`, (24189255811072, 0): no bytes, but the Q/K row permutation looped over
        // every row.
        ("empty_rows.gguf", Kind::Gguf, Some(Kind::Gguf), ""),
    ];
    for (name, kind, valid_as, says) in cases {
        let bytes = std::fs::read(fixture_dir("fuzz").join(name)).unwrap();
        check(name, kind, &bytes, valid_as, says);
    }
}

#[test]
fn malformed_gguf_files() {
    let f32_4 = vec![0u8; 16];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("key_count.gguf", gguf(0, 1 << 40, &[], &[]), "metadata key count"),
        ("missing_infos.gguf", gguf(1000, 0, &[], &[]), "tensor #0"),
        ("name_length.gguf", gguf(1, 0, &(1u64 << 40).to_le_bytes(), &[]), "the name of tensor #0"),
        ("element_length.gguf", gguf(0, 1, &key_value("arr", 9, &string_array_with_length(1 << 40)), &[]), "`arr`"),
        ("alignment_type.gguf", gguf(0, 1, &key_value("general.alignment", 10, &32u64.to_le_bytes()), &[]), "u32"),
        // A tensor after 2^31 bytes of padding that never come.
        (
            "alignment_huge.gguf",
            {
                let mut rest = key_value("general.alignment", 4, &(1u32 << 31).to_le_bytes());
                rest.extend(tensor_info("t", &[4], 0, 0));
                gguf(1, 1, &rest, &f32_4)
            },
            "`t`",
        ),
        ("offset_overflow.gguf", gguf(1, 0, &tensor_info("far", &[4], 0, u64::MAX - 31), &f32_4), "`far`"),
        // 2^62 bytes of data announced, 16 present: no allocation, only an error.
        ("huge_dims.gguf", gguf(1, 0, &tensor_info("huge", &[1 << 30, 1 << 30], 0, 0), &f32_4), "`huge`"),
    ];
    for (name, bytes, says) in cases {
        check(name, Kind::Gguf, &bytes, None, says);
    }
}

/// A metadata array of strings whose first element claims `len` bytes.
fn string_array_with_length(len: u64) -> Vec<u8> {
    let mut out = 8u32.to_le_bytes().to_vec();
    out.extend(1u64.to_le_bytes());
    out.extend(len.to_le_bytes());
    out.extend(b"abc");
    out
}

#[test]
fn malformed_safetensors_files() {
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty_header.safetensors", safetensors("", &[]), "invalid JSON"),
        ("not_an_object.safetensors", safetensors("[1, 2]", &[]), "invalid JSON"),
        ("metadata_number.safetensors", safetensors(r#"{"__metadata__": {"n": 1}}"#, &[]), "__metadata__"),
        (
            "end_before_start.safetensors",
            safetensors(r#"{"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}"#, &[0; 8]),
            "`w`",
        ),
        (
            "negative_dim.safetensors",
            safetensors(r#"{"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}"#, &[0; 4]),
            "`w`",
        ),
        // 2^62 bytes of data announced, 16 present: no allocation, only an error.
        (
            "huge_dims.safetensors",
            safetensors(
                r#"{"huge": {"dtype": "F32", "shape": [2147483648, 536870912], "data_offsets": [0, 4611686018427387904]}}"#,
                &[0; 16],
            ),
            "`huge`",
        ),
    ];
    for (name, bytes, says) in cases {
        check(name, Kind::Safetensors, &bytes, None, says);
    }
}

#[test]
fn malformed_indexes() {
    for (json, says) in [
        (r#"{"weight_map": {"w": ""}}"#, "`w`"),
        (r#"{"weight_map": {"w": 1}}"#, "invalid index JSON"),
        (r#"{"weight_map": {"w": "."}}"#, "`w`"),
    ] {
        let err = SafetensorsIndex::parse("model.safetensors.index.json", json.as_bytes()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("model.safetensors.index.json") && msg.contains(says), "{json}: {msg}");
    }
}
