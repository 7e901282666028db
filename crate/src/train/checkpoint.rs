//! Checkpoints: everything needed to continue a run exactly — the adapter (as PEFT files, so a
//! checkpoint is also a usable adapter), the AdamW moments, the update count and the caller's
//! own position (data order, epoch). [`Checkpoint`] is the files' bytes, for any storage (a
//! folder natively, OPFS in the browser); natively a folder is written so that a crash
//! mid-write never loses the last good checkpoint.

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

/// The files of a checkpoint, by name.
pub struct Checkpoint {
    /// adapter_config.json and adapter_model.safetensors: a PEFT adapter.
    pub adapter_config: String,
    pub adapter: Vec<u8>,
    /// optimizer.safetensors: the AdamW moments `exp_avg` and `exp_avg_sq`, flat.
    pub optimizer: Vec<u8>,
    /// trainer_state.json: [`CheckpointState`].
    pub state: String,
}

impl Checkpoint {
    pub const FILES: [&'static str; 4] =
        ["adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "trainer_state.json"];

    /// The bytes of file `FILES[i]`.
    pub fn file(&self, i: usize) -> &[u8] {
        match i {
            0 => self.adapter_config.as_bytes(),
            1 => &self.adapter,
            2 => &self.optimizer,
            _ => self.state.as_bytes(),
        }
    }
}

impl Trainer {
    /// The checkpoint of the run as it stands; `position` is the caller's.
    pub async fn checkpoint(&self, base_model: &str, position: serde_json::Value) -> Result<Checkpoint> {
        let adapter_config =
            serde_json::to_string_pretty(&peft::adapter_config_json(&self.lora.config, base_model)).unwrap_or_default();
        let adapter = self.lora.peft_safetensors(&self.gpu).await?;
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
        let optimizer = safetensors::tensor::serialize(views, None).map_err(|e| Error::Config(e.to_string()))?;
        let state = CheckpointState { step: self.step, config: self.config.clone(), position };
        let state = serde_json::to_string_pretty(&state).unwrap_or_default();
        Ok(Checkpoint { adapter_config, adapter, optimizer, state })
    }

    /// Restores the adapter, the moments and the update count from a checkpoint's files;
    /// `place` names where they came from in errors. Returns the caller's saved position.
    pub fn restore(&mut self, place: &str, adapter: &[u8], optimizer: &[u8], state: &str) -> Result<serde_json::Value> {
        let err = |file: &str, e: &dyn std::fmt::Display| Error::Config(format!("{place}/{file}: {e}"));
        let state: CheckpointState = serde_json::from_str(state).map_err(|e| err("trainer_state.json", &e))?;
        let st_file = format!("{place}/adapter_model.safetensors");
        let tensors = peft::parse_adapter_tensors(adapter, &st_file)?;
        self.lora.load_peft(&self.gpu, &tensors, &st_file)?;
        let st = safetensors::SafeTensors::deserialize(optimizer).map_err(|e| err("optimizer.safetensors", &e))?;
        for (key, target) in [("exp_avg", &self.lora.m), ("exp_avg_sq", &self.lora.v)] {
            let view = st.tensor(key).map_err(|e| err("optimizer.safetensors", &e))?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != [target.numel()] {
                return Err(err("optimizer.safetensors", &format!("{key} does not fit this adapter")));
            }
            target.write_f32(&self.gpu, &bytemuck::pod_collect_to_vec(view.data()))?;
        }
        self.step = state.step;
        Ok(state.position)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod folder {
    use std::path::Path;

    use super::*;

    fn io_err(path: &Path, e: impl std::fmt::Display) -> Error {
        Error::Config(format!("{}: {e}", path.display()))
    }

    impl Trainer {
        /// Writes a checkpoint into `dir` (created or replaced as a whole).
        pub async fn save_checkpoint(&self, dir: &Path, base_model: &str, position: serde_json::Value) -> Result<()> {
            let ckpt = self.checkpoint(base_model, position).await?;
            let tmp = dir.with_extension("partial");
            let _ = std::fs::remove_dir_all(&tmp);
            std::fs::create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
            for (i, name) in Checkpoint::FILES.iter().enumerate() {
                let path = tmp.join(name);
                std::fs::write(&path, ckpt.file(i)).map_err(|e| io_err(&path, e))?;
            }
            let _ = std::fs::remove_dir_all(dir);
            std::fs::rename(&tmp, dir).map_err(|e| io_err(dir, e))
        }

        /// Restores the adapter, the moments and the update count from `dir`; returns the
        /// caller's saved position.
        pub fn load_checkpoint(&mut self, dir: &Path) -> Result<serde_json::Value> {
            let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| io_err(&dir.join(name), e));
            let state = String::from_utf8_lossy(&read("trainer_state.json")?).into_owned();
            let place = dir.display().to_string();
            self.restore(&place, &read("adapter_model.safetensors")?, &read("optimizer.safetensors")?, &state)
        }
    }
}
