//! `mtkit profile NAME...` and `mtkit profile merge`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use mtkit::cli_support::args::{GlobalArgs, SbatchArgs};
use mtkit::cluster::slurm::{PartsSpec, ShardArray};
use mtkit::profile::spill::{default_memory, human_size, parse_size};
use mtkit::profile::{cached_or_write, NgramMode, ProfileOptions, SpillOptions, Written};
use mtkit::util::progress::InterruptGuard;

use super::CorpusArgs;
use mtkit::cli_support::bar::Bar;
use mtkit::cli_support::output::table;

/// Count token unigrams and n-grams of corpora.
///
/// Unigram counts are always exact. N-grams of order 2..N are exact by default, counted in
/// the memory --memory allows (past it, sorted runs go to disk and are merged, as KenLM
/// does); with --ngram-buckets B they are summed into B hashed buckets per order: fixed
/// memory, exact bucket sums, approximate n-gram similarities.
/// Profiles are parquet files (columns order, t1..tN, bucket, count; metadata in the
/// `mtkit.profile` key) cached by everything that decides their numbers.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ProfileArgs {
    #[command(subcommand)]
    sub: Option<ProfileSub>,
    /// Corpora to profile.
    #[arg(required = true)]
    names: Vec<String>,
    #[command(flatten)]
    ngrams: NgramArgs,
    /// Write the profile here (one corpus: a file; several: a folder of NAME.parquet files).
    #[arg(short, long, value_name = "PATH")]
    output: Option<PathBuf>,
    /// Memory for counting exact n-grams (e.g. 512M, 8G). When the counts would pass it, they
    /// are written to disk as sorted, compressed runs and merged into the profile at the end:
    /// the same file, in bounded memory. Default: a quarter of this machine's memory, at
    /// least 1G. The process needs about 300 MB more (tokenizer, batches in flight).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory: Option<u64>,
    /// Folder for the runs of --memory (a temporary folder inside it, removed when profiling
    /// ends, Ctrl-C included). Default: the folder of -o, else the cache folder.
    #[arg(long, value_name = "DIR")]
    tmp: Option<PathBuf>,
    #[command(flatten)]
    corpus: CorpusArgs,
    /// Profile on Slurm as a job array of N shards (each `--shard K/N` into OUT.parts/, marked
    /// done when written) and a merge job that waits for them (afterok) and writes -o OUT.
    /// Submits with sbatch and prints the job ids; running the same command again resubmits
    /// only the shards that are neither done nor queued. One corpus; -o FILE required.
    #[arg(long, value_name = "N")]
    slurm: Option<u32>,
    #[command(flatten)]
    sbatch: SbatchArgs,
    #[command(flatten)]
    array: super::shard_array::ArrayRunArgs,
}

/// N-gram counting options.
#[derive(Args, Debug, Clone)]
pub struct NgramArgs {
    /// Highest n-gram order to count (1: unigrams only).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub ngram: usize,
    /// Bounded mode: sum orders ≥ 2 into B hashed buckets per order (approximate).
    #[arg(long, value_name = "B")]
    pub ngram_buckets: Option<u64>,
}

impl NgramArgs {
    pub fn mode(&self) -> NgramMode {
        match self.ngram_buckets {
            Some(b) => NgramMode::Hashed { buckets: b },
            None => NgramMode::Exact,
        }
    }
}

#[derive(Subcommand, Debug)]
enum ProfileSub {
    /// Merge shard profiles of one corpus exactly (counts add): the N shards of `--shard K/N`
    /// merge into the profile of the whole.
    Merge {
        /// Shard profiles (parquet files written by `mtkit profile --shard K/N -o FILE`), or
        /// the parts folder of `mtkit profile --slurm N` (refused, naming the shards, until
        /// every shard is done).
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Output file.
        #[arg(short, long)]
        output: PathBuf,
        /// Write the merge even when the parts do not cover every shard of the split (by
        /// default that is an error naming the missing shards); the profile records which
        /// shards it covers, and `mtkit proximity` shows it.
        #[arg(long)]
        partial: bool,
    },
}

