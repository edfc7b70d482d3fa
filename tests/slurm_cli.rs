//! `mtkit profile --slurm N` on a real Slurm: scripts/slurm-local.sh starts a single-node
//! Slurm (slurmctld, slurmd, munge) and `.ci/run` points these tests at it (SLURM_CONF), with
//! MTKIT_REQUIRE_SLURM=1 so that they run there rather than skip. Elsewhere, without a Slurm
//! that answers, they skip with the reason.

mod common;
use common::*;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mtkit::profile::Profile;

/// Waits until Slurm holds no job named `name` (two minutes at most).
fn wait_for_jobs(name: &str) {
    let start = Instant::now();
    loop {
        let jobs = mtkit::cluster::slurm::queued(name).unwrap();
        if jobs.is_empty() {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "jobs {name} still queued after 2 minutes: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The job name mtkit gives the jobs of a profile written to `out` (an absolute path).
fn job_name(corpus: &str, out: &Path) -> String {
    let digest = mtkit::util::digest::sha256_hex(out.to_string_lossy().as_bytes());
    format!("mtkit-profile-{corpus}-{}", &digest[..8])
}

/// Counts equal exactly: unigrams, every n-gram order, documents, tokens, bytes.
fn assert_same_counts(a: &Path, b: &Path) {
    let (pa, pb) = (Profile::load(a).unwrap(), Profile::load(b).unwrap());
    assert_eq!(pa.unigram, pb.unigram, "unigrams");
    assert_eq!(pa.ngrams, pb.ngrams, "n-grams");
    assert_eq!(pa.totals, pb.totals, "totals");
    assert_eq!(pa.meta.ngram, pb.meta.ngram);
}

const SAMPLE: &[&str] = &["--max-docs", "all", "--ngram", "3"];

/// A real sample (the shared C4 documents) profiled as a 4-task job array plus a merge job
/// equals the one-process profile exactly, and `mtkit proximity` takes it.
#[test]
fn a_profile_from_four_array_tasks_and_a_merge_equals_the_whole() {
    if !slurm_up() {
        return;
    }
    let Some(catalog) = shared_catalog() else {
        return;
    };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, tok) = (catalog.to_str().unwrap(), tok.to_str().unwrap());
    let mut args = vec!["profile", "c4", "--catalog", cat, "--tokenizer", tok];
    args.extend_from_slice(SAMPLE);
    let mut whole = args.clone();
    whole.extend_from_slice(&["-o", "whole.parquet", "--quiet"]);
    sb.ok(&whole);
    let mut slurm = args.clone();
    slurm.extend_from_slice(&["--slurm", "4", "-o", "c4.parquet"]);
    let said = sb.ok(&slurm);
    assert!(
        said.contains("submitted shards 1-4 of 4 as job array"),
        "{said}"
    );
    assert!(said.contains("submitted the merge"), "{said}");
    wait_for_jobs(&job_name("c4", &sb.path("c4.parquet")));
    assert_same_counts(&sb.path("c4.parquet"), &sb.path("whole.parquet"));
    // The merge job's dependency was on the array (the script says so, and the log exists).
    let merge = std::fs::read_to_string(sb.path("c4.parquet.parts/merge.sbatch")).unwrap();
    assert!(merge.contains("profile merge") && merge.contains("--kill-on-invalid-dep=yes"));
    let out = sb.ok(&[
        "proximity",
        "whole.parquet",
        "c4.parquet",
        "whole.parquet",
        "--tokenizer",
        tok,
        "--quiet",
    ]);
    assert!(out.contains("c4"), "{out}");
    // Once done, the same command says so and submits nothing.
    let again = sb.ok(&slurm);
    assert!(
        again.contains("is complete: all 4 shards done and merged"),
        "{again}"
    );
}

/// One array task cancelled (`scancel` of that task) → its part is missing, the merge job is
/// dropped (its dependency can never be met) and a merge by hand names the shard; the same
/// command again submits only that shard and a merge, which completes and equals the whole.
#[test]
fn a_cancelled_shard_is_resubmitted_alone_and_the_merge_still_equals_the_whole() {
    if !slurm_up() {
        return;
    }
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let docs: Vec<String> = (0..40)
        .map(|i| format!("document {i} says {} things about {}", i * 7, i % 5))
        .collect();
    sb.jsonl(
        "d.jsonl",
        &docs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    sb.write(
        "cat.toml",
        "[datasets.d]\nrole = \"target\"\npaths = [\"d.jsonl\"]\n",
    );
    let tok = tok.to_str().unwrap();
    let base = [
        "profile",
        "d",
        "--catalog",
        "cat.toml",
        "--tokenizer",
        tok,
        "--max-docs",
        "all",
    ];
    let mut whole = base.to_vec();
    whole.extend_from_slice(&["-o", "whole.parquet", "--quiet"]);
    sb.ok(&whole);
    // Submitted held, so that one task can be cancelled before it runs.
    let mut held = base.to_vec();
    held.extend_from_slice(&["--slurm", "4", "-o", "d.parquet", "--sbatch-arg=--hold"]);
    let said = sb.ok(&held);
    let array = said
        .split("as job array ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    let merge = said
        .split("as job ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or_else(|| panic!("{said}"))
        .to_string();
    let st = Command::new("scancel")
        .arg(format!("{array}_1"))
        .status()
        .unwrap();
    assert!(st.success());
    let st = Command::new("scontrol")
        .args(["release", &array])
        .status()
        .unwrap();
    assert!(st.success());
    // The merge job may already be gone: its afterok can no longer be met, and it was
    // submitted with --kill-on-invalid-dep. If it is still held, release it to see it dropped.
    let _ = Command::new("scontrol")
        .args(["release", &merge])
        .stderr(std::process::Stdio::null())
        .status();
    let name = job_name("d", &sb.path("d.parquet"));
    wait_for_jobs(&name);
    assert!(
        !sb.path("d.parquet").exists(),
        "the merge must not run without shard 2"
    );
    assert!(!sb.path("d.parquet.parts/part-2-of-4.done").exists());
    let err = sb.fails(&["profile", "merge", "d.parquet.parts", "-o", "d.parquet"]);
    assert!(err.contains("shard 2 of 4 is missing"), "{err}");
    // The same command (not held this time) resubmits shard 2 alone.
    let mut again = base.to_vec();
    again.extend_from_slice(&["--slurm", "4", "-o", "d.parquet"]);
    let said = sb.ok(&again);
    assert!(
        said.contains("submitted shards 2 of 4 as job array"),
        "{said}"
    );
    wait_for_jobs(&name);
    assert_same_counts(&sb.path("d.parquet"), &sb.path("whole.parquet"));
}

/// Bad input is refused before anything is submitted, with the cause.
#[test]
fn slurm_mistakes_fail_clearly() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    sb.jsonl("d.jsonl", &["one document", "another one"]);
    sb.write(
        "cat.toml",
        "[datasets.d]\nrole = \"target\"\npaths = [\"d.jsonl\"]\n",
    );
    let tok = tok.to_str().unwrap();
    let run = |extra: &[&str], path: Option<&str>| {
        let mut args = vec!["profile", "d", "--catalog", "cat.toml", "--tokenizer", tok];
        args.extend_from_slice(extra);
        let mut c = sb.cmd(&args);
        if let Some(p) = path {
            c.env("PATH", p);
        }
        let o = c.output().unwrap();
        assert!(!o.status.success(), "{args:?} succeeded");
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    assert!(run(&["--slurm", "0", "-o", "x.parquet"], None).contains("--slurm needs N ≥ 1"));
    assert!(run(&["--slurm", "2"], None).contains("give one NAME and -o FILE.parquet"));
    assert!(run(&["--partition", "p"], None).contains("go with --slurm N"));
    let err = run(&["--slurm", "2", "-o", "x.parquet"], Some("/nonexistent"));
    assert!(
        err.contains("no `sbatch` on PATH") && err.contains("slurm-client"),
        "{err}"
    );
    // More shards than records: some would be empty.
    assert!(run(&["--slurm", "3", "-o", "x.parquet"], None)
        .contains("--slurm 3: corpus `d` has 2 records, so 1 of the 3 shards would be empty"),);
    if !slurm_up() {
        return;
    }
    // More shards than Slurm's MaxArraySize (1001 on the local Slurm, read from scontrol).
    let many: Vec<String> = (0..1100).map(|i| format!("record {i}")).collect();
    sb.jsonl(
        "many.jsonl",
        &many.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    sb.write(
        "many.toml",
        "[datasets.many]\nrole = \"target\"\npaths = [\"many.jsonl\"]\n",
    );
    let o = sb.run(&[
        "profile",
        "many",
        "--catalog",
        "many.toml",
        "--tokenizer",
        tok,
        "--slurm",
        "1050",
        "-o",
        "m.parquet",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("MaxArraySize is 1001"),
        "{err}"
    );
    // Slurm's own refusal is shown.
    let err = run(
        &[
            "--slurm",
            "2",
            "-o",
            "y.parquet",
            "--partition",
            "no-such-partition",
        ],
        None,
    );
    assert!(
        err.contains("Slurm refused the job") && err.contains("partition"),
        "{err}"
    );
    // A parts folder of another spec is refused, naming the setting.
    let ok = sb.ok(&[
        "profile",
        "d",
        "--catalog",
        "cat.toml",
        "--tokenizer",
        tok,
        "--ngram",
        "2",
        "--slurm",
        "2",
        "-o",
        "z.parquet",
        "--sbatch-arg=--hold",
    ]);
    assert!(ok.contains("submitted shards 1-2 of 2"), "{ok}");
    let err = run(&["--ngram", "3", "--slurm", "2", "-o", "z.parquet"], None);
    assert!(
        err.contains("holds parts of another profile (--ngram 2 there, 3 now)"),
        "{err}"
    );
    let name = job_name("d", &sb.path("z.parquet"));
    let ids: Vec<String> = mtkit::cluster::slurm::queued(&name)
        .unwrap()
        .into_iter()
        .map(|j| j.job)
        .collect();
    mtkit::cluster::slurm::scancel(&ids).unwrap();
    wait_for_jobs(&name);
}

/// Whatever options the user typed reach every task once: `-q` (the tasks add their own
/// `--quiet`), `-v`, `--threads 1`, two catalogs one of them in a folder with a space,
/// `--no-cache`; `--wait` waits for the array and the merge, and the merged profile equals the
/// one-process profile.
#[test]
fn shards_get_each_option_once_whatever_the_user_typed_and_merge_into_the_whole() {
    if !slurm_up() {
        return;
    }
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let docs: Vec<String> = (0..30)
        .map(|i| format!("line {i}: {} apples and {} pears", i * 3, i % 4))
        .collect();
    sb.jsonl(
        "my data/d.jsonl",
        &docs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    sb.write(
        "my data/cat.toml",
        "[datasets.d]\nrole = \"target\"\npaths = [\"d.jsonl\"]\n",
    );
    sb.write(
        "extra.toml",
        "[datasets.other]\nrole = \"target\"\npaths = [\"nothing-*.jsonl\"]\n",
    );
    let tok = tok.to_str().unwrap();
    let base = [
        "profile",
        "d",
        "--catalog",
        "my data/cat.toml",
        "--catalog",
        "extra.toml",
        "--tokenizer",
        tok,
        "--max-docs",
        "all",
        "--ngram",
        "3",
    ];
    let mut whole = base.to_vec();
    whole.extend_from_slice(&["-o", "whole.parquet", "--quiet"]);
    sb.ok(&whole);
    let mut slurm = vec!["-v", "--threads", "1"];
    slurm.extend_from_slice(&base);
    slurm.extend_from_slice(&[
        "--no-cache",
        "-q",
        "--slurm",
        "3",
        "-o",
        "d.parquet",
        "--wait",
    ]);
    let said = sb.ok(&slurm);
    assert!(said.contains("submitted shards 1-3 of 3"), "{said}");
    assert!(
        said.contains("d.parquet is written: all 3 shards done"),
        "{said}"
    );
    assert_same_counts(&sb.path("d.parquet"), &sb.path("whole.parquet"));
    let script = std::fs::read_to_string(sb.path("d.parquet.parts/shards.sbatch")).unwrap();
    let line = script
        .lines()
        .find(|l| l.contains(" profile d ") && l.contains("--shard"))
        .unwrap_or_else(|| panic!("{script}"));
    let count = |w: &str| line.split_whitespace().filter(|x| *x == w).count();
    assert_eq!(count("--quiet"), 1, "{line}");
    assert_eq!(count("-q"), 0, "{line}");
    assert_eq!(count("-v"), 1, "{line}");
    assert_eq!(count("--catalog"), 2, "{line}");
    assert!(line.contains("--threads 1 -v profile d "), "{line}");
    let spaced = format!("'{}'", sb.path("my data/cat.toml").display());
    assert!(
        line.contains(&spaced),
        "the path with a space is quoted: {line}"
    );
    // The logs of the tasks hold what -v prints, and no clap error.
    for entry in std::fs::read_dir(sb.path("d.parquet.parts/logs")).unwrap() {
        let log = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(!log.contains("cannot be used multiple times"), "{log}");
    }
}

/// A shard that fails (a malformed record in shard 2 under --strict) is named with its exit
/// code and the end of its log: by `--wait` (non-zero exit), by `profile merge` of the parts
/// folder, and by the next submission, which resubmits it.
#[test]
fn a_failed_shard_is_named_with_its_exit_code_and_the_end_of_its_log() {
    if !slurm_up() {
        return;
    }
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    // Records 0..5; shard 2 of 3 holds records 1 and 4, and record 4 (line 5) is broken.
    sb.write(
        "d.jsonl",
        "{\"text\":\"a b c\"}\n{\"text\":\"d e\"}\n{\"text\":\"f g\"}\n{\"text\":\"h i\"}\n{\"text\": \"broken\n{\"text\":\"j k\"}\n",
    );
    sb.write(
        "cat.toml",
        "[datasets.d]\nrole = \"target\"\npaths = [\"d.jsonl\"]\n",
    );
    let tok = tok.to_str().unwrap();
    let args = [
        "profile",
        "d",
        "--catalog",
        "cat.toml",
        "--tokenizer",
        tok,
        "--max-docs",
        "all",
        "--strict",
        "--slurm",
        "3",
        "-o",
        "d.parquet",
    ];
    let mut wait = args.to_vec();
    wait.push("--wait");
    let err = sb.fails(&wait);
    assert!(
        err.contains("shard 2 of 3 failed with exit code 1"),
        "{err}"
    );
    assert!(
        err.contains("line 5: malformed JSON") && err.contains("shard-1-"),
        "the log's end is shown: {err}"
    );
    assert!(
        !err.contains("shard 1 of 3") && !err.contains("shard 3 of 3"),
        "{err}"
    );
    assert!(!sb.path("d.parquet").exists());
    let merge = sb.fails(&["profile", "merge", "d.parquet.parts", "-o", "d.parquet"]);
    assert!(
        merge.contains("shard 2 of 3 failed with exit code 1"),
        "{merge}"
    );
    // The same command again names it and resubmits shard 2 alone.
    let out = sb.run(&args);
    assert!(out.status.success());
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stderr.contains("shard 2 of 3 failed with exit code 1"),
        "{stderr}"
    );
    assert!(
        stdout.contains("submitted shards 2 of 3 as job array"),
        "{stdout}"
    );
    wait_for_jobs(&job_name("d", &sb.path("d.parquet")));
    // A stray part of another shard count is refused by name.
    sb.write("d.parquet.parts/part-4-of-3.parquet", "x");
    let merge = sb.fails(&["profile", "merge", "d.parquet.parts", "-o", "d.parquet"]);
    assert!(
        merge.contains("part-4-of-3.parquet is not of this folder's 3 shards"),
        "{merge}"
    );
}

/// `mtkit overlap --slurm 3 --wait`: three array tasks scan their shards of GSM8K train and
/// FLAN against GSM8K test into parts, the merge job adds them; the table and the pairs are
/// those of the one-process scan, byte for byte. Again, the same command says it is complete.
#[test]
fn an_overlap_scan_from_three_array_tasks_and_a_merge_equals_the_whole() {
    if !slurm_up() {
        return;
    }
    let (Some(catalog), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, tok) = (catalog.to_str().unwrap(), tok.to_str().unwrap());
    let args = [
        "overlap",
        "gsm8k",
        "flan",
        "--against",
        "gsm8k-test",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
    ];
    fn with<'a>(args: &[&'a str], extra: &[&'a str]) -> Vec<&'a str> {
        [args, extra].concat()
    }
    sb.ok(&with(
        &args,
        &["--csv", "whole.csv", "--details", "whole.parquet", "-q"],
    ));
    let slurm = with(
        &args,
        &[
            "--slurm",
            "3",
            "--csv",
            "s.csv",
            "--details",
            "s.parquet",
            "--wait",
        ],
    );
    let said = sb.ok(&slurm);
    assert!(
        said.contains("submitted shards 1-3 of 3 as job array"),
        "{said}"
    );
    assert!(
        said.contains("s.csv is written: all 3 shards done and merged"),
        "{said}"
    );
    let read = |f: &str| std::fs::read(sb.path(f)).unwrap();
    assert_eq!(read("s.csv"), read("whole.csv"));
    assert_eq!(read("s.parquet"), read("whole.parquet"));
    let again = sb.ok(&slurm);
    assert!(
        again.contains("is complete: all 3 shards done and merged"),
        "{again}"
    );
}
