//! The trainer through the real binary and library: presets, loss, resume, sampler, masking.

// The integration-test helpers of the mtkit package, shared.
#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;
use std::path::Path;

use mtkit::export::run_config::RunConfig;
use mtkit_train::model::{pad_vocab, ModelSpec, PRESETS};
use mtkit_train::trainer::{sft_tensors, Trainer};
use tch::{nn, Device, Tensor};

/// Published Pythia parameter counts (EleutherAI's Pythia model table), vocabulary 50,304.
#[test]
fn preset_parameter_counts() {
    let published = [
        ("pythia-14m", 14_067_712i64, 1_189_888i64),
        ("pythia-70m", 70_426_624, 18_915_328),
        ("pythia-160m", 162_322_944, 85_056_000),
        ("pythia-410m", 405_334_016, 302_311_424),
        ("pythia-1b", 1_011_781_632, 805_736_448),
    ];
    for (name, total, non_emb) in published {
        assert_eq!(
            ModelSpec::preset(name, 50_280).unwrap().param_counts(),
            (total, non_emb),
            "{name}"
        );
    }
    // Second method: count the tensors a built model holds (the small presets).
    for (name, ..) in PRESETS
        .iter()
        .filter(|p| ["tiny", "small", "pythia-14m", "pythia-70m"].contains(&p.0))
    {
        let spec = ModelSpec::preset(name, 50_280).unwrap();
        let vs = nn::VarStore::new(Device::Cpu);
        let _m = mtkit_train::model::GptNeox::new(&vs, spec.clone());
        let vars = vs.variables();
        let total: i64 = vars.values().map(|t| t.numel() as i64).sum();
        let emb: i64 = vars
            .iter()
            .filter(|(k, _)| k.starts_with("embed_"))
            .map(|(_, t)| t.numel() as i64)
            .sum();
        assert_eq!((total, total - emb), spec.param_counts(), "{name}");
    }
    let (tiny_total, tiny_non_emb) = ModelSpec::preset("tiny", 50_280).unwrap().param_counts();
    assert!(
        (1_000_000..=3_000_000).contains(&tiny_non_emb),
        "tiny: {tiny_non_emb} of {tiny_total}"
    );
    assert_eq!(pad_vocab(50_280), 50_304);
    let sb = Sandbox::new();
    let out = sb.ok(&["model", "info", "pythia-70m"]);
    assert!(
        out.contains("70426624") && out.contains("18915328"),
        "{out}"
    );
}

const RUN: &str = r#"
[run]
name = "t"
preset = "tiny"
seed = 5
data = "tokens"
validation = ["q", "a"]
eval_every = 3
eval_tokens = 512
checkpoint_every = 3

[[phases]]
name = "pre"
kind = "pretrain"
steps = 4
batch_size = 4
seq_len = 16
mixture = { a = 1.0 }
schedule = { lr = 3e-3, min_lr = 3e-4, warmup = 1, total_steps = 8 }

[[phases]]
name = "mid"
kind = "midtrain"
steps = 4
mixture = { a = 0.5, b = 0.5 }
schedule = "continue"

[[phases]]
name = "sft"
kind = "sft"
steps = 4
source = "q"
schedule = { lr = 1e-3, warmup = 1 }
"#;

/// The rows of a metrics.csv without its two timing columns (wall-clock and step tokens/s),
/// which differ from run to run.
fn untimed(metrics: &str) -> Vec<String> {
    metrics
        .lines()
        .map(|l| l.rsplitn(3, ',').nth(2).unwrap().to_string())
        .collect()
}

