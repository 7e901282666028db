//! A push-based reader for Hugging Face safetensors files, and sharded checkpoints' index.
//!
//! File layout: u64 little-endian header length N, N bytes of JSON
//! (`{"name": {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [start, end]}, ...,
//! "__metadata__": {...}}`), then the data section; offsets are relative to its start (byte 8 + N).
//! Shapes are row-major, outermost first. Only F32, F16 and BF16 tensors are accepted.
//!
//! [`SafetensorsReader::feed`] takes chunks of any size and calls back with
//! [`SafetensorsEvent::Header`] once, then [`SafetensorsEvent::Tensor`] for every tensor in
//! data offset order, as soon as its bytes are complete.

use std::collections::{BTreeMap, HashMap, HashSet};

use safetensors::Dtype;
use serde_json::{Map, Value};

use super::ggml::GgmlType;
use super::stream::TensorCursor;
use super::{LoadError, Progress};

/// Largest JSON header accepted, in bytes.
pub const MAX_HEADER_LEN: u64 = 100_000_000;
/// Most dimensions of a tensor.
const MAX_DIMS: usize = 4;

/// One tensor of a safetensors file.
#[derive(Clone, Debug, PartialEq)]
pub struct SafetensorsTensorInfo {
    pub name: String,
    pub dtype: Dtype,
    /// The same element type as a GGML type: F32, F16 or BF16.
    pub ty: GgmlType,
    /// Row-major, outermost first, at most 4 dims.
    pub shape: Vec<u64>,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    pub n_bytes: u64,
}

impl SafetensorsTensorInfo {
    pub fn n_elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

/// The parsed JSON header.
#[derive(Clone, Debug)]
pub struct SafetensorsHeader {
    /// The file's name, for messages.
    pub file: String,
    /// The free-form `__metadata__` strings.
    pub metadata: HashMap<String, String>,
    /// In data offset order.
    pub tensors: Vec<SafetensorsTensorInfo>,
    /// Absolute file offset of the data section (8 + the JSON length).
    pub data_offset: u64,
}

impl SafetensorsHeader {
    /// Parses `json`, the header of file `file`, `total` bytes long when known.
    pub fn parse(file: &str, json: &[u8], total: Option<u64>) -> Result<Self, LoadError> {
        let bad = |reason: String| LoadError::BadHeader { file: file.into(), reason };
        let map: Map<String, Value> = serde_json::from_slice(json).map_err(|e| bad(format!("invalid JSON: {e}")))?;
        let data_offset = 8 + json.len() as u64;
        let mut metadata = HashMap::new();
        let mut tensors = Vec::with_capacity(map.len());
        for (name, value) in map {
            if name == "__metadata__" {
                metadata = serde_json::from_value(value).map_err(|e| bad(format!("`__metadata__`: {e}")))?;
            } else {
                tensors.push(tensor_info(file, name, value)?);
            }
        }
        // By start, then end, as the safetensors crate does: an empty tensor may share its start
        // with the next tensor, and must come first whatever the names.
        tensors.sort_by_key(|t| (t.offset, t.n_bytes));
        let mut previous_end = 0;
        for t in &tensors {
            if t.offset < previous_end {
                return Err(LoadError::OutOfOrder {
                    file: file.into(),
                    tensor: t.name.clone(),
                    offset: t.offset,
                    previous_end,
                });
            }
            previous_end = t.offset + t.n_bytes;
            let end = data_offset.saturating_add(previous_end);
            if let Some(len) = total.filter(|&len| end > len) {
                return Err(LoadError::TensorOutOfBounds { file: file.into(), tensor: t.name.clone(), end, len });
            }
        }
        Ok(Self { file: file.into(), metadata, tensors, data_offset })
    }

