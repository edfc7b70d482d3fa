//! `mtkit overlap`: exact token n-gram contamination. Small cases worked out by hand under a
//! word-level tokenizer (its tokens are the words), planted copies of GSM8K items in C4, and
//! the counts of tests/readers/overlap_reference.py (HF tokenizers' ids, Python sets) on the
//! shared samples.

mod common;
use common::*;

const WORDS: &[&str] = &["a", "b", "c", "d", "e", "f", "<|endoftext|>"];

/// Corpora `web` and `code`, EVAL `bench`, under the word tokenizer; (catalog, tokenizer).
fn fixture(sb: &Sandbox, bench: &[&str]) -> (String, String) {
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl("web.jsonl", &["a b c d e f", "a b d c", "f f f f", "a b"]);
    sb.jsonl("code.jsonl", &["e f a", "b a"]);
    sb.jsonl("bench.jsonl", bench);
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.web]\nrole = \"pretrain\"\npaths = [\"web.jsonl\"]\n\
             [datasets.code]\nrole = \"midtrain\"\npaths = [\"code.jsonl\"]\n\
             [datasets.bench]\nrole = \"target\"\npaths = [\"bench.jsonl\"]\n",
        )
        .display()
        .to_string();
    (cat, tok)
}

/// The pairs file as rows of strings (corpus, record, eval_record, shared, longest).
fn pairs(path: &std::path::Path) -> Vec<Vec<String>> {
    use polars::prelude::{ParquetReader, SerReader};
    let df = ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        names,
        [
            "corpus",
            "record",
            "eval_record",
            "shared_ngrams",
            "longest_span"
        ]
    );
    (0..df.height())
        .map(|i| {
            names
                .iter()
                .map(|c| {
                    let v = df.column(c).unwrap().get(i).unwrap();
                    v.to_string().trim_matches('"').to_string()
                })
                .collect()
        })
        .collect()
}

/// 3-grams, by hand. EVAL: 0 "a b c d" {abc, bcd}, 1 "c d e f" {cde, def}, 2 "f f f" {fff}.
/// web 0 "a b c d e f": abc bcd (item 0), cde def (item 1): 4 matches, a run of 2 windows
/// with each item (span 2 + 3 − 1 = 4). web 1 "a b d c": abd bdc, none. web 2 "f f f f":
/// fff twice (item 2, span 4). web 3 "a b": shorter than n. code: efa, none.
#[test]
fn three_grams_worked_out_by_hand() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let run = |sb: &Sandbox, env: Option<&str>| {
        let mut c = sb.cmd(&[
            "overlap",
            "web",
            "code",
            "--against",
            "bench",
            "-n",
            "3",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--csv",
            "t.csv",
            "--details",
            "p.parquet",
        ]);
        if let Some(bits) = env {
            c.env("MTKIT_OVERLAP_HASH_BITS", bits);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            std::fs::read_to_string(sb.path("t.csv")).unwrap(),
            pairs(&sb.path("p.parquet")),
        )
    };
    let (out, csv, p) = run(&sb, None);
    let (head, rows) = parse_csv(&csv);
    assert_eq!(
        head,
        [
            "corpus",
            "documents",
            "contaminated_documents",
            "contaminated_share",
            "eval_items_hit",
            "eval_items_share",
            "matched_ngrams"
        ]
    );
    assert_eq!(
        rows,
        [
            ["web", "4", "2", "0.5", "3", "1", "6"],
            ["code", "2", "0", "0", "0", "0", "0"]
        ]
    );
    let want = [
        ["web", "0", "0", "2", "4"],
        ["web", "0", "1", "2", "4"],
        ["web", "2", "2", "2", "4"],
    ];
    assert_eq!(p, want);
    assert!(out.contains("3 items, 5 distinct 3-grams"), "{out}");
    // A hash of 1 bit: every 3-gram collides with half the others, and nothing changes,
    // since a match needs equal ids.
    let (_, csv1, p1) = run(&sb, Some("1"));
    assert_eq!(csv1, csv);
    assert_eq!(p1, want);
}

