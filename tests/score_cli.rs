//! `mtkit score`: each pool document's log importance weight toward a target, checked against
//! the formula worked out independently here (word n-grams counted with a map, under a
//! word-level tokenizer whose tokens are the words), on small corpora built by the test.

mod common;
use common::*;

use std::collections::BTreeMap;

const WORDS: &[&str] = &["a", "b", "c", "d", "e", "f", "<|endoftext|>"];

/// Pool corpora `web` (3 documents) and `code` (2), target `qa` (2); a catalog for them.
fn fixture(sb: &Sandbox) -> (String, String) {
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl("web.jsonl", &["a b a b c", "a a a", "b c d e f a"]);
    sb.jsonl("code.jsonl", &["d e f d e f", "f"]);
    sb.jsonl("qa.jsonl", &["a b c d", "c d e c d"]);
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.web]\nrole = \"pretrain\"\npaths = [\"web.jsonl\"]\n\
             [datasets.code]\nrole = \"midtrain\"\npaths = [\"code.jsonl\"]\n\
             [datasets.qa]\nrole = \"target\"\npaths = [\"qa.jsonl\"]\n",
        )
        .display()
        .to_string();
    (cat, tok)
}

/// The formula of `mtkit score`, by hand: word n-grams of orders 1..=n in maps.
fn expected(pool: &[&str], target: &[&str], n: usize, lambda: f64) -> Vec<f64> {
    let grams = |doc: &str, k: usize| -> Vec<Vec<String>> {
        let w: Vec<String> = doc.split_whitespace().map(String::from).collect();
        if w.len() < k {
            return Vec::new();
        }
        (0..=w.len() - k).map(|i| w[i..i + k].to_vec()).collect()
    };
    let count = |docs: &[&str], k: usize| {
        let mut m: BTreeMap<Vec<String>, f64> = BTreeMap::new();
        let mut total = 0.0f64;
        for d in docs {
            for g in grams(d, k) {
                *m.entry(g).or_default() += 1.0;
                total += 1.0;
            }
        }
        (m, total)
    };
    pool.iter()
        .map(|doc| {
            let mut lw = 0.0;
            for k in 1..=n {
                let (t, ct) = count(target, k);
                let (r, cr) = count(pool, k);
                for g in grams(doc, k) {
                    let pt = t.get(&g).copied().unwrap_or(0.0) / ct.max(1.0);
                    let pr = r[&g] / cr;
                    lw += (lambda * pt / pr + (1.0 - lambda)).ln();
                }
            }
            lw
        })
        .collect()
}

#[test]
fn log_weights_are_the_formula_worked_out_by_hand() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    let pool = ["a b a b c", "a a a", "b c d e f a", "d e f d e f", "f"];
    let target = ["a b c d", "c d e c d"];
    // `mtkit score web code --target qa` with `--ngram N --lambda L` into s.csv: its rows.
    let run = |n: &str, lambda: &str| {
        sb.ok(&[
            "score",
            "web",
            "code",
            "--target",
            "qa",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--ngram",
            n,
            "--lambda",
            lambda,
            "-o",
            "s.csv",
            "-q",
        ]);
        parse_csv(&std::fs::read_to_string(sb.path("s.csv")).unwrap())
    };
    for n in [1usize, 2, 3] {
        for lambda in [0.5, 0.9] {
            let (ns, ls) = (n.to_string(), lambda.to_string());
            let (header, rows) = run(&ns, &ls);
            assert_eq!(
                header,
                [
                    "corpus",
                    "record",
                    "tokens",
                    "log_weight",
                    "log_weight_per_token"
                ]
            );
            let want = expected(&pool, &target, n, lambda);
            assert_eq!(rows.len(), 5);
            for (i, (row, w)) in rows.iter().zip(&want).enumerate() {
                let corpus = if i < 3 { "web" } else { "code" };
                let record = if i < 3 { i } else { i - 3 };
                assert_eq!(row[0], corpus);
                assert_eq!(row[1], record.to_string());
                let tokens = pool[i].split_whitespace().count();
                assert_eq!(row[2], tokens.to_string());
                let got: f64 = row[3].parse().unwrap();
                assert!(
                    (got - w).abs() <= 1e-12 * w.abs().max(1.0),
                    "n={n} λ={lambda} doc {i}: {got} vs {w}"
                );
                let per: f64 = row[4].parse().unwrap();
                assert!((per - w / tokens as f64).abs() <= 1e-12 * w.abs().max(1.0));
            }
        }
    }
    // A document made only of n-grams the target lacks weighs ln(1 − λ) per n-gram: "f" at
    // n = 1, λ = 0.5 (the target has no f).
    let (_, rows) = run("1", "0.5");
    let f: f64 = rows[4][3].parse().unwrap();
    assert!((f - 0.5f64.ln()).abs() < 1e-15, "{f}");
}

