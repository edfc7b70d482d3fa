//! Exact n-gram profiles in bounded memory (`profile --memory`, spilled runs merged) and the
//! streaming `profile merge`, on the real samples: a profile that spilled is the same file,
//! byte for byte, as the one counted in memory; eight shard profiles merge into the whole;
//! the runs are gone after success, an error and Ctrl-C; a folder that cannot hold them is a
//! clear error.

mod common;
use common::{pythia_tokenizer, shared_catalog, Sandbox};

use std::path::{Path, PathBuf};

/// Entries of a folder (none when it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default()
}

/// `profile NAME` of the shared catalog with the Pythia tokenizer, every document, 4-grams.
fn profile_args(cat: &Path, tok: &Path, name: &str, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = [
        "profile",
        name,
        "--catalog",
        &cat.display().to_string(),
        "--tokenizer",
        &tok.display().to_string(),
        "--max-docs",
        "all",
        "--no-cache",
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(|s| s.as_str()).collect()
}

#[test]
fn spilled_profiles_are_the_in_memory_profiles_byte_for_byte() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let tmp = sb.path("runs");
    for (name, ngram) in [
        ("c4", "4"),
        ("codesearchnet", "4"),
        ("gsm8k", "3"),
        ("flan", "2"),
    ] {
        let mem = sb.path(&format!("{name}-{ngram}-memory.parquet"));
        let spilled = sb.path(&format!("{name}-{ngram}-spilled.parquet"));
        let o = sb
            .cmd(&strs(&profile_args(
                &cat,
                &tok,
                name,
                &[
                    "--ngram",
                    ngram,
                    "--memory",
                    "64G",
                    "-v",
                    "-o",
                    mem.to_str().unwrap(),
                ],
            )))
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(
            !String::from_utf8_lossy(&o.stderr).contains("spilled"),
            "64G should not spill"
        );
        let o = sb
            .cmd(&strs(&profile_args(
                &cat,
                &tok,
                name,
                &[
                    "--ngram",
                    ngram,
                    "--memory",
                    "1M",
                    "--tmp",
                    tmp.to_str().unwrap(),
                    "-v",
                    "-o",
                    spilled.to_str().unwrap(),
                ],
            )))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{stderr}");
        assert!(stderr.contains("spilled"), "1M should spill: {stderr}");
        let (a, b) = (
            std::fs::read(&mem).unwrap(),
            std::fs::read(&spilled).unwrap(),
        );
        assert!(
            a == b,
            "{name} --ngram {ngram}: the spilled profile ({} bytes) differs from the in-memory one ({} bytes)",
            b.len(),
            a.len()
        );
        assert_eq!(entries(&tmp), Vec::<PathBuf>::new(), "runs left behind");
    }
}

#[test]
fn eight_shard_profiles_merge_into_the_whole() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let whole = sb.path("whole.parquet");
    sb.ok(&strs(&profile_args(
        &cat,
        &tok,
        "codesearchnet",
        &["-o", whole.to_str().unwrap()],
    )));
    let mut parts = Vec::new();
    for k in 1..=8 {
        let p = sb.path(&format!("part-{k}.parquet"));
        // Half of them spilled: a part is the same file either way.
        let memory = if k % 2 == 0 { "1M" } else { "64G" };
        sb.ok(&strs(&profile_args(
            &cat,
            &tok,
            "codesearchnet",
            &[
                "--shard",
                &format!("{k}/8"),
                "--memory",
                memory,
                "-o",
                p.to_str().unwrap(),
            ],
        )));
        parts.push(p.display().to_string());
    }
    // In another order than the shards'.
    parts.reverse();
    let merged = sb.path("merged.parquet");
    let mut args = vec!["profile", "merge"];
    args.extend(parts.iter().map(|s| s.as_str()));
    args.extend(["-o", merged.to_str().unwrap()]);
    let out = sb.ok(&args);
    assert!(out.contains("merged 8 profiles"), "{out}");
    assert!(out.contains("the whole corpus"), "{out}");
    assert!(
        std::fs::read(&whole).unwrap() == std::fs::read(&merged).unwrap(),
        "the merge of 8 shards is not the whole corpus's profile"
    );
}

#[test]
fn a_damaged_part_fails_the_merge_and_writes_nothing() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let mut parts = Vec::new();
    for k in 1..=2 {
        let p = sb.path(&format!("part-{k}.parquet"));
        sb.ok(&strs(&profile_args(
            &cat,
            &tok,
            "gsm8k",
            &["--shard", &format!("{k}/2"), "-o", p.to_str().unwrap()],
        )));
        parts.push(p);
    }
    // One byte of a data page flipped: the pages checksum no longer matches.
    let mut bytes = std::fs::read(&parts[1]).unwrap();
    bytes[100] ^= 0x40;
    std::fs::write(&parts[1], &bytes).unwrap();
    let merged = sb.path("merged.parquet");
    let err = sb.fails(&[
        "profile",
        "merge",
        parts[0].to_str().unwrap(),
        parts[1].to_str().unwrap(),
        "-o",
        merged.to_str().unwrap(),
    ]);
    assert!(err.contains("part-2.parquet"), "{err}");
    assert!(err.contains("damaged"), "{err}");
    assert!(!merged.exists());
}

