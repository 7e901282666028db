//! The subcommands; `train`, `eval`, `data` live in train.rs, `bench` in bench.rs.

use std::path::PathBuf;

use weblora::generate::{chat_prompt, generate, stop_tokens, Sampling};
use weblora::gpu::Gpu;
use weblora::lora::merge;
use weblora::model::decode::Decoder;
use weblora::model::{export, load};
use weblora::{Error, Result};

#[derive(clap::Parser)]
#[command(name = "weblora", version, about = "LoRA fine-tuning of small language models on your own GPU")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Show a model's architecture, sizes, tensor types and GPU memory.
    Inspect {
        /// A .gguf file or a Hugging Face folder.
        #[arg(long)]
        model: PathBuf,
        /// Load every weight as f32 instead of keeping a GGUF file's projections quantized.
        #[arg(long)]
        dequantize: bool,
    },
    /// Continue a prompt with the base model, or with an adapter.
    Generate(GenerateArgs),
    /// Fold an adapter into its base and write a Hugging Face folder.
    Merge {
        #[arg(long)]
        model: PathBuf,
        /// A PEFT adapter folder.
        #[arg(long)]
        adapter: PathBuf,
        /// The folder to write; it must not exist yet, unless --overwrite.
        #[arg(long)]
        out: PathBuf,
        /// Replace --out if it exists (once the new folder is complete).
        #[arg(long)]
        overwrite: bool,
    },
    /// Train a LoRA adapter.
    Train(crate::train::TrainArgs),
    /// Mean loss and perplexity of a model (with an adapter) on a dataset.
    Eval(crate::data::EvalArgs),
    /// What a dataset becomes: examples, tokens, the loss mask of the first example.
    Data(crate::data::DataArgs),
    /// Measure kernel and training-step speed on this machine's GPU.
    Bench(crate::bench::BenchArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long)]
    model: PathBuf,
    /// A PEFT adapter folder.
    #[arg(long)]
    adapter: Option<PathBuf>,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    /// 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Feed the prompt as it is, without the model's chat template.
    #[arg(long)]
    raw: bool,
    /// Load every weight as f32 instead of keeping a GGUF file's projections quantized on the GPU.
    #[arg(long)]
    dequantize: bool,
}

fn gpu() -> Result<Gpu> {
    pollster::block_on(Gpu::new())
}

pub fn run(cli: Cli, matches: &clap::ArgMatches) -> Result<std::process::ExitCode> {
    let done = std::process::ExitCode::SUCCESS;
    match cli.command {
        Command::Inspect { model, dequantize } => inspect(&model, dequantize).map(|_| done),
        Command::Generate(args) => run_generate(args).map(|_| done),
        Command::Merge { model, adapter, out, overwrite } => merge(&model, &adapter, &out, overwrite).map(|_| done),
        Command::Train(args) => {
            let sub = matches.subcommand_matches("train");
            // Whether a setting was typed on the command line (not left at its default).
            let given = |name: &str| {
                sub.is_some_and(|m| {
                    m.ids().any(|id| id.as_str() == name)
                        && m.value_source(name) == Some(clap::parser::ValueSource::CommandLine)
                })
            };
            crate::train::run_train(args, &given)
        }
        Command::Eval(args) => crate::data::run_eval(args).map(|_| done),
        Command::Data(args) => crate::data::run_data(args).map(|_| done),
        Command::Bench(args) => crate::bench::run(args).map(|_| done),
    }
}

/// Folds `adapter` into `model` and writes the merged Hugging Face folder `out`, whole: into a
/// temporary folder beside it, renamed into place when complete.
fn merge(model: &std::path::Path, adapter: &std::path::Path, out: &std::path::Path, overwrite: bool) -> Result<()> {
    if out.exists() && !overwrite {
        return Err(Error::Run(format!("{} exists already; give --overwrite to replace it", out.display())));
    }
    let g = gpu()?;
    // Merging adds into f32 weights, and the folder written holds f32.
    let m = crate::data::load_model(&g, model, true)?;
    let lora = weblora::lora::read_adapter_folder(&g, &m.config, adapter)?;
    merge::merge_into(&g, &m, &lora)?;
    let (tok, template) = load::load_tokenizer(model)?;
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = out.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_dir_all(&partial);
    let written = pollster::block_on(export::write_hf_folder(&g, &m, Some((&tok, template.as_deref())), &partial))
        .and_then(|_| weblora::io::atomic::replace_folder(&partial, out, overwrite));
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    written?;
    say!("merged {} into {}", adapter.display(), out.display());
    Ok(())
}

fn inspect(path: &std::path::Path, dequantize: bool) -> Result<()> {
    let g = gpu()?;
    let model = crate::data::load_model(&g, path, dequantize)?;
    let c = &model.config;
    say!("model        {}", path.display());
    say!("architecture {}", c.model_type.as_deref().unwrap_or("llama"));
    say!("layers       {}", c.num_hidden_layers);
    say!("hidden       {} (ffn {})", c.hidden_size, c.intermediate_size);
    say!("heads        {} query, {} key/value, head dim {}", c.num_attention_heads, c.n_kv_heads(), c.head_dim());
    say!("vocabulary   {}{}", c.vocab_size, if c.tie_word_embeddings { " (tied embeddings)" } else { "" });
    say!("rope         {:?}", c.rope());
    let params: usize = model.weights.named().iter().map(|(_, w)| w.numel()).sum();
    say!("parameters   {:.1} M", params as f64 / 1e6);
    if path.is_file() {
        let header = weblora::io::read_gguf_header(path)?;
        let mut types = std::collections::BTreeMap::new();
        for t in &header.tensors {
            *types.entry(t.ty.name()).or_insert(0usize) += 1;
        }
        say!("file types   {types:?}");
    }
    let w = &model.weights;
    let mb = |b: u64| b as f64 / 1e6;
    let kept = match w.is_quantized() {
        true => format!("kept in the file's types, the embedding as {}", w.embed_tokens.ty().name()),
        false => "f32".into(),
    };
    say!(
        "GPU weights  {:.1} MB ({kept}; projections {:.1} MB) on {}",
        mb(w.gpu_bytes()),
        mb(w.projection_gpu_bytes()),
        g.info
    );
    Ok(())
}

fn run_generate(args: GenerateArgs) -> Result<()> {
    let g = gpu()?;
    let model = crate::data::load_model(&g, &args.model, args.dequantize)?;
    let (tok, template) = load::load_tokenizer(&args.model)?;
    let lora =
        args.adapter.as_ref().map(|dir| weblora::lora::read_adapter_folder(&g, &model.config, dir)).transpose()?;
    let template = match (&template, args.raw) {
        (Some(src), false) => Some(weblora::data::ChatTemplate::for_model(&tok, Some(src))?),
        _ => None,
    };
    let prompt = chat_prompt(&tok, template.as_ref(), &args.prompt)?;
    let decoder = Decoder::new(&g, &model, lora.as_ref(), prompt.len() + args.max_new_tokens)?;
    let sampling = Sampling {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        stop: stop_tokens(&tok),
    };
    let out = pollster::block_on(generate(&decoder, &prompt, &sampling))?;
    let text = tok.decode(&out, true).map_err(|e| Error::Run(format!("decoding the answer: {e}")))?;
    say!("{text}");
    Ok(())
}
