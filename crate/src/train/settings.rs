//! The settings of a training run, once for every face: the CLI's flags (clap), the browser's
//! settings objects (serde, camelCase) and checkpoints. Defaults live in the `Default` impls
//! below and nowhere else; [`DataSettings::validate`] and [`TrainSettings::validate`] refuse a
//! bad value with a message naming the setting and the accepted range.

use serde::{Deserialize, Serialize};

use super::{RunOptions, Schedule, TrainConfig};
use crate::data::{DataOptions, RecordFormat};
use crate::error::{Error, Result};
use crate::lora::{LoraConfig, Target};
pub use crate::model::Recompute;

/// Which tokens the loss is taken on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TrainOn {
    /// The answers only: assistant turns, completions.
    Answers,
    /// Every token.
    All,
}

/// How a dataset becomes examples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct DataSettings {
    /// Longest sequence in tokens (8 or more); longer examples are truncated.
    #[arg(long, default_value_t = DataSettings::default().seq_len)]
    pub seq_len: usize,
    /// Loss on the answers only, or on every token.
    #[arg(long, value_enum, default_value_t = DataSettings::default().train_on)]
    pub train_on: TrainOn,
    /// Fraction of the examples held out for evaluation, in [0, 1).
    #[arg(long, default_value_t = DataSettings::default().eval_split)]
    pub eval_split: f64,
    /// The records' format; auto tells it from the first record.
    #[arg(long, value_parser = ["auto", "text", "prompt-completion", "alpaca", "messages", "sharegpt"])]
    pub format: Option<String>,
    /// Leave out malformed records instead of stopping.
    #[arg(long)]
    pub skip_bad_lines: bool,
    /// Seed of the held-out split (the CLI uses --seed).
    #[arg(skip = DataSettings::default().seed)]
    pub seed: u64,
}

impl Default for DataSettings {
    fn default() -> Self {
        DataSettings {
            seq_len: 512,
            train_on: TrainOn::Answers,
            eval_split: 0.0,
            format: None,
            skip_bad_lines: false,
            seed: 42,
        }
    }
}

