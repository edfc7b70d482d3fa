//! Options that several commands share, for both binaries (`mtkit`, `mtkit-train`).

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

use crate::data::catalog::Catalog;
use crate::data::corpus::{SampleSpec, Shard};
use crate::profile::{PAPER_MAX_CHARS, PAPER_MAX_DOCS, PAPER_MAX_TOKENS_PER_DOC};
use crate::tokenize::{EngineChoice, Tokenizer};

pub(crate) static VERBOSE: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Turns -v on or off for this process.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
    crate::util::progress::list_every_skipped(on);
}

/// Prints a line on stderr when -v was given.
pub fn verbose(line: impl std::fmt::Display) {
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("mtkit: {line}");
    }
}

/// `names` with each repeat left out, in the order given: a corpus named twice is read once
/// (and written once), which is said once per name on stderr.
pub fn named_once(names: &[String]) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    let mut said = std::collections::HashSet::new();
    let mut once = Vec::new();
    for n in names {
        if seen.insert(n.as_str()) {
            once.push(n.clone());
        } else if said.insert(n.as_str()) {
            eprintln!("mtkit: note: `{n}` is named more than once; it is read once");
        }
    }
    once
}

/// The tokenizer options of every command that tokenizes.
#[derive(Args, Debug, Clone)]
pub struct TokenizerArgs {
    /// tokenizer.json to use [default: the GPT-NeoX-20B (Pythia) tokenizer installed by
    /// `make setup` in the cache]
    #[arg(long, value_name = "PATH", env = "MTKIT_TOKENIZER")]
    pub tokenizer: Option<PathBuf>,
    /// Encoder: `fast` is mtkit's path for byte-level BPE tokenizers (GPT-NeoX, GPT-2 and
    /// their family), many times faster with ids identical to HF tokenizers'; `hf` is HF
    /// tokenizers' own pipeline; `auto` takes the fast path when it covers the tokenizer
    /// exactly (-v says which ran; profiles record it).
    #[arg(
        long,
        value_name = "auto|fast|hf",
        default_value = "auto",
        env = "MTKIT_ENCODER"
    )]
    pub encoder: EngineChoice,
}

/// An absolute form of `p` (relative to the current folder), as a job running elsewhere needs it.
fn absolute(p: &std::path::Path) -> String {
    std::path::absolute(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

impl TokenizerArgs {
    /// These options as command-line arguments for a job that runs the same command (paths
    /// made absolute; the tokenizer only when one was named, by flag or MTKIT_TOKENIZER).
    pub fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(t) = &self.tokenizer {
            v.extend(["--tokenizer".into(), absolute(t)]);
        }
        let engine = match self.encoder {
            EngineChoice::Auto => "auto",
            EngineChoice::Fast => "fast",
            EngineChoice::Hf => "hf",
        };
        v.extend(["--encoder".into(), engine.into()]);
        v
    }

    /// Loads the tokenizer (and says which engine encodes, with -v).
    pub fn load(&self) -> Result<Tokenizer> {
        let tok = Tokenizer::load_with(self.tokenizer.as_deref(), self.encoder)?;
        verbose(format_args!(
            "tokenizer {} (sha256 {}, {} ids); {}",
            tok.path.display(),
            &tok.sha256[..16],
            tok.vocab_size,
            tok.describe_engine()
        ));
        Ok(tok)
    }
}

/// `--max-docs N|all`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MaxDocs(pub Option<u64>);

impl std::fmt::Display for MaxDocs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("all"),
        }
    }
}

impl std::str::FromStr for MaxDocs {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> Result<MaxDocs> {
        if s == "all" {
            return Ok(MaxDocs(None));
        }
        match s.replace('_', "").parse::<u64>() {
            Ok(0) | Err(_) => bail!("expected a positive number of documents or `all`, got {s:?}"),
            Ok(n) => Ok(MaxDocs(Some(n))),
        }
    }
}

/// `--catalog FILE` (repeatable): every command that names corpora takes it.
#[derive(Args, Debug, Clone)]
pub struct CatalogArgs {
    /// A catalog file that adds or overrides dataset cards ([datasets.NAME] tables); repeatable.
    /// Also read from MTKIT_CATALOG (a ':'-separated list), before these.
    #[arg(long = "catalog", value_name = "FILE")]
    pub catalogs: Vec<PathBuf>,
    /// How a record of a corpus given as a path (a file, folder or glob instead of a card
    /// name; named after the file) becomes text: a template of its fields, e.g.
    /// "{question}\n{answer}", for every such corpus of the command (cards keep their own).
    #[arg(long, value_name = "TEMPLATE", default_value = "{text}")]
    pub text: String,
}

