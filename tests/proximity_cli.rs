//! `mtkit profile` and `mtkit proximity` through the real binary, checked against values
//! worked out by hand and against a second, independent implementation of the definitions.

mod common;
use common::*;
use std::collections::BTreeMap;

/// The paper's metric, computed independently (tests/common).
fn reference(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) -> (f64, f64, f64, f64) {
    paper_reference(a, b)
}

fn words(docs: &[&str]) -> BTreeMap<String, f64> {
    let mut m = BTreeMap::new();
    for d in docs {
        for w in d.split_whitespace() {
            *m.entry(w.to_string()).or_insert(0.0) += 1.0;
        }
    }
    m
}

const P: [&str; 2] = ["a a b", "b c"];
const M: [&str; 1] = ["c d d"];
const M2: [&str; 2] = ["a b", "b b a"];
const T: [&str; 2] = ["c d", "a d"];

struct Fixture {
    sb: Sandbox,
    cat: String,
    tok: String,
}

fn fixture() -> Fixture {
    let sb = Sandbox::new();
    let tok = sb
        .word_tokenizer("tok.json", &["a", "b", "c", "d"])
        .display()
        .to_string();
    sb.jsonl("p.jsonl", &P);
    sb.jsonl("m.jsonl", &M);
    sb.jsonl("m2.jsonl", &M2);
    sb.jsonl("t.jsonl", &T);
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.p]\nrole = \"pretrain\"\npaths = [\"p.jsonl\"]\n[datasets.m]\nrole = \"midtrain\"\npaths = [\"m.jsonl\"]\n\
             [datasets.m2]\nrole = \"midtrain\"\npaths = [\"m2.jsonl\"]\n[datasets.t]\nrole = \"target\"\npaths = [\"t.jsonl\"]\n",
        )
        .display()
        .to_string();
    Fixture { sb, cat, tok }
}

impl Fixture {
    fn prox(&self, extra: &[&str]) -> String {
        let mut args = vec![
            "proximity",
            "--catalog",
            &self.cat,
            "--tokenizer",
            &self.tok,
            "--quiet",
        ];
        args.extend_from_slice(extra);
        self.sb.ok(&args)
    }
}

fn f(s: &str) -> f64 {
    s.parse().unwrap_or_else(|_| panic!("not a number: {s:?}"))
}

#[test]
fn paper_metric_matches_hand_values_and_second_implementation() {
    let fx = fixture();
    fx.prox(&["p", "m", "m2", "t", "--csv", "out.csv"]);
    let (header, rows) = parse_csv(&std::fs::read_to_string(fx.sb.path("out.csv")).unwrap());
    assert_eq!(
        header,
        ["corpus", "role", "metric", "sim", "cosine", "jaccard", "jsd", "pa"]
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(fx.sb.path("out.csv"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o644, "outputs are ordinary readable files");
    }
    let names: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        names,
        ["p", "m", "m2", "t"],
        "P first, candidates by PA, T last"
    );
    let roles: Vec<&str> = rows.iter().map(|r| r[1].as_str()).collect();
    assert_eq!(roles, ["pretrain", "midtrain", "midtrain", "target"]);

    // By hand: P counts a2 b2 c1, T counts a1 c1 d2. cos = 3 / (3·√6) = 1/√6; jaccard 2/4.
    let p = &rows[0];
    assert!((f(&p[4]) - 1.0 / 6f64.sqrt()).abs() < 1e-12, "{p:?}");
    assert!((f(&p[5]) - 0.5).abs() < 1e-12);
    // M counts c1 d2: cos = 5/√30, jaccard 2/3.
    let m = &rows[1];
    assert!((f(&m[4]) - 5.0 / 30f64.sqrt()).abs() < 1e-12, "{m:?}");
    assert!((f(&m[5]) - 2.0 / 3.0).abs() < 1e-12);

    let t = words(&T);
    let sim_p = reference(&words(&P), &t).3;
    for (row, docs) in [(&rows[1], &M[..]), (&rows[2], &M2[..])] {
        let (cos, jac, jsd, sim) = reference(&words(docs), &t);
        assert!((f(&row[3]) - sim).abs() < 1e-12, "{row:?}");
        assert!(
            (f(&row[4]) - cos).abs() < 1e-12
                && (f(&row[5]) - jac).abs() < 1e-12
                && (f(&row[6]) - jsd).abs() < 1e-12
        );
        assert!(
            (f(&row[7]) - (sim - sim_p)).abs() < 1e-12,
            "PA = sim(M,T) - sim(P,T): {row:?}"
        );
    }
    assert!(
        rows[0][7].is_empty() && rows[3][7].is_empty(),
        "no PA for P and T"
    );
    assert!((f(&rows[3][3]) - 1.0).abs() < 1e-12, "sim(T,T) = 1");
    // At least 10 significant digits.
    let digits = rows[1][3].chars().filter(|c| c.is_ascii_digit()).count();
    assert!(digits >= 10, "{}", rows[1][3]);
}

