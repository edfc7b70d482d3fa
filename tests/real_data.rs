//! The real corpus samples in ../shared/data through its catalog. Skipped (with the reason
//! printed) where they are absent; .ci/run makes them run in CI.

mod common;
use common::*;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};

fn read_texts(path: &std::path::Path) -> Vec<String> {
    let f = std::fs::File::open(path).unwrap();
    let r: Box<dyn std::io::Read> = if path.extension().unwrap() == "gz" {
        Box::new(flate2::read::GzDecoder::new(f))
    } else {
        Box::new(f)
    };
    BufReader::new(r)
        .lines()
        .map(|l| l.unwrap())
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(&l).unwrap()["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

#[test]
fn data_show_prints_the_first_real_c4_documents() {
    let Some(cat) = shared_catalog() else { return };
    let sb = Sandbox::new();
    let out = sb.ok(&[
        "data",
        "show",
        "c4",
        "--catalog",
        cat.to_str().unwrap(),
        "-n",
        "2",
    ]);
    let texts = read_texts(
        &cat.parent()
            .unwrap()
            .join("corpora/c4-en-sample-1k.jsonl.gz"),
    );
    assert!(
        out.contains(&format!("--- document 1 (record 0) ---\n{}\n", texts[0])),
        "{out}"
    );
    assert!(out.contains(&format!("--- document 2 (record 1) ---\n{}\n", texts[1])));
    assert!(!out.contains("--- document 3"));
}

#[test]
fn data_list_shows_every_catalog_corpus_present() {
    let Some(cat) = shared_catalog() else { return };
    let sb = Sandbox::new();
    let out = sb.ok(&["data", "list", "--catalog", cat.to_str().unwrap()]);
    let text = std::fs::read_to_string(&cat).unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("[datasets."))
        .map(|l| l.trim_end_matches(']'))
        .collect();
    assert!(names.len() >= 10);
    for n in names {
        let row = out
            .lines()
            .find(|l| l.split_whitespace().next() == Some(n))
            .unwrap_or_else(|| panic!("{n} missing:\n{out}"));
        assert_eq!(row.split_whitespace().nth(2), Some("yes"), "{row}");
    }
    let c4 = out.lines().find(|l| l.starts_with("c4 ")).unwrap();
    assert!(c4.contains("c4-en-sample-1k.jsonl.gz"), "{c4}");
}

/// The acceptance check: `mtkit proximity c4 starcoder codesearchnet --max-docs all` equals an
/// independent computation (tokenizers crate directly, own counting, own metric code).
#[test]
fn proximity_on_real_samples_matches_an_independent_computation() {
    let Some(cat) = shared_catalog() else { return };
    let Some(tok_path) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    sb.ok(&[
        "proximity",
        "c4",
        "starcoder",
        "codesearchnet",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        tok_path.to_str().unwrap(),
        "--max-docs",
        "all",
        "--csv",
        "out.csv",
        "--quiet",
    ]);
    let (_, rows) = parse_csv(&std::fs::read_to_string(sb.path("out.csv")).unwrap());

    let tok = tokenizers::Tokenizer::from_file(&tok_path).unwrap();
    let dir = cat.parent().unwrap().join("corpora");
    let count = |files: &[&str]| -> BTreeMap<u32, f64> {
        let mut m = BTreeMap::new();
        for f in files {
            for t in read_texts(&dir.join(f)) {
                let cut: String = t.chars().take(10_000).collect();
                let enc = tok.encode(cut.as_str(), false).unwrap();
                for id in enc.get_ids().iter().take(512) {
                    *m.entry(*id).or_insert(0.0) += 1.0;
                }
            }
        }
        m
    };
    let c4 = count(&["c4-en-sample-1k.jsonl.gz"]);
    let code = count(&[
        "humaneval-python.jsonl",
        "humaneval-x-multilang.jsonl.gz",
        "mbpp.jsonl",
    ]);
    let target = count(&["codesearchnet-python-cosqa.jsonl.gz"]);
    let sim = |a: &BTreeMap<u32, f64>, b: &BTreeMap<u32, f64>| paper_reference(a, b).3;
    let s_p = sim(&c4, &target);
    let s_m = sim(&code, &target);
    let get = |name: &str, col: usize| {
        rows.iter().find(|r| r[0] == name).unwrap()[col]
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        (get("c4", 3) - s_p).abs() <= 1e-9,
        "{} vs {s_p}",
        get("c4", 3)
    );
    assert!(
        (get("starcoder", 3) - s_m).abs() <= 1e-9,
        "{} vs {s_m}",
        get("starcoder", 3)
    );
    assert!((get("starcoder", 7) - (s_m - s_p)).abs() <= 1e-9);
    assert!(s_m > s_p, "code is closer to CodeSearchNet than C4 is");
}
