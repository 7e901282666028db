//! A push-based reader for llama.cpp GGUF files, versions 2 and 3 (little-endian).
//!
//! File layout: `"GGUF"`, u32 version, u64 tensor count, u64 metadata count, the metadata
//! key/values, the tensor infos, zero padding up to a multiple of `general.alignment` (default
//! 32), then the data section, where each tensor lives at its info's offset (a multiple of the
//! alignment). A tensor's `dims` are innermost first: a (rows, cols) matrix has
//! `dims = [cols, rows]`.
//!
//! [`GgufReader::feed`] takes chunks of any size and calls back with [`GgufEvent::Header`] once,
//! then [`GgufEvent::Tensor`] for every tensor in file order, as soon as its bytes are complete.

use std::collections::BTreeMap;

use super::ggml::GgmlType;
use super::gguf_parse::{Cursor, Preamble, Stop, MAX_COUNT};
use super::stream::TensorCursor;
use super::{LoadError, Progress};

/// The alignment of the data section when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Largest single header item (one metadata value, e.g. the vocabulary) buffered while parsing.
const MAX_ITEM_BYTES: usize = 512 << 20;

/// A metadata value.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// A metadata array, stored by element type.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufArray {
    U8(Vec<u8>),
    I8(Vec<i8>),
    U16(Vec<u16>),
    I16(Vec<i16>),
    U32(Vec<u32>),
    I32(Vec<i32>),
    F32(Vec<f32>),
    Bool(Vec<bool>),
    String(Vec<String>),
    Array(Vec<GgufArray>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    F64(Vec<f64>),
}

impl GgufValue {
    /// The value as a u64, when it is a non-negative integer of any width.
    pub fn to_u64(&self) -> Option<u64> {
        match *self {
            GgufValue::U8(v) => Some(v.into()),
            GgufValue::U16(v) => Some(v.into()),
            GgufValue::U32(v) => Some(v.into()),
            GgufValue::U64(v) => Some(v),
            GgufValue::I8(v) => u64::try_from(v).ok(),
            GgufValue::I16(v) => u64::try_from(v).ok(),
            GgufValue::I32(v) => u64::try_from(v).ok(),
            GgufValue::I64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }
}

/// Where one tensor's bytes are and how to read them.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// Sizes, innermost (contiguous) first, at most 4: a (rows, cols) matrix is `[cols, rows]`.
    pub dims: Vec<u64>,
    pub ty: GgmlType,
    /// Byte offset from the start of the data section.
    pub offset: u64,
    /// Byte size of the tensor's data.
    pub n_bytes: u64,
}

impl GgufTensorInfo {
    /// Number of elements (the product of `dims`, checked when the header was read).
    pub fn n_elements(&self) -> u64 {
        self.dims.iter().product()
    }

    /// The shape in row-major order, outermost first (`dims` reversed), as PyTorch prints it.
    pub fn shape(&self) -> Vec<u64> {
        self.dims.iter().rev().copied().collect()
    }
}

/// Everything before the data section.
#[derive(Clone, Debug)]
pub struct GgufHeader {
    /// The file's name, for messages.
    pub file: String,
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    /// In file order, which is data offset order.
    pub tensors: Vec<GgufTensorInfo>,
    pub alignment: u64,
    /// Absolute file offset of the data section.
    pub data_offset: u64,
}

impl GgufHeader {
    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    fn require(&self, key: &str) -> Result<&GgufValue, LoadError> {
        self.get(key).ok_or_else(|| LoadError::MissingKey { file: self.file.clone(), key: key.into() })
    }

    fn wrong(&self, key: &str, expected: &'static str) -> LoadError {
        LoadError::WrongValueType { file: self.file.clone(), key: key.into(), expected }
    }

    /// A non-negative integer of any width.
    pub fn get_u64(&self, key: &str) -> Result<u64, LoadError> {
        self.require(key)?.to_u64().ok_or_else(|| self.wrong(key, "a non-negative integer"))
    }

