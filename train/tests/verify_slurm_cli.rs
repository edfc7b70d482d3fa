//! `mtkit verify PLAN --slurm` on a real Slurm (scripts/slurm-local.sh; `.ci/run` starts it and
//! sets MTKIT_REQUIRE_SLURM=1 so that this runs there): the demo grid as jobs along the prefix
//! tree gives the local run's runs.csv byte for byte.

#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The demo grid (analysis/demo.toml) submitted with --slurm: 1 pretraining prefix shared by
/// all five variants, 5 second-phase prefixes each waiting for it, 5 runs each waiting for its
/// variant's prefix (11 jobs, where the local run trains 85 steps instead of 125); once they
/// end, the same command writes runs.csv, byte-identical to the local `mtkit verify`'s.
#[test]
fn the_demo_grid_on_slurm_gives_the_local_runs_table() {
    if !slurm_up() {
        return;
    }
    let Some(tok) = pythia_tokenizer() else {
        return;
    };
    let sb = Sandbox::new();
    // Resource requests from the plan: [plan.slurm] (here a time limit every job carries).
    let plan = std::fs::read_to_string(repo_root().join("analysis/demo.toml"))
        .unwrap()
        .replace(
            "val_docs = 50\n",
            "val_docs = 50\n\n[plan.slurm]\ntime = \"00:30:00\"\n",
        );
    assert!(plan.contains("[plan.slurm]"));
    let plan = sb.write("analysis/demo.toml", plan);
    let (plan, tok) = (plan.to_str().unwrap(), tok.to_str().unwrap());
    let common = ["--tokenizer", tok, "--device", "cpu", "--quiet"];
    let mut local = vec!["verify", plan, "--out", "local"];
    local.extend_from_slice(&common);
    sb.ok(&local);
    // The jobs' command lines are built from the parsed options: -v and -q (--quiet) once
    // each, and a catalog in a folder with a space, quoted.
    sb.write(
        "my cat/extra.toml",
        "[datasets.unused]\nrole = \"target\"\npaths = [\"none-*.jsonl\"]\n",
    );
    let mut slurm = vec![
        "-v",
        "verify",
        plan,
        "--out",
        "grid",
        "--slurm",
        "--catalog",
        "my cat/extra.toml",
    ];
    slurm.extend_from_slice(&common);
    let said = sb.ok(&slurm);
    // "submitted JOB as job ID (after ID)": who waits for whom.
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    let mut after: BTreeMap<String, Option<String>> = BTreeMap::new();
    for line in said.lines().filter(|l| l.starts_with("submitted ")) {
        let w: Vec<&str> = line.split_whitespace().collect();
        ids.insert(w[1].to_string(), w[4].to_string());
        after.insert(
            w[1].to_string(),
            w.get(6).map(|s| s.trim_end_matches(')').to_string()),
        );
    }
    assert_eq!(ids.len(), 11, "{said}");
    let by_id: BTreeMap<&String, &String> = ids.iter().map(|(k, v)| (v, k)).collect();
    let roots: Vec<&String> = after
        .iter()
        .filter(|(_, a)| a.is_none())
        .map(|(k, _)| k)
        .collect();
    assert_eq!(roots.len(), 1, "one job from scratch: {said}");
    assert!(roots[0].starts_with("prefix-"));
    let waits_for_root = after
        .values()
        .filter(|a| a.as_deref() == Some(ids[roots[0]].as_str()))
        .count();
    assert_eq!(
        waits_for_root, 5,
        "five variant prefixes wait for pretraining"
    );
    for (job, a) in &after {
        if job.starts_with("run-") {
            let parent = by_id[a.as_ref().unwrap()];
            assert!(
                parent.starts_with("prefix-") && parent != roots[0],
                "{job} waits for {parent}"
            );
        }
        // The submitted script carries the same dependency, and the plan's time limit.
        let script = std::fs::read_to_string(sb.path(&format!("grid/slurm/{job}.sbatch"))).unwrap();
        assert!(script.contains("#SBATCH --time=00:30:00"), "{script}");
        let line = script.lines().find(|l| l.contains("--slurm-job")).unwrap();
        let count = |w: &str| line.split_whitespace().filter(|x| *x == w).count();
        assert_eq!(
            (count("-v"), count("--quiet"), count("-q")),
            (1, 1, 0),
            "{line}"
        );
        let spaced = format!("--catalog '{}'", sb.path("my cat/extra.toml").display());
        assert!(line.contains(&spaced), "{line}");
        assert!(line.contains("--device cpu --precision auto"), "{line}");
        match a {
            Some(id) => assert!(
                script.contains(&format!("--dependency=afterok:{id}")),
                "{job}"
            ),
            None => assert!(!script.contains("--dependency"), "{job}"),
        }
    }
    // Again while they run: nothing new is submitted; --collect names the runs not finished
    // (run jobs wait for two training jobs each, so none has finished yet).
    let again = sb.ok(&slurm);
    assert!(again.contains("0 jobs submitted"), "{again}");
    let mut collect = vec!["verify", plan, "--out", "grid", "--collect"];
    collect.extend_from_slice(&common);
    let err = sb.fails(&collect);
    assert!(
        err.contains("5 of 5 runs have not finished") && err.contains("seed1-base-demo-docstring"),
        "{err}"
    );
    let start = Instant::now();
    while !mtkit::cluster::slurm::queued_by_prefix("mtkit-verify-")
        .unwrap()
        .is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "grid jobs still queued after 5 minutes"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let done = sb.ok(&slurm);
    assert!(done.contains("5 rows written"), "{done}");
    assert_eq!(
        std::fs::read(sb.path("grid/runs.csv")).unwrap(),
        std::fs::read(sb.path("local/runs.csv")).unwrap(),
        "runs.csv from Slurm differs from the local one"
    );
}
