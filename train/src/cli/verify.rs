//! `mtkit verify PLAN`: train a verification grid and write runs.csv.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{anyhow, Result};
use clap::Args;

use mtkit::corpus::SampleSpec;
use mtkit::profile::{cached_or_build, ProfileOptions};
use mtkit::proximity::{similarity, Dist, Metric, MetricOptions};
use mtkit_train::trainer::{device, Quiet};
use mtkit_train::verify::{execute, schedule, Plan, RunKind, RunRow};

use mtkit::cli_support::output::{num, table};
use mtkit::cli_support::progress::Bar;

/// Train a plan's grid: a base run, midtraining and continued-pretraining variants, each
/// fine-tuned on every target, for every seed. Runs sharing their first phases reuse one
/// checkpoint of them; finished runs are skipped. Writes OUT/runs.csv (one row per run, target
/// and seed: preset, mix, weight, start_step, start_frac, kind, target, seed, target_loss,
/// general_loss, tokens, pa, ri), which `mtkit report` reads.
#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Plan file (analysis/*.toml).
    plan: PathBuf,
    /// Output folder [default: runs/PLAN-NAME].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the run tree and the steps each run will execute, train nothing.
    #[arg(long)]
    dry_run: bool,
    /// Continue runs that a crash left unfinished.
    #[arg(long)]
    resume: bool,
    /// cpu, cuda or auto.
    #[arg(long, default_value = "auto")]
    device: String,
    #[command(flatten)]
    catalog: mtkit::cli_support::args::CatalogArgs,
    #[command(flatten)]
    tokenizer: mtkit::cli_support::args::TokenizerArgs,
    /// Less output.
    #[arg(long, short)]
    quiet: bool,
}

pub fn run(a: VerifyArgs) -> Result<()> {
    let (plan, data) = Plan::load(&a.plan)?;
    let cat = a.catalog.load()?;
    let cards: Vec<_> = plan
        .corpora()
        .iter()
        .map(|n| cat.get(n).cloned())
        .collect::<Result<_>>()?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&plan.plan.name));
    let runs = plan.runs(&data);
    let finished = |r: &mtkit_train::verify::PlannedRun| {
        out.join("runs").join(&r.name).join("summary.json").exists()
    };
    let mut stored: BTreeSet<String> = BTreeSet::new();
    if let Ok(d) = std::fs::read_dir(out.join("prefixes")) {
        stored.extend(d.filter_map(|e| e.ok()).filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
        }));
    }
    let sched = schedule(&runs, &mut stored, &finished);
    let total: u64 = sched.iter().map(|s| s.1).sum();
    let naive: u64 = runs
        .iter()
        .map(|r| {
            r.config
                .phases
                .iter()
                .map(|p| p.steps.unwrap_or(0))
                .sum::<u64>()
        })
        .sum();
    if a.dry_run || !a.quiet {
        let rows: Vec<Vec<String>> = runs
            .iter()
            .zip(&sched)
            .map(|(r, (reuse, steps))| {
                let from = if *reuse == 0 {
                    "scratch".to_string()
                } else {
                    format!("after {}", r.config.phases[reuse - 1].name)
                };
                let from = if *steps == 0 && *reuse == r.config.phases.len() {
                    "finished".to_string()
                } else {
                    from
                };
                vec![r.name.clone(), from, steps.to_string()]
            })
            .collect();
        print!(
            "{}",
            table(&["run", "starts from", "steps to train"], &rows)
        );
        println!(
            "{} runs; {total} training steps to execute ({naive} without prefix reuse)",
            runs.len()
        );
    }
    if a.dry_run {
        return Ok(());
    }
    let tok = a.tokenizer.load()?;
    let bar = Bar::new(a.quiet);
    for card in &cards {
        if !data.join(&card.name).join("meta.json").exists() {
            let spec = SampleSpec {
                max_docs: None,
                seed: 42,
                max_chars: None,
                shard: None,
                strict: false,
            };
            mtkit::shards::write(card, &tok, &spec, plan.plan.val_docs, &data, &bar)?;
            if !a.quiet {
                eprintln!(
                    "tokenized `{}` into {}",
                    card.name,
                    data.join(&card.name).display()
                );
            }
        }
    }
    let quiet = a.quiet;
    let summaries = execute(&runs, &out, device(&a.device)?, a.resume, &Quiet, &|m| {
        if !quiet {
            eprintln!("{m}");
        }
    })?;
    // Proximity advantage of each run's midtraining mixture for its target (paper metric).
    let opts = ProfileOptions::paper_unigrams();
    let mut dists = std::collections::BTreeMap::new();
    for c in &cards {
        let (p, _) = cached_or_build(c, &tok, &opts, true, &mtkit::progress::Silent)?;
        dists.insert(c.name.clone(), Dist::of(&p));
    }
    let mo = MetricOptions::default();
    let general = &plan.plan.pretrain;
    let mut rows: Vec<RunRow> = Vec::new();
    for r in &runs {
        let s = &summaries[&r.name];
        let (p, t) = (&dists[general], &dists[&r.target]);
        let q = match r.kind {
            RunKind::Base => p.clone(),
            _ => p.blend(&dists[&r.mix], r.weight),
        };
        let pa = similarity(Metric::Paper, &q, t, &mo)? - similarity(Metric::Paper, p, t, &mo)?;
        let loss = |n: &str| {
            s.final_losses
                .get(n)
                .copied()
                .ok_or_else(|| anyhow!("run {} has no validation loss for `{n}`", r.name))
        };
        rows.push(RunRow {
            preset: plan.plan.preset.clone(),
            mix: r.mix.clone(),
            weight: r.weight,
            start_step: r.start,
            start_frac: r.start as f64 / plan.plan.total_steps as f64,
            kind: r.kind,
            target: r.target.clone(),
            seed: r.seed,
            target_loss: loss(&r.target)?,
            general_loss: loss(general)?,
            tokens: s
                .tokens_delivered
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(";"),
            pa,
            ri: f64::NAN,
        });
    }
    let base: std::collections::BTreeMap<(u64, String), f64> = rows
        .iter()
        .filter(|r| r.kind == RunKind::Base)
        .map(|r| ((r.seed, r.target.clone()), r.target_loss))
        .collect();
    for r in &mut rows {
        let b = base[&(r.seed, r.target.clone())];
        r.ri = (b - r.target_loss) / b;
    }
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "preset",
        "mix",
        "weight",
        "start_step",
        "start_frac",
        "kind",
        "target",
        "seed",
        "target_loss",
        "general_loss",
        "tokens",
        "pa",
        "ri",
    ])?;
    for r in &rows {
        let kind = match r.kind {
            RunKind::Base => "base",
            RunKind::Midtrain => "midtrain",
            RunKind::Cpt => "cpt",
        };
        w.write_record([
            r.preset.clone(),
            r.mix.clone(),
            num(r.weight),
            r.start_step.to_string(),
            num(r.start_frac),
            kind.to_string(),
            r.target.clone(),
            r.seed.to_string(),
            num(r.target_loss),
            num(r.general_loss),
            r.tokens.clone(),
            num(r.pa),
            num(r.ri),
        ])?;
    }
    let path = out.join("runs.csv");
    mtkit::paths::write_atomic_bytes(&path, &w.into_inner()?)?;
    println!("{} rows written to {}", rows.len(), path.display());
    Ok(())
}
