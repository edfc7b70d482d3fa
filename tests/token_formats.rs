//! `mtkit tokenize --format megatron|olmo-core|litdata` proven with the trainers' own readers
//! (megatron-core's IndexedDataset, OLMo-core's NumpyFSLDataset, document indices and source
//! mixture, litdata's StreamingDataset and optimize), pinned from PyPI in the environment of
//! scripts/hf-venv.sh (`make test` installs it; the tests skip with the reason elsewhere and
//! fail under make test). tests/readers/trainer_readers.py holds the Python side.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs tests/readers/trainer_readers.py; returns the JSON of its last stdout line.
fn readers(py: &Path, cwd: &Path, args: &[&str]) -> serde_json::Value {
    let out = Command::new(py)
        .arg(repo_root().join("tests/readers/trainer_readers.py"))
        .args(args)
        .current_dir(cwd)
        .env("HF_HUB_OFFLINE", "1")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "trainer_readers.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON")
}

/// A corpus of real text that every clone has: the paragraphs of the repository's Markdown
/// files (README, ARCHITECTURE, BENCHMARKS and docs/), with a few unusual characters added.
fn corpus(sb: &Sandbox) -> (String, PathBuf) {
    let mut docs = Vec::new();
    let mut files: Vec<PathBuf> = ["README.md", "ARCHITECTURE.md", "BENCHMARKS.md"]
        .iter()
        .map(|f| repo_root().join(f))
        .collect();
    files.extend(docs_pages());
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        docs.extend(
            text.split("\n\n")
                .map(str::trim)
                .filter(|p| p.len() > 20)
                .map(String::from),
        );
    }
    docs.push("naïve café — 漢字 😀 <|endoftext|> inside a document".into());
    let jsonl = sb.jsonl(
        "docs.jsonl",
        &docs.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.md]\nrole = \"pretrain\"\npaths = [\"docs.jsonl\"]\n[datasets.md2]\nrole = \"midtrain\"\npaths = [\"docs.jsonl\"]\n",
        )
        .display()
        .to_string();
    (cat, jsonl)
}

fn tokenize(sb: &Sandbox, cat: &str, tok: &str, out: &str, format: &str, extra: &[&str]) {
    let mut args = vec![
        "tokenize",
        "md",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
        "-o",
        out,
        "--format",
        format,
        "-q",
    ];
    args.extend_from_slice(extra);
    sb.ok(&args);
}

