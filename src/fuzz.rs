//! Entry points for fuzzing everything that reads a user's bytes.
//!
//! Each `fuzz_*` function takes arbitrary bytes, puts them where mtkit would find a user's file
//! (a corpus file, a catalog, a run config, a saved profile, a token file), and runs the real
//! reader on it. Any input may be rejected with an error; none may panic, abort, hang or
//! break the invariants checked here. The same functions are driven two ways:
//!
//! - coverage-guided, by libFuzzer through `cargo fuzz` (the `fuzz/` folder; `make fuzz`
//!   runs each target for a while, `make fuzz-ci` for the bounded time CI allows);
//! - by seeded mutations of real files in the ordinary test suite (`tests/fuzz_seeded.rs`),
//!   which needs no instrumented build.
//!
//! Inputs are written to a private temporary folder (in `/dev/shm` where it exists, so that a
//! run is not bound by the disk).

use std::cell::RefCell;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::catalog::Catalog;
use crate::corpus::{read_documents_with, SampleSpec};
use crate::template::Template;

thread_local! {
    static SCRATCH: RefCell<Option<tempfile::TempDir>> = const { RefCell::new(None) };
}

/// A per-thread scratch folder, emptied of the previous input's files by overwriting them.
fn scratch() -> PathBuf {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.is_none() {
            let shm = Path::new("/dev/shm");
            let dir = if shm.is_dir() {
                tempfile::Builder::new()
                    .prefix("mtkit-fuzz")
                    .tempdir_in(shm)
            } else {
                tempfile::Builder::new().prefix("mtkit-fuzz").tempdir()
            };
            *s = Some(dir.expect("a scratch folder for fuzz inputs"));
        }
        s.as_ref().unwrap().path().to_path_buf()
    })
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write a fuzz input");
    p
}

/// The corpus file kinds the readers take, chosen by an input's first byte.
pub const CORPUS_KINDS: [&str; 8] = [
    "jsonl",
    "json",
    "txt",
    "jsonl.gz",
    "jsonl.zst",
    "json.gz",
    "parquet",
    "txt.zst",
];

/// Compresses `data` as a file named `*.gz` or `*.zst` expects; other names take it as is.
fn encode_for(name: &str, data: &[u8], compress: bool) -> Vec<u8> {
    if !compress {
        return data.to_vec();
    }
    if name.ends_with(".gz") {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    } else if name.ends_with(".zst") {
        zstd::stream::encode_all(data, 1).unwrap()
    } else {
        data.to_vec()
    }
}

/// A corpus file of any kind, read through a catalog card as `mtkit data show` or `profile`
/// would, leniently and with `--strict`, with and without a document cap and a prompt/response
/// split. `data[0]` picks the kind ([`CORPUS_KINDS`]) and whether a compressed kind gets `data`
/// compressed here (reaching the record reader) or as raw, probably broken, compressed bytes.
///
/// Invariants: a lenient read that skipped nothing agrees with the strict read; the documents
/// delivered are those counted; a cap is respected.
pub fn fuzz_corpus_file(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    let kind = CORPUS_KINDS[(sel as usize) % CORPUS_KINDS.len()];
    let compress = sel & 0x80 == 0;
    let dir = scratch();
    let name = format!("input.{kind}");
    write(&dir, &name, &encode_for(&name, body, compress));
    let fields = if sel & 0x40 == 0 {
        "text = \"{text}\"\n"
    } else {
        "text = \"{q} {a}\"\nprompt = \"{q}\"\nresponse = \"{a}\"\n"
    };
    let cat_path = write(
        &dir,
        "catalog.toml",
        format!("[datasets.f]\nrole = \"target\"\npaths = [\"{name}\"]\n{fields}").as_bytes(),
    );
    let mut cat = Catalog::builtin();
    cat.add_file(&cat_path).expect("the fuzz catalog is valid");
    let card = cat.get("f").expect("card f").clone();
    let extra: Vec<Template> = [&card.prompt, &card.response]
        .into_iter()
        .flatten()
        .map(|t| Template::parse(t).unwrap())
        .collect();
    let read = |spec: &SampleSpec| {
        let mut docs = Vec::new();
        let r = read_documents_with(&card, spec, &extra, &mut |d| {
            docs.push(d);
            Ok(())
        });
        (r, docs)
    };
    let lenient = SampleSpec::default();
    let (r, docs) = read(&lenient);
    if let Ok(summary) = &r {
        assert_eq!(summary.documents, docs.len() as u64, "documents counted");
        let (strict, strict_docs) = read(&SampleSpec {
            strict: true,
            ..lenient.clone()
        });
        if summary.skipped_total() == 0 {
            assert!(
                strict.is_ok(),
                "strict fails where lenient skipped nothing: {strict:?}"
            );
            assert_eq!(
                strict_docs, docs,
                "strict and lenient read the same documents"
            );
        }
        let capped = SampleSpec {
            max_docs: Some(3),
            max_chars: Some(7),
            ..lenient
        };
        let (r, docs) = read(&capped);
        if r.is_ok() {
            assert!(docs.len() <= 3, "at most --max-docs documents");
            assert!(
                docs.iter().all(|d| d.text.chars().count() <= 7),
                "cut to --max-chars"
            );
        }
    }
}

