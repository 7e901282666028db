//! Checkpoints: everything needed to continue a run exactly — the adapter (as PEFT files, so a
//! checkpoint is also a usable adapter), the AdamW moments, the update count, the caller's own
//! position (data order, epoch), and, for a whole [`super::Run`], its settings, its data file's
//! fingerprint and its loss history. [`Checkpoint`] is the files' bytes, for any storage (a
//! folder natively, OPFS in the browser); natively a folder is written under a temporary name
//! and renamed, so a crash mid-write never loses the last good checkpoint.

use serde::{Deserialize, Serialize};

use super::{DataSettings, LogEntry, TrainConfig, TrainSettings, Trainer};
use crate::error::{Error, Result};
use crate::lora::peft;

/// trainer_state.json of a checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckpointState {
    pub step: usize,
    pub config: TrainConfig,
    /// Whatever the caller needs to resume its data stream (epoch, position, shuffle seed).
    pub position: serde_json::Value,
    /// Every update so far (empty in checkpoints of a bare [`Trainer`]).
    #[serde(default)]
    pub log_history: Vec<LogEntry>,
    /// What the run was made of (absent in checkpoints of a bare [`Trainer`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<RunMeta>,
}

/// The settings and inputs of a run, kept in its checkpoints so that a resume can check them.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunMeta {
    pub base_model: String,
    pub settings: TrainSettings,
    pub data: DataSettings,
    pub data_file: Fingerprint,
}

/// Which bytes a file held: its name (for messages), length and FNV-1a hash.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Fingerprint {
    pub name: String,
    pub bytes: u64,
    /// FNV-1a, 64 bits, as 16 hex digits.
    pub fnv1a: String,
}

impl Fingerprint {
    pub fn of(name: &str, bytes: &[u8]) -> Fingerprint {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        Fingerprint { name: name.to_string(), bytes: bytes.len() as u64, fnv1a: format!("{h:016x}") }
    }

    /// Fails unless `now` holds the same bytes.
    pub fn check(&self, now: &Fingerprint) -> Result<()> {
        if self.bytes == now.bytes && self.fnv1a == now.fnv1a {
            return Ok(());
        }
        Err(Error::Run(format!(
            "--data: {} is not the data this run was trained on ({}: {} bytes, FNV-1a {}; now {} bytes, FNV-1a {})",
            now.name, self.name, self.bytes, self.fnv1a, now.bytes, now.fnv1a
        )))
    }
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

    /// A checkpoint from its files' bytes, in the order of [`Checkpoint::FILES`]; `place` names
    /// where they came from in errors.
    pub fn from_files(place: &str, files: [Vec<u8>; 4]) -> Result<Checkpoint> {
        let [config, adapter, optimizer, state] = files;
        let text = |bytes: Vec<u8>, name: &str| {
            String::from_utf8(bytes).map_err(|_| Error::Run(format!("{place}/{name}: not UTF-8 text")))
        };
        Ok(Checkpoint {
            adapter_config: text(config, "adapter_config.json")?,
            adapter,
            optimizer,
            state: text(state, "trainer_state.json")?,
        })
    }

    /// The parsed trainer_state.json.
    pub fn parse_state(&self, place: &str) -> Result<CheckpointState> {
        parse_state(&self.state, place)
    }
}

/// Parses a checkpoint's trainer_state.json; `place` names the checkpoint in errors.
pub fn parse_state(text: &str, place: &str) -> Result<CheckpointState> {
    serde_json::from_str(text).map_err(|e| Error::Run(format!("{place}/trainer_state.json: {e}")))
}

impl Trainer {
    /// The checkpoint of the trainer as it stands; `position` is the caller's.
    pub async fn checkpoint(&self, base_model: &str, position: serde_json::Value) -> Result<Checkpoint> {
        let state = CheckpointState {
            step: self.step,
            config: self.config.clone(),
            position,
            log_history: Vec::new(),
            run: None,
        };
        self.checkpoint_with(base_model, &state).await
    }

