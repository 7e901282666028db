//! `weblora train`, `weblora eval` and `weblora data`: the data path and the trainer, with a
//! progress bar, evaluation, checkpoints and the adapter files at the end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use weblora::data::{self, ChatTemplate, DataOptions, Prepared, RecordFormat};
use weblora::gpu::Gpu;
use weblora::lora::{gguf, peft, Lora, LoraConfig, Target};
use weblora::model::{load, Model};
use weblora::tokenizer::Tokenizer;
use weblora::train::{Run, RunOptions, Schedule, TrainConfig};
use weblora::{Error, Result};

/// Where the data comes from and how it becomes examples.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// A .gguf file or a Hugging Face folder.
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL, JSON, CSV/TSV or .txt.
    #[arg(long)]
    pub data: PathBuf,
    /// Force a record format: text, prompt-completion, alpaca, messages, sharegpt.
    #[arg(long)]
    pub format: Option<String>,
    /// Loss on the answers only, or on every token.
    #[arg(long, default_value = "answers", value_parser = ["answers", "all"])]
    pub train_on: String,
    /// Longest sequence in tokens; longer examples are truncated.
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Leave out malformed records instead of stopping.
    #[arg(long)]
    pub skip_bad_lines: bool,
    /// A Jinja chat template file to render chats with instead of the model's.
    #[arg(long)]
    pub chat_template: Option<PathBuf>,
    /// Which of the model's named chat templates to use (e.g. tool_use); default: "default".
    #[arg(long)]
    pub chat_template_name: Option<String>,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Load every weight as f32 instead of keeping a GGUF file's projections quantized on the GPU.
    #[arg(long)]
    pub dequantize: bool,
    /// Output folder: the PEFT adapter, the GGUF adapter (GGUF bases), trainer_state.json, checkpoints.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 8)]
    rank: usize,
    #[arg(long, default_value_t = 16.0)]
    alpha: f32,
    #[arg(long, default_value_t = 0.05)]
    dropout: f32,
    /// Comma-separated: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj or all-linear.
    #[arg(long, default_value = "all-linear")]
    targets: String,
    #[arg(long)]
    rslora: bool,
    #[arg(long, default_value_t = 2e-4)]
    lr: f32,
    #[arg(long, default_value = "linear")]
    schedule: Schedule,
    #[arg(long, default_value_t = 0)]
    warmup: usize,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Stop after this many optimizer updates (overrides epochs).
    #[arg(long)]
    max_steps: Option<usize>,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
    #[arg(long, default_value_t = 1)]
    grad_accum: usize,
    #[arg(long, default_value_t = 1.0)]
    max_grad_norm: f32,
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f32,
    /// Fraction of the data held out for evaluation.
    #[arg(long, default_value_t = 0.0)]
    eval_split: f64,
    /// A separate evaluation file.
    #[arg(long)]
    eval_data: Option<PathBuf>,
    /// Evaluate every N updates (0: only at the end).
    #[arg(long, default_value_t = 0)]
    eval_every: usize,
    /// Write a checkpoint every N updates (0: never).
    #[arg(long, default_value_t = 0)]
    checkpoint_every: usize,
    /// Continue from a checkpoint folder.
    #[arg(long)]
    resume: Option<PathBuf>,
    /// Start from an existing PEFT adapter.
    #[arg(long)]
    init_adapter: Option<PathBuf>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    #[arg(long)]
    no_shuffle: bool,
    /// Recompute activations in backward: less memory, slower.
    #[arg(long)]
    recompute: bool,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Load every weight as f32 instead of keeping a GGUF file's projections quantized on the GPU.
    #[arg(long)]
    pub dequantize: bool,
    /// A PEFT adapter folder.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    batch_size: usize,
}