    pub fn tensor(&self, name: &str) -> Option<&SafetensorsTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// Reads and checks one tensor's entry.
fn tensor_info(file: &str, name: String, value: Value) -> Result<SafetensorsTensorInfo, LoadError> {
    let bad = |reason: String| LoadError::BadShape { file: file.into(), tensor: name.clone(), reason };
    let ty = match value.get("dtype").and_then(Value::as_str) {
        Some("F32") => GgmlType::F32,
        Some("F16") => GgmlType::F16,
        Some("BF16") => GgmlType::BF16,
        Some(other) => {
            return Err(LoadError::UnsupportedDtype { file: file.into(), tensor: name, dtype: other.into() })
        }
        None => return Err(bad("no string `dtype`".into())),
    };
    /// The crate's `TensorInfo`, with sizes as u64 so that wasm32 reads files past 4 GiB.
    #[derive(serde::Deserialize)]
    struct Entry {
        dtype: Dtype,
        shape: Vec<u64>,
        data_offsets: (u64, u64),
    }
    let info: Entry = serde_json::from_value(value).map_err(|e| bad(format!("invalid entry: {e}")))?;
    if info.shape.len() > MAX_DIMS {
        return Err(bad(format!("{} dimensions, at most {MAX_DIMS} are allowed", info.shape.len())));
    }
    let shape = info.shape;
    let n_bytes = shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d)).and_then(|n| ty.bytes_for(n));
    let n_bytes = n_bytes.ok_or_else(|| bad(format!("shape {shape:?} overflows")))?;
    let (start, end) = info.data_offsets;
    if end.checked_sub(start) != Some(n_bytes) {
        return Err(bad(format!("data_offsets [{start}, {end}] do not hold {n_bytes} bytes of shape {shape:?}")));
    }
    Ok(SafetensorsTensorInfo { name, dtype: info.dtype, ty, shape, offset: start, n_bytes })
}

/// What [`SafetensorsReader::feed`] hands over.
#[derive(Debug)]
pub enum SafetensorsEvent<'a> {
    /// Once, before any tensor.
    Header(&'a SafetensorsHeader),
    /// Each tensor in data offset order, with exactly `info.n_bytes` bytes.
    Tensor { info: &'a SafetensorsTensorInfo, bytes: &'a [u8] },
}

/// The push-based safetensors reader; see the module docs.
pub struct SafetensorsReader {
    file: String,
    total: Option<u64>,
    consumed: u64,
    /// The length prefix and JSON gathered so far, until the header is parsed.
    buf: Vec<u8>,
    data: Option<(SafetensorsHeader, TensorCursor)>,
}

impl SafetensorsReader {
    /// A reader for the file named `file` (used in messages), of `total` bytes when known.
    pub fn new(file: impl Into<String>, total: Option<u64>) -> Self {
        Self { file: file.into(), total, consumed: 0, buf: Vec::new(), data: None }
    }

    pub fn progress(&self) -> Progress {
        Progress { consumed: self.consumed, total: self.total }
    }

    /// The header, once it has been parsed.
    pub fn header(&self) -> Option<&SafetensorsHeader> {
        self.data.as_ref().map(|(h, _)| h)
    }

    /// The header, once it has been parsed.
    pub fn into_header(self) -> Option<SafetensorsHeader> {
        self.data.map(|(h, _)| h)
    }

    /// The JSON length from the prefix, checked against the cap and the file size.
    fn header_len(&self) -> Result<Option<usize>, LoadError> {
        let Some(prefix) = self.buf.get(..8) else {
            return Ok(None);
        };
        let n = u64::from_le_bytes(prefix.try_into().expect("8 bytes"));
        let bad = |reason: String| LoadError::BadHeader { file: self.file.clone(), reason };
        if n > MAX_HEADER_LEN {
            return Err(bad(format!("header length {n} is above the limit of {MAX_HEADER_LEN}")));
        }
        if let Some(total) = self.total.filter(|&t| 8 + n > t) {
            return Err(bad(format!("header length {n} runs past the end of the file ({total} bytes)")));
        }
        Ok(Some(n as usize))
    }

