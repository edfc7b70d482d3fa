//! `mtkit select`: the Gumbel top-k draw's statistics against the exact Plackett–Luce
//! probabilities, top-k against the score file sorted here, budgets and caps, invariance
//! (threads, reruns, reused scores), and the report's sim/PA against `mtkit proximity` run on
//! the written selection (shared samples, Pythia tokenizer).

mod common;
use common::*;

use mtkit::analysis::score::DocScore;
use mtkit::analysis::select::{draw, Budget, ScoreTable, SelectOptions, Weighting};

const WORDS: &[&str] = &["a", "b", "c", "d", "e", "f", "<|endoftext|>"];

/// Pool `web` (6 documents of a b c) and `code` (4 of d e f), target `qa` (d e f, in other
/// orders). Returns (catalog, tokenizer).
fn fixture(sb: &Sandbox) -> (String, String) {
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl(
        "web.jsonl",
        &[
            "a b a b c",
            "a a a",
            "b c a",
            "c c b a",
            "a b",
            "b b c c a a",
        ],
    );
    sb.jsonl(
        "code.jsonl",
        &["d e f d e f", "f d", "e e f d", "d f e d f"],
    );
    sb.jsonl("qa.jsonl", &["d e f", "f e d e", "d d f"]);
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

/// `mtkit select web code --target qa` with the fixture's catalog and tokenizer, and `extra`.
fn select(sb: &Sandbox, cat: &str, tok: &str, extra: &[&str]) -> std::process::Output {
    let mut a = vec![
        "select",
        "web",
        "code",
        "--target",
        "qa",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
    ];
    a.extend_from_slice(extra);
    sb.run(&a)
}

fn ok(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn err(o: std::process::Output) -> String {
    assert!(!o.status.success(), "should have failed");
    String::from_utf8(o.stderr).unwrap()
}

/// The selection file's lines as (corpus, record, log_weight, text).
fn lines(sb: &Sandbox, name: &str) -> Vec<(String, u64, f64, String)> {
    std::fs::read_to_string(sb.path(name))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["corpus", "record", "log_weight", "text"], "{l}");
            (
                v["corpus"].as_str().unwrap().to_string(),
                v["record"].as_u64().unwrap(),
                v["log_weight"].as_f64().unwrap(),
                v["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Five documents of one token each whose log weights are ln w for w = 1, 2, 3, 4, 10.
fn five(weights: &[f64]) -> ScoreTable {
    ScoreTable {
        corpora: vec!["pool".into()],
        rows: weights
            .iter()
            .enumerate()
            .map(|(i, w)| DocScore {
                corpus: 0,
                record: i as u64,
                tokens: 1,
                log_weight: w.ln(),
            })
            .collect(),
    }
}

fn options(seed: u64, k: u64) -> SelectOptions {
    SelectOptions {
        weighting: Weighting::Sum,
        top_k: false,
        seed,
        budget: Budget::Docs(k),
        max_share: Vec::new(),
        min_tokens: 1,
    }
}

/// k = 1 over 20,000 seeds: each document is picked in proportion to its weight (χ² test, 4
/// degrees of freedom, at the 0.1% critical value 18.467).
#[test]
fn one_pick_is_drawn_in_proportion_to_the_weights() {
    let w = [1.0, 2.0, 3.0, 4.0, 10.0];
    let table = five(&w);
    let seeds = 20_000u64;
    let mut picked = [0u64; 5];
    for seed in 0..seeds {
        let p = draw(&table, &options(seed, 1)).unwrap();
        assert_eq!(p.len(), 1);
        picked[p[0].row] += 1;
    }
    let total: f64 = w.iter().sum();
    let chi2: f64 = (0..5)
        .map(|i| {
            let e = seeds as f64 * w[i] / total;
            (picked[i] as f64 - e).powi(2) / e
        })
        .sum();
    assert!(chi2 < 18.467, "χ² = {chi2}, picks {picked:?}");
}

/// k = 2: each document's inclusion frequency over 20,000 seeds matches the exact
/// Plackett–Luce probability P(i first) + Σ_j P(j first)·w_i/(W − w_j), within 4 standard
/// errors.
#[test]
fn two_picks_include_each_document_as_plackett_luce_says() {
    let w = [1.0, 2.0, 3.0, 4.0, 10.0];
    let table = five(&w);
    let seeds = 20_000u64;
    let mut included = [0u64; 5];
    for seed in 0..seeds {
        let p = draw(&table, &options(seed, 2)).unwrap();
        assert_eq!(p.len(), 2);
        assert!(p[0].key >= p[1].key);
        for x in p {
            included[x.row] += 1;
        }
    }
    let total: f64 = w.iter().sum();
    for i in 0..5 {
        let mut pi = w[i] / total;
        for j in 0..5 {
            if j != i {
                pi += w[j] / total * w[i] / (total - w[j]);
            }
        }
        let f = included[i] as f64 / seeds as f64;
        let se = (pi * (1.0 - pi) / seeds as f64).sqrt();
        assert!(
            (f - pi).abs() < 4.0 * se,
            "document {i}: included {f}, exact {pi}"
        );
    }
}

/// A target made of one source's vocabulary: that source fills a budget of its size, and the
/// output carries each document's own text, corpus and record.
#[test]
fn a_target_like_one_source_takes_that_source() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    let out = ok(select(&sb, &cat, &tok, &["-n", "4", "-o", "sel.jsonl"]));
    assert!(out.contains("selected 4 of 10 documents"), "{out}");
    let code = ["d e f d e f", "f d", "e e f d", "d f e d f"];
    let got = lines(&sb, "sel.jsonl");
    assert_eq!(got.len(), 4);
    let mut records: Vec<u64> = got
        .iter()
        .map(|(c, r, _, text)| {
            assert_eq!(c, "code");
            assert_eq!(text, code[*r as usize]);
            *r
        })
        .collect();
    records.sort();
    assert_eq!(records, [0, 1, 2, 3]);
}

/// --top-k keeps the K largest weights: the score file's rows sorted here by
/// log_weight_per_token (and by log_weight with --weight sum), ties by corpus then record.
#[test]
fn top_k_keeps_the_largest_weights_of_the_score_file() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
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
        "-o",
        "s.csv",
        "-q",
    ]);
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("s.csv")).unwrap());
    let corpus_rank = |c: &str| if c == "web" { 0 } else { 1 };
    for (weight, column) in [("per-token", 4usize), ("sum", 3)] {
        let mut want: Vec<(f64, usize, u64)> = rows
            .iter()
            .map(|r| {
                (
                    r[column].parse().unwrap(),
                    corpus_rank(&r[0]),
                    r[1].parse().unwrap(),
                )
            })
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        ok(select(
            &sb,
            &cat,
            &tok,
            &[
                "--top-k",
                "--weight",
                weight,
                "-n",
                "3",
                "-o",
                "top.jsonl",
                "-q",
            ],
        ));
        let got: Vec<(usize, u64)> = lines(&sb, "top.jsonl")
            .iter()
            .map(|(c, r, _, _)| (corpus_rank(c), *r))
            .collect();
        let want: Vec<(usize, u64)> = want.iter().take(3).map(|w| (w.1, w.2)).collect();
        assert_eq!(got, want, "--weight {weight}");
    }
}