#[test]
fn mixture_aware_variant_blends_in_token_weights() {
    let fx = fixture();
    fx.prox(&["p", "m", "t", "--mix", "0.25", "--csv", "mix.csv"]);
    let (header, rows) = parse_csv(&std::fs::read_to_string(fx.sb.path("mix.csv")).unwrap());
    assert_eq!(header.last().unwrap(), "mix_token_weight");
    // Blend: 0.75·P/5 + 0.25·M/3 as frequencies; scale to pseudo-counts ×60 for the reference.
    let mut blend = BTreeMap::new();
    for (w, c) in words(&P) {
        *blend.entry(w).or_insert(0.0) += 0.75 * c / 5.0 * 60.0;
    }
    for (w, c) in words(&M) {
        *blend.entry(w).or_insert(0.0) += 0.25 * c / 3.0 * 60.0;
    }
    let want = reference(&blend, &words(&T)).3;
    assert!((f(&rows[1][3]) - want).abs() < 1e-12, "{:?}", rows[1]);
    assert_eq!(f(&rows[1][8]), 0.25);
    // By documents: P has 2.5 tokens/doc, M 3 → w_tok = .25·3 / (.25·3 + .75·2.5).
    fx.prox(&[
        "p", "m", "t", "--mix", "0.25", "--mix-by", "docs", "--csv", "mixd.csv",
    ]);
    let (_, rows) = parse_csv(&std::fs::read_to_string(fx.sb.path("mixd.csv")).unwrap());
    assert!(
        (f(&rows[1][8]) - 0.75 / (0.75 + 1.875)).abs() < 1e-12,
        "{:?}",
        rows[1]
    );
}

#[test]
fn all_metrics_json_and_determinism() {
    let fx = fixture();
    let out = fx.prox(&["p", "m", "t", "--all-metrics", "--ngram", "2", "--json"]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 9 * 3);
    let get = |metric: &str, corpus: &str| {
        rows.iter()
            .find(|r| r["metric"] == metric && r["corpus"] == corpus)
            .unwrap()
            .clone()
    };
    // cosine metric = the paper's cosine part; js-sim = 1/(1+jsd part); jsd metric = -jsd part.
    let paper = get("paper", "m");
    assert_eq!(get("cosine", "m")["sim"], paper["cosine"]);
    let jsd = paper["jsd"].as_f64().unwrap();
    assert!((get("js-sim", "m")["sim"].as_f64().unwrap() - 1.0 / (1.0 + jsd)).abs() < 1e-15);
    assert!((get("jsd", "m")["sim"].as_f64().unwrap() + jsd).abs() < 1e-15);
    // Hellinger by hand for M vs T: m = (0,0,1/3,2/3), t = (1/4,0,1/4,1/2).
    let h2: f64 = [(0.0f64, 0.25f64), (1.0 / 3.0, 0.25), (2.0 / 3.0, 0.5)]
        .iter()
        .map(|(a, b)| (a.sqrt() - b.sqrt()).powi(2))
        .sum();
    assert!(
        (get("hellinger", "m")["sim"].as_f64().unwrap() - (1.0 - (h2 / 2.0).sqrt())).abs() < 1e-12
    );
    // Cross-entropy with α = 0.01 over the tokenizer's 5 ids: m̃ = (c + .01) / (3 + .05).
    let sm = |c: f64| (c + 0.01) / 3.05;
    let ce = -(0.25 * sm(0.0).ln() + 0.25 * sm(1.0).ln() + 0.5 * sm(2.0).ln());
    assert!((get("cross-entropy", "m")["sim"].as_f64().unwrap() + ce).abs() < 1e-12);
    let h_t = -(0.25f64 * 0.25f64.ln() * 2.0 + 0.5 * 0.5f64.ln());
    assert!((get("kl", "m")["sim"].as_f64().unwrap() + (ce - h_t)).abs() < 1e-12);
    // ngram-cosine (N = 2): mean of unigram cosine and bigram cosine. Bigrams within docs:
    // M: (c d), (d d); T: (c d), (a d) → cosine 1/2.
    let uni = 5.0 / 30f64.sqrt();
    assert!((get("ngram-cosine", "m")["sim"].as_f64().unwrap() - (uni + 0.5) / 2.0).abs() < 1e-12);
    // Same inputs, same bytes.
    assert_eq!(
        out,
        fx.prox(&["p", "m", "t", "--all-metrics", "--ngram", "2", "--json"])
    );
}

