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
    /// Continue a prompt with the base model, with an adapter, or with several side by side.
    Generate(GenerateArgs),
    /// Mix PEFT adapters into one, as PEFT's add_weighted_adapter(combination_type="cat").
    Mix {
        /// A PEFT adapter folder and its weight, DIR:WEIGHT (e.g. runs/a:0.7); two or more.
        #[arg(long, required = true)]
        adapter: Vec<String>,
        /// The PEFT adapter folder to write.
        #[arg(long)]
        out: PathBuf,
        /// Replace the adapter in --out if there is one.
        #[arg(long)]
        overwrite: bool,
    },
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
    /// A PEFT (or MLX-LM) adapter folder. Give it several times to answer with each adapter in
    /// turn, the base model loaded once; the base answers first then, unless --no-base.
    #[arg(long)]
    adapter: Vec<PathBuf>,
    /// With several adapters, leave the base model's answer out.
    #[arg(long)]
    no_base: bool,
    /// Print a JSON list of {"adapter": the folder, or null for the base, "text": the answer}.
    #[arg(long)]
    json: bool,
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
        Command::Mix { adapter, out, overwrite } => mix(&adapter, &out, overwrite).map(|_| done),
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
    let loras = args
        .adapter
        .iter()
        .map(|dir| weblora::lora::read_adapter_folder(&g, &model.config, dir))
        .collect::<Result<Vec<_>>>()?;
    // The answers: the base (none or several adapters, unless --no-base), then each adapter.
    let mut answers: Vec<(Option<String>, Option<&weblora::lora::Lora>)> = Vec::new();
    if loras.len() != 1 && !args.no_base {
        answers.push((None, None));
    }
    answers.extend(args.adapter.iter().zip(&loras).map(|(dir, l)| (Some(dir.display().to_string()), Some(l))));
    if answers.is_empty() {
        return Err(Error::Input("--no-base without --adapter leaves nothing to answer".into()));
    }
    let template = match (&template, args.raw) {
        (Some(src), false) => Some(weblora::data::ChatTemplate::for_model(&tok, Some(src))?),
        _ => None,
    };
    let prompt = chat_prompt(&tok, template.as_ref(), &args.prompt)?;
    let slots: Vec<_> = answers.iter().map(|(_, l)| *l).collect();
    let mut decoder = Decoder::with_adapters(&g, &model, &slots, prompt.len() + args.max_new_tokens)?;
    let sampling = Sampling {
        max_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
        seed: args.seed,
        stop: stop_tokens(&tok),
    };
    let mut texts = Vec::new();
    for i in 0..answers.len() {
        decoder.select(i)?;
        let out = pollster::block_on(generate(&decoder, &prompt, &sampling))?;
        texts.push(tok.decode(&out, true).map_err(|e| Error::Run(format!("decoding the answer: {e}")))?);
    }
    if args.json {
        let list: Vec<_> = answers
            .iter()
            .zip(&texts)
            .map(|((name, _), text)| serde_json::json!({ "adapter": name, "text": text }))
            .collect();
        say!("{}", serde_json::Value::Array(list));
    } else if let [text] = &texts[..] {
        say!("{text}");
    } else {
        for ((name, _), text) in answers.iter().zip(&texts) {
            say!("[{}]", name.as_deref().unwrap_or("base"));
            say!("{text}");
        }
    }
    Ok(())
}

/// Mixes the adapters of `specs` (DIR:WEIGHT each) as PEFT's `cat` combination and writes the
/// PEFT folder `out`.
fn mix(specs: &[String], out: &std::path::Path, overwrite: bool) -> Result<()> {
    if !overwrite && ["adapter_config.json", "adapter_model.safetensors"].iter().any(|f| out.join(f).exists()) {
        return Err(Error::Run(format!("{} holds an adapter already; give --overwrite to replace it", out.display())));
    }
    let mut adapters = Vec::new();
    for spec in specs {
        let weight = spec.rsplit_once(':').and_then(|(dir, w)| Some((dir, w.trim().parse::<f32>().ok()?)));
        let Some((dir, weight)) = weight else {
            return Err(Error::Input(format!("--adapter {spec:?}: expected DIR:WEIGHT, such as runs/a:0.7")));
        };
        adapters.push((weblora::lora::mix::read_host_adapter(std::path::Path::new(dir))?, weight));
    }
    let parts: Vec<_> = adapters.iter().map(|(a, w)| (a, *w)).collect();
    let mixed = weblora::lora::mix::mix_cat(&parts)?;
    weblora::lora::mix::write_host_adapter(&mixed, out)?;
    say!("mixed {} into {} ({})", mixed.name, out.display(), mixed.config.describe());
    Ok(())
}
