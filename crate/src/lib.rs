//! WebLoRA: LoRA fine-tuning of Llama-family language models in WGSL compute shaders, natively
//! through wgpu and in the browser through WebGPU.

// A kernel's wrapper takes its outputs, inputs, weights and sizes as separate arguments, in that
// order (the house style), so many of them take more than clippy's seven.
#![allow(clippy::too_many_arguments)]

pub mod data;
pub mod error;
pub mod generate;
pub mod gpu;
pub mod io;
pub mod lora;
pub mod model;
pub mod ops;
pub mod rng;
pub mod tokenizer;
pub mod train;
#[cfg(target_arch = "wasm32")]
pub mod wasm;

/// Finds the real test model, fetching it on first use (shared with the weblora-tests crate).
#[cfg(test)]
#[path = "../../tests/src/model_file.rs"]
mod model_file;

pub use error::{Error, Result};
