//! A researcher's first hour (issue 39): corpora given as paths wherever a corpus name is
//! accepted, as polars and Hugging Face datasets take files directly.

mod common;

use common::Sandbox;

/// A word-level tokenizer over w0..w9 and an EOS; token counts are word counts.
fn tokenizer(sb: &Sandbox) -> String {
    let mut vocab: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
    vocab.push("<|endoftext|>".into());
    let refs: Vec<&str> = vocab.iter().map(|s| s.as_str()).collect();
    sb.word_tokenizer("tok.json", &refs).display().to_string()
}

/// The row of `name` in a printed table, split on whitespace.
fn row(table: &str, name: &str) -> Vec<String> {
    table
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row `{name}` in:\n{table}"))
        .split_whitespace()
        .map(String::from)
        .collect()
}

#[test]
fn a_path_is_a_corpus_named_after_its_file() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    // 3 documents of 2 + 3 + 4 = 9 words; a blank line is not a record.
    sb.jsonl("data/fields.jsonl", &["w1 w2", "w3 w4 w5", "w1 w1 w1 w9"]);
    let out = sb.ok(&[
        "profile",
        "./data/fields.jsonl",
        "--tokenizer",
        &tok,
        "--ngram",
        "1",
        "--max-docs",
        "all",
    ]);
    let r = row(&out, "fields");
    assert_eq!((r[1].as_str(), r[2].as_str()), ("3", "9"), "{out}");
    // A glob, named after its folder; --text renders other fields.
    sb.write(
        "qa/part-1.jsonl",
        "{\"q\": \"w1 w2\", \"a\": \"w3\"}\n{\"q\": \"w4\", \"a\": \"w5 w6\"}\n",
    );
    sb.write("qa/part-2.jsonl", "{\"q\": \"w7\", \"a\": \"w8\"}\n");
    let out = sb.ok(&[
        "profile",
        "qa/*.jsonl",
        "--text",
        "{q} {a}",
        "--tokenizer",
        &tok,
        "--ngram",
        "1",
        "--max-docs",
        "all",
    ]);
    let r = row(&out, "qa");
    assert_eq!((r[1].as_str(), r[2].as_str()), ("3", "8"), "{out}");
    // proximity and tokenize take paths too (one --text for every corpus given as a path).
    sb.jsonl("data/other.jsonl", &["w1 w2 w3", "w8 w9"]);
    let out = sb.ok(&[
        "proximity",
        "data/fields.jsonl",
        "data/other.jsonl",
        "data/fields.jsonl",
        "--tokenizer",
        &tok,
        "--ngram",
        "1",
        "--max-docs",
        "all",
    ]);
    assert!(out.contains("fields") && out.contains("other"), "{out}");
    sb.ok(&[
        "tokenize",
        "data/fields.jsonl",
        "--tokenizer",
        &tok,
        "-o",
        "tokens",
        "--max-docs",
        "all",
        "--val-docs",
        "1",
        "-q",
    ]);
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("tokens/fields/meta.json")).unwrap())
            .unwrap();
    // 9 words + one EOS per document.
    assert_eq!(
        meta["train_tokens"].as_u64().unwrap() + meta["val_tokens"].as_u64().unwrap(),
        12
    );
}

#[test]
fn a_name_that_is_neither_a_card_nor_a_path_gets_both_hints() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    let err = sb.fails(&["profile", "./fields.jsonl", "--tokenizer", &tok]);
    assert!(err.contains("no card has that name"), "{err}");
    assert!(err.contains("no file, folder or glob matches"), "{err}");
    let err = sb.fails(&["profile", "demo-wbe", "--tokenizer", &tok]);
    assert!(err.contains("did you mean `demo-web`"), "{err}");
}

