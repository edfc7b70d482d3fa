//! Seeded mutation fuzzing of every reader of user bytes, in the ordinary test suite.
//!
//! Seeds are real files (the shared samples when present, files made by the real binary, the
//! repository's own configs); each is mutated by a seeded sequence of byte-level edits (bit
//! flips, interesting bytes, insertions, deletions, duplications, splices with another seed,
//! truncation) and handed to the `mtkit::fuzz` entry point that the coverage-guided targets in
//! `fuzz/` use too. A panic fails the test, and the input is saved under the target folder with
//! the command that replays it. `MTKIT_FUZZ_ITERS` scales the iterations per seed (default 60);
//! `MTKIT_FUZZ_SEEDS_OUT=DIR` also writes the seeds to DIR/TARGET/ (scripts/fuzz.sh gives them
//! to libFuzzer).

mod common;
use common::*;

use std::io::Read;
use std::path::PathBuf;

use mtkit::util::rng::Rng;

fn iterations() -> u64 {
    std::env::var("MTKIT_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60)
}

const INTERESTING: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b"\\",
    b",",
    b":",
    b"\\u00",
    b"\\ud800",
    b"\xEF\xBB\xBF",
    b"\xff",
    b"\xc3",
    b"\0",
    b"null",
    b"1e999",
    b"-0",
    b"nan",
    b"inf",
    b"{text}",
    b"{{",
    b"}}",
    b"=",
    b"[[phases]]",
    b"[datasets.x]",
];

/// One seeded mutation of `input` (several edits), sometimes spliced with `other`.
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    let edits = 1 + rng.below(4);
    for _ in 0..edits {
        let n = v.len() as u64;
        match rng.below(8) {
            0 if n > 0 => {
                let i = rng.below(n) as usize;
                v[i] ^= 1 << rng.below(8);
            }
            1 if n > 0 => {
                let i = rng.below(n) as usize;
                v[i] = rng.below(256) as u8;
            }
            2 => {
                let i = rng.below(n + 1) as usize;
                let s = *rng.choose(INTERESTING);
                v.splice(i..i, s.iter().copied());
            }
            3 if n > 0 => {
                let i = rng.below(n) as usize;
                let len = 1 + rng.below((n - i as u64).min(64)) as usize;
                v.drain(i..i + len);
            }
            4 if n > 0 => {
                let i = rng.below(n) as usize;
                let len = 1 + rng.below((n - i as u64).min(64)) as usize;
                let chunk: Vec<u8> = v[i..i + len].to_vec();
                let j = rng.below(v.len() as u64 + 1) as usize;
                v.splice(j..j, chunk);
            }
            5 if !other.is_empty() => {
                let i = rng.below(n + 1) as usize;
                let j = rng.below(other.len() as u64) as usize;
                let len = 1 + rng.below((other.len() - j).min(256) as u64) as usize;
                v.splice(i..i, other[j..j + len].iter().copied());
            }
            6 if n > 1 => {
                let len = rng.below(n) as usize;
                v.truncate(len);
            }
            _ => {
                // A run of random bytes.
                let i = rng.below(n + 1) as usize;
                let len = 1 + rng.below(16) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
                v.splice(i..i, bytes);
            }
        }
    }
    v
}

/// Runs `target` on every seed and `iterations()` mutations of each; a panic saves the input
/// and fails with its path.
fn drive(name: &str, target: fn(&[u8]), seeds: &[Vec<u8>]) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    // scripts/fuzz.sh starts libFuzzer from these same seeds.
    if let Some(out) = std::env::var_os("MTKIT_FUZZ_SEEDS_OUT") {
        let dir = PathBuf::from(out).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for (k, seed) in seeds.iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{k:03}")), seed).unwrap();
        }
    }
    let mut rng = Rng::new(mtkit::util::rng::mix64(name.len() as u64 ^ 0x6675_7a7a));
    let mut runs = 0u64;
    let run_one = |input: &[u8]| {
        let r = std::panic::catch_unwind(|| target(input));
        if let Err(e) = r {
            let dir = failures_dir();
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!(
                "{name}-{:016x}",
                mtkit::util::rng::mix64(input.len() as u64)
            ));
            std::fs::write(&path, input).unwrap();
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!(
                "fuzz target {name} panicked ({msg}) on the input saved as {}; replay it with \
                 `cargo fuzz run {name} {}` (in fuzz/) or add it as a regression test",
                path.display(),
                path.display()
            );
        }
    };
    for (k, seed) in seeds.iter().enumerate() {
        run_one(seed);
        runs += 1;
        let other = &seeds[(k + 1) % seeds.len()];
        for _ in 0..iterations() {
            let input = mutate(&mut rng, seed, other);
            run_one(&input);
            runs += 1;
        }
    }
    eprintln!(
        "fuzz {name}: {runs} inputs from {} seeds, no failure",
        seeds.len()
    );
}