/// One or two threads, a rerun, and scores read back from `mtkit score`'s CSV or parquet:
/// the same bytes; another seed: another draw of the same size.
#[test]
fn threads_reruns_and_reused_scores_give_the_same_bytes() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    let run = |extra: &[&str]| {
        let mut a = vec!["-n", "5", "-o", "x.jsonl", "-q"];
        a.extend_from_slice(extra);
        ok(select(&sb, &cat, &tok, &a));
        std::fs::read(sb.path("x.jsonl")).unwrap()
    };
    let one = run(&["--threads", "1"]);
    assert_eq!(run(&["--threads", "2"]), one);
    assert_eq!(run(&[]), one);
    for f in ["s.csv", "s.parquet"] {
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
            "-o",
            f,
            "-q",
        ]);
        assert_eq!(run(&["--scores", f]), one, "--scores {f}");
    }
    let other = run(&["--seed", "7"]);
    assert_eq!(other.iter().filter(|b| **b == b'\n').count(), 5);
    // Parquet holds the same rows.
    ok(select(
        &sb,
        &cat,
        &tok,
        &["-n", "5", "-o", "x.parquet", "-q"],
    ));
    let df = {
        use polars::prelude::SerReader;
        polars::prelude::ParquetReader::new(std::fs::File::open(sb.path("x.parquet")).unwrap())
            .finish()
            .unwrap()
    };
    let want = lines(&sb, "x.jsonl");
    let rec = df.column("record").unwrap().u64().unwrap();
    let text = df.column("text").unwrap().str().unwrap();
    for (i, (_, r, _, t)) in want.iter().enumerate() {
        assert_eq!(rec.get(i), Some(*r));
        assert_eq!(text.get(i), Some(t.as_str()));
    }
}