/// `proximity P M P`: the pretraining corpus is the target; the output says what that means
/// for the PA column, and only then (the demo corpora are distinct texts).
#[test]
fn proximity_says_when_the_pretraining_corpus_is_the_target() {
    let Some(tok) = common::pythia_tokenizer() else {
        return;
    };
    let tok = tok.display().to_string();
    let sb = Sandbox::new();
    let same = sb.ok(&[
        "proximity",
        "demo-web",
        "demo-code",
        "demo-web",
        "--max-docs",
        "50",
        "--tokenizer",
        &tok,
    ]);
    assert!(
        same.contains("note: the pretraining corpus `demo-web` and the target `demo-web` have the same token counts"),
        "{same}"
    );
    // sim(P,T) = 1 here, so demo-code's PA is sim(M,T) − 1 < 0.
    let pa: f64 = row(&same, "demo-code").last().unwrap().parse().unwrap();
    assert!(pa < 0.0, "{same}");
    let distinct = sb.ok(&[
        "proximity",
        "demo-web",
        "demo-code",
        "demo-docstring",
        "--max-docs",
        "50",
        "--tokenizer",
        &tok,
    ]);
    assert!(!distinct.contains("same token counts"), "{distinct}");
}

/// One meaning of -q: only the result on stdout. tokenize's result is its files, so `-q`
/// prints nothing there, as `profile -o ... -q`; bad records are named by kind on stderr in
/// the same words by both, with or without -q.
#[test]
fn quiet_means_the_result_alone_and_skipped_records_are_named_alike() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    // 4 records: two good, one malformed JSON line, one without the `text` field.
    sb.write(
        "mixed.jsonl",
        "{\"text\": \"w1 w2 w3\"}\n{oops\n{\"body\": \"w4\"}\n{\"text\": \"w5 w6\"}\n",
    );
    let want = "mixed: 2 bad records skipped (1 malformed_json, 1 missing_field); --strict fails on the first instead";
    let commands: [&[&str]; 2] = [
        &["tokenize", "-o", "toks", "--val-docs", "0"],
        &["profile", "-o", "p.parquet", "--no-cache"],
    ];
    for quiet in [false, true] {
        for command in commands {
            let mut args = vec![
                command[0],
                "mixed.jsonl",
                "--tokenizer",
                &tok,
                "--max-docs",
                "all",
            ];
            args.extend_from_slice(&command[1..]);
            if quiet {
                args.push("-q");
            }
            let o = sb.run(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let (out, err) = (
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr),
            );
            assert_eq!(out.is_empty(), quiet, "{} -q={quiet}: {out}", command[0]);
            assert!(err.contains(want), "{}: {err}", command[0]);
            // Each named with its file, line and what was wrong.
            for bad in [
                "mixed.jsonl: line 2: malformed JSON",
                "mixed.jsonl: line 3: record has no field `text`",
            ] {
                assert!(err.contains(bad), "{}: {err}", command[0]);
            }
        }
    }
}

/// `profile merge` says which setting differs in the words of its flag, and which file has
/// which value (not `Some(512) vs Some(256)` or `Exact vs Hashed { .. }`); one profile of the
/// whole corpus merges to itself, said in plain words.
#[test]
fn merge_errors_name_the_flag_and_the_file_of_each_value() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    sb.jsonl("c.jsonl", &["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w1"]);
    let shard = |k: &str, out: &str, extra: &[&str]| {
        let mut args = vec![
            "profile",
            "c.jsonl",
            "--tokenizer",
            &tok,
            "--max-docs",
            "all",
            "--shard",
            k,
            "-o",
            out,
            "-q",
        ];
        args.extend(extra);
        sb.ok(&args);
    };
    shard("1/2", "a.parquet", &["--max-tokens-per-doc", "512"]);
    shard("2/2", "b.parquet", &["--max-tokens-per-doc", "256"]);
    let e = sb.fails(&[
        "profile",
        "merge",
        "a.parquet",
        "b.parquet",
        "-o",
        "m.parquet",
    ]);
    assert!(
        e.contains("different --max-tokens-per-doc: 512 in a.parquet, 256 in b.parquet"),
        "{e}"
    );
    assert!(!e.contains("Some("), "{e}");
    shard(
        "2/2",
        "h.parquet",
        &[
            "--max-tokens-per-doc",
            "512",
            "--ngram",
            "2",
            "--ngram-buckets",
            "1000",
        ],
    );
    shard(
        "1/2",
        "x.parquet",
        &["--max-tokens-per-doc", "512", "--ngram", "2"],
    );
    let e = sb.fails(&[
        "profile",
        "merge",
        "x.parquet",
        "h.parquet",
        "-o",
        "m.parquet",
    ]);
    assert!(
        e.contains(
            "different n-gram counting: exact in x.parquet, hashed into 1000 buckets in h.parquet"
        ),
        "{e}"
    );
    sb.ok(&[
        "profile",
        "c.jsonl",
        "--tokenizer",
        &tok,
        "--max-docs",
        "all",
        "-o",
        "w.parquet",
        "-q",
    ]);
    let out = sb.ok(&["profile", "merge", "w.parquet", "-o", "m.parquet"]);
    assert!(
        out.starts_with("merged 1 profile of `c` (the whole corpus): 4 documents, 10 tokens"),
        "{out}"
    );
}

