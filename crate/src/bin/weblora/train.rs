//! `weblora train`: settings checked before anything runs, an output folder that never mixes
//! two runs, the run loop with a progress bar, evaluation and checkpoints, Ctrl-C that saves,
//! and every output written whole or not at all.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use weblora::data;
use weblora::gpu::Gpu;
use weblora::io::atomic;
use weblora::lora::{gguf, peft, Lora};
use weblora::model::load::{self, LoadOptions};
use weblora::model::memory::Limits;
use weblora::train::{Checkpoint, CheckpointState, Run, RunMeta, TrainSettings};
use weblora::{Error, Result};

use crate::data::{load_model, prepare, DataArgs};

#[derive(clap::Args)]
pub struct TrainArgs {
    /// Boxed: the command enum's variants stay of similar size.
    #[command(flatten)]
    pub data: Box<DataArgs>,
    #[command(flatten)]
    pub settings: TrainSettings,
    /// Load every weight as f32 instead of keeping a GGUF file's projections quantized on the GPU.
    #[arg(long)]
    pub dequantize: bool,
    /// Output folder: the PEFT adapter, the GGUF adapter (GGUF bases), trainer_state.json, checkpoints.
    #[arg(long)]
    pub out: PathBuf,
    /// Replace a run already in --out (its adapter, state and checkpoints are removed).
    #[arg(long)]
    pub overwrite: bool,
    /// A separate evaluation file.
    #[arg(long)]
    pub eval_data: Option<PathBuf>,
    /// Continue from a checkpoint folder; its settings are used, and a given setting that would
    /// change the run is refused.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Start from an existing adapter (PEFT or MLX-LM folder); its rank, alpha, dropout and
    /// targets are used.
    #[arg(long)]
    pub init_adapter: Option<PathBuf>,
    /// Print the memory plan (weights, adapter, optimizer, activations of the largest batch,
    /// the largest binding against the device's limit, the total against the budget, and the
    /// recompute decision) and exit without loading the model or training; with --json, as JSON.
    #[arg(long)]
    pub dry_run: bool,
}

/// Files in an output folder that belong to a run.
const RUN_FILES: [&str; 4] = ["adapter_config.json", "adapter_model.safetensors", "adapter.gguf", "trainer_state.json"];

/// Set by the first Ctrl-C (or SIGTERM); the run saves and stops after the current update.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn handle_interrupts() {
    let _ = ctrlc::set_handler(|| {
        if INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\nweblora: interrupted again; quitting without saving");
            std::process::exit(130);
        }
        eprintln!("\nweblora: interrupted; saving after this update (Ctrl-C again quits at once)");
    });
}

/// What a run in `out` consists of, if there is one there: its run files and checkpoints.
fn run_entries(out: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(out) else { return Vec::new() };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            RUN_FILES.contains(&name.as_str()) || (name.starts_with("checkpoint-") && p.is_dir())
        })
        .collect();
    found.sort();
    found
}

