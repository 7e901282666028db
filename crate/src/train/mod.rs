//! The training loop's engine side: optimizer updates with gradient accumulation, learning-rate
//! schedules, evaluation, non-finite detection, and checkpoints that resume the same trajectory.
//! Which batches come when is the caller's business (the data module and the CLI).

mod checkpoint;
mod form;
mod run;
mod schedule;
pub mod settings;

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

pub use checkpoint::{parse_state, Checkpoint, CheckpointState, Fingerprint, RunMeta};
pub use form::{settings_table, SettingSpec};
pub use run::{LogEntry, Run, RunOptions, RunStep};
pub use schedule::{lr_factor, Schedule};
pub use settings::{DataSettings, TrainOn, TrainSettings};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::lora::{Lora, TrainState};
use crate::model::{Arena, Batch, Model, Plan, PlanOptions};
use crate::ops::{AdamwParams, StepParams};

/// Optimizer and schedule settings, named as transformers' TrainingArguments.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainConfig {
    pub learning_rate: f32,
    pub lr_scheduler_type: Schedule,
    pub warmup_steps: usize,
    /// Optimizer updates in the whole run (the schedule's length).
    pub max_steps: usize,
    pub gradient_accumulation_steps: usize,
    /// 0 turns clipping off.
    pub max_grad_norm: f32,
    pub weight_decay: f32,
    pub adam_beta1: f32,
    pub adam_beta2: f32,
    pub adam_epsilon: f32,
    pub seed: u64,
    /// Recompute activations in backward (less memory, about 15% slower): as decided, for a run
    /// by its memory plan from the `auto`/`on`/`off` setting ([`RunOptions::recompute`]).
    pub recompute: bool,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: 2e-4,
            lr_scheduler_type: Schedule::Linear,
            warmup_steps: 0,
            max_steps: 100,
            gradient_accumulation_steps: 1,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            seed: 42,
            recompute: false,
        }
    }
}

impl TrainConfig {
    pub fn adamw(&self) -> AdamwParams {
        AdamwParams {
            beta1: self.adam_beta1,
            beta2: self.adam_beta2,
            eps: self.adam_epsilon,
            weight_decay: self.weight_decay,
        }
    }
}

/// What one optimizer update did.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
pub struct StepRecord {
    /// 1-based number of this update.
    pub step: usize,
    /// Mean loss over the supervised tokens of all its micro-batches.
    pub loss: f32,
    /// Gradient norm before clipping.
    pub grad_norm: f32,
    pub learning_rate: f32,
    /// Supervised tokens.
    pub tokens: usize,
}

impl StepRecord {
    /// False when the loss or gradient diverged; the adapter was then left as it was.
    pub fn is_finite(&self) -> bool {
        self.loss.is_finite() && self.grad_norm.is_finite()
    }
}

/// Runs optimizer updates on an adapter. It keeps handles to the model and the adapter (their
/// GPU buffers are shared, not copied), the run's gradients and moments, one activation
/// [`Arena`] sized for the largest batch (B·T tokens) seen or reserved, and one [`Plan`] per
/// batch shape seen, each a set of views of the arena with its programs, all over that one state.
pub struct Trainer {
    gpu: Gpu,
    model: Model,
    pub lora: Lora,
    pub state: TrainState,
    pub config: TrainConfig,
    arena: Option<Arena>,
    plans: HashMap<(usize, usize), Plan>,
    /// Optimizer updates done so far.
    pub step: usize,
}

impl Trainer {
    pub fn new(gpu: &Gpu, model: &Model, lora: &Lora, config: TrainConfig) -> Result<Trainer> {
        if config.gradient_accumulation_steps == 0 || config.max_steps == 0 {
            return Err(Error::Run("max_steps and gradient_accumulation_steps must be at least 1".into()));
        }
        if !(config.learning_rate.is_finite() && config.learning_rate >= 0.0) {
            return Err(Error::Run(format!("learning rate {} is not a non-negative number", config.learning_rate)));
        }
        Ok(Trainer {
            gpu: gpu.clone(),
            model: model.clone(),
            lora: lora.clone(),
            state: TrainState::new(gpu, lora)?,
            config,
            arena: None,
            plans: HashMap::new(),
            step: 0,
        })
    }

