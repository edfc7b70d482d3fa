//! Slurm, the scheduler clusters run: mtkit writes ordinary sbatch scripts, submits them with
//! `sbatch --parsable`, and reads their state back from `squeue` and its own completion
//! markers (accounting is often off, so `sacct` is not relied on). No scheduler of mtkit's own.
//!
//! A sharded profile (`mtkit profile NAME --slurm N -o OUT.parquet`) is a job array of N tasks,
//! task i running the same `mtkit profile` with `--shard (i+1)/N` into `OUT.parquet.parts/`,
//! each part written atomically and then marked done, and a merge job that waits for the array
//! (`afterok`) and runs `mtkit profile merge OUT.parquet.parts -o OUT.parquet`. Running the
//! same command again submits only the shards that have no marker and are not queued or
//! running, and a new merge job, after naming each shard that failed (its exit code, which the
//! task writes beside its part, and the end of its log). `--wait` waits for the jobs and fails,
//! naming the failed shards, when one fails.
//!
//! Job scripts are built from the parsed options, never by repeating the user's command line,
//! so that every option appears once whatever the user typed (`-q` and the task's own
//! `--quiet`, say).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Resource requests and extra arguments that go into every `#SBATCH` header: from flags, or
/// from a plan's `[plan.slurm]` (the same names, `sbatch_args` for the extra ones).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlurmOptions {
    /// `--partition`.
    pub partition: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--time` (Slurm's formats: MM, HH:MM:SS, D-HH:MM).
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem` (e.g. 16G).
    pub mem: Option<String>,
    /// `--gres` (e.g. gpu:1).
    pub gres: Option<String>,
    /// Any other sbatch options, each written as given (e.g. `--qos=high`).
    #[serde(default, rename = "sbatch_args")]
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// These options with `flags` on top: a request given there wins, extra options add up.
    pub fn overridden_by(&self, flags: &SlurmOptions) -> SlurmOptions {
        let mut extra = self.extra.clone();
        extra.extend(flags.extra.iter().cloned());
        SlurmOptions {
            partition: flags.partition.clone().or(self.partition.clone()),
            account: flags.account.clone().or(self.account.clone()),
            time: flags.time.clone().or(self.time.clone()),
            cpus_per_task: flags.cpus_per_task.or(self.cpus_per_task),
            mem: flags.mem.clone().or(self.mem.clone()),
            gres: flags.gres.clone().or(self.gres.clone()),
            extra,
        }
    }

    /// The `#SBATCH` lines for these options.
    pub fn directives(&self) -> String {
        let mut out = String::new();
        let mut line = |flag: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push_str(&format!("#SBATCH --{flag}={v}\n"));
            }
        };
        line("partition", &self.partition);
        line("account", &self.account);
        line("time", &self.time);
        line("cpus-per-task", &self.cpus_per_task.map(|c| c.to_string()));
        line("mem", &self.mem);
        line("gres", &self.gres);
        for e in &self.extra {
            out.push_str(&format!("#SBATCH {e}\n"));
        }
        out
    }
}

/// A Slurm client command on PATH, or an error that says what to install.
pub fn client(name: &str) -> Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!(
                "no `{name}` on PATH: --slurm needs Slurm's client commands (Debian/Ubuntu: the slurm-client package; on a cluster, `module load slurm` or your site's equivalent)"
            )
        })
}

/// Submits `script` with `sbatch --parsable` and the given extra arguments; returns the job id.
pub fn sbatch(script: &Path, args: &[String]) -> Result<String> {
    let out = Command::new(client("sbatch")?)
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .context("cannot run sbatch")?;
    if !out.status.success() {
        bail!(
            "Slurm refused the job {} (sbatch {}): {}",
            script.display(),
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // `--parsable` prints `ID` or `ID;CLUSTER`.
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("sbatch answered {:?}, not a job id", text.trim());
    }
    Ok(id)
}

/// A job (or one array task) that Slurm still holds.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuedJob {
    /// The job id (the array's id for array tasks).
    pub job: String,
    /// The array task id, for array tasks.
    pub task: Option<u32>,
    /// PENDING, RUNNING, ...
    pub state: String,
}