/// LoRA, optimizer and run settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, clap::Args)]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TrainSettings {
    /// LoRA rank r (1 or more).
    #[arg(long, default_value_t = TrainSettings::default().rank)]
    pub rank: usize,
    /// LoRA alpha (> 0); the update is scaled by alpha / rank.
    #[arg(long, default_value_t = TrainSettings::default().alpha)]
    pub alpha: f32,
    /// Dropout on the LoRA input, in [0, 1).
    #[arg(long, default_value_t = TrainSettings::default().dropout)]
    pub dropout: f32,
    /// Projections that get an adapter: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
    /// down_proj, or all-linear for all of them (on the command line, comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = TrainSettings::default().targets)]
    pub targets: Vec<String>,
    /// Scale by alpha / √rank (rsLoRA).
    #[arg(long)]
    pub rslora: bool,
    /// DoRA (PEFT's use_dora): each row of W + s·B·A divided by its norm and scaled by a trained
    /// magnitude.
    #[arg(long)]
    pub dora: bool,
    /// Peak learning rate, in (0, 1].
    #[arg(long, default_value_t = TrainSettings::default().lr)]
    pub lr: f32,
    /// Learning-rate schedule after the warm-up: constant, linear or cosine.
    #[arg(long, value_enum, default_value_t = TrainSettings::default().schedule)]
    pub schedule: Schedule,
    /// Warm-up updates (at most the run's updates).
    #[arg(long, default_value_t = TrainSettings::default().warmup)]
    pub warmup: usize,
    /// Passes over the training data (1 or more).
    #[arg(long, default_value_t = TrainSettings::default().epochs)]
    pub epochs: usize,
    /// Stop after this many optimizer updates (overrides epochs; 1 or more).
    #[arg(long)]
    pub max_steps: Option<usize>,
    /// Examples a micro-batch (1 or more).
    #[arg(long, default_value_t = TrainSettings::default().batch_size)]
    pub batch_size: usize,
    /// Micro-batches an optimizer update (1 or more).
    #[arg(long, default_value_t = TrainSettings::default().grad_accum)]
    pub grad_accum: usize,
    /// Clip the gradient norm to this (finite, ≥ 0; 0 turns clipping off).
    #[arg(long, default_value_t = TrainSettings::default().max_grad_norm)]
    pub max_grad_norm: f32,
    /// AdamW's decoupled weight decay (finite, ≥ 0).
    #[arg(long, default_value_t = TrainSettings::default().weight_decay)]
    pub weight_decay: f32,
    /// Evaluate every N updates (0: only at the end).
    #[arg(long, default_value_t = TrainSettings::default().eval_every)]
    pub eval_every: usize,
    /// Write a checkpoint every N updates (0: only when interrupted).
    #[arg(long, default_value_t = TrainSettings::default().checkpoint_every)]
    pub checkpoint_every: usize,
    /// Seed of the adapter's initialisation, the data order, the held-out split and dropout.
    #[arg(long, default_value_t = TrainSettings::default().seed)]
    pub seed: u64,
    /// Shuffle the examples every epoch; off (--no-shuffle), they come in the file's order.
    #[arg(long = "no-shuffle", action = clap::ArgAction::SetFalse)]
    pub shuffle: bool,
    /// Put examples of similar length in the same batch (less padding); unset, only when
    /// shuffling.
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub group_by_length: Option<bool>,
    /// Pack several short examples into each row (less padding); each keeps its own positions
    /// and attends only to itself, so the loss is the same as unpacked.
    #[arg(long)]
    pub packing: bool,
    /// Recompute activations in backward (less memory, slower): auto turns it on only when the
    /// run would not fit the memory budget without it; --recompute alone means on.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "on",
          default_value_t = TrainSettings::default().recompute)]
    pub recompute: Recompute,
    /// GPU memory the run may take, in GB (natively WEBLORA_MEMORY when unset); without a budget
    /// only the device's binding and buffer limits are checked.
    #[arg(long)]
    pub memory_budget: Option<f64>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        TrainSettings {
            rank: 8,
            alpha: 16.0,
            dropout: 0.05,
            targets: vec!["all-linear".into()],
            rslora: false,
            dora: false,
            lr: 2e-4,
            schedule: Schedule::Linear,
            warmup: 0,
            epochs: 1,
            max_steps: None,
            batch_size: 4,
            grad_accum: 1,
            max_grad_norm: 1.0,
            weight_decay: 0.0,
            eval_every: 0,
            checkpoint_every: 0,
            seed: 42,
            shuffle: true,
            group_by_length: None,
            packing: false,
            recompute: Recompute::Auto,
            memory_budget: None,
        }
    }
}

fn bad(name: &str, detail: String) -> Error {
    Error::Setting { name: name.to_string(), detail }
}

/// The values a numeric setting accepts: from `min` to `max` (none: no upper bound), each end
/// included unless open.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Range {
    pub min: f64,
    pub max: Option<f64>,
    pub min_open: bool,
    pub max_open: bool,
}

impl Range {
    const fn at_least(min: f64) -> Range {
        Range { min, max: None, min_open: false, max_open: false }
    }

    fn contains(&self, v: f64) -> bool {
        let above = if self.min_open { v > self.min } else { v >= self.min };
        let below = match self.max {
            None => true,
            Some(max) if self.max_open => v < max,
            Some(max) => v <= max,
        };
        v.is_finite() && above && below
    }
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let open = if self.min_open { '(' } else { '[' };
        match self.max {
            None => write!(f, "{open}{}, ∞)", self.min),
            Some(max) => write!(f, "{open}{}, {max}{}", self.min, if self.max_open { ')' } else { ']' }),
        }
    }
}

