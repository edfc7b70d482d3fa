//! Nothing a user wrote is removed or replaced, no flag value aborts the process, and no
//! temporary folder outlives a signal (issue 35). Each test runs the real binary on real
//! files; those that need the shared samples or the Pythia tokenizer skip with a reason where
//! they are absent, and CI points them at them.

mod common;

use common::{pythia_tokenizer, shared_catalog, Sandbox};
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A small corpus of plain words under a word-level tokenizer (with an EOS for tokenize):
/// `fields` (300 documents). Returns (catalog, tokenizer).
fn fields_corpus(sb: &Sandbox) -> (String, String) {
    let mut vocab: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    vocab.push("<|endoftext|>".into());
    let refs: Vec<&str> = vocab.iter().map(|s| s.as_str()).collect();
    let tok = sb.word_tokenizer("tok.json", &refs).display().to_string();
    let docs: Vec<String> = (0..300)
        .map(|d| {
            (0..20 + d % 13)
                .map(|i| format!("w{}", (d * 7 + i * 3) % 40))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(|s| s.as_str()).collect();
    sb.jsonl("data/fields.jsonl", &refs);
    let cat = sb.write(
        "cat.toml",
        "[datasets.fields]\nrole = \"pretrain\"\npaths = [\"data/fields.jsonl\"]\ntext = \"{text}\"\n",
    );
    (cat.display().to_string(), tok)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Everything in `dir` (recursively), as paths relative to it.
fn tree(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Leftovers of mtkit's temporary files and folders anywhere under `dir`.
fn leftovers(dir: &Path) -> Vec<String> {
    tree(dir)
        .into_iter()
        .filter(|p| {
            let name = p.rsplit('/').next().unwrap();
            name.contains(".mtkit-") || name.starts_with(".mtkit-runs")
        })
        .collect()
}

#[test]
fn tokenize_never_replaces_a_file_or_a_link_at_its_corpus_folder() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    for format in ["mtkit", "megatron", "olmo-core", "litdata"] {
        let out = sb.path(&format!("out-{format}"));
        std::fs::create_dir_all(&out).unwrap();
        let mine = out.join("fields");
        std::fs::write(&mine, "the user's notes\n").unwrap();
        let args = [
            "tokenize",
            "fields",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "-o",
            out.to_str().unwrap(),
            "--format",
            format,
            "--max-docs",
            "all",
        ];
        let err = sb.fails(&args);
        assert!(
            err.contains("is a file") && err.contains("fields"),
            "{format}: {err}"
        );
        assert_eq!(
            std::fs::read_to_string(&mine).unwrap(),
            "the user's notes\n",
            "{format}: the user's file changed"
        );
        assert_eq!(tree(&out), vec!["fields".to_string()], "{format}");
    }
    // A link to a file, and a dangling link: refused, both left as they were.
    let out = sb.path("out-links");
    std::fs::create_dir_all(&out).unwrap();
    let target_file = sb.write("elsewhere.txt", "keep me");
    symlink(&target_file, out.join("fields")).unwrap();
    let args = [
        "tokenize",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        out.to_str().unwrap(),
        "--max-docs",
        "all",
    ];
    let err = sb.fails(&args);
    assert!(err.contains("link to a file"), "{err}");
    assert!(std::fs::symlink_metadata(out.join("fields"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(std::fs::read_to_string(&target_file).unwrap(), "keep me");
    std::fs::remove_file(out.join("fields")).unwrap();
    symlink(sb.path("no-such-scratch"), out.join("fields")).unwrap();
    let err = sb.fails(&args);
    assert!(err.contains("does not exist"), "{err}");
    assert!(std::fs::symlink_metadata(out.join("fields"))
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!sb.path("no-such-scratch").exists());
}

#[test]
fn tokenize_writes_through_a_link_to_a_folder_and_keeps_the_link() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    let scratch = sb.path("scratch/fields-tokens");
    std::fs::create_dir_all(&scratch).unwrap();
    let out = sb.path("out");
    std::fs::create_dir_all(&out).unwrap();
    symlink(&scratch, out.join("fields")).unwrap();
    let args = [
        "tokenize",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        out.to_str().unwrap(),
        "--max-docs",
        "all",
        "--val-docs",
        "10",
    ];
    sb.ok(&args);
    let link = out.join("fields");
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    // The files are on the "scratch disk", where the link points.
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(scratch.join("meta.json")).unwrap()).unwrap();
    assert_eq!(
        meta["train_docs"].as_u64().unwrap() + meta["val_docs"].as_u64().unwrap(),
        300
    );
    // A rerun replaces mtkit's own files there, still through the link.
    sb.ok(&args);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(scratch.join("train.tokens").is_file());
    assert_eq!(leftovers(sb.dir.path()), Vec::<String>::new());
}

#[test]
fn file_outputs_write_through_links_and_never_replace_a_folder() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    sb.jsonl("data/other.jsonl", &["w1 w2 w3 w4", "w5 w6 w7", "w1 w9 w2"]);
    std::fs::write(
        &cat,
        std::fs::read_to_string(&cat).unwrap()
            + "[datasets.other]\nrole = \"target\"\npaths = [\"data/other.jsonl\"]\ntext = \"{text}\"\n",
    )
    .unwrap();
    let real = sb.write("results/real.csv", "old\n");
    let link = sb.path("link.csv");
    symlink(&real, &link).unwrap();
    let base = [
        "proximity",
        "fields",
        "fields",
        "other",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "1",
        "--csv",
    ];
    let mut args = base.to_vec();
    args.push(link.to_str().unwrap());
    sb.ok(&args);
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let csv = std::fs::read_to_string(&real).unwrap();
    assert!(csv.starts_with("corpus,role,metric"), "{csv}");
    // A folder where a file is asked for: an error, the folder untouched.
    let folder = sb.path("a-folder");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("keep.txt"), "x").unwrap();
    let mut args = base.to_vec();
    args.push(folder.to_str().unwrap());
    let err = sb.fails(&args);
    assert!(err.contains("is a folder"), "{err}");
    assert_eq!(tree(&folder), vec!["keep.txt".to_string()]);
    // profile -o through a link too.
    let real_profile = sb.path("results/fields.parquet");
    std::fs::write(&real_profile, "placeholder").unwrap();
    let plink = sb.path("fields-link.parquet");
    symlink(&real_profile, &plink).unwrap();
    sb.ok(&[
        "profile",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "2",
        "-o",
        plink.to_str().unwrap(),
        "-q",
    ]);
    assert!(std::fs::symlink_metadata(&plink)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read(&real_profile).unwrap().starts_with(b"PAR1"));
}

#[test]
fn huge_bucket_counts_are_an_error_with_the_figures_not_an_abort() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    // Unlimited (this machine's memory decides), and under a 2 GiB address-space limit.
    for limit in [None, Some(2u64 << 20)] {
        let mut c = limited(
            &sb,
            limit,
            &[
                "profile",
                "fields",
                "--catalog",
                &cat,
                "--tokenizer",
                &tok,
                "--ngram",
                "2",
                "--ngram-buckets",
                "1073741824",
                "--no-cache",
            ],
        );
        let o = c.output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "limit {limit:?}: {err}");
        assert!(err.contains("--ngram-buckets 1073741824"), "{err}");
        assert!(err.contains("can still allocate"), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
        if limit.is_some() {
            assert!(err.contains("ulimit -v"), "the limit is named: {err}");
        }
    }
}

/// `mtkit ARGS` under `ulimit -v KIB` (through the shell, as a user would set it).
fn limited(sb: &Sandbox, kib: Option<u64>, args: &[&str]) -> Command {
    let mut c = Command::new("bash");
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let ulimit = kib.map(|k| format!("ulimit -v {k}; ")).unwrap_or_default();
    c.arg("-c")
        .arg(format!(
            "{ulimit}exec '{}' {}",
            common::mtkit_binary().display(),
            quoted.join(" ")
        ))
        .current_dir(sb.dir.path())
        .env("MTKIT_CACHE", sb.path("cache"))
        .env_remove("MTKIT_CATALOG")
        .env_remove("MTKIT_TOKENIZER")
        .env_remove("MTKIT_THREADS");
    c
}

/// Every numeric flag of profile, tokenize, proximity and suggest-mix at the ends of what
/// clap accepts, under a 2 GiB address-space limit: each run ends with success or a clear
/// error (exit 0 or 1), never a signal, an abort (134) or a panic, within a minute.
#[test]
fn every_numeric_flag_at_its_extremes_ends_with_an_error_or_a_result() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    sb.jsonl("data/t.jsonl", &["w1 w2 w3", "w4 w5 w1 w2"]);
    sb.jsonl(
        "data/c.jsonl",
        &["w1 w2 w3 w9", "w4 w5 w1 w2 w8", "w30 w31"],
    );
    std::fs::write(
        &cat,
        std::fs::read_to_string(&cat).unwrap()
            + "[datasets.t]\nrole = \"target\"\npaths = [\"data/t.jsonl\"]\ntext = \"{text}\"\n"
            + "[datasets.c]\nrole = \"midtrain\"\npaths = [\"data/c.jsonl\"]\ntext = \"{text}\"\n",
    )
    .unwrap();
    let u64max = u64::MAX.to_string();
    let usizemax = usize::MAX.to_string();
    let corpus_flags: Vec<(&str, Vec<&str>)> = vec![
        ("--max-docs", vec!["0", "1", &u64max, "all"]),
        ("--seed", vec!["0", &u64max]),
        ("--max-chars", vec!["0", "1", &usizemax]),
        ("--max-tokens-per-doc", vec!["0", "1", &usizemax]),
        (
            "--shard",
            vec![
                "1/1",
                "1/18446744073709551615",
                "18446744073709551615/18446744073709551615",
            ],
        ),
        ("--threads", vec!["0", "1", "100000", &usizemax]),
    ];
    let ngram_flags: Vec<(&str, Vec<&str>)> = vec![
        ("--ngram", vec!["0", "1", "8", "9", &usizemax]),
        ("--ngram-buckets", vec!["0", "1", "1073741824", &u64max]),
    ];
    let out = sb.path("out").display().to_string();
    let mut cases: Vec<Vec<String>> = Vec::new();
    let base_profile = [
        "profile",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--no-cache",
        "-q",
    ];
    let base_prox = [
        "proximity",
        "fields",
        "t",
        "t",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--no-cache",
        "-q",
    ];
    let base_mix = [
        "suggest-mix",
        "--pretrain",
        "fields",
        "--candidates",
        "c",
        "--target",
        "t",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--available",
        "fields=1e12,c=1e12",
    ];
    let base_tok = [
        "tokenize",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        &out,
        "-q",
    ];
    for (flag, values) in corpus_flags.iter().chain(&ngram_flags) {
        for v in values {
            for base in [&base_profile[..], &base_prox[..], &base_mix[..]] {
                let mut c: Vec<String> = base.iter().map(|s| s.to_string()).collect();
                c.extend([flag.to_string(), v.to_string()]);
                cases.push(c);
            }
        }
    }
    for (flag, values) in [
        (
            "--memory",
            vec!["0", "1M", "1T", "16000P", "18446744073709551615"],
        ),
        ("--slurm", vec!["0"]),
    ] {
        for v in values {
            let mut c: Vec<String> = base_profile.iter().map(|s| s.to_string()).collect();
            c.extend([
                "--ngram".into(),
                "3".into(),
                flag.to_string(),
                v.to_string(),
            ]);
            cases.push(c);
        }
    }
    for (flag, values) in [
        ("--bootstrap", vec!["0", "1", &usizemax as &str]),
        ("--smoothing", vec!["0", "1e-300", "1e300", "inf", "NaN"]),
        ("--mix", vec!["0", "1", "-1", "1e308", "NaN"]),
    ] {
        for v in values {
            let mut c: Vec<String> = base_prox.iter().map(|s| s.to_string()).collect();
            c.extend([
                "--ngram".into(),
                "1".into(),
                flag.to_string(),
                v.to_string(),
            ]);
            cases.push(c);
        }
    }
    for (flag, values) in [
        ("--total-steps", vec!["0", "1", &u64max as &str]),
        ("--tokens-per-step", vec!["0", "1", &u64max]),
        ("--max-repeat", vec!["0", "-1", "1e308", "NaN", "inf"]),
        ("--min-general", vec!["0", "1", "-0.5", "2", "NaN"]),
        ("--min-weight", vec!["0", "1", "-1", "NaN"]),
        ("--start", vec!["0", "1", "0.5", "-1", "NaN"]),
        ("--top", vec!["0", "1", &usizemax]),
        ("--seq-len", vec!["0", "1", &u64max]),
        ("--lr", vec!["0", "-1", "NaN", "inf"]),
        ("--sft-epochs", vec!["0", "-1", "NaN", "1e308"]),
        ("--available", vec!["c=0", "c=1e308", "c=NaN", "c=-1"]),
        ("--max-docs", vec!["0", &u64max]),
    ] {
        for v in values {
            let mut c: Vec<String> = base_mix.iter().map(|s| s.to_string()).collect();
            c.extend([flag.to_string(), v.to_string()]);
            cases.push(c);
        }
    }
    for (flag, values) in [
        ("--val-docs", vec!["0", "1", "299", "300", &u64max as &str]),
        ("--max-docs", vec!["0", "1", &u64max]),
        ("--seed", vec![&u64max as &str]),
        ("--olmo-file-size", vec!["0", "1", "16000P"]),
        ("--litdata-chunk-tokens", vec!["0", "1", &u64max]),
    ] {
        for format in ["mtkit", "olmo-core", "litdata"] {
            for v in &values {
                let mut c: Vec<String> = base_tok.iter().map(|s| s.to_string()).collect();
                c.extend([
                    "--format".into(),
                    format.into(),
                    flag.to_string(),
                    v.to_string(),
                ]);
                if flag != "--val-docs" && format == "mtkit" {
                    c.extend(["--val-docs".into(), "0".into()]);
                }
                cases.push(c);
            }
        }
    }
    let mut bad = Vec::new();
    // Per command, how many runs gave a result: the extremes must not all be refused by the
    // same early error, or the test would prove nothing about the work.
    let mut succeeded: std::collections::BTreeMap<String, usize> = Default::default();
    for case in &cases {
        let args: Vec<&str> = case.iter().map(|s| s.as_str()).collect();
        let mut child = limited(&sb, Some(2 << 20), &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let t0 = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if t0.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        use std::io::Read;
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        // 2: clap refused the value, with its usage line.
        let ok = matches!(status.and_then(|s| s.code()), Some(0) | Some(1) | Some(2))
            && !err.contains("panicked")
            && !err.contains("memory allocation of");
        if status.and_then(|s| s.code()) == Some(0) {
            *succeeded.entry(case[0].clone()).or_default() += 1;
        }
        if !ok {
            bad.push(format!(
                "mtkit {}\n  -> {status:?}\n  {}",
                case.join(" "),
                err.lines().rev().take(3).collect::<Vec<_>>().join("\n  ")
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {} runs aborted, panicked or hung:\n{}",
        bad.len(),
        cases.len(),
        bad.join("\n")
    );
    for command in ["profile", "proximity", "suggest-mix", "tokenize"] {
        let n = succeeded.get(command).copied().unwrap_or(0);
        assert!(
            n >= 5,
            "only {n} runs of {command} gave a result: {succeeded:?}"
        );
    }
    eprintln!(
        "{} runs; results (exit 0) per command: {succeeded:?}",
        cases.len()
    );
}

#[test]
fn a_partial_merge_is_refused_unless_asked_for_and_then_shown_by_proximity() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    let mut parts = Vec::new();
    for k in 1..=3 {
        let p = sb.path(&format!("p-{k}.parquet"));
        sb.ok(&[
            "profile",
            "fields",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--ngram",
            "2",
            "--max-docs",
            "all",
            "--shard",
            &format!("{k}/3"),
            "-o",
            p.to_str().unwrap(),
            "-q",
        ]);
        parts.push(p.display().to_string());
    }
    let merged = sb.path("merged.parquet").display().to_string();
    let err = sb.fails(&["profile", "merge", &parts[0], &parts[1], "-o", &merged]);
    assert!(
        err.contains("3/3") && err.contains("missing") && err.contains("--partial"),
        "{err}"
    );
    assert!(!Path::new(&merged).exists());
    sb.ok(&[
        "profile",
        "merge",
        &parts[0],
        &parts[1],
        "-o",
        &merged,
        "--partial",
    ]);
    let table = sb.ok(&["proximity", &merged, &parts[2], &parts[2], "--ngram", "2"]);
    assert!(
        table.contains("covers shards 1/3, 2/3 of its corpus only"),
        "{table}"
    );
    // All three: the whole corpus, no note.
    sb.ok(&[
        "profile", "merge", &parts[0], &parts[1], &parts[2], "-o", &merged,
    ]);
    let table = sb.ok(&["proximity", &merged, &merged, &merged, "--ngram", "2"]);
    assert!(!table.contains("covers shards"), "{table}");
}

#[test]
fn tmp_is_left_alone_when_nothing_spills() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    let tmp = sb.path("no/such/tmp");
    sb.ok(&[
        "profile",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "3",
        "--tmp",
        tmp.to_str().unwrap(),
        "-q",
    ]);
    assert!(
        !sb.path("no").exists(),
        "--tmp was created though nothing spilled"
    );
}

#[test]
fn a_folder_corpus_skips_the_profiles_and_token_files_written_into_it() {
    let sb = Sandbox::new();
    let (_, tok) = fields_corpus(&sb);
    let cat = sb.write(
        "dircat.toml",
        "[datasets.folder]\nrole = \"pretrain\"\npaths = [\"data\"]\ntext = \"{text}\"\n",
    );
    let cat = cat.to_str().unwrap();
    let run = || {
        sb.ok(&[
            "profile",
            "folder",
            "--catalog",
            cat,
            "--tokenizer",
            &tok,
            "--ngram",
            "2",
            "--max-docs",
            "all",
            "-o",
            "data/folder.parquet",
        ])
    };
    let first = run();
    let tokenized = sb.ok(&[
        "tokenize",
        "folder",
        "--catalog",
        cat,
        "--tokenizer",
        &tok,
        "-o",
        "data/tokens",
    ]);
    let skipped = tokenized
        .lines()
        .find(|l| l.starts_with("folder"))
        .unwrap()
        .split_whitespace()
        .last()
        .unwrap()
        .to_string();
    assert_eq!(
        skipped, "0",
        "the profile in the folder was read as corpus: {tokenized}"
    );
    let second = sb.ok(&[
        "profile",
        "folder",
        "--catalog",
        cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "2",
        "--max-docs",
        "all",
        "-o",
        "data/folder.parquet",
        "--no-cache",
    ]);
    // (docs, skipped) of the summary table's row.
    let row = |t: &str| {
        let f: Vec<String> = t
            .lines()
            .find(|l| l.starts_with("folder"))
            .unwrap()
            .split_whitespace()
            .map(String::from)
            .collect();
        (f[1].clone(), f[5].clone())
    };
    assert_eq!(row(&first), ("300".into(), "0".into()), "{first}");
    assert_eq!(
        row(&second),
        ("300".into(), "0".into()),
        "its own outputs were read as corpus: {second}"
    );
}

#[test]
fn data_list_counts_by_streaming_and_remembers_counts() {
    let sb = Sandbox::new();
    // A small .jsonl.zst that expands to 600 MB: counted up to a bound, in bounded memory.
    {
        let f = std::fs::File::create(sb.path("bomb.jsonl.zst")).unwrap();
        let mut z = zstd::stream::write::Encoder::new(f, 3).unwrap();
        let line =
            b"{\"text\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}\n";
        let block: Vec<u8> = line
            .iter()
            .copied()
            .cycle()
            .take(line.len() * 16384)
            .collect();
        use std::io::Write;
        for _ in 0..(600 << 20) / block.len() {
            z.write_all(&block).unwrap();
        }
        z.finish().unwrap();
    }
    // A plain file with blank lines: 3 records.
    sb.write(
        "small.jsonl",
        "{\"text\":\"a\"}\n\n{\"text\":\"b\"}\n   \n{\"text\":\"c\"}",
    );
    let cat = sb.write(
        "cat.toml",
        "[datasets.bomb]\nrole = \"pretrain\"\npaths = [\"bomb.jsonl.zst\"]\ntext = \"{text}\"\n\
         [datasets.small]\nrole = \"target\"\npaths = [\"small.jsonl\"]\ntext = \"{text}\"\n",
    );
    let list = || {
        // The child's peak RSS, from wait4's rusage.
        // Reaped by wait4 below, which gives its rusage (Child::wait would not).
        #[allow(clippy::zombie_processes)]
        let child = sb
            .cmd(&["data", "list", "--catalog", cat.to_str().unwrap()])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        let mut status = 0;
        // SAFETY: zeroed rusage is a valid out-parameter for wait4.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        let t0 = Instant::now();
        // SAFETY: waiting for our own child, whose stdout we then read.
        let mut out = String::new();
        let mut stdout = child.stdout.unwrap();
        use std::io::Read;
        stdout.read_to_string(&mut out).unwrap();
        unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        (out, ru.ru_maxrss as u64 * 1024, t0.elapsed(), status)
    };
    let (out, rss, _, status) = list();
    assert_eq!(status, 0, "{out}");
    let row = |name: &str| -> Vec<String> {
        out.lines()
            .find(|l| l.split_whitespace().next() == Some(name))
            .unwrap_or_else(|| panic!("{name} missing: {out}"))
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    assert_eq!(row("small")[3], "3", "{out}");
    assert_eq!(row("bomb")[3], "-", "{out}");
    assert!(rss < 200 << 20, "data list peaked at {} MB", rss >> 20);
    // The counts are remembered by file identity.
    let cache = std::fs::read_to_string(sb.path("cache/counts.json")).unwrap();
    assert!(
        cache.contains("small.jsonl") && cache.contains("bomb.jsonl.zst"),
        "{cache}"
    );
    let (out2, _, _, _) = list();
    assert_eq!(out, out2);
    // A changed file is counted again.
    sb.write("small.jsonl", "{\"text\":\"a\"}\n{\"text\":\"b\"}\n");
    let (out3, _, _, _) = list();
    let n = out3
        .lines()
        .find(|l| l.starts_with("small"))
        .unwrap()
        .split_whitespace()
        .nth(3)
        .unwrap()
        .to_string();
    assert_eq!(n, "2", "{out3}");
}

/// Under Slurm, the budget comes from the job's memory: `-v` says so, and task scripts get a
/// --memory derived from --mem.
#[test]
fn the_memory_budget_follows_the_slurm_job_and_is_stated() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    let o = sb
        .cmd(&[
            "-v",
            "profile",
            "fields",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--ngram",
            "2",
            "-q",
        ])
        .env("SLURM_MEM_PER_NODE", "2048")
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    // A quarter of 2 GiB is under the 1 GiB floor, which half of 2 GiB allows.
    assert!(
        err.contains("memory budget for exact n-grams: 1.0 GiB"),
        "{err}"
    );
    assert!(err.contains("Slurm job 2.0 GiB"), "{err}");
    let out = sb.path("p.parquet");
    let script = |extra: &[&str]| {
        let mut args = vec![
            "profile",
            "fields",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "-o",
            out.to_str().unwrap(),
            "--slurm",
            "4",
            "--mem",
            "32G",
            "--dry-run",
        ];
        args.extend_from_slice(extra);
        sb.ok(&args)
    };
    let s = script(&[]);
    assert!(s.contains(&format!("--memory {}", 8u64 << 30)), "{s}");
    // --memory given: passed as given.
    let s = script(&["--memory", "3G"]);
    assert!(s.contains(&format!("--memory {}", 3u64 << 30)), "{s}");
}

/// A copy of the binary that an unprivileged user can run, the sandbox opened to them, and a
/// command that runs `mtkit ARGS` as `nobody` there; `None` (with the reason printed) when
/// this process cannot change user.
fn as_nobody(sb: &Sandbox) -> Option<impl Fn(&[&str]) -> Output + '_> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: dropping privileges needs root (CI runs as root)");
        return None;
    }
    let bin = sb.path("bin/mtkit");
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    std::fs::copy(common::mtkit_binary(), &bin).unwrap();
    // Every folder on the way must be searchable by nobody.
    let mut d = sb.dir.path().to_path_buf();
    loop {
        let mode = std::fs::metadata(&d).unwrap().permissions().mode();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(mode | 0o755)).unwrap();
        if !d.pop() || d.as_os_str().len() <= 1 {
            break;
        }
    }
    for e in tree(sb.dir.path()) {
        let p = sb.path(&e);
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode | 0o755)).unwrap();
    }
    Some(move |args: &[&str]| {
        use std::os::unix::process::CommandExt;
        Command::new(&bin)
            .args(args)
            .current_dir(sb.dir.path())
            .env("MTKIT_CACHE", sb.path("nobody-cache"))
            .env_remove("MTKIT_CATALOG")
            .env_remove("MTKIT_TOKENIZER")
            .uid(65534)
            .gid(65534)
            .output()
            .unwrap()
    })
}