impl CatalogArgs {
    /// `--catalog FILE` for each file, made absolute (MTKIT_CATALOG is left to the job's
    /// environment, which sbatch passes on).
    pub fn to_args(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .catalogs
            .iter()
            .flat_map(|c| ["--catalog".to_string(), absolute(c)])
            .collect();
        if self.text != "{text}" {
            v.extend(["--text".to_string(), self.text.clone()]);
        }
        v
    }

    /// [`CatalogArgs::load`], with each of `names` that is no card but a path (a file, a
    /// folder, a glob) added as a corpus of its own ([`Catalog::add_paths`], `--text`).
    pub fn load_for<S: AsRef<str>>(&self, names: &[S]) -> Result<Catalog> {
        let mut cat = self.load()?;
        cat.add_paths(names, &self.text);
        Ok(cat)
    }

    /// The catalog: built-in cards, MTKIT_CATALOG, then --catalog files.
    pub fn load(&self) -> Result<Catalog> {
        Catalog::load(&self.catalogs)
    }
}

/// Which documents of a corpus are read, and what a bad record does: shared by every command
/// that reads corpora (`tokenize` changes the defaults of --max-docs and --seed's help).
#[derive(Args, Debug, Clone)]
pub struct SampleArgs {
    /// Documents sampled per corpus (uniformly, by --seed), or `all` for every document in
    /// corpus order. The paper's measurement uses 1000.
    #[arg(long, value_name = "N|all", default_value_t = MaxDocs(Some(PAPER_MAX_DOCS)))]
    pub max_docs: MaxDocs,
    /// Seed of the document sample (and of bootstrap resampling).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Fail on the first bad record (malformed JSON, missing field, invalid UTF-8, truncated
    /// stream) instead of skipping and counting it.
    #[arg(long)]
    pub strict: bool,
}

impl SampleArgs {
    /// These options as command-line arguments, every one written out.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--max-docs".into(),
            self.max_docs.to_string(),
            "--seed".into(),
            self.seed.to_string(),
        ];
        if self.strict {
            v.push("--strict".into());
        }
        v
    }

    /// Whole documents, the whole corpus (no cut, no shard), sampled as these options say.
    pub fn spec(&self) -> SampleSpec {
        SampleSpec {
            max_docs: self.max_docs.0,
            seed: self.seed,
            max_chars: None,
            shard: None,
            strict: self.strict,
        }
    }
}

/// Options shared by every command that reads corpora.
#[derive(Args, Debug, Clone)]
pub struct CorpusArgs {
    #[command(flatten)]
    pub catalog: CatalogArgs,
    #[command(flatten)]
    pub tokenizer: TokenizerArgs,
    #[command(flatten)]
    pub sample: SampleArgs,
    /// Cut each document to its first C characters before tokenizing (0: no cut).
    #[arg(long, value_name = "C", default_value_t = PAPER_MAX_CHARS)]
    pub max_chars: usize,
    /// Keep each document's first K tokens (0: no cut).
    #[arg(long, value_name = "K", default_value_t = PAPER_MAX_TOKENS_PER_DOC)]
    pub max_tokens_per_doc: usize,
    /// Only shard K of N (1-based): the records whose index is K-1 modulo N. The N shards are
    /// disjoint and together are the whole corpus; merge their profiles with `profile merge`.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<Shard>,
    /// Recompute profiles even when a cached one matches.
    #[arg(long)]
    pub no_cache: bool,
    /// Only the result: no progress bars, and no summary of files written (`profile -o`,
    /// `tokenize`) or table beside an `--emit`ted config; a command whose result is a table
    /// (`proximity`, `suggest-mix`) still prints it. Warnings and errors still go to stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

impl CorpusArgs {
    /// These options as command-line arguments for a job that reads the same documents the
    /// same way: built from the parsed values (each option once, whatever the user typed),
    /// without --shard and --quiet, which the job sets itself.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = self.catalog.to_args();
        v.extend(self.tokenizer.to_args());
        v.extend(self.sample.to_args());
        v.extend([
            "--max-chars".into(),
            self.max_chars.to_string(),
            "--max-tokens-per-doc".into(),
            self.max_tokens_per_doc.to_string(),
        ]);
        if self.no_cache {
            v.push("--no-cache".into());
        }
        v
    }

    /// The catalog: built-in cards, MTKIT_CATALOG, then --catalog files.
    pub fn catalog(&self) -> Result<Catalog> {
        self.catalog.load()
    }

    /// The catalog with `names` that are paths added as corpora ([`CatalogArgs::load_for`]).
    pub fn catalog_for<S: AsRef<str>>(&self, names: &[S]) -> Result<Catalog> {
        self.catalog.load_for(names)
    }