fn failures_dir() -> PathBuf {
    option_env!("CARGO_TARGET_TMPDIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("fuzz-failures")
}

/// The first `n` bytes of a shared sample, decompressed (none without ../shared).
fn shared_head(file: &str, n: usize) -> Option<Vec<u8>> {
    let cat = shared_catalog()?;
    let path = cat.parent()?.join("corpora").join(file);
    let f = std::fs::File::open(&path).ok()?;
    let mut r: Box<dyn Read> = if file.ends_with(".gz") {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else {
        Box::new(f)
    };
    let mut buf = vec![0u8; n];
    let mut got = 0;
    while got < n {
        let k = r.read(&mut buf[got..]).ok()?;
        if k == 0 {
            break;
        }
        got += k;
    }
    buf.truncate(got);
    // End at a line break, as a real file would.
    if let Some(p) = buf.iter().rposition(|&b| b == b'\n') {
        buf.truncate(p + 1);
    }
    Some(buf)
}

fn with_kind(sel: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![sel];
    v.extend_from_slice(body);
    v
}

fn parquet_bytes() -> Vec<u8> {
    use polars::prelude::*;
    let mut df = df!(
        "text" => ["first document", "second, with \"quotes\"", "ünïcödé"],
        "q" => ["2+2?", "name a colour", "why?"],
        "a" => ["4", "red", "because"]
    )
    .unwrap();
    let mut buf = Vec::new();
    ParquetWriter::new(&mut buf).finish(&mut df).unwrap();
    buf
}

#[test]
fn corpus_readers_survive_mutated_files() {
    let jsonl = b"{\"text\": \"a b c\"}\n{\"text\": \"d\\u00e9 f\", \"q\": \"x\", \"a\": 1}\n{\"q\": \"q?\", \"a\": [\"t1\", \"t2\"]}\n".to_vec();
    let json = b"[{\"text\": \"one\"}, {\"text\": \"two\", \"q\": \"?\", \"a\": \"!\"}]".to_vec();
    let txt = b"plain text\nover two lines\n".to_vec();
    let mut seeds = vec![
        with_kind(0, &jsonl),
        with_kind(0x40, &jsonl),
        with_kind(1, &json),
        with_kind(2, &txt),
        with_kind(3, &jsonl),
        with_kind(4, &jsonl),
        with_kind(5, &json),
        with_kind(6, &parquet_bytes()),
        with_kind(0x40 | 6, &parquet_bytes()),
        with_kind(7, &txt),
    ];
    // Raw compressed bytes (bit 0x80: the harness does not compress them again).
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &jsonl).unwrap();
    seeds.push(with_kind(0x80 | 3, &gz.finish().unwrap()));
    seeds.push(with_kind(
        0x80 | 4,
        &zstd::encode_all(&jsonl[..], 3).unwrap(),
    ));
    for (file, sel) in [
        ("c4-en-sample-1k.jsonl.gz", 0u8),
        ("gsm8k-train.jsonl.gz", 0x40),
        ("mbpp.jsonl", 3),
        ("sciq-validation.jsonl.gz", 4),
    ] {
        match shared_head(file, 6000) {
            Some(b) => seeds.push(with_kind(sel, &b)),
            None => eprintln!("skip seed {file}: ../shared not found"),
        }
    }
    drive("corpus_file", mtkit::fuzz::fuzz_corpus_file, &seeds);
}

#[test]
fn templates_survive_mutated_sources() {
    let seeds: Vec<Vec<u8>> = [
        "{text}",
        "{q}\n{a}",
        "Question: {q}\nAnswer: {a} {{literal}}",
        "{list}",
        "{obj}",
        "{n}",
        "plain",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    drive("template", mtkit::fuzz::fuzz_template, &seeds);
}

#[test]
fn catalogs_survive_mutated_files() {
    let mut seeds = vec![
        b"[datasets.c4]\nrole = \"pretrain\"\npaths = [\"corpora/*.jsonl.gz\"]\ntext = \"{text}\"\n".to_vec(),
        b"[datasets.t]\nrole = \"target\"\npaths = [\"t.jsonl\"]\ntext = \"{q} {a}\"\nprompt = \"{q}\"\nresponse = \"{a}\"\ntokens = 1000\n".to_vec(),
        b"[datasets.h]\nrole = \"midtrain\"\nhub = { repo = \"org/name\", revision = \"main\", files = [\"data/*.parquet\"] }\n".to_vec(),
        b"[datasets.demo-web]\ndescription = \"override\"\n".to_vec(),
    ];
    if let Some(cat) = shared_catalog() {
        seeds.push(std::fs::read(cat).unwrap());
    }
    drive("catalog", mtkit::fuzz::fuzz_catalog, &seeds);
}

#[test]
fn run_configs_survive_mutated_files() {
    let root = repo_root();
    let seeds = vec![
        std::fs::read(root.join("analysis/tiny-pretrain-mid-sft.toml")).unwrap(),
        b"[run]\nname = \"t\"\npreset = \"tiny\"\ndata = \"tokens\"\n[[phases]]\nname = \"p\"\nkind = \"pretrain\"\nsteps = 4\nbatch_size = 2\nseq_len = 8\nmixture = { a = 1.0 }\nschedule = { lr = 1e-3 }\n[[phases]]\nname = \"s\"\nkind = \"sft\"\nepochs = 1.5\nsource = \"t\"\nschedule = { lr = 1e-3, warmup = 1 }\n".to_vec(),
    ];
    drive("run_config", mtkit::fuzz::fuzz_run_config, &seeds);
}

/// A real profile and a real token file, made by the binary from a small corpus.
fn made_by_the_binary() -> (Vec<u8>, Vec<u8>) {
    let sb = Sandbox::new();
    let tok = sb.word_tokenizer("tok.json", &["a", "b", "c", "d", "<|endoftext|>"]);
    let docs: Vec<String> = (0..40)
        .map(|i| ["a b", "c d d", "a a a c", "b"][i % 4].to_string())
        .collect();
    sb.jsonl(
        "w.jsonl",
        &docs.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    sb.write(
        "cat.toml",
        "[datasets.w]\nrole = \"pretrain\"\npaths = [\"w.jsonl\"]\n",
    );
    let t = tok.to_str().unwrap();
    sb.ok(&[
        "profile",
        "w",
        "--catalog",
        "cat.toml",
        "--tokenizer",
        t,
        "--ngram",
        "2",
        "-o",
        "w.parquet",
        "--quiet",
    ]);
    sb.ok(&[
        "tokenize",
        "w",
        "--catalog",
        "cat.toml",
        "--tokenizer",
        t,
        "-o",
        "tokens",
        "--val-docs",
        "5",
        "--quiet",
    ]);
    let profile = std::fs::read(sb.path("w.parquet")).unwrap();
    let tokens = std::fs::read(sb.path("tokens/w/train.tokens")).unwrap();
    let docs = std::fs::read(sb.path("tokens/w/train.docs")).unwrap();
    let mut token_file = (tokens.len() as u16).to_le_bytes().to_vec();
    token_file.extend_from_slice(&tokens);
    token_file.extend_from_slice(&docs);
    (profile, token_file)
}

#[test]
fn profiles_and_token_files_survive_mutated_files() {
    let (profile, token_file) = made_by_the_binary();
    // The unmutated seeds load: the harness reads what the binary writes.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.parquet"), &profile).unwrap();
    mtkit::profile::Profile::load(&dir.path().join("p.parquet")).unwrap();
    drive("profile", mtkit::fuzz::fuzz_profile, &[profile]);
    drive("token_file", mtkit::fuzz::fuzz_token_file, &[token_file]);
}

/// Arrow IPC streams as `datasets` writes them, mutated: no panic or abort.
#[test]
fn arrow_streams_survive_mutated_files() {
    let seeds = vec![
        mtkit::fuzz::arrow_stream_of(&["hello world", "a second document", "naïve café"]),
        mtkit::fuzz::arrow_stream_of(&(0..50).map(|_| "word").collect::<Vec<_>>()),
    ];
    // The unmutated seed reads: the harness reads what polars writes.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.arrow"), &seeds[0]).unwrap();
    std::fs::write(
        dir.path().join("c.toml"),
        "[datasets.a]\nrole = \"target\"\npaths = [\"a.arrow\"]\n",
    )
    .unwrap();
    let mut cat = mtkit::data::catalog::Catalog::builtin();
    cat.add_file(&dir.path().join("c.toml")).unwrap();
    let (docs, _) =
        mtkit::data::corpus::collect_documents(cat.get("a").unwrap(), &Default::default()).unwrap();
    assert_eq!(docs.len(), 3);
    drive("arrow_file", mtkit::fuzz::fuzz_arrow_file, &seeds);
}

/// An Arrow IPC stream whose `text` column has type Null (no buffers at all), `rows` long.
fn null_column_stream(rows: usize) -> Vec<u8> {
    use polars::prelude::{Column, DataFrame, DataType, IpcStreamWriter, SerWriter};
    let mut df = DataFrame::new_infer_height(vec![Column::full_null(
        "text".into(),
        rows,
        &DataType::Null,
    )])
    .unwrap();
    let mut out = Vec::new();
    IpcStreamWriter::new(&mut out).finish(&mut df).unwrap();
    out
}

/// A record batch of a Null-typed column declaring 2^40 rows has no body to contradict it:
/// polars would build those rows from nothing and the reader walk them (the arrow_file fuzz
/// target's crash in CI). The row count is held against the body: a clear error naming the
/// file and the message. A short all-null batch, as `datasets` writes for a column of `None`,
/// still reads (its rows are skipped as records without text).
#[test]
fn arrow_batches_declaring_more_rows_than_their_body_holds_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let read = |bytes: &[u8]| {
        std::fs::write(dir.path().join("n.arrow"), bytes).unwrap();
        std::fs::write(
            dir.path().join("c.toml"),
            "[datasets.n]\nrole = \"target\"\npaths = [\"n.arrow\"]\n",
        )
        .unwrap();
        let mut cat = mtkit::data::catalog::Catalog::builtin();
        cat.add_file(&dir.path().join("c.toml")).unwrap();
        mtkit::data::corpus::collect_documents(cat.get("n").unwrap(), &Default::default())
    };
    let honest = null_column_stream(777);
    // Read row by row: each a record whose `text` is None, skipped and counted.
    let err = format!("{:#}", read(&honest).unwrap_err());
    assert!(err.contains("777 skipped (777 missing_field)"), "{err}");
    // Every 777 (the batch's length, its one field node's length and null count) becomes 2^40.
    let (from, to) = (777i64.to_le_bytes(), (1i64 << 40).to_le_bytes());
    let mut lying = honest.clone();
    let mut patched = 0;
    for at in 0..lying.len() - 8 {
        if lying[at..at + 8] == from {
            lying[at..at + 8].copy_from_slice(&to);
            patched += 1;
        }
    }
    assert_eq!(
        patched, 3,
        "the batch length, the node's length and null count"
    );
    let err = format!("{:#}", read(&lying).unwrap_err());
    assert!(
        err.contains("n.arrow: damaged Arrow IPC stream")
            && err.contains("declares 1099511627776 rows in a body of 0 bytes"),
        "{err}"
    );
    mtkit::fuzz::fuzz_arrow_file(&lying);
}

/// A fuzz input of `fuzz_hf_folder`: mode, config.json, the rest.
fn hf_input(mode: u8, config: &str, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![mode];
    v.extend_from_slice(&(config.len() as u16).to_le_bytes());
    v.extend_from_slice(config.as_bytes());
    v.extend_from_slice(rest);
    v
}

/// Hugging Face folders (config.json and safetensors headers) with the hostile values a review
/// found (issue 23) among the seeds: huge shape keys, eps ≤ 0, rotary keys that disagree, a
/// zero context, a config that is an array or overflows, a weight map out of the folder,
/// truncated weights.
#[test]
fn hugging_face_folders_survive_mutated_files() {
    let weights = mtkit::fuzz::small_safetensors();
    let good = mtkit::fuzz::SMALL_CONFIG;
    // The unmutated seed passes every check: the harness reads a real folder's shape.
    {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("config.json"), good).unwrap();
        std::fs::write(dir.path().join("model.safetensors"), &weights).unwrap();
        let shape =
            mtkit::hf::checkpoint::parse_config(good, &dir.path().join("config.json")).unwrap();
        let h =
            mtkit::hf::checkpoint::read_safetensors_header(&dir.path().join("model.safetensors"))
                .unwrap();
        mtkit::hf::checkpoint::check_shape_against(&shape, &h, &dir.path().join("config.json"))
            .unwrap();
    }
    let with = |key: &str, value: &str| {
        let mut v: serde_json::Value = serde_json::from_str(good).unwrap();
        v[key] = serde_json::from_str(value).unwrap();
        v.to_string()
    };
    let index = r#"{"weight_map": {"gpt_neox.embed_in.weight": "w.safetensors", "embed_out.weight": "w.safetensors"}}"#;
    let seeds = vec![
        hf_input(0, good, &weights),
        hf_input(1, good, index.as_bytes()),
        hf_input(0, &with("hidden_size", "1000000000"), &weights),
        hf_input(0, &with("intermediate_size", "1000000000000000"), &weights),
        hf_input(0, &with("vocab_size", "1099511627776"), &weights),
        hf_input(0, &with("num_hidden_layers", "1000000000000"), &weights),
        hf_input(0, &with("layer_norm_eps", "-1"), &weights),
        hf_input(0, &with("rotary_pct", "0.25"), &weights),
        hf_input(0, &with("max_position_embeddings", "0"), &weights),
        hf_input(0, "[1, 2, 3]", &weights),
        hf_input(
            0,
            r#"{"model_type": "gpt_neox", "hidden_size": 1e999}"#,
            &weights,
        ),
        hf_input(1, good, br#"{"weight_map": {"x": "../../../etc/passwd"}}"#),
        hf_input(0, good, &weights[..weights.len() / 2]),
        hf_input(0, good, &weights[..12]),
    ];
    drive("hf_folder", mtkit::fuzz::fuzz_hf_folder, &seeds);
}

/// Every input a fuzzer ever crashed on, kept under tests/fuzz-regressions/TARGET/, replayed.
#[test]
fn inputs_that_once_crashed_stay_fixed() {
    type Target = fn(&[u8]);
    let targets: [(&str, Target); 8] = [
        ("corpus_file", mtkit::fuzz::fuzz_corpus_file),
        ("template", mtkit::fuzz::fuzz_template),
        ("catalog", mtkit::fuzz::fuzz_catalog),
        ("run_config", mtkit::fuzz::fuzz_run_config),
        ("profile", mtkit::fuzz::fuzz_profile),
        ("token_file", mtkit::fuzz::fuzz_token_file),
        ("hf_folder", mtkit::fuzz::fuzz_hf_folder),
        ("arrow_file", mtkit::fuzz::fuzz_arrow_file),
    ];
    let mut n = 0;
    for (name, target) in targets {
        let dir = repo_root().join("tests/fuzz-regressions").join(name);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let input = std::fs::read(e.path()).unwrap();
            let r = std::panic::catch_unwind(|| target(&input));
            assert!(r.is_ok(), "{} crashes {name} again", e.path().display());
            n += 1;
        }
    }
    assert!(n >= 1, "the regression inputs are found");
}

/// `mtkit data show` of a corpus made of one parquet file holding `bytes`, read through
/// `template`: must fail with status 1 (an error, not a crash); returns stderr.
fn show_parquet_corpus(sb: &Sandbox, bytes: &[u8], template: &str) -> String {
    sb.write("bad.parquet", bytes);
    sb.write(
        "cat.toml",
        format!(
            "[datasets.b]\nrole = \"pretrain\"\npaths = [\"bad.parquet\"]\ntext = \"{template}\"\n"
        ),
    );
    let o = sb.run(&["data", "show", "b", "--catalog", "cat.toml"]);
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert_eq!(o.status.code(), Some(1), "an error, not a crash: {err}");
    err
}

/// A regression input of the corpus_file target (its first byte picks the kind: 6 is parquet).
fn parquet_regression(name: &str) -> Vec<u8> {
    let input = std::fs::read(
        repo_root()
            .join("tests/fuzz-regressions/corpus_file")
            .join(name),
    )
    .unwrap();
    assert_eq!(input[0] % 8, 6, "a parquet input");
    input[1..].to_vec()
}

/// A damaged parquet corpus file (found by fuzzing: polars panicked inside its thrift
/// reader) is an error naming the file, not a crash.
#[test]
fn a_damaged_parquet_corpus_is_an_error_naming_the_file() {
    let sb = Sandbox::new();
    let err = show_parquet_corpus(
        &sb,
        &parquet_regression("damaged-parquet-slice-panic"),
        "{text}",
    );
    // Refused by the page-header walk now, before polars is asked at all.
    assert!(
        err.contains("bad.parquet")
            && (err.contains("damaged") || err.contains("not a readable parquet file")),
        "{err}"
    );
}

/// A parquet corpus whose footer declares more than the file holds (found by libFuzzer: polars
/// allocated the 137 GB a damaged footer claimed, and a failed allocation aborts) is refused
/// by the footer walk before polars reads it.
#[test]
fn a_parquet_footer_claiming_more_than_the_file_is_refused() {
    let sb = Sandbox::new();
    let err = show_parquet_corpus(
        &sb,
        &parquet_regression("footer-claims-137-gb-alloc-abort"),
        "{text}",
    );
    assert!(
        err.contains("bad.parquet: not a readable parquet file (its footer:"),
        "{err}"
    );
    // Well-formed files pass the walk: the binary's own profile and a polars-written corpus.
    let (profile, _) = made_by_the_binary();
    sb.write("p.parquet", &profile);
    mtkit::util::polars_io::check_parquet_footer(&sb.path("p.parquet")).unwrap();
    sb.write("c.parquet", parquet_bytes());
    mtkit::util::polars_io::check_parquet_footer(&sb.path("c.parquet")).unwrap();
}

/// The same damaged page (a negative value count in a page header, which made polars ask for
/// 2^61 bytes) in a user's parquet *corpus*, where no checksum exists: the page-header walk
/// refuses the file before polars decodes it, instead of the process aborting.
#[test]
fn a_parquet_corpus_with_a_damaged_page_header_is_refused() {
    let sb = Sandbox::new();
    let input = std::fs::read(
        repo_root().join("tests/fuzz-regressions/profile/page-claims-exabytes-alloc-abort"),
    )
    .unwrap();
    let err = show_parquet_corpus(&sb, &input, "{bucket}");
    assert!(
        err.contains("bad.parquet: not a readable parquet file (column chunk")
            && err.contains("count is -"),
        "{err}"
    );
}

/// A saved profile whose metadata (outside the page checksum) says n-gram order 0 made the
/// loader index an empty list of token columns (found by libFuzzer; its input is replayed
/// above, and is now refused earlier, by the footer's types). The sizes the metadata gives
/// are checked before they size anything: here a real profile with only that one value
/// changed, so the footer stays well-formed.
#[test]
fn a_profile_with_damaged_metadata_sizes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    let (profile, _) = made_by_the_binary();
    let at = profile
        .windows(10)
        .position(|w| w == b"\"ngram\":2,")
        .expect("the profile's metadata names its n-gram order");
    for order in [b'0', b'9'] {
        let mut damaged = profile.clone();
        damaged[at + 8] = order;
        std::fs::write(&path, &damaged).unwrap();
        let e = mtkit::profile::Profile::load(&path)
            .expect_err("refused")
            .to_string();
        assert!(e.contains("damaged metadata: n-gram order"), "{e}");
    }
}