/// `squeue -h ARGS`'s lines.
fn squeue(args: &[&str]) -> Result<String> {
    let out = Command::new(client("squeue")?)
        .arg("-h")
        .args(args)
        .output()
        .context("cannot run squeue")?;
    if !out.status.success() {
        bail!(
            "squeue failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The jobs named `name` that are queued or running (array tasks one by one).
pub fn queued(name: &str) -> Result<Vec<QueuedJob>> {
    let mut jobs = Vec::new();
    for line in squeue(&["-r", "-o", "%i|%T", "-n", name])?.lines() {
        let Some((id, state)) = line.trim().split_once('|') else {
            continue;
        };
        let (job, task) = match id.split_once('_') {
            Some((j, t)) => (j.to_string(), t.parse().ok()),
            None => (id.to_string(), None),
        };
        jobs.push(QueuedJob {
            job,
            task,
            state: state.to_string(),
        });
    }
    Ok(jobs)
}

/// This user's queued or running jobs whose name starts with `prefix`: name → job id.
pub fn queued_by_prefix(prefix: &str) -> Result<std::collections::BTreeMap<String, String>> {
    Ok(squeue(&["--me", "-o", "%i|%j"])?
        .lines()
        .filter_map(|l| l.trim().split_once('|'))
        .filter(|(_, name)| name.starts_with(prefix))
        .map(|(id, name)| (name.to_string(), id.to_string()))
        .collect())
}

/// Slurm's MaxArraySize (`scontrol show config`), when scontrol answers: array task ids
/// must be below it.
pub fn max_array_size() -> Option<u64> {
    let out = Command::new(client("scontrol").ok()?)
        .args(["show", "config"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == "MaxArraySize").then(|| v.trim().parse().ok())?
    })
}

/// Cancels jobs.
pub fn scancel(jobs: &[String]) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let st = Command::new(client("scancel")?)
        .args(jobs)
        .status()
        .context("cannot run scancel")?;
    if !st.success() {
        bail!("scancel {} failed", jobs.join(" "));
    }
    Ok(())
}

/// Sorted numbers as Slurm writes index lists: runs as `A-B`, the rest comma-separated.
pub fn ranges(v: &[u32]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if j > i {
            format!("{}-{}", v[i], v[j])
        } else {
            v[i].to_string()
        });
        i = j + 1;
    }
    out.join(",")
}

/// `s` quoted for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What a parts folder was made for: the command (without its Slurm options and output) and
/// the number of shards. A folder holding parts of another spec is refused.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PartsSpec {
    /// The command whose shards these are: `profile` (parts are parquet profiles, merged by
    /// `profile merge`) or `overlap` (parts are JSON tallies, merged by `overlap merge`).
    /// Folders written before there was a second are profiles.
    #[serde(default = "profile_command")]
    pub command: String,
    /// `mtkit` arguments of every task, before `--shard K/N` and the part's path.
    pub args: Vec<String>,
    /// Number of shards.
    pub shards: u32,
}

fn profile_command() -> String {
    "profile".to_string()
}

/// The spec file of a parts folder.
const SPEC_FILE: &str = "spec.json";

/// What is known of a shard that did not finish: its exit code (written by the task beside its
/// part, or from `sacct` when accounting is on) and the end of its newest log.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardFailure {
    /// The shard (1-based).
    pub shard: u32,
    /// Of how many.
    pub shards: u32,
    /// The task's exit code, when known.
    pub exit_code: Option<String>,
    /// Its newest log, when there is one.
    pub log: Option<PathBuf>,
    /// The last lines of that log.
    pub tail: Vec<String>,
}

impl std::fmt::Display for ShardFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.exit_code {
            Some(c) => write!(f, "shard {} of {} failed with exit code {c}", self.shard, self.shards)?,
            None => write!(
                f,
                "shard {} of {} ended without finishing (no exit code: killed, cancelled or out of time?)",
                self.shard, self.shards
            )?,
        }
        if let Some(log) = &self.log {
            write!(f, "; the end of its log {}:", log.display())?;
            for l in &self.tail {
                write!(f, "\n    {l}")?;
            }
        }
        Ok(())
    }
}

/// The last `n` lines of a file (lossy UTF-8), empty when it cannot be read.
fn tail(path: &Path, n: usize) -> Vec<String> {
    let text = std::fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// The newest file in `dir` whose name starts with `prefix` and ends with `.log`.
fn newest_log(dir: &Path, prefix: &str) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with(prefix) && n.ends_with(".log")
        })
        .max_by_key(|e| e.metadata().and_then(|m| m.modified()).ok())
        .map(|e| e.path())
}

