//! The crate's error type. Every failure that input can cause is one of these, never a panic.

/// What went wrong, with the names (op, tensor, file) a user needs to find it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no usable GPU: {0}")]
    NoGpu(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("model config: {0}")]
    Config(String),
    #[error("LoRA: {0}")]
    Lora(String),
    #[error("tensor {name}: {detail}")]
    Tensor { name: String, detail: String },
    #[error(transparent)]
    Load(#[from] crate::io::LoadError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a shape error from op `op`.
pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape { op, detail: detail.into() }
}
