//! A whole training run over a prepared dataset: which batches make each update, epoch after
//! epoch, when to evaluate and to checkpoint, the loss history, and where to pick up again after
//! a checkpoint (which must belong to the same run). The CLI and the browser build drive the
//! same [`Run`], one update at a time.

use serde::{Deserialize, Serialize};

use super::checkpoint::{Checkpoint, CheckpointState, RunMeta};
use super::{StepRecord, TrainConfig, Trainer};
use crate::data::{BatchOptions, Batcher, Example};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::lora::{Lora, LoraConfig};
use crate::model::memory::{budget, Limits};
use crate::model::{Batch, Model, ModelMemory, Recompute, RunMemory};

/// How the examples become updates.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct RunOptions {
    /// Rows a micro-batch.
    pub batch_size: usize,
    /// Examples are truncated to this many tokens.
    pub seq_len: usize,
    pub epochs: usize,
    /// Stop after this many updates (overrides `epochs`).
    pub max_steps: Option<usize>,
    /// Evaluate every N updates (0: only after the last one).
    pub eval_every: usize,
    /// A checkpoint is due every N updates (0: never).
    pub checkpoint_every: usize,
    pub shuffle: bool,
    /// Put rows of similar length in the same batch (see [`BatchOptions::group_by_length`]).
    pub group_by_length: bool,
    /// Pack several examples into each row, train and eval (see [`BatchOptions::packing`]).
    pub packing: bool,
    /// Recompute activations in backward: `auto` decides by the run's memory plan.
    pub recompute: Recompute,
    /// GPU memory the run may take, in GB; natively `WEBLORA_MEMORY` when `None`.
    pub memory_budget: Option<f64>,
    /// Optimizer settings; `max_steps` and `gradient_accumulation_steps` are taken from here
    /// too, the first one recomputed from the epochs when `max_steps` above is `None`.
    pub train: TrainConfig,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            batch_size: 4,
            seq_len: 512,
            epochs: 1,
            max_steps: None,
            eval_every: 0,
            checkpoint_every: 0,
            shuffle: true,
            group_by_length: true,
            packing: false,
            recompute: Recompute::Auto,
            memory_budget: None,
            train: TrainConfig::default(),
        }
    }
}

/// What one update of a run did.
#[derive(Clone, Debug)]
pub struct RunStep {
    pub record: StepRecord,
    /// Tokens in the update's batches, padding included (the work done).
    pub batch_tokens: usize,
    /// 1-based epoch of the update's first batch.
    pub epoch: usize,
    /// Mean eval loss and its supervised tokens, when this update evaluated.
    pub eval: Option<(f32, usize)>,
    /// A checkpoint is due after this update (every `checkpoint_every` updates).
    pub checkpoint_due: bool,
    /// Seconds since this `Run` began its first update (a resumed run counts from its resume).
    pub seconds: f64,
    /// Tokens per second (padding included) over those seconds.
    pub tokens_per_second: f64,
}

impl RunStep {
    /// Whether the update diverged: its loss or gradient was not finite, so the adapter was
    /// left as it was after the update before.
    pub fn diverged(&self) -> bool {
        !self.record.is_finite()
    }

    /// What to tell the user when the update diverged, for every front end.
    pub fn divergence(&self) -> String {
        let r = &self.record;
        format!(
            "update {} diverged (loss {}, gradient norm {}): training stopped, and the adapter keeps its values \
             after update {} (try a lower learning rate)",
            r.step,
            r.loss,
            r.grad_norm,
            r.step - 1
        )
    }
}

/// Seconds on a monotonic clock (the page's `performance.now()` in the browser).
fn seconds_now() -> f64 {
    #[cfg(target_arch = "wasm32")]
    {
        #[wasm_bindgen::prelude::wasm_bindgen]
        extern "C" {
            #[wasm_bindgen(js_namespace = performance)]
            fn now() -> f64;
        }
        now() / 1000.0
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
        ORIGIN.get_or_init(std::time::Instant::now).elapsed().as_secs_f64()
    }
}

/// One line of the loss history (trainer_state.json's `log_history`, as transformers writes it).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogEntry {
    #[serde(flatten)]
    pub record: StepRecord,
    pub epoch: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_loss: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_perplexity: Option<f32>,
}

