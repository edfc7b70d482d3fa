//! What a hostile pass over the data commands found (issue 23), each a regression test that
//! failed before its fix: bootstrap counts without bound, duplicate CSV columns, two writers of
//! one output at once, records with a million fields or nested 10^5 deep, report CSVs with
//! quoted newlines, invalid UTF-8 and a million rows, and figures written to a full disk.

mod common;
use common::*;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `mtkit ARGS` in the sandbox and kills it after `secs`; returns (finished in time,
/// success, stderr).
fn within(sb: &Sandbox, args: &[&str], secs: u64) -> (bool, bool, String) {
    let mut c = sb.cmd(args);
    let mut child = c
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            return (true, st.success(), err);
        }
        if start.elapsed() > Duration::from_secs(secs) {
            let _ = child.kill();
            let _ = child.wait();
            return (false, false, String::new());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const RUNS: &str = "pa,ri,target\n0.1,0.01,a\n0.2,0.03,a\n0.3,0.02,a\n0.4,0.05,b\n0.5,0.04,b\n";

/// `--bootstrap 1000000000` is refused at once with the cap, in report regress and proximity
/// (it ran silently with memory growing before).
#[test]
fn a_huge_bootstrap_is_refused_at_once() {
    let sb = Sandbox::new();
    sb.write("runs.csv", RUNS);
    let (done, ok, err) = within(
        &sb,
        &["report", "regress", "runs.csv", "--bootstrap", "1000000000"],
        20,
    );
    assert!(done && !ok, "report regress ran on (or succeeded)");
    assert!(
        err.contains("--bootstrap 1000000000: at most 100000 replicates"),
        "{err}"
    );
    let (done, ok, err) = within(
        &sb,
        &[
            "proximity",
            "demo-web",
            "demo-code",
            "demo-docstring",
            "--max-docs",
            "all",
            "--bootstrap",
            "1000000000",
            "-q",
        ],
        20,
    );
    assert!(done && !ok, "proximity ran on (or succeeded)");
    assert!(err.contains("at most 100000 replicates"), "{err}");
    // At the cap's scale it still works.
    sb.ok(&["report", "regress", "runs.csv", "--bootstrap", "100000"]);
}

/// A runs table whose header names a column twice is refused, naming it (the first was used).
#[test]
fn duplicate_column_names_are_refused() {
    let sb = Sandbox::new();
    sb.write("dup.csv", "pa,pa,ri\n0.1,9,0.01\n0.2,9,0.03\n0.3,9,0.02\n");
    let err = sb.fails(&["report", "regress", "dup.csv"]);
    assert!(
        err.contains("names column `pa` twice (columns 1 and 2)"),
        "{err}"
    );
    let err = sb.fails(&["report", "table", "dup.csv"]);
    assert!(err.contains("column `pa` twice"), "{err}");
}

/// Report CSVs as spreadsheets write them: a quoted field with a newline is one field; a
/// non-UTF-8 byte is an error naming the row; a million rows are read and regressed.
#[test]
fn report_csvs_with_quoted_newlines_bad_bytes_and_a_million_rows() {
    let sb = Sandbox::new();
    sb.write(
        "nl.csv",
        "pa,ri,target\n0.1,0.01,\"two\nlines\"\n0.2,0.03,\"two\nlines\"\n0.25,0.02,\"two\nlines\"\n0.3,0.02,b\n0.4,0.05,b\n0.6,0.04,b\n",
    );
    let out = sb.ok(&[
        "report",
        "regress",
        "nl.csv",
        "--by",
        "target",
        "--bootstrap",
        "10",
    ]);
    assert!(
        out.contains("target=two\nlines") || out.contains("target=two"),
        "{out}"
    );
    assert!(out.contains("target=b"), "{out}");
    let mut bad = b"pa,ri\n0.1,0.01\n0.2,0.03\n".to_vec();
    bad.extend_from_slice(b"0.3,0.0\xff2\n");
    sb.write("bad.csv", bad);
    let err = sb.fails(&["report", "regress", "bad.csv"]);
    assert!(err.contains("bad.csv") && err.contains("row 4"), "{err}");
    let mut big = String::from("pa,ri\n");
    for i in 0..1_000_000u64 {
        // ri = 2·pa + 1 exactly, with pa in [0, 1).
        let pa = (i % 1000) as f64 / 1000.0 + (i / 1000) as f64 * 1e-7;
        big.push_str(&format!("{pa},{}\n", 2.0 * pa + 1.0));
    }
    sb.write("big.csv", big);
    sb.ok(&[
        "report",
        "regress",
        "big.csv",
        "--bootstrap",
        "10",
        "-o",
        "big-reg.csv",
    ]);
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("big-reg.csv")).unwrap());
    assert_eq!(rows[0][3], "1000000");
    let slope: f64 = rows[0][4].parse().unwrap();
    assert!((slope - 2.0).abs() < 1e-9, "{slope}");
}