/// A footer field of the wrong Thrift type (an integer where polars' decoder, which picks
/// fields by id alone, reads a list header) made polars ask for 32 GB and abort (found by
/// libFuzzer in CI). The footer walk checks the type of every field polars reads, in a saved
/// profile and in a user's parquet corpus alike.
#[test]
fn a_parquet_footer_with_a_field_of_the_wrong_type_is_refused() {
    let sb = Sandbox::new();
    for name in [
        "footer-int-read-as-list-alloc-abort",
        "footer-int-read-as-list-alloc-abort-2",
    ] {
        let input = std::fs::read(
            repo_root()
                .join("tests/fuzz-regressions/profile")
                .join(name),
        )
        .unwrap();
        let path = sb.write("p.parquet", &input);
        let e = mtkit::profile::Profile::load(&path)
            .expect_err("refused")
            .to_string();
        assert!(
            e.contains("not a readable parquet file") && e.contains("is due"),
            "{name}: {e}"
        );
        let err = show_parquet_corpus(&sb, &input, "{bucket}");
        assert!(
            err.contains("bad.parquet: not a readable parquet file (its footer:")
                && err.contains("is due"),
            "{name}: {err}"
        );
    }
}

/// Token files whose document table does not fit the tokens, or whose ids are outside the
/// vocabulary, are refused at open (before, the trainer would have indexed past the end).
#[test]
fn a_token_file_with_documents_past_its_end_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Header: magic, version 1, width 2, vocab 10, EOS 9, 3 tokens; ids 1 2 9.
    let mut tokens = b"MTKTOKS\0".to_vec();
    for x in [1u32, 2, 10, 9] {
        tokens.extend_from_slice(&x.to_le_bytes());
    }
    tokens.extend_from_slice(&3u64.to_le_bytes());
    for id in [1u16, 2, 9] {
        tokens.extend_from_slice(&id.to_le_bytes());
    }
    let doc = |start: u64, len: u32, prompt: u32| {
        let mut d = start.to_le_bytes().to_vec();
        d.extend_from_slice(&len.to_le_bytes());
        d.extend_from_slice(&prompt.to_le_bytes());
        d
    };
    let open = |docs: Vec<u8>, tokens: &[u8]| {
        std::fs::write(dir.path().join("train.tokens"), tokens).unwrap();
        std::fs::write(dir.path().join("train.docs"), docs).unwrap();
        mtkit::export::tokens::Split::open(dir.path(), "train")
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    open(doc(0, 3, 1), &tokens).expect("a well-formed token file opens");
    let e = open(doc(0, 4, 0), &tokens).unwrap_err();
    assert!(
        e.contains("document 1 (start 0, 4 tokens, prompt 0) does not fit the 3 tokens"),
        "{e}"
    );
    let e = open([doc(0, 2, 0), doc(2, 1, 2)].concat(), &tokens).unwrap_err();
    assert!(e.contains("document 2"), "{e}");
    let e = open(doc(0, 2, 0), &tokens).unwrap_err();
    assert!(e.contains("hold 2 of the 3 tokens"), "{e}");
    let mut bad_id = tokens.clone();
    bad_id[32..34].copy_from_slice(&12u16.to_le_bytes());
    let e = open(doc(0, 3, 0), &bad_id).unwrap_err();
    assert!(
        e.contains("token id 12 is outside the vocabulary of 10"),
        "{e}"
    );
}