/// Every numeric setting's range, by snake_case name: what [`TrainSettings::validate`] and
/// [`DataSettings::validate`] check and what a form offers.
pub const RANGES: [(&str, Range); 17] = [
    ("seq_len", Range::at_least(8.0)),
    ("eval_split", Range { min: 0.0, max: Some(1.0), min_open: false, max_open: true }),
    ("rank", Range::at_least(1.0)),
    ("alpha", Range { min: 0.0, max: None, min_open: true, max_open: false }),
    ("dropout", Range { min: 0.0, max: Some(1.0), min_open: false, max_open: true }),
    ("lr", Range { min: 0.0, max: Some(1.0), min_open: true, max_open: false }),
    ("epochs", Range::at_least(1.0)),
    ("max_steps", Range::at_least(1.0)),
    ("batch_size", Range::at_least(1.0)),
    ("grad_accum", Range::at_least(1.0)),
    ("max_grad_norm", Range::at_least(0.0)),
    ("weight_decay", Range::at_least(0.0)),
    ("warmup", Range::at_least(0.0)),
    ("eval_every", Range::at_least(0.0)),
    ("checkpoint_every", Range::at_least(0.0)),
    ("seed", Range::at_least(0.0)),
    ("memory_budget", Range { min: 0.0, max: None, min_open: true, max_open: false }),
];

/// The range of the setting `name`, if it has one.
pub fn range(name: &str) -> Option<Range> {
    RANGES.iter().find(|(n, _)| *n == name).map(|&(_, r)| r)
}

/// `value` must be finite and inside the setting's range (written out in the message).
fn check(name: &str, value: f64) -> Result<()> {
    match range(name) {
        Some(r) if !r.contains(value) => Err(bad(name, format!("{value} is outside {r}"))),
        _ => Ok(()),
    }
}

impl DataSettings {
    pub fn validate(&self) -> Result<()> {
        check("seq_len", self.seq_len as f64)?;
        check("eval_split", self.eval_split)?;
        self.record_format()?;
        Ok(())
    }

    fn record_format(&self) -> Result<Option<RecordFormat>> {
        match self.format.as_deref() {
            None | Some("auto") => Ok(None),
            Some(name) => RecordFormat::from_flag(name).map(Some).ok_or_else(|| {
                bad("format", format!("unknown format {name:?} (text, prompt-completion, alpaca, messages, sharegpt)"))
            }),
        }
    }

    /// The data path's options for these settings (validated).
    pub fn data_options(&self) -> Result<DataOptions> {
        self.validate()?;
        let mut options = DataOptions {
            seq_len: self.seq_len,
            eval_fraction: self.eval_split,
            seed: self.seed,
            ..Default::default()
        };
        options.parse.skip_bad_lines = self.skip_bad_lines;
        options.parse.format = self.record_format()?;
        options.encode.assistant_only_loss = self.train_on == TrainOn::Answers;
        Ok(options)
    }
}

impl TrainSettings {
    pub fn validate(&self) -> Result<()> {
        check("rank", self.rank as f64)?;
        check("alpha", self.alpha as f64)?;
        check("dropout", self.dropout as f64)?;
        Target::parse_list(&self.targets).map_err(|e| bad("targets", e.to_string()))?;
        check("lr", self.lr as f64)?;
        check("epochs", self.epochs as f64)?;
        if let Some(n) = self.max_steps {
            check("max_steps", n as f64)?;
        }
        check("batch_size", self.batch_size as f64)?;
        check("grad_accum", self.grad_accum as f64)?;
        check("max_grad_norm", self.max_grad_norm as f64)?;
        check("weight_decay", self.weight_decay as f64)?;
        if let Some(gb) = self.memory_budget {
            check("memory_budget", gb)?;
        }
        Ok(())
    }

    /// Whether batches group examples of similar length: as set, else only when shuffling.
    pub fn grouped_by_length(&self) -> bool {
        self.group_by_length.unwrap_or(self.shuffle)
    }

    /// The adapter these settings describe (validated).
    pub fn lora_config(&self) -> Result<LoraConfig> {
        self.validate()?;
        Ok(LoraConfig {
            r: self.rank,
            alpha: self.alpha,
            dropout: self.dropout,
            targets: Target::parse_list(&self.targets)?,
            use_rslora: self.rslora,
            use_dora: self.dora,
        })
    }