/// A record with a million fields is read (its text taken); JSON nested 10^5 deep is a bad
/// record, skipped and counted (no stack overflow), and --strict names it.
#[test]
fn a_million_fields_and_deep_nesting_are_handled() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let mut wide = String::from("{");
    for i in 0..1_000_000 {
        wide.push_str(&format!("\"k{i}\":{i},"));
    }
    wide.push_str("\"text\":\"hello world\"}\n{\"text\":\"second\"}\n");
    sb.write("wide.jsonl", wide);
    let deep = format!(
        "{{\"text\":\"ok\",\"deep\":{}{}}}\n{{\"text\":\"after\"}}\n",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    sb.write("deep.jsonl", deep);
    sb.write(
        "cat.toml",
        "[datasets.wide]\nrole = \"target\"\npaths = [\"wide.jsonl\"]\n[datasets.deep]\nrole = \"target\"\npaths = [\"deep.jsonl\"]\n",
    );
    let t = tok.to_str().unwrap();
    let base = [
        "--catalog",
        "cat.toml",
        "--tokenizer",
        t,
        "--ngram",
        "1",
        "--max-docs",
        "all",
    ];
    let mut args = vec!["profile", "wide"];
    args.extend_from_slice(&base);
    let out = sb.ok(&args);
    let row = out.lines().find(|l| l.starts_with("wide ")).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("2"), "{row}");
    let mut args = vec!["profile", "deep"];
    args.extend_from_slice(&base);
    let o = sb.run(&args);
    assert!(o.status.success());
    let out = String::from_utf8_lossy(&o.stdout);
    let row = out.lines().find(|l| l.starts_with("deep ")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        (cells[1], cells[5]),
        ("1", "1"),
        "one document read, one skipped: {row}"
    );
    args.push("--strict");
    let err = sb.fails(&args);
    assert!(
        err.contains("deep.jsonl: line 1: malformed JSON") && err.contains("recursion"),
        "{err}"
    );
}