/// A template (`text = "..."` in a card) parsed and rendered against a record with a few
/// fields of each JSON type.
pub fn fuzz_template(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(t) = Template::parse(src) else {
        return;
    };
    let record: serde_json::Value = serde_json::json!({
        "text": "hello", "q": "2+2?", "a": 4, "n": null, "b": true,
        "list": ["x", {"y": 1}], "obj": {"k": "v", "inner": {"z": [1, 2]}}
    });
    let _ = t.render(record.as_object().unwrap());
    let _ = t.fields();
}

/// A user catalog file, then every card it defines resolved (paths expanded relative to it)
/// and its template parsed.
pub fn fuzz_catalog(data: &[u8]) {
    let dir = scratch();
    let path = write(&dir, "catalog.toml", data);
    let mut cat = Catalog::builtin();
    if cat.add_file(&path).is_ok() {
        let names: Vec<String> = cat.cards().map(|c| c.name.clone()).collect();
        for n in names {
            let card = cat.get(&n).unwrap();
            let _ = card.template();
            if card.local.is_some() {
                let _ = card.resolve();
            }
        }
    }
}

/// A run config file, loaded and its phases resolved (as `mtkit train` does before it opens
/// any data).
pub fn fuzz_run_config(data: &[u8]) {
    let dir = scratch();
    let path = write(&dir, "run.toml", data);
    if let Ok((cfg, _)) = crate::train::config::RunConfig::load(&path) {
        let _ = cfg.resolve(&|_, _| Ok(10));
    }
}

/// A saved profile (`*.parquet`), loaded as `proximity` loads a profile it is given. A
/// profile that loads has consistent totals (checked by the loader's checksum).
pub fn fuzz_profile(data: &[u8]) {
    let dir = scratch();
    let path = write(&dir, "profile.parquet", data);
    if let Ok(p) = crate::profile::Profile::load(&path) {
        let _ = crate::proximity::Dist::of(&p);
    }
}

/// A token file (`train.tokens` + `train.docs`, split at a point the input chooses), opened
/// as the trainer opens it, then every document and token read. A token file that opens must be
/// readable whole without a panic.
pub fn fuzz_token_file(data: &[u8]) {
    if data.len() < 2 {
        return;
    }
    let cut = (u16::from_le_bytes([data[0], data[1]]) as usize).min(data.len() - 2);
    let (tokens, docs) = data[2..].split_at(cut);
    let dir = scratch();
    write(&dir, "train.tokens", tokens);
    write(&dir, "train.docs", docs);
    if let Ok(split) = crate::token_files::Split::open(&dir, "train") {
        for k in 0..split.n_docs() {
            let (start, len, prompt) = split.doc(k);
            assert!(prompt <= len, "a document's prompt is within it");
            for j in 0..len as u64 {
                assert!(split.token(start + j) < split.vocab_size);
            }
        }
        if split.n_tokens() > 0 {
            let _ = split.window(split.n_tokens() - 1, 3);
        }
    }
}

/// For the libFuzzer targets: every panic is a crash (an abort libFuzzer reports), except a
/// panic raised inside polars' own code, which mtkit catches around each polars call on a
/// user's file and reports as a damaged file ([`crate::formats::catch_polars`]). A polars panic
/// that escapes those guards still reaches libFuzzer's own handler and counts as a crash.
pub fn abort_on_panics_outside_polars() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_polars = info
            .location()
            .is_some_and(|l| l.file().contains("/polars-"));
        if !in_polars {
            default(info);
            std::process::abort();
        }
    }));
}