/// A task's exit code from Slurm's accounting (`sacct`), when accounting is on.
fn sacct_exit_code(job: &str) -> Option<String> {
    let out = Command::new(client("sacct").ok()?)
        .args(["-n", "-P", "-X", "-j", job, "--format=State,ExitCode"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let (state, code) = text.lines().next()?.split_once('|')?;
    Some(format!("{code} ({state})"))
}

impl PartsSpec {
    /// Part `k` (1-based) of the folder.
    pub fn part(&self, dir: &Path, k: u32) -> PathBuf {
        dir.join(format!("part-{k}-of-{}.{}", self.shards, self.extension()))
    }

    /// The parts' file extension: `json` for overlap tallies, `parquet` for profiles.
    pub fn extension(&self) -> &'static str {
        match self.command.as_str() {
            "overlap" => "json",
            _ => "parquet",
        }
    }

    /// The option a task writes its part with.
    fn part_flag(&self) -> &'static str {
        match self.command.as_str() {
            "overlap" => "--part",
            _ => "-o",
        }
    }

    /// Completion marker of part `k`, written after the part itself.
    pub fn marker(&self, dir: &Path, k: u32) -> PathBuf {
        dir.join(format!("part-{k}-of-{}.done", self.shards))
    }

    /// Shards (1-based) whose marker is missing.
    pub fn missing(&self, dir: &Path) -> Vec<u32> {
        (1..=self.shards)
            .filter(|&k| !self.marker(dir, k).exists())
            .collect()
    }

    /// Reads a parts folder's spec.
    pub fn read(dir: &Path) -> Result<PartsSpec> {
        let path = dir.join(SPEC_FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "{} is not a parts folder of `mtkit profile --slurm` or `mtkit overlap --slurm` (no {SPEC_FILE})",
                dir.display()
            )
        })?;
        serde_json::from_str(&text).with_context(|| format!("{}: not a spec", path.display()))
    }

    /// Exit-code file of part `k`, written by a task that failed.
    pub fn failed_marker(&self, dir: &Path, k: u32) -> PathBuf {
        dir.join(format!("part-{k}-of-{}.failed", self.shards))
    }

    /// What is known of shard `k` when it has not finished: None when nothing says it ran (no
    /// exit code, no log).
    pub fn failure(&self, dir: &Path, k: u32) -> Option<ShardFailure> {
        let log = newest_log(&dir.join("logs"), &format!("shard-{}-", k - 1));
        let mut exit_code = std::fs::read_to_string(self.failed_marker(dir, k))
            .ok()
            .map(|c| c.trim().to_string());
        if exit_code.is_none() && log.is_none() {
            return None;
        }
        if exit_code.is_none() {
            // shard-TASK-ARRAYJOB.log: ask accounting about ARRAYJOB_TASK.
            let job = log.as_ref().and_then(|l| {
                let stem = l.file_stem()?.to_string_lossy().to_string();
                let array = stem.rsplit('-').next()?.to_string();
                Some(format!("{array}_{}", k - 1))
            });
            exit_code = job.as_deref().and_then(sacct_exit_code);
        }
        Some(ShardFailure {
            shard: k,
            shards: self.shards,
            exit_code,
            tail: log.as_deref().map(|l| tail(l, 5)).unwrap_or_default(),
            log,
        })
    }

    /// Files in the folder that look like parts but are not of this spec (another shard
    /// count, a shard number past it).
    pub fn strays(&self, dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .filter(|n| {
                        n.starts_with("part-") && n.ends_with(&format!(".{}", self.extension()))
                    })
                    .filter(|n| !(1..=self.shards).any(|k| self.part(dir, k).ends_with(n)))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Every part of a complete folder, in shard order; names the missing shards (and what
    /// is known of those that failed) otherwise, and refuses part files of another spec.
    pub fn complete_parts(dir: &Path) -> Result<Vec<PathBuf>> {
        let spec = PartsSpec::read(dir)?;
        let strays = spec.strays(dir);
        if !strays.is_empty() {
            bail!(
                "{}: {} {} not of this folder's {} shards (spec.json); remove {} or merge the parts by name",
                dir.display(),
                strays.join(", "),
                if strays.len() > 1 { "are" } else { "is" },
                spec.shards,
                if strays.len() > 1 { "them" } else { "it" },
            );
        }
        let missing = spec.missing(dir);
        let failures: Vec<String> = missing
            .iter()
            .filter_map(|&k| spec.failure(dir, k))
            .map(|f| f.to_string())
            .collect();
        if !failures.is_empty() {
            bail!(
                "{}: {}\nrun the same `mtkit {} ... --slurm {}` again to resubmit what is missing",
                dir.display(),
                failures.join("\n"),
                spec.command,
                spec.shards
            );
        }
        if !missing.is_empty() {
            let list: Vec<String> = missing.iter().map(u32::to_string).collect();
            bail!(
                "{}: shard{} {} of {} {} missing (no completion marker); run the same `mtkit {} ... --slurm {}` again to resubmit {}",
                dir.display(),
                if missing.len() > 1 { "s" } else { "" },
                list.join(", "),
                spec.shards,
                if missing.len() > 1 { "are" } else { "is" },
                spec.command,
                spec.shards,
                if missing.len() > 1 { "them" } else { "it" },
            );
        }
        Ok((1..=spec.shards).map(|k| spec.part(dir, k)).collect())
    }

    /// Refuses when `other` (the folder's spec) differs from this one, naming the setting.
    fn check_same(&self, other: &PartsSpec, dir: &Path) -> Result<()> {
        if self == other {
            return Ok(());
        }
        let why = if self.command != other.command {
            format!(
                "`mtkit {}` there, `mtkit {}` now",
                other.command, self.command
            )
        } else if self.shards != other.shards {
            format!("--slurm {} there, {} now", other.shards, self.shards)
        } else {
            first_difference(&other.args, &self.args)
        };
        bail!(
            "{} holds parts of another {} ({why}); remove the folder or choose another output",
            dir.display(),
            match other.command.as_str() {
                "overlap" => "overlap scan",
                _ => "profile",
            }
        )
    }
}

/// The first option whose value differs between two argument lists, as `--opt A there, B now`.
fn first_difference(there: &[String], now: &[String]) -> String {
    let pairs = |v: &[String]| -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < v.len() {
            let a = &v[i];
            if let Some((k, val)) = a.split_once('=').filter(|_| a.starts_with("--")) {
                out.push((k.to_string(), val.to_string()));
            } else if a.starts_with('-') && v.get(i + 1).is_some_and(|n| !n.starts_with('-')) {
                out.push((a.clone(), v[i + 1].clone()));
                i += 1;
            } else {
                out.push((a.clone(), String::new()));
            }
            i += 1;
        }
        out
    };
    let (a, b) = (pairs(there), pairs(now));
    for (k, v) in &b {
        match a.iter().find(|(ka, _)| ka == k) {
            Some((_, va)) if va != v => return format!("{k} {va} there, {v} now"),
            None => return format!("{k} {v} now, not there"),
            _ => {}
        }
    }
    for (k, v) in &a {
        if !b.iter().any(|(kb, _)| kb == k) {
            return format!("{k} {v} there, not now");
        }
    }
    format!("`{}` there, `{}` now", there.join(" "), now.join(" "))
}

