//! Hugging Face GPT-NeoX checkpoints in and out, proven against transformers itself: models
//! that transformers builds and saves are imported and give transformers' logits and loss;
//! models that mtkit trains are exported, load in transformers without a warning, give
//! mtkit's logits and the same greedy generation; import → export is bit-identical.
//!
//! transformers runs from the pinned environment of scripts/hf-venv.sh (`make test` installs
//! it). Where it is missing these tests skip with the reason, except under `make test` (which
//! sets MTKIT_HF_PYTHON), where a missing environment is a failure.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use mtkit_train::model::files as model_files;
use tch::{Kind, Tensor};

/// Runs tests/hf/transformers_check.py; returns the JSON of its last stdout line.
fn transformers(py: &Path, args: &[&str]) -> serde_json::Value {
    let script = repo_root().join("tests/hf/transformers_check.py");
    let out = Command::new(py)
        .arg(&script)
        .args(args)
        .env("HF_HUB_OFFLINE", "1")
        .env("TRANSFORMERS_VERBOSITY", "warning")
        .output()
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "transformers_check.py {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON")
}

fn tensors(path: &Path) -> BTreeMap<String, Tensor> {
    Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .collect()
}

/// mtkit's logits [T, vocab] and mean next-token loss on `ids`, from the model at `path`
/// (a Hugging Face folder, a checkpoint or a run folder) loaded as `--init` and `generate` do.
fn mtkit_logits_and_loss(path: &Path, ids: &[i64]) -> (Tensor, f64) {
    let src = model_files::open(path).unwrap();
    let (_vs, model) = model_files::build(&src, tch::Device::Cpu).unwrap();
    tch::no_grad(|| {
        let x = Tensor::from_slice(ids).unsqueeze(0);
        let logits = model.forward(&x).squeeze_dim(0);
        let n = ids.len() as i64;
        // The trainer's loss: the chunked head, mean over the targets.
        let out =
            model.chunked_cross_entropy(&x.narrow(1, 0, n - 1), &x.narrow(1, 1, n - 1), None, None);
        let loss = out.sum.double_value(&[]) / out.count.int64_value(&[]) as f64;
        (logits, loss)
    })
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

/// Compares mtkit's logits and loss on `ids`, and `mtkit model generate`'s greedy ids from
/// 10,20,30, with transformers' for the model at `dir`.
fn assert_matches_transformers(py: &Path, sb: &Sandbox, dir: &Path, ids: &[i64]) {
    let ids_arg: Vec<String> = ids.iter().map(i64::to_string).collect();
    let reference = sb.path("reference.safetensors");
    let r = transformers(
        py,
        &[
            "reference",
            dir.to_str().unwrap(),
            "--ids",
            &ids_arg.join(","),
            "--out",
            reference.to_str().unwrap(),
            "--generate",
            "10,20,30",
        ],
    );
    assert_eq!(r["class"], "GPTNeoXForCausalLM");
    let generated: Vec<String> = r["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.to_string())
        .collect();
    let got = sb.ok(&[
        "model",
        "generate",
        dir.to_str().unwrap(),
        "--prompt-ids",
        "10,20,30",
        "--max-new-tokens",
        "20",
    ]);
    assert_eq!(
        got.trim(),
        generated.join(","),
        "{}: greedy ids",
        dir.display()
    );
    let want = tensors(&reference);
    let (logits, loss) = mtkit_logits_and_loss(dir, ids);
    let diff = max_abs_diff(&logits, &want["logits"]);
    assert!(
        diff <= 1e-4,
        "{}: logits differ from transformers' by {diff:e}",
        dir.display()
    );
    let want_loss = want["loss"].double_value(&[0]);
    assert!(
        (loss - want_loss).abs() <= 1e-5,
        "{}: mean loss {loss} vs transformers' {want_loss}",
        dir.display()
    );
    eprintln!(
        "{}: max |Δlogit| {diff:.2e}, loss {loss:.6} vs {want_loss:.6}, generated {}",
        dir.display(),
        generated.join(",")
    );
}

/// Every tensor of two safetensors files equal bit for bit (same names, dtypes, shapes).
fn assert_bit_identical(a: &Path, b: &Path) {
    let (ta, tb) = (tensors(a), tensors(b));
    assert_eq!(
        ta.keys().collect::<Vec<_>>(),
        tb.keys().collect::<Vec<_>>(),
        "{} and {} hold different tensors",
        a.display(),
        b.display()
    );
    for (n, x) in &ta {
        let y = &tb[n];
        assert_eq!((x.kind(), x.size()), (y.kind(), y.size()), "{n}");
        let bits = |t: &Tensor| {
            let mut v = vec![0u8; t.numel() * t.kind().elt_size_in_bytes()];
            t.contiguous().copy_data_u8(&mut v, t.numel());
            v
        };
        assert!(
            bits(x) == bits(y),
            "{n} differs between {} and {}",
            a.display(),
            b.display()
        );
    }
}

/// Fixed ids over the whole vocabulary `v` (its last id included).
fn probe_ids(v: i64) -> Vec<i64> {
    vec![
        0,
        1,
        10,
        20,
        30,
        v / 3,
        v / 2,
        7,
        7,
        v - 1,
        42,
        5,
        99 % v,
        3,
    ]
}

/// Random models made and saved by transformers: several shapes (1 and 3 layers, rotary on a
/// quarter and on all of each head, vocabularies that are not multiples of 128, an MLP that
/// is not 4×, another LayerNorm epsilon and rotary base) give transformers' logits (≤ 1e-4),
/// loss (≤ 1e-5) and greedy generation in mtkit; each exported again is bit-identical in
/// weights and gives the same again in transformers.
#[test]
fn models_made_by_transformers_give_transformers_logits_and_export_bit_identically() {
    let Some(py) = transformers_python() else {
        return;
    };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let shapes: &[(&str, &[&str])] = &[
        (
            "l1-rot25",
            &["--layers", "1", "--rotary-pct", "0.25", "--vocab", "50281"],
        ),
        (
            "l3-rot100",
            &[
                "--layers",
                "3",
                "--rotary-pct",
                "1.0",
                "--vocab",
                "50290",
                "--seed",
                "1",
            ],
        ),
        (
            "l3-odd",
            &[
                "--layers",
                "3",
                "--rotary-pct",
                "0.5",
                "--vocab",
                "50333",
                "--hidden",
                "96",
                "--heads",
                "3",
                "--intermediate",
                "200",
                "--layer-norm-eps",
                "1e-6",
                "--rotary-base",
                "500",
                "--seed",
                "2",
            ],
        ),
    ];
    for (name, args) in shapes {
        let dir = sb.path(name);
        let mut a = vec!["make-model", dir.to_str().unwrap()];
        a.extend_from_slice(args);
        transformers(&py, &a);
        let vocab: i64 = args[args.iter().position(|x| *x == "--vocab").unwrap() + 1]
            .parse()
            .unwrap();
        assert_ne!(vocab % 128, 0, "a vocabulary not padded to 128");
        assert_matches_transformers(&py, &sb, &dir, &probe_ids(vocab));
        // Import → export: the same tensors, bit for bit, under the same names.
        let out = sb.path(&format!("{name}-exported"));
        sb.ok(&[
            "model",
            "export",
            dir.to_str().unwrap(),
            "--to",
            "hf",
            "-o",
            out.to_str().unwrap(),
            "--tokenizer",
            tok.to_str().unwrap(),
        ]);
        assert_bit_identical(
            &dir.join("model.safetensors"),
            &out.join("model.safetensors"),
        );
        assert_matches_transformers(&py, &sb, &out, &probe_ids(vocab));
    }
}

/// A run that starts from a transformers model (`--init`) starts from its weights exactly:
/// its step-0 checkpoint, exported, is bit-identical to the folder it came from, and the run
/// goes on from there; a preset that disagrees with the folder's shape is refused by key.
#[test]
fn a_run_started_from_a_transformers_model_starts_from_its_weights() {
    let Some(py) = transformers_python() else {
        return;
    };
    let sb = Sandbox::new();
    let (_, tok) = word_corpora(&sb);
    let init = sb.path("hf-init");
    transformers(
        &py,
        &[
            "make-model",
            init.to_str().unwrap(),
            "--layers",
            "2",
            "--rotary-pct",
            "0.25",
            "--vocab",
            "40",
            "--seed",
            "3",
        ],
    );
    let cfg_path = sb.write(
        "run.toml",
        RUN.replace("preset = \"tiny\"\n", "init = \"hf-init\"\n"),
    );
    sb.ok(&[
        "train",
        cfg_path.to_str().unwrap(),
        "--out",
        "run",
        "--device",
        "cpu",
        "--stop-after",
        "0",
        "--quiet",
    ]);
    let exported = sb.path("step0");
    sb.ok(&[
        "model",
        "export",
        "run",
        "-o",
        exported.to_str().unwrap(),
        "--tokenizer",
        &tok,
    ]);
    assert_bit_identical(
        &init.join("model.safetensors"),
        &exported.join("model.safetensors"),
    );
    // A preset that disagrees with the folder's shape is refused, naming the key.
    let cfg = sb.write(
        "bad.toml",
        RUN.replace(
            "preset = \"tiny\"\n",
            "preset = \"tiny\"\ninit = \"hf-init\"\n",
        ),
    );
    let err = sb.fails(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        "bad",
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("num_hidden_layers is 2, but preset `tiny` has 3"),
        "{err}"
    );
    // The rest of the run goes on from the imported weights.
    sb.ok(&[
        "train",
        cfg_path.to_str().unwrap(),
        "--out",
        "run",
        "--device",
        "cpu",
        "--resume",
        "--quiet",
    ]);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("run/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["preset"], "hf:hf-init");
    assert_eq!(summary["steps"], 6);
}

/// A model trained by mtkit is exported; transformers loads it (no missing, unexpected or
/// mismatched weight, no warning), its logits equal mtkit's (≤ 1e-4), the tokenizer it ships
/// encodes as mtkit's, and transformers' greedy generation of 20 tokens equals
/// `mtkit model generate` on the checkpoint and on the exported folder.
#[test]
fn a_model_trained_by_mtkit_loads_in_transformers_with_the_same_logits_and_generation() {
    let Some(py) = transformers_python() else {
        return;
    };
    let sb = Sandbox::new();
    let (_, tok) = word_corpora(&sb);
    let cfg = sb.write("run.toml", RUN);
    sb.ok(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        "run",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let out = sb.path("exported");
    let said = sb.ok(&[
        "model",
        "export",
        "run",
        "--to",
        "hf",
        "-o",
        out.to_str().unwrap(),
        "--tokenizer",
        &tok,
    ]);
    assert!(said.contains("mtkit-optimizer.safetensors"), "{said}");
    // The export is the last checkpoint's weights under transformers' names.
    let ck = model_files::newest_checkpoint(&sb.path("run")).unwrap();
    let ours = tensors(&ck);
    let theirs = tensors(&out.join("model.safetensors"));
    assert_eq!(
        theirs.len(),
        ours.keys().filter(|k| k.starts_with("param.")).count()
    );
    for (n, t) in &ours {
        if let Some(n) = n.strip_prefix("param.") {
            let hf = if n.starts_with("embed_out") {
                n.to_string()
            } else {
                format!("gpt_neox.{n}")
            };
            assert!(t.equal(&theirs[&hf]), "{hf}");
        }
    }
    let ids: Vec<i64> = vec![30, 1, 2, 3, 4, 5, 25, 26, 27, 30, 11, 12, 13, 0];
    let ids_arg: Vec<String> = ids.iter().map(i64::to_string).collect();
    let reference = sb.path("reference.safetensors");
    let r = transformers(
        &py,
        &[
            "reference",
            out.to_str().unwrap(),
            "--ids",
            &ids_arg.join(","),
            "--out",
            reference.to_str().unwrap(),
            "--generate",
            "10,20,30",
            "--max-new-tokens",
            "20",
            "--tokenize",
            "w1 w2 w29 <|endoftext|>",
        ],
    );
    let want = tensors(&reference);
    let (logits, _) = mtkit_logits_and_loss(&sb.path("run"), &ids);
    let diff = max_abs_diff(&logits, &want["logits"]);
    assert!(diff <= 1e-4, "logits differ from transformers' by {diff:e}");
    // The word tokenizer's ids (tests/common: word i has id i + 1, 0 is [UNK]): w1 = 2,
    // w2 = 3, w29 = 30, <|endoftext|> (the 31st word) = 31.
    assert_eq!(r["tokenized"], serde_json::json!([2, 3, 30, 31]));
    let generated: Vec<i64> = r["generated"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert!(!generated.is_empty() && generated.len() <= 20);
    let want_ids: Vec<String> = generated.iter().map(i64::to_string).collect();
    for model in ["run", "exported"] {
        let got = sb.ok(&[
            "model",
            "generate",
            model,
            "--prompt-ids",
            "10,20,30",
            "--max-new-tokens",
            "20",
        ]);
        assert_eq!(
            got.trim(),
            want_ids.join(","),
            "mtkit model generate {model}"
        );
    }
    eprintln!(
        "transformers generated {}; max |Δlogit| {diff:.2e}",
        want_ids.join(",")
    );
}

/// A checkpoint from before safetensors (a torch.save pickle of the state dict, as transformers
/// saved them) is refused with a conversion command; run as printed, that command makes a
/// folder mtkit imports with transformers' logits.
#[test]
fn a_pickled_checkpoint_is_refused_with_a_conversion_that_works() {
    let Some(py) = transformers_python() else {
        return;
    };
    let sb = Sandbox::new();
    let dir = sb.path("pickled");
    let d = dir.to_str().unwrap();
    transformers(
        &py,
        &[
            "make-model",
            d,
            "--layers",
            "2",
            "--rotary-pct",
            "0.25",
            "--vocab",
            "1000",
            "--pickle",
        ],
    );
    let err = sb.fails(&["model", "generate", d, "--prompt-ids", "1,2"]);
    assert!(err.contains("holds pytorch_model.bin"), "{err}");
    let code = err
        .split("python -c \"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("no command in: {err}"));
    let out = Command::new(&py).args(["-c", code]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_matches_transformers(&py, &sb, &dir, &probe_ids(1000));
}

/// What mtkit's model cannot represent is refused with the key's name.
#[test]
fn configs_mtkit_cannot_represent_are_refused_by_key() {
    let sb = Sandbox::new();
    let base = serde_json::json!({
        "model_type": "gpt_neox", "hidden_size": 32, "num_hidden_layers": 1,
        "num_attention_heads": 4, "intermediate_size": 64, "vocab_size": 200,
    });
    let cases: &[(&str, serde_json::Value, &str)] = &[
        (
            "tied",
            serde_json::json!({"tie_word_embeddings": true}),
            "`tie_word_embeddings` is true",
        ),
        (
            "serial",
            serde_json::json!({"use_parallel_residual": false}),
            "`use_parallel_residual` is false",
        ),
        (
            "act",
            serde_json::json!({"hidden_act": "gelu_new"}),
            "`hidden_act` is \"gelu_new\"",
        ),
        (
            "llama",
            serde_json::json!({"model_type": "llama"}),
            "`model_type` is \"llama\"",
        ),
        (
            "scaled",
            serde_json::json!({"rope_scaling": {"type": "linear", "factor": 2.0}}),
            "`rope_scaling` is set",
        ),
        (
            "heads",
            serde_json::json!({"num_attention_heads": 5}),
            "`num_attention_heads` is 5, which does not divide hidden_size 32",
        ),
        (
            "noffn",
            serde_json::json!({"intermediate_size": null}),
            "`intermediate_size` is null",
        ),
    ];
    for (name, change, want) in cases {
        let mut cfg = base.clone();
        for (k, v) in change.as_object().unwrap() {
            cfg[k] = v.clone();
        }
        sb.write(&format!("{name}/config.json"), cfg.to_string());
        let err = sb.fails(&["model", "generate", name, "--prompt-ids", "1"]);
        assert!(err.contains(want), "{name}: {err}");
        assert!(err.contains("config.json"), "{name}: {err}");
    }
    let mut cfg = base.clone();
    cfg.as_object_mut().unwrap().remove("intermediate_size");
    sb.write("missing/config.json", cfg.to_string());
    let err = sb.fails(&["model", "generate", "missing", "--prompt-ids", "1"]);
    assert!(err.contains("`intermediate_size` is missing"), "{err}");
    // A folder without weights says which files it looked for.
    sb.write("empty/config.json", base.to_string());
    let err = sb.fails(&["model", "generate", "empty", "--prompt-ids", "1"]);
    assert!(err.contains("has no model.safetensors"), "{err}");
}

const RUN: &str = r#"
[run]
name = "t"
preset = "tiny"
seed = 5
data = "tokens"
validation = ["b"]
eval_every = 3
eval_tokens = 256
checkpoint_every = 3

[[phases]]
name = "pre"
kind = "pretrain"
steps = 3
batch_size = 4
seq_len = 16
mixture = { a = 1.0 }
schedule = { lr = 3e-3, min_lr = 3e-4, warmup = 1, total_steps = 6 }

[[phases]]
name = "mid"
kind = "midtrain"
steps = 3
mixture = { a = 0.5, b = 0.5 }
schedule = "continue"
"#;

/// `mtkit model pull` against the local Hub-layout server: the revision's files land in
/// Hugging Face's cache (HF_HOME) with the token sent, `-o` links the folder, the folder is a
/// model mtkit runs; a second pull fetches nothing; offline, the cached revision is used; a
/// revision that a user's Python huggingface_hub put in the cache is found without network.
#[test]
fn model_pull_fills_and_reuses_the_hugging_face_cache() {
    let sb = Sandbox::new();
    let (_, tok) = word_corpora(&sb);
    let cfg = sb.write("run.toml", RUN);
    sb.ok(&[
        "train",
        cfg.to_str().unwrap(),
        "--out",
        "run",
        "--device",
        "cpu",
        "--quiet",
    ]);
    let exported = sb.path("exported");
    sb.ok(&[
        "model",
        "export",
        "run",
        "-o",
        exported.to_str().unwrap(),
        "--tokenizer",
        &tok,
    ]);
    let files: Vec<(String, Vec<u8>)> = [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "model.safetensors",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(exported.join(f)).unwrap()))
    .collect();
    let commit = "89abcdef0123456789abcdef0123456789abcdef";
    let (base, seen) = hub_server::serve(vec![hub_server::HubRepo {
        kind: "models",
        repo: "org/tiny-neox".into(),
        revision: "step6".into(),
        commit: commit.into(),
        files: files.clone(),
    }]);
    let pull = |endpoint: &str, out: &str| {
        sb.cmd(&[
            "model",
            "pull",
            "org/tiny-neox",
            "--revision",
            "step6",
            "-o",
            out,
            "--quiet",
        ])
        .env("HF_ENDPOINT", endpoint)
        .env("HF_TOKEN", "hf_secret")
        .output()
        .unwrap()
    };
    let o = pull(&base, "pulled");
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        said.contains("4 files, 4 fetched, 0 from the cache") && said.contains("3 layers"),
        "{said}"
    );
    let snapshot = sb
        .path("hf-home/hub/models--org--tiny-neox/snapshots")
        .join(commit);
    for (f, bytes) in &files {
        assert_eq!(&std::fs::read(snapshot.join(f)).unwrap(), bytes, "{f}");
    }
    assert_eq!(std::fs::read_link(sb.path("pulled")).unwrap(), snapshot);
    assert!(seen
        .lock()
        .unwrap()
        .auth
        .iter()
        .all(|a| a == "Bearer hf_secret"));
    let generate = |model: &str| {
        sb.ok(&[
            "model",
            "generate",
            model,
            "--prompt-ids",
            "1,2,3",
            "--max-new-tokens",
            "8",
        ])
    };
    assert_eq!(generate("pulled"), generate("run"));
    // Again: nothing fetched.
    let resolves =
        |s: &hub_server::Seen| s.paths.iter().filter(|p| p.contains("/resolve/")).count();
    let before = resolves(&seen.lock().unwrap());
    let o = pull(&base, "pulled");
    assert!(String::from_utf8_lossy(&o.stdout).contains("0 fetched, 4 from the cache"));
    assert_eq!(resolves(&seen.lock().unwrap()), before);
    // Offline (a closed port): the cached revision, with a note.
    let closed = format!(
        "http://127.0.0.1:{}",
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let o = pull(&closed, "offline");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("using the copy in Hugging Face's cache"));
    // A revision Python's huggingface_hub downloaded (its cache layout, filled by hand).
    let other = "fedcba9876543210fedcba9876543210fedcba98";
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(f, b)| (f.as_str(), b.as_slice()))
        .collect();
    hub_server::fill_python_cache(
        &sb.path("hf-home"),
        "models",
        "org/by-python",
        "main",
        other,
        &refs,
    );
    let o = sb
        .cmd(&["model", "pull", "org/by-python", "-o", "py", "--quiet"])
        .env("HF_ENDPOINT", &closed)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(generate("py"), generate("run"));
    // No such repository: the Hub's answer, with the hint.
    let o = sb
        .cmd(&["model", "pull", "org/missing", "--quiet"])
        .env("HF_ENDPOINT", &base)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("HTTP 404") && err.contains("no such repository"),
        "{err}"
    );
}

/// analysis/from-hf-checkpoint.toml as the README runs it: a GPT-NeoX saved by transformers,
/// the real C4, MATH and GSM8K samples, midtraining then SFT on GSM8K's answers.
#[test]
fn the_analysis_config_midtrains_and_fine_tunes_from_an_imported_checkpoint() {
    let Some(py) = transformers_python() else {
        return;
    };
    let Some(catalog) = shared_catalog() else {
        return;
    };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let init = sb.path("out/hf-init");
    transformers(
        &py,
        &[
            "make-model",
            init.to_str().unwrap(),
            "--layers",
            "2",
            "--rotary-pct",
            "0.25",
            "--vocab",
            "50304",
        ],
    );
    sb.ok(&[
        "tokenize",
        "c4",
        "math",
        "gsm8k",
        "--catalog",
        catalog.to_str().unwrap(),
        "-o",
        "out/tokens-real",
        "--tokenizer",
        tok.to_str().unwrap(),
        "--quiet",
    ]);
    let config =
        std::fs::read_to_string(repo_root().join("analysis/from-hf-checkpoint.toml")).unwrap();
    let cfg = sb.write("analysis/from-hf-checkpoint.toml", config);
    let err = sb
        .cmd(&[
            "train",
            cfg.to_str().unwrap(),
            "--out",
            "run",
            "--device",
            "cpu",
            "--quiet",
        ])
        .output()
        .unwrap();
    assert!(
        err.status.success(),
        "{}",
        String::from_utf8_lossy(&err.stderr)
    );
    let said = String::from_utf8_lossy(&err.stderr);
    assert!(said.contains("optimizer state starts fresh"), "{said}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("run/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["steps"], 30);
    assert_eq!(summary["preset"], "hf:hf-init");
    // Midtraining saw both sources; SFT only GSM8K.
    for source in ["c4", "math", "gsm8k"] {
        assert!(
            summary["tokens_delivered"][source].as_u64().unwrap() > 0,
            "{source}"
        );
    }
    for v in ["c4", "gsm8k"] {
        assert!(summary["final_losses"][v].as_f64().unwrap().is_finite());
    }
}