/// A target equal to the pool: p_T = p_R, so every weight is ln(λ + 1 − λ) = 0 exactly.
#[test]
fn a_target_equal_to_the_pool_weighs_nothing() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    let all = [
        "a b a b c",
        "a a a",
        "b c a",
        "c c b a",
        "a b",
        "b b c c a a",
        "d e f d e f",
        "f d",
        "e e f d",
        "d f e d f",
    ];
    sb.jsonl("all.jsonl", &all);
    sb.ok(&[
        "select",
        "web",
        "code",
        "--target",
        "all.jsonl",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-n",
        "10",
        "-o",
        "x.jsonl",
        "-q",
    ]);
    let got = lines(&sb, "x.jsonl");
    assert_eq!(got.len(), 10);
    assert!(got.iter().all(|l| l.2 == 0.0), "{got:?}");
}

/// Budgets: a token budget is reached by the last document and not before; a cap holds; what
/// the pool or the caps cannot meet, or a malformed request, is an error naming the flag and
/// the shortfall, and writes nothing.
#[test]
fn budgets_caps_and_their_errors() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    ok(select(
        &sb,
        &cat,
        &tok,
        &["--tokens", "12", "-o", "t.jsonl", "-q"],
    ));
    let sizes: Vec<usize> = lines(&sb, "t.jsonl")
        .iter()
        .map(|l| l.3.split_whitespace().count())
        .collect();
    let total: usize = sizes.iter().sum();
    assert!(
        total >= 12 && total - sizes.last().unwrap() < 12,
        "{sizes:?}"
    );
    ok(select(
        &sb,
        &cat,
        &tok,
        &["-n", "4", "--max-share", "code=0.5", "-o", "c.jsonl", "-q"],
    ));
    let got = lines(&sb, "c.jsonl");
    assert_eq!(got.len(), 4);
    assert_eq!(got.iter().filter(|l| l.0 == "code").count(), 2);
    // --fraction 0.3 of 10 documents: 3.
    ok(select(
        &sb,
        &cat,
        &tok,
        &["--fraction", "0.3", "-o", "f.jsonl", "-q"],
    ));
    assert_eq!(lines(&sb, "f.jsonl").len(), 3);
    // --min-tokens 5 leaves 3 documents of web ("a b a b c", "b b c c a a") and code
    // ("d e f d e f", "d f e d f"): 4 in all.
    ok(select(
        &sb,
        &cat,
        &tok,
        &["-n", "4", "--min-tokens", "5", "-o", "m.jsonl", "-q"],
    ));
    assert!(lines(&sb, "m.jsonl")
        .iter()
        .all(|l| l.3.split_whitespace().count() >= 5));
    let cases: &[(&[&str], &str)] = &[
        (&["-n", "0"], "the budget is 0"),
        (&["-n", "11"], "asked for 11 documents, but the pool has only 10 documents to select from: 1 short"),
        (&["-n", "5", "--min-tokens", "5"], "has only 4 documents to select from (6 of its 10 have fewer than --min-tokens 5): 1 short"),
        (&["--tokens", "1000"], "asked for 1000 tokens, but the pool has only 40 tokens to select from: 960 short"),
        (&["-n", "10", "--max-share", "code=0.2"], "the --max-share caps leave only 8 of the 10 documents asked for (2 short): capped code at 2 documents"),
        (&["-n", "2", "--max-share", "nope=0.5"], "`nope` is not a pool corpus"),
        (&["-n", "2", "--max-share", "code=1.5"], "the share must be in (0, 1]"),
        (&["--fraction", "1.5"], "--fraction must be in (0, 1]"),
        (&["--fraction", "0.01"], "rounds to 0 documents"),
        (&["-n", "2", "--tokens", "5"], "cannot be used with"),
        (&[], "say how much to select"),
        (&["-n", "2", "--length-norm", "0"], "--length-norm must be a positive number"),
    ];
    for (args, want) in cases {
        let mut a = args.to_vec();
        a.extend_from_slice(&["-o", "bad.jsonl"]);
        let e = err(select(&sb, &cat, &tok, &a));
        assert!(e.contains(want), "{args:?}: {e}");
        assert!(!sb.path("bad.jsonl").exists(), "{args:?} wrote its output");
    }
    let e = err(select(&sb, &cat, &tok, &["-n", "2", "-o", "x.txt"]));
    assert!(e.contains("name a .jsonl or a .parquet file"), "{e}");
}