fn params_of(path: &Path) -> Vec<(String, Tensor)> {
    let mut v: Vec<(String, Tensor)> = Tensor::read_safetensors(path)
        .unwrap()
        .into_iter()
        .filter(|(n, _)| n.starts_with("param.") || n.starts_with("adam_"))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn last_checkpoint(dir: &Path) -> std::path::PathBuf {
    let mut v: Vec<_> = std::fs::read_dir(dir.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.pop().unwrap()
}

#[test]
fn stop_and_resume_gives_the_same_weights_as_a_straight_run() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    sb.write("run.toml", RUN);
    let out = sb.ok(&[
        "train", "run.toml", "--out", "straight", "--device", "cpu", "--quiet",
    ]);
    assert!(out.contains("done: 12 steps"), "{out}");
    // Stop inside the midtraining phase, then resume through SFT.
    let out = sb.ok(&[
        "train",
        "run.toml",
        "--out",
        "resumed",
        "--device",
        "cpu",
        "--quiet",
        "--stop-after",
        "6",
    ]);
    assert!(out.contains("stopped after step 6"), "{out}");
    sb.ok(&[
        "train", "run.toml", "--out", "resumed", "--device", "cpu", "--quiet", "--resume",
    ]);
    let a = params_of(&last_checkpoint(&sb.path("straight")));
    let b = params_of(&last_checkpoint(&sb.path("resumed")));
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 10);
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs after resume");
    }
    // The run folder has what it promises.
    for f in ["config.toml", "metrics.csv", "summary.json"] {
        assert!(sb.path("resumed").join(f).exists(), "{f}");
    }
    let metrics = std::fs::read_to_string(sb.path("resumed/metrics.csv")).unwrap();
    // Same rows as the straight run, but for the timing columns (tokens/s).
    assert_eq!(
        untimed(&metrics),
        untimed(&std::fs::read_to_string(sb.path("straight/metrics.csv")).unwrap())
    );
    let header = metrics.lines().next().unwrap();
    assert_eq!(
        header,
        "step,phase,tokens,lr,train_loss,val_q,val_a,tokens_per_s,step_tokens_per_s"
    );
    let steps: Vec<&str> = metrics
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(
        steps,
        ["3", "4", "6", "8", "9", "12"],
        "every 3 steps and at each phase end"
    );
    // Without --resume an existing run folder is refused.
    let e = sb.fails(&[
        "train", "run.toml", "--out", "straight", "--device", "cpu", "--quiet",
    ]);
    assert!(e.contains("--resume"), "{e}");
}

#[test]
fn mixture_sampler_matches_weights_within_binomial_noise() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    sb.write(
        "mix.toml",
        "[run]\nname = \"m\"\npreset = \"tiny\"\ndata = \"tokens\"\neval_every = 1000\ncheckpoint_every = 1000\n\
         [[phases]]\nname = \"p\"\nkind = \"pretrain\"\nsteps = 10\nbatch_size = 100\nseq_len = 4\nmixture = { a = 0.3, b = 0.7 }\nschedule = { lr = 1e-3 }\n",
    );
    sb.ok(&[
        "train", "mix.toml", "--out", "m", "--device", "cpu", "--quiet",
    ]);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sb.path("m/summary.json")).unwrap()).unwrap();
    let n = 1000.0; // sequences drawn
    let got_a = s["tokens_delivered"]["a"].as_f64().unwrap() / 4.0;
    let got_b = s["tokens_delivered"]["b"].as_f64().unwrap() / 4.0;
    assert_eq!(got_a + got_b, n);
    let sd = (n * 0.3 * 0.7f64).sqrt();
    assert!(
        (got_a - 0.3 * n).abs() < 4.0 * sd,
        "{got_a} sequences from a, expected {} ± {:.1}",
        0.3 * n,
        4.0 * sd
    );
    assert_eq!(s["tokens_requested"]["a"].as_f64().unwrap(), 0.3 * n * 4.0);
}

