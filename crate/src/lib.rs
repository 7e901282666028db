//! WebLoRA: LoRA fine-tuning of Llama-family language models in WGSL compute shaders.

pub mod io;
pub mod tokenizer;