/// Scores of another pool are refused, naming the file, the row and the field.
#[test]
fn scores_of_another_pool_are_refused() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    sb.ok(&[
        "score",
        "web",
        "--target",
        "qa",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        "web.csv",
        "-q",
    ]);
    let e = err(select(
        &sb,
        &cat,
        &tok,
        &["-n", "2", "--scores", "web.csv", "-o", "x.jsonl"],
    ));
    assert!(e.contains("web.csv: no row of pool corpus `code`"), "{e}");
    sb.write(
        "bad.csv",
        "corpus,record,tokens,log_weight\nweb,0,5,1.5\ncode,zero,6,2.0\n",
    );
    let e = err(select(
        &sb,
        &cat,
        &tok,
        &["-n", "2", "--scores", "bad.csv", "-o", "x.jsonl"],
    ));
    assert!(
        e.contains("bad.csv line 3: field `record` is `zero`"),
        "{e}"
    );
    // Right corpora, wrong token counts: found when the documents are read back.
    sb.write(
        "wrong.csv",
        "corpus,record,tokens,log_weight\nweb,0,9,1.5\ncode,0,6,2.0\n",
    );
    let e = err(select(
        &sb,
        &cat,
        &tok,
        &[
            "-n",
            "2",
            "--top-k",
            "--scores",
            "wrong.csv",
            "-o",
            "x.jsonl",
        ],
    ));
    assert!(
        e.contains("corpus `web` record 0: the scores say 9 tokens, the document has 5"),
        "{e}"
    );
}

/// On the shared samples with the Pythia tokenizer: the report's sim and PA of the selection
/// equal `mtkit proximity P SELECTION T` run on the written file (whole documents), and the
/// report's sizes and shares add up.
#[test]
fn the_report_equals_proximity_on_the_written_selection() {
    let (Some(shared), Some(pythia)) = (shared_catalog(), pythia_tokenizer()) else {
        eprintln!("SKIP: needs the shared samples (MTKIT_SHARED_CATALOG) and the Pythia tokenizer");
        return;
    };
    let sb = Sandbox::new();
    let (shared, pythia) = (shared.display().to_string(), pythia.display().to_string());
    let common = [
        "--catalog",
        &shared,
        "--tokenizer",
        &pythia,
        "--max-docs",
        "300",
    ];
    let mut a = vec![
        "select",
        "c4",
        "flan",
        "gsm8k",
        "--target",
        "sciq",
        "--pretrain",
        "c4",
        "-n",
        "200",
        "-o",
        "sel.jsonl",
        "--report",
        "rep.json",
        "-q",
    ];
    a.extend_from_slice(&common);
    a.extend_from_slice(&["--sample-seed", "42"]);
    sb.ok(&a);
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("rep.json")).unwrap()).unwrap();
    assert_eq!(rep["selected"]["documents"], 200);
    assert_eq!(rep["pool"]["documents"], 900);
    let shares: f64 = rep["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["selected_token_share"].as_f64().unwrap())
        .sum();
    assert!((shares - 1.0).abs() < 1e-12);
    // proximity reads P and T with the same sample (300 documents by seed 42) and the
    // selection whole.
    sb.ok(&[
        "proximity",
        "c4",
        "sel.jsonl",
        "sciq",
        "--catalog",
        &shared,
        "--tokenizer",
        &pythia,
        "--max-docs",
        "300",
        "--max-chars",
        "0",
        "--max-tokens-per-doc",
        "0",
        "--csv",
        "prox.csv",
        "-q",
    ]);
    let (header, rows) = parse_csv(&std::fs::read_to_string(sb.path("prox.csv")).unwrap());
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let sel = rows.iter().find(|r| r[col("corpus")] == "sel").unwrap();
    let sim: f64 = sel[col("sim")].parse().unwrap();
    let pa: f64 = sel[col("pa")].parse().unwrap();
    let rsim = rep["selection"]["sim"].as_f64().unwrap();
    let rpa = rep["selection"]["pa"].as_f64().unwrap();
    assert!(
        (sim - rsim).abs() < 1e-12,
        "sim: proximity {sim}, report {rsim}"
    );
    assert!((pa - rpa).abs() < 1e-12, "PA: proximity {pa}, report {rpa}");
    // Toward SciQ the selection is closer than a random draw of the same size.
    assert!(rep["kl_reduction"].as_f64().unwrap() > 0.0, "{rep}");
    assert!(rsim > rep["random_draw"]["sim"].as_f64().unwrap(), "{rep}");
}

