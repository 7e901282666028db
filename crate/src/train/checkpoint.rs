//! Checkpoints: everything needed to continue a run exactly — the adapter (as PEFT files, so a
//! checkpoint is also a usable adapter), the AdamW moments, the update count and the caller's
//! own position (data order, epoch) — written so that a crash mid-write never loses the last
//! good checkpoint.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{TrainConfig, Trainer};
use crate::error::{Error, Result};
use crate::lora::peft;

/// trainer_state.json of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: usize,
    pub config: TrainConfig,
    /// Whatever the caller needs to resume its data stream (epoch, position, shuffle seed).
    pub position: serde_json::Value,
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Config(format!("{}: {e}", path.display()))
}

impl Trainer {
    /// Writes a checkpoint into `dir` (created or replaced as a whole).
    pub async fn save_checkpoint(&self, dir: &Path, base_model: &str, position: serde_json::Value) -> Result<()> {
        let tmp = dir.with_extension("partial");
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        peft::write_peft_folder(&self.gpu, &self.lora, base_model, &tmp).await?;
        let m = self.lora.m.read_f32(&self.gpu).await?;
        let v = self.lora.v.read_f32(&self.gpu).await?;
        let shape = vec![m.len()];
        let views = [("exp_avg", &m), ("exp_avg_sq", &v)]
            .into_iter()
            .map(|(k, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytemuck::cast_slice(d))
                    .map(|view| (k.to_string(), view))
                    .map_err(|e| Error::Config(e.to_string()))
            })
            .collect::<Result<Vec<_>>>()?;
        let opt = tmp.join("optimizer.safetensors");
        safetensors::tensor::serialize_to_file(views, None, &opt).map_err(|e| io_err(&opt, e))?;
        let state = CheckpointState { step: self.step, config: self.config.clone(), position };
        let state_path = tmp.join("trainer_state.json");
        std::fs::write(&state_path, serde_json::to_string_pretty(&state).unwrap_or_default())
            .map_err(|e| io_err(&state_path, e))?;
        let _ = std::fs::remove_dir_all(dir);
        std::fs::rename(&tmp, dir).map_err(|e| io_err(dir, e))
    }

    /// Restores the adapter, the moments and the update count from `dir`; returns the caller's
    /// saved position.
    pub fn load_checkpoint(&mut self, dir: &Path) -> Result<serde_json::Value> {
        let state_path = dir.join("trainer_state.json");
        let text = std::fs::read_to_string(&state_path).map_err(|e| io_err(&state_path, e))?;
        let state: CheckpointState = serde_json::from_str(&text).map_err(|e| io_err(&state_path, e))?;
        let st_path = dir.join("adapter_model.safetensors");
        let bytes = std::fs::read(&st_path).map_err(|e| io_err(&st_path, e))?;
        let tensors = peft::parse_adapter_tensors(&bytes, &st_path.display().to_string())?;
        self.lora.load_peft(&self.gpu, &tensors, &st_path.display().to_string())?;
        let opt = dir.join("optimizer.safetensors");
        let bytes = std::fs::read(&opt).map_err(|e| io_err(&opt, e))?;
        let st = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| io_err(&opt, e))?;
        for (key, target) in [("exp_avg", &self.lora.m), ("exp_avg_sq", &self.lora.v)] {
            let view = st.tensor(key).map_err(|e| io_err(&opt, e))?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != [target.numel()] {
                return Err(io_err(&opt, format!("{key} does not fit this adapter")));
            }
            target.write_f32(&self.gpu, &bytemuck::pod_collect_to_vec(view.data()))?;
        }
        self.step = state.step;
        Ok(state.position)
    }
}