pub struct Run {
    pub trainer: Trainer,
    /// The memory plan of the run's largest batch, and the recompute decision.
    pub memory: RunMemory,
    train: Batcher,
    eval: Vec<Batch>,
    eval_every: usize,
    per_epoch: usize,
    checkpoint_every: usize,
    /// Every finite update so far, a resumed run's earlier ones included.
    pub history: Vec<LogEntry>,
    /// What the run is made of, kept in its checkpoints (set by the caller).
    pub meta: Option<RunMeta>,
    /// The row plan of the epoch in use, made once per epoch.
    epoch_plan: Option<(usize, Vec<Vec<usize>>)>,
    /// Index of the next batch in the endless sequence of batches, epoch after epoch.
    pub next_batch: usize,
    /// When this `Run` began its first update, and the tokens of its updates since.
    started: Option<f64>,
    tokens_seen: usize,
}

impl Run {
    /// A run over `train` (evaluated on `eval`, which may be empty), padding with `pad`.
    pub fn new(
        gpu: &Gpu,
        model: &Model,
        lora: &Lora,
        train: Vec<Example>,
        eval: Vec<Example>,
        pad: u32,
        options: &RunOptions,
    ) -> Result<Run> {
        if options.batch_size == 0 || options.seq_len == 0 {
            return Err(Error::Run("batch size and sequence length must be at least 1".into()));
        }
        let accum = options.train.gradient_accumulation_steps.max(1);
        let (train, eval) = batchers(train, eval, options, pad);
        let per_epoch = train.batches_per_epoch().max(1);
        let updates_per_epoch = per_epoch.div_ceil(accum).max(1);
        let total = options.max_steps.unwrap_or(updates_per_epoch * options.epochs).max(1);
        if options.train.warmup_steps > total {
            return Err(Error::Setting {
                name: "warmup".into(),
                detail: format!("{} is more than the run's {total} updates", options.train.warmup_steps),
            });
        }
        // Nothing is allocated for the run before its memory plan says that it fits.
        let memory = plan_for(&ModelMemory::of(model), &lora.config, &train, &eval, options, Limits::of(&gpu.info))?;
        memory.check()?;
        let eval: Vec<Batch> = eval.epoch(0).map(Batch::from).collect();
        let config = TrainConfig {
            max_steps: total,
            gradient_accumulation_steps: accum,
            recompute: memory.plan.recompute,
            ..options.train.clone()
        };
        let mut trainer = Trainer::new(gpu, model, lora, config)?;
        trainer.reserve(memory.plan.batch, memory.plan.seq_len)?;
        Ok(Run {
            trainer,
            memory,
            train,
            eval,
            eval_every: options.eval_every,
            per_epoch,
            checkpoint_every: options.checkpoint_every,
            history: Vec::new(),
            meta: None,
            epoch_plan: None,
            next_batch: 0,
            started: None,
            tokens_seen: 0,
        })
    }

    /// The memory plan of a run over these examples (see [`Run::new`]) for `model` (planned from
    /// a file's header, or loaded), without a GPU: its largest batch is B rows of the T of the
    /// longest row, and recompute is decided from `options.recompute` and the budget.
    pub fn memory_plan(
        model: &ModelMemory,
        lora: &LoraConfig,
        train: &[Example],
        eval: &[Example],
        options: &RunOptions,
        limits: Limits,
    ) -> Result<RunMemory> {
        let (train, eval) = batchers(train.to_vec(), eval.to_vec(), options, 0);
        plan_for(model, lora, &train, &eval, options, limits)
    }

    /// Updates in the whole run.
    pub fn total_steps(&self) -> usize {
        self.trainer.config.max_steps
    }

    pub fn is_done(&self) -> bool {
        self.trainer.step >= self.total_steps()
    }

    pub fn has_eval(&self) -> bool {
        !self.eval.is_empty()
    }

    /// The caller's part of a checkpoint: where the data stream stands.
    pub fn position(&self) -> serde_json::Value {
        serde_json::json!({ "next_batch": self.next_batch })
    }

    /// Continues the data stream from a checkpoint's [`Run::position`].
    pub fn set_position(&mut self, position: &serde_json::Value) {
        self.next_batch = position["next_batch"].as_u64().unwrap_or(0) as usize;
    }

    /// The run's checkpoint as it stands: the trainer's, with the data position, the loss
    /// history and the run's settings.
    pub async fn checkpoint(&self, base_model: &str) -> Result<Checkpoint> {
        let state = CheckpointState {
            step: self.trainer.step,
            config: self.trainer.config.clone(),
            position: self.position(),
            log_history: self.history.clone(),
            run: self.meta.clone(),
        };
        self.trainer.checkpoint_with(base_model, &state).await
    }

