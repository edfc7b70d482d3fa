//! `mtkit suggest-mix`: midtraining mixtures from proximity, exported to trainers.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use mtkit::analysis::mix::{suggest_from_profiles, Budget, Request, Suggestion};
use mtkit::analysis::proximity::Metric;
use mtkit::export::emit::{Emit, EmitOptions, Exportable};
use mtkit::profile::{cached_or_build, NgramMode, ProfileOptions};

use super::CorpusArgs;
use mtkit::cli_support::bar::Bar;
use mtkit::cli_support::output::{sig, table};

/// Propose midtraining mixtures: which data, what weight, from which step.
///
/// Searches mixtures q = w0·P + Σ wi·Mi (token weights; q's unigram distribution is exact) for
/// the highest PA(q → T) = sim(q,T) − sim(P,T), subject to: w0 ≥ --min-general; the specialized
/// share 1 − w0 at most what the timing rule allows at the start step (early introduction
/// tolerates high weights, late needs low: 80% up to 10% of the run, falling linearly to 10% at
/// 82%, 5% at the end); each source's tokens from the start to the end at most available ×
/// --max-repeat. Optimizer: projected gradient ascent on the constrained simplex with exact
/// projection; for `paper`, refined over every set of active sources (its jaccard part is
/// piecewise constant). Proposals are ranked by PA; `*` marks the Pareto front of (PA,
/// distance of q from P), the forgetting side; mixtures with every weight within 1e-4 are one
/// proposal.
#[derive(Args, Debug)]
// Numbers such as `--min-general -0.5` are values (and refused by range), not flags.
#[command(allow_negative_numbers = true)]
pub struct SuggestArgs {
    /// The pretraining (general) corpus P.
    #[arg(long)]
    pretrain: String,
    /// Candidate midtraining corpora, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    candidates: Vec<String>,
    /// The fine-tuning target T.
    #[arg(long)]
    target: String,
    /// Optimizer steps of the whole run (the paper: 61,035).
    #[arg(long, default_value_t = 61_035)]
    total_steps: u64,
    /// Tokens per step (the paper: 1,024 × 2,048).
    #[arg(long, default_value_t = 2_097_152)]
    tokens_per_step: u64,
    /// Tokens available per source, e.g. starcoder=2.5e11,math=3e8 [default: the card's
    /// `tokens`, else the tokens measured in the profile].
    #[arg(long, value_delimiter = ',', value_name = "NAME=TOKENS")]
    available: Vec<String>,
    /// Times a source may be repeated.
    #[arg(long, default_value_t = 4.0)]
    max_repeat: f64,
    /// Smallest general share w0.
    #[arg(long, default_value_t = 0.2)]
    min_general: f64,
    /// Smallest share of a source that is in the mixture at all (for `paper`, whose jaccard
    /// part counts any source with a positive weight).
    #[arg(long, default_value_t = 0.01)]
    min_weight: f64,
    /// Start of midtraining as a fraction of the run, or `auto` (searches 0.1 to 0.9).
    #[arg(long, default_value = "auto")]
    start: String,
    /// Proposals to show.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Similarity metric (paper, cosine, jsd, js-sim).
    #[arg(long, default_value = "paper")]
    metric: Metric,
    /// Runs table (CSV with `pa` and `ri` columns) to predict each proposal's relative
    /// improvement from the regression of gain on PA; with `start_frac` and `weight` columns
    /// too, its runs replace the timing rule.
    #[arg(long, value_name = "RUNS.csv")]
    fit: Option<PathBuf>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Print only the top proposal as a trainer config (the table goes to stderr).
    #[arg(long, value_enum)]
    emit: Option<Emit>,
    /// mtkit export: model preset.
    #[arg(long, default_value = "pythia-70m")]
    preset: String,
    /// mtkit and olmo-core exports: sequence length (batch = tokens per step / this).
    #[arg(long, default_value_t = 2048)]
    seq_len: u64,
    /// Folder of tokenized corpora (`mtkit tokenize -o DIR`): the mtkit export's `data`; for
    /// olmo-core, megatron and litgpt, the files `mtkit tokenize --format ...` wrote there, named
    /// in the export with their tokens (or with the command that makes them) [default: tokens].
    #[arg(long, value_name = "DIR")]
    data: Option<String>,
    /// mtkit export: peak learning rate.
    #[arg(long, default_value_t = 3e-4)]
    lr: f64,
    /// mtkit export: SFT epochs on the target.
    #[arg(long, default_value_t = 4.0)]
    sft_epochs: f64,
    #[command(flatten)]
    corpus: CorpusArgs,
}

