//! The command line's side of `--slurm N` for the sharded commands (`profile`, `overlap`): the
//! checks before anything is submitted, the scripts with `--dry-run`, what a submission did,
//! and `--wait`.

use anyhow::{bail, Result};
use clap::Args;

use mtkit::cluster::slurm::{ShardArray, Submitted};
use mtkit::data::catalog::Card;

/// `--dry-run` and `--wait` of a command that takes `--slurm N`.
#[derive(Args, Debug)]
pub(crate) struct ArrayRunArgs {
    /// With --slurm: print the sbatch scripts instead of submitting them.
    #[arg(long, requires = "slurm")]
    pub dry_run: bool,
    /// With --slurm: wait for the shards and the merge, and exit non-zero, naming each failed
    /// shard with its exit code and the end of its log, when the output was not written.
    #[arg(long, requires = "slurm", conflicts_with = "dry_run")]
    pub wait: bool,
}

/// Refuses N shards when a corpus has fewer records than that (where they can be counted
/// cheaply: every shard must get records of every corpus) or when Slurm's `MaxArraySize`
/// cannot hold the array.
pub(crate) fn check_shards(n: u32, corpora: &[&Card]) -> Result<()> {
    if n == 0 {
        bail!("--slurm needs N ≥ 1 shards");
    }
    for card in corpora {
        if let Some(records) = mtkit::data::corpus::cheap_count(&card.resolve()?) {
            if u64::from(n) > records {
                bail!(
                    "--slurm {n}: corpus `{}` has {records} records, so {} of the {n} shards would be empty; use at most --slurm {records}",
                    card.name,
                    u64::from(n) - records
                );
            }
        }
    }
    if let Some(max) = mtkit::cluster::slurm::max_array_size() {
        if u64::from(n) > max {
            bail!(
                "--slurm {n}: this Slurm's MaxArraySize is {max} (`scontrol show config`), so array tasks 0-{} cannot be submitted; use at most --slurm {max}, or ask your admins to raise MaxArraySize",
                n - 1
            );
        }
    }
    Ok(())
}

/// Prints the two scripts (`dry_run`), or submits them and says what was submitted; with
/// `wait`, waits for the jobs and fails, naming each failed shard, unless the output was
/// written.
pub(crate) fn run(job: &ShardArray, n: u32, how: &ArrayRunArgs, quiet: bool) -> Result<()> {
    if how.dry_run {
        for (file, script) in [
            ("shards.sbatch", job.array_script()),
            ("merge.sbatch", job.merge_script()),
        ] {
            println!("# {}/{file}\n{script}", job.parts_dir().display());
        }
        return Ok(());
    }
    print_submitted(job, &job.submit()?, n);
    if how.wait {
        job.wait(&|jobs| {
            if !quiet {
                eprintln!("waiting for {jobs} job(s) of {}", job.job_name());
            }
        })?;
        println!(
            "{} is written: all {n} shards done and merged",
            job.output.display()
        );
    }
    Ok(())
}

/// What a submission did: shards submitted and already queued, the merge job, or that the
/// output is complete.
fn print_submitted(job: &ShardArray, s: &Submitted, n: u32) {
    if s.done {
        println!(
            "{} is complete: all {n} shards done and merged",
            job.output.display()
        );
        return;
    }
    let list = |v: &[u32]| mtkit::cluster::slurm::ranges(v);
    for f in &s.failed {
        eprintln!("{f}");
    }
    if let Some(id) = &s.array_job {
        println!(
            "submitted shards {} of {n} as job array {id}",
            list(&s.shards)
        );
    }
    if !s.queued.is_empty() {
        println!("shards {} already queued or running", list(&s.queued));
    }
    if let Some(id) = &s.merge_job {
        println!(
            "submitted the merge into {} as job {id}",
            job.output.display()
        );
    }
    println!("parts and logs: {}", job.parts_dir().display());
}