/// `--dedup`: documents with the same token ids as an earlier one (corpus order, then record)
/// are left out, the first copy kept. web: 0 "a b c", 1 "a b c" (copy of 0), 2 "d e", 3
/// "a  b\tc" (the same words, so the same ids: copy of 0); code: 0 "d e" (copy of web 2),
/// 1 "f". With every document drawn, exactly web 0, web 2 and code 1 remain.
#[test]
fn dedup_keeps_the_first_copy_of_identical_token_ids() {
    let sb = Sandbox::new();
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl("web.jsonl", &["a b c", "a b c", "d e", "a  b\tc"]);
    sb.jsonl("code.jsonl", &["d e", "f"]);
    sb.jsonl("qa.jsonl", &["d e f"]);
    let cat = sb.write(
        "cat.toml",
        "[datasets.web]\nrole = \"pretrain\"\npaths = [\"web.jsonl\"]\n\
         [datasets.code]\nrole = \"midtrain\"\npaths = [\"code.jsonl\"]\n\
         [datasets.qa]\nrole = \"target\"\npaths = [\"qa.jsonl\"]\n",
    );
    let out = sb.ok(&[
        "select",
        "web",
        "code",
        "--target",
        "qa",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        &tok,
        "--dedup",
        "--fraction",
        "1",
        "-o",
        "s.jsonl",
        "--report",
        "r.json",
    ]);
    assert!(
        out.contains("left out 3 pool documents as copies of an earlier one"),
        "{out}"
    );
    let mut got: Vec<(String, u64)> = std::fs::read_to_string(sb.path("s.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["corpus"].as_str().unwrap().to_string(),
                v["record"].as_u64().unwrap(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            ("code".to_string(), 1),
            ("web".to_string(), 0),
            ("web".to_string(), 2)
        ]
    );
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("r.json")).unwrap()).unwrap();
    assert_eq!(
        r["duplicates_left_out"],
        serde_json::json!({"documents": 3, "by_source": [["web", 2], ["code", 1]]})
    );
    assert_eq!(r["pool"]["documents"], 3);
}

