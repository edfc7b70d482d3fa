//! A verification grid as Slurm jobs (`mtkit verify PLAN --slurm`): the local prefix tree,
//! cut into jobs. Each phase-prefix that some run shares (pretraining up to a start step; a
//! midtraining variant up to its fine-tuning) is one job that trains that one phase from the
//! prefix before it and stores its checkpoint in `OUT/prefixes/`, as the local run does; each
//! run is one job that trains its last phase from its prefix and writes its summary. Every job
//! waits (`afterok`) for the job that produces its starting checkpoint, so shared prefixes
//! train once. Jobs are ordinary sbatch scripts in `OUT/slurm/`, logs in `OUT/slurm/logs/`;
//! the sbatch and squeue side is `mtkit::cluster::slurm`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Result};

use crate::trainer::{Compute, Observer, Trainer};
use crate::verify::{execute, prefix_key, PlannedRun};
use mtkit::cluster::slurm::{queued_by_prefix, sbatch, shell_quote, SlurmOptions};

/// One job of a grid.
#[derive(Clone, Debug, PartialEq)]
pub struct GridJob {
    /// `prefix-KEY` (KEY: the prefix store's key) or `run-NAME`.
    pub id: String,
    /// The run whose config the job trains (the first run that needs the prefix).
    pub run: usize,
    /// Phases the job's output has completed (all of them for a run job).
    pub phases: usize,
    /// The job that produces the checkpoint this one starts from.
    pub after: Option<String>,
}

impl GridJob {
    /// Whether the job trains a whole run (rather than a shared prefix).
    pub fn is_run(&self) -> bool {
        self.id.starts_with("run-")
    }
}

/// The grid's jobs in submission order (every job after the one it waits for).
pub fn grid_jobs(runs: &[PlannedRun]) -> Vec<GridJob> {
    let mut jobs: Vec<GridJob> = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (i, r) in runs.iter().enumerate() {
        let n = r.config.phases.len();
        let prefix_job = |j: usize| format!("prefix-{}", prefix_key(&r.config, j));
        for j in 1..n {
            if seen.insert(prefix_job(j)) {
                jobs.push(GridJob {
                    id: prefix_job(j),
                    run: i,
                    phases: j,
                    after: (j > 1).then(|| prefix_job(j - 1)),
                });
            }
        }
        jobs.push(GridJob {
            id: format!("run-{}", r.name),
            run: i,
            phases: n,
            after: (n > 1).then(|| prefix_job(n - 1)),
        });
    }
    jobs
}

/// Where a job's result lands; it is done when this exists.
fn output_of(job: &GridJob, out: &Path, runs: &[PlannedRun]) -> PathBuf {
    match job.id.strip_prefix("prefix-") {
        Some(key) => out.join("prefixes").join(format!("{key}.safetensors")),
        None => out
            .join("runs")
            .join(&runs[job.run].name)
            .join("summary.json"),
    }
}

/// Runs one job of the grid here (what each sbatch script calls).
pub fn run_job(
    runs: &[PlannedRun],
    id: &str,
    out: &Path,
    compute: Compute,
    log: &dyn Fn(&str),
) -> Result<()> {
    let jobs = grid_jobs(runs);
    let job = jobs
        .iter()
        .find(|j| j.id == id)
        .ok_or_else(|| anyhow!("the plan has no job `{id}`"))?;
    let done = output_of(job, out, runs);
    if done.exists() {
        log(&format!("{id}: done earlier ({})", done.display()));
        return Ok(());
    }
    let run = &runs[job.run];
    if job.is_run() {
        // The local path: it starts from the longest stored prefix and writes the summary.
        execute(
            std::slice::from_ref(run),
            out,
            compute,
            true,
            &NoObserver,
            log,
        )?;
        return Ok(());
    }
    // A prefix: the run's first `phases` phases, from the stored prefix one phase shorter.
    let mut cfg = run.config.clone();
    cfg.phases.truncate(job.phases);
    let work = out.join("prefix-work").join(id);
    let resume = work.join("checkpoints").is_dir()
        && std::fs::read_dir(work.join("checkpoints"))?
            .next()
            .is_some();
    let mut t = Trainer::new(cfg.clone(), &cfg.run.data, &work, compute, resume)?;
    if !resume && job.phases > 1 {
        let start = out
            .join("prefixes")
            .join(format!("{}.safetensors", prefix_key(&cfg, job.phases - 1)));
        if !start.exists() {
            bail!(
                "{id}: its starting checkpoint {} is missing (the job it waits for did not finish)",
                start.display()
            );
        }
        t.start_from(&start)?;
    }
    t.run(&NoObserver, None)?
        .ok_or_else(|| anyhow!("{id}: stopped early"))?;
    let steps: u64 = cfg.phases.iter().map(|p| p.steps.unwrap_or(0)).sum();
    let ck = t
        .checkpoint_at(steps)
        .ok_or_else(|| anyhow!("{id}: no checkpoint at step {steps}"))?;
    std::fs::create_dir_all(done.parent().expect("prefixes/"))?;
    std::fs::rename(&ck, &done).or_else(|_| std::fs::copy(&ck, &done).map(|_| ()))?;
    let _ = std::fs::remove_dir_all(&work);
    log(&format!("{id}: stored {}", done.display()));
    Ok(())
}