/// The parquet output holds the same numbers as the CSV, and is the same bytes whatever the
/// number of threads and from run to run.
#[test]
fn the_same_bytes_on_one_or_two_threads_and_parquet_equals_csv() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    let run = |threads: &str, out: &str| {
        sb.ok(&[
            "score",
            "web",
            "code",
            "--target",
            "qa",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--threads",
            threads,
            "-o",
            out,
            "-q",
        ]);
        std::fs::read(sb.path(out)).unwrap()
    };
    let one = run("1", "one.parquet");
    let two = run("2", "two.parquet");
    assert_eq!(one, two);
    assert_eq!(run("2", "again.parquet"), one);
    let df = {
        use polars::prelude::SerReader;
        polars::prelude::ParquetReader::new(std::fs::File::open(sb.path("one.parquet")).unwrap())
            .finish()
            .unwrap()
    };
    run("1", "one.csv");
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("one.csv")).unwrap());
    let lw = df.column("log_weight").unwrap().f64().unwrap();
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(lw.get(i).unwrap(), row[3].parse::<f64>().unwrap());
    }
}

#[test]
fn settings_without_a_defined_weight_are_refused_by_flag() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    let base = [
        "score",
        "web",
        "--target",
        "qa",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
    ];
    let fails = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        sb.fails(&a)
    };
    for l in ["--lambda=1", "--lambda=0", "--lambda=NaN", "--lambda=-0.5"] {
        let e = fails(&[l, "-o", "s.parquet"]);
        assert!(e.contains("--lambda must be between 0 and 1"), "{e}");
    }
    let e = fails(&["--ngram", "0", "-o", "s.parquet"]);
    assert!(e.contains("--ngram must be between 1 and"), "{e}");
    let e = fails(&["-o", "s.txt"]);
    assert!(e.contains("name a .parquet or a .csv file"), "{e}");
    sb.write("empty.jsonl", "");
    let e = sb.fails(&[
        "score",
        "web",
        "--target",
        "empty.jsonl",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        "s.parquet",
    ]);
    assert!(e.contains("empty"), "{e}");
    assert!(
        !sb.path("s.parquet").exists(),
        "nothing written on an error"
    );
}