pub fn run(mut a: ProfileArgs, global: &GlobalArgs) -> Result<()> {
    a.names = mtkit::cli_support::args::named_once(&a.names);
    if let Some(ProfileSub::Merge {
        inputs,
        output,
        partial,
    }) = a.sub
    {
        return merge(inputs, &output, partial);
    }
    if let Some(n) = a.slurm {
        return submit_to_slurm(&a, n, global);
    }
    if a.sbatch.any() {
        bail!("--partition, --account, --time, --cpus-per-task, --mem, --gres and --sbatch-arg go with --slurm N");
    }
    mtkit::util::memory::prefer_small_pages();
    let cat = a.corpus.catalog_for(&a.names)?;
    let cards = cat.get_all(&a.names)?;
    let tok = a.corpus.tokenizer.load()?;
    let opts = ProfileOptions {
        sample: a.corpus.sample(),
        max_tokens_per_doc: a.corpus.max_tokens(),
        ngram: a.ngrams.ngram,
        ngram_mode: a.ngrams.mode(),
        keep_docs: false,
    };
    if let Some(out) = &a.output {
        if cards.len() > 1 && out.extension().map(|e| e == "parquet").unwrap_or(false) {
            bail!(
                "-o {} names a file, but {} corpora were given: pass a folder",
                out.display(),
                cards.len()
            );
        }
    }
    let memory = memory_budget(&a);
    // What each output is before any counting starts: an output that differs when this run is
    // about to write it was written by another run meanwhile (said, not silently replaced).
    let targets: Vec<Option<PathBuf>> = cards
        .iter()
        .map(|c| output_path(c.name.as_str(), a.output.as_deref(), a.names.len()))
        .collect();
    let befores: Vec<_> = targets
        .iter()
        .map(|t| t.as_deref().and_then(mtkit::util::paths::identity))
        .collect();
    // An output that cannot be written is found now, not after the counting.
    let spill = SpillOptions {
        memory,
        dir: run_folder(&a)?,
    };
    let bar = Bar::new(a.corpus.quiet);
    let mut rows = Vec::new();
    // Ctrl-C and SIGTERM stop the work instead of the process, so that spilled runs and
    // temporary files are removed.
    let _interrupt = InterruptGuard::install();
    for ((card, target), before) in cards.into_iter().zip(&targets).zip(&befores) {
        let w = cached_or_write(card, &tok, &opts, !a.corpus.no_cache, &bar, &spill)?;
        if let Some(t) = target {
            if mtkit::util::paths::identity(t) != *before {
                eprintln!(
                    "mtkit: warning: {} was written by another process while this one counted; this run's profile replaces it",
                    t.display()
                );
            }
        }
        if let Some(s) = &w.spilled {
            say_spilled(&card.name, s, &spill);
        }
        let written = save(&w, &card.name, a.output.as_deref(), a.names.len())?;
        rows.push(summary_row(&w, written));
    }
    // --quiet: no progress and no table (what a script or a Slurm task wants); errors and
    // skipped records still go to stderr.
    if a.corpus.quiet {
        return Ok(());
    }
    print!("{}", summary_table(&rows));
    Ok(())
}

/// The memory budget of exact n-gram counting: --memory (warned of when more than this
/// process can hold), else the default rule; said with -v.
fn memory_budget(a: &ProfileArgs) -> u64 {
    let limits = mtkit::util::memory::Limits::read();
    let memory = match a.memory {
        Some(m) => {
            if let Some(w) = mtkit::util::memory::over_limit_warning(m, "--memory") {
                eprintln!("mtkit: warning: {w}");
            }
            m
        }
        None => default_memory(),
    };
    mtkit::cli_support::args::verbose(format_args!(
        "memory budget for exact n-grams: {} ({}; limits: {})",
        human_size(memory),
        if a.memory.is_some() {
            "--memory"
        } else {
            "the default, a quarter of the smallest limit"
        },
        limits.describe()
    ));
    memory
}

/// Where spilled runs go (--tmp, else -o's folder, else the cache folder), after checking
/// that -o's folder can be written: found now, not after the counting.
fn run_folder(a: &ProfileArgs) -> Result<PathBuf> {
    let folder_of = |out: &Path| {
        if out.is_dir() {
            out.to_path_buf()
        } else {
            match out.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                _ => PathBuf::from("."),
            }
        }
    };
    if let Some(out) = &a.output {
        mtkit::util::paths::check_writable_folder(&folder_of(out))
            .with_context(|| format!("-o {}", out.display()))?;
    }
    Ok(match (&a.tmp, &a.output) {
        (Some(d), _) => d.clone(),
        (None, Some(out)) => folder_of(out),
        (None, None) => mtkit::util::paths::cache_dir(),
    })
}

/// -v: what counting over the budget took on disk.
fn say_spilled(corpus: &str, s: &mtkit::profile::SpillStats, spill: &SpillOptions) {
    mtkit::cli_support::args::verbose(format_args!(
        "{corpus}: exact n-grams over the --memory budget of {}: spilled {} times as {} runs, {} ({} bytes) of temporary disk in {}",
        human_size(spill.memory),
        s.spills,
        s.runs,
        human_size(s.bytes),
        s.bytes,
        spill.dir.display()
    ));
}

/// The summary printed after profiling, one row per corpus.
fn summary_table(rows: &[Vec<String>]) -> String {
    table(
        &[
            "corpus",
            "docs",
            "tokens",
            "bytes",
            "distinct ids",
            "skipped",
            "from",
            "profile",
        ],
        rows,
    )
}

