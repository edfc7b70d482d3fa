//! Entry points for fuzzing everything that reads a user's bytes.
//!
//! Each `fuzz_*` function takes arbitrary bytes, puts them where mtkit would find a user's file
//! (a corpus file, a catalog, a run config, a saved profile, a token file, a Hugging Face
//! folder's config.json and safetensors headers), and runs the real reader on it. Any input
//! may be rejected with an error; none may panic, abort, hang or break the invariants checked
//! here. The same functions are driven two ways:
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

use crate::data::catalog::Catalog;
use crate::data::corpus::{read_documents_with, SampleSpec};
use crate::data::template::Template;

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
    if let Ok((cfg, _)) = crate::export::run_config::RunConfig::load(&path) {
        let _ = cfg.resolve(&|_, _| Ok(10));
    }
}

/// A saved profile (`*.parquet`), loaded as `proximity` loads a profile it is given. A
/// profile that loads has consistent totals (checked by the loader's checksum).
pub fn fuzz_profile(data: &[u8]) {
    let dir = scratch();
    let path = write(&dir, "profile.parquet", data);
    if let Ok(p) = crate::profile::Profile::load(&path) {
        let _ = crate::analysis::proximity::Dist::of(&p);
    }
    // The streaming reader of `profile merge`: every row, then the checksum.
    if let Ok(mut rows) = crate::profile::ProfileRows::open(&path) {
        for order in 2..=rows.meta.ngram {
            while let Ok(Some(_)) = rows.next_of(order) {}
        }
        let _ = rows.finish();
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
    if let Ok(split) = crate::export::tokens::Split::open(&dir, "train") {
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

/// An Arrow IPC stream file (Hugging Face `datasets`' format) read as a corpus, leniently and
/// with `--strict`: no panic or abort, and the documents delivered are those counted.
pub fn fuzz_arrow_file(data: &[u8]) {
    let dir = scratch();
    write(&dir, "input.arrow", data);
    let cat_path = write(
        &dir,
        "catalog.toml",
        b"[datasets.f]\nrole = \"target\"\npaths = [\"input.arrow\"]\ntext = \"{text}\"\n",
    );
    let mut cat = Catalog::builtin();
    cat.add_file(&cat_path).expect("the fuzz catalog is valid");
    let card = cat.get("f").expect("card f").clone();
    for strict in [false, true] {
        let spec = SampleSpec {
            strict,
            ..SampleSpec::default()
        };
        let mut n = 0u64;
        if let Ok(summary) = read_documents_with(&card, &spec, &[], &mut |_| {
            n += 1;
            Ok(())
        }) {
            assert_eq!(summary.documents, n, "documents counted");
        }
    }
}

/// An Arrow IPC stream of `texts` in a `text` column (and a number column), as `datasets`
/// writes one: a seed of [`fuzz_arrow_file`].
pub fn arrow_stream_of(texts: &[&str]) -> Vec<u8> {
    use polars::prelude::{Column, DataFrame, IpcStreamWriter, SerWriter};
    let n: Vec<i64> = (0..texts.len() as i64).collect();
    let mut df = DataFrame::new_infer_height(vec![
        Column::new("text".into(), texts),
        Column::new("n".into(), n),
    ])
    .expect("a frame");
    let mut out = Vec::new();
    IpcStreamWriter::new(&mut out)
        .finish(&mut df)
        .expect("an IPC stream");
    out
}

/// A Hugging Face folder as the trainer checks it before building a model: the input is
/// `[mode][config length, u16 LE][config.json][rest]`, where `rest` is `model.safetensors`, or
/// (mode odd) `model.safetensors.index.json` beside a shard `w.safetensors` of a valid small
/// model. config.json is parsed, the weight files found (no path may leave the folder), their
/// headers read and the shape checked against them. A folder that passes must hold every
/// tensor of the shape, each within its file: so nothing the trainer then allocates is larger
/// than the files.
pub fn fuzz_hf_folder(data: &[u8]) {
    if data.len() < 3 {
        return;
    }
    let mode = data[0];
    let n = (u16::from_le_bytes([data[1], data[2]]) as usize).min(data.len() - 3);
    let (config, rest) = data[3..].split_at(n);
    let dir = scratch().join("hf");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a folder for the input");
    write(&dir, "config.json", config);
    if mode % 2 == 1 {
        write(&dir, crate::hf::checkpoint::INDEX_FILE, rest);
        write(&dir, "w.safetensors", &small_safetensors());
    } else {
        write(&dir, crate::hf::checkpoint::WEIGHTS_FILE, rest);
    }
    let Ok(text) = std::str::from_utf8(config) else {
        return;
    };
    let Ok(shape) = crate::hf::checkpoint::parse_config(text, &dir.join("config.json")) else {
        return;
    };
    let Ok(files) = crate::hf::checkpoint::weight_files(&dir) else {
        return;
    };
    let root = dir.canonicalize().expect("the folder exists");
    let mut headers = std::collections::BTreeMap::new();
    for f in &files {
        assert!(
            f.canonicalize().is_ok_and(|c| c.starts_with(&root)),
            "a weight file outside the folder was accepted: {}",
            f.display()
        );
        match crate::hf::checkpoint::read_safetensors_header(f) {
            Ok(h) => headers.extend(h),
            Err(_) => return,
        }
    }
    if crate::hf::checkpoint::check_shape_against(&shape, &headers, &dir.join("config.json"))
        .is_ok()
    {
        let on_disk: u64 = files
            .iter()
            .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
            .sum();
        let numel: u64 = headers
            .values()
            .map(|t| t.shape.iter().product::<u64>())
            .sum();
        assert!(
            numel <= on_disk,
            "{numel} elements in {on_disk} bytes of files"
        );
        let (d, l) = (shape.d_model as u64, shape.layers as u64);
        assert!(shape.vocab as u64 * d <= numel && l * d <= numel);
    }
}

/// A valid safetensors file of a GPT-NeoX model with 1 layer, hidden size 4, 2 heads, MLP 8,
/// vocabulary 6 (zeros), and a config.json for it: the fuzz target's shard and the seeds.
pub fn small_safetensors() -> Vec<u8> {
    let (v, d, f) = (6u64, 4u64, 8u64);
    let mut tensors: Vec<(String, Vec<u64>)> = vec![
        ("gpt_neox.embed_in.weight".into(), vec![v, d]),
        ("embed_out.weight".into(), vec![v, d]),
        ("gpt_neox.final_layer_norm.weight".into(), vec![d]),
        ("gpt_neox.final_layer_norm.bias".into(), vec![d]),
    ];
    for (n, s) in [
        ("input_layernorm.weight", vec![d]),
        ("input_layernorm.bias", vec![d]),
        ("post_attention_layernorm.weight", vec![d]),
        ("post_attention_layernorm.bias", vec![d]),
        ("attention.query_key_value.weight", vec![3 * d, d]),
        ("attention.query_key_value.bias", vec![3 * d]),
        ("attention.dense.weight", vec![d, d]),
        ("attention.dense.bias", vec![d]),
        ("mlp.dense_h_to_4h.weight", vec![f, d]),
        ("mlp.dense_h_to_4h.bias", vec![f]),
        ("mlp.dense_4h_to_h.weight", vec![d, f]),
        ("mlp.dense_4h_to_h.bias", vec![d]),
    ] {
        tensors.push((format!("gpt_neox.layers.0.{n}"), s));
    }
    let mut header = serde_json::Map::new();
    let mut at = 0u64;
    for (name, shape) in &tensors {
        let bytes = 4 * shape.iter().product::<u64>();
        header.insert(
            name.clone(),
            serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [at, at + bytes]}),
        );
        at += bytes;
    }
    let h = serde_json::to_vec(&serde_json::Value::Object(header)).expect("json");
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    out.resize(out.len() + at as usize, 0);
    out
}

/// The config.json of [`small_safetensors`]'s model.
pub const SMALL_CONFIG: &str = r#"{"model_type":"gpt_neox","hidden_size":4,"num_hidden_layers":1,"num_attention_heads":2,"intermediate_size":8,"vocab_size":6,"max_position_embeddings":64,"rotary_pct":0.5,"rope_parameters":{"rope_type":"default","rope_theta":10000.0,"partial_rotary_factor":0.5},"layer_norm_eps":1e-5}"#;

/// For the libFuzzer targets: every panic is a crash (an abort libFuzzer reports), except a
/// panic raised inside polars' own code, which mtkit catches around each polars call on a
/// user's file and reports as a damaged file ([`crate::util::polars_io::catch_polars`]). A polars panic
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