#[test]
fn unwritable_outputs_and_tmp_folders_as_an_unprivileged_user() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    std::fs::create_dir_all(sb.path("readonly")).unwrap();
    std::fs::create_dir_all(sb.path("nobody-cache")).unwrap();
    let Some(run) = as_nobody(&sb) else {
        return;
    };
    std::fs::set_permissions(sb.path("readonly"), std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::set_permissions(
        sb.path("nobody-cache"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    // -o in a folder nobody may write: refused before any counting (no profile made).
    let o = run(&[
        "profile",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "2",
        "-o",
        "readonly/fields.parquet",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("-o readonly/fields.parquet") && err.contains("cannot write in readonly"),
        "{err}"
    );
    assert!(
        !tree(&sb.path("nobody-cache"))
            .iter()
            .any(|f| f.ends_with(".parquet")),
        "it counted before finding -o unwritable"
    );
    // A read-only --tmp is fine when nothing spills.
    let o = run(&[
        "profile",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "3",
        "--tmp",
        "readonly",
        "-q",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // ... and a clear error naming it when something does.
    let o = run(&[
        "profile",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--ngram",
        "3",
        "--tmp",
        "readonly",
        "--memory",
        "1M",
        "--max-docs",
        "all",
        "--no-cache",
        "-q",
    ]);
    let err = stderr(&o);
    // 300 short documents fit even 1M: either it fits, or the error names the folder.
    assert!(o.status.success() || err.contains("readonly"), "{err}");
    assert_eq!(tree(&sb.path("readonly")), Vec::<String>::new());
}

fn wait_for(what: &str, child: &mut std::process::Child, cond: impl Fn() -> bool) {
    let t0 = Instant::now();
    while !cond() {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "{what} never happened"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "it ended before {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// The registry's code corpus, large enough to stop mid-way: (catalog, tokenizer).
fn registry() -> Option<(PathBuf, PathBuf)> {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return None;
    };
    Some((cat.parent().unwrap().join("registry/catalog.toml"), tok))
}

#[test]
fn sigterm_and_kill_9_while_spilling_leave_nothing_after_a_rerun() {
    let Some((cat, tok)) = registry() else {
        return;
    };
    let sb = Sandbox::new();
    let tmp = sb.path("runs");
    let out = sb.path("pycode.parquet");
    let args: Vec<String> = [
        "profile",
        "pycode",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "--ngram",
        "3",
        "--max-docs",
        "3000",
        "--memory",
        "1M",
        "--tmp",
        tmp.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--no-cache",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let runs_on_disk = || tree(&tmp).iter().any(|f| f.ends_with(".run"));
    // SIGTERM: stops, removes its runs, exits 143.
    let mut child = sb.cmd(&args).stderr(Stdio::piped()).spawn().unwrap();
    wait_for("a run on disk", &mut child, runs_on_disk);
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(143), "{err}");
    assert!(err.contains("SIGTERM"), "{err}");
    assert_eq!(tree(&tmp), Vec::<String>::new(), "runs left after SIGTERM");
    assert!(!out.exists());
    // SIGTERM later, while the runs are merged into the profile being written (the whole
    // corpus, so that phase lasts): the same.
    let whole: Vec<&str> = args
        .iter()
        .map(|a| if *a == "3000" { "all" } else { *a })
        .collect();
    let mut child = sb.cmd(&whole).stderr(Stdio::piped()).spawn().unwrap();
    let cache = sb.path("cache");
    wait_for("the profile being written", &mut child, || {
        leftovers(&cache).iter().any(|f| f.contains(".parquet"))
    });
    signal(&child, libc::SIGTERM);
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(143), "{err}");
    assert_eq!(tree(&tmp), Vec::<String>::new(), "runs left after SIGTERM");
    assert_eq!(leftovers(sb.dir.path()), Vec::<String>::new());
    assert!(!out.exists());
    // kill -9: the runs stay until the next run that spills there removes them.
    let mut child = sb.cmd(&args).stderr(Stdio::null()).spawn().unwrap();
    wait_for("a run on disk", &mut child, runs_on_disk);
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    assert!(
        !tree(&tmp).is_empty(),
        "kill -9 cannot clean up; the rerun must"
    );
    sb.ok(&args);
    assert!(out.is_file());
    assert_eq!(
        tree(&tmp),
        Vec::<String>::new(),
        "the rerun left the killed run's folder"
    );
    assert_eq!(leftovers(sb.dir.path()), Vec::<String>::new());
}

#[test]
fn sigterm_sigint_and_kill_9_during_tokenize_leave_nothing_after_a_rerun() {
    let Some((cat, tok)) = registry() else {
        return;
    };
    let sb = Sandbox::new();
    let out = sb.path("tokens");
    let args: Vec<String> = [
        "tokenize",
        "pycode",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--format",
        "olmo-core",
        "-q",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let args: Vec<&str> = args.iter().map(|s| s.as_str()).collect();
    let part_started = || !leftovers(&out).is_empty();
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130)] {
        let mut child = sb.cmd(&args).stderr(Stdio::piped()).spawn().unwrap();
        wait_for("a part folder", &mut child, part_started);
        std::thread::sleep(Duration::from_millis(200));
        signal(&child, sig);
        let o = child.wait_with_output().unwrap();
        assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
        assert_eq!(leftovers(&out), Vec::<String>::new(), "after signal {sig}");
        assert!(!out.join("pycode").exists());
    }
    let mut child = sb.cmd(&args).stderr(Stdio::null()).spawn().unwrap();
    wait_for("a part folder", &mut child, part_started);
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    assert!(!leftovers(&out).is_empty());
    sb.ok(&args);
    assert!(out.join("pycode/mtkit-tokenize.json").is_file());
    assert_eq!(
        leftovers(&out),
        Vec::<String>::new(),
        "the rerun left the killed run's folder"
    );
}

/// One size grammar for every size flag: `--memory` and `--olmo-file-size` take and refuse the
/// same strings; a count that must be positive is refused at 0, never silently raised.
#[test]
fn every_size_flag_reads_sizes_alike() {
    let sb = Sandbox::new();
    let (cat, tok) = fields_corpus(&sb);
    let out = sb.path("out").display().to_string();
    let memory = |v: &str| {
        sb.run(&[
            "profile",
            "fields",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--ngram",
            "2",
            "--max-docs",
            "5",
            "-q",
            &format!("--memory={v}"),
        ])
    };
    let olmo = |v: &str| {
        sb.run(&[
            "tokenize",
            "fields",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "-o",
            &out,
            "--max-docs",
            "5",
            "-q",
            "--format",
            "olmo-core",
            &format!("--olmo-file-size={v}"),
        ])
    };
    for good in ["64M", "64m", "64MiB", "64 MB", "1.5G", "67108864"] {
        assert!(
            memory(good).status.success(),
            "--memory {good}: {}",
            stderr(&memory(good))
        );
        assert!(
            olmo(good).status.success(),
            "--olmo-file-size {good}: {}",
            stderr(&olmo(good))
        );
    }
    for bad in ["64X", "lots", "-1G", "NaN", ""] {
        for (flag, o) in [("--memory", memory(bad)), ("--olmo-file-size", olmo(bad))] {
            let err = stderr(&o);
            assert_eq!(o.status.code(), Some(2), "{flag} {bad:?}: {err}");
            assert!(err.contains("not a size"), "{flag} {bad:?}: {err}");
        }
    }
    let o = sb.run(&[
        "tokenize",
        "fields",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        &out,
        "-q",
        "--format",
        "litdata",
        "--litdata-chunk-tokens",
        "0",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--litdata-chunk-tokens"),
        "{}",
        stderr(&o)
    );
}

/// Two runs writing the same output at once: the one that finishes last replaces the other's
/// output, and says so (it used to, silently); the other says nothing. A slow whole-corpus run
/// and a quick 10-document run of the same corpus into the same place, started while the
/// slow one runs, for `tokenize` and for `profile -o`.
#[test]
fn the_writer_that_replaces_another_says_so() {
    let Some((cat, tok)) = registry() else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, tok) = (cat.display().to_string(), tok.display().to_string());
    let out = sb.path("tokens").display().to_string();
    let prof = sb.path("pycode.parquet").display().to_string();
    for (slow, quick) in [
        (
            vec![
                "tokenize",
                "pycode",
                "--catalog",
                &cat,
                "--tokenizer",
                &tok,
                "-o",
                &out,
                "--format",
                "megatron",
                "-q",
                "--max-docs",
                "all",
            ],
            vec![
                "tokenize",
                "pycode",
                "--catalog",
                &cat,
                "--tokenizer",
                &tok,
                "-o",
                &out,
                "--format",
                "megatron",
                "-q",
                "--max-docs",
                "10",
            ],
        ),
        (
            vec![
                "profile",
                "pycode",
                "--catalog",
                &cat,
                "--tokenizer",
                &tok,
                "-o",
                &prof,
                "--ngram",
                "2",
                "-q",
                "--max-docs",
                "all",
                "--no-cache",
            ],
            vec![
                "profile",
                "pycode",
                "--catalog",
                &cat,
                "--tokenizer",
                &tok,
                "-o",
                &prof,
                "--ngram",
                "2",
                "-q",
                "--max-docs",
                "10",
                "--no-cache",
            ],
        ),
    ] {
        // The quick run starts once the slow one has looked at its output (a fixed sleep was
        // not enough under CI load): tokenize's temporary folder beside the corpus folder,
        // profile's -v line about the memory budget, each printed or made after that look.
        let mut slow = slow.clone();
        slow.push("-v");
        let mut child = sb.cmd(&slow).stderr(Stdio::piped()).spawn().unwrap();
        let mut pipe = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut slow_err = String::new();
        let started = Instant::now();
        loop {
            let ready = if slow[0] == "tokenize" {
                std::fs::read_dir(&out)
                    .map(|d| {
                        d.flatten()
                            .any(|e| e.file_name().to_string_lossy().ends_with(".part"))
                    })
                    .unwrap_or(false)
            } else {
                use std::io::BufRead;
                let mut line = String::new();
                let n = pipe.read_line(&mut line).unwrap();
                slow_err.push_str(&line);
                assert!(n > 0, "the slow run ended before counting: {slow_err}");
                line.contains("memory budget")
            };
            if ready {
                break;
            }
            assert!(
                child.try_wait().unwrap().is_none(),
                "the slow run ended too soon"
            );
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "the slow run never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let quick_run = sb.run(&quick);
        assert!(quick_run.status.success(), "{}", stderr(&quick_run));
        std::io::Read::read_to_string(&mut pipe, &mut slow_err).unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{slow_err}");
        // Whichever finished second replaced the other's output, and only it says so (the
        // quick one, too, can finish second on a loaded machine: it reads the whole corpus
        // to sample its 10 documents).
        let said = [stderr(&quick_run), slow_err.clone()]
            .iter()
            .filter(|e| e.contains("was written by another process while this one"))
            .count();
        assert_eq!(
            said,
            1,
            "{}: quick: {}\nslow: {}",
            slow[0],
            stderr(&quick_run),
            slow_err
        );
    }
    assert_eq!(leftovers(sb.dir.path()), Vec::<String>::new());
}