#[test]
fn sft_masks_prompt_tokens_and_padding() {
    let sb = Sandbox::new();
    let vocab = ["p1", "p2", "r1", "r2", "r3", "<|endoftext|>"];
    let tok = sb.word_tokenizer("tok.json", &vocab).display().to_string();
    sb.write("q.jsonl", "{\"q\":\"p1 p2\",\"a\":\"r1 r2 r3\"}\n");
    let cat = sb.write("cat.toml", "[datasets.q]\nrole = \"target\"\npaths = [\"q.jsonl\"]\ntext = \"{q} {a}\"\nprompt = \"{q}\"\nresponse = \"{a}\"\n").display().to_string();
    sb.ok(&[
        "tokenize",
        "q",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "-o",
        "tokens",
        "--val-docs",
        "0",
        "--quiet",
    ]);
    let split = mtkit::export::tokens::Split::open(&sb.path("tokens/q"), "train").unwrap();
    // By hand: ids p1=1 p2=2 r1=3 r2=4 r3=5 EOS=6; the example is [1 2 3 4 5 6], prompt 2.
    assert_eq!(split.doc(0), (0, 6, 2));
    let (x, y, scored) = sft_tensors(&split, &[split.doc(0)], 8);
    assert_eq!(
        Vec::<i64>::try_from(x.view([-1])).unwrap(),
        [1, 2, 3, 4, 5, 6, 6, 6],
        "inputs, padded with EOS"
    );
    // Target j is token j+1: p2 (prompt) masked; r1 r2 r3 EOS scored; padding masked.
    assert_eq!(
        Vec::<i64>::try_from(y.view([-1])).unwrap(),
        [-100, 3, 4, 5, 6, -100, -100, -100]
    );
    assert_eq!(scored, 4);
    // Cut to a shorter sequence.
    let (_, y, _) = sft_tensors(&split, &[split.doc(0)], 3);
    assert_eq!(Vec::<i64>::try_from(y.view([-1])).unwrap(), [-100, 3, 4]);
}

#[test]
fn equal_logits_score_ln_vocab() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    let path = sb.write("run.toml", RUN);
    let (cfg, data) = RunConfig::load(&path).unwrap();
    let t = Trainer::new(cfg, &data, &sb.path("eq"), Device::Cpu, false).unwrap();
    tch::no_grad(|| {
        let _ = t.model.embed_out_weight().shallow_clone().zero_();
    });
    let want = (t.model.spec.vocab as f64).ln();
    assert_eq!(t.model.spec.vocab, 128);
    for v in ["a", "q"] {
        let got = t.evaluate(v, 16, 4).unwrap();
        assert!((got - want).abs() < 1e-5, "{v}: {got} vs ln(128) = {want}");
    }
}

#[test]
fn loss_falls_on_a_real_corpus() {
    let Some(cat) = shared_catalog() else { return };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    sb.ok(&[
        "tokenize",
        "c4",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        tok.to_str().unwrap(),
        "-o",
        "tokens",
        "--max-docs",
        "300",
        "--val-docs",
        "20",
        "--quiet",
    ]);
    sb.write(
        "c4.toml",
        "[run]\nname = \"c4\"\npreset = \"tiny\"\ndata = \"tokens\"\nvalidation = [\"c4\"]\neval_every = 2\neval_tokens = 1024\ncheckpoint_every = 100\n\
         [[phases]]\nname = \"p\"\nkind = \"pretrain\"\nsteps = 16\nbatch_size = 4\nseq_len = 32\nmixture = { c4 = 1.0 }\nschedule = { lr = 3e-3, min_lr = 3e-4, warmup = 2 }\n",
    );
    sb.ok(&[
        "train", "c4.toml", "--out", "r", "--device", "cpu", "--quiet",
    ]);
    let m = std::fs::read_to_string(sb.path("r/metrics.csv")).unwrap();
    let val: Vec<f64> = m
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(5).unwrap().parse().unwrap())
        .collect();
    assert!(val[0] > 9.0, "starts near ln(50304) ≈ 10.8: {val:?}");
    assert!(
        *val.last().unwrap() < val[0] - 1.5,
        "validation loss falls: {val:?}"
    );
}