    /// A non-negative integer that fits in u32.
    pub fn get_u32(&self, key: &str) -> Result<u32, LoadError> {
        u32::try_from(self.get_u64(key)?).map_err(|_| self.wrong(key, "an integer below 2^32"))
    }

    /// An f32, or an f64 narrowed to f32.
    pub fn get_f32(&self, key: &str) -> Result<f32, LoadError> {
        match *self.require(key)? {
            GgufValue::F32(v) => Ok(v),
            GgufValue::F64(v) => Ok(v as f32),
            _ => Err(self.wrong(key, "a float")),
        }
    }

    pub fn get_bool(&self, key: &str) -> Result<bool, LoadError> {
        match *self.require(key)? {
            GgufValue::Bool(v) => Ok(v),
            _ => Err(self.wrong(key, "a bool")),
        }
    }

    pub fn get_str(&self, key: &str) -> Result<&str, LoadError> {
        match self.require(key)? {
            GgufValue::String(v) => Ok(v),
            _ => Err(self.wrong(key, "a string")),
        }
    }

    pub fn get_array(&self, key: &str) -> Result<&GgufArray, LoadError> {
        match self.require(key)? {
            GgufValue::Array(v) => Ok(v),
            _ => Err(self.wrong(key, "an array")),
        }
    }

    pub fn get_string_array(&self, key: &str) -> Result<&[String], LoadError> {
        match self.get_array(key)? {
            GgufArray::String(v) => Ok(v),
            _ => Err(self.wrong(key, "an array of strings")),
        }
    }

    /// `general.architecture`, e.g. `"llama"`.
    pub fn architecture(&self) -> Result<&str, LoadError> {
        self.get_str("general.architecture")
    }