/// Loads `--model` (a file, a folder, a URL or a Hugging Face repo id) with a progress bar
/// over its bytes; projections of a GGUF model stay quantized unless `dequantize`.
pub fn load_model(g: &Gpu, model: &Path, dequantize: bool) -> Result<Model> {
    let options = if dequantize { load::LoadOptions::dequantized() } else { load::LoadOptions::default() };
    let source = load::ModelSource::parse(&model.to_string_lossy())?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("loading {msg} {bar:30} {bytes}/{total_bytes}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut shown = String::new();
    let model = load::load_from(g, &source, options, &mut |file, p| {
        if shown != file {
            shown = file.to_string();
            bar.set_message(file.rsplit('/').next().unwrap_or(file).to_string());
            bar.set_length(p.total.unwrap_or(0));
        }
        bar.set_position(p.consumed);
    });
    bar.finish_and_clear();
    model
}

fn cfg_err(e: impl std::fmt::Display) -> Error {
    Error::Config(e.to_string())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The tokenizer and the prepared data of `args`.
fn prepare(args: &DataArgs, eval_fraction: f64, eval_file: Option<&Path>, seed: u64) -> Result<(Tokenizer, Prepared)> {
    let (tok, source) = load::load_tokenizer_and_template(&args.model, args.chat_template_name.as_deref())?;
    let source = match &args.chat_template {
        Some(p) => {
            Some(data::TemplateSource::file(&p.display().to_string(), String::from_utf8_lossy(&read(p)?).into()))
        }
        None => source,
    };
    let template = match &source {
        Some(s) => ChatTemplate::from_source(&tok, s)?,
        None => ChatTemplate::for_model(&tok, None)?,
    };
    let mut options = DataOptions { seq_len: args.seq_len, eval_fraction, seed, ..Default::default() };
    options.parse.skip_bad_lines = args.skip_bad_lines;
    options.encode.assistant_only_loss = args.train_on == "answers";
    options.parse.format = match args.format.as_deref() {
        None => None,
        Some(name) => {
            Some(RecordFormat::from_flag(name).ok_or_else(|| Error::Config(format!("unknown --format {name:?}")))?)
        }
    };
    let train_name = args.data.display().to_string();
    let train_bytes = read(&args.data)?;
    let eval = match eval_file {
        Some(p) => Some((p.display().to_string(), read(p)?)),
        None => None,
    };
    let prepared = data::prepare(
        (&train_name, &train_bytes),
        eval.as_ref().map(|(n, b)| (n.as_str(), b.as_slice())),
        &tok,
        Some(&template),
        &options,
    )?;
    Ok((tok, prepared))
}

pub fn run_data(args: DataArgs) -> Result<()> {
    let (_, prepared) = prepare(&args, 0.0, None, 42)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&prepared.summary).map_err(cfg_err)?);
    } else {
        print!("{}", prepared.summary);
    }
    Ok(())
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let (tok, prepared) = prepare(&args.data, 0.0, None, 42)?;
    let g = pollster::block_on(Gpu::new())?;
    let model = load_model(&g, &args.data.model, args.dequantize)?;
    let lora = match &args.adapter {
        Some(dir) => weblora::lora::read_adapter_folder(&g, &model.config, dir)?,
        None => no_adapter(&g, &model)?,
    };
    // A run with nothing to train on, only the data to evaluate.
    let options = RunOptions { batch_size: args.batch_size, seq_len: args.data.seq_len, ..Default::default() };
    let pad = data::pad_id(&tok);
    let mut run = Run::new(&g, &model, &lora, Vec::new(), prepared.train.examples, pad, &options)?;
    let (loss, tokens) = pollster::block_on(run.evaluate())?;
    if args.data.json {
        println!("{}", serde_json::json!({ "loss": loss, "perplexity": loss.exp(), "tokens": tokens }));
    } else {
        println!("loss {loss:.4}  perplexity {:.3}  tokens {tokens}", loss.exp());
    }
    Ok(())
}

/// An adapter that changes nothing (B = 0), for evaluating the base model.
fn no_adapter(g: &Gpu, model: &Model) -> Result<Lora> {
    let lora = Lora::new(
        g,
        &model.config,
        LoraConfig { r: 4, alpha: 4.0, dropout: 0.0, targets: vec![Target::Q], use_rslora: false },
    )?;
    lora.init_peft(g, 0)?;
    Ok(lora)
}

