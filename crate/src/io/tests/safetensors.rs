//! The safetensors reader and index on synthetic files.

use safetensors::tensor::TensorView;
use safetensors::Dtype;

use crate::io::{GgmlType, LoadError, SafetensorsEvent, SafetensorsIndex, SafetensorsReader};

type Tensors = Vec<(String, Vec<u8>)>;

/// Streams `bytes` in chunks of `chunk` bytes; returns every tensor's bytes.
fn read(bytes: &[u8], chunk: usize, total: Option<u64>) -> Result<Tensors, LoadError> {
    let mut reader = SafetensorsReader::new("test.safetensors", total);
    let mut tensors = Vec::new();
    let mut on_event = |e: SafetensorsEvent<'_>| {
        if let SafetensorsEvent::Tensor { info, bytes } = e {
            tensors.push((info.name.clone(), bytes.to_vec()));
        }
        Ok::<(), LoadError>(())
    };
    for c in bytes.chunks(chunk.max(1)) {
        reader.feed(c, &mut on_event)?;
    }
    reader.finish(&mut on_event)?;
    Ok(tensors)
}

/// A file written by the `safetensors` crate: "b" (2, 3) F32, "a" (4,) BF16, "c" (1,) F16.
fn sample() -> (Vec<u8>, Tensors) {
    let b: Vec<u8> = (0..24).collect();
    let a: Vec<u8> = (100..108).collect();
    let c = vec![7, 8];
    let views = [
        ("b", TensorView::new(Dtype::F32, vec![2, 3], &b).unwrap()),
        ("a", TensorView::new(Dtype::BF16, vec![4], &a).unwrap()),
        ("c", TensorView::new(Dtype::F16, vec![1], &c).unwrap()),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    // The crate lays tensors out by dtype alignment, then name.
    let want = vec![("b".into(), b), ("a".into(), a), ("c".into(), c)];
    (bytes, want)
}

/// A file with JSON header `json` and `data_len` zero bytes of data.
fn with_header(json: &str, data_len: usize) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend(json.as_bytes());
    out.resize(out.len() + data_len, 0);
    out
}

#[test]
fn streams_whatever_the_chunk_size() {
    let (bytes, want) = sample();
    let mut reader = SafetensorsReader::new("x", Some(bytes.len() as u64));
    reader.feed(&bytes, |_| Ok::<(), LoadError>(())).unwrap();
    let header = reader.header().unwrap();
    let b = header.tensor("b").unwrap();
    assert_eq!((b.dtype, b.ty, b.shape.as_slice(), b.n_bytes), (Dtype::F32, GgmlType::F32, &[2, 3][..], 24));
    let mut got = read(&bytes, bytes.len(), Some(bytes.len() as u64)).unwrap();
    let mut sorted = want.clone();
    sorted.sort();
    got.sort();
    assert_eq!(got, sorted);
    let in_order = read(&bytes, 1, None).unwrap();
    for chunk in [2, 3, 9, 64, 4096] {
        assert_eq!(read(&bytes, chunk, None).unwrap(), in_order, "chunk {chunk}");
    }
}

#[test]
fn empty_tensor_at_the_start_of_the_next() {
    // Laid out by dtype alignment, then name: "a" [0, 8), "zz" [8, 8), "b" [8, 10); the JSON
    // map lists them by name, so "b" comes before the empty "zz" that shares its start.
    let (a, b) = (vec![1u8; 8], vec![2u8; 2]);
    let views = [
        ("a", TensorView::new(Dtype::F32, vec![2], &a).unwrap()),
        ("zz", TensorView::new(Dtype::F32, vec![0], &[]).unwrap()),
        ("b", TensorView::new(Dtype::F16, vec![1], &b).unwrap()),
    ];
    let bytes = safetensors::serialize(views, None).unwrap();
    let want: Tensors = vec![("a".into(), a), ("zz".into(), vec![]), ("b".into(), b)];
    for chunk in [1, 3, bytes.len()] {
        assert_eq!(read(&bytes, chunk, Some(bytes.len() as u64)).unwrap(), want, "chunk {chunk}");
    }
}

