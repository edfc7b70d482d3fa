//! `mtkit suggest-mix` through the real binary: a known optimum, constraints at the
//! boundary, exports that parse back, bad input.

mod common;
use common::*;

/// P uses words a b, M uses c d; T's counts are exactly 3×P + 7×M's tokens (10 each), so T is
/// the 0.3/0.7 token blend of P and M.
fn blend_fixture(sb: &Sandbox) -> (String, String) {
    let tok = sb
        .word_tokenizer("tok.json", &["a", "b", "c", "d", "e", "<|endoftext|>"])
        .display()
        .to_string();
    sb.jsonl("p.jsonl", &["a a a a a b b b b b"]);
    sb.jsonl("m.jsonl", &["c c d d d d d d d d"]);
    sb.jsonl("e.jsonl", &["e e e e"]);
    let mut t = vec!["a a a a a b b b b b"; 3];
    t.extend(vec!["c c d d d d d d d d"; 7]);
    sb.jsonl("t.jsonl", &t);
    let cat = sb
        .write(
            "cat.toml",
            "[datasets.p]\nrole = \"pretrain\"\npaths = [\"p.jsonl\"]\n[datasets.m]\nrole = \"midtrain\"\npaths = [\"m.jsonl\"]\n\
             [datasets.e]\nrole = \"midtrain\"\npaths = [\"e.jsonl\"]\n[datasets.t]\nrole = \"target\"\npaths = [\"t.jsonl\"]\n",
        )
        .display()
        .to_string();
    (cat, tok)
}

fn suggest(sb: &Sandbox, cat: &str, tok: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "suggest-mix",
        "--pretrain",
        "p",
        "--candidates",
        "m,e",
        "--target",
        "t",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
        "--quiet",
    ];
    args.extend_from_slice(&[
        "--total-steps",
        "100",
        "--tokens-per-step",
        "10",
        "--available",
        "p=1e9,m=1e9,e=1e9",
        "--json",
    ]);
    args.extend_from_slice(extra);
    serde_json::from_str(&sb.ok(&args)).unwrap()
}

fn weights(p: &serde_json::Value) -> Vec<(String, f64)> {
    p["weights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w[0].as_str().unwrap().to_string(), w[1].as_f64().unwrap()))
        .collect()
}

#[test]
fn recovers_a_known_30_70_blend_under_smooth_metrics() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    for metric in ["cosine", "js-sim", "paper"] {
        let v = suggest(
            &sb,
            &cat,
            &tok,
            &["--metric", metric, "--start", "0.1", "--min-general", "0"],
        );
        let top = &v["proposals"][0];
        let w = weights(top);
        assert!(
            (w[0].1 - 0.3).abs() < 2e-3 && (w[1].1 - 0.7).abs() < 2e-3 && w[2].1 < 1e-6,
            "{metric}: {w:?}"
        );
        assert!(
            (top["sim"].as_f64().unwrap() - 1.0).abs() < 1e-5,
            "{metric}: q = T"
        );
        assert_eq!(top["start_step"], 10);
    }
}

#[test]
fn constraints_hold_at_the_boundary() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    // The general share must be at least 0.5: the optimum 0.3 is cut to exactly 0.5.
    let v = suggest(
        &sb,
        &cat,
        &tok,
        &[
            "--metric",
            "cosine",
            "--start",
            "0.1",
            "--min-general",
            "0.5",
        ],
    );
    let w = weights(&v["proposals"][0]);
    assert!((w[0].1 - 0.5).abs() < 1e-9, "{w:?}");
    // Late start: the timing rule allows at most 10% specialized data at 82% of the run.
    let v = suggest(
        &sb,
        &cat,
        &tok,
        &[
            "--metric",
            "cosine",
            "--start",
            "0.82",
            "--min-general",
            "0",
        ],
    );
    let w = weights(&v["proposals"][0]);
    assert!((w[0].1 - 0.9).abs() < 1e-9, "{w:?}");
    // Repetition: M has 60 tokens and may be read twice; 90 steps × 10 tokens follow the
    // start, so M's share is at most 120/900.
    let mut args = vec![
        "suggest-mix",
        "--pretrain",
        "p",
        "--candidates",
        "m",
        "--target",
        "t",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--quiet",
    ];
    args.extend_from_slice(&[
        "--total-steps",
        "100",
        "--tokens-per-step",
        "10",
        "--available",
        "p=1e9,m=60",
        "--max-repeat",
        "2",
        "--start",
        "0.1",
        "--metric",
        "cosine",
        "--json",
        "--min-general",
        "0",
    ]);
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&args)).unwrap();
    let top = &v["proposals"][0];
    let w = weights(top);
    assert!((w[1].1 - 120.0 / 900.0).abs() < 1e-9, "{w:?}");
    let rep = top["repetition"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r[0] == "m")
        .unwrap()[1]
        .as_f64()
        .unwrap();
    assert!(rep <= 2.0 + 1e-9 && rep > 1.99, "{rep}");
}