/// A prompt/response card tokenized into a trainer format (ids only) says that its prompt mask
/// was dropped, where mtkit's own format says `yes` (it keeps each prompt's length).
#[test]
fn a_trainer_format_says_it_dropped_the_prompt_mask() {
    let sb = Sandbox::new();
    let (cat, tok) = common::word_corpora(&sb);
    for (format, want) in [
        ("megatron", "dropped (no mask in megatron)"),
        ("olmo-core", "dropped (no mask in olmo-core)"),
        ("mtkit", "yes"),
    ] {
        let out = sb.ok(&[
            "tokenize",
            "q",
            "a",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--format",
            format,
            "-o",
            &format!("out-{format}"),
        ]);
        let q = out
            .lines()
            .find(|l| l.starts_with("q "))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(q.contains(want), "{format}: {q}");
        let a = out.lines().find(|l| l.starts_with("a ")).unwrap();
        assert!(a.contains(" no "), "{format}: {a}");
    }
}

/// A corpus named twice (P = T) is read once: its bad records are reported once, in the same
/// words as profile's (not a Rust map).
#[test]
fn a_corpus_named_twice_is_read_once() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    sb.write(
        "p.jsonl",
        "{\"text\": \"w1 w2 w3\"}\n{oops\n{\"text\": \"w4 w5\"}\n",
    );
    sb.jsonl("m.jsonl", &["w1 w9 w8", "w7 w2"]);
    let o = sb.run(&[
        "proximity",
        "p.jsonl",
        "m.jsonl",
        "p.jsonl",
        "--tokenizer",
        &tok,
        "--max-docs",
        "all",
        "--no-cache",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    let note = "p: 1 bad record skipped (1 malformed_json); --strict fails on the first instead";
    assert_eq!(err.matches(note).count(), 1, "{err}");
    assert!(!err.contains("{\""), "{err}");
}

/// Naming a corpus twice to profile, tokenize, overlap, score or select does the work once:
/// the output is the output of naming it once (one table row, the same files), and a note
/// says so.
#[test]
fn commands_read_a_corpus_named_twice_once() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    sb.jsonl("c.jsonl", &["w1 w2 w3", "w4 w5", "w6 w7 w8 w9", "w1 w2"]);
    sb.jsonl("t.jsonl", &["w1 w2", "w3 w4"]);
    let note = "note: `c.jsonl` is named more than once; it is read once";
    let cases: [(&[&str], &str); 5] = [
        (
            &["profile", "--no-cache", "--max-docs", "all", "-o"],
            "p.parquet",
        ),
        (
            &["tokenize", "--max-docs", "all", "--val-docs", "1", "-o"],
            "toks",
        ),
        (
            &["overlap", "--against", "t.jsonl", "-n", "2", "--csv"],
            "o.csv",
        ),
        (&["score", "--target", "t.jsonl", "-o"], "s.csv"),
        (
            &["select", "--target", "t.jsonl", "-n", "2", "-o"],
            "x.jsonl",
        ),
    ];
    for (command, out) in cases {
        let run = |names: &[&str], out: &str| {
            let mut args = vec![command[0]];
            args.extend_from_slice(names);
            args.extend_from_slice(&command[1..]);
            args.extend_from_slice(&[out, "--tokenizer", &tok]);
            let o = sb.run(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            let read = |p: std::path::PathBuf| match p.is_dir() {
                true => std::fs::read(p.join("c").join("train.tokens")).unwrap(),
                false => std::fs::read(p).unwrap(),
            };
            (
                String::from_utf8_lossy(&o.stdout).replace(out, "OUT"),
                String::from_utf8_lossy(&o.stderr).to_string(),
                read(sb.path(out)),
            )
        };
        let (once_out, once_err, once_file) = run(&["c.jsonl"], &format!("1-{out}"));
        let (twice_out, twice_err, twice_file) = run(&["c.jsonl", "c.jsonl"], &format!("2-{out}"));
        assert!(!once_err.contains(note), "{once_err}");
        assert_eq!(
            twice_err.matches(note).count(),
            1,
            "{}: {twice_err}",
            command[0]
        );
        assert_eq!(
            twice_out
                .replace("2-OUT", "OUT")
                .replace(&format!("2-{out}"), ""),
            once_out
                .replace("1-OUT", "OUT")
                .replace(&format!("1-{out}"), ""),
            "{}",
            command[0]
        );
        if command[0] != "profile" {
            assert_eq!(twice_file, once_file, "{}", command[0]);
        }
    }
}

/// Without -v the first five bad records are named, with how many there were; with -v every
/// one is named, with its file and line, and the summary says so instead of repeating them.
#[test]
fn verbose_names_every_skipped_record() {
    let sb = Sandbox::new();
    let tok = tokenizer(&sb);
    // Lines 2, 4, ..., 16 are bad (8 records): malformed JSON and a missing field by turns.
    let mut lines = Vec::new();
    for i in 1..=16 {
        lines.push(match (i % 2, i % 4) {
            (1, _) => format!("{{\"text\": \"w{i}\"}}"),
            (0, 2) => "{oops".to_string(),
            _ => "{\"body\": \"w1\"}".to_string(),
        });
    }
    sb.write("bad.jsonl", lines.join("\n") + "\n");
    let bad_lines: Vec<u64> = (2..=16).step_by(2).collect();
    for command in ["profile", "tokenize"] {
        let run = |verbose: bool| {
            let mut args = vec![
                command,
                "bad.jsonl",
                "--tokenizer",
                &tok,
                "--max-docs",
                "all",
                "-q",
            ];
            args.extend(match command {
                "profile" => ["-o", "p.parquet", "--no-cache"].as_slice(),
                _ => ["-o", "toks", "--val-docs", "0"].as_slice(),
            });
            if verbose {
                args.push("-v");
            }
            let o = sb.run(&args);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stderr).to_string()
        };
        let named = |err: &str| -> Vec<u64> {
            bad_lines
                .iter()
                .copied()
                .filter(|l| err.contains(&format!("bad.jsonl: line {l}: ")))
                .collect()
        };
        let quiet = run(false);
        assert!(
            quiet.contains("8 bad records skipped (4 malformed_json, 4 missing_field)"),
            "{quiet}"
        );
        assert!(quiet.contains("skipped (the first 5 of 8):"), "{quiet}");
        assert_eq!(named(&quiet), [2, 4, 6, 8, 10], "{command}: {quiet}");
        let verbose = run(true);
        assert_eq!(named(&verbose), bad_lines, "{command}: {verbose}");
        assert!(
            verbose.contains("(each named above, with its file and line)"),
            "{verbose}"
        );
        assert!(!verbose.contains("the first 5 of 8"), "{verbose}");
    }
}