/// A command sharded over a Slurm job array (`profile`, `overlap`), then merged by its
/// `merge` subcommand.
pub struct ShardArray {
    /// What the jobs are named after: the corpus of a profile, the evaluation set of an
    /// overlap scan.
    pub name: String,
    /// What every task runs.
    pub spec: PartsSpec,
    /// The merged result (a profile; an overlap table).
    pub output: PathBuf,
    /// The merge's options after `mtkit COMMAND merge PARTS_DIR` (`-o OUT`; `--csv OUT`).
    pub merge_flags: Vec<String>,
    /// The mtkit binary the jobs run.
    pub mtkit: PathBuf,
    /// The folder the shard jobs run in (relative paths in `spec.args` are relative to it).
    pub workdir: PathBuf,
    /// Resource requests.
    pub slurm: SlurmOptions,
}

/// What a submission did.
#[derive(Debug, Default)]
pub struct Submitted {
    /// Shards submitted now (1-based).
    pub shards: Vec<u32>,
    /// The array job id, when shards were submitted.
    pub array_job: Option<String>,
    /// Shards already queued or running.
    pub queued: Vec<u32>,
    /// Shards that ran and failed (submitted again now).
    pub failed: Vec<ShardFailure>,
    /// The merge job id, when one was submitted.
    pub merge_job: Option<String>,
    /// Whether the merged profile was already complete.
    pub done: bool,
}

