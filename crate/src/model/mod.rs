//! The Llama-family decoder (Llama, SmolLM, Mistral, Qwen2): its config, its frozen weights, and
//! [`Plan`], the forward and backward programs recorded for one (batch, sequence) shape.

mod config;
pub mod decode;
pub mod export;
mod layer;
pub mod load;
mod location;
pub mod memory;
mod plan;
#[cfg(not(target_arch = "wasm32"))]
mod source;
mod weights;

pub use config::{ModelConfig, RopeParameters};
pub use location::{parse_model_url, ModelUrl, RemoteKind};
pub use memory::{MemoryPlan, ModelMemory, Recompute, RunMemory, WeightMemory};
pub use plan::{Arena, Batch, Plan, PlanOptions, StepStats};
pub use weights::{LayerWeights, Linear, ModelWeights, Weight};

/// A base model on the GPU: its config and frozen weights. A clone shares the GPU buffers.
#[derive(Clone)]
pub struct Model {
    pub config: ModelConfig,
    pub weights: ModelWeights,
}
