//! `mtkit model info|export|generate`: model shapes, Hugging Face folders out, greedy ids.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};

use mtkit::cli_support::args::TokenizerArgs;
use mtkit::cli_support::output::table;
use mtkit_train::hf;
use mtkit_train::model::files as model_files;
use mtkit_train::model::{ModelSpec, PRESETS};
use mtkit_train::trainer::device;

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Parameter counts of a preset (total and non-embedding).
    Info {
        /// Preset name, or `all`.
        preset: String,
        /// Vocabulary size before padding to a multiple of 128.
        #[arg(long, default_value_t = 50_280)]
        vocab: usize,
    },
    Export(ExportArgs),
    Generate(GenerateArgs),
    Pull(PullArgs),
}

/// Download a checkpoint folder (config, tokenizer, safetensors weights) from the Hugging Face
/// Hub into Hugging Face's cache (HF_HOME, the cache Python's huggingface_hub uses: files
/// already there are not fetched again), and print the folder, which `mtkit train --init` and
/// `init = ...` take. HF_ENDPOINT and HF_TOKEN are honoured. Pythia's intermediate checkpoints
/// are revisions: `mtkit model pull EleutherAI/pythia-70m --revision step100000`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// Repository, e.g. EleutherAI/pythia-70m.
    repo: String,
    /// Branch, tag or commit.
    #[arg(long, default_value = "main")]
    revision: String,
    /// Also make DIR a link to the folder (replaced if it is a link already).
    #[arg(short, long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// No progress bars.
    #[arg(long, short)]
    quiet: bool,
}

/// Formats a model can be exported to.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ExportFormat {
    /// A Hugging Face GPT-NeoX folder (transformers' GPTNeoXForCausalLM).
    Hf,
}

/// Write a trained model as a Hugging Face GPT-NeoX folder: config.json (every shape key set),
/// model.safetensors (transformers' names, fp32), the tokenizer the run's data was tokenized
/// with, and AdamW's state for runs that start from the folder (`--init`). transformers loads
/// it with `AutoModelForCausalLM.from_pretrained(DIR)`; evaluate it with
/// `lm_eval --model hf --model_args pretrained=DIR`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A checkpoint file (`checkpoints/step-NNNNNNNN.safetensors`) or a run folder (its newest
    /// checkpoint is taken).
    checkpoint: PathBuf,
    /// Target format.
    #[arg(long, value_enum, default_value = "hf")]
    to: ExportFormat,
    /// Folder to write (written beside it first, then renamed into place).
    #[arg(short, long, value_name = "DIR")]
    out: PathBuf,
    /// Replace an existing folder.
    #[arg(long)]
    force: bool,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
}

/// Greedy decoding from a prompt of token ids; prints the new ids, comma-separated, on one
/// line. Stops after the model's end-of-text id (as transformers' `generate` does) unless
/// --no-eos, and at the end of the model's context (max_position_embeddings; for an mtkit
/// checkpoint its longest training sequence or 2,048): a prompt that fills it is refused, and
/// --max-new-tokens is cut to what is left, with a note.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A Hugging Face folder, a checkpoint file, or a run folder (its newest checkpoint).
    model: PathBuf,
    /// Prompt token ids, comma-separated.
    #[arg(
        long,
        value_name = "IDS",
        value_delimiter = ',',
        required_unless_present = "prompt_ids_file",
        conflicts_with = "prompt_ids_file"
    )]
    prompt_ids: Vec<i64>,
    /// A file of prompt token ids separated by commas, spaces or newlines (for prompts too long
    /// for a command line).
    #[arg(long, value_name = "FILE")]
    prompt_ids_file: Option<PathBuf>,
    /// Most ids to generate.
    #[arg(long, default_value_t = 20)]
    max_new_tokens: usize,
    /// End-of-text id to stop at [default: config.json's eos_token_id for a Hugging Face
    /// folder, the data's end-of-document id for an mtkit checkpoint].
    #[arg(long, value_name = "ID")]
    eos: Option<i64>,
    /// Do not stop at an end-of-text id.
    #[arg(long, conflicts_with = "eos")]
    no_eos: bool,
    /// cpu, cuda, or auto.
    #[arg(long, default_value = "cpu")]
    device: String,
}

pub fn run(cmd: ModelCommand) -> Result<()> {
    match cmd {
        ModelCommand::Info { preset, vocab } => info(&preset, vocab),
        ModelCommand::Export(a) => export(a),
        ModelCommand::Generate(a) => generate(a),
        ModelCommand::Pull(a) => pull(a),
    }
}