#[test]
fn runs_are_removed_after_an_error() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    // c4's real documents, then a file whose second line is not JSON: under --strict the
    // profile fails there, after the c4 documents were counted and spilled.
    let c4 = cat
        .parent()
        .unwrap()
        .join("corpora/c4-en-sample-1k.jsonl.gz");
    sb.write("bad.jsonl", "{\"text\": \"fine\"}\n{\"text\": broken\n");
    let mycat = sb.write(
        "cat.toml",
        format!(
            "[datasets.mixed]\nrole = \"pretrain\"\npaths = [\"{}\", \"bad.jsonl\"]\n",
            c4.display()
        ),
    );
    let tmp = sb.path("runs");
    let out = sb.path("mixed.parquet");
    let err = sb.fails(&strs(&profile_args(
        &mycat,
        &tok,
        "mixed",
        &[
            "--strict",
            "--memory",
            "1M",
            "--tmp",
            tmp.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    )));
    assert!(err.contains("bad.jsonl: line 2: malformed JSON"), "{err}");
    assert_eq!(entries(&tmp), Vec::<PathBuf>::new(), "runs left behind");
    assert!(!out.exists());
}

#[test]
fn ctrl_c_stops_the_profile_and_removes_its_runs() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let registry = cat.parent().unwrap().join("registry/catalog.toml");
    let sb = Sandbox::new();
    let tmp = sb.path("runs");
    let out = sb.path("pycode.parquet");
    let mut child = sb
        .cmd(&strs(&profile_args(
            &registry,
            &tok,
            "pycode",
            &[
                "--memory",
                "1M",
                "--tmp",
                tmp.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
        )))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until runs are on disk.
    let runs_written = || {
        entries(&tmp).iter().any(|d| {
            entries(d)
                .iter()
                .any(|f| f.extension().is_some_and(|e| e == "run"))
        })
    };
    let t0 = std::time::Instant::now();
    while !runs_written() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(120),
            "no runs appeared in {}",
            tmp.display()
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before any run was written"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert_eq!(entries(&tmp), Vec::<PathBuf>::new(), "runs left behind");
    assert!(!out.exists());
}

#[test]
fn a_run_folder_that_cannot_be_made_is_a_clear_error() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    // A regular file where a folder is needed (root may write anywhere, so no permissions).
    let file = sb.write("a-file", "x");
    let tmp = file.join("runs");
    let out = sb.path("c4.parquet");
    let err = sb.fails(&strs(&profile_args(
        &cat,
        &tok,
        "c4",
        &[
            "--memory",
            "1M",
            "--tmp",
            tmp.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    )));
    assert!(err.contains("n-gram runs"), "{err}");
    assert!(err.contains(tmp.to_str().unwrap()), "{err}");
    assert!(err.contains("--tmp"), "{err}");
    assert!(!out.exists());
    let err = sb.fails(&strs(&profile_args(
        &cat,
        &tok,
        "c4",
        &["--memory", "lots"],
    )));
    assert!(err.contains("not a size"), "{err}");
}