#[test]
fn bad_run_configs_fail_clearly() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    sb.write(
        "bad.toml",
        RUN.replace(
            "mixture = { a = 0.5, b = 0.5 }",
            "mixture = { a = 0.5, b = 0.4 }",
        ),
    );
    assert!(sb
        .fails(&["train", "bad.toml", "--device", "cpu"])
        .contains("phase 2 (`mid`): mixture weights sum to 0.9"));
    sb.write(
        "bad2.toml",
        RUN.replace("mixture = { a = 1.0 }", "mixture = { zzz = 1.0 }"),
    );
    assert!(sb
        .fails(&["train", "bad2.toml", "--device", "cpu"])
        .contains("source `zzz`: no tokenized corpus"));
    sb.write(
        "bad3.toml",
        RUN.replace("preset = \"tiny\"", "preset = \"huge\""),
    );
    assert!(sb
        .fails(&["train", "bad3.toml", "--device", "cpu"])
        .contains("unknown model preset `huge`"));
    sb.write(
        "bad4.toml",
        RUN.replace("seq_len = 16", "seq_len = 16\nlearning_rate = 1"),
    );
    assert!(sb
        .fails(&["train", "bad4.toml", "--device", "cpu"])
        .contains("unknown field `learning_rate`"));
}

/// A token shard whose training split holds no tokens is a clear error naming the corpus,
/// not a panic (issue 13, bug 6).
#[test]
fn an_empty_training_split_is_a_clear_error() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    // The same header with a token count of 0, and no documents.
    let tokens = sb.path("tokens/a/train.tokens");
    let mut header = std::fs::read(&tokens).unwrap()[..32].to_vec();
    header[24..32].copy_from_slice(&0u64.to_le_bytes());
    std::fs::write(&tokens, header).unwrap();
    std::fs::write(sb.path("tokens/a/train.docs"), b"").unwrap();
    sb.write("run.toml", RUN);
    let o = sb.run(&["train", "run.toml", "--device", "cpu", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "an error, not a panic: {err}");
    assert!(
        err.contains("source `a`: the training split") && err.contains("holds no tokens"),
        "{err}"
    );
}

/// The run's checkpoint steps, sorted.
fn checkpoint_steps(run: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().to_string_lossy().to_string();
            n.strip_prefix("step-")?
                .strip_suffix(".safetensors")?
                .parse()
                .ok()
        })
        .collect();
    v.sort();
    v
}

fn assert_same_tensors(a: &Path, b: &Path) {
    let (a, b) = (params_of(a), params_of(b));
    assert_eq!(a.len(), b.len());
    assert!(a.len() > 10);
    for ((na, ta), (nb, tb)) in a.iter().zip(&b) {
        assert_eq!(na, nb);
        assert!(ta.equal(tb), "{na} differs");
    }
}

/// An SFT whose seq_len is no longer than the target's prompts has no token to score: the run
/// is refused before training, naming the cause, instead of a NaN loss and "lower the
/// learning rate" (issue 13, bug 3).
#[test]
fn sft_with_prompts_filling_the_window_is_refused_with_the_cause() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    // q's prompts are 5 words, so 5 tokens: at seq_len 5 the window holds the prompt and
    // one target past it (targets are tokens 1..=5, the 5th is the first response token);
    // at seq_len 4 none.
    let run = RUN.replace(
        "source = \"q\"\n",
        "source = \"q\"\nseq_len = 4\nbatch_size = 2\n",
    );
    sb.write(
        "short.toml",
        run.replace("validation = [\"q\", \"a\"]", "validation = [\"a\"]"),
    );
    let e = sb.fails(&["train", "short.toml", "--out", "s", "--device", "cpu", "-q"]);
    assert!(
        e.contains("phase 3 (`sft`)")
            && e.contains(
                "none of the 100 training examples of `q` has a response token within seq_len 4"
            )
            && e.contains("shortest prompt is 5 tokens")
            && !e.contains("learning rate"),
        "{e}"
    );
    // The same with `epochs` (the step count is derived from the usable examples).
    sb.write(
        "short-epochs.toml",
        run.replace("validation = [\"q\", \"a\"]", "validation = [\"a\"]")
            .replace("steps = 4\nsource", "epochs = 1\nsource"),
    );
    let e = sb.fails(&[
        "train",
        "short-epochs.toml",
        "--out",
        "s2",
        "--device",
        "cpu",
        "-q",
    ]);
    assert!(e.contains("has a response token within seq_len 4"), "{e}");
    // One token more and every example has its first response token scored.
    let ok = RUN.replace(
        "source = \"q\"\n",
        "source = \"q\"\nseq_len = 5\nbatch_size = 2\n",
    );
    sb.write(
        "five.toml",
        ok.replace("validation = [\"q\", \"a\"]", "validation = [\"a\"]"),
    );
    let out = sb.ok(&["train", "five.toml", "--out", "f", "--device", "cpu", "-q"]);
    assert!(out.contains("done: 12 steps"), "{out}");
}