#[test]
fn exports_parse_back_with_weights_summing_to_one() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    let emit = |fmt: &str| -> (String, String) {
        let o = sb.run(&[
            "suggest-mix",
            "--pretrain",
            "p",
            "--candidates",
            "m,e",
            "--target",
            "t",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--quiet",
            "--total-steps",
            "100",
            "--tokens-per-step",
            "64",
            "--seq-len",
            "16",
            "--preset",
            "tiny",
            "--available",
            "p=1e9,m=1e9,e=1e9",
            "--start",
            "0.1",
            "--emit",
            fmt,
        ]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        (
            String::from_utf8(o.stdout).unwrap(),
            String::from_utf8(o.stderr).unwrap(),
        )
    };
    let close = |s: f64| assert!((s - 1.0).abs() < 1e-9, "sum {s}");
    // mtkit: a run config the trainer accepts.
    let (out, err) = emit("mtkit");
    assert!(
        !err.contains("rank") && !out.contains("rank"),
        "--quiet: the config alone, no table"
    );
    let cfg: mtkit::export::run_config::RunConfig = toml::from_str(&out).unwrap();
    let phases = cfg.resolve(&|_, _| Ok(10)).unwrap();
    assert_eq!(phases.iter().map(|p| p.kind).collect::<Vec<_>>().len(), 3);
    assert_eq!(phases[0].steps, 10, "pretrain until the start step");
    assert!(phases[1].continues, "midtraining continues the schedule");
    close(phases[1].mixture.iter().map(|x| x.1).sum());
    assert_eq!(phases[0].batch_size, 4, "64 tokens per step / seq_len 16");
    // olmo-core (YAML).
    let (out, _) = emit("olmo-core");
    let y: serde_yaml::Value = serde_yaml::from_str(&out).unwrap();
    let mix = &y["source_mixture_config"];
    let srcs = mix["source_list"]["sources"].as_sequence().unwrap();
    close(
        srcs.iter()
            .map(|s| s["target_ratio"].as_f64().unwrap())
            .sum(),
    );
    assert_eq!(mix["requested_tokens"].as_u64(), Some(90 * 64));
    assert_eq!(mix["global_batch_size"].as_u64(), Some(64));
    // Nothing is tokenized as olmo-core yet: each source names the command that does it, with
    // the --catalog and --tokenizer this command was given, so that it works as pasted.
    let hint = out
        .lines()
        .find_map(|l| l.strip_prefix("# p: not tokenized as olmo-core yet: "))
        .unwrap_or_else(|| panic!("no hint for p: {out}"));
    assert!(
        hint.starts_with("mtkit tokenize p -o tokens --format olmo-core --catalog ")
            && hint.contains(" --tokenizer "),
        "{hint}"
    );
    let bin = mtkit_binary();
    let pasted = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} {}",
            bin.display(),
            hint.strip_prefix("mtkit ").unwrap()
        ))
        .current_dir(sb.dir.path())
        .output()
        .unwrap();
    assert!(
        pasted.status.success(),
        "the hinted command failed: {hint}\n{}",
        String::from_utf8_lossy(&pasted.stderr)
    );
    assert!(sb.path("tokens/p/part-00000.npy").is_file());
    assert_eq!(srcs[0]["paths"][0].as_str(), Some("tokens/p/part-*.npy"));
    // megatron.
    let (out, _) = emit("megatron");
    let line = out.lines().find(|l| l.starts_with("--data-path")).unwrap();
    let parts: Vec<&str> = line.split_whitespace().skip(1).collect();
    close(parts.chunks(2).map(|c| c[0].parse::<f64>().unwrap()).sum());
    assert!(parts[1].ends_with("_text_document"));
    // hf (JSON), in documents.
    let (out, _) = emit("hf");
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    close(
        j["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .sum(),
    );
    assert_eq!(j["units"], "documents");
    // litgpt.
    let (out, _) = emit("litgpt");
    close(
        out.trim()
            .split(',')
            .map(|kv| kv.split_once(':').unwrap().1.parse::<f64>().unwrap())
            .sum(),
    );
    assert!(out.starts_with("p:"));
}