#[test]
fn bootstrap_intervals_bracket_and_reproduce() {
    let fx = fixture();
    // Several reading batches (128 documents each) in no periodic pattern, so that a document
    // order that depended on which worker finished first would change the resamples.
    let docs: Vec<String> = (0..700)
        .map(|i| ["a b c", "a a d", "c c b", "d a"][(i * i + i / 7) % 4].to_string())
        .collect();
    let refs: Vec<&str> = docs.iter().map(|s| s.as_str()).collect();
    fx.sb.jsonl("big.jsonl", &refs);
    let cat = format!("{}\n", std::fs::read_to_string(&fx.cat).unwrap())
        + "[datasets.big]\nrole = \"target\"\npaths = [\"big.jsonl\"]\n";
    let cat_path = fx.sb.write("cat2.toml", cat).display().to_string();
    let run_with = |name: &str, threads: &str| {
        fx.sb.ok(&[
            "--threads",
            threads,
            "proximity",
            "p",
            "m",
            "big",
            "--catalog",
            &cat_path,
            "--tokenizer",
            &fx.tok,
            "--quiet",
            "--bootstrap",
            "200",
            "--no-cache",
            "--csv",
            name,
        ]);
        std::fs::read_to_string(fx.sb.path(name)).unwrap()
    };
    let run = |name: &str| run_with(name, "2");
    let a = run("b1.csv");
    assert_eq!(a, run("b2.csv"), "bootstrap is seeded");
    assert_eq!(
        a,
        run_with("b3.csv", "1"),
        "and independent of the thread count"
    );
    assert_eq!(
        a,
        run_with("b4.csv", "3"),
        "and independent of the thread count"
    );
    let (header, rows) = parse_csv(&a);
    assert_eq!(&header[8..], ["sim_lo", "sim_hi", "pa_lo", "pa_hi"]);
    for r in &rows {
        assert!(
            f(&r[8]) <= f(&r[3]) + 1e-12 && f(&r[3]) <= f(&r[9]) + 1e-12,
            "{r:?}"
        );
    }
}

#[test]
fn matrix_and_heatmap() {
    let fx = fixture();
    let out = fx.prox(&[
        "--matrix", "p", "m", "t", "--plot", "m.svg", "--plot", "m.png",
    ]);
    let (header, rows) = parse_csv(&out);
    assert_eq!(header, ["corpus", "p", "m", "t"]);
    for i in 0..3 {
        assert!((f(&rows[i][i + 1]) - 1.0).abs() < 1e-12, "diagonal");
        for j in 0..3 {
            assert_eq!(rows[i][j + 1], rows[j][i + 1], "paper metric is symmetric");
        }
    }
    let t = words(&T);
    assert!((f(&rows[1][3]) - reference(&words(&M), &t).3).abs() < 1e-12);
    // The heatmap writes each cell's value with 3 significant digits: 1.00 on the diagonal
    // (3 times), every other value twice (the matrix is symmetric); the PNG has the same size.
    let svg = std::fs::read_to_string(fx.sb.path("m.svg")).unwrap();
    let texts = svg_texts(&svg);
    let sig3 = |v: f64| format!("{:.*}", (2 - v.log10().floor() as i32).max(0) as usize, v);
    for (i, row) in rows.iter().enumerate() {
        for j in 0..3 {
            let want = if i == j { 3 } else { 2 };
            let cell = sig3(f(&row[j + 1]));
            let seen = texts.iter().filter(|t| **t == cell).count();
            assert!(seen >= want, "{cell} written {seen} times in {texts:?}");
        }
    }
    assert_eq!(
        png_size(&std::fs::read(fx.sb.path("m.png")).unwrap()),
        svg_size(&svg)
    );
    let e = fx
        .sb
        .fails(&["proximity", "--matrix", "p", "m", "--plot", "m.pdf"]);
    assert!(e.contains("m.pdf") && e.contains(".svg or .png"), "{e}");
}

