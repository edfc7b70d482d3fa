//! Helpers for integration tests: run the real `mtkit` binary in an isolated cache.
#![allow(dead_code)]

pub mod hub_server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The cache the user's setup filled (holds the real Pythia tokenizer).
pub fn real_cache() -> PathBuf {
    if let Some(p) = std::env::var_os("MTKIT_CACHE").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME").filter(|p| !p.is_empty()) {
        return PathBuf::from(p).join("mtkit");
    }
    PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/mtkit")
}

/// The GPT-NeoX-20B tokenizer installed by `make setup`, or `None` (with the reason printed).
pub fn pythia_tokenizer() -> Option<PathBuf> {
    let p = real_cache().join("tokenizers/gpt-neox-20b.json");
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "SKIP: the Pythia tokenizer is not installed at {} (run `make setup`)",
            p.display()
        );
        None
    }
}

/// The repository's root (the mtkit package; mtkit-train's tests run from train/).
pub fn repo_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    if here.join("datasets").is_dir() {
        here.to_path_buf()
    } else {
        here.parent().expect("train/ has a parent").to_path_buf()
    }
}

/// `../shared/data/catalog.toml` (or MTKIT_SHARED_CATALOG) when present. In CI
/// (MTKIT_REQUIRE_SHARED=1) its absence is a failure, elsewhere a printed skip.
pub fn shared_catalog() -> Option<PathBuf> {
    let p = std::env::var_os("MTKIT_SHARED_CATALOG")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/data/catalog.toml"));
    if p.exists() {
        return Some(p);
    }
    if std::env::var("MTKIT_REQUIRE_SHARED").as_deref() == Ok("1") {
        panic!(
            "MTKIT_REQUIRE_SHARED=1 but the shared catalog is missing at {}",
            p.display()
        );
    }
    eprintln!(
        "SKIP: real-data test: no shared catalog at {} (a fresh clone has no ../shared)",
        p.display()
    );
    None
}

/// The `mtkit` binary under test. The mtkit-train package's tests (which include these
/// helpers) find it beside `mtkit-train`: one `cargo test --workspace` builds both.
pub fn mtkit_binary() -> PathBuf {
    // MTKIT_TEST_BIN_DIR runs the binary tests against another build (an older commit's, to
    // see a regression test fail there).
    if let Some(d) = std::env::var_os("MTKIT_TEST_BIN_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d).join("mtkit");
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_mtkit") {
        return PathBuf::from(p);
    }
    match option_env!("CARGO_BIN_EXE_mtkit-train") {
        Some(p) => PathBuf::from(p).with_file_name("mtkit"),
        None => panic!("neither CARGO_BIN_EXE_mtkit nor CARGO_BIN_EXE_mtkit-train is set: run under cargo test"),
    }
}

/// A scratch folder with its own mtkit cache.
pub struct Sandbox {
    pub dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(name);
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// `mtkit ARGS` with the sandbox's cache; MTKIT_* variables from outside are cleared.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(mtkit_binary());
        c.args(args)
            .current_dir(self.dir.path())
            .env("MTKIT_CACHE", self.path("cache"))
            // Hugging Face's cache too: no test reads or fills the user's ~/.cache/huggingface.
            .env("HF_HOME", self.path("hf-home"))
            .env_remove("MTKIT_CATALOG")
            .env_remove("MTKIT_TOKENIZER")
            .env_remove("HF_ENDPOINT")
            .env_remove("HF_TOKEN");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs and asserts success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "mtkit {args:?} failed:\nstdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    /// Runs and asserts failure; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            !o.status.success(),
            "mtkit {args:?} should have failed:\n{}",
            String::from_utf8_lossy(&o.stdout)
        );
        String::from_utf8(o.stderr).unwrap()
    }

    /// A word-level tokenizer.json (whitespace split) over `words`: id i+1 for words[i], 0 = unk.
    /// Token counts under it can be worked out by hand.
    pub fn word_tokenizer(&self, name: &str, words: &[&str]) -> PathBuf {
        let mut vocab = serde_json::Map::new();
        vocab.insert("[UNK]".into(), 0.into());
        for (i, w) in words.iter().enumerate() {
            vocab.insert((*w).into(), (i + 1).into());
        }
        let tok = serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [],
            "normalizer": null,
            "pre_tokenizer": {"type": "WhitespaceSplit"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
        });
        self.write(name, serde_json::to_vec_pretty(&tok).unwrap())
    }

    /// A jsonl file with one `{"text": ...}` per document.
    pub fn jsonl(&self, name: &str, docs: &[&str]) -> PathBuf {
        let body: String = docs
            .iter()
            .map(|d| serde_json::json!({ "text": d }).to_string() + "\n")
            .collect();
        self.write(name, body)
    }
}

/// Parses a CSV string into header + rows.
pub fn parse_csv(s: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_reader(s.as_bytes());
    let header = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (header, rows)
}