    /// Sizes the activation arena for batches of up to `b` × `t` tokens (a run does this for its
    /// largest batch before the first update). A larger batch later grows it: the plans made so
    /// far are dropped, then the arena, before the larger one is allocated.
    pub fn reserve(&mut self, b: usize, t: usize) -> Result<()> {
        if self.arena.as_ref().is_some_and(|a| a.holds(b, t)) {
            return Ok(());
        }
        self.plans.clear();
        self.arena = None;
        self.arena = Some(Arena::new(&self.gpu, &self.model, &self.lora, b, t, self.config.recompute)?);
        Ok(())
    }

    /// Bytes of the activation arena (0 before it is reserved or the first batch comes).
    pub fn activation_bytes(&self) -> u64 {
        self.arena.as_ref().map_or(0, Arena::bytes)
    }

    /// The plan for a (B, T) shape, built on first use and kept: views of the arena.
    fn plan(&mut self, b: usize, t: usize) -> Result<&Plan> {
        if !self.plans.contains_key(&(b, t)) {
            self.reserve(b, t)?;
            let c = &self.config;
            let opts = PlanOptions { recompute: c.recompute, max_grad_norm: c.max_grad_norm, adamw: c.adamw() };
            let arena = self.arena.as_ref().expect("reserved above");
            let plan = Plan::in_arena(&self.gpu, &self.model, &self.lora, &self.state, b, t, opts, arena)?;
            self.plans.insert((b, t), plan);
        }
        Ok(&self.plans[&(b, t)])
    }

    /// The learning rate of the next update.
    pub fn next_lr(&self) -> f32 {
        let c = &self.config;
        c.learning_rate * lr_factor(c.lr_scheduler_type, self.step, c.warmup_steps, c.max_steps)
    }

    /// One optimizer update over `micro` batches. As transformers does, the loss is the mean over
    /// the supervised tokens of all the micro-batches together.
    pub async fn train_step(&mut self, micro: &[Batch]) -> Result<StepRecord> {
        if micro.is_empty() {
            return Err(Error::Run("an update needs at least one batch".into()));
        }
        let tokens: usize = micro.iter().map(Batch::supervised).sum();
        if tokens == 0 {
            return Err(Error::Run("the batches of this update have no supervised tokens".into()));
        }
        let k = (self.step + 1) as i32;
        let lr = self.next_lr();
        let c = self.config.clone();
        let mut loss = 0.0;
        let mut grad_norm = 0.0;
        for (i, batch) in micro.iter().enumerate() {
            let sp = StepParams::for_update(k, lr, &c.adamw(), tokens, mix(c.seed, self.step as u64, i as u64));
            let last = i + 1 == micro.len();
            let plan = self.plan(batch.b, batch.t)?;
            plan.set_batch(batch)?;
            let st = plan.step(sp, i == 0, last).await?;
            loss += st.loss;
            if last {
                grad_norm = st.grad_norm;
            }
        }
        let record = StepRecord { step: self.step + 1, loss, grad_norm, learning_rate: lr, tokens };
        if record.is_finite() {
            self.step += 1;
        }
        Ok(record)
    }

    /// Mean loss over the supervised tokens of `batches` (no dropout, no update), and that count.
    pub async fn evaluate(&mut self, batches: &[Batch]) -> Result<(f32, usize)> {
        let mut sum = 0.0f64;
        let mut count = 0;
        for batch in batches {
            let n = batch.supervised();
            if n == 0 {
                continue;
            }
            let loss = self.plan(batch.b, batch.t)?.eval_loss(batch).await?;
            sum += loss as f64 * n as f64;
            count += n;
        }
        if count == 0 {
            return Err(Error::Run("the evaluation data has no supervised tokens".into()));
        }
        Ok(((sum / count as f64) as f32, count))
    }
}

/// A per-(seed, step, micro-batch) dropout seed.
fn mix(seed: u64, step: u64, micro: u64) -> u32 {
    let mut z = seed ^ step.wrapping_mul(0x9E3779B97F4A7C15) ^ micro.wrapping_mul(0xD1B54A32D192ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D049BB133111EB);
    (z ^ (z >> 31)) as u32
}
