//! `weblora data` and `weblora eval`, and what every command shares: loading `--model` with a
//! progress bar and turning `--data` into examples with the library's [`DataSettings`].

use std::path::{Path, PathBuf};

use weblora::data::{self, ChatTemplate, Prepared};
use weblora::gpu::Gpu;
use weblora::lora::{Lora, LoraConfig, Target};
use weblora::model::{load, Model};
use weblora::tokenizer::Tokenizer;
use weblora::train::{DataSettings, Fingerprint, Run, TrainSettings};
use weblora::{Error, Result};

/// Where the data comes from and how it becomes examples.
#[derive(clap::Args, Clone)]
pub struct DataArgs {
    /// A .gguf file or a Hugging Face folder (or a URL, or a Hugging Face repo id).
    #[arg(long)]
    pub model: PathBuf,
    /// JSONL, JSON, CSV/TSV or .txt.
    #[arg(long)]
    pub data: PathBuf,
    #[command(flatten)]
    pub settings: DataSettings,
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
pub struct EvalArgs {
    #[command(flatten)]
    data: DataArgs,
    /// Load every weight as f32 instead of keeping a GGUF file's projections quantized on the GPU.
    #[arg(long)]
    pub dequantize: bool,
    /// A PEFT adapter folder.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[arg(long, default_value_t = TrainSettings::default().batch_size)]
    batch_size: usize,
    /// Pack several short examples into each row (the loss is the same as unpacked).
    #[arg(long)]
    packing: bool,
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

pub fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

/// The tokenizer and the prepared data of `args` (with `eval_file` held out instead of a
/// split when given), and the training file's fingerprint.
pub fn prepare(args: &DataArgs, eval_file: Option<&Path>) -> Result<(Tokenizer, Prepared, Fingerprint)> {
    let options = args.settings.data_options()?;
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
    Ok((tok, prepared, Fingerprint::of(&train_name, &train_bytes)))
}

pub fn run_data(args: DataArgs) -> Result<()> {
    let (_, prepared, _) = prepare(&args, None)?;
    if args.json {
        say!("{}", serde_json::to_string_pretty(&prepared.summary).map_err(|e| Error::Run(e.to_string()))?);
    } else {
        say!("{}", prepared.summary.to_string().trim_end());
    }
    Ok(())
}

pub fn run_eval(args: EvalArgs) -> Result<()> {
    let (tok, prepared, _) = prepare(&args.data, None)?;
    let g = pollster::block_on(Gpu::new())?;
    let model = load_model(&g, &args.data.model, args.dequantize)?;
    let lora = match &args.adapter {
        Some(dir) => weblora::lora::read_adapter_folder(&g, &model.config, dir)?,
        None => no_adapter(&g, &model)?,
    };
    // A run with nothing to train on, only the data to evaluate.
    let settings = TrainSettings { batch_size: args.batch_size, packing: args.packing, ..Default::default() };
    let options = settings.run_options(args.data.settings.seq_len)?;
    let pad = data::pad_id(&tok);
    let mut run = Run::new(&g, &model, &lora, Vec::new(), prepared.train.examples, pad, &options)?;
    let (loss, tokens) = pollster::block_on(run.evaluate())?;
    if !loss.is_finite() {
        return Err(Error::Run(format!(
            "the loss is {loss}: the model or the adapter computes values that are not finite"
        )));
    }
    if args.data.json {
        say!("{}", serde_json::json!({ "loss": loss, "perplexity": loss.exp(), "tokens": tokens }));
    } else {
        say!("loss {loss:.4}  perplexity {:.3}  tokens {tokens}", loss.exp());
    }
    Ok(())
}

/// An adapter that changes nothing (B = 0), for evaluating the base model.
fn no_adapter(g: &Gpu, model: &Model) -> Result<Lora> {
    let lora = Lora::new(
        g,
        &model.config,
        LoraConfig { r: 4, alpha: 4.0, dropout: 0.0, targets: vec![Target::Q], use_rslora: false, use_dora: false },
    )?;
    lora.init_peft(g, 0)?;
    Ok(lora)
}
