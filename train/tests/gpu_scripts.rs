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
    for f in [
        "mtkit-train",
        "mtkit",
        "gpt-neox-20b.json",
        "tokens/demo-web/meta.json",
    ] {
        assert!(dir.join(f).exists(), "gpu-prepare.sh --smoke made no {f}");
    }
    script(&py, "gpu-check.sh", &[d, "--smoke"]);
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