#[test]
fn bad_requests_fail_clearly() {
    let fx = fixture();
    let base = [
        "proximity",
        "--catalog",
        &fx.cat,
        "--tokenizer",
        &fx.tok,
        "--quiet",
    ];
    let with = |extra: &[&str]| {
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(extra);
        fx.sb.fails(&v)
    };
    assert!(with(&["p", "m", "t", "--metric", "cosin"]).contains("unknown metric `cosin`"));
    assert!(with(&["p", "t"]).contains("at least three corpora"));
    assert!(with(&["p", "nope", "t"]).contains("unknown corpus `nope`"));
    // Profiles made with different tokenizers.
    let tok2 = fx
        .sb
        .word_tokenizer("tok2.json", &["a", "b", "c", "d", "e"])
        .display()
        .to_string();
    fx.sb.ok(&[
        "profile",
        "p",
        "--catalog",
        &fx.cat,
        "--tokenizer",
        &fx.tok,
        "--ngram",
        "1",
        "-o",
        "p.parquet",
        "--quiet",
    ]);
    fx.sb.ok(&[
        "profile",
        "m",
        "--catalog",
        &fx.cat,
        "--tokenizer",
        &tok2,
        "--ngram",
        "1",
        "-o",
        "m.parquet",
        "--quiet",
    ]);
    fx.sb.ok(&[
        "profile",
        "t",
        "--catalog",
        &fx.cat,
        "--tokenizer",
        &fx.tok,
        "--ngram",
        "1",
        "-o",
        "t.parquet",
        "--quiet",
    ]);
    let e = fx
        .sb
        .fails(&["proximity", "p.parquet", "m.parquet", "t.parquet"]);
    assert!(e.contains("different tokenizers"), "{e}");
    // An n-gram order the profiles lack.
    fx.sb.ok(&[
        "profile",
        "m",
        "--catalog",
        &fx.cat,
        "--tokenizer",
        &fx.tok,
        "--ngram",
        "1",
        "-o",
        "m1.parquet",
        "--quiet",
    ]);
    let e = fx.sb.fails(&[
        "proximity",
        "p.parquet",
        "m1.parquet",
        "t.parquet",
        "--metric",
        "ngram-cosine",
    ]);
    assert!(e.contains("needs 2-grams") && e.contains("order 1"), "{e}");
}

#[test]
fn profiles_are_cached_and_saved_profiles_give_the_same_numbers() {
    let fx = fixture();
    let args = ["profile", "p", "--catalog", &fx.cat, "--tokenizer", &fx.tok];
    assert!(fx.sb.ok(&args).contains("computed"));
    assert!(fx.sb.ok(&args).contains(" cache "));
    let mut nc = args.to_vec();
    nc.push("--no-cache");
    assert!(fx.sb.ok(&nc).contains("computed"));
    // Changing the corpus file invalidates the cache.
    std::thread::sleep(std::time::Duration::from_millis(20));
    fx.sb.jsonl("p.jsonl", &["a a b", "b c", "d"]);
    assert!(fx.sb.ok(&args).contains("computed"));
    fx.sb.jsonl("p.jsonl", &P);
    // Saved profile files stand in for corpus names.
    for (n, o) in [("p", "p.parquet"), ("m", "m.parquet"), ("t", "t.parquet")] {
        fx.sb.ok(&[
            "profile",
            n,
            "--catalog",
            &fx.cat,
            "--tokenizer",
            &fx.tok,
            "-o",
            o,
            "--quiet",
        ]);
    }
    let from_files = fx
        .sb
        .ok(&["proximity", "p.parquet", "m.parquet", "t.parquet", "--json"]);
    let from_names = fx.prox(&["p", "m", "t", "--json"]);
    assert_eq!(from_files, from_names);
}