/// The report's drivers, by hand (unigrams, λ = 0.5): target "a a" has p_T(a) = 1; the pool
/// "a b" + "b b" has p_R(a) = 1/4, so each `a` lifts a weight by ln(0.5·4 + 0.5) = ln 2.5,
/// once in the pool. `b` is not the target's: no driver.
#[test]
fn the_report_names_the_ngrams_that_drive_the_weights() {
    let sb = Sandbox::new();
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl("web.jsonl", &["a b"]);
    sb.jsonl("code.jsonl", &["b b"]);
    sb.jsonl("qa.jsonl", &["a a"]);
    sb.ok(&[
        "select",
        "web.jsonl",
        "code.jsonl",
        "--target",
        "qa.jsonl",
        "--tokenizer",
        &tok,
        "--ngram",
        "1",
        "-n",
        "1",
        "-o",
        "s.jsonl",
        "--report",
        "r.json",
        "-q",
    ]);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("r.json")).unwrap()).unwrap();
    let d = r["drivers"].as_array().unwrap();
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["text"].as_str().unwrap().trim(), "a");
    assert_eq!(d[0]["target_count"], 2);
    assert_eq!(d[0]["pool_count"], 1);
    let lift = d[0]["lift"].as_f64().unwrap();
    assert!((lift - 2.5f64.ln()).abs() < 1e-12, "{lift}");
    assert_eq!(d[0]["total"].as_f64().unwrap(), lift);
}

/// `--format megatron`: the selection's token files are byte for byte those `mtkit tokenize`
/// writes from the same selection's .jsonl (same seed), in key order.
#[test]
fn format_writes_the_token_files_tokenize_writes_from_the_jsonl() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    for format in ["megatron", "mtkit"] {
        let o = select(
            &sb,
            &cat,
            &tok,
            &["-n", "4", "--format", format, "-o", "tok"],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let o = select(&sb, &cat, &tok, &["-n", "4", "-o", "selection.jsonl"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        sb.ok(&[
            "tokenize",
            "selection.jsonl",
            "--tokenizer",
            &tok,
            "--format",
            format,
            "--val-docs",
            "0",
            "-o",
            "ref",
            "-q",
        ]);
        let mut compared = 0;
        for e in std::fs::read_dir(sb.path("ref/selection"))
            .unwrap()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().to_string();
            // The token and index files (metadata names the source file, which differs).
            let data = [".bin", ".idx", ".tokens", ".docs"];
            if data.iter().any(|x| name.ends_with(x)) {
                let got = std::fs::read(sb.path("tok/selection").join(&name)).unwrap();
                assert_eq!(got, std::fs::read(e.path()).unwrap(), "{format}: {name}");
                compared += 1;
            }
        }
        assert!(compared >= 2, "{format}: token files compared");
        std::fs::remove_dir_all(sb.path("tok")).unwrap();
        std::fs::remove_dir_all(sb.path("ref")).unwrap();
    }
}

/// The report's pool figures are counted two ways: a fresh score counts the pool's unigrams in
/// its first pass and takes the left-out records (a copy, an overlap with the evaluation set)
/// off them; a `--scores` file has no such counts, so the read-back counts every document
/// kept. The two reports are the same, number for number.
#[test]
fn the_report_is_the_same_from_a_fresh_score_and_from_a_score_file() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb);
    // "a b" twice (one copy left out by --dedup) and "a d e b", which shares the 2-gram
    // "d e" with qa (left out by --exclude-overlap qa --overlap-n 2).
    sb.jsonl(
        "web2.jsonl",
        &["a b a b c", "a a a", "a d e b", "a b", "a b", "c c b a"],
    );
    let common = [
        "--target",
        "qa",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-q",
    ];
    sb.ok(&[
        &["score", "web2.jsonl", "code", "-o", "s.parquet"],
        &common[..],
    ]
    .concat());
    let report = |extra: &[&str], name: &str| -> serde_json::Value {
        let mut a = vec![
            "select",
            "web2.jsonl",
            "code",
            "-n",
            "3",
            "--dedup",
            "--exclude-overlap",
            "qa",
            "--overlap-n",
            "2",
            "-o",
            "x.jsonl",
            "--report",
            name,
        ];
        a.extend_from_slice(&common);
        a.extend_from_slice(extra);
        sb.ok(&a);
        let mut r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(sb.path(name)).unwrap()).unwrap();
        r.as_object_mut().unwrap().remove("drivers");
        r
    };
    let fresh = report(&[], "fresh.json");
    let from_file = report(&["--scores", "s.parquet"], "file.json");
    assert_eq!(fresh, from_file);
    // Both left out the copy and the overlapping document.
    let text = fresh.to_string();
    assert!(text.contains("\"duplicates_left_out\""), "{text}");
    assert!(text.contains("\"excluded_by_overlap\""), "{text}");
}
