//! `mtkit verify`: the grid, prefix reuse counted in training steps, runs.csv, skipping.

// The integration-test helpers of the mtkit package, shared.
#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

fn setup(sb: &Sandbox) -> (String, String) {
    let words: Vec<String> = (0..12)
        .map(|i| format!("w{i}"))
        .chain(["<|endoftext|>".to_string()])
        .collect();
    let refs: Vec<&str> = words.iter().map(|s| s.as_str()).collect();
    let tok = sb.word_tokenizer("tok.json", &refs).display().to_string();
    let doc = |lo: usize, k: usize| -> String {
        (0..30)
            .map(|j| format!("w{}", lo + (j * 7 + k) % 4))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (name, lo) in [("g", 0), ("a", 4), ("b", 8)] {
        let docs: Vec<String> = (0..60).map(|k| doc(lo, k)).collect();
        sb.jsonl(
            &format!("{name}.jsonl"),
            &docs.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        );
    }
    let t1: Vec<String> = (0..60)
        .map(|k| {
            serde_json::json!({"q": doc(4, k)[..8].to_string(), "a": doc(4, k + 1)}).to_string()
        })
        .collect();
    sb.write("t1.jsonl", t1.join("\n"));
    sb.jsonl(
        "t2.jsonl",
        &(0..60)
            .map(|k| doc(8, k))
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>(),
    );
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.g]\nrole = \"pretrain\"\npaths = [\"g.jsonl\"]\n[datasets.a]\nrole = \"midtrain\"\npaths = [\"a.jsonl\"]\n\
             [datasets.b]\nrole = \"midtrain\"\npaths = [\"b.jsonl\"]\n\
             [datasets.t1]\nrole = \"target\"\npaths = [\"t1.jsonl\"]\ntext = \"{q} {a}\"\nprompt = \"{q}\"\nresponse = \"{a}\"\n\
             [datasets.t2]\nrole = \"target\"\npaths = [\"t2.jsonl\"]\n",
        )
        .display()
        .to_string();
    sb.write(
        "plan.toml",
        "[plan]\nname = \"t\"\npreset = \"tiny\"\nseeds = [1, 2]\ndata = \"tokens\"\npretrain = \"g\"\ntotal_steps = 8\nbatch_size = 2\nseq_len = 16\nlr = 3e-3\nwarmup = 1\neval_tokens = 256\nval_docs = 10\n\
         [[midtrain]]\nmix = \"a\"\nweight = 0.5\nstart = 4\n[[midtrain]]\nmix = \"b\"\nweight = 0.25\nstart = 4\n[[cpt]]\nmix = \"a\"\nstart = 4\n\
         [[targets]]\nname = \"t1\"\nsteps = 3\nlr = 1e-3\n[[targets]]\nname = \"t2\"\nsteps = 3\nlr = 1e-3\n",
    );
    (cat, tok)
}

