//! Parsing of the GGUF header's items from a byte buffer that may end early.
//!
//! Each item (the preamble, one metadata key/value, one tensor info) is parsed whole from the
//! bytes at hand; when they run out the parser answers [`Stop::NeedMore`] with the buffer length
//! it needs at least, and the streaming reader tries again once more bytes have arrived.
//! Nothing is allocated beyond the bytes already buffered.

use super::ggml::GgmlType;
use super::gguf::{GgufArray, GgufTensorInfo, GgufValue};
use super::LoadError;

/// Longest metadata key, tensor name or string value, in bytes.
pub(super) const MAX_STRING_LEN: u64 = 1 << 28;
/// Most elements in one metadata array.
pub(super) const MAX_ARRAY_LEN: u64 = 1 << 28;
/// Most metadata keys, and most tensors, in one file.
pub(super) const MAX_COUNT: u64 = 1 << 20;
/// Deepest nesting of arrays inside arrays.
const MAX_ARRAY_DEPTH: u32 = 4;
/// Most dimensions of a tensor (GGML_MAX_DIMS).
pub(super) const MAX_DIMS: u32 = 4;

/// Why an item could not be parsed yet.
pub(super) enum Stop {
    /// The buffer must hold at least this many bytes (from the item's start) to go on.
    NeedMore(usize),
    Fail(LoadError),
}

impl From<LoadError> for Stop {
    fn from(e: LoadError) -> Self {
        Stop::Fail(e)
    }
}

pub(super) type Parsed<T> = Result<T, Stop>;

/// The fixed 24-byte start of a GGUF file.
pub(super) struct Preamble {
    pub version: u32,
    pub n_tensors: u64,
    pub n_kv: u64,
}

/// A reading position in a buffer that may end before the item does.
pub(super) struct Cursor<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    pub file: &'a str,
}