/// Examples whose prompt fills the window are skipped and counted; the others train.
#[test]
fn sft_skips_and_counts_examples_whose_prompt_fills_the_window() {
    let sb = Sandbox::new();
    let (_, tok) = word_corpora(&sb);
    // Prompts of k = 1..8 words (15 examples each), responses of 3: with EOS an example is
    // k + 4 tokens. At seq_len 5 an example keeps a scored target iff min(k + 4, 6) > k,
    // i.e. k ≤ 5: the 45 examples with k = 6, 7, 8 have none.
    let v: Vec<String> = (0..120)
        .map(|i| {
            let k = 1 + i % 8;
            let q: Vec<String> = (0..k).map(|j| format!("w{}", 20 + (i + j) % 5)).collect();
            serde_json::json!({"q": q.join(" "), "a": format!("w25 w{} w27", 26 + i % 3)})
                .to_string()
        })
        .collect();
    sb.write("v.jsonl", v.join("\n"));
    sb.write(
        "cat-v.toml",
        "[datasets.v]\nrole = \"target\"\npaths = [\"v.jsonl\"]\ntext = \"{q} {a}\"\nprompt = \"{q}\"\nresponse = \"{a}\"\n",
    );
    sb.ok(&[
        "tokenize",
        "v",
        "--catalog",
        "cat-v.toml",
        "--tokenizer",
        &tok,
        "-o",
        "tokens",
        "--val-docs",
        "20",
        "--quiet",
    ]);
    let train = mtkit::export::tokens::Split::open(&sb.path("tokens/v"), "train").unwrap();
    let val = mtkit::export::tokens::Split::open(&sb.path("tokens/v"), "val").unwrap();
    let long =
        |s: &mtkit::export::tokens::Split| (0..s.n_docs()).filter(|&k| s.doc(k).2 >= 6).count();
    assert_eq!(long(&train) + long(&val), 45, "prompt lengths as written");
    let run = RUN
        .replace(
            "source = \"q\"\n",
            "source = \"v\"\nseq_len = 5\nbatch_size = 2\n",
        )
        .replace("validation = [\"q\", \"a\"]", "validation = [\"v\", \"a\"]");
    sb.write("v.toml", run);
    let o = sb.run(&["train", "v.toml", "--out", "r", "--device", "cpu", "-q"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "{} of 100 examples of `v` have no response token within seq_len 5",
            long(&train)
        )) && err.contains("skipped"),
        "{err}"
    );
    let metrics = std::fs::read_to_string(sb.path("r/metrics.csv")).unwrap();
    for line in metrics.lines().skip(1) {
        let loss: f64 = line.split(',').nth(4).unwrap().parse().unwrap();
        assert!(loss.is_finite(), "{line}");
    }
}