#[test]
fn prefix_reuse_counts_and_runs_table() {
    let sb = Sandbox::new();
    let (cat, tok) = setup(&sb);
    // By hand, per seed (S = 8, start t = 4, SFT k = 3, 4 variants, 2 targets): the prefix
    // t once, each variant's S − t once, every (variant, target) SFT: 4 + 4·4 + 8·3 = 44.
    // Two seeds: 88. Without reuse: 16 runs × (8 + 3) = 176.
    let out = sb.ok(&[
        "verify",
        "plan.toml",
        "--out",
        "v",
        "--dry-run",
        "--catalog",
        &cat,
    ]);
    assert!(
        out.contains("16 runs; 88 training steps to execute (176 without prefix reuse)"),
        "{out}"
    );
    let o = sb
        .cmd(&[
            "verify",
            "plan.toml",
            "--out",
            "v",
            "--device",
            "cpu",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let trained: u64 = err
        .lines()
        .filter_map(|l| l.split(": trained ").nth(1))
        .map(|s| s.split_whitespace().next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(trained, 88, "{err}");
    let (header, rows) = parse_csv(&std::fs::read_to_string(sb.path("v/runs.csv")).unwrap());
    assert_eq!(
        header,
        [
            "preset",
            "mix",
            "weight",
            "start_step",
            "start_frac",
            "kind",
            "target",
            "seed",
            "target_loss",
            "general_loss",
            "tokens",
            "pa",
            "ri"
        ]
    );
    assert_eq!(rows.len(), 16);
    for r in rows.iter().filter(|r| r[5] == "base") {
        assert_eq!(r[11].parse::<f64>().unwrap(), 0.0, "base PA");
        assert_eq!(r[12].parse::<f64>().unwrap(), 0.0, "base RI");
    }
    // RI = (L_base − L) / L_base against the same seed and target, recomputed here.
    for r in &rows {
        let base = rows
            .iter()
            .find(|b| b[5] == "base" && b[6] == r[6] && b[7] == r[7])
            .unwrap();
        let (lb, l) = (
            base[8].parse::<f64>().unwrap(),
            r[8].parse::<f64>().unwrap(),
        );
        assert!((r[12].parse::<f64>().unwrap() - (lb - l) / lb).abs() < 1e-12);
    }
    // Midtraining with `a` moves the mixture toward t1 (PA > 0); cpt on `a` more so.
    let pa = |kind: &str, mix: &str| {
        rows.iter()
            .find(|r| r[5] == kind && r[1] == mix && r[6] == "t1")
            .unwrap()[11]
            .parse::<f64>()
            .unwrap()
    };
    assert!(pa("midtrain", "a") > 0.0 && pa("cpt", "a") > pa("midtrain", "a"));
    // A second run skips every finished run and trains nothing.
    let o = sb
        .cmd(&[
            "verify",
            "plan.toml",
            "--out",
            "v",
            "--device",
            "cpu",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && err.matches("finished earlier, skipped").count() == 16,
        "{err}"
    );
    // The runs table feeds the reports.
    sb.ok(&["report", "regress", "v/runs.csv", "--by", "target"]);
    sb.ok(&["report", "table", "v/runs.csv"]);
}

#[test]
fn bad_plans_fail_clearly() {
    let sb = Sandbox::new();
    let (cat, tok) = setup(&sb);
    let plan = std::fs::read_to_string(sb.path("plan.toml")).unwrap();
    sb.write("p1.toml", plan.replace("mix = \"b\"", "mix = \"nope\""));
    let e = sb.fails(&[
        "verify",
        "p1.toml",
        "--out",
        "x",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
    ]);
    assert!(e.contains("unknown corpus `nope`"), "{e}");
    sb.write(
        "p2.toml",
        plan.replace("preset = \"tiny\"", "preset = \"giant\""),
    );
    assert!(sb
        .fails(&["verify", "p2.toml", "--dry-run"])
        .contains("unknown model preset `giant`"));
    sb.write("p3.toml", plan.replace("weight = 0.25\n", ""));
    assert!(sb
        .fails(&["verify", "p3.toml", "--dry-run"])
        .contains("needs a weight"));
    sb.write(
        "p4.toml",
        plan.replace("start = 4\n[[cpt]]", "start = 9\n[[cpt]]"),
    );
    assert!(sb
        .fails(&["verify", "p4.toml", "--dry-run"])
        .contains("must be between 1 and total_steps"));
    // Every float of a plan is checked (issue 13, bug 7): NaN and infinities by name.
    for (from, to, want) in [
        ("lr = 3e-3\n", "lr = nan\n", "[plan] lr is NaN"),
        ("lr = 3e-3\n", "lr = inf\n", "[plan] lr is inf"),
        (
            "lr = 3e-3\n",
            "lr = 3e-3\nmin_lr = -inf\n",
            "[plan] min_lr is -inf",
        ),
        (
            "steps = 3\nlr = 1e-3\n[[targets]]",
            "steps = 3\nlr = nan\n[[targets]]",
            "target `t1`: lr is NaN",
        ),
        (
            "weight = 0.25\n",
            "weight = nan\n",
            "needs a weight between 0 and 1",
        ),
        (
            "weight = 0.25\n",
            "weight = inf\n",
            "needs a weight between 0 and 1",
        ),
    ] {
        assert!(plan.contains(from), "{from}");
        sb.write("p5.toml", plan.replacen(from, to, 1));
        let e = sb.fails(&["verify", "p5.toml", "--dry-run"]);
        assert!(e.contains(want), "{to}: {e}");
    }
}

/// A verification grid killed (-9) in the middle of a run, after its first phase checkpoint,
/// and continued with --resume writes the same runs.csv, byte for byte, as an uninterrupted
/// grid (issue 13, kill tests).
#[test]
fn a_grid_killed_mid_run_and_resumed_writes_the_same_runs_table() {
    use std::time::{Duration, Instant};
    let sb = Sandbox::new();
    let (cat, tok) = setup(&sb);
    // One seed: 8 runs.
    let plan = std::fs::read_to_string(sb.path("plan.toml"))
        .unwrap()
        .replace("seeds = [1, 2]", "seeds = [1]");
    sb.write("plan.toml", plan);
    let args = |out: &'static str| {
        vec![
            "verify".to_string(),
            "plan.toml".into(),
            "--out".into(),
            out.into(),
            "--device".into(),
            "cpu".into(),
            "--catalog".into(),
            cat.clone(),
            "--tokenizer".into(),
            tok.clone(),
        ]
    };
    let straight: Vec<String> = args("straight");
    sb.ok(&straight.iter().map(|s| s.as_str()).collect::<Vec<_>>());

    let killed: Vec<String> = args("killed");
    let killed_refs: Vec<&str> = killed.iter().map(|s| s.as_str()).collect();
    let mut child = sb
        .cmd(&killed_refs)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Wait for a run that is unfinished (no summary) but has a phase checkpoint, past the
    // first run (so that finished runs, stored prefixes and an unfinished run all exist).
    let runs = sb.path("killed/runs");
    let mid_run = || -> bool {
        let Ok(rd) = std::fs::read_dir(&runs) else {
            return false;
        };
        let dirs: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        let finished = dirs
            .iter()
            .filter(|d| d.join("summary.json").exists())
            .count();
        finished >= 1
            && dirs.iter().any(|d| {
                !d.join("summary.json").exists()
                    && std::fs::read_dir(d.join("checkpoints"))
                        .map(|c| {
                            c.flatten()
                                .any(|e| e.file_name().to_string_lossy().ends_with(".safetensors"))
                        })
                        .unwrap_or(false)
            })
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut seen = false;
    while Instant::now() < deadline {
        if mid_run() {
            seen = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let _ = child.kill();
    child.wait().unwrap();
    assert!(seen, "the grid was caught in the middle of a run");
    assert!(
        !sb.path("killed/runs.csv").exists(),
        "no table from a killed grid"
    );
    // Without --resume the unfinished run is refused; with it the grid completes.
    let e = sb.fails(&killed_refs);
    assert!(e.contains("pass --resume"), "{e}");
    let mut resume = killed_refs.clone();
    resume.push("--resume");
    let o = sb.run(&resume);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("finished earlier, skipped"), "{err}");
    assert_eq!(
        std::fs::read_to_string(sb.path("killed/runs.csv")).unwrap(),
        std::fs::read_to_string(sb.path("straight/runs.csv")).unwrap()
    );
}