pub fn run(a: SuggestArgs) -> Result<()> {
    // Ctrl-C and SIGTERM stop the work (readers check between records) instead of the
    // process, so that temporary files and folders are removed on the way out.
    let _interrupt = mtkit::util::progress::InterruptGuard::install();
    // Profiles of corpora not yet cached are counted here too (see `profile`).
    mtkit::util::memory::prefer_small_pages();
    let budget = Budget {
        total_steps: a.total_steps,
        tokens_per_step: a.tokens_per_step,
        max_repeat: a.max_repeat,
        min_general: a.min_general,
    };
    let request = Request::new(
        &a.pretrain,
        &a.candidates,
        &a.target,
        budget,
        a.metric,
        a.min_weight,
        &a.start,
        &a.available,
    )?;
    let cat = a.corpus.catalog_for(&request.corpora())?;
    let cards = cat.get_all(&request.corpora())?;
    let tok = a.corpus.tokenizer.load()?;
    let opts = ProfileOptions {
        sample: a.corpus.sample(),
        max_tokens_per_doc: a.corpus.max_tokens(),
        ngram: 1,
        ngram_mode: NgramMode::Exact,
        keep_docs: false,
    };
    let bar = Bar::new(a.corpus.quiet);
    let profiles: Vec<_> = cards
        .iter()
        .map(|c| cached_or_build(c, &tok, &opts, !a.corpus.no_cache, &bar).map(|x| x.0))
        .collect::<Result<_>>()?;
    let card_tokens: Vec<Option<u64>> = cards.iter().map(|c| c.tokens).collect();
    let found = suggest_from_profiles(
        &request,
        &profiles,
        &card_tokens,
        a.fit.as_deref(),
        a.top,
        &bar,
    )?;
    let text = human(&found, &a);
    if let Some(e) = a.emit {
        // The config is the result (stdout); the table says where it came from (stderr),
        // unless --quiet asks for the result alone.
        if !a.corpus.quiet {
            eprint!("{text}");
        }
        print!("{}", emit(e, &found, &a)?);
    } else if a.json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else {
        print!("{text}");
    }
    Ok(())
}

/// The top proposal as a config of trainer `e`.
fn emit(e: Emit, found: &Suggestion, a: &SuggestArgs) -> Result<String> {
    let x = Exportable {
        proposal: found.proposals[0].clone(),
        sources: found.sources.clone(),
        target: a.target.clone(),
        total_steps: a.total_steps,
        tokens_per_step: a.tokens_per_step,
        max_repeat: a.max_repeat,
    };
    let o = EmitOptions {
        preset: a.preset.clone(),
        seq_len: a.seq_len,
        data: a.data.clone(),
        lr: a.lr,
        sft_epochs: a.sft_epochs,
        tokenize_args: tokenize_args(&a.corpus),
    };
    mtkit::export::emit::emit(e, &x, &o)
}

fn human(found: &Suggestion, a: &SuggestArgs) -> String {
    let (props, sources, rule) = (&found.proposals, &found.sources, &found.timing_rule);
    let mut rows = Vec::new();
    for (i, p) in props.iter().enumerate() {
        let w: Vec<String> = p
            .weights
            .iter()
            .filter(|x| x.1 > 5e-5)
            .map(|(n, x)| format!("{n} {}", sig(*x, 3)))
            .collect();
        let rep: Vec<String> = p
            .repetition
            .iter()
            .zip(&p.tokens)
            .skip(1)
            .filter(|(_, t)| t.1 > 0.0)
            .map(|((n, r), t)| format!("{n} {:.2e} tok ×{}", t.1, sig(*r, 3)))
            .collect();
        let mut row = vec![
            format!("{}{}", i + 1, if p.pareto { "*" } else { "" }),
            format!("{} ({:.0}%)", p.start_step, p.start_fraction * 100.0),
            w.join(", "),
            format!("{:+.5}", p.pa),
            format!("{:.5}", p.distance_from_p),
            rep.join("; "),
        ];
        if let Some((y, lo, hi)) = p.predicted_ri {
            row.push(format!("{:+.4} [{:+.4}, {:+.4}]", y, lo, hi));
        }
        rows.push(row);
    }
    let mut header = vec![
        "rank",
        "start step",
        "weights (tokens)",
        "PA of q",
        "dist from P",
        "specialized tokens, repetition",
    ];
    if props.iter().any(|p| p.predicted_ri.is_some()) {
        header.push("predicted RI [95% PI]");
    }
    let mut s = format!(
        "suggest-mix: P = {}, T = {}, metric {}; sim(P,T) = {:.6}; {} steps × {} tokens; timing rule: {}\n",
        a.pretrain,
        a.target,
        a.metric,
        found.sim_pretrain_target,
        a.total_steps,
        a.tokens_per_step,
        rule.source
    );
    s.push_str(&table(&header, &rows));
    let av: Vec<String> = sources
        .iter()
        .map(|x| format!("{} {:.3e}", x.name, x.available))
        .collect();
    s.push_str(&format!("available tokens: {}; max repeat {}; min general share {}; * = Pareto front of (PA, distance from P)\n", av.join(", "), a.max_repeat, a.min_general));
    for n in &found.notes {
        s.push_str(&format!("note: {n}\n"));
    }
    s
}

/// The options a suggested `mtkit tokenize` must repeat to read the same corpora with the same
/// tokenizer: the catalogs (and --text) and a --tokenizer given, shell-quoted, each with its
/// leading space (paths absolute, so the command works from any folder).
fn tokenize_args(c: &CorpusArgs) -> String {
    let mut args = c.catalog.to_args();
    if let Some(t) = &c.tokenizer.tokenizer {
        let t = std::path::absolute(t).unwrap_or_else(|_| t.clone());
        args.extend(["--tokenizer".to_string(), t.display().to_string()]);
    }
    args.iter()
        .map(|a| format!(" {}", mtkit::cluster::slurm::shell_quote(a)))
        .collect()
}