    pub fn tensor(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

/// What [`GgufReader::feed`] hands over.
#[derive(Debug)]
pub enum GgufEvent<'a> {
    /// Once, before any tensor.
    Header(&'a GgufHeader),
    /// Each tensor in file order, with exactly `info.n_bytes` bytes.
    Tensor { info: &'a GgufTensorInfo, bytes: &'a [u8] },
}

/// The push-based GGUF reader; see the module docs.
pub struct GgufReader {
    file: String,
    total: Option<u64>,
    consumed: u64,
    state: State,
}

enum State {
    Header(HeaderState),
    Data(DataState),
}

/// Header bytes not parsed yet, and what has been parsed.
struct HeaderState {
    buf: Vec<u8>,
    /// Absolute file offset of `buf[0]`.
    base: u64,
    /// Where the next item starts in `buf`.
    start: usize,
    /// Length `buf` must reach before the next parse attempt.
    retry_at: usize,
    preamble: Option<Preamble>,
    metadata: BTreeMap<String, GgufValue>,
    tensors: Vec<GgufTensorInfo>,
}

struct DataState {
    header: GgufHeader,
    cursor: TensorCursor,
}

impl GgufReader {
    /// A reader for the file named `file` (used in messages), of `total` bytes when known.
    pub fn new(file: impl Into<String>, total: Option<u64>) -> Self {
        let header = HeaderState {
            buf: Vec::new(),
            base: 0,
            start: 0,
            retry_at: 0,
            preamble: None,
            metadata: BTreeMap::new(),
            tensors: Vec::new(),
        };
        Self { file: file.into(), total, consumed: 0, state: State::Header(header) }
    }

    pub fn progress(&self) -> Progress {
        Progress { consumed: self.consumed, total: self.total }
    }

    /// The header, once it has been parsed.
    pub fn header(&self) -> Option<&GgufHeader> {
        match &self.state {
            State::Data(d) => Some(&d.header),
            State::Header(_) => None,
        }
    }

    /// The header, once it has been parsed.
    pub fn into_header(self) -> Option<GgufHeader> {
        match self.state {
            State::Data(d) => Some(d.header),
            State::Header(_) => None,
        }
    }

    /// Feeds the next `chunk` of the file; calls `on_event` for the header and every tensor
    /// completed by it. An error from `on_event` stops the reader and is returned as is.
    pub fn feed<E: From<LoadError>>(
        &mut self,
        chunk: &[u8],
        mut on_event: impl FnMut(GgufEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.consumed = self.consumed.saturating_add(chunk.len() as u64);
        match &mut self.state {
            State::Data(d) => d.feed(chunk, &mut on_event),
            State::Header(h) => {
                h.buf.extend_from_slice(chunk);
                self.parse_header(false, &mut on_event)
            }
        }
    }

    /// Ends the input: parses what is left of the header, hands over any empty tensors left,
    /// and fails with [`LoadError::Truncated`] when the header or a tensor is incomplete.
    pub fn finish<E: From<LoadError>>(
        &mut self,
        mut on_event: impl FnMut(GgufEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        if let State::Header(_) = self.state {
            self.parse_header(true, &mut on_event)?;
        }
        let truncated = |what: String| LoadError::Truncated { file: self.file.clone(), what };
        match &mut self.state {
            State::Header(h) => Err(truncated(h.item_name()).into()),
            State::Data(d) => {
                d.feed(&[], &mut on_event)?;
                match d.header.tensors.get(d.cursor.next()) {
                    Some(t) => Err(truncated(format!("the data of tensor `{}`", t.name)).into()),
                    None => Ok(()),
                }
            }
        }
    }

    /// Parses every header item now complete; on the last one, switches to the data section.
    /// With `last`, tries even when fewer bytes than the last attempt asked for are at hand.
    fn parse_header<E: From<LoadError>>(
        &mut self,
        last: bool,
        on_event: &mut impl FnMut(GgufEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let State::Header(h) = &mut self.state else {
            return Ok(());
        };
        loop {
            if h.done() {
                let h = std::mem::replace(h, HeaderState::empty());
                let leftover = h.buf[h.start..].to_vec();
                let pos = h.base + h.start as u64;
                let header = h.finish(&self.file, self.total)?;
                let mut d = DataState { header, cursor: TensorCursor::new(pos) };
                on_event(GgufEvent::Header(&d.header))?;
                d.feed(&leftover, on_event)?;
                self.state = State::Data(d);
                return Ok(());
            }
            if h.buf.len() < h.retry_at && !last {
                return Ok(());
            }
            let avail = h.buf.len() - h.start;
            match h.parse_item(&self.file) {
                Ok(used) => {
                    h.start += used;
                    h.retry_at = 0;
                }
                Err(Stop::Fail(e)) => return Err(e.into()),
                Err(Stop::NeedMore(need)) => {
                    if need > MAX_ITEM_BYTES {
                        let what = format!("the size of {}", h.item_name());
                        return Err(LoadError::LimitExceeded {
                            file: self.file.clone(),
                            what,
                            value: need as u64,
                            limit: MAX_ITEM_BYTES as u64,
                        }
                        .into());
                    }
                    if self.total.is_some_and(|t| h.base + (h.start + need) as u64 > t) {
                        return Err(LoadError::Truncated { file: self.file.clone(), what: h.item_name() }.into());
                    }
                    // Wait for the bytes asked for and, so that a large item is not re-parsed
                    // for every small chunk, for at least twice the bytes tried.
                    h.retry_at = h.start + need.max(2 * avail);
                    h.compact();
                    return Ok(());
                }
            }
        }
    }
}

impl HeaderState {
    fn empty() -> Self {
        Self {
            buf: Vec::new(),
            base: 0,
            start: 0,
            retry_at: 0,
            preamble: None,
            metadata: BTreeMap::new(),
            tensors: Vec::new(),
        }
    }

    fn done(&self) -> bool {
        self.preamble
            .as_ref()
            .is_some_and(|p| self.metadata.len() as u64 == p.n_kv && self.tensors.len() as u64 == p.n_tensors)
    }

    /// The item being parsed, for messages.
    fn item_name(&self) -> String {
        match &self.preamble {
            None => "the GGUF preamble".into(),
            Some(p) if (self.metadata.len() as u64) < p.n_kv => {
                format!("metadata entry #{}", self.metadata.len())
            }
            Some(_) => format!("the info of tensor #{}", self.tensors.len()),
        }
    }

    /// Drops the parsed bytes from the buffer.
    fn compact(&mut self) {
        if self.start == 0 {
            return;
        }
        self.buf.drain(..self.start);
        self.base += self.start as u64;
        self.retry_at -= self.start;
        self.start = 0;
    }

    /// Parses the next item from `buf[start..]`; returns the bytes it used.
    fn parse_item(&mut self, file: &str) -> Result<usize, Stop> {
        let mut c = Cursor::new(&self.buf[self.start..], file);
        match &self.preamble {
            None => self.preamble = Some(c.preamble()?),
            Some(p) if (self.metadata.len() as u64) < p.n_kv => {
                let (key, value) = c.key_value(self.metadata.len() as u64)?;
                if self.metadata.contains_key(&key) {
                    return Err(Stop::Fail(LoadError::DuplicateKey { file: file.into(), key }));
                }
                self.metadata.insert(key, value);
            }
            Some(_) => self.tensors.push(c.tensor_info(self.tensors.len() as u64)?),
        }
        Ok(c.pos)
    }

    /// Checks the parsed header and lays out the data section.
    fn finish(self, file: &str, total: Option<u64>) -> Result<GgufHeader, LoadError> {
        let preamble = self.preamble.expect("finish follows done()");
        let alignment = match self.metadata.get("general.alignment") {
            None => DEFAULT_ALIGNMENT,
            Some(GgufValue::U32(a)) if a.is_power_of_two() => *a as u64,
            Some(GgufValue::U32(a)) => return Err(LoadError::BadAlignment { file: file.into(), value: *a as u64 }),
            // llama.cpp reads it with gguf_get_val_u32, which accepts no other type.
            Some(_) => {
                let key = "general.alignment".into();
                return Err(LoadError::WrongValueType { file: file.into(), key, expected: "a u32" });
            }
        };
        let header_end = self.base + self.start as u64;
        let data_offset = header_end.div_ceil(alignment) * alignment;
        let mut names = std::collections::HashSet::with_capacity(self.tensors.len().min(MAX_COUNT as usize));
        let mut previous_end = 0u64;
        for t in &self.tensors {
            let bad = |reason: String| LoadError::BadShape { file: file.into(), tensor: t.name.clone(), reason };
            if !names.insert(t.name.as_str()) {
                return Err(LoadError::DuplicateTensor { file: file.into(), tensor: t.name.clone() });
            }
            if t.offset % alignment != 0 {
                return Err(bad(format!("data offset {} is not a multiple of the alignment {alignment}", t.offset)));
            }
            if t.offset < previous_end {
                return Err(LoadError::OutOfOrder {
                    file: file.into(),
                    tensor: t.name.clone(),
                    offset: t.offset,
                    previous_end,
                });
            }
            let end = data_offset.checked_add(t.offset).and_then(|s| s.checked_add(t.n_bytes));
            let end = end.ok_or_else(|| bad(format!("data offset {} overflows", t.offset)))?;
            if let Some(len) = total.filter(|&len| end > len) {
                return Err(LoadError::TensorOutOfBounds { file: file.into(), tensor: t.name.clone(), end, len });
            }
            previous_end = t.offset + t.n_bytes;
        }
        Ok(GgufHeader {
            file: file.into(),
            version: preamble.version,
            metadata: self.metadata,
            tensors: self.tensors,
            alignment,
            data_offset,
        })
    }
}

impl DataState {
    fn feed<E: From<LoadError>>(
        &mut self,
        chunk: &[u8],
        on_event: &mut impl FnMut(GgufEvent<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let data_offset = self.header.data_offset;
        self.cursor.feed(
            &self.header.tensors,
            |t| (data_offset + t.offset, t.n_bytes),
            chunk,
            |info, bytes| on_event(GgufEvent::Tensor { info, bytes }),
        )
    }
}