    /// Continues from `ckpt` (named `place` in errors), which must be a checkpoint of this run:
    /// the same LoRA settings, a step inside the run, and a loss history that ends at that step.
    pub fn restore(&mut self, place: &str, ckpt: &Checkpoint) -> Result<()> {
        let state = ckpt.parse_state(place)?;
        if !state.log_history.is_empty() {
            let steps: Vec<usize> = state.log_history.iter().map(|e| e.record.step).collect();
            if steps != (1..=state.step).collect::<Vec<_>>() {
                return Err(Error::Run(format!(
                    "{place}/trainer_state.json: step {} does not match its log history (updates {}..={})",
                    state.step,
                    steps.first().copied().unwrap_or(0),
                    steps.last().copied().unwrap_or(0)
                )));
            }
        }
        let state = self.trainer.restore(place, ckpt)?;
        self.set_position(&state.position);
        self.history = state.log_history;
        Ok(())
    }

    fn batch_at(&mut self, i: usize) -> Batch {
        let epoch = i / self.per_epoch;
        if self.epoch_plan.as_ref().map(|(e, _)| *e) != Some(epoch) {
            self.epoch_plan = Some((epoch, self.train.plan(epoch as u64)));
        }
        let (_, plan) = self.epoch_plan.as_ref().expect("set above");
        Batch::from(self.train.batch(&plan[i % self.per_epoch]))
    }

    /// The next update, and an evaluation after it when one is due. A diverged update (see
    /// [`StepRecord::is_finite`]) leaves the adapter as it was and is returned as is; the data
    /// stream still moves on.
    pub async fn step(&mut self) -> Result<RunStep> {
        if self.is_done() {
            return Err(Error::Run(format!("the run is over: {} updates done", self.trainer.step)));
        }
        let started = *self.started.get_or_insert_with(seconds_now);
        let accum = self.trainer.config.gradient_accumulation_steps;
        let epoch = self.next_batch / self.per_epoch + 1;
        let micro: Vec<Batch> = (0..accum).map(|k| self.batch_at(self.next_batch + k)).collect();
        let record = self.trainer.train_step(&micro).await?;
        self.next_batch += accum;
        let batch_tokens = micro.iter().map(|b| b.b * b.t).sum();
        let step = self.trainer.step;
        let due = (self.eval_every > 0 && step.is_multiple_of(self.eval_every)) || self.is_done();
        let eval = if record.is_finite() && due && self.has_eval() { Some(self.evaluate().await?) } else { None };
        let checkpoint_due =
            record.is_finite() && self.checkpoint_every > 0 && step.is_multiple_of(self.checkpoint_every);
        if record.is_finite() {
            self.history.push(LogEntry {
                record,
                epoch,
                eval_loss: eval.map(|(l, _)| l),
                eval_perplexity: eval.map(|(l, _)| l.exp()),
            });
        }
        self.tokens_seen += batch_tokens;
        let seconds = seconds_now() - started;
        let tokens_per_second = if seconds > 0.0 { self.tokens_seen as f64 / seconds } else { 0.0 };
        Ok(RunStep { record, batch_tokens, epoch, eval, checkpoint_due, seconds, tokens_per_second })
    }

    /// Mean loss over the eval batches and its supervised tokens.
    pub async fn evaluate(&mut self) -> Result<(f32, usize)> {
        self.trainer.evaluate(&self.eval).await
    }
}

/// The run's training and evaluation batchers (the evaluation's unshuffled, grouped by length).
fn batchers(train: Vec<Example>, eval: Vec<Example>, options: &RunOptions, pad: u32) -> (Batcher, Batcher) {
    let batcher = |examples, shuffle, group_by_length| {
        // Each batch is padded to its longest row rounded to 8: few shapes, little padding.
        let opts = BatchOptions {
            batch_size: options.batch_size,
            seq_len: options.seq_len,
            shuffle,
            group_by_length,
            packing: options.packing,
            seed: options.train.seed,
            pad_to_multiple_of: 8,
            ..Default::default()
        };
        Batcher::new(examples, opts, pad)
    };
    (batcher(train, options.shuffle, options.group_by_length), batcher(eval, false, true))
}

/// The memory plan of the largest batch of `train` and `eval`.
fn plan_for(
    model: &ModelMemory,
    lora: &LoraConfig,
    train: &Batcher,
    eval: &Batcher,
    options: &RunOptions,
    limits: Limits,
) -> Result<RunMemory> {
    let t = train.max_seq_len().max(eval.max_seq_len()).max(1);
    RunMemory::new(model, lora, options.batch_size, t, options.recompute, budget(options.memory_budget)?, limits)
}