/// Every file of a folder, by relative path, with its bytes.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut v: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            (
                p.file_name().unwrap().to_string_lossy().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_trainers_own_readers_read_what_mtkit_writes() {
    let Some(py) = transformers_python() else {
        return;
    };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, jsonl) = corpus(&sb);
    let tok = tok.to_str().unwrap();
    // mtkit's own token files: the reference stream (their ids are HF's, tests/encoder_identity).
    tokenize(&sb, &cat, tok, "mtkit", "mtkit", &["--val-docs", "0"]);
    let mt = sb.path("mtkit/md");
    // Megatron: every document is HF's encode + EOS.
    tokenize(&sb, &cat, tok, "meg", "megatron", &[]);
    let prefix = sb.path("meg/md/md_text_document");
    // Megatron-LM's own preprocessing loop (its Encoder and megatron-core's builder) writes
    // the same bytes.
    let st = Command::new(&py)
        .arg(repo_root().join("scripts/bench/reference_megatron_preprocess.py"))
        .args([
            tok,
            jsonl.to_str().unwrap(),
            sb.path("ref").to_str().unwrap(),
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    for ext in ["bin", "idx"] {
        assert_eq!(
            std::fs::read(sb.path(&format!("ref.{ext}"))).unwrap(),
            std::fs::read(sb.path(&format!("meg/md/md_text_document.{ext}"))).unwrap(),
            "the .{ext} differs from what Megatron's preprocessing writes"
        );
    }
    let m = readers(
        &py,
        sb.dir.path(),
        &[
            "megatron",
            prefix.to_str().unwrap(),
            jsonl.to_str().unwrap(),
            tok,
        ],
    );
    assert_eq!(m["dtype"], "uint16", "{m}");
    // OLMo-core, in files of at most 16 KiB: instances and document boundaries.
    tokenize(
        &sb,
        &cat,
        tok,
        "olmo",
        "olmo-core",
        &["--olmo-file-size", "16K"],
    );
    let o = readers(
        &py,
        sb.dir.path(),
        &[
            "olmo",
            sb.path("olmo/md").to_str().unwrap(),
            mt.to_str().unwrap(),
            "50280",
            "0",
            "128",
        ],
    );
    assert!(o["files"].as_u64().unwrap() > 1, "{o}");
    assert_eq!(o["tokens"], m["tokens"], "{o} {m}");
    // litdata: StreamingDataset's blocks, and litdata.optimize writes the same bytes.
    tokenize(
        &sb,
        &cat,
        tok,
        "lit",
        "litdata",
        &["--litdata-chunk-tokens", "5000"],
    );
    let l = readers(
        &py,
        sb.dir.path(),
        &[
            "litdata",
            sb.path("lit/md").to_str().unwrap(),
            mt.to_str().unwrap(),
            "5000",
            "128",
        ],
    );
    assert!(l["chunks"].as_u64().unwrap() > 1, "{l}");
    // Each format is the same bytes from run to run.
    for (dir, format, extra) in [
        ("meg", "megatron", vec![]),
        ("olmo", "olmo-core", vec!["--olmo-file-size", "16K"]),
        ("lit", "litdata", vec!["--litdata-chunk-tokens", "5000"]),
    ] {
        let before = files(&sb.path(&format!("{dir}/md")));
        tokenize(&sb, &cat, tok, dir, format, &extra);
        assert_eq!(
            files(&sb.path(&format!("{dir}/md"))),
            before,
            "{format} differs from run to run"
        );
        let meta: serde_json::Value = serde_json::from_slice(
            &std::fs::read(sb.path(&format!("{dir}/md/mtkit-tokenize.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(meta["format"], format);
        assert_eq!(meta["tokens"], m["tokens"]);
        assert_eq!(meta["tokenizer_sha256"].as_str().unwrap().len(), 64);
    }
}

#[test]
fn suggest_mix_exports_point_at_the_tokenized_files() {
    let Some(py) = transformers_python() else {
        return;
    };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let t = tok.to_str().unwrap();
    for format in ["olmo-core", "megatron", "litdata"] {
        let mut args = vec![
            "tokenize",
            "demo-web",
            "demo-code",
            "-o",
            format,
            "--format",
            format,
            "-q",
            "--tokenizer",
            t,
        ];
        if format == "olmo-core" {
            args.extend_from_slice(&["--olmo-file-size", "100K"]);
        }
        sb.ok(&args);
    }
    let suggest = |emit: &str, data: &str| {
        sb.ok(&[
            "suggest-mix",
            "--pretrain",
            "demo-web",
            "--candidates",
            "demo-code,demo-math",
            "--target",
            "demo-docstring",
            "--max-docs",
            "all",
            "--total-steps",
            "120",
            "--tokens-per-step",
            "512",
            "--quiet",
            "--tokenizer",
            t,
            "--emit",
            emit,
            "--data",
            data,
        ])
    };
    // OLMo-core: the mixture loads in OLMo-core and samples each source in its ratio.
    let yaml = suggest("olmo-core", "olmo-core");
    let path = sb.write("mix.yaml", &yaml);
    assert!(yaml.contains("olmo-core/demo-web/part-00000.npy"), "{yaml}");
    assert!(yaml.contains("# demo-web: 158369 tokens in"), "{yaml}");
    let r = readers(
        &py,
        sb.dir.path(),
        &["olmo-mixture", path.to_str().unwrap(), "64"],
    );
    assert_eq!(r["requested"], r["total"], "{r}");
    // Megatron: the prefixes of the indexed datasets that exist.
    let meg = suggest("megatron", "megatron");
    let line = meg.lines().find(|l| l.starts_with("--data-path")).unwrap();
    for prefix in line.split_whitespace().skip(1).skip(1).step_by(2) {
        assert!(
            sb.path(&format!("{prefix}.idx")).is_file()
                && sb.path(&format!("{prefix}.bin")).is_file(),
            "{prefix}"
        );
    }
    // LitGPT: the litdata folders, and the weight string on the last line.
    let lit = suggest("litgpt", "litdata");
    assert!(
        lit.contains("# demo-web: litdata/demo-web (158369 tokens)"),
        "{lit}"
    );
    assert!(
        lit.lines().last().unwrap().starts_with("demo-web:"),
        "{lit}"
    );
    // A source not tokenized in that format is named with the command that makes it.
    let meg = suggest("megatron", "olmo-core");
    assert!(
        meg.contains("mtkit tokenize demo-web -o olmo-core --format megatron"),
        "{meg}"
    );
}

#[test]
fn token_format_mistakes_fail_clearly_and_leave_nothing() {
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, _) = corpus(&sb);
    let t = tok.to_str().unwrap();
    let run = |extra: &[&str]| {
        let mut a = vec!["tokenize", "md", "--catalog", &cat, "--tokenizer", t, "-q"];
        a.extend_from_slice(extra);
        sb.fails(&a)
    };
    let err = run(&["-o", "x", "--format", "parquet"]);
    assert!(
        err.contains(
            "unknown token format \"parquet\"; the formats are mtkit, megatron, olmo-core, litdata"
        ),
        "{err}"
    );
    let err = run(&["-o", "x", "--format", "megatron", "--val-docs", "10"]);
    assert!(
        err.contains("--val-docs 10: the megatron format has no validation split"),
        "{err}"
    );
    let err = run(&[
        "-o",
        "x",
        "--format",
        "olmo-core",
        "--olmo-file-size",
        "lots",
    ]);
    assert!(
        err.contains("'lots' for '--olmo-file-size") && err.contains("not a size"),
        "{err}"
    );
    // A folder of another format is not replaced.
    tokenize(&sb, &cat, t, "out", "mtkit", &[]);
    let err = run(&["-o", "out", "--format", "litdata"]);
    assert!(
        err.contains("holds mtkit token files; tokenizing it as litdata would replace them"),
        "{err}"
    );
    sb.write("other/md/notes.txt", "mine");
    let err = run(&["-o", "other", "--format", "megatron"]);
    assert!(
        err.contains("holds files mtkit did not write (notes.txt)"),
        "{err}"
    );
    // A full disk: an error naming the cause, and no folder left.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: the full-disk part needs root to mount a tmpfs");
        return;
    }
    let mnt = sb.path("small");
    std::fs::create_dir_all(&mnt).unwrap();
    let ok = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "tmpfs",
            mnt.to_str().unwrap(),
        ])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("SKIP: cannot mount a tmpfs here");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _g = Unmount(mnt.clone());
    for format in ["megatron", "olmo-core", "litdata", "mtkit"] {
        let err = run(&["-o", "small/t", "--format", format, "--val-docs", "0"]);
        assert!(
            err.to_lowercase().contains("no space left"),
            "{format}: {err}"
        );
        let left: Vec<_> = std::fs::read_dir(&mnt)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert!(left.is_empty(), "{format}: left behind {left:?}");
    }
}