/// `profile merge`: shard profiles (or a --slurm parts folder) into the whole's profile.
fn merge(inputs: Vec<PathBuf>, output: &Path, partial: bool) -> Result<()> {
    let inputs = match inputs.as_slice() {
        [dir] if dir.is_dir() => PartsSpec::complete_parts(dir)?,
        _ => inputs,
    };
    let bar = Bar::new(false);
    let merged = mtkit::profile::merge_files(&inputs, output, partial, &bar)?;
    let covers = match &merged.meta.shards {
        None => "the whole corpus".to_string(),
        Some(s) => format!(
            "shards {}",
            s.iter()
                .map(|x| x.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    println!(
        "merged {} {} of `{}` ({covers}): {} documents, {} tokens -> {}",
        inputs.len(),
        if inputs.len() == 1 {
            "profile"
        } else {
            "profiles"
        },
        merged.meta.corpus,
        merged.totals.documents,
        merged.totals.tokens,
        output.display()
    );
    Ok(())
}

/// Copies profile `w` of corpus `name` from the cache to where -o says (a file for one corpus,
/// else a folder of NAME.parquet files); without -o it stays in the cache. Returns where it
/// is.
fn save(w: &Written, name: &str, output: Option<&Path>, corpora: usize) -> Result<String> {
    let Some(target) = output_path(name, output, corpora) else {
        return Ok(w.path.display().to_string());
    };
    mtkit::util::paths::link_or_copy_atomic(&w.path, &target)
        .with_context(|| format!("cannot put the profile cache {} at -o", w.path.display()))?;
    Ok(target.display().to_string())
}

/// Where -o puts the profile of corpus `name`: the file -o names for one corpus, else
/// NAME.parquet in the folder -o names; `None` without -o.
fn output_path(name: &str, output: Option<&Path>, corpora: usize) -> Option<PathBuf> {
    match output {
        Some(out) if corpora == 1 && !out.is_dir() => Some(out.to_path_buf()),
        Some(dir) => Some(dir.join(format!("{name}.parquet"))),
        None => None,
    }
}

/// A corpus's row of the summary table (bad records skipped are also named on stderr).
fn summary_row(w: &Written, written: String) -> Vec<String> {
    let skipped: u64 = w.totals.skipped.values().sum();
    if let Some(note) = mtkit::cli_support::output::skipped_note(
        &w.meta.corpus,
        &w.totals.skipped,
        &w.skipped_examples,
    ) {
        eprintln!("{note}");
    }
    vec![
        w.meta.corpus.clone(),
        w.totals.documents.to_string(),
        w.totals.tokens.to_string(),
        w.totals.bytes.to_string(),
        w.distinct_ids.to_string(),
        skipped.to_string(),
        if w.cached { "cache" } else { "computed" }.into(),
        written,
    ]
}

/// What one shard task runs, built from the parsed options: the global options, then
/// `profile CORPUS` and every sampling, tokenizer and n-gram option once (paths absolute),
/// never the user's argv (which may hold -q, which the task adds itself as --quiet).
fn task_args(a: &ProfileArgs, corpus: &str, global: &GlobalArgs) -> Vec<String> {
    let mut v = global.to_args();
    v.extend(["profile".to_string(), corpus.to_string()]);
    v.extend(a.corpus.to_args());
    v.extend(["--ngram".to_string(), a.ngrams.ngram.to_string()]);
    if let Some(b) = a.ngrams.ngram_buckets {
        v.extend(["--ngram-buckets".to_string(), b.to_string()]);
    }
    // Each task's budget, explicitly: --memory as given, else the default rule applied to the
    // job's --mem (a task's own reading of the node would see the whole node where the job
    // is not confined by a cgroup, and be OOM-killed instead of spilling).
    let memory = a.memory.or_else(|| {
        let mem = mtkit::util::memory::parse_slurm_mem(a.sbatch.mem.as_deref()?)?;
        Some(
            mtkit::util::memory::Limits {
                slurm: Some(mem),
                ..Default::default()
            }
            .default_budget(),
        )
    });
    if let Some(m) = memory {
        v.extend(["--memory".to_string(), m.to_string()]);
    }
    if let Some(t) = &a.tmp {
        let t = std::path::absolute(t).unwrap_or_else(|_| t.clone());
        v.extend(["--tmp".to_string(), t.display().to_string()]);
    }
    v
}

/// `--slurm N`: the job array and the merge job (printed with --dry-run, else submitted).
fn submit_to_slurm(a: &ProfileArgs, n: u32, global: &GlobalArgs) -> Result<()> {
    if n < 1 {
        bail!("--slurm needs N ≥ 1 shards");
    }
    let (Some(out), [corpus]) = (&a.output, a.names.as_slice()) else {
        bail!("--slurm profiles one corpus into one file: give one NAME and -o FILE.parquet");
    };
    if a.corpus.shard.is_some() {
        bail!("--slurm N makes the shards itself; leave out --shard");
    }
    // The card must exist before anything is submitted, and every shard must get records.
    let cat = a.corpus.catalog_for(std::slice::from_ref(corpus))?;
    let card = cat.get(corpus)?;
    super::shard_array::check_shards(n, &[card])?;
    let output = std::path::absolute(out)?;
    let job = ShardArray {
        name: corpus.clone(),
        spec: PartsSpec {
            command: "profile".into(),
            args: task_args(a, corpus, global),
            shards: n,
        },
        merge_flags: vec!["-o".into(), output.display().to_string()],
        output,
        mtkit: std::env::current_exe()?,
        workdir: std::env::current_dir()?,
        slurm: a.sbatch.options(),
    };
    super::shard_array::run(&job, n, &a.array, a.corpus.quiet)
}