impl ShardArray {
    /// `OUT.parts/` beside the output.
    pub fn parts_dir(&self) -> PathBuf {
        let mut name = self.output.file_name().unwrap_or_default().to_os_string();
        name.push(".parts");
        self.output.with_file_name(name)
    }

    /// The job name of the array and the merge: the command, the name and a digest of the
    /// output path, so that two runs in flight never see each other's jobs.
    pub fn job_name(&self) -> String {
        let digest = crate::util::digest::sha256_hex(self.output.to_string_lossy().as_bytes());
        format!("mtkit-{}-{}-{}", self.spec.command, self.name, &digest[..8])
    }

    /// The array job's script: task i runs shard i+1 into its part, atomically, then writes
    /// the part's completion marker.
    pub fn array_script(&self) -> String {
        let dir = self.parts_dir();
        let n = self.spec.shards;
        let args: Vec<String> = self.spec.args.iter().map(|a| shell_quote(a)).collect();
        format!(
            "#!/bin/bash\n\
             # mtkit: shard (SLURM_ARRAY_TASK_ID+1) of {n} of `mtkit {command}` ({corpus}).\n\
             # Submitted by `mtkit {command} ... --slurm {n}`, which passes --array; by hand:\n\
             #   sbatch --array=0-{last} {script}\n\
             #SBATCH --job-name={name}\n\
             #SBATCH --output={log}/shard-%a-%A.log\n\
             #SBATCH --chdir={cwd}\n\
             {directives}\
             set -euo pipefail\n\
             k=$((SLURM_ARRAY_TASK_ID + 1))\n\
             part={dir}/part-\"$k\"-of-{n}\n\
             rm -f \"$part.failed\"\n\
             # The exit code goes beside the part, so that the next submission can name it.\n\
             set +e\n\
             {mtkit} {args} --shard \"$k/{n}\" {flag} \"$part.{ext}\" --quiet\n\
             rc=$?\n\
             set -e\n\
             if [ \"$rc\" -ne 0 ]; then echo \"$rc\" > \"$part.failed\"; exit \"$rc\"; fi\n\
             touch \"$part.done\"\n",
            corpus = self.name,
            command = self.spec.command,
            flag = self.spec.part_flag(),
            ext = self.spec.extension(),
            last = n - 1,
            script = shell_quote(&dir.join("shards.sbatch").to_string_lossy()),
            name = self.job_name(),
            log = shell_quote(&dir.join("logs").to_string_lossy()),
            cwd = shell_quote(&self.workdir.to_string_lossy()),
            directives = self.slurm.directives(),
            mtkit = shell_quote(&self.mtkit.to_string_lossy()),
            args = args.join(" "),
            dir = shell_quote(&dir.to_string_lossy()),
        )
    }

    /// The merge job's script (submitted with `--dependency=afterok:` on the shards' jobs).
    pub fn merge_script(&self) -> String {
        let dir = self.parts_dir();
        format!(
            "#!/bin/bash\n\
             # mtkit: merge the {n} shard parts of `mtkit {command}` ({corpus}) into {out}.\n\
             #SBATCH --job-name={name}\n\
             #SBATCH --output={log}/merge-%j.log\n\
             #SBATCH --kill-on-invalid-dep=yes\n\
             {directives}\
             set -euo pipefail\n\
             {mtkit} {command} merge {dir} {flags}\n",
            n = self.spec.shards,
            command = self.spec.command,
            flags = self
                .merge_flags
                .iter()
                .map(|f| shell_quote(f))
                .collect::<Vec<_>>()
                .join(" "),
            corpus = self.name,
            out = self.output.display(),
            name = self.job_name(),
            log = shell_quote(&dir.join("logs").to_string_lossy()),
            directives = self.slurm.directives(),
            mtkit = shell_quote(&self.mtkit.to_string_lossy()),
            dir = shell_quote(&dir.to_string_lossy()),
        )
    }

