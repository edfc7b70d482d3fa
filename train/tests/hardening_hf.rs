//! What a hostile pass over the Hugging Face commands found (issue 23, items 1-5), each a
//! regression test that failed before its fix: exported folders other users cannot open,
//! `--force` over a file, imported config.json shapes that allocate before they are checked,
//! keys accepted that make no model, weight maps that leave the folder, and `model generate`
//! without bounds.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A run of two steps on the word corpora, exported as a Hugging Face folder `hf`; returns the
/// folder and the tokenizer.
fn exported(sb: &Sandbox) -> (PathBuf, String) {
    let (_, tok) = word_corpora(sb);
    sb.write(
        "run.toml",
        "[run]\nname = \"h\"\npreset = \"tiny\"\ndata = \"tokens\"\neval_every = 100\ncheckpoint_every = 100\n\
         [[phases]]\nname = \"p\"\nkind = \"pretrain\"\nsteps = 2\nbatch_size = 2\nseq_len = 16\nmixture = { a = 1.0 }\nschedule = { lr = 1e-3 }\n",
    );
    sb.ok(&["train", "run.toml", "--out", "run", "--device", "cpu", "-q"]);
    sb.ok(&[
        "model",
        "export",
        "run",
        "--to",
        "hf",
        "-o",
        "hf",
        "--tokenizer",
        &tok,
    ]);
    (sb.path("hf"), tok)
}

/// A copy of the folder `src` at `name` with config.json changed by `edit`.
fn with_config(
    sb: &Sandbox,
    src: &Path,
    name: &str,
    edit: impl Fn(&mut serde_json::Value),
) -> PathBuf {
    let dir = sb.path(name);
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(src.join(f), dir.join(f)).unwrap();
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(src.join("config.json")).unwrap()).unwrap();
    edit(&mut cfg);
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
    dir
}

/// `mtkit ARGS`: (exit code, stderr). An error is exit code 1; a panic would be 101, an abort
/// 134.
fn code(sb: &Sandbox, args: &[&str]) -> (i32, String) {
    let o = sb.run(args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn an_export_is_readable_by_other_users() {
    let sb = Sandbox::new();
    let (hf, _) = exported(&sb);
    use std::os::unix::fs::PermissionsExt;
    let umask = mtkit::util::paths::umask();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&hf), 0o777 & !umask, "the folder");
    for f in ["config.json", "model.safetensors", "tokenizer.json"] {
        assert_eq!(mode(&hf.join(f)) & 0o044, 0o044 & !umask, "{f}");
    }
    // As another user (root can act as `nobody`): the sandbox folder itself is private to its
    // owner, so it is opened up first.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIP: reading as another user needs root (setpriv)");
        return;
    }
    std::fs::set_permissions(sb.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "cat"])
        .arg(hf.join("config.json"))
        .output();
    let Ok(out) = out else {
        eprintln!("SKIP: no setpriv");
        return;
    };
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("gpt_neox"),
        "nobody cannot read the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn export_force_replaces_a_file_and_leaves_nothing_behind() {
    let sb = Sandbox::new();
    let (_, tok) = exported(&sb);
    sb.write("out/target", "an old file");
    let err = sb.fails(&[
        "model",
        "export",
        "run",
        "--to",
        "hf",
        "-o",
        "out/target",
        "--tokenizer",
        &tok,
    ]);
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    sb.ok(&[
        "model",
        "export",
        "run",
        "--to",
        "hf",
        "-o",
        "out/target",
        "--tokenizer",
        &tok,
        "--force",
    ]);
    assert!(sb.path("out/target/config.json").is_file());
    let names: Vec<String> = std::fs::read_dir(sb.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["target"], "left behind: {names:?}");
    // And over a folder, the same.
    sb.ok(&[
        "model",
        "export",
        "run",
        "--to",
        "hf",
        "-o",
        "out/target",
        "--tokenizer",
        &tok,
        "--force",
    ]);
    assert_eq!(std::fs::read_dir(sb.path("out")).unwrap().count(), 1);
}