struct NoObserver;
impl Observer for NoObserver {}

/// What a submission found and did, job by job.
#[derive(Debug, Default)]
pub struct GridSubmission {
    /// (job, Slurm id, the Slurm id it waits for) of jobs submitted now.
    pub submitted: Vec<(String, String, Option<String>)>,
    /// Jobs already queued or running.
    pub queued: Vec<String>,
    /// Jobs whose output exists.
    pub done: Vec<String>,
}

/// How to submit a grid.
pub struct GridSubmit<'a> {
    /// The plan file, as the jobs will read it.
    pub plan: &'a Path,
    /// The grid's output folder (absolute).
    pub out: &'a Path,
    /// The mtkit binary the jobs run.
    pub mtkit: &'a Path,
    /// The folder jobs run in.
    pub workdir: &'a Path,
    /// The options every job's `mtkit verify` gets besides the plan, --out and --slurm-job,
    /// built from the parsed options (global ones first, then device, precision, catalogs,
    /// tokenizer, -q): each once, whatever the user typed.
    pub args: &'a [String],
    /// Resource requests.
    pub slurm: &'a SlurmOptions,
    /// The global options (--threads, -v), which go before the subcommand.
    pub global: &'a [String],
}

impl GridSubmit<'_> {
    /// The prefix of every job name of this grid (a digest of the output folder).
    pub fn name_prefix(&self) -> String {
        let digest = mtkit::util::digest::sha256_hex(self.out.to_string_lossy().as_bytes());
        format!("mtkit-verify-{}-", &digest[..8])
    }

    /// The sbatch script of `job`, waiting for Slurm job `after` when given.
    pub fn script(&self, job: &GridJob, after: Option<&str>) -> String {
        let logs = self.out.join("slurm").join("logs");
        let dependency = match after {
            Some(id) => {
                format!("#SBATCH --dependency=afterok:{id}\n#SBATCH --kill-on-invalid-dep=yes\n")
            }
            None => String::new(),
        };
        let what = match &job.after {
            Some(prev) => format!("after {prev}"),
            None => "from scratch".into(),
        };
        format!(
            "#!/bin/bash\n\
             # mtkit: grid job {id} ({phases} phase(s), {what}).\n\
             #SBATCH --job-name={prefix}{id}\n\
             #SBATCH --output={log}\n\
             #SBATCH --chdir={cwd}\n\
             {dependency}{directives}\
             set -euo pipefail\n\
             {mtkit} {global}verify {plan} --out {out} {args} --slurm-job {id}\n",
            id = job.id,
            phases = job.phases,
            prefix = self.name_prefix(),
            log = shell_quote(&logs.join(format!("{}-%j.log", job.id)).to_string_lossy()),
            cwd = shell_quote(&self.workdir.to_string_lossy()),
            directives = self.slurm.directives(),
            mtkit = shell_quote(&self.mtkit.to_string_lossy()),
            plan = shell_quote(&self.plan.to_string_lossy()),
            out = shell_quote(&self.out.to_string_lossy()),
            global = self
                .global
                .iter()
                .map(|a| format!("{} ", shell_quote(a)))
                .collect::<String>(),
            args = self
                .args
                .iter()
                .map(|a| shell_quote(a))
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    /// Submits every job that is neither done nor queued, each waiting for the job that makes
    /// its starting checkpoint when that one is queued or submitted now.
    pub fn submit(&self, runs: &[PlannedRun]) -> Result<GridSubmission> {
        mtkit::cluster::slurm::client("sbatch")?;
        let dir = self.out.join("slurm");
        std::fs::create_dir_all(dir.join("logs"))?;
        let prefix = self.name_prefix();
        let in_queue = queued_by_prefix(&prefix)?;
        let mut slurm_id: BTreeMap<String, String> = BTreeMap::new();
        let mut result = GridSubmission::default();
        for job in grid_jobs(runs) {
            if output_of(&job, self.out, runs).exists() {
                result.done.push(job.id);
                continue;
            }
            if let Some(id) = in_queue.get(&format!("{prefix}{}", job.id)) {
                slurm_id.insert(job.id.clone(), id.clone());
                result.queued.push(job.id);
                continue;
            }
            let after = job.after.as_ref().and_then(|a| slurm_id.get(a)).cloned();
            let script = dir.join(format!("{}.sbatch", job.id));
            mtkit::util::paths::write_atomic_bytes(
                &script,
                self.script(&job, after.as_deref()).as_bytes(),
            )?;
            let id = sbatch(&script, &[])?;
            slurm_id.insert(job.id.clone(), id.clone());
            result.submitted.push((job.id, id, after));
        }
        Ok(result)
    }
}