#[test]
fn hf_probabilities_convert_tokens_to_documents() {
    // P documents have 10 tokens, M documents 10 → document shares equal token shares here;
    // make M's documents 5 tokens long: pᵢ ∝ wᵢ/Lᵢ doubles M's document share.
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    sb.jsonl("m.jsonl", &["c d d d d", "c d d d d"]);
    let o = sb.run(&[
        "suggest-mix",
        "--pretrain",
        "p",
        "--candidates",
        "m",
        "--target",
        "t",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--quiet",
        "--total-steps",
        "100",
        "--tokens-per-step",
        "10",
        "--available",
        "p=1e9,m=1e9",
        "--start",
        "0.1",
        "--metric",
        "cosine",
        "--min-general",
        "0",
        "--emit",
        "hf",
    ]);
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let p: Vec<f64> = j["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    let (wp, wm) = (0.3, 0.7); // token shares of the optimum
    let want_m = (wm / 5.0) / (wp / 10.0 + wm / 5.0);
    assert!((p[1] - want_m).abs() < 2e-3, "{p:?} vs {want_m}");
}

#[test]
fn fit_predicts_relative_improvement_with_an_interval() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    sb.write(
        "runs.csv",
        "pa,ri\n0.0,0.0\n0.1,0.021\n0.2,0.039\n0.3,0.062\n",
    );
    let v = suggest(
        &sb,
        &cat,
        &tok,
        &["--metric", "cosine", "--start", "0.1", "--fit", "runs.csv"],
    );
    let top = &v["proposals"][0];
    let pa = top["pa"].as_f64().unwrap();
    let pred = top["predicted_ri"].as_array().unwrap();
    // OLS by hand: x̄ = 0.15, ȳ = 0.0305, Sxx = 0.05, Sxy = 0.004575 + 0.000475 + 0.000425 +
    // 0.004725 = 0.0102; slope = 0.204, intercept = 0.0305 − 0.204·0.15 = −0.0001.
    let want = -0.0001 + 0.204 * pa;
    assert!(
        (pred[0].as_f64().unwrap() - want).abs() < 1e-9,
        "{pred:?} vs {want}"
    );
    assert!(pred[1].as_f64().unwrap() < want && want < pred[2].as_f64().unwrap());
}

#[test]
fn bad_input_fails_clearly() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    let base = [
        "suggest-mix",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--quiet",
        "--total-steps",
        "100",
        "--tokens-per-step",
        "10",
    ];
    let run = |extra: &[&str]| {
        let mut v = base.to_vec();
        v.extend_from_slice(extra);
        sb.fails(&v)
    };
    assert!(
        run(&["--pretrain", "p", "--candidates", "zz", "--target", "t"])
            .contains("unknown corpus `zz`")
    );
    assert!(
        run(&["--pretrain", "p", "--candidates", "", "--target", "t"])
            .contains("--candidates is empty")
    );
    assert!(
        run(&["--pretrain", "p", "--candidates", "m,p", "--target", "t"]).contains("named twice")
    );
    assert!(run(&[
        "--pretrain",
        "p",
        "--candidates",
        "m",
        "--target",
        "t",
        "--metric",
        "kl"
    ])
    .contains("suggest-mix optimises the metrics"));
    let e = run(&[
        "--pretrain",
        "p",
        "--candidates",
        "m",
        "--target",
        "t",
        "--available",
        "p=10,m=10",
        "--max-repeat",
        "1",
        "--start",
        "0.5",
    ]);
    assert!(
        e.contains("infeasible at start 50%") && e.contains("short by"),
        "{e}"
    );
    assert!(run(&[
        "--pretrain",
        "p",
        "--candidates",
        "m",
        "--target",
        "t",
        "--available",
        "q=10"
    ])
    .contains("--available names `q`"));
}