pub fn run_train(args: TrainArgs) -> Result<()> {
    let d = &args.data;
    let (tok, prepared) = prepare(d, args.eval_split, args.eval_data.as_deref(), args.seed)?;
    print!("{}", prepared.summary);
    if prepared.train.supervised_tokens() == 0 {
        return Err(Error::Config(format!("{}: no supervised tokens to train on", d.data.display())));
    }
    let g = pollster::block_on(Gpu::new())?;
    let model = load_model(&g, &d.model, args.dequantize)?;
    let lora = match &args.init_adapter {
        Some(dir) => weblora::lora::read_adapter_folder(&g, &model.config, dir)?,
        None => {
            let targets: Vec<String> = args.targets.split(',').map(|s| s.trim().to_string()).collect();
            let config = LoraConfig {
                r: args.rank,
                alpha: args.alpha,
                dropout: args.dropout,
                targets: Target::parse_list(&targets)?,
                use_rslora: args.rslora,
            };
            let lora = Lora::new(&g, &model.config, config)?;
            lora.init_peft(&g, args.seed)?;
            lora
        }
    };
    println!(
        "LoRA: rank {}, alpha {}, {} modules, {} trainable parameters",
        lora.config.r,
        lora.config.alpha,
        lora.modules.len(),
        lora.num_params()
    );
    let options = RunOptions {
        batch_size: args.batch_size,
        seq_len: d.seq_len,
        epochs: args.epochs,
        max_steps: args.max_steps,
        eval_every: args.eval_every,
        shuffle: !args.no_shuffle,
        train: TrainConfig {
            learning_rate: args.lr,
            lr_scheduler_type: args.schedule,
            warmup_steps: args.warmup,
            gradient_accumulation_steps: args.grad_accum,
            max_grad_norm: args.max_grad_norm,
            weight_decay: args.weight_decay,
            seed: args.seed,
            recompute: args.recompute,
            ..Default::default()
        },
    };
    let pad = data::pad_id(&tok);
    let mut run = Run::new(&g, &model, &lora, prepared.train.examples, prepared.eval, pad, &options)?;
    let total = run.total_steps();
    if let Some(dir) = &args.resume {
        let pos = run.trainer.load_checkpoint(dir)?;
        run.set_position(&pos);
        println!("resumed from {} at update {}", dir.display(), run.trainer.step);
    }
    std::fs::create_dir_all(&args.out).map_err(|e| Error::Config(format!("{}: {e}", args.out.display())))?;
    let base_name = d.model.display().to_string();

    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(run.trainer.step as u64);
    let mut history: Vec<serde_json::Value> = Vec::new();
    let started = Instant::now();
    let mut tokens_seen = 0usize;
    while !run.is_done() {
        let done = pollster::block_on(run.step())?;
        let record = done.record;
        if !record.is_finite() {
            bar.abandon();
            pollster::block_on(peft::write_peft_folder(&g, &lora, &base_name, &args.out))?;
            return Err(Error::Config(format!(
                "update {}: the loss or gradient is not finite (loss {}, grad norm {}); stopped and kept the last good adapter in {}",
                record.step,
                record.loss,
                record.grad_norm,
                args.out.display()
            )));
        }
        tokens_seen += done.batch_tokens;
        let tps = tokens_seen as f64 / started.elapsed().as_secs_f64();
        let msg = format!("loss {:.4} lr {:.2e} {tps:.0} tok/s", record.loss, record.learning_rate);
        if bar.is_hidden() {
            println!("update {}/{total}: {msg}", record.step);
        }
        bar.set_message(msg);
        bar.inc(1);
        let mut entry = serde_json::to_value(record).map_err(cfg_err)?;
        let step = record.step;
        if let Some((loss, n)) = done.eval {
            entry["eval_loss"] = loss.into();
            entry["eval_perplexity"] = loss.exp().into();
            let msg = format!("update {step}: eval loss {loss:.4} (perplexity {:.3}, {n} tokens)", loss.exp());
            if bar.is_hidden() {
                println!("{msg}");
            } else {
                bar.println(msg);
            }
        }
        history.push(entry);
        if args.checkpoint_every > 0 && step.is_multiple_of(args.checkpoint_every) {
            let dir = args.out.join(format!("checkpoint-{step}"));
            pollster::block_on(run.trainer.save_checkpoint(&dir, &base_name, run.position()))?;
        }
    }
    bar.finish();
    pollster::block_on(peft::write_peft_folder(&g, &lora, &base_name, &args.out))?;
    if d.model.extension().is_some_and(|e| e == "gguf") {
        let bytes = pollster::block_on(gguf::gguf_lora_bytes(&g, &lora, &model.config))?;
        std::fs::write(args.out.join("adapter.gguf"), bytes)
            .map_err(|e| Error::Config(format!("adapter.gguf: {e}")))?;
    }
    let state =
        serde_json::json!({ "global_step": run.trainer.step, "log_history": history, "config": run.trainer.config });
    std::fs::write(args.out.join("trainer_state.json"), serde_json::to_string_pretty(&state).map_err(cfg_err)?)
        .map_err(|e| Error::Config(format!("trainer_state.json: {e}")))?;
    println!("wrote the adapter to {}", args.out.display());
    Ok(())
}