/// A document that holds an item's first 5 tokens verbatim shares a span of 5 with it; one
/// holding two separate pieces of it reports the longest piece, and shared windows of both.
#[test]
fn longest_span_is_the_longest_verbatim_piece() {
    let sb = Sandbox::new();
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl("bench.jsonl", &["a b c d e f a b"]);
    // doc 0: "a b c d e" (3 windows abc bcd cde: span 5); doc 1: "f a b" + "c" + "c d e f a"
    // windows fab (in item), abc (in item), bcc, ccd, cde def efa (in item): runs 2 and 3.
    sb.jsonl("web.jsonl", &["a b c d e", "f a b c c d e f a"]);
    sb.ok(&[
        "overlap",
        "web.jsonl",
        "--against",
        "bench.jsonl",
        "-n",
        "3",
        "--tokenizer",
        &tok,
        "--details",
        "p.parquet",
        "-q",
    ]);
    assert_eq!(
        pairs(&sb.path("p.parquet")),
        [["web", "0", "0", "3", "5"], ["web", "1", "0", "5", "5"]]
    );
}

/// --ignore-common 0.5: abc is in 2 of EVAL's 3 items (more than half), so it marks nothing.
#[test]
fn ignore_common_drops_ngrams_shared_by_many_items() {
    let sb = Sandbox::new();
    let tok = sb.word_tokenizer("tok.json", WORDS).display().to_string();
    sb.jsonl("bench.jsonl", &["a b c d", "a b c e", "f f f"]);
    sb.jsonl("web.jsonl", &["a b c f", "e a b c d"]);
    let table = |extra: &[&str]| {
        let mut args = vec![
            "overlap",
            "web.jsonl",
            "--against",
            "bench.jsonl",
            "-n",
            "3",
            "--tokenizer",
            &tok,
            "--csv",
            "t.csv",
            "-q",
        ];
        args.extend_from_slice(extra);
        sb.ok(&args);
        parse_csv(&std::fs::read_to_string(sb.path("t.csv")).unwrap()).1
    };
    // Without: both documents have abc (items 0 and 1); doc 1 also bcd (item 0).
    assert_eq!(
        table(&[]),
        [["web", "2", "2", "1", "2", "0.6666666666666666", "3"]]
    );
    // With: only bcd counts.
    assert_eq!(
        table(&["--ignore-common", "0.5"]),
        [["web", "2", "1", "0.5", "1", "0.3333333333333333", "1"]]
    );
}

#[test]
fn settings_and_inputs_without_an_answer_are_refused() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b", "c"]);
    let base = [
        "overlap",
        "web",
        "--against",
        "bench",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        sb.fails(&v)
    };
    let e = with(&["-n", "3"]);
    assert!(
        e.contains("no item of EVAL `bench` has 3 tokens (the longest has 2)"),
        "{e}"
    );
    let e = with(&["-n", "0"]);
    assert!(e.contains("-n must be at least 1"), "{e}");
    let e = with(&["-n", "1", "--ignore-common", "1.5"]);
    assert!(e.contains("--ignore-common must be a share"), "{e}");
    let e = with(&["-n", "1", "--details", "p.csv"]);
    assert!(e.contains("--details p.csv: name a .parquet file"), "{e}");
    sb.write("empty.jsonl", "");
    let e = sb.fails(&[
        "overlap",
        "web.jsonl",
        "--against",
        "empty.jsonl",
        "--tokenizer",
        &tok,
    ]);
    assert!(e.contains("has no documents"), "{e}");
    // Nothing half-written: the failed runs left no file.
    assert!(!sb.path("p.csv").exists());
}

/// The same bytes on 1 and 2 threads.
#[test]
fn the_same_bytes_on_one_or_two_threads() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let mut outs = Vec::new();
    for threads in ["1", "2"] {
        sb.ok(&[
            "overlap",
            "web",
            "code",
            "--against",
            "bench",
            "-n",
            "2",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--csv",
            "t.csv",
            "--details",
            "p.parquet",
            "--threads",
            threads,
            "-q",
        ]);
        outs.push((
            std::fs::read(sb.path("t.csv")).unwrap(),
            std::fs::read(sb.path("p.parquet")).unwrap(),
        ));
    }
    assert_eq!(outs[0], outs[1]);
}