    /// How a run over sequences of at most `seq_len` tokens goes (validated).
    pub fn run_options(&self, seq_len: usize) -> Result<RunOptions> {
        self.validate()?;
        Ok(RunOptions {
            batch_size: self.batch_size,
            seq_len,
            epochs: self.epochs,
            max_steps: self.max_steps,
            eval_every: self.eval_every,
            checkpoint_every: self.checkpoint_every,
            shuffle: self.shuffle,
            group_by_length: self.grouped_by_length(),
            packing: self.packing,
            recompute: self.recompute,
            memory_budget: self.memory_budget,
            train: TrainConfig {
                learning_rate: self.lr,
                lr_scheduler_type: self.schedule,
                warmup_steps: self.warmup,
                gradient_accumulation_steps: self.grad_accum,
                max_grad_norm: self.max_grad_norm,
                weight_decay: self.weight_decay,
                seed: self.seed,
                ..Default::default()
            },
        })
    }

    /// Takes the adapter's own rank, alpha, dropout, targets, rsLoRA and DoRA, refusing settings that
    /// were given (`given(name)`) and contradict them.
    pub fn adopt_adapter(&mut self, adapter: &LoraConfig, source: &str, given: &dyn Fn(&str) -> bool) -> Result<()> {
        let mut targets: Vec<String> = adapter.targets.iter().map(|t| t.hf_name().to_string()).collect();
        if adapter.targets == Target::ALL {
            targets = vec!["all-linear".into()];
        }
        let own = TrainSettings {
            rank: adapter.r,
            alpha: adapter.alpha,
            dropout: adapter.dropout,
            targets,
            rslora: adapter.use_rslora,
            dora: adapter.use_dora,
            ..self.clone()
        };
        let same_targets = Target::parse_list(&self.targets).ok().as_ref() == Some(&adapter.targets);
        for name in ["rank", "alpha", "dropout", "targets", "rslora", "dora"] {
            let differs = if name == "targets" { !same_targets } else { field(self, name) != field(&own, name) };
            if differs && given(name) {
                return Err(bad(
                    name,
                    format!(
                        "{} contradicts the adapter {source}, which has {}",
                        show(&field(self, name)),
                        show(&field(&own, name))
                    ),
                ));
            }
        }
        *self = own;
        Ok(())
    }

    /// The settings to continue a run saved with `saved`: the saved ones, except those that
    /// cannot change what has been trained (run length, evaluation and checkpoint cadence,
    /// recompute, the memory budget), which are taken from `self`. A setting that was given (`given(name)`) and
    /// differs from the saved one in a way that changes the trajectory is refused, naming it.
    /// Returns the settings and one line for each change that was taken.
    pub fn resume_from(
        &self,
        saved: &TrainSettings,
        given: &dyn Fn(&str) -> bool,
    ) -> Result<(TrainSettings, Vec<String>)> {
        const FREE: [&str; 6] = ["epochs", "max_steps", "eval_every", "checkpoint_every", "recompute", "memory_budget"];
        let (merged, notes) = merge_saved(self, saved, &FREE, given)?;
        merged.validate()?;
        Ok((merged, notes))
    }
}

impl DataSettings {
    /// The data settings to continue a run saved with `saved`: all of them change the examples,
    /// so the saved ones are used, and a given one that differs is refused.
    pub fn resume_from(&self, saved: &DataSettings, given: &dyn Fn(&str) -> bool) -> Result<DataSettings> {
        let (merged, _) = merge_saved(self, saved, &[], given)?;
        merged.validate()?;
        Ok(merged)
    }
}

/// `saved`, with the fields named in `free` taken from `ours` where they differ (noted), and
/// an error for any other field that differs and was given.
fn merge_saved<T: Serialize + serde::de::DeserializeOwned>(
    ours: &T,
    saved: &T,
    free: &[&str],
    given: &dyn Fn(&str) -> bool,
) -> Result<(T, Vec<String>)> {
    let json = |v: &T| serde_json::to_value(v).map_err(|e| Error::Run(e.to_string()));
    let (ours, mut merged) = (json(ours)?, json(saved)?);
    let mut notes = Vec::new();
    let keys: Vec<String> = ours.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    for key in keys {
        let (now, then) = (&ours[&key], &merged[&key]);
        if now == then {
            continue;
        }
        let name = snake(&key);
        if !given(&name) {
            continue;
        }
        if free.contains(&name.as_str()) {
            notes.push(format!("{} {} (the checkpoint had {})", flag(&name), show(now), show(then)));
            merged[&key] = now.clone();
        } else {
            return Err(Error::Setting {
                name,
                detail: format!("{} differs from the checkpoint's {}, and would change the run", show(now), show(then)),
            });
        }
    }
    let merged = serde_json::from_value(merged).map_err(|e| Error::Run(e.to_string()))?;
    Ok((merged, notes))
}