#[test]
fn shard_profiles_merge_into_the_whole() {
    let sb = Sandbox::new();
    let vocab: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let vrefs: Vec<&str> = vocab.iter().map(|s| s.as_str()).collect();
    let tok = sb.word_tokenizer("tok.json", &vrefs).display().to_string();
    let mut rng = 12345u64;
    let docs: Vec<String> = (0..301)
        .map(|_| {
            (0..(3 + rng % 20))
                .map(|_| {
                    rng = rng
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    vocab[(rng >> 33) as usize % 40].clone()
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let refs: Vec<&str> = docs.iter().map(|s| s.as_str()).collect();
    sb.jsonl("a.jsonl", &refs[..150]);
    sb.jsonl("b.jsonl", &refs[150..]);
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.c]\nrole = \"pretrain\"\npaths = [\"a.jsonl\", \"b.jsonl\"]\n",
        )
        .display()
        .to_string();
    for mode in [vec![], vec!["--ngram-buckets", "97"]] {
        let base = |extra: &[&str]| {
            let mut v = vec![
                "profile",
                "c",
                "--catalog",
                &cat,
                "--tokenizer",
                &tok,
                "--ngram",
                "4",
                "--max-docs",
                "all",
                "--quiet",
            ];
            v.extend_from_slice(&mode);
            v.extend_from_slice(extra);
            v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
        };
        let run = |v: Vec<String>| sb.ok(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>());
        run(base(&["-o", "whole.parquet"]));
        run(base(&[
            "--threads",
            "1",
            "--no-cache",
            "-o",
            "one-thread.parquet",
        ]));
        for k in 1..=3 {
            run(base(&[
                "--shard",
                &format!("{k}/3"),
                "-o",
                &format!("s{k}.parquet"),
            ]));
        }
        let out = sb.ok(&[
            "profile",
            "merge",
            "s1.parquet",
            "s2.parquet",
            "s3.parquet",
            "-o",
            "merged.parquet",
        ]);
        assert!(out.contains("the whole corpus"), "{out}");
        let whole = mtkit::profile::Profile::load(&sb.path("whole.parquet")).unwrap();
        let merged = mtkit::profile::Profile::load(&sb.path("merged.parquet")).unwrap();
        assert_eq!(merged.unigram, whole.unigram);
        assert_eq!(merged.ngrams, whole.ngrams);
        assert_eq!(merged.totals, whole.totals);
        assert_eq!(merged.meta.shards, None);
        let one = mtkit::profile::Profile::load(&sb.path("one-thread.parquet")).unwrap();
        assert_eq!(
            (one.unigram, one.ngrams, one.totals),
            (
                whole.unigram.clone(),
                whole.ngrams.clone(),
                whole.totals.clone()
            ),
            "counts do not depend on the thread count"
        );
        // Independent check of the whole profile's unigram counts.
        let total_words: u64 = docs
            .iter()
            .map(|d| d.split_whitespace().count() as u64)
            .sum();
        assert_eq!(whole.totals.tokens, total_words);
        assert_eq!(
            whole.unigram[1],
            docs.iter()
                .map(|d| d.split_whitespace().filter(|w| *w == "w0").count() as u64)
                .sum::<u64>()
        );
        let e = sb.fails(&[
            "profile",
            "merge",
            "s1.parquet",
            "s1.parquet",
            "-o",
            "x.parquet",
        ]);
        assert!(e.contains("shard 1/3 appears twice"), "{e}");
        let e = sb.fails(&["--threads", "0", "profile", "c", "--catalog", &cat]);
        assert!(e.contains("--threads must be at least 1"), "{e}");
    }
}

#[test]
fn demo_code_is_closer_to_the_docstring_target_than_web() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let out = sb.ok(&[
        "proximity",
        "demo-web",
        "demo-code",
        "demo-docstring",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--quiet",
        "--json",
    ]);
    let rows: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let code = rows.iter().find(|r| r["corpus"] == "demo-code").unwrap();
    assert!(code["pa"].as_f64().unwrap() > 0.05, "{code}");
}

/// ngram-cosine on real corpora is the same f64 in every run: its sums over n-grams run in
/// key order. (They ran over hash maps, whose order changes per process, and the 13th digit
/// of c4 → codesearchnet changed between runs.)
#[test]
fn ngram_cosine_of_real_corpora_is_the_same_in_every_run() {
    let (Some(cat), Some(tok)) = (shared_catalog(), pythia_tokenizer()) else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, tok) = (cat.display().to_string(), tok.display().to_string());
    let args = [
        "proximity",
        "c4",
        "starcoder",
        "codesearchnet",
        "--metric",
        "ngram-cosine",
        "--ngram",
        "4",
        "--json",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-q",
    ];
    let first = sb.ok(&args);
    for _ in 0..4 {
        // --no-cache: the counts are made again too, by threads in whatever order.
        let mut again = args.to_vec();
        again.push("--no-cache");
        assert_eq!(sb.ok(&again), first);
    }
}