/// The first `n` records of a shared sample (a .jsonl.gz under corpora/), rendered by
/// `render`, read here from the gzip file.
fn shared_texts(
    shared: &std::path::Path,
    file: &str,
    n: usize,
    render: fn(&serde_json::Value) -> String,
) -> Vec<String> {
    use std::io::BufRead;
    let f = std::fs::File::open(shared.parent().unwrap().join("corpora").join(file)).unwrap();
    std::io::BufReader::new(flate2::read::GzDecoder::new(f))
        .lines()
        .take(n)
        .map(|l| render(&serde_json::from_str(&l.unwrap()).unwrap()))
        .collect()
}

/// GSM8K's template: question, newline, answer.
fn gsm8k_text(v: &serde_json::Value) -> String {
    format!(
        "{}\n{}",
        v["question"].as_str().unwrap(),
        v["answer"].as_str().unwrap()
    )
}

/// GSM8K test items planted in C4 documents: whole, a 100-character piece, with whitespace
/// changed around it, inside a longer document. Exactly those documents and items are found;
/// C4 alone has none.
#[test]
fn planted_copies_are_found_and_only_they() {
    let (Some(shared), Some(pythia)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let pythia = pythia.display().to_string();
    let sb = Sandbox::new();
    let items = shared_texts(&shared, "gsm8k-test.jsonl.gz", 40, gsm8k_text);
    let refs: Vec<&str> = items.iter().map(String::as_str).collect();
    sb.jsonl("eval.jsonl", &refs);
    let shared_s = shared.display().to_string();
    let run = |corpus: &str| {
        sb.ok(&[
            "overlap",
            corpus,
            "--against",
            "eval.jsonl",
            "--catalog",
            &shared_s,
            "--tokenizer",
            &pythia,
            "--csv",
            "t.csv",
            "--details",
            "p.parquet",
            "-q",
        ]);
        (
            parse_csv(&std::fs::read_to_string(sb.path("t.csv")).unwrap()).1,
            pairs(&sb.path("p.parquet")),
        )
    };
    let (clean, none) = run("c4");
    assert_eq!(clean[0][2], "0", "C4's sample holds no GSM8K test 13-gram");
    assert!(none.is_empty());
    // C4's first 300 documents as text, with the plants after them.
    let mut docs = shared_texts(&shared, "c4-en-sample-1k.jsonl.gz", 300, |v| {
        v["text"].as_str().unwrap().to_string()
    });
    let piece = |s: &str| {
        // ~100 characters from the middle, cut at spaces: well over 13 tokens.
        let words: Vec<&str> = s.split(' ').collect();
        let mid = words.len() / 3;
        let mut out = String::new();
        for w in &words[mid..] {
            if out.len() > 100 {
                break;
            }
            out.push_str(w);
            out.push(' ');
        }
        out.trim_end().to_string()
    };
    let planted = [
        (items[3].clone(), 3u64),
        (piece(&items[7]), 7),
        (format!("\n\n   {}  \t\n", items[11]), 11),
        (format!("{}\n\n{}\n\n{}", docs[5], items[19], docs[6]), 19),
    ];
    for (text, _) in &planted {
        docs.push(text.clone());
    }
    let refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    sb.jsonl("mixed.jsonl", &refs);
    let (rows, p) = run("mixed.jsonl");
    assert_eq!(rows[0][..3], ["mixed", "304", "4"]);
    assert_eq!(rows[0][4], "4", "four items hit");
    let found: Vec<(u64, u64)> = p
        .iter()
        .map(|r| (r[1].parse().unwrap(), r[2].parse().unwrap()))
        .collect();
    let want: Vec<(u64, u64)> = planted
        .iter()
        .enumerate()
        .map(|(k, (_, item))| (300 + k as u64, *item))
        .collect();
    assert_eq!(found, want);
}

/// The table and the pairs equal tests/readers/overlap_reference.py (HF tokenizers' ids,
/// Python sets of n-gram tuples) for GSM8K's test split against its train split, FLAN and P3
/// (the real contamination check the docs show).
#[test]
fn counts_equal_a_python_computation_on_the_shared_samples() {
    let (Some(shared), Some(pythia), Some(py)) =
        (shared_catalog(), pythia_tokenizer(), transformers_python())
    else {
        return;
    };
    let sb = Sandbox::new();
    let corpora = shared.parent().unwrap().join("corpora");
    let f = |name: &str| corpora.join(name).display().to_string();
    let pythia = pythia.display().to_string();
    let shared_s = shared.display().to_string();
    sb.ok(&[
        "overlap",
        "gsm8k",
        "flan",
        "p3",
        "--against",
        "gsm8k-test",
        "--catalog",
        &shared_s,
        "--tokenizer",
        &pythia,
        "--csv",
        "t.csv",
        "--details",
        "p.parquet",
        "-q",
    ]);
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("t.csv")).unwrap());
    let p = pairs(&sb.path("p.parquet"));
    let out = std::process::Command::new(&py)
        .arg(repo_root().join("tests/readers/overlap_reference.py"))
        .args([&pythia, "-n", "13"])
        .args([
            "--against",
            &format!("{}::{{question}}\n{{answer}}", f("gsm8k-test.jsonl.gz")),
        ])
        .arg(format!(
            "gsm8k={}::{{question}}\n{{answer}}",
            f("gsm8k-train.jsonl.gz")
        ))
        .arg(format!(
            "flan={}::{{text}}",
            f("flan-v2-cot-train.jsonl.gz")
        ))
        .arg(format!(
            "p3={}::{{text}}",
            f("p3-t0-prompted-sample.jsonl.gz")
        ))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let want_rows: Vec<Vec<String>> = v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect()
        })
        .collect();
    let got_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r[0].clone(),
                r[1].clone(),
                r[2].clone(),
                r[4].clone(),
                r[6].clone(),
            ]
        })
        .collect();
    assert_eq!(got_rows, want_rows);
    let want_pairs: Vec<Vec<String>> = v["pairs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(String::from)
                        .unwrap_or_else(|| x.to_string())
                })
                .collect()
        })
        .collect();
    assert_eq!(p.len(), want_pairs.len());
    assert_eq!(p, want_pairs);
}