/// A validation set that would have no scored tokens is refused before the first step, not
/// at the first evaluation after steps and checkpoints (issue 13, bug 9).
#[test]
fn a_validation_set_without_scored_tokens_is_refused_before_training() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    // q (prompts of 5 tokens) evaluated at the pretraining seq_len of 4.
    sb.write(
        "run.toml",
        RUN.replace("seq_len = 16", "seq_len = 4")
            .replace("source = \"q\"\n", "source = \"q\"\nseq_len = 16\n"),
    );
    let e = sb.fails(&["train", "run.toml", "--out", "r", "--device", "cpu", "-q"]);
    assert!(
        e.contains("validation set `q` has no scored tokens at seq_len 4 (phase `pre`)")
            && e.contains("shortest prompt is 5 tokens"),
        "{e}"
    );
    assert!(!sb.path("r/metrics.csv").exists());
    let none = !sb.path("r/checkpoints").exists() || checkpoint_steps(&sb.path("r")).is_empty();
    assert!(none, "no step was trained");
}

/// Retention: the last `keep_checkpoints` (default 2) and every phase end stay; 0 keeps all
/// (issue 13, bug 13).
#[test]
fn checkpoint_retention_keeps_the_last_two_and_phase_ends() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    let every_step = RUN.replace("checkpoint_every = 3", "checkpoint_every = 1");
    sb.write("run.toml", &every_step);
    sb.ok(&["train", "run.toml", "--out", "r", "--device", "cpu", "-q"]);
    // Phases of 4 steps: ends at 4, 8, 12; the last two are 11 and 12.
    assert_eq!(checkpoint_steps(&sb.path("r")), [4, 8, 11, 12]);
    sb.write(
        "all.toml",
        every_step.replace(
            "checkpoint_every = 1",
            "checkpoint_every = 1\nkeep_checkpoints = 0",
        ),
    );
    sb.ok(&["train", "all.toml", "--out", "all", "--device", "cpu", "-q"]);
    assert_eq!(
        checkpoint_steps(&sb.path("all")),
        (1..=12).collect::<Vec<_>>()
    );
    sb.write(
        "one.toml",
        every_step.replace(
            "checkpoint_every = 1",
            "checkpoint_every = 1\nkeep_checkpoints = 1",
        ),
    );
    sb.ok(&["train", "one.toml", "--out", "one", "--device", "cpu", "-q"]);
    assert_eq!(checkpoint_steps(&sb.path("one")), [4, 8, 12]);
    // The retained weights are those of the run: same final checkpoint either way.
    assert_same_tensors(
        &sb.path("r/checkpoints/step-00000012.safetensors"),
        &sb.path("all/checkpoints/step-00000012.safetensors"),
    );
}