    /// The sample spec these options describe.
    pub fn sample(&self) -> SampleSpec {
        SampleSpec {
            max_chars: (self.max_chars > 0).then_some(self.max_chars),
            shard: self.shard,
            ..self.sample.spec()
        }
    }

    /// Tokens kept per document.
    pub fn max_tokens(&self) -> Option<usize> {
        (self.max_tokens_per_doc > 0).then_some(self.max_tokens_per_doc)
    }
}

/// Cuts of each document for the commands that read whole documents unless told otherwise
/// (score, select, overlap; profile's defaults cut, see [`CorpusArgs`]).
#[derive(Args, Debug, Clone)]
pub struct WholeDocumentCuts {
    /// Cut each document to its first C characters before tokenizing (0: no cut).
    #[arg(long, value_name = "C", default_value_t = 0)]
    pub max_chars: usize,
    /// Keep each document's first K tokens (0: no cut).
    #[arg(long, value_name = "K", default_value_t = 0)]
    pub max_tokens_per_doc: usize,
}

impl WholeDocumentCuts {
    /// The character cut, None for none.
    pub fn max_chars(&self) -> Option<usize> {
        (self.max_chars > 0).then_some(self.max_chars)
    }

    /// The token cut, None for none.
    pub fn max_tokens(&self) -> Option<usize> {
        (self.max_tokens_per_doc > 0).then_some(self.max_tokens_per_doc)
    }
}

/// The options every command of both binaries takes.
#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Worker threads for tokenizing and counting (one more thread reads the corpus) and for
    /// LibTorch on CPU. Default: one per core.
    #[arg(long, global = true, value_name = "N", env = "MTKIT_THREADS")]
    pub threads: Option<usize>,
    /// Say more on stderr: which tokenizer and encoder ran, and why.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,
}

impl GlobalArgs {
    /// Turns -v on and sizes rayon's pool.
    pub fn apply(&self) -> Result<()> {
        set_verbose(self.verbose);
        if let Some(n) = self.threads {
            // Each worker holds its own tables (and a thread's stack): a count far past any
            // machine's cores is a mistake, refused before a thread or table is made.
            const MAX_THREADS: usize = 4096;
            if n == 0 || n > MAX_THREADS {
                bail!("--threads must be at least 1 and at most {MAX_THREADS}, got {n}");
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .map_err(|e| anyhow::anyhow!("cannot start {n} worker threads: {e}"))?;
        }
        Ok(())
    }

    /// These options as arguments, to pass on to `mtkit-train` or into a job's command line.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = Vec::new();
        if let Some(n) = self.threads {
            v.extend(["--threads".into(), n.to_string()]);
        }
        if self.verbose {
            v.push("-v".into());
        }
        v
    }
}

/// Slurm resource requests, for commands that submit jobs.
#[derive(Args, Debug, Clone, Default)]
pub struct SbatchArgs {
    /// Slurm partition.
    #[arg(long, value_name = "NAME")]
    pub partition: Option<String>,
    /// Slurm account.
    #[arg(long, value_name = "NAME")]
    pub account: Option<String>,
    /// Time limit per job (Slurm's formats: MM, HH:MM:SS, D-HH:MM).
    #[arg(long, value_name = "TIME")]
    pub time: Option<String>,
    /// CPUs per task (mtkit's threads follow Slurm's allotment).
    #[arg(long, value_name = "N")]
    pub cpus_per_task: Option<u32>,
    /// Memory per node (e.g. 16G).
    #[arg(long, value_name = "SIZE")]
    pub mem: Option<String>,
    /// Generic resources (e.g. gpu:1).
    #[arg(long, value_name = "GRES")]
    pub gres: Option<String>,
    /// Any other sbatch option, written into each script as given (repeatable), e.g.
    /// --sbatch-arg=--qos=high.
    #[arg(long, value_name = "OPTION", allow_hyphen_values = true)]
    pub sbatch_arg: Vec<String>,
}

impl SbatchArgs {
    /// The options as the slurm module takes them.
    pub fn options(&self) -> crate::cluster::slurm::SlurmOptions {
        crate::cluster::slurm::SlurmOptions {
            partition: self.partition.clone(),
            account: self.account.clone(),
            time: self.time.clone(),
            cpus_per_task: self.cpus_per_task,
            mem: self.mem.clone(),
            gres: self.gres.clone(),
            extra: self.sbatch_arg.clone(),
        }
    }

    /// Whether any option was given (they mean nothing without --slurm).
    pub fn any(&self) -> bool {
        self.partition.is_some()
            || self.account.is_some()
            || self.time.is_some()
            || self.cpus_per_task.is_some()
            || self.mem.is_some()
            || self.gres.is_some()
            || !self.sbatch_arg.is_empty()
    }
}