/// A setting's value for a message: f32 settings as f32 prints them (0.002, not
/// 0.0020000000949949026), lists as comma-separated names.
fn show(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            if (x as f32) as f64 == x {
                (x as f32).to_string()
            } else {
                x.to_string()
            }
        }
        serde_json::Value::Array(items) => items.iter().map(show).collect::<Vec<_>>().join(","),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One field of `s` as JSON, by its snake_case name.
fn field(s: &TrainSettings, name: &str) -> serde_json::Value {
    serde_json::to_value(s).map(|v| v[camel(name)].clone()).unwrap_or_default()
}

/// `max_grad_norm` → `maxGradNorm`, the name the browser's settings objects use.
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    let mut up = false;
    for c in name.chars() {
        if c == '_' {
            up = true;
        } else if up {
            out.extend(c.to_uppercase());
            up = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `maxGradNorm` → `max_grad_norm`.
fn snake(key: &str) -> String {
    let mut out = String::new();
    for c in key.chars() {
        if c.is_uppercase() {
            out.push('_');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `max_grad_norm` → `--max-grad-norm`, the command line's flag.
pub fn flag(name: &str) -> String {
    match name {
        "shuffle" => "--no-shuffle".into(),
        _ => format!("--{}", name.replace('_', "-")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ["max_grad_norm", "rank", "group_by_length"] {
            assert_eq!(snake(&camel(name)), name);
        }
        assert_eq!(flag("max_grad_norm"), "--max-grad-norm");
    }

    #[test]
    fn bad_values_name_the_setting_and_range() {
        let cases: [(&str, TrainSettings, &str); 9] = [
            (
                "weight_decay",
                TrainSettings { weight_decay: f32::NAN, ..Default::default() },
                "--weight-decay: NaN is outside [0, ∞)",
            ),
            ("weight_decay", TrainSettings { weight_decay: f32::INFINITY, ..Default::default() }, "inf is outside"),
            ("alpha", TrainSettings { alpha: 0.0, ..Default::default() }, "--alpha: 0 is outside (0, ∞)"),
            ("alpha", TrainSettings { alpha: -16.0, ..Default::default() }, "-16 is outside"),
            ("epochs", TrainSettings { epochs: 0, ..Default::default() }, "--epochs: 0 is outside [1, ∞)"),
            ("max_steps", TrainSettings { max_steps: Some(0), ..Default::default() }, "--max-steps: 0"),
            ("grad_accum", TrainSettings { grad_accum: 0, ..Default::default() }, "--grad-accum: 0"),
            ("max_grad_norm", TrainSettings { max_grad_norm: f32::NAN, ..Default::default() }, "--max-grad-norm: NaN"),
            ("targets", TrainSettings { targets: vec!["qq_proj".into()], ..Default::default() }, "qq_proj"),
        ];
        for (name, s, needle) in cases {
            let e = s.validate().unwrap_err();
            assert!(matches!(&e, Error::Setting { name: n, .. } if n == name), "{name}: {e}");
            assert!(e.to_string().contains(needle), "{name}: {e}");
        }
        for split in [1.5, 1.0, -0.1, f64::NAN] {
            let e = DataSettings { eval_split: split, ..Default::default() }.validate().unwrap_err();
            assert!(e.to_string().starts_with("--eval-split:"), "{e}");
        }
        assert!(TrainSettings::default().validate().is_ok());
        assert!(DataSettings::default().validate().is_ok());
    }

    #[test]
    fn browser_settings_are_camel_case_and_strict() {
        let s: TrainSettings = serde_json::from_str(r#"{"maxGradNorm": 0.5, "batchSize": 2}"#).unwrap();
        assert_eq!((s.max_grad_norm, s.batch_size, s.rank), (0.5, 2, 8));
        let e = serde_json::from_str::<TrainSettings>(r#"{"learningRate": 1e-3}"#).unwrap_err();
        assert!(e.to_string().contains("learningRate"), "{e}");
    }

    #[test]
    fn resume_keeps_the_trajectory() {
        let saved = TrainSettings { lr: 1e-3, max_steps: Some(4), ..Default::default() };
        // Nothing given: everything comes from the checkpoint.
        let none = |_: &str| false;
        let (s, notes) = TrainSettings::default().resume_from(&saved, &none).unwrap();
        assert_eq!((s.lr, s.max_steps), (1e-3, Some(4)));
        assert!(notes.is_empty(), "{notes:?}");
        // A longer run is taken, with a note.
        let longer = TrainSettings { max_steps: Some(8), ..saved.clone() };
        let (s, notes) = longer.resume_from(&saved, &|n| n == "max_steps").unwrap();
        assert_eq!(s.max_steps, Some(8));
        assert_eq!(notes, ["--max-steps 8 (the checkpoint had 4)"]);
        // A changed alpha is refused, naming it.
        let other = TrainSettings { alpha: 32.0, ..saved.clone() };
        let e = other.resume_from(&saved, &|n| n == "alpha").unwrap_err();
        assert_eq!(e.to_string(), "--alpha: 32 differs from the checkpoint's 16, and would change the run");
    }

    #[test]
    fn an_adapter_brings_its_own_settings() {
        let adapter = LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: vec![Target::Q, Target::V],
            use_rslora: false,
            use_dora: false,
        };
        let mut s = TrainSettings::default();
        s.adopt_adapter(&adapter, "a/", &|_| false).unwrap();
        assert_eq!((s.rank, s.alpha, s.targets.join(",")), (4, 8.0, "q_proj,v_proj".to_string()));
        let mut s = TrainSettings { rank: 16, ..Default::default() };
        let e = s.adopt_adapter(&adapter, "a/", &|n| n == "rank").unwrap_err();
        assert_eq!(e.to_string(), "--rank: 16 contradicts the adapter a/, which has 4");
    }

    #[test]
    fn no_shuffle_keeps_the_file_order() {
        use crate::data::{BatchOptions, Batcher, Example};
        let o = TrainSettings { shuffle: false, ..Default::default() }.run_options(64).unwrap();
        assert!(!o.group_by_length);
        let examples: Vec<Example> = (0..7)
            .map(|i| {
                let n = 3 + (i * 5) % 11;
                Example { ids: vec![1; n], mask: vec![true; n], line: i + 1 }
            })
            .collect();
        let options = BatchOptions {
            batch_size: 2,
            seq_len: 64,
            shuffle: o.shuffle,
            group_by_length: o.group_by_length,
            ..Default::default()
        };
        assert_eq!(Batcher::new(examples, options, 0).plan(0), [vec![0, 1], vec![2, 3], vec![4, 5], vec![6]]);
        // Shuffled runs group by length unless told otherwise.
        assert!(TrainSettings::default().run_options(64).unwrap().group_by_length);
        let off = TrainSettings { group_by_length: Some(false), ..Default::default() };
        assert!(!off.run_options(64).unwrap().group_by_length);
    }

    /// The keys of `interface NAME { … }` in the npm package's types.
    fn typescript_keys(name: &str) -> Vec<String> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web/src/index.d.ts");
        let text = std::fs::read_to_string(&path).unwrap();
        let start = text.find(&format!("export interface {name} {{")).unwrap_or_else(|| panic!("{name} in index.d.ts"));
        let body = &text[start..start + text[start..].find("\n}").unwrap()];
        let mut keys: Vec<String> = body
            .lines()
            .skip(1)
            .map(str::trim)
            .filter(|l| !l.starts_with("/**") && !l.starts_with('*'))
            .filter_map(|l| l.split_once("?:").map(|(k, _)| k.trim().to_string()))
            .collect();
        keys.sort();
        keys
    }

    fn serde_keys<T: Serialize>(value: &T) -> Vec<String> {
        let mut keys: Vec<String> = serde_json::to_value(value).unwrap().as_object().unwrap().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[test]
    fn the_package_types_name_every_setting() {
        assert_eq!(typescript_keys("TrainSettings"), serde_keys(&TrainSettings::default()));
        assert_eq!(typescript_keys("DataSettings"), serde_keys(&DataSettings::default()));
    }
}