    /// The checkpoint of the trainer with `state` as its trainer_state.json.
    pub(crate) async fn checkpoint_with(&self, base_model: &str, state: &CheckpointState) -> Result<Checkpoint> {
        let adapter_config =
            serde_json::to_string_pretty(&peft::adapter_config_json(&self.lora.config, base_model)).unwrap_or_default();
        let adapter = self.lora.peft_safetensors(&self.gpu).await?;
        let m = self.state.m.read_f32(&self.gpu).await?;
        let v = self.state.v.read_f32(&self.gpu).await?;
        let shape = vec![m.len()];
        let views = [("exp_avg", &m), ("exp_avg_sq", &v)]
            .into_iter()
            .map(|(k, d)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytemuck::cast_slice(d))
                    .map(|view| (k.to_string(), view))
                    .map_err(|e| Error::Run(format!("optimizer.safetensors: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        let optimizer = safetensors::tensor::serialize(views, None)
            .map_err(|e| Error::Run(format!("optimizer.safetensors: {e}")))?;
        let state = serde_json::to_string_pretty(state).unwrap_or_default();
        Ok(Checkpoint { adapter_config, adapter, optimizer, state })
    }

    /// Restores the adapter, the moments and the update count from a checkpoint; `place` names
    /// where it came from in errors. The checkpoint's adapter must have this trainer's LoRA
    /// settings, and its update count must lie inside the run. Returns its trainer_state.json.
    pub fn restore(&mut self, place: &str, ckpt: &Checkpoint) -> Result<CheckpointState> {
        let err = |file: &str, e: &dyn std::fmt::Display| Error::Run(format!("{place}/{file}: {e}"));
        let state = ckpt.parse_state(place)?;
        let config_file = format!("{place}/adapter_config.json");
        let config = peft::parse_adapter_config(&ckpt.adapter_config, &config_file)?;
        if !config.same_adapter(&self.lora.config) {
            return Err(err(
                "adapter_config.json",
                &format!("the adapter ({}) is not this run's ({})", config.describe(), self.lora.config.describe()),
            ));
        }
        if state.step == 0 || state.step > self.config.max_steps {
            return Err(err(
                "trainer_state.json",
                &format!("step {} is outside this run's updates 1..={}", state.step, self.config.max_steps),
            ));
        }
        let st_file = format!("{place}/adapter_model.safetensors");
        let tensors = peft::parse_adapter_tensors(&ckpt.adapter, &st_file)?;
        let st =
            safetensors::SafeTensors::deserialize(&ckpt.optimizer).map_err(|e| err("optimizer.safetensors", &e))?;
        let mut moments = Vec::new();
        for (key, target) in [("exp_avg", &self.state.m), ("exp_avg_sq", &self.state.v)] {
            let view = st.tensor(key).map_err(|e| err("optimizer.safetensors", &e))?;
            if view.dtype() != safetensors::Dtype::F32 || view.shape() != [target.numel()] {
                return Err(err("optimizer.safetensors", &format!("{key} does not fit this adapter")));
            }
            let values: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
            if let Some(i) = values.iter().position(|x| !x.is_finite()) {
                return Err(err("optimizer.safetensors", &format!("{key}[{i}] is {}", values[i])));
            }
            moments.push((target, values));
        }
        self.lora.load_peft(&self.gpu, &tensors, &st_file)?;
        for (target, values) in moments {
            target.write_f32(&self.gpu, &values)?;
        }
        self.step = state.step;
        Ok(state)
    }
}

#[cfg(not(target_arch = "wasm32"))]
mod folder {
    use std::path::Path;

    use super::*;
    use crate::io::atomic;

    impl Checkpoint {
        /// Writes the files into `dir`, replacing it as a whole: they are written and synced in
        /// a temporary folder beside it, which is then renamed.
        pub fn write(&self, dir: &Path) -> Result<()> {
            let files: Vec<(&str, &[u8])> =
                Checkpoint::FILES.iter().enumerate().map(|(i, name)| (*name, self.file(i))).collect();
            atomic::write_folder(dir, &files, true)
        }

        /// Reads the files of the checkpoint in `dir`.
        pub fn read(dir: &Path) -> Result<Checkpoint> {
            let read = |name: &str| std::fs::read(dir.join(name)).map_err(|e| Error::io(dir.join(name), e));
            let files = [
                read(Checkpoint::FILES[0])?,
                read(Checkpoint::FILES[1])?,
                read(Checkpoint::FILES[2])?,
                read(Checkpoint::FILES[3])?,
            ];
            Checkpoint::from_files(&dir.display().to_string(), files)
        }
    }

    impl Trainer {
        /// Writes a checkpoint into `dir` (created or replaced as a whole).
        pub async fn save_checkpoint(&self, dir: &Path, base_model: &str, position: serde_json::Value) -> Result<()> {
            self.checkpoint(base_model, position).await?.write(dir)
        }

        /// Restores the adapter, the moments and the update count from `dir`; returns the
        /// checkpoint's trainer_state.json.
        pub fn load_checkpoint(&mut self, dir: &Path) -> Result<CheckpointState> {
            let ckpt = Checkpoint::read(dir)?;
            self.restore(&dir.display().to_string(), &ckpt)
        }
    }
}