/// `select --exclude-overlap`: the documents the overlap scan flags (web 0 and web 2 share a
/// 3-gram with EVAL, by hand above) are never drawn, even when the budget takes every other
/// document; the report says how many were left out, from which source.
#[test]
fn select_leaves_out_what_overlap_flags() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let out = sb.ok(&[
        "select",
        "web",
        "code",
        "--target",
        "bench",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--exclude-overlap",
        "bench",
        "--overlap-n",
        "3",
        "--fraction",
        "1",
        "-o",
        "s.jsonl",
        "--report",
        "r.json",
    ]);
    assert!(
        out.contains("left out 2 pool documents sharing a 3-gram with `bench` (web 2)"),
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
    let want: Vec<(String, u64)> = [("code", 0), ("code", 1), ("web", 1), ("web", 3)]
        .map(|(c, r)| (c.to_string(), r))
        .to_vec();
    assert_eq!(got, want);
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("r.json")).unwrap()).unwrap();
    let x = &r["excluded_by_overlap"];
    assert_eq!(x["documents"], 2);
    assert_eq!(x["n"], 3);
    assert_eq!(x["by_source"], serde_json::json!([["web", 2], ["code", 0]]));
    assert_eq!(r["pool"]["documents"], 4);
}

/// `proximity --overlap`: each corpus's contaminated share, on the documents its profile
/// counts (all of them here): web 2 of 4 (by hand above), code 0 of 2, and the target's own
/// items, each of 3 tokens or more, 3 of 3. A saved profile cannot be scanned: an error.
#[test]
fn proximity_shows_each_corpus_contaminated_share() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let out = sb.ok(&[
        "proximity",
        "web",
        "code",
        "bench",
        "--overlap",
        "bench",
        "--overlap-n",
        "3",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--max-docs",
        "all",
        "--no-cache",
        "--csv",
        "p.csv",
    ]);
    assert!(out.contains("contaminated"), "{out}");
    let (head, rows) = parse_csv(&std::fs::read_to_string(sb.path("p.csv")).unwrap());
    assert_eq!(head.last().unwrap(), "contaminated_share");
    let shares: Vec<(String, f64)> = rows
        .iter()
        .map(|r| (r[0].clone(), r.last().unwrap().parse().unwrap()))
        .collect();
    assert_eq!(
        shares,
        [
            ("web".to_string(), 0.5),
            ("code".to_string(), 0.0),
            ("bench".to_string(), 1.0)
        ]
    );
    // Without --overlap the column is absent (the CSV is as before).
    sb.ok(&[
        "proximity",
        "web",
        "code",
        "bench",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--max-docs",
        "all",
        "--no-cache",
        "--csv",
        "q.csv",
        "-q",
    ]);
    let (head, _) = parse_csv(&std::fs::read_to_string(sb.path("q.csv")).unwrap());
    assert_eq!(head.last().unwrap(), "pa");
    sb.ok(&[
        "profile",
        "web",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--max-docs",
        "all",
        "-o",
        "web.parquet",
        "-q",
    ]);
    let e = sb.fails(&[
        "proximity",
        "web.parquet",
        "code",
        "bench",
        "--overlap",
        "bench",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
    ]);
    assert!(e.contains("web.parquet is a saved profile"), "{e}");
}