    /// Feeds the next `chunk` of the file; calls `on_event` for the header and every tensor
    /// completed by it. An error from `on_event` stops the reader and is returned as is.
    pub fn feed<E: From<LoadError>>(
        &mut self,
        mut chunk: &[u8],
        mut on_event: impl FnMut(SafetensorsEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.consumed = self.consumed.saturating_add(chunk.len() as u64);
        while self.data.is_none() {
            // First the 8-byte length, then the JSON it announces.
            let want = self.header_len()?.map_or(8, |n| 8 + n);
            let take = (want - self.buf.len()).min(chunk.len());
            self.buf.extend_from_slice(&chunk[..take]);
            chunk = &chunk[take..];
            if self.buf.len() < want {
                return Ok(());
            }
            if self.header_len()?.is_some_and(|n| self.buf.len() == 8 + n) {
                let header = SafetensorsHeader::parse(&self.file, &self.buf[8..], self.total)?;
                self.buf = Vec::new();
                let cursor = TensorCursor::new(header.data_offset);
                let (header, _) = self.data.insert((header, cursor));
                on_event(SafetensorsEvent::Header(header))?;
            }
        }
        let Some((header, cursor)) = &mut self.data else {
            return Ok(());
        };
        let data_offset = header.data_offset;
        cursor.feed(
            &header.tensors,
            |t| (data_offset + t.offset, t.n_bytes),
            chunk,
            |info, bytes| on_event(SafetensorsEvent::Tensor { info, bytes }),
        )
    }

    /// Ends the input: hands over any empty tensors left, and fails with
    /// [`LoadError::Truncated`] when the header or a tensor is incomplete.
    pub fn finish<E: From<LoadError>>(
        &mut self,
        on_event: impl FnMut(SafetensorsEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.feed(&[], on_event)?;
        let truncated = |what: String| LoadError::Truncated { file: self.file.clone(), what };
        match &self.data {
            None => Err(truncated("the JSON header".into()).into()),
            Some((header, cursor)) => match header.tensors.get(cursor.next()) {
                Some(t) => Err(truncated(format!("the data of tensor `{}`", t.name)).into()),
                None => Ok(()),
            },
        }
    }
}

/// `model.safetensors.index.json` of a sharded checkpoint: which shard holds each tensor.
#[derive(Clone, Debug)]
pub struct SafetensorsIndex {
    /// Tensor name → shard file name (a plain name in the same folder).
    pub weight_map: BTreeMap<String, String>,
}

impl SafetensorsIndex {
    /// Parses the index `json` of file `file`.
    pub fn parse(file: &str, json: &[u8]) -> Result<Self, LoadError> {
        #[derive(serde::Deserialize)]
        struct Raw {
            weight_map: BTreeMap<String, String>,
        }
        let raw: Raw = serde_json::from_slice(json)
            .map_err(|e| LoadError::BadHeader { file: file.into(), reason: format!("invalid index JSON: {e}") })?;
        for (tensor, shard) in &raw.weight_map {
            let plain = !shard.is_empty() && !shard.contains(['/', '\\']) && shard != "." && shard != "..";
            if !plain {
                let reason = format!("shard `{shard}` is not a plain file name");
                return Err(LoadError::BadIndex { file: file.into(), tensor: tensor.clone(), reason });
            }
        }
        Ok(Self { weight_map: raw.weight_map })
    }

    /// The shard file names, each once, sorted.
    pub fn shards(&self) -> Vec<&str> {
        let set: HashSet<&str> = self.weight_map.values().map(String::as_str).collect();
        let mut shards: Vec<&str> = set.into_iter().collect();
        shards.sort_unstable();
        shards
    }
}

/// A tensor read whole as f32: (name, row-major shape, values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Every tensor of a whole safetensors file held in memory, as f32 (from F32, F16 or BF16), in
/// file order. For small files such as adapters.
pub fn read_f32_tensors(file: &str, bytes: &[u8]) -> Result<Vec<NamedTensor>, LoadError> {
    let mut reader = SafetensorsReader::new(file, Some(bytes.len() as u64));
    let mut out = Vec::new();
    let mut on_event = |ev: SafetensorsEvent| -> Result<(), LoadError> {
        if let SafetensorsEvent::Tensor { info, bytes } = ev {
            let values = super::ggml::dequantize_to_vec(&info.name, info.ty, bytes, info.n_elements() as usize)?;
            out.push((info.name.clone(), info.shape.iter().map(|&d| d as usize).collect(), values));
        }
        Ok(())
    };
    reader.feed(bytes, &mut on_event)?;
    reader.finish(&mut on_event)?;
    Ok(out)
}