#[test]
fn real_samples_rank_a_code_heavy_mixture_first_and_the_export_trains() {
    let Some(cat) = shared_catalog() else { return };
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    let (cat, tok) = (cat.to_str().unwrap(), tok.to_str().unwrap());
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&[
        "suggest-mix",
        "--pretrain",
        "c4",
        "--candidates",
        "starcoder,math,flan",
        "--target",
        "codesearchnet",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
        "--quiet",
        "--json",
    ]))
    .unwrap();
    let w = weights(&v["proposals"][0]);
    let top_special = w[1..].iter().max_by(|a, b| a.1.total_cmp(&b.1)).unwrap();
    assert_eq!(top_special.0, "starcoder", "{w:?}");
    assert!(top_special.1 >= 0.3, "code-heavy: {w:?}");
    // The mtkit export at a CPU scale runs with `mtkit train`.
    let o = sb.run(&[
        "suggest-mix",
        "--pretrain",
        "c4",
        "--candidates",
        "starcoder,math,flan",
        "--target",
        "codesearchnet",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
        "--quiet",
        "--emit",
        "mtkit",
        "--preset",
        "tiny",
        "--total-steps",
        "10",
        "--tokens-per-step",
        "128",
        "--seq-len",
        "32",
        "--lr",
        "1e-3",
        "--sft-epochs",
        "0.01",
        "--available",
        "c4=1e6,starcoder=1e6,math=1e6,flan=1e6",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    sb.write("suggested.toml", &o.stdout);
    sb.ok(&[
        "tokenize",
        "c4",
        "starcoder",
        "codesearchnet",
        "--catalog",
        cat,
        "--tokenizer",
        tok,
        "-o",
        "tokens",
        "--max-docs",
        "200",
        "--val-docs",
        "20",
        "--quiet",
    ]);
    let out = sb.ok(&[
        "train",
        "suggested.toml",
        "--out",
        "run",
        "--device",
        "cpu",
        "--quiet",
    ]);
    assert!(out.contains("done:"), "{out}");
}

/// A negative number is a value of `--min-general`, refused by its range, not taken for a flag
/// (issue 13, bug 9).
#[test]
fn a_negative_min_general_is_a_value_refused_by_range() {
    let sb = Sandbox::new();
    let err = sb.fails(&[
        "suggest-mix",
        "--pretrain",
        "demo-web",
        "--candidates",
        "demo-code",
        "--target",
        "demo-docstring",
        "--min-general",
        "-0.5",
    ]);
    assert!(
        err.contains("--min-general must be in [0, 1), got -0.5"),
        "{err}"
    );
}

/// Infeasibility names the constraint that binds (issue 13, bug 9): the timing rule, or
/// --min-general, or across every start the closest one, instead of the search grid's 95%.
#[test]
fn infeasibility_names_the_binding_constraint() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    let run = |extra: &[&str]| {
        let mut v = vec![
            "suggest-mix",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--quiet",
            "--total-steps",
            "100",
            "--tokens-per-step",
            "10",
            "--pretrain",
            "p",
            "--candidates",
            "m,e",
            "--target",
            "t",
            "--max-repeat",
            "1",
        ];
        v.extend_from_slice(extra);
        sb.fails(&v)
    };
    // Start at 90%: 900 tokens of P before it, 100 after. The timing rule allows
    // 0.1 − 0.05·(0.08/0.18) = 7.78% specialized data there, so P must supply 92.2%, but
    // 950 − 900 = 50 tokens allow 50%.
    let e = run(&[
        "--start",
        "0.9",
        "--min-general",
        "0",
        "--available",
        "p=950,m=1e9,e=1e9",
    ]);
    assert!(
        e.contains("at least 92.2%")
            && e.contains("set by the timing rule")
            && e.contains("start earlier")
            && e.contains("allow 50.0%")
            && !e.contains("--min-general"),
        "{e}"
    );
    // Start at 50% with --min-general 0.9 (the rule alone would ask 58.9%): 500 tokens of P
    // before, 700 − 500 = 200 of the 500 after (40%).
    let e = run(&[
        "--start",
        "0.5",
        "--min-general",
        "0.9",
        "--available",
        "p=700,m=1e9,e=1e9",
    ]);
    assert!(
        e.contains("at least 90.0%")
            && e.contains("set by --min-general 0.9")
            && e.contains("lower --min-general")
            && e.contains("allow 40.0%"),
        "{e}"
    );
    // Every start infeasible (P's 100 tokens are spent before any start): the closest start
    // is 10%, where the rule asks the least of P, 20%.
    let e = run(&["--min-general", "0", "--available", "p=100,m=1e9,e=1e9"]);
    assert!(
        e.contains("no start from 10% to 90% of the run is feasible")
            && e.contains("infeasible at start 10%")
            && e.contains("at least 20.0%")
            && !e.contains("95.0%"),
        "{e}"
    );
}