/// A saved profile whose data pages were damaged is refused before polars decodes a page
/// (found by libFuzzer: a damaged page header made polars ask for 2^61 bytes, and a failed
/// allocation aborts the process, which no panic guard can catch).
#[test]
fn a_profile_with_damaged_pages_is_refused_before_decoding() {
    let (profile, _) = made_by_the_binary();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.parquet");
    // Every byte of the data pages (after the leading magic, before the footer) matters.
    let n = profile.len();
    let footer = u32::from_le_bytes(profile[n - 8..n - 4].try_into().unwrap()) as usize;
    let pages_end = n - 8 - footer;
    for at in [4, pages_end / 2, pages_end - 1] {
        let mut bad = profile.clone();
        bad[at] ^= 0x10;
        std::fs::write(&path, &bad).unwrap();
        let e = mtkit::profile::Profile::load(&path)
            .expect_err("refused")
            .to_string();
        // A flip in a page header is caught by the header walk, one in page data by the sum.
        assert!(
            e.contains("data pages do not match the checksum")
                || e.contains("not a readable parquet file (column chunk"),
            "byte {at}: {e}"
        );
    }
    // The crash input (a profile of the format before the checksum) is refused before any
    // page is decoded too.
    let old = std::fs::read(
        repo_root().join("tests/fuzz-regressions/profile/page-claims-exabytes-alloc-abort"),
    )
    .unwrap();
    std::fs::write(&path, &old).unwrap();
    let e = mtkit::profile::Profile::load(&path)
        .expect_err("refused")
        .to_string();
    // Its page header's negative value count is caught by the walk, before the format.
    assert!(e.contains("column chunk 4: a page's count is -25"), "{e}");
}