macro_rules! read_le {
    ($($fn:ident: $t:ty),*) => {$(
        fn $fn(&mut self) -> Parsed<$t> {
            let b = self.take(std::mem::size_of::<$t>())?;
            Ok(<$t>::from_le_bytes(b.try_into().expect("take returns the asked length")))
        }
    )*};
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a [u8], file: &'a str) -> Self {
        Self { buf, pos: 0, file }
    }

    fn take(&mut self, n: usize) -> Parsed<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Stop::NeedMore(usize::MAX))?;
        let bytes = self.buf.get(self.pos..end).ok_or(Stop::NeedMore(end))?;
        self.pos = end;
        Ok(bytes)
    }

    read_le!(u8: u8, i8: i8, u16: u16, i16: i16, u32: u32, i32: i32, u64: u64, i64: i64, f32: f32, f64: f64);

    fn limit(&self, what: impl FnOnce() -> String, value: u64, limit: u64) -> Parsed<()> {
        if value > limit {
            return Err(Stop::Fail(LoadError::LimitExceeded { file: self.file.into(), what: what(), value, limit }));
        }
        Ok(())
    }

    /// A GGUF string: u64 length, then that many UTF-8 bytes.
    fn string(&mut self, what: &dyn Fn() -> String) -> Parsed<String> {
        let len = self.u64()?;
        self.limit(|| format!("the length of {}", what()), len, MAX_STRING_LEN)?;
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| Stop::Fail(LoadError::InvalidUtf8 { file: self.file.into(), what: what() }))
    }

    /// The room left in the buffer, in elements of at least `min_size` bytes: a bound for
    /// pre-allocation that never trusts a length read from the file.
    fn room(&self, min_size: usize) -> usize {
        (self.buf.len() - self.pos) / min_size.max(1)
    }

    pub fn preamble(&mut self) -> Parsed<Preamble> {
        let magic: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        if &magic != b"GGUF" {
            return Err(Stop::Fail(LoadError::BadMagic { file: self.file.into(), found: magic }));
        }
        let version = self.u32()?;
        if version != 2 && version != 3 {
            return Err(Stop::Fail(LoadError::UnsupportedVersion { file: self.file.into(), version }));
        }
        let n_tensors = self.u64()?;
        self.limit(|| "the tensor count".into(), n_tensors, MAX_COUNT)?;
        let n_kv = self.u64()?;
        self.limit(|| "the metadata key count".into(), n_kv, MAX_COUNT)?;
        Ok(Preamble { version, n_tensors, n_kv })
    }

    /// One metadata entry: key string, u32 value type, value.
    pub fn key_value(&mut self, index: u64) -> Parsed<(String, GgufValue)> {
        let key = self.string(&|| format!("metadata key #{index}"))?;
        let type_id = self.u32()?;
        let value = self.value(&key, type_id, 0)?;
        Ok((key, value))
    }

    fn value(&mut self, key: &str, type_id: u32, depth: u32) -> Parsed<GgufValue> {
        Ok(match type_id {
            0 => GgufValue::U8(self.u8()?),
            1 => GgufValue::I8(self.i8()?),
            2 => GgufValue::U16(self.u16()?),
            3 => GgufValue::I16(self.i16()?),
            4 => GgufValue::U32(self.u32()?),
            5 => GgufValue::I32(self.i32()?),
            6 => GgufValue::F32(self.f32()?),
            7 => GgufValue::Bool(self.bool(key)?),
            8 => GgufValue::String(self.string(&|| format!("the value of metadata key `{key}`"))?),
            9 => GgufValue::Array(self.array(key, depth)?),
            10 => GgufValue::U64(self.u64()?),
            11 => GgufValue::I64(self.i64()?),
            12 => GgufValue::F64(self.f64()?),
            _ => return Err(Stop::Fail(self.unknown_type(key, type_id))),
        })
    }

    fn unknown_type(&self, key: &str, type_id: u32) -> LoadError {
        LoadError::UnknownValueType { file: self.file.into(), key: key.into(), type_id }
    }

    fn bool(&mut self, key: &str) -> Parsed<bool> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Stop::Fail(LoadError::WrongValueType {
                file: self.file.into(),
                key: key.into(),
                expected: "a bool (0 or 1)",
            })),
        }
    }

    /// An array: u32 element type, u64 length, elements.
    fn array(&mut self, key: &str, depth: u32) -> Parsed<GgufArray> {
        let elem = self.u32()?;
        let len = self.u64()?;
        self.limit(|| format!("the array length of metadata key `{key}`"), len, MAX_ARRAY_LEN)?;
        let n = len as usize;
        macro_rules! many {
            ($variant:ident, $read:expr, $size:expr) => {{
                let mut v = Vec::with_capacity(n.min(self.room($size)));
                for _ in 0..n {
                    v.push($read(&mut *self)?);
                }
                GgufArray::$variant(v)
            }};
        }
        Ok(match elem {
            0 => many!(U8, Self::u8, 1),
            1 => many!(I8, Self::i8, 1),
            2 => many!(U16, Self::u16, 2),
            3 => many!(I16, Self::i16, 2),
            4 => many!(U32, Self::u32, 4),
            5 => many!(I32, Self::i32, 4),
            6 => many!(F32, Self::f32, 4),
            7 => many!(Bool, |c: &mut Self| c.bool(key), 1),
            8 => many!(String, |c: &mut Self| c.string(&|| format!("an element of metadata key `{key}`")), 8),
            9 => {
                self.limit(
                    || format!("the array nesting depth of metadata key `{key}`"),
                    depth as u64 + 1,
                    MAX_ARRAY_DEPTH as u64,
                )?;
                many!(Array, |c: &mut Self| c.array(key, depth + 1), 12)
            }
            10 => many!(U64, Self::u64, 8),
            11 => many!(I64, Self::i64, 8),
            12 => many!(F64, Self::f64, 8),
            _ => return Err(Stop::Fail(self.unknown_type(key, elem))),
        })
    }

    /// One tensor info: name, u32 dims count, u64 dims (innermost first), u32 type, u64 offset.
    pub fn tensor_info(&mut self, index: u64) -> Parsed<GgufTensorInfo> {
        let name = self.string(&|| format!("the name of tensor #{index}"))?;
        let n_dims = self.u32()?;
        let file = self.file;
        let bad = |reason: String| Stop::Fail(LoadError::BadShape { file: file.into(), tensor: name.clone(), reason });
        if n_dims > MAX_DIMS {
            return Err(bad(format!("{n_dims} dimensions, at most {MAX_DIMS} are allowed")));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(self.u64()?);
        }
        let type_id = self.u32()?;
        let offset = self.u64()?;
        let ty = GgmlType::from_id(type_id).ok_or_else(|| {
            Stop::Fail(LoadError::UnknownGgmlType { file: file.into(), tensor: name.clone(), type_id })
        })?;
        let n_elements = dims.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
        let n_elements =
            n_elements.filter(|&n| n <= i64::MAX as u64).ok_or_else(|| bad(format!("dims {dims:?} overflow")))?;
        if dims.first().is_some_and(|&d| d % ty.block_size() != 0) {
            return Err(bad(format!(
                "row of {} elements is not a whole number of {} blocks of {}",
                dims[0],
                ty.name(),
                ty.block_size()
            )));
        }
        let n_bytes = ty.bytes_for(n_elements).ok_or_else(|| bad(format!("dims {dims:?} overflow")))?;
        Ok(GgufTensorInfo { name, dims, ty, offset, n_bytes })
    }
}