/// Candidates missing from every proposal are reported with the reason (issue 13, bug 9).
#[test]
fn absent_candidates_are_reported_with_the_reason() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    // `e`'s word is not in T: it gets no weight because it would not help.
    let v = suggest(&sb, &cat, &tok, &["--start", "0.1"]);
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("`e` has weight 0 in every proposal shown")),
        "{notes:?}"
    );
    // `m` with 1 token available: at start 10% the 900 midtraining tokens allow it
    // 1 × 4 / 900 = 0.44% < --min-weight 1%.
    let mut args = vec![
        "suggest-mix",
        "--pretrain",
        "p",
        "--candidates",
        "m,e",
        "--target",
        "t",
        "--catalog",
        &cat,
        "--tokenizer",
        &tok,
        "--quiet",
        "--total-steps",
        "100",
        "--tokens-per-step",
        "10",
        "--available",
        "p=1e9,m=1,e=1e9",
        "--start",
        "0.1",
    ];
    let text = sb.ok(&args);
    assert!(
        text.contains("note: `m` is in no proposal: its 1.000e0 available tokens × 4 repeats make at most 0.44% of the midtraining tokens, below --min-weight 1.00%"),
        "{text}"
    );
    args.push("--json");
    let v: serde_json::Value = serde_json::from_str(&sb.ok(&args)).unwrap();
    assert!(
        v["notes"].to_string().contains("`m` is in no proposal"),
        "{v}"
    );
}

/// Megatron-LM cannot take a --data-path prefix with a space or `#` (it splits the list on
/// whitespace; its configs read `#` as a comment): refused with the reason, not written.
#[test]
fn a_megatron_prefix_with_a_space_or_hash_is_refused() {
    let sb = Sandbox::new();
    let (cat, tok) = blend_fixture(&sb);
    for data in ["my tokens", "runs#2"] {
        let err = sb.fails(&[
            "suggest-mix",
            "--pretrain",
            "p",
            "--candidates",
            "m,e",
            "--target",
            "t",
            "--catalog",
            &cat,
            "--tokenizer",
            &tok,
            "--quiet",
            "--total-steps",
            "100",
            "--tokens-per-step",
            "64",
            "--available",
            "p=1e9,m=1e9,e=1e9",
            "--emit",
            "megatron",
            "--data",
            data,
        ]);
        assert!(
            err.contains("Megatron-LM's --data-path cannot hold the prefix")
                && err.contains(&format!("`{data}/")),
            "{err}"
        );
    }
}

/// When no candidate alone is closer to T than P and yet a blend is, the output says so.
/// Cosine by hand, vocabulary (a, b, c): P = "a a c" (2, 0, 1), M = "b b c c" (0, 2, 2),
/// T = "a b" (1, 1, 0): sim(P,T) = 2/√10 = 0.632456, sim(M,T) = 2/(√8·√2) = 0.5, so M's PA
/// is −0.132456; the half-and-half blend (1/3, 1/4, 5/12) has cosine 0.700 > sim(P,T).
#[test]
fn a_blend_closer_than_every_part_is_explained() {
    let sb = Sandbox::new();
    let tok = sb
        .word_tokenizer("tok.json", &["a", "b", "c", "<|endoftext|>"])
        .display()
        .to_string();
    sb.jsonl("p.jsonl", &["a a c"]);
    sb.jsonl("m.jsonl", &["b b c c"]);
    sb.jsonl("t.jsonl", &["a b"]);
    let cat = sb.write(
        "cat.toml",
        "[datasets.p]\nrole = \"pretrain\"\npaths = [\"p.jsonl\"]\n[datasets.m]\nrole = \"midtrain\"\npaths = [\"m.jsonl\"]\n\
         [datasets.t]\nrole = \"target\"\npaths = [\"t.jsonl\"]\n",
    );
    let out = sb.ok(&[
        "suggest-mix",
        "--pretrain",
        "p",
        "--candidates",
        "m",
        "--target",
        "t",
        "--catalog",
        cat.to_str().unwrap(),
        "--tokenizer",
        &tok,
        "--metric",
        "cosine",
        "--json",
        "--no-cache",
        "--total-steps",
        "100",
        "--tokens-per-step",
        "10",
        "--available",
        "p=1e9,m=1e9",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!((v["sim_pretrain_target"].as_f64().unwrap() - 2.0 / 10f64.sqrt()).abs() < 1e-12);
    let top = v["proposals"][0]["pa"].as_f64().unwrap();
    assert!(top > 0.0, "{out}");
    let notes: Vec<&str> = v["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let want = format!(
        "no candidate alone is closer to T than P (PA m {:+.5}), yet the top mixture's PA is {top:+.5}",
        0.5 - 2.0 / 10f64.sqrt()
    );
    assert!(
        notes.iter().any(|n| n.starts_with(&want)),
        "{want}\n{notes:?}"
    );
}