/// Refuses an `out` that holds a run unless the run is being resumed or replaced; with
/// `overwrite`, removes the old run's files (and nothing else).
fn claim_out(out: &Path, overwrite: bool, resuming: bool) -> Result<()> {
    let entries = run_entries(out);
    if !entries.is_empty() && !overwrite && !resuming {
        let names: Vec<String> =
            entries.iter().filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect();
        return Err(Error::Run(format!(
            "{} holds a run already ({}); give --overwrite to replace it, --resume with one of its checkpoints to continue it, or another --out",
            out.display(),
            names.join(", ")
        )));
    }
    if overwrite {
        for p in entries {
            let removed = if p.is_dir() { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
            removed.map_err(|e| Error::io(&p, e))?;
        }
    }
    atomic::check_writable(out)
}

/// Whether a setting was given on the command line.
pub type Given<'a> = &'a dyn Fn(&str) -> bool;

pub fn run_train(mut args: TrainArgs, given: Given) -> Result<std::process::ExitCode> {
    // Everything that can be refused is checked before the model loads and the first update.
    let resume = match &args.resume {
        Some(dir) => Some((dir.display().to_string(), Checkpoint::read(dir)?)),
        None => None,
    };
    let saved: Option<CheckpointState> = resume.as_ref().map(|(place, c)| c.parse_state(place)).transpose()?;
    if let Some(meta) = saved.as_ref().and_then(|s| s.run.as_ref()) {
        let (settings, notes) = args.settings.resume_from(&meta.settings, given)?;
        args.settings = settings;
        let given_data = |name: &str| name != "seed" && given(name);
        args.data.settings = args.data.settings.resume_from(&meta.data, &given_data)?;
        for note in notes {
            say!("resume: {note}");
        }
    } else if let Some((place, _)) = &resume {
        say!("resume: {place} records no settings (an older checkpoint); they are not checked");
    }
    args.settings.validate()?;
    args.data.settings.seed = args.settings.seed;
    let (tok, prepared, fingerprint) = prepare(&args.data, args.eval_data.as_deref())?;
    if !(args.dry_run && args.data.json) {
        say!("{}", prepared.summary.to_string().trim_end());
    }
    if let Some(meta) = saved.as_ref().and_then(|s| s.run.as_ref()) {
        meta.data_file.check(&fingerprint)?;
    }

    let g = pollster::block_on(Gpu::new())?;
    // A local model's run is planned from its header before anything is uploaded; a URL's is
    // planned so when only the plan is asked for (else the header would be downloaded twice).
    if args.dry_run || args.data.model.exists() {
        let limits = Limits::of(&g.info);
        let load_options = if args.dequantize { LoadOptions::dequantized() } else { LoadOptions::default() };
        let source = load::ModelSource::parse(&args.data.model.to_string_lossy())?;
        let model = load::model_memory(&source, load_options, &limits)?;
        let lora = match &args.init_adapter {
            Some(dir) if dir.join("adapter_config.json").is_file() => {
                let file = dir.join("adapter_config.json");
                let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
                peft::parse_adapter_config(&text, &file.display().to_string())?
            }
            _ => args.settings.lora_config()?,
        };
        let options = args.settings.run_options(args.data.settings.seq_len)?;
        let (train, eval) = (&prepared.train.examples, &prepared.eval);
        let memory = Run::memory_plan(&model, &lora, train, eval, &options, limits)?;
        if args.dry_run {
            if args.data.json {
                say!("{}", serde_json::to_string_pretty(&memory).map_err(|e| Error::Run(e.to_string()))?);
            } else {
                say!("GPU: {}\n{memory}", g.info);
            }
            memory.check()?;
            return Ok(std::process::ExitCode::SUCCESS);
        }
        memory.check()?;
    }
    let model = load_model(&g, &args.data.model, args.dequantize)?;
    let lora = match &args.init_adapter {
        Some(dir) => {
            // The adapter brings its own rank, alpha, dropout and targets.
            let lora = weblora::lora::read_adapter_folder(&g, &model.config, dir)?;
            args.settings.adopt_adapter(&lora.config, &dir.display().to_string(), given)?;
            lora
        }
        None => {
            let lora = Lora::new(&g, &model.config, args.settings.lora_config()?)?;
            lora.init_peft_on(&g, &model, args.settings.seed)?;
            lora
        }
    };
    // The output folder is claimed last, once nothing else can be refused.
    claim_out(&args.out, args.overwrite, resume.is_some())?;
    let d = &args.data;
    say!("GPU: {}", g.info);
    say!(
        "LoRA: rank {}, alpha {}, {} modules, {} trainable parameters",
        lora.config.r,
        lora.config.alpha,
        lora.modules.len(),
        lora.num_params()
    );
    let options = args.settings.run_options(d.settings.seq_len)?;
    let pad = data::pad_id(&tok);
    let mut run = Run::new(&g, &model, &lora, prepared.train.examples, prepared.eval, pad, &options)?;
    say!("memory: {}", run.memory.summary());
    let base_name = d.model.display().to_string();
    run.meta = Some(RunMeta {
        base_model: base_name.clone(),
        settings: args.settings.clone(),
        data: d.settings.clone(),
        data_file: fingerprint,
    });
    if let Some((place, ckpt)) = &resume {
        run.restore(place, ckpt)?;
        say!("resumed from {place} at update {}", run.trainer.step);
    }
    let gguf = is_gguf(&d.model) && !lora.config.use_dora;
    if is_gguf(&d.model) && lora.config.use_dora {
        say!("no adapter.gguf: llama.cpp's LoRA files have no DoRA magnitudes (`weblora merge` folds the adapter into the base)");
    }
    let outputs =
        Outputs { gpu: &g, lora: &lora, base_name: &base_name, out: &args.out, gguf: gguf.then_some(&model.config) };
    handle_interrupts();
    train_loop(&mut run, &outputs, &args)
}

fn is_gguf(model: &Path) -> bool {
    model.extension().is_some_and(|e| e == "gguf")
}

/// Where and what a run writes.
struct Outputs<'a> {
    gpu: &'a Gpu,
    lora: &'a Lora,
    base_name: &'a str,
    out: &'a Path,
    /// The base model's config, when it is a GGUF file (a llama.cpp adapter is written too).
    gguf: Option<&'a weblora::model::ModelConfig>,
}

