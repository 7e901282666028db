//! The one error type of model-file loading.

/// Why a model file could not be read. Every variant names the file, and the tensor or metadata
/// key where one is involved.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: not a GGUF file (magic {found:02x?}, expected \"GGUF\")")]
    BadMagic { file: String, found: [u8; 4] },
    #[error("{file}: unsupported GGUF version {version} (supported: 2 and 3, little-endian)")]
    UnsupportedVersion { file: String, version: u32 },
    #[error("{file}: the file ends inside {what}")]
    Truncated { file: String, what: String },
    #[error("{file}: {what} is {value}, above the limit of {limit}")]
    LimitExceeded { file: String, what: String, value: u64, limit: u64 },
    #[error("{file}: {what} is not valid UTF-8")]
    InvalidUtf8 { file: String, what: String },
    #[error("{file}: metadata key `{key}` has unknown value type {type_id}")]
    UnknownValueType { file: String, key: String, type_id: u32 },
    #[error("{file}: metadata key `{key}` appears twice")]
    DuplicateKey { file: String, key: String },
    #[error("{file}: metadata key `{key}` is missing")]
    MissingKey { file: String, key: String },
    #[error("{file}: metadata key `{key}` should be {expected}")]
    WrongValueType { file: String, key: String, expected: &'static str },
    #[error("{file}: `general.alignment` is {value}; it must be a power of two")]
    BadAlignment { file: String, value: u64 },
    #[error("{file}: tensor `{tensor}` appears twice")]
    DuplicateTensor { file: String, tensor: String },
    #[error("{file}: tensor `{tensor}` has unknown GGML type id {type_id}")]
    UnknownGgmlType { file: String, tensor: String, type_id: u32 },
    #[error("{file}: tensor `{tensor}`: {reason}")]
    BadShape { file: String, tensor: String, reason: String },
    #[error(
        "{file}: tensor `{tensor}` starts at data offset {offset}, before the end of the previous \
         tensor ({previous_end}); tensors must be stored in file offset order, without overlap, \
         to be streamed"
    )]
    OutOfOrder { file: String, tensor: String, offset: u64, previous_end: u64 },
    #[error("{file}: tensor `{tensor}` ends at byte {end}, past the end of the file ({len} bytes)")]
    TensorOutOfBounds { file: String, tensor: String, end: u64, len: u64 },
    #[error("tensor `{tensor}`: no CPU dequantization for GGML type {ty}")]
    UnsupportedType { tensor: String, ty: &'static str },
    #[error("tensor `{tensor}`: {got} bytes, expected {expected} for its type and shape")]
    ByteCount { tensor: String, got: u64, expected: u64 },
    #[error("{file}: header: {reason}")]
    BadHeader { file: String, reason: String },
    #[error("{file}: tensor `{tensor}` has dtype {dtype}; supported are F32, F16 and BF16")]
    UnsupportedDtype { file: String, tensor: String, dtype: String },
    #[error("{file}: tensor `{tensor}`: {reason}")]
    BadIndex { file: String, tensor: String, reason: String },
    #[error("tensor `{tensor}`: Q/K permutation: {reason}")]
    Permute { tensor: String, reason: String },
}