/// A truncated latest checkpoint: --resume falls back to the one before, says so, and still
/// ends with the weights of an uninterrupted run (issue 13, bug 10).
#[test]
fn resume_falls_back_past_a_truncated_latest_checkpoint() {
    let sb = Sandbox::new();
    word_corpora(&sb);
    sb.write("run.toml", RUN);
    sb.ok(&[
        "train", "run.toml", "--out", "straight", "--device", "cpu", "-q",
    ]);
    sb.ok(&[
        "train",
        "run.toml",
        "--out",
        "r",
        "--device",
        "cpu",
        "-q",
        "--stop-after",
        "7",
    ]);
    // Checkpoints every 3 steps, at phase ends (4) and where it stopped (7); of those the
    // last two and the phase end are kept.
    assert_eq!(checkpoint_steps(&sb.path("r")), [4, 6, 7]);
    let latest = sb.path("r/checkpoints/step-00000007.safetensors");
    let bytes = std::fs::read(&latest).unwrap();
    std::fs::write(&latest, &bytes[..bytes.len() / 2]).unwrap();
    let o = sb.run(&[
        "train", "run.toml", "--out", "r", "--device", "cpu", "-q", "--resume",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("step-00000007.safetensors cannot be read")
            && err.contains("resuming from")
            && err.contains("step-00000006.safetensors"),
        "{err}"
    );
    assert_same_tensors(
        &last_checkpoint(&sb.path("straight")),
        &last_checkpoint(&sb.path("r")),
    );
    // With every checkpoint damaged, the error names the newest and why.
    for s in checkpoint_steps(&sb.path("r")) {
        let p = sb.path(&format!("r/checkpoints/step-{s:08}.safetensors"));
        std::fs::write(&p, b"not a checkpoint").unwrap();
    }
    let e = sb.fails(&[
        "train", "run.toml", "--out", "r", "--device", "cpu", "-q", "--resume",
    ]);
    assert!(
        e.contains("no checkpoint in") && e.contains("can be read"),
        "{e}"
    );
}

/// kill -9 at any moment, a checkpoint write included, then --resume: the final weights and
/// AdamW moments are bit-identical to an uninterrupted run's, and the killed writer's
/// temporary file is removed by the next write into its folder (issue 13, bug 10 and the
/// kill tests).
#[test]
fn kill_9_during_a_checkpoint_write_then_resume_is_bit_identical() {
    use std::time::{Duration, Instant};
    let sb = Sandbox::new();
    word_corpora(&sb);
    let every_step = RUN.replace("checkpoint_every = 3", "checkpoint_every = 1");
    sb.write("run.toml", &every_step);
    sb.ok(&[
        "train", "run.toml", "--out", "straight", "--device", "cpu", "-q",
    ]);

    // A leftover of an older mtkit (no writer in its name), a day and more old.
    std::fs::create_dir_all(sb.path("r/checkpoints")).unwrap();
    let legacy = sb.path("r/checkpoints/.ckptAb3xYz.part");
    std::fs::write(&legacy, b"partial").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&legacy)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(48 * 3600))
        .unwrap();
    std::fs::create_dir_all(sb.path("r/checkpoints")).unwrap();

    // First kill: while a checkpoint's temporary file is being written (after step 2 or later).
    let mut child = sb
        .cmd(&["train", "run.toml", "--out", "r", "--device", "cpu", "-q"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let ours = format!(".mtkit-{pid}@{}.", mtkit::util::paths::host_name());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut caught = None;
    while caught.is_none() && Instant::now() < deadline {
        if let Ok(rd) = std::fs::read_dir(sb.path("r/checkpoints")) {
            let done = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
                .count();
            if done >= 2 {
                caught = std::fs::read_dir(sb.path("r/checkpoints"))
                    .unwrap()
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().to_string())
                    .find(|n| n.contains(&ours) && n.ends_with(".part"));
            }
        }
        if caught.is_none() {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let caught = caught.expect("a checkpoint write in progress was seen within 2 minutes");
    assert!(
        sb.path("r/checkpoints").join(&caught).exists(),
        "the killed writer's temporary file is left behind"
    );

    // Second kill: at a moment of the loop, not chosen (once metrics have grown by a row).
    let rows = |p: &Path| {
        std::fs::read_to_string(p)
            .map(|s| s.lines().count())
            .unwrap_or(0)
    };
    let before = rows(&sb.path("r/metrics.csv"));
    let mut child = sb
        .cmd(&[
            "train", "run.toml", "--out", "r", "--device", "cpu", "-q", "--resume",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while rows(&sb.path("r/metrics.csv")) <= before && Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    child.wait().unwrap();

    // Resume to the end.
    sb.ok(&[
        "train", "run.toml", "--out", "r", "--device", "cpu", "-q", "--resume",
    ]);
    assert_same_tensors(
        &sb.path("straight/checkpoints/step-00000012.safetensors"),
        &sb.path("r/checkpoints/step-00000012.safetensors"),
    );
    let leftovers: Vec<String> = std::fs::read_dir(sb.path("r/checkpoints"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".part"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "stale temporary files remain: {leftovers:?}"
    );
    // Same metrics as the straight run but for the timing columns.
    let metrics = |p: &str| untimed(&std::fs::read_to_string(sb.path(p)).unwrap());
    assert_eq!(metrics("r/metrics.csv"), metrics("straight/metrics.csv"));
}