/// Real text under the Pythia tokenizer: the weights equal those of tests/readers/
/// score_reference.py (HF tokenizers' ids, Python's counts) to 1e-9 relative, for N = 1, 2, 3
/// and λ = 0.5, 0.9. Pool: the paragraphs of README.md and ARCHITECTURE.md in two corpora;
/// target: those of docs/*.md (every clone has them).
#[test]
fn log_weights_equal_a_python_computation_on_hf_tokenizers_ids() {
    let (Some(py), Some(tok)) = (transformers_python(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let paragraphs = |files: &[std::path::PathBuf]| -> Vec<String> {
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .split("\n\n")
                    .map(str::trim)
                    .filter(|p| p.len() > 20)
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .collect()
    };
    let root = repo_root();
    let readme = paragraphs(&[root.join("README.md")]);
    let arch = paragraphs(&[root.join("ARCHITECTURE.md")]);
    let docs = paragraphs(&docs_pages());
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let a = sb.jsonl("readme.jsonl", &refs(&readme));
    let b = sb.jsonl("arch.jsonl", &refs(&arch));
    let t = sb.jsonl("docs.jsonl", &refs(&docs));
    let scored = assert_scores_equal_the_python_computation(&sb, &py, &tok, &[a, b], &t);
    assert_eq!(scored, readme.len() + arch.len());
}

/// The same on the shared samples: a pool of MATH and Dolly (6,000 documents, read from
/// their .jsonl.gz as a user's files are) toward SciQ; and the pool's token total, the sum of
/// the score file's `tokens`, equals `mtkit profile`'s of the same files, whole.
#[test]
fn log_weights_equal_a_python_computation_on_the_shared_samples() {
    let (Some(shared), Some(py), Some(tok)) =
        (shared_catalog(), transformers_python(), pythia_tokenizer())
    else {
        return;
    };
    let sb = Sandbox::new();
    let corpora = shared.parent().unwrap().join("corpora");
    let pool = [
        corpora.join("math-competition-test.jsonl.gz"),
        corpora.join("dolly-hhrlhf-1k.jsonl.gz"),
    ];
    let target = corpora.join("sciq-validation.jsonl.gz");
    let scored = assert_scores_equal_the_python_computation(&sb, &py, &tok, &pool, &target);
    assert_eq!(scored, 6000);
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("s.csv")).unwrap());
    let score_tokens: u64 = rows.iter().map(|r| r[2].parse::<u64>().unwrap()).sum();
    let mut profile_tokens = 0;
    for f in &pool {
        let out = sb.ok(&[
            "profile",
            f.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
            "--max-docs",
            "all",
            "--max-chars",
            "0",
            "--max-tokens-per-doc",
            "0",
            "--no-cache",
            "-o",
            "p.parquet",
        ]);
        let stem = f
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .trim_end_matches(".jsonl.gz");
        let row: Vec<&str> = out
            .lines()
            .find(|l| l.starts_with(&format!("{stem} ")))
            .unwrap_or_else(|| panic!("no row for {stem} in:\n{out}"))
            .split_whitespace()
            .collect();
        profile_tokens += row[2].parse::<u64>().unwrap();
    }
    assert_eq!(score_tokens, profile_tokens);
}

/// `mtkit score POOL... --target T -o s.csv` for N = 1, 2, 3 and λ = 0.5, 0.9, each weight
/// equal to tests/readers/score_reference.py's to 1e-9 relative; returns how many documents
/// were scored (the last run's s.csv stays in the sandbox).
fn assert_scores_equal_the_python_computation(
    sb: &Sandbox,
    py: &std::path::Path,
    tok: &std::path::Path,
    pool: &[std::path::PathBuf],
    target: &std::path::Path,
) -> usize {
    let tok = tok.to_str().unwrap();
    let pool: Vec<&str> = pool.iter().map(|p| p.to_str().unwrap()).collect();
    let mut scored = 0;
    for n in ["1", "2", "3"] {
        for lambda in ["0.5", "0.9"] {
            let mut args = vec!["score"];
            args.extend(&pool);
            args.extend([
                "--target",
                target.to_str().unwrap(),
                "--tokenizer",
                tok,
                "--ngram",
                n,
                "--lambda",
                lambda,
                "-o",
                "s.csv",
                "-q",
            ]);
            sb.ok(&args);
            let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("s.csv")).unwrap());
            let out = std::process::Command::new(py)
                .arg(repo_root().join("tests/readers/score_reference.py"))
                .arg(tok)
                .args(&pool)
                .args([
                    "--target",
                    target.to_str().unwrap(),
                    "--ngram",
                    n,
                    "--lambda",
                    lambda,
                ])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            let want: Vec<f64> = v["log_weight"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            assert_eq!(rows.len(), want.len());
            for (row, w) in rows.iter().zip(&want) {
                let got: f64 = row[3].parse().unwrap();
                assert!(
                    (got - w).abs() <= 1e-9 * w.abs().max(1e-9),
                    "n={n} λ={lambda} {}#{}: {got} vs {w}",
                    row[0],
                    row[1]
                );
            }
            scored = rows.len();
        }
    }
    scored
}