/// All tokens of a split written by `tokenize`, in order.
fn split_tokens(dir: &std::path::Path) -> Vec<u32> {
    let s = mtkit::export::tokens::Split::open(dir, "train").unwrap();
    (0..s.n_tokens()).map(|i| s.token(i)).collect()
}

/// `tokenize --exclude-overlap`: web 0 and web 2 share a 3-gram with EVAL (by hand above), so
/// web's token files hold web 1 and web 3 only: the same tokens as a corpus of just those two
/// documents, tokenized without the flag.
#[test]
fn tokenize_leaves_out_what_overlap_flags() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let out = sb.ok(&[
        "tokenize",
        "web",
        "--exclude-overlap",
        "bench",
        "--overlap-n",
        "3",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--val-docs",
        "0",
        "-o",
        "tok",
    ]);
    assert!(
        out.contains("web: left out 2 documents sharing a 3-gram with `bench`"),
        "{out}"
    );
    sb.jsonl("kept.jsonl", &["a b d c", "a b"]);
    sb.ok(&[
        "tokenize",
        "kept.jsonl",
        "--tokenizer",
        &tok,
        "--val-docs",
        "0",
        "-o",
        "ref",
        "-q",
    ]);
    let got = split_tokens(&sb.path("tok/web"));
    assert_eq!(
        got.len(),
        4 + 2 + 2,
        "two documents and their end-of-text tokens"
    );
    assert_eq!(got, split_tokens(&sb.path("ref/kept")));
}

