//! Model files in: streaming readers for llama.cpp GGUF and Hugging Face safetensors, GGML block
//! types and their CPU dequantization, and llama.cpp's Q/K row permutation.
//!
//! Readers are push-based: the caller feeds byte chunks of any size from any source (a local file
//! read in chunks, a browser `ReadableStream`), the reader parses the header, then hands over each
//! tensor's bytes in file order as soon as they are complete. At most one tensor plus one chunk is
//! held in memory. Every malformed input gives a [`LoadError`] naming the file and the tensor or
//! metadata key involved; nothing here panics on input bytes.

#[cfg(not(target_arch = "wasm32"))]
pub mod atomic;
mod error;
#[cfg(not(target_arch = "wasm32"))]
mod file;
pub mod ggml;
pub mod gguf;
mod gguf_parse;
pub mod gguf_write;
pub mod permute;
pub mod safetensors;
mod stream;
#[cfg(test)]
mod tests;

pub use error::LoadError;
#[cfg(not(target_arch = "wasm32"))]
pub use file::{read_chunks, read_gguf_file, read_gguf_header, read_gguf_header_from, DEFAULT_CHUNK_SIZE};
pub use ggml::{dequantize, GgmlType};
pub use gguf::{GgufArray, GgufEvent, GgufHeader, GgufReader, GgufTensorInfo, GgufValue};
pub use permute::{gguf_to_hf_qk_rows, hf_to_gguf_qk_rows};
pub use safetensors::{
    SafetensorsEvent, SafetensorsHeader, SafetensorsIndex, SafetensorsReader, SafetensorsTensorInfo,
};

/// How far a reader is through its input: `consumed` bytes of `total`, when the total is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    pub consumed: u64,
    pub total: Option<u64>,
}

impl Progress {
    /// The fraction done in `[0, 1]`, when the total is known and not zero.
    pub fn fraction(&self) -> Option<f64> {
        match self.total {
            Some(total) if total > 0 => Some((self.consumed as f64 / total as f64).min(1.0)),
            _ => None,
        }
    }
}