fn assert_fails(bytes: &[u8], total: Option<u64>, name: &str, check: impl Fn(&LoadError) -> bool) {
    for chunk in [1, 5, bytes.len().max(1)] {
        let err = read(bytes, chunk, total).unwrap_err();
        assert!(check(&err), "chunk {chunk}: unexpected error {err:?}");
        let msg = err.to_string();
        assert!(msg.contains("test.safetensors") && msg.contains(name), "chunk {chunk}: `{msg}` should name `{name}`");
    }
}

#[test]
fn bad_files() {
    let (bytes, _) = sample();
    let n = bytes.len() - 1;
    assert_fails(&bytes[..n], None, "tensor `c`", |e| matches!(e, LoadError::Truncated { .. }));
    assert_fails(&bytes[..n], Some(n as u64), "c", |e| matches!(e, LoadError::TensorOutOfBounds { .. }));
    assert_fails(&bytes[..5], None, "JSON header", |e| matches!(e, LoadError::Truncated { .. }));

    let mut past_end = 1000u64.to_le_bytes().to_vec();
    past_end.extend(b"{}");
    assert_fails(&past_end, Some(10), "past the end", |e| matches!(e, LoadError::BadHeader { .. }));
    let huge = u64::MAX.to_le_bytes();
    assert_fails(&huge, None, "limit", |e| matches!(e, LoadError::BadHeader { .. }));
    assert_fails(&with_header("{not json", 0), None, "JSON", |e| matches!(e, LoadError::BadHeader { .. }));

    let q7 = r#"{"w":{"dtype":"Q7","shape":[1],"data_offsets":[0,1]}}"#;
    assert_fails(&with_header(q7, 1), None, "w", |e| matches!(e, LoadError::UnsupportedDtype { .. }));
    let i64 = r#"{"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#;
    assert_fails(&with_header(i64, 8), None, "ids", |e| matches!(e, LoadError::UnsupportedDtype { .. }));
    let wrong = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    assert_fails(&with_header(wrong, 8), None, "w", |e| matches!(e, LoadError::BadShape { .. }));
    let dims = r#"{"w":{"dtype":"F32","shape":[1,1,1,1,1],"data_offsets":[0,4]}}"#;
    assert_fails(&with_header(dims, 4), None, "w", |e| matches!(e, LoadError::BadShape { .. }));
    let overflow = r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#;
    assert_fails(&with_header(overflow, 4), None, "w", |e| matches!(e, LoadError::BadShape { .. }));
    let overlap = r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#;
    assert_fails(&with_header(overlap, 8), None, "b", |e| matches!(e, LoadError::OutOfOrder { .. }));
}

#[test]
fn index_maps_tensors_to_shards() {
    let json = br#"{"metadata":{"total_size":10},"weight_map":{
        "lm_head.weight":"model-00002-of-00002.safetensors",
        "model.embed_tokens.weight":"model-00001-of-00002.safetensors",
        "model.norm.weight":"model-00002-of-00002.safetensors"}}"#;
    let index = SafetensorsIndex::parse("model.safetensors.index.json", json).unwrap();
    assert_eq!(index.shards(), ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]);
    assert_eq!(index.weight_map["model.norm.weight"], "model-00002-of-00002.safetensors");
    let bad = br#"{"weight_map":{"w":"../../etc/passwd"}}"#;
    let err = SafetensorsIndex::parse("i.json", bad).unwrap_err();
    assert!(matches!(err, LoadError::BadIndex { .. }) && err.to_string().contains("`w`"), "{err}");
    let err = SafetensorsIndex::parse("i.json", b"{}").unwrap_err();
    assert!(matches!(err, LoadError::BadHeader { .. }) && err.to_string().contains("i.json"));
}
