//! `mtkit verify PLAN`: train a verification grid and write runs.csv.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use clap::Args;

use mtkit::analysis::proximity::Dist;
use mtkit_train::trainer::Quiet;

use super::ComputeArgs;
use mtkit_train::verify::slurm::{grid_jobs, run_job, GridSubmit};
use mtkit_train::verify::{
    execute, pa_distributions, runs_table, schedule, tokenize_missing, write_runs_csv, Plan,
    PlannedRun,
};

use mtkit::cli_support::bar::Bar;
use mtkit::cli_support::output::table;

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
    #[command(flatten)]
    compute: ComputeArgs,
    #[command(flatten)]
    catalog: mtkit::cli_support::args::CatalogArgs,
    #[command(flatten)]
    tokenizer: mtkit::cli_support::args::TokenizerArgs,
    /// Less output.
    #[arg(long, short)]
    quiet: bool,
    /// Submit the grid to Slurm: one job per shared phase-prefix and one per run, each
    /// waiting (afterok) for the job that makes its starting checkpoint. Re-running skips
    /// finished and queued jobs; once every job has ended, writes runs.csv as a local run does.
    /// Resource requests come from the plan's [plan.slurm] (partition, account, time,
    /// cpus_per_task, mem, gres, sbatch_args) and the flags below, which win.
    #[arg(long)]
    slurm: bool,
    /// Write runs.csv from the finished runs of a --slurm grid (refused, naming them, while
    /// runs are missing).
    #[arg(long, conflicts_with = "slurm")]
    collect: bool,
    #[command(flatten)]
    sbatch: mtkit::cli_support::args::SbatchArgs,
    /// One job of a --slurm grid (what its sbatch script runs).
    #[arg(long, value_name = "JOB", hide = true)]
    slurm_job: Option<String>,
}

pub fn run(a: VerifyArgs, global: &mtkit::cli_support::args::GlobalArgs) -> Result<()> {
    let (plan, data) = Plan::load(&a.plan)?;
    let cat = a.catalog.load()?;
    let cards: Vec<_> = cat.get_all(&plan.corpora())?.into_iter().cloned().collect();
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&plan.plan.name));
    let runs = plan.runs(&data);
    if let Some(job) = &a.slurm_job {
        return run_job(&runs, job, &out, a.compute.resolve()?, &say(a.quiet));
    }
    if a.sbatch.any() && !a.slurm {
        bail!("--partition, --account, --time, --cpus-per-task, --mem, --gres and --sbatch-arg go with --slurm");
    }
    let finished = |r: &PlannedRun| out.join("runs").join(&r.name).join("summary.json").exists();
    if a.dry_run || !a.quiet {
        print_schedule(&runs, &out, &finished);
    }
    if a.dry_run && !a.slurm {
        return Ok(());
    }
    let tok = a.tokenizer.load()?;
    if !a.dry_run {
        let bar = Bar::new(a.quiet);
        for name in tokenize_missing(&plan, &cards, &tok, &data, &bar)? {
            say(a.quiet)(&format!(
                "tokenized `{name}` into {}",
                data.join(&name).display()
            ));
        }
    }
    let missing: Vec<&str> = runs
        .iter()
        .filter(|r| !finished(r))
        .map(|r| r.name.as_str())
        .collect();
    if a.slurm && !missing.is_empty() {
        return submit_grid(
            &a,
            &plan.plan.slurm.clone().unwrap_or_default(),
            &runs,
            &out,
            &global.to_args(),
        );
    }
    if a.collect && !missing.is_empty() {
        bail!(
            "{} of {} runs have not finished ({}); see `squeue` and {}",
            missing.len(),
            runs.len(),
            missing.join(", "),
            out.join("slurm/logs").display()
        );
    }
    train_here(&a, &plan, &runs, &out, &pa_distributions(&cards, &tok)?)
}

/// Trains the runs not yet finished here, one after another, and writes runs.csv.
fn train_here(
    a: &VerifyArgs,
    plan: &Plan,
    runs: &[PlannedRun],
    out: &Path,
    pa: &BTreeMap<String, Dist>,
) -> Result<()> {
    let summaries = execute(
        runs,
        out,
        a.compute.resolve()?,
        a.resume,
        &Quiet,
        &say(a.quiet),
    )?;
    let rows = runs_table(plan, runs, &summaries, pa)?;
    let path = out.join("runs.csv");
    write_runs_csv(&path, &rows)?;
    println!("{} rows written to {}", rows.len(), path.display());
    Ok(())
}

/// Progress lines on stderr, unless --quiet.
fn say(quiet: bool) -> impl Fn(&str) {
    move |m| {
        if !quiet {
            eprintln!("{m}");
        }
    }
}

/// `--slurm`: the grid's jobs (printed with --dry-run, else submitted).
fn submit_grid(
    a: &VerifyArgs,
    plan_slurm: &mtkit::cluster::slurm::SlurmOptions,
    runs: &[PlannedRun],
    out: &std::path::Path,
    global: &[String],
) -> Result<()> {
    let (plan, out) = (std::path::absolute(&a.plan)?, std::path::absolute(out)?);
    // Every job reads the same corpora (catalogs, tokenizer) and computes the same way.
    let mut args = a.compute.to_args();
    args.extend(a.catalog.to_args());
    args.extend(a.tokenizer.to_args());
    if a.quiet {
        args.push("--quiet".into());
    }
    let (mtkit, workdir) = (std::env::current_exe()?, std::env::current_dir()?);
    let slurm = plan_slurm.overridden_by(&a.sbatch.options());
    let grid = GridSubmit {
        plan: &plan,
        out: &out,
        mtkit: &mtkit,
        workdir: &workdir,
        args: &args,
        slurm: &slurm,
        global,
    };
    if a.dry_run {
        for job in grid_jobs(runs) {
            let after = job.after.as_ref().map(|j| format!("<job id of {j}>"));
            println!(
                "# {}.sbatch\n{}",
                job.id,
                grid.script(&job, after.as_deref())
            );
        }
        return Ok(());
    }
    let s = grid.submit(runs)?;
    for (job, id, after) in &s.submitted {
        let wait = after
            .as_ref()
            .map(|a| format!(" (after {a})"))
            .unwrap_or_default();
        println!("submitted {job} as job {id}{wait}");
    }
    println!(
        "{} jobs submitted, {} already queued or running, {} done; run the same command (or --collect) once they end to write runs.csv",
        s.submitted.len(),
        s.queued.len(),
        s.done.len()
    );
    Ok(())
}

/// The run tree: where each run starts, the steps it trains, and the saving from reuse.
fn print_schedule(
    runs: &[PlannedRun],
    out: &std::path::Path,
    finished: &dyn Fn(&PlannedRun) -> bool,
) {
    let mut stored: BTreeSet<String> = BTreeSet::new();
    if let Ok(d) = std::fs::read_dir(out.join("prefixes")) {
        stored.extend(d.filter_map(|e| e.ok()).filter_map(|e| {
            e.path()
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
        }));
    }
    let sched = schedule(runs, &mut stored, finished);
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
    let rows: Vec<Vec<String>> = runs
        .iter()
        .zip(&sched)
        .map(|(r, (reuse, steps))| {
            let from = if *steps == 0 && *reuse == r.config.phases.len() {
                "finished".to_string()
            } else if *reuse == 0 {
                "scratch".to_string()
            } else {
                format!("after {}", r.config.phases[reuse - 1].name)
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