/// `overlap web code --against bench -n 3` with the fixture's catalog and tokenizer.
fn fixture_scan(cat: &str, tok: &str) -> Vec<String> {
    [
        "overlap",
        "web",
        "code",
        "--against",
        "bench",
        "-n",
        "3",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `--shard K/N --part` then `overlap merge`: the parts of every shard add into the whole
/// scan's table and pairs, byte for byte, in any order of the parts; by hand (the 3-gram
/// fixture, 2 shards) and on the shared samples (GSM8K train and FLAN against GSM8K test, 3
/// and 7 shards).
#[test]
fn shard_parts_merge_into_the_whole_scan() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let base = |extra: &[&str]| -> Vec<String> {
        let mut v = fixture_scan(&cat, &tok);
        v.push("-q".to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |args: Vec<String>| sb.ok(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    run(base(&["--csv", "whole.csv", "--details", "whole.parquet"]));
    for k in 1..=2 {
        run(base(&[
            "--shard",
            &format!("{k}/2"),
            "--part",
            &format!("p{k}.json"),
        ]));
    }
    sb.ok(&[
        "overlap",
        "merge",
        "p2.json",
        "p1.json",
        "--csv",
        "m.csv",
        "--details",
        "m.parquet",
    ]);
    let read = |f: &str| std::fs::read(sb.path(f)).unwrap();
    assert_eq!(read("m.csv"), read("whole.csv"));
    assert_eq!(
        pairs(&sb.path("m.parquet")),
        pairs(&sb.path("whole.parquet"))
    );
    assert_eq!(read("m.parquet"), read("whole.parquet"));
    // Item 2 ("f f f") is hit by web record 2, in shard 1 only; items 0 and 1 by record 0,
    // also in shard 1: shard 2's part hits none, and the merge counts each item once.
    let part2: serde_json::Value = serde_json::from_slice(&read("p2.json")).unwrap();
    assert_eq!(
        part2["corpora"][0]["eval_records_hit"],
        serde_json::json!([])
    );

    // What cannot merge is named: a missing shard, one given twice, another -n.
    let err = sb.fails(&["overlap", "merge", "p1.json", "--csv", "x.csv"]);
    assert!(err.contains("the parts miss shard 2/2"), "{err}");
    let err = sb.fails(&["overlap", "merge", "p1.json", "p1.json", "--csv", "x.csv"]);
    assert!(err.contains("shard 1/2 is given twice"), "{err}");
    let mut other_n = base(&["--shard", "2/2", "--part", "q2.json"]);
    other_n[6] = "2".to_string(); // -n 3 → -n 2
    run(other_n);
    let err = sb.fails(&["overlap", "merge", "p1.json", "q2.json", "--csv", "x.csv"]);
    assert!(
        err.contains("different -n: 3 in p1.json, 2 in q2.json"),
        "{err}"
    );
    assert!(!sb.path("x.csv").exists());
    // A sample's shards are not a sample of the whole: refused.
    let args = base(&["--max-docs", "3", "--shard", "1/2", "--part", "s.json"]);
    let o = sb.run(&args.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("only with --max-docs all"),
        "{err}"
    );

    // The shared samples: thousands of documents and real contamination.
    let (Some(shared), Some(pythia)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let (shared, pythia) = (shared.display().to_string(), pythia.display().to_string());
    let real = |extra: &[&str]| {
        let mut v = vec![
            "overlap",
            "gsm8k",
            "flan",
            "--against",
            "gsm8k-test",
            "--catalog",
            &shared,
            "--tokenizer",
            &pythia,
            "-q",
        ];
        v.extend_from_slice(extra);
        sb.ok(&v);
    };
    real(&["--csv", "rw.csv", "--details", "rw.parquet"]);
    let (_, rows) = parse_csv(&String::from_utf8(read("rw.csv")).unwrap());
    assert!(
        rows[0][2] != "0",
        "GSM8K train shares 13-grams with its test split: {rows:?}"
    );
    for n in [3, 7] {
        let mut parts = Vec::new();
        for k in (1..=n).rev() {
            let part = format!("r{k}-{n}.json");
            real(&["--shard", &format!("{k}/{n}"), "--part", &part]);
            parts.push(part);
        }
        let mut args = vec!["overlap", "merge"];
        args.extend(parts.iter().map(|s| s.as_str()));
        args.extend(["--csv", "rm.csv", "--details", "rm.parquet", "-q"]);
        sb.ok(&args);
        assert_eq!(read("rm.csv"), read("rw.csv"), "{n} shards");
        assert_eq!(read("rm.parquet"), read("rw.parquet"), "{n} shards");
    }
}

/// `--slurm N --dry-run` prints the two scripts: each task scans its shard into a part, the
/// merge job runs `overlap merge` on the folder into --csv (and --details); --slurm needs
/// --csv and refuses more shards than a corpus has records.
#[test]
fn slurm_scripts_scan_shards_into_parts_and_merge_them() {
    let sb = Sandbox::new();
    let (cat, tok) = fixture(&sb, &["a b c d", "c d e f", "f f f"]);
    let args = |extra: &[&'static str]| -> Vec<String> {
        let mut v = fixture_scan(&cat, &tok);
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |v: Vec<String>| sb.run(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    let o = run(args(&[
        "--slurm",
        "2",
        "--dry-run",
        "--csv",
        "t.csv",
        "--details",
        "p.parquet",
    ]));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::path::absolute(sb.path("t.csv")).unwrap();
    let parts = format!("{}.parts", csv.display());
    assert!(out.contains(&format!("# {parts}/shards.sbatch")), "{out}");
    assert!(
        out.contains("--shard \"$k/2\" --part \"$part.json\" --quiet"),
        "{out}"
    );
    assert!(
        out.contains(" overlap web code --against bench -n 3 "),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "overlap merge {parts} --csv {} --details {}",
            csv.display(),
            std::path::absolute(sb.path("p.parquet")).unwrap().display()
        )),
        "{out}"
    );
    let o = run(args(&["--slurm", "2", "--dry-run"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("--slurm N needs --csv FILE"),
        "{err}"
    );
    let o = run(args(&["--slurm", "3", "--dry-run", "--csv", "t.csv"]));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("corpus `code` has 2 records, so 1 of the 3 shards"),
        "{err}"
    );
}