/// A 1 MiB tmpfs, unmounted again when dropped; `None` (with the reason printed) where this
/// process may not mount one (not root, or a container without the capability).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(at: PathBuf) -> Option<SmallDisk> {
        std::fs::create_dir_all(&at).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(&at)
            .output();
        match out {
            Ok(o) if o.status.success() => Some(SmallDisk(at)),
            Ok(o) => {
                eprintln!(
                    "skipping: cannot mount a small tmpfs here: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("skipping: cannot run mount: {e}");
                None
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// A temporary disk that fills up (a 1 MiB tmpfs; c4's 4-grams spill about 3 MiB of runs
/// under a 1 MiB budget) is an error naming the folder, what the runs took and what was
/// still needed; nothing is left on that disk and no profile is written.
#[test]
fn a_full_temporary_disk_is_a_clear_error() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let Some(disk) = SmallDisk::mount(sb.path("small")) else {
        return;
    };
    let out = sb.path("c4.parquet");
    let err = sb.fails(&strs(&profile_args(
        &cat,
        &tok,
        "c4",
        &[
            "--memory",
            "1M",
            "--tmp",
            disk.0.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ],
    )));
    assert!(err.contains(disk.0.to_str().unwrap()), "{err}");
    assert!(err.contains("No space left on device"), "{err}");
    assert!(
        err.contains("the runs so far take")
            && err.contains("more; free space there or pass --tmp"),
        "{err}"
    );
    assert_eq!(entries(&disk.0), Vec::<PathBuf>::new(), "runs left behind");
    assert!(!out.exists());
}

/// A progress stage as reported: its label, total and unit, and what was advanced in it.
type Stage = (String, Option<u64>, String, u64);

/// What a profile reported, stage by stage.
#[derive(Default)]
struct Recorded(std::sync::Mutex<Vec<Stage>>);

impl mtkit::util::progress::Progress for Recorded {
    fn start(&self, label: &str, total: Option<u64>) {
        let stage = (label.to_string(), total, "docs".to_string(), 0);
        self.0.lock().unwrap().push(stage);
    }
    fn start_counting(&self, label: &str, total: u64, unit: &str) {
        let stage = (label.to_string(), Some(total), unit.to_string(), 0);
        self.0.lock().unwrap().push(stage);
    }
    fn advance(&self, n: u64, _bytes: u64, _tokens: u64) {
        self.0
            .lock()
            .unwrap()
            .last_mut()
            .expect("a stage started")
            .3 += n;
    }
}

#[test]
fn every_phase_of_a_profile_reports_progress_with_its_total() {
    use mtkit::profile::{cached_or_write, NgramMode, ProfileOptions, SpillOptions};
    let sb = Sandbox::new();
    // 3,000 documents of 60 words drawn from 300 (an LCG): 3-grams far past a 1 MiB budget.
    let words: Vec<String> = (0..300).map(|i| format!("w{i}")).collect();
    let tok_path = sb.word_tokenizer(
        "words.json",
        &words.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    let mut x = 7u64;
    let docs: Vec<String> = (0..3000)
        .map(|_| {
            (0..60)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    words[(x >> 33) as usize % 300].clone()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let corpus = sb.jsonl(
        "words.jsonl",
        &docs.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    let card = mtkit::data::catalog::Card::for_files(
        "words",
        vec![corpus.display().to_string()],
        "{text}",
    );
    let tok = mtkit::tokenize::Tokenizer::load(Some(&tok_path)).unwrap();
    let mut opts = ProfileOptions::paper_unigrams();
    opts.sample.max_docs = None;
    opts.ngram = 3;
    opts.ngram_mode = NgramMode::Exact;
    let count = |memory: u64| {
        let rec = Recorded::default();
        let spill = SpillOptions {
            memory,
            dir: sb.path(""),
        };
        let w = cached_or_write(&card, &tok, &opts, false, &rec, &spill).unwrap();
        (w, rec.0.into_inner().unwrap())
    };
    // Spilled: counting (its total the 3,000 lines of the file), then each order's merge of
    // its runs, counted in bytes read, to the runs' full size.
    let (w, stages) = count(1 << 20);
    assert!(w.spilled.is_some(), "1 MiB must spill");
    let labels: Vec<&str> = stages.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(
        labels,
        ["words", "merging 2-gram runs", "merging 3-gram runs"]
    );
    assert_eq!((stages[0].1, stages[0].3), (Some(3000), 3000));
    for (label, total, unit, done) in &stages[1..] {
        assert_eq!(unit, "bytes", "{label}");
        assert!(
            total.unwrap() > 0 && *done == total.unwrap(),
            "{label}: {done} of {total:?}"
        );
    }
    // In memory: counting, then each order's write, counted in the workers' entries merged,
    // at least the n-grams written (workers share some).
    let (w, stages) = count(1 << 30);
    assert!(w.spilled.is_none());
    let labels: Vec<&str> = stages.iter().map(|s| s.0.as_str()).collect();
    assert_eq!(labels, ["words", "writing 2-grams", "writing 3-grams"]);
    let profile = mtkit::profile::Profile::load(&w.path).unwrap();
    for (o, (label, total, unit, done)) in stages[1..].iter().enumerate() {
        assert_eq!(unit, "n-grams", "{label}");
        assert_eq!(Some(*done), *total, "{label}");
        let rows = profile.frame(o + 2).unwrap().height() as u64;
        assert!(
            *done >= rows,
            "{label}: {done} entries merged into {rows} rows"
        );
    }
    // `profile merge` of two shard profiles: one stage, counting the parts' n-gram rows
    // (orders 2 and 3 of each part, read back with the loader), all of them merged.
    let mut parts = Vec::new();
    let mut part_rows = 0u64;
    for k in 1..=2 {
        let mut shard_opts = opts.clone();
        shard_opts.sample.shard = Some(mtkit::data::corpus::Shard { index: k, count: 2 });
        let spill = SpillOptions {
            memory: 1 << 30,
            dir: sb.path(""),
        };
        let w = cached_or_write(
            &card,
            &tok,
            &shard_opts,
            false,
            &Recorded::default(),
            &spill,
        )
        .unwrap();
        let part = sb.path(&format!("part-{k}.parquet"));
        std::fs::copy(&w.path, &part).unwrap();
        let p = mtkit::profile::Profile::load(&part).unwrap();
        part_rows += (2..=3)
            .map(|n| p.frame(n).unwrap().height() as u64)
            .sum::<u64>();
        parts.push(part);
    }
    let rec = Recorded::default();
    mtkit::profile::merge_files(&parts, &sb.path("merged.parquet"), false, &rec).unwrap();
    let stages = rec.0.into_inner().unwrap();
    let want = (
        "merging n-grams".to_string(),
        Some(part_rows),
        "rows".to_string(),
        part_rows,
    );
    assert_eq!(stages, [want]);
}