#[test]
fn huge_shape_keys_are_errors_naming_the_key_before_anything_is_allocated() {
    let sb = Sandbox::new();
    let (hf, _) = exported(&sb);
    let cases: &[(&str, serde_json::Value)] = &[
        ("hidden_size", serde_json::json!(999_999_999i64)),
        (
            "intermediate_size",
            serde_json::json!(1_000_000_000_000_000i64),
        ),
        ("vocab_size", serde_json::json!(1i64 << 40)),
        ("num_hidden_layers", serde_json::json!(1_000_000_000_000i64)),
    ];
    for (key, value) in cases {
        let dir = with_config(&sb, &hf, key, |c| c[*key] = value.clone());
        let d = dir.to_str().unwrap();
        for args in [
            vec!["model", "generate", d, "--prompt-ids", "1,2"],
            vec!["model", "export", d, "--to", "hf", "-o", "never"],
        ] {
            let (rc, err) = code(&sb, &args);
            assert_eq!(rc, 1, "{key} {args:?}: exit {rc}: {err}");
            assert!(err.contains(&format!("`{key}` is {value}")), "{key}: {err}");
            assert!(
                !err.contains("panicked") && !err.contains("memory allocation"),
                "{err}"
            );
        }
        // The same folder as a run's starting point.
        sb.write(
            &format!("init-{key}.toml"),
            format!(
                "[run]\nname = \"i\"\ninit = \"{d}\"\ndata = \"tokens\"\n[[phases]]\nname = \"p\"\nkind = \"pretrain\"\nsteps = 1\nbatch_size = 1\nseq_len = 8\nmixture = {{ a = 1.0 }}\nschedule = {{ lr = 1e-3 }}\n"
            ),
        );
        let (rc, err) = code(
            &sb,
            &[
                "train",
                &format!("init-{key}.toml"),
                "--out",
                &format!("r-{key}"),
                "--device",
                "cpu",
                "-q",
            ],
        );
        assert_eq!(rc, 1, "train --init {key}: exit {rc}: {err}");
        assert!(err.contains(&format!("`{key}` is {value}")), "{key}: {err}");
    }
}

#[test]
fn keys_that_make_no_model_and_damaged_folders_are_refused_by_name() {
    let sb = Sandbox::new();
    let (hf, _) = exported(&sb);
    let gen = |dir: &Path| {
        code(
            &sb,
            &[
                "model",
                "generate",
                dir.to_str().unwrap(),
                "--prompt-ids",
                "1",
            ],
        )
    };
    let eps = with_config(&sb, &hf, "eps", |c| {
        c["layer_norm_eps"] = serde_json::json!(-1)
    });
    let (rc, err) = gen(&eps);
    assert!(
        rc == 1 && err.contains("`layer_norm_eps` is -1; it must be above 0"),
        "{err}"
    );
    let rot = with_config(&sb, &hf, "rot", |c| {
        c["rotary_pct"] = serde_json::json!(0.5)
    });
    let (_, err) = gen(&rot);
    assert!(
        err.contains("`rope_parameters.partial_rotary_factor` is 0.25 but `rotary_pct` is 0.5"),
        "{err}"
    );
    let pos = with_config(&sb, &hf, "pos", |c| {
        c["max_position_embeddings"] = serde_json::json!(0)
    });
    let (_, err) = gen(&pos);
    assert!(err.contains("`max_position_embeddings` is 0"), "{err}");
    let arr = with_config(&sb, &hf, "arr", |_| {});
    std::fs::write(arr.join("config.json"), "[1, 2, 3]").unwrap();
    let (_, err) = gen(&arr);
    assert!(err.contains("is an array, not a JSON object"), "{err}");
    std::fs::write(
        arr.join("config.json"),
        r#"{"model_type": "gpt_neox", "hidden_size": 1e999}"#,
    )
    .unwrap();
    let (_, err) = gen(&arr);
    assert!(
        err.contains("not valid JSON") && err.contains("number out of range"),
        "{err}"
    );
    // A weight map that leads out of the folder.
    let idx = with_config(&sb, &hf, "idx", |_| {});
    std::fs::remove_file(idx.join("model.safetensors")).unwrap();
    std::fs::write(
        idx.join("model.safetensors.index.json"),
        r#"{"weight_map": {"gpt_neox.embed_in.weight": "../../../etc/passwd"}}"#,
    )
    .unwrap();
    let (rc, err) = gen(&idx);
    assert!(
        rc == 1 && err.contains("\"../../../etc/passwd\", which leaves the folder"),
        "{err}"
    );
    // model.safetensors a link to itself.
    let link = with_config(&sb, &hf, "link", |_| {});
    std::fs::remove_file(link.join("model.safetensors")).unwrap();
    std::os::unix::fs::symlink("model.safetensors", link.join("model.safetensors")).unwrap();
    let (_, err) = gen(&link);
    assert!(
        err.contains("cannot read") && err.contains("model.safetensors") && !err.contains("has no"),
        "{err}"
    );
    // Truncated weights: named as such, no Debug text of the safetensors crate.
    let cut = with_config(&sb, &hf, "cut", |_| {});
    let bytes = std::fs::read(cut.join("model.safetensors")).unwrap();
    for keep in [4, 100, bytes.len() / 2] {
        std::fs::write(cut.join("model.safetensors"), &bytes[..keep]).unwrap();
        let (rc, err) = gen(&cut);
        assert!(
            rc == 1 && err.contains("is truncated or damaged"),
            "{keep}: {err}"
        );
        assert!(
            !err.contains("MetadataIncompleteBuffer") && !err.contains("ValidationOverflow"),
            "{err}"
        );
    }
}

