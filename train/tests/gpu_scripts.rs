//! The prepared GPU scripts, run in their CPU smoke modes so that their commands and parsing
//! cannot rot between the sessions that are lent a GPU: scripts/gpu-prepare.sh --smoke, then
//! scripts/gpu-check.sh --smoke (mtkit against PyTorch eager and torch.compile, the loss curve
//! against transformers' model from the same initial weights, greedy ids).
//!
//! Needs transformers' venv (scripts/hf-venv.sh, which `make test` installs; skipped with the
//! reason elsewhere, a failure under make test).

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

/// `bash SCRIPT ARGS` from the repository root with transformers' venv first on PATH and the
/// binaries of this build.
fn script(py: &Path, name: &str, args: &[&str]) -> String {
    let bin_dir = py.parent().expect("venv/bin").to_path_buf();
    let path = std::env::join_paths(
        std::iter::once(bin_dir).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let release = mtkit_binary().parent().unwrap().to_path_buf();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts").join(name))
        .args(args)
        .current_dir(repo_root())
        .env("PATH", path)
        .env("MTKIT_CACHE", real_cache())
        .env("CARGO_TARGET_DIR", release.parent().unwrap())
        .env("HF_HUB_OFFLINE", "1")
        .env_remove("OUT")
        .output()
        .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{name} {args:?} failed:\n{text}");
    text
}

#[test]
fn gpu_check_smoke_mode_runs_every_part_and_mtkit_trains_as_transformers_does() {
    let Some(py) = transformers_python() else {
        return;
    };
    let sb = Sandbox::new();
    let dir: PathBuf = sb.path("gpu");
    let d = dir.to_str().unwrap();
    script(&py, "gpu-prepare.sh", &["--smoke", d]);
    for f in ["mtkit-train", "mtkit", "gpt-neox-20b.json"] {
        assert!(dir.join(f).exists(), "gpu-prepare.sh --smoke made no {f}");
    }
    script(&py, "gpu-check.sh", &[d, "--smoke"]);
    assert!(dir.join("work-check/tokens/demo-web/meta.json").exists());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("out/gpu-check.json")).unwrap())
            .unwrap();
    assert_eq!(json["smoke"], true);
    assert!(json.get("errors").is_none(), "{json:#}");
    let speed = json["speed"].as_array().unwrap();
    assert_eq!(speed.len(), 1, "{json:#}");
    let row = &speed[0];
    for side in ["mtkit", "torch_eager", "torch_compile"] {
        let secs = row[side]["step_time_s"].as_f64();
        assert!(secs.is_some_and(|s| s > 0.0), "{side}: {row:#}");
        let tps = row[side]["tokens_per_s"].as_f64().unwrap();
        // tokens/s is the batch (2 × 64) over the median step time.
        assert!(
            (tps * secs.unwrap() - 128.0).abs() < 1e-6,
            "{side}: {row:#}"
        );
    }
    assert!(row["mtkit_over_torch_eager"].as_f64().unwrap() > 0.0);
    // The loss curve: on the CPU both train in fp32 from the same weights on the same batches,
    // so mtkit's mean losses equal transformers' to float rounding, every window.
    let lc = &json["loss_curve"];
    let (mt, th) = (
        lc["mtkit"].as_array().unwrap(),
        lc["torch"].as_array().unwrap(),
    );
    assert_eq!(mt.len(), 2, "{lc:#}");
    assert_eq!(th.len(), 2, "{lc:#}");
    assert!(lc["max_abs_delta"].as_f64().unwrap() < 1e-4, "{lc:#}");
    assert!(
        mt[1].as_f64().unwrap() < mt[0].as_f64().unwrap(),
        "the loss falls: {lc:#}"
    );
    let greedy = &json["greedy"][0];
    assert_eq!(greedy["equal_cpu"], true, "{greedy:#}");
    let md = std::fs::read_to_string(dir.join("out/gpu-check.md")).unwrap();
    assert!(md.contains("| tiny | 2 × 64 |"), "{md}");
}