/// An independent implementation of the paper's token similarity (shared/docs/paper.md §2)
/// over count maps: (cosine, jaccard, JSD, 0.4·cos + 0.3·jaccard + 0.3/(1 + JSD)).
pub fn paper_reference<K: Ord + Clone>(
    a: &std::collections::BTreeMap<K, f64>,
    b: &std::collections::BTreeMap<K, f64>,
) -> (f64, f64, f64, f64) {
    let ta: f64 = a.values().sum();
    let tb: f64 = b.values().sum();
    let keys: std::collections::BTreeSet<&K> = a.keys().chain(b.keys()).collect();
    let (mut dot, mut na, mut nb, mut inter, mut js) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for k in &keys {
        let p = a.get(*k).copied().unwrap_or(0.0) / ta;
        let q = b.get(*k).copied().unwrap_or(0.0) / tb;
        dot += p * q;
        na += p * p;
        nb += q * q;
        if p > 0.0 && q > 0.0 {
            inter += 1.0;
        }
        let m = (p + q) / 2.0;
        if p > 0.0 {
            js += 0.5 * p * (p / m).ln();
        }
        if q > 0.0 {
            js += 0.5 * q * (q / m).ln();
        }
    }
    let cos = dot / (na.sqrt() * nb.sqrt());
    let jac = inter / keys.len() as f64;
    (cos, jac, js, 0.4 * cos + 0.3 * jac + 0.3 / (1.0 + js))
}

/// Whether a Slurm answers `sinfo` (scripts/slurm-local.sh starts one). Where none does: a
/// failure under MTKIT_REQUIRE_SLURM=1 (CI), a printed skip elsewhere.
pub fn slurm_up() -> bool {
    let ok = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .map(|o| o.status.success() && !o.stdout.is_empty())
        .unwrap_or(false);
    if !ok && std::env::var("MTKIT_REQUIRE_SLURM").as_deref() == Ok("1") {
        panic!(
            "MTKIT_REQUIRE_SLURM=1 but no Slurm answers `sinfo` (SLURM_CONF={:?}): run scripts/slurm-local.sh start",
            std::env::var("SLURM_CONF")
        );
    }
    if !ok {
        eprintln!("SKIP: no Slurm answers `sinfo` here (scripts/slurm-local.sh start runs one; .ci/run does)");
    }
    ok
}

/// Three small corpora under a word-level tokenizer (30 words + EOS; a model pads it to 128),
/// tokenized into `tokens/` (20 validation documents each): `a` (words 0-9) and `b` (10-19),
/// and `q`, prompt/response examples (words 20-24, then 25-29). Returns (catalog, tokenizer).
pub fn word_corpora(sb: &Sandbox) -> (String, String) {
    let mut vocab: Vec<String> = (0..30).map(|i| format!("w{i}")).collect();
    vocab.push("<|endoftext|>".into());
    let refs: Vec<&str> = vocab.iter().map(|s| s.as_str()).collect();
    let tok = sb.word_tokenizer("tok.json", &refs).display().to_string();
    let mut rng = 7u64;
    let mut doc = |n: usize, lo: usize, hi: usize| -> String {
        (0..n)
            .map(|_| {
                rng = rng
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("w{}", lo + (rng >> 33) as usize % (hi - lo))
            })
            .collect::<Vec<_>>()
            .join(" ")
    };
    let a: Vec<String> = (0..200).map(|_| doc(40, 0, 10)).collect();
    let b: Vec<String> = (0..200).map(|_| doc(40, 10, 20)).collect();
    let q: Vec<String> = (0..120)
        .map(|_| serde_json::json!({"q": doc(5, 20, 25), "a": doc(6, 25, 30)}).to_string())
        .collect();
    sb.jsonl("a.jsonl", &a.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    sb.jsonl("b.jsonl", &b.iter().map(|s| s.as_str()).collect::<Vec<_>>());
    sb.write("q.jsonl", q.join("\n"));
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.a]\nrole = \"pretrain\"\npaths = [\"a.jsonl\"]\n[datasets.b]\nrole = \"midtrain\"\npaths = [\"b.jsonl\"]\n\
             [datasets.q]\nrole = \"target\"\npaths = [\"q.jsonl\"]\ntext = \"{q} {a}\"\nprompt = \"{q}\"\nresponse = \"{a}\"\n",
        )
        .display()
        .to_string();
    sb.ok(&[
        "tokenize",
        "a",
        "b",
        "q",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        "tokens",
        "--val-docs",
        "20",
        "--quiet",
    ]);
    (cat, tok)
}

/// The text of every `<text>` element of an SVG written by plotters (one per line).
pub fn svg_texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            let body = &t[t.find('>')? + 1..t.find("</text>")?];
            Some(body.trim().to_string())
        })
        .collect()
}

/// (width, height) of an SVG's root element.
pub fn svg_size(svg: &str) -> (u32, u32) {
    let attr = |name: &str| -> u32 {
        let at = svg.find(&format!(" {name}=\"")).unwrap() + name.len() + 3;
        svg[at..at + svg[at..].find('"').unwrap()].parse().unwrap()
    };
    (attr("width"), attr("height"))
}

/// (width, height) of a PNG file, read from its IHDR chunk (PNG spec §11.2.2).
pub fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR");
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20))
}

/// The hf-venv's python, or `None` (skip, with the reason printed).
pub fn transformers_python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MTKIT_HF_PYTHON").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            p.exists(),
            "MTKIT_HF_PYTHON={} does not exist: run scripts/hf-venv.sh",
            p.display()
        );
        return Some(p);
    }
    let venv = real_cache().join("hf-venv");
    if venv.join(".requirements").exists() {
        return Some(venv.join("bin/python"));
    }
    eprintln!(
        "SKIP: transformers is not installed at {} (run scripts/hf-venv.sh, or `make test`)",
        venv.display()
    );
    None
}

/// The pages of docs/ (`*.md`), sorted.
pub fn docs_pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(repo_root().join("docs"))
        .expect("docs/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages
}
