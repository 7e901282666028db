//! The crate's error type. Every failure that input can cause is one of these, never a panic.

/// What went wrong, with the names (op, tensor, file) a user needs to find it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no usable GPU: {0}")]
    NoGpu(String),
    #[error("GPU error: {0}")]
    Gpu(String),
    /// The device is gone (a driver reset, the browser reclaiming the GPU, a crashed GPU
    /// process): nothing on it can be used again; a new device must be opened and the run
    /// resumed from its last checkpoint.
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// The device could not allocate memory the run asked for.
    #[error("the GPU is out of memory: {0}")]
    OutOfMemory(String),
    /// An environment variable with a value the engine does not know.
    #[error("{name}: {detail}")]
    Env { name: &'static str, detail: String },
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    #[error("model config: {0}")]
    Config(String),
    /// A setting outside its accepted range; `name` is the field (snake_case), shown as the
    /// command line's flag.
    #[error("{}: {detail}", crate::train::settings::flag(name))]
    Setting { name: String, detail: String },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
    /// A download failed; `status` is the HTTP status when the server answered.
    #[error("{url}: {detail}")]
    Http { url: String, status: Option<u16>, detail: String },
    /// A run that does not fit the device's memory or binding limits, refused before anything
    /// is allocated; the message says what would fit.
    #[error("{0}")]
    Memory(String),
    /// The run itself: resuming, checkpoints, the output folder, divergence.
    #[error("{0}")]
    Run(String),
    /// A call that does not fit the engine's state (no model loaded yet, busy, no run).
    #[error("{0}")]
    State(String),
    /// A call's arguments do not fit: token ids outside the vocabulary, lengths, an empty prompt,
    /// a value of the wrong shape.
    #[error("{0}")]
    Input(String),
    /// The tokenizer could not be built, or could not encode or decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// A value the engine made could not be handed over (a bug, not the input's fault).
    #[error("internal error: {0}")]
    Internal(String),
    #[error("LoRA: {0}")]
    Lora(String),
    /// A combination the engine does not support (a DoRA adapter as a llama.cpp LoRA file);
    /// the message says what to do instead.
    #[error("{0}")]
    Unsupported(String),
    /// One of several adapters given together (to mix, or to answer side by side) does not fit
    /// the others or the base; `adapter` names it as the caller gave it.
    #[error("adapter {adapter}: {detail}")]
    Adapter { adapter: String, detail: String },
    #[error("tensor {name}: {detail}")]
    Tensor { name: String, detail: String },
    #[error(transparent)]
    Load(#[from] crate::io::LoadError),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
}

impl Error {
    /// The kind of failure, for callers that act on it (the browser's `error.kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoGpu(_) => "no-gpu",
            Error::Gpu(_) => "gpu",
            Error::DeviceLost(_) => "device-lost",
            Error::OutOfMemory(_) => "out-of-memory",
            Error::Env { .. } => "env",
            Error::Shape { .. } => "shape",
            Error::Config(_) => "config",
            Error::Setting { .. } => "setting",
            Error::Io { .. } => "io",
            Error::Http { .. } => "http",
            Error::Memory(_) => "memory",
            Error::Run(_) => "run",
            Error::State(_) => "state",
            Error::Input(_) => "input",
            Error::Tokenizer(_) => "tokenizer",
            Error::Internal(_) => "internal",
            Error::Lora(_) | Error::Adapter { .. } => "lora",
            Error::Unsupported(_) => "unsupported",
            Error::Tensor { .. } => "tensor",
            Error::Load(_) => "load",
            Error::Data(_) => "data",
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Error {
        Error::Io { path: path.into(), source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand for a shape error from op `op`.
pub(crate) fn shape_err(op: &'static str, detail: impl Into<String>) -> Error {
    Error::Shape { op, detail: detail.into() }
}