#[test]
fn gpu_repro_smoke_mode_trains_every_run_of_the_plan_and_writes_the_reports() {
    let Some(py) = transformers_python() else {
        return;
    };
    let sb = Sandbox::new();
    let dir: PathBuf = sb.path("gpu");
    let d = dir.to_str().unwrap();
    script(&py, "gpu-prepare.sh", &["--smoke", d]);
    script(&py, "gpu-repro.sh", &[d, "--smoke"]);
    // The rows the plan asks for, read from the plan itself: every (variant, target, seed).
    let plan: toml::Value = toml::from_str(
        &std::fs::read_to_string(repo_root().join("analysis/gpu-repro.toml")).unwrap(),
    )
    .unwrap();
    let names = |key: &str, field: &str| -> Vec<String> {
        plan[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap().to_string())
            .collect()
    };
    let pretrain = plan["plan"]["pretrain"].as_str().unwrap().to_string();
    let mut want: Vec<(String, String, String)> = Vec::new();
    for t in names("targets", "name") {
        want.push((pretrain.clone(), "base".into(), t.clone()));
        for m in names("midtrain", "mix") {
            want.push((m, "midtrain".into(), t.clone()));
        }
        for m in names("cpt", "mix") {
            want.push((m, "cpt".into(), t.clone()));
        }
    }
    want.sort();
    let res = dir.join("work-repro/results");
    let (header, rows) = parse_csv(&std::fs::read_to_string(res.join("runs.csv")).unwrap());
    let col = |n: &str| header.iter().position(|h| h == n).unwrap();
    let mut got: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r[col("mix")].clone(),
                r[col("kind")].clone(),
                r[col("target")].clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(got, want);
    assert!(rows.iter().all(|r| r[col("seed")] == "1"));
    assert!(rows
        .iter()
        .all(|r| r[col("target_loss")].parse::<f64>().unwrap().is_finite()));
    let (_, reg) = parse_csv(&std::fs::read_to_string(res.join("regression.csv")).unwrap());
    let groups: Vec<&str> = reg.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        groups,
        [
            "all",
            "target=dolly",
            "target=gsm8k",
            "target=pydoc",
            "target=sciq"
        ]
    );
    let (_, mid) =
        parse_csv(&std::fs::read_to_string(res.join("regression-midtrain.csv")).unwrap());
    assert_eq!(mid[0][0], "all");
    assert_eq!(mid[0][3], "16", "4 candidates × 4 targets");
    let (_, table) = parse_csv(&std::fs::read_to_string(res.join("table.csv")).unwrap());
    assert_eq!(table.len(), want.len());
    for f in [
        "table.tex",
        "pa-vs-ri.png",
        "proximity-pydoc.csv",
        "proximity-dolly.csv",
    ] {
        assert!(res.join(f).exists(), "{f}");
    }
    let out = dir.join("out-repro");
    let md = std::fs::read_to_string(out.join("gpu-repro.md")).unwrap();
    assert!(md.contains("# gpu-repro: 28 runs on CPU"), "{md}");
    assert!(md.contains("Midtraining beats CPT in-domain in"), "{md}");
    assert!(out.join("gpu-repro.tar.gz").exists() && out.join("gpu-repro.log").exists());
}

/// The full preparation on the real corpora: what travels to the device (the repository's
/// tracked files and the prepared folder) stays under the device's 64 MiB, and every corpus
/// file the repro catalog names is there.
#[test]
fn gpu_prepare_fits_the_device_carry_limit() {
    let Some(cat) = shared_catalog() else { return };
    let Some(py) = transformers_python() else {
        return;
    };
    let sb = Sandbox::new();
    let dir = sb.path("gpu");
    let shared = cat.parent().unwrap();
    let bin_dir = py.parent().unwrap();
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/gpu-prepare.sh"))
        .arg(&dir)
        .env("MTKIT_CACHE", real_cache())
        .env(
            "CARGO_TARGET_DIR",
            mtkit_binary().parent().unwrap().parent().unwrap(),
        )
        .env("MTKIT_SHARED_DATA", shared)
        .env(
            "PATH",
            format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    fn size(p: &Path) -> u64 {
        if p.is_dir() {
            std::fs::read_dir(p)
                .unwrap()
                .map(|e| size(&e.unwrap().path()))
                .sum()
        } else {
            p.metadata().unwrap().len()
        }
    }
    let tracked = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(repo_root())
        .output()
        .unwrap();
    let tree: u64 = tracked
        .stdout
        .split(|&b| b == 0)
        .filter(|f| !f.is_empty())
        .filter_map(|f| {
            repo_root()
                .join(String::from_utf8_lossy(f).as_ref())
                .metadata()
                .ok()
        })
        .map(|m| m.len())
        .sum();
    let total = size(&dir) + tree;
    assert!(
        total < 60 << 20,
        "{total} bytes would travel (limit 64 MiB, kept 4 MiB spare)"
    );
    let catalog =
        std::fs::read_to_string(repo_root().join("analysis/gpu-repro-catalog.toml")).unwrap();
    for line in catalog.lines().filter(|l| l.starts_with("paths")) {
        let file = line
            .split("../.gpu/data/")
            .nth(1)
            .unwrap()
            .trim_end_matches("\"]");
        assert!(dir.join("data").join(file).exists(), "{file}");
    }
    assert!(dir.join("mtkit-train.xz").exists() && dir.join("mtkit.xz").exists());
}