impl Outputs<'_> {
    /// trainer_state.json: every update so far, the optimizer config and the run's settings.
    fn write_state(&self, run: &Run) -> Result<()> {
        let state = serde_json::json!({
            "global_step": run.trainer.step,
            "log_history": run.history,
            "config": run.trainer.config,
            "run": run.meta,
        });
        let text = serde_json::to_string_pretty(&state).map_err(|e| Error::Run(e.to_string()))?;
        atomic::write_file(&self.out.join("trainer_state.json"), text.as_bytes())
    }

    /// The adapter files (each refused if not finite, each written whole), then the state.
    fn write_adapter(&self, run: &Run) -> Result<()> {
        pollster::block_on(peft::write_peft_folder(self.gpu, self.lora, self.base_name, self.out))?;
        if let Some(config) = self.gguf {
            let bytes = pollster::block_on(gguf::gguf_lora_bytes(self.gpu, self.lora, config))?;
            atomic::write_file(&self.out.join("adapter.gguf"), &bytes)?;
        }
        self.write_state(run)
    }

    fn checkpoint(&self, run: &Run) -> Result<PathBuf> {
        let dir = self.out.join(format!("checkpoint-{}", run.trainer.step));
        pollster::block_on(run.checkpoint(self.base_name))?.write(&dir)?;
        Ok(dir)
    }
}

fn train_loop(run: &mut Run, outputs: &Outputs, args: &TrainArgs) -> Result<std::process::ExitCode> {
    let total = run.total_steps();
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg} [{elapsed} < {eta}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(run.trainer.step as u64);
    let mut last_state_write = Instant::now();
    while !run.is_done() {
        if INTERRUPTED.load(Ordering::SeqCst) {
            bar.abandon();
            return interrupted(run, outputs, args);
        }
        let done = match pollster::block_on(run.step()) {
            Ok(done) => done,
            Err(e) => {
                bar.abandon();
                if matches!(e, Error::DeviceLost(_) | Error::OutOfMemory(_)) {
                    eprintln!("{}", where_to_resume(outputs.out));
                }
                return Err(e);
            }
        };
        let record = done.record;
        if done.diverged() {
            bar.abandon();
            outputs.write_adapter(run)?;
            return Err(Error::Run(format!("{}; it is written to {}", done.divergence(), outputs.out.display())));
        }
        let tps = done.tokens_per_second;
        let msg = format!("loss {:.4} lr {:.2e} {tps:.0} tok/s", record.loss, record.learning_rate);
        if bar.is_hidden() {
            say!("update {}/{total}: {msg}", record.step);
        }
        bar.set_message(msg);
        bar.inc(1);
        if let Some((loss, n)) = done.eval {
            let msg = format!("update {}: eval loss {loss:.4} (perplexity {:.3}, {n} tokens)", record.step, loss.exp());
            if bar.is_hidden() {
                say!("{msg}");
            } else {
                bar.println(msg);
            }
        }
        if done.checkpoint_due {
            outputs.checkpoint(run)?;
        }
        // The loss history survives a crash: rewritten (whole) at most once a second.
        if done.checkpoint_due || done.eval.is_some() || last_state_write.elapsed().as_secs_f32() >= 1.0 {
            outputs.write_state(run)?;
            last_state_write = Instant::now();
        }
    }
    bar.finish();
    outputs.write_adapter(run)?;
    say!("wrote the adapter to {}", outputs.out.display());
    Ok(std::process::ExitCode::SUCCESS)
}

/// After a Ctrl-C: a checkpoint of the last finished update and the adapter, and how to go on.
fn interrupted(run: &Run, outputs: &Outputs, args: &TrainArgs) -> Result<std::process::ExitCode> {
    if run.trainer.step == 0 {
        eprintln!("weblora: interrupted before the first update; nothing to save");
        return Ok(std::process::ExitCode::from(130));
    }
    let dir = outputs.checkpoint(run)?;
    outputs.write_adapter(run)?;
    eprintln!(
        "weblora: interrupted after update {} of {}; saved {} and the adapter in {}\nresume with: {}",
        run.trainer.step,
        run.total_steps(),
        dir.display(),
        args.out.display(),
        resume_command(&dir)
    );
    Ok(std::process::ExitCode::from(130))
}

/// This command line again, continuing from checkpoint `dir`.
fn resume_command(dir: &Path) -> String {
    let command: Vec<String> = std::env::args()
        .filter(|a| a != "--overwrite")
        .scan(false, |skip, a| {
            let keep = !*skip && a != "--resume" && !a.starts_with("--resume=");
            *skip = a == "--resume";
            Some(keep.then_some(a))
        })
        .flatten()
        .collect();
    format!("{} --resume {}", command.join(" "), dir.display())
}

/// After the GPU failed under a run: its newest checkpoint in `out` and how to continue from it.
fn where_to_resume(out: &Path) -> String {
    let newest = std::fs::read_dir(out)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let step = e.file_name().to_str()?.strip_prefix("checkpoint-")?.parse::<usize>().ok()?;
            e.path().is_dir().then_some((step, e.path()))
        })
        .max_by_key(|(step, _)| *step);
    match newest {
        Some((step, dir)) => format!(
            "weblora: the run's last checkpoint is {} (update {step}); resume with: {}",
            dir.display(),
            resume_command(&dir)
        ),
        None => "weblora: the run wrote no checkpoint yet (--checkpoint-every sets how often it does)".into(),
    }
}