fn pull(a: PullArgs) -> Result<()> {
    let p = mtkit::hf::hub::pull_model(&a.repo, &a.revision, !a.quiet)?;
    let shape = match hf::read_model(&p.dir) {
        Ok(m) => format!(
            "GPT-NeoX, {} layers, d_model {}, {} heads, vocabulary {}",
            m.spec.layers, m.spec.d_model, m.spec.heads, m.spec.vocab
        ),
        Err(e) => format!("not importable by mtkit: {e:#}"),
    };
    if let Some(out) = &a.out {
        link_folder(&p.dir, out)?;
    }
    println!(
        "{}@{}: {} ({} files, {} fetched, {} from the cache; {shape})",
        a.repo,
        a.revision,
        a.out.as_ref().unwrap_or(&p.dir).display(),
        p.files.len(),
        p.fetched,
        p.files.len() - p.fetched
    );
    Ok(())
}

/// Makes `link` a symbolic link to `target`, atomically (a link made beside it and renamed).
fn link_folder(target: &std::path::Path, link: &std::path::Path) -> Result<()> {
    if link.exists() && !link.is_symlink() {
        bail!(
            "{} exists and is not a link; choose another -o",
            link.display()
        );
    }
    let tmp = link.with_file_name(format!(
        ".{}.mtkit-{}.link",
        link.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id()
    ));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp)
        .map_err(|e| anyhow::anyhow!("cannot link {}: {e}", link.display()))?;
    std::fs::rename(&tmp, link)
        .map_err(|e| anyhow::anyhow!("cannot link {}: {e}", link.display()))?;
    Ok(())
}

fn export(a: ExportArgs) -> Result<()> {
    let ExportFormat::Hf = a.to;
    let src = model_files::open(&a.checkpoint)?;
    let tok = a.tokenizer.load()?;
    let done = hf::export(&src, &tok, &a.out, a.force)?;
    println!(
        "wrote {} ({} parameters; {}): load it with transformers' AutoModelForCausalLM.from_pretrained",
        a.out.display(),
        done.parameters,
        done.files.join(", ")
    );
    Ok(())
}

/// The ids of a --prompt-ids-file: separated by commas or whitespace; errors name the file and
/// the position of the first that is not an integer.
fn read_prompt_ids(path: &Path) -> Result<Vec<i64>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --prompt-ids-file {}", path.display()))?;
    text.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|t| !t.is_empty())
        .enumerate()
        .map(|(i, t)| {
            t.parse::<i64>().map_err(|_| {
                anyhow::anyhow!(
                    "{}: `{t}` (id {} of the file) is not an integer token id",
                    path.display(),
                    i + 1
                )
            })
        })
        .collect()
}

fn generate(a: GenerateArgs) -> Result<()> {
    let (prompt, from) = match &a.prompt_ids_file {
        Some(f) => (
            read_prompt_ids(f)?,
            format!("--prompt-ids-file {}", f.display()),
        ),
        None => (a.prompt_ids.clone(), "--prompt-ids".to_string()),
    };
    if prompt.is_empty() {
        bail!("{from}: the prompt holds no ids");
    }
    let src = model_files::open(&a.model)?;
    if let Some((i, &bad)) = prompt
        .iter()
        .enumerate()
        .find(|(_, &id)| id < 0 || id >= src.spec.vocab)
    {
        bail!(
            "{from}: {bad} (id {} of the prompt) is not an id of the model's vocabulary (0..{})",
            i + 1,
            src.spec.vocab
        );
    }
    let context = src.context() as usize;
    if prompt.len() >= context {
        bail!(
            "{from}: the prompt has {} ids, which fill the model's context of {context} positions (max_position_embeddings), so nothing can be generated; shorten the prompt",
            prompt.len()
        );
    }
    let room = context - prompt.len();
    let max_new = a.max_new_tokens.min(room);
    if max_new < a.max_new_tokens {
        eprintln!(
            "note: generating at most {max_new} ids: the model's context of {context} positions ends there"
        );
    }
    let eos = if a.no_eos { None } else { a.eos.or(src.eos_id) };
    let dev = device(&a.device)?;
    let (_vs, model) = model_files::build(&src, dev)?;
    let ids = model.generate_greedy(&prompt, max_new, eos, dev);
    let text: Vec<String> = ids.iter().map(i64::to_string).collect();
    println!("{}", text.join(","));
    Ok(())
}

fn info(preset: &str, vocab: usize) -> Result<()> {
    let names: Vec<&str> = if preset == "all" {
        PRESETS.iter().map(|p| p.0).collect()
    } else {
        vec![preset]
    };
    let mut rows = Vec::new();
    for n in names {
        let s = ModelSpec::preset(n, vocab)?;
        let (total, non_emb) = s.param_counts();
        rows.push(vec![
            n.to_string(),
            s.layers.to_string(),
            s.d_model.to_string(),
            s.heads.to_string(),
            s.vocab.to_string(),
            total.to_string(),
            non_emb.to_string(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "preset",
                "layers",
                "d_model",
                "heads",
                "vocab",
                "parameters",
                "non-embedding"
            ],
            &rows
        )
    );
    Ok(())
}
