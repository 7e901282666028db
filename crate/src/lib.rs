//! WebLoRA: LoRA fine-tuning of Llama-family language models in WGSL compute shaders, natively
//! through wgpu and in the browser through WebGPU.

pub mod error;
pub mod gpu;
pub mod ops;

pub use error::{Error, Result};
pub mod lora;
pub mod model;