/// Two `profile` runs into the same -o at once, and two `tokenize` runs into the same folder
/// at once with different settings: the result is one run's whole output, never a mix.
#[test]
fn two_writers_of_one_output_leave_one_whole_result() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let docs: Vec<String> = (0..3000)
        .map(|i| format!("document {i} of the corpus, {} words", i % 17))
        .collect();
    sb.jsonl(
        "d.jsonl",
        &docs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    sb.write(
        "cat.toml",
        "[datasets.d]\nrole = \"pretrain\"\npaths = [\"d.jsonl\"]\n",
    );
    let t = tok.to_str().unwrap();
    for round in 0..3 {
        let spawn = |args: &[&str]| {
            sb.cmd(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        };
        let p1 = spawn(&[
            "profile",
            "d",
            "--catalog",
            "cat.toml",
            "--tokenizer",
            t,
            "--max-docs",
            "all",
            "--ngram",
            "2",
            "--no-cache",
            "-o",
            "p.parquet",
            "-q",
        ]);
        let p2 = spawn(&[
            "profile",
            "d",
            "--catalog",
            "cat.toml",
            "--tokenizer",
            t,
            "--max-docs",
            "500",
            "--ngram",
            "1",
            "--no-cache",
            "-o",
            "p.parquet",
            "-q",
        ]);
        let t1 = spawn(&[
            "tokenize",
            "d",
            "--catalog",
            "cat.toml",
            "--tokenizer",
            t,
            "--val-docs",
            "10",
            "-o",
            "tok",
            "-q",
        ]);
        let t2 = spawn(&[
            "tokenize",
            "d",
            "--catalog",
            "cat.toml",
            "--tokenizer",
            t,
            "--val-docs",
            "700",
            "-o",
            "tok",
            "-q",
        ]);
        for mut c in [p1, p2, t1, t2] {
            assert!(c.wait().unwrap().success(), "round {round}");
        }
        let p = mtkit::profile::Profile::load(&sb.path("p.parquet")).unwrap();
        let docs_seen = p.totals.documents;
        assert!(
            (docs_seen == 3000 && p.meta.ngram == 2) || (docs_seen == 500 && p.meta.ngram == 1),
            "round {round}: a mix of the two profiles: {docs_seen} documents, order {}",
            p.meta.ngram
        );
        // The token files agree with their meta.json: the counts of one run throughout.
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(sb.path("tok/d/meta.json")).unwrap())
                .unwrap();
        let val = meta["val_docs"].as_u64().unwrap();
        assert!(val == 10 || val == 700, "round {round}: {meta}");
        for split in ["train", "val"] {
            let s = mtkit::export::tokens::Split::open(&sb.path("tok/d"), split).unwrap();
            assert_eq!(
                s.n_tokens,
                meta[format!("{split}_tokens")].as_u64().unwrap(),
                "round {round}, {split}"
            );
            assert_eq!(
                s.n_docs() as u64,
                meta[format!("{split}_docs")].as_u64().unwrap(),
                "round {round}, {split}"
            );
        }
        // No temporary folder is left behind.
        let left: Vec<String> = std::fs::read_dir(sb.path("tok"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "d")
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
}

/// A figure written where it cannot be (a folder that cannot be written, a full file system)
/// is an error naming the file, and nothing half-written is left.
#[test]
fn a_plot_to_a_full_disk_is_a_clear_error() {
    let sb = Sandbox::new();
    sb.write("runs.csv", RUNS);
    // A read-only folder: refused with the file's name (root ignores modes: skipped there).
    std::fs::create_dir_all(sb.path("ro")).unwrap();
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(sb.path("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
        let err = sb.fails(&[
            "report",
            "regress",
            "runs.csv",
            "--bootstrap",
            "10",
            "--plot",
            "ro/f.png",
        ]);
        assert!(err.contains("ro"), "{err}");
    }
    // A tiny tmpfs that fills up (mounting needs root; skipped with the reason otherwise).
    if !root {
        eprintln!("SKIP: the full-disk part needs root to mount a tmpfs");
        return;
    }
    let mnt = sb.path("full");
    std::fs::create_dir_all(&mnt).unwrap();
    let st = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=16k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status();
    if !st.is_ok_and(|s| s.success()) {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    // Filled to the last block.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(mnt.join("filler")).unwrap();
        while f.write_all(&[0u8; 512]).is_ok() {}
    }
    for fig in ["full/f.png", "full/f.svg"] {
        let err = sb.fails(&[
            "report",
            "regress",
            "runs.csv",
            "--bootstrap",
            "10",
            "--plot",
            fig,
        ]);
        assert!(
            err.contains(fig.trim_start_matches("full/")) && err.to_lowercase().contains("space"),
            "{err}"
        );
        let left: Vec<String> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n != "filler")
            .collect();
        assert!(left.is_empty(), "{fig}: left behind {left:?}");
    }
    let err = sb.fails(&[
        "report",
        "regress",
        "runs.csv",
        "--bootstrap",
        "10",
        "-o",
        "full/reg.csv",
        "--plot",
        "full/f.png",
    ]);
    assert!(err.to_lowercase().contains("space"), "{err}");
}