    /// Writes the folder, its spec and scripts (refusing a folder of another spec), then
    /// submits the shards that have no marker and are not queued, and a merge job.
    pub fn submit(&self) -> Result<Submitted> {
        client("sbatch")?;
        let dir = self.parts_dir();
        std::fs::create_dir_all(dir.join("logs"))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        match PartsSpec::read(&dir) {
            Ok(there) => self.spec.check_same(&there, &dir)?,
            Err(_) => crate::util::paths::write_atomic_bytes(
                &dir.join(SPEC_FILE),
                serde_json::to_string_pretty(&self.spec)?.as_bytes(),
            )?,
        }
        let shards_script = dir.join("shards.sbatch");
        let merge_script = dir.join("merge.sbatch");
        crate::util::paths::write_atomic_bytes(&shards_script, self.array_script().as_bytes())?;
        crate::util::paths::write_atomic_bytes(&merge_script, self.merge_script().as_bytes())?;
        let missing = self.spec.missing(&dir);
        let mut result = Submitted::default();
        if missing.is_empty() && self.output.exists() {
            result.done = true;
            return Ok(result);
        }
        let jobs = queued(&self.job_name())?;
        let in_flight: BTreeSet<u32> = jobs.iter().filter_map(|j| j.task.map(|t| t + 1)).collect();
        // A merge still waiting is replaced by one that waits for every shard job in flight.
        let stale_merges: Vec<String> = jobs
            .iter()
            .filter(|j| j.task.is_none())
            .map(|j| j.job.clone())
            .collect();
        scancel(&stale_merges)?;
        let mut wait_for: BTreeSet<String> = jobs
            .iter()
            .filter(|j| j.task.is_some())
            .map(|j| j.job.clone())
            .collect();
        result.queued = missing
            .iter()
            .copied()
            .filter(|k| in_flight.contains(k))
            .collect();
        result.shards = missing
            .iter()
            .copied()
            .filter(|k| !in_flight.contains(k))
            .collect();
        result.failed = result
            .shards
            .iter()
            .filter_map(|&k| self.spec.failure(&dir, k))
            .collect();
        if !result.shards.is_empty() {
            let list: Vec<String> = result.shards.iter().map(|k| (k - 1).to_string()).collect();
            let id = sbatch(&shards_script, &[format!("--array={}", list.join(","))])?;
            wait_for.insert(id.clone());
            result.array_job = Some(id);
        }
        let mut args = Vec::new();
        if !wait_for.is_empty() {
            let ids: Vec<String> = wait_for.into_iter().collect();
            args.push(format!("--dependency=afterok:{}", ids.join(":")));
        }
        result.merge_job = Some(sbatch(&merge_script, &args)?);
        Ok(result)
    }

    /// Waits until Slurm holds none of these jobs (polling squeue), then fails, naming each
    /// failed shard (or the merge's log), unless the merged output is there.
    pub fn wait(&self, progress: &dyn Fn(usize)) -> Result<()> {
        let mut pause = std::time::Duration::from_millis(500);
        loop {
            let jobs = queued(&self.job_name())?;
            if jobs.is_empty() {
                break;
            }
            progress(jobs.len());
            std::thread::sleep(pause);
            pause = (pause * 2).min(std::time::Duration::from_secs(10));
        }
        let dir = self.parts_dir();
        let missing = self.spec.missing(&dir);
        if missing.is_empty() && self.output.exists() {
            return Ok(());
        }
        let mut why: Vec<String> = missing
            .iter()
            .map(|&k| match self.spec.failure(&dir, k) {
                Some(f) => f.to_string(),
                None => format!("shard {k} of {} never ran (cancelled?)", self.spec.shards),
            })
            .collect();
        if missing.is_empty() {
            let log = newest_log(&dir.join("logs"), "merge-");
            why.push(match log {
                Some(l) => format!(
                    "the merge failed; the end of its log {}:\n    {}",
                    l.display(),
                    tail(&l, 5).join("\n    ")
                ),
                None => "the merge job ended without writing its output or a log".into(),
            });
        }
        bail!(
            "{} was not written:\n{}",
            self.output.display(),
            why.join("\n")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_plain_words_and_quotes_the_rest() {
        assert_eq!(shell_quote("--max-docs"), "--max-docs");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn index_lists_are_written_as_ranges() {
        assert_eq!(ranges(&[1, 2, 3, 4]), "1-4");
        assert_eq!(ranges(&[2]), "2");
        assert_eq!(ranges(&[1, 3, 4, 5, 9]), "1,3-5,9");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn the_first_differing_option_is_named() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(
            first_difference(
                &s(&["profile", "c4", "--ngram", "4"]),
                &s(&["profile", "c4", "--ngram", "2"])
            ),
            "--ngram 4 there, 2 now"
        );
        assert_eq!(
            first_difference(
                &s(&["profile", "c4"]),
                &s(&["profile", "c4", "--max-docs=all"])
            ),
            "--max-docs all now, not there"
        );
    }
}