#[test]
fn generate_keeps_within_the_models_context() {
    let sb = Sandbox::new();
    let (hf, _) = exported(&sb);
    let small = with_config(&sb, &hf, "small", |c| {
        c["max_position_embeddings"] = serde_json::json!(24)
    });
    let d = small.to_str().unwrap();
    let long: Vec<String> = (0..30).map(|i| (i % 20 + 1).to_string()).collect();
    let err = sb.fails(&["model", "generate", d, "--prompt-ids", &long.join(",")]);
    assert!(
        err.contains("the prompt has 30 ids, which fill the model's context of 24 positions"),
        "{err}"
    );
    // Asking for 10^11 new ids: cut to the context, with a note.
    let o = sb.run(&[
        "model",
        "generate",
        d,
        "--prompt-ids",
        "1,2,3,4",
        "--max-new-tokens",
        "100000000000",
        "--no-eos",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let ids: Vec<&str> = std::str::from_utf8(&o.stdout)
        .unwrap()
        .trim()
        .split(',')
        .collect();
    assert_eq!(ids.len(), 20, "24 positions minus a 4-id prompt");
    assert!(String::from_utf8_lossy(&o.stderr).contains("generating at most 20 ids"));
    // A prompt from a file gives what the same ids on the command line give.
    sb.write("prompt.txt", "1, 2\n3\t4\n");
    let from_file = sb.ok(&[
        "model",
        "generate",
        d,
        "--prompt-ids-file",
        "prompt.txt",
        "--max-new-tokens",
        "5",
    ]);
    let inline = sb.ok(&[
        "model",
        "generate",
        d,
        "--prompt-ids",
        "1,2,3,4",
        "--max-new-tokens",
        "5",
    ]);
    assert_eq!(from_file, inline);
    sb.write("bad.txt", "1 2 x3");
    let err = sb.fails(&["model", "generate", d, "--prompt-ids-file", "bad.txt"]);
    assert!(
        err.contains("bad.txt: `x3` (id 3 of the file) is not an integer token id"),
        "{err}"
    );
    let err = sb.fails(&["model", "generate", d, "--prompt-ids", "1,999999"]);
    assert!(
        err.contains("999999 (id 2 of the prompt) is not an id of the model's vocabulary"),
        "{err}"
    );
}
