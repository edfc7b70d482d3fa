//! Verification grids: train a plan's runs and tabulate gain against proximity.
//!
//! For each seed: a base run (pretraining corpus only), midtraining runs (a candidate mixed in
//! at `weight` from step `start`, same schedule and optimizer state), continued-pretraining
//! runs (the candidate alone from `start`), each fine-tuned on every target. Runs that share
//! their first phases share their training: every phase-boundary checkpoint goes into a store
//! keyed by the run settings and the completed phases, and a run starts from the longest stored
//! prefix (so all variants with the same start reuse one pretraining checkpoint, and all targets
//! of a variant reuse its midtraining). Finished runs (with summary.json) are skipped.

/// A grid's prefix tree as Slurm jobs.
pub mod slurm;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::run_config::{
    Optimizer, PhaseConfig, PhaseKind, RunConfig, RunSection, Schedule, ScheduleSpec,
};
use crate::trainer::{Compute, Observer, Summary, Trainer};

/// A plan file (`analysis/*.toml`).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// Settings shared by every run.
    pub plan: PlanSection,
    /// Midtraining variants.
    #[serde(default)]
    pub midtrain: Vec<Variant>,
    /// Continued-pretraining variants (weight 1).
    #[serde(default)]
    pub cpt: Vec<Variant>,
    /// Fine-tuning targets.
    pub targets: Vec<Target>,
}

/// `[plan]`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PlanSection {
    /// Plan name.
    pub name: String,
    /// Model preset; may be left out when `init` gives the shape.
    #[serde(default)]
    pub preset: String,
    /// A Hugging Face GPT-NeoX folder every run starts from (relative to the plan file), as
    /// `init` in a run config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Seeds.
    pub seeds: Vec<u64>,
    /// Folder of tokenized corpora, relative to the plan file (filled when missing).
    pub data: PathBuf,
    /// The general (pretraining) corpus.
    pub pretrain: String,
    /// Steps of pretraining + midtraining.
    pub total_steps: u64,
    /// Sequences per step.
    pub batch_size: u64,
    /// Sequence length.
    pub seq_len: u64,
    /// Peak learning rate of the pretraining schedule.
    pub lr: f64,
    /// Its floor.
    #[serde(default)]
    pub min_lr: f64,
    /// Warmup steps.
    #[serde(default)]
    pub warmup: u64,
    /// Tokens per validation evaluation.
    #[serde(default = "eval_tokens")]
    pub eval_tokens: u64,
    /// Validation documents held out per corpus when tokenizing.
    #[serde(default = "val_docs")]
    pub val_docs: u64,
    /// `[plan.slurm]`: what every job of the grid asks Slurm for under `verify --slurm`
    /// (GPUs above all); flags override it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<mtkit::cluster::slurm::SlurmOptions>,
}

fn eval_tokens() -> u64 {
    8192
}
fn val_docs() -> u64 {
    100
}

/// A midtraining or CPT variant.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// Candidate corpus.
    pub mix: String,
    /// Its token weight (midtraining; CPT is 1).
    #[serde(default)]
    pub weight: Option<f64>,
    /// Step at which it starts.
    pub start: u64,
}

/// A fine-tuning target.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Target corpus.
    pub name: String,
    /// SFT steps.
    pub steps: u64,
    /// SFT peak learning rate.
    pub lr: f64,
    /// SFT sequence length (default: the plan's).
    #[serde(default)]
    pub seq_len: Option<u64>,
}

/// What kind of run a row is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum RunKind {
    /// Pretraining corpus only.
    Base,
    /// Candidate mixed in from `start`.
    Midtrain,
    /// Candidate alone from `start`.
    Cpt,
}

impl RunKind {
    /// The name runs.csv and run folders use: base, midtrain or cpt.
    pub fn name(self) -> &'static str {
        match self {
            RunKind::Base => "base",
            RunKind::Midtrain => "midtrain",
            RunKind::Cpt => "cpt",
        }
    }
}

/// One run of the grid: a variant fine-tuned on one target with one seed.
#[derive(Clone, Debug)]
pub struct PlannedRun {
    /// Folder name.
    pub name: String,
    /// Kind.
    pub kind: RunKind,
    /// Candidate (the pretraining corpus for base).
    pub mix: String,
    /// Candidate weight.
    pub weight: f64,
    /// Start step.
    pub start: u64,
    /// Target.
    pub target: String,
    /// Seed.
    pub seed: u64,
    /// The run config.
    pub config: RunConfig,
}

impl Plan {
    /// Reads a plan and resolves `data` against its folder.
    pub fn load(path: &Path) -> Result<(Plan, PathBuf)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read plan {}", path.display()))?;
        let mut plan: Plan = toml::from_str(&text).map_err(|e| {
            anyhow!(
                "plan {} is not valid: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(init) = &plan.plan.init {
            plan.plan.init = Some(base.join(init));
        }
        let data = if plan.plan.data.is_absolute() {
            plan.plan.data.clone()
        } else {
            base.join(&plan.plan.data)
        };
        plan.check()?;
        Ok((plan, data))
    }

    fn check(&self) -> Result<()> {
        let p = &self.plan;
        match &p.init {
            Some(dir) => {
                crate::hf::read_model(dir)?;
            }
            None if p.preset.is_empty() => {
                bail!("[plan] needs `preset` (a model shape) or `init` (a Hugging Face folder to start from)")
            }
            None => {
                crate::model::ModelSpec::preset(&p.preset, 50_000)?;
            }
        }
        if p.seeds.is_empty() || self.targets.is_empty() {
            bail!("a plan needs at least one seed and one target");
        }
        // Every float: NaN and infinities are refused by name, before any comparison.
        let positive = |what: String, x: f64| -> Result<()> {
            if !x.is_finite() || x <= 0.0 {
                bail!("{what} is {x}; it must be a finite number above 0");
            }
            Ok(())
        };
        positive("[plan] lr".into(), p.lr)?;
        if !p.min_lr.is_finite() || p.min_lr < 0.0 || p.min_lr > p.lr {
            bail!(
                "[plan] min_lr is {}; it must be a finite number from 0 to lr ({})",
                p.min_lr,
                p.lr
            );
        }
        for t in &self.targets {
            positive(format!("target `{}`: lr", t.name), t.lr)?;
            if t.steps == 0 {
                bail!("target `{}`: steps must be at least 1", t.name);
            }
            if t.seq_len.is_some_and(|l| l < 2) {
                bail!("target `{}`: seq_len must be at least 2", t.name);
            }
        }
        if p.total_steps < 2 || p.batch_size == 0 || p.seq_len < 2 || p.eval_tokens == 0 {
            bail!("[plan] needs total_steps ≥ 2, batch_size ≥ 1, seq_len ≥ 2 and eval_tokens ≥ 1");
        }
        for v in self.midtrain.iter().chain(&self.cpt) {
            if v.start == 0 || v.start >= p.total_steps {
                bail!(
                    "variant `{}`: start {} must be between 1 and total_steps − 1 ({})",
                    v.mix,
                    v.start,
                    p.total_steps - 1
                );
            }
        }
        for v in &self.midtrain {
            match v.weight {
                Some(w) if w > 0.0 && w < 1.0 => {}
                _ => bail!("midtrain variant `{}` needs a weight between 0 and 1 (CPT is the weight-1 case)", v.mix),
            }
        }
        Ok(())
    }

    /// Every corpus the plan names.
    pub fn corpora(&self) -> Vec<String> {
        let mut v: BTreeSet<String> = BTreeSet::new();
        v.insert(self.plan.pretrain.clone());
        v.extend(self.midtrain.iter().chain(&self.cpt).map(|x| x.mix.clone()));
        v.extend(self.targets.iter().map(|t| t.name.clone()));
        v.into_iter().collect()
    }

    /// The runs of the grid, in execution order (seed, variant, target).
    pub fn runs(&self, data: &Path) -> Vec<PlannedRun> {
        let p = &self.plan;
        let mut validation: Vec<String> = self.targets.iter().map(|t| t.name.clone()).collect();
        validation.push(p.pretrain.clone());
        validation.dedup();
        let base_start = self
            .midtrain
            .iter()
            .chain(&self.cpt)
            .map(|v| v.start)
            .min()
            .unwrap_or(p.total_steps / 2);
        let mut variants: Vec<(RunKind, String, f64, u64)> =
            vec![(RunKind::Base, p.pretrain.clone(), 0.0, base_start)];
        variants.extend(self.midtrain.iter().map(|v| {
            (
                RunKind::Midtrain,
                v.mix.clone(),
                v.weight.unwrap_or(0.0),
                v.start,
            )
        }));
        variants.extend(
            self.cpt
                .iter()
                .map(|v| (RunKind::Cpt, v.mix.clone(), 1.0, v.start)),
        );
        let mut out = Vec::new();
        for &seed in &p.seeds {
            for (kind, mix, w, start) in &variants {
                for t in &self.targets {
                    let run = RunSection {
                        name: String::new(),
                        preset: p.preset.clone(),
                        init: p.init.clone(),
                        seed,
                        data: data.to_path_buf(),
                        validation: validation.clone(),
                        eval_every: u64::MAX / 4,
                        eval_tokens: p.eval_tokens,
                        checkpoint_every: u64::MAX / 4,
                        keep_checkpoints: 0,
                    };
                    let sched = Schedule {
                        lr: p.lr,
                        min_lr: p.min_lr,
                        warmup: p.warmup,
                        total_steps: p.total_steps,
                    };
                    let second: BTreeMap<String, f64> = match kind {
                        RunKind::Base => [(p.pretrain.clone(), 1.0)].into(),
                        RunKind::Midtrain => {
                            [(p.pretrain.clone(), 1.0 - w), (mix.clone(), *w)].into()
                        }
                        RunKind::Cpt => [(mix.clone(), 1.0)].into(),
                    };
                    let phase =
                        |name: &str,
                         kind: PhaseKind,
                         steps: u64,
                         mixture: BTreeMap<String, f64>,
                         schedule: ScheduleSpec| PhaseConfig {
                            name: name.into(),
                            kind,
                            steps: Some(steps),
                            epochs: None,
                            batch_size: Some(p.batch_size),
                            grad_accum: Some(1),
                            seq_len: Some(p.seq_len),
                            mixture,
                            source: None,
                            schedule,
                            optimizer: Some(Optimizer::default()),
                        };
                    let second_kind = match kind {
                        RunKind::Cpt => PhaseKind::Cpt,
                        _ => PhaseKind::Midtrain,
                    };
                    let mut sft = phase(
                        "sft",
                        PhaseKind::Sft,
                        t.steps,
                        BTreeMap::new(),
                        ScheduleSpec::New(Schedule {
                            lr: t.lr,
                            min_lr: 0.0,
                            warmup: 0,
                            total_steps: 0,
                        }),
                    );
                    sft.source = Some(t.name.clone());
                    sft.seq_len = Some(t.seq_len.unwrap_or(p.seq_len));
                    let phases = vec![
                        phase(
                            "pretrain",
                            PhaseKind::Pretrain,
                            *start,
                            [(p.pretrain.clone(), 1.0)].into(),
                            ScheduleSpec::New(sched.clone()),
                        ),
                        phase(
                            if *kind == RunKind::Cpt {
                                "cpt"
                            } else {
                                "midtrain"
                            },
                            second_kind,
                            p.total_steps - start,
                            second,
                            ScheduleSpec::Continue("continue".into()),
                        ),
                        sft,
                    ];
                    let kind_s = kind.name();
                    let name = match kind {
                        RunKind::Base => format!("seed{seed}-base-{}", t.name),
                        _ => format!("seed{seed}-{kind_s}-{mix}-w{w}-s{start}-{}", t.name),
                    };
                    let mut run = run;
                    run.name = name.clone();
                    out.push(PlannedRun {
                        name,
                        kind: *kind,
                        mix: mix.clone(),
                        weight: *w,
                        start: *start,
                        target: t.name.clone(),
                        seed,
                        config: RunConfig { run, phases },
                    });
                }
            }
        }
        out
    }
}

/// Store key of a run's first `done` phases.
pub fn prefix_key(cfg: &RunConfig, done: usize) -> String {
    let mut run = cfg.run.clone();
    run.name.clear();
    let bytes = serde_json::to_vec(&(&run, &cfg.phases[..done])).expect("config serialises");
    mtkit::util::digest::hex(&Sha256::digest(bytes))[..24].to_string()
}

/// Steps before the end of phase `j` (exclusive of later phases).
fn steps_through(cfg: &RunConfig, j: usize) -> u64 {
    cfg.phases[..=j].iter().map(|p| p.steps.unwrap_or(0)).sum()
}

/// For each run: the longest reusable prefix (phases done) and the steps it will execute,
/// given which prefixes are already stored (updated as runs are planned).
pub fn schedule(
    runs: &[PlannedRun],
    stored: &mut BTreeSet<String>,
    finished: &dyn Fn(&PlannedRun) -> bool,
) -> Vec<(usize, u64)> {
    runs.iter()
        .map(|r| {
            if finished(r) {
                return (r.config.phases.len(), 0);
            }
            let n = r.config.phases.len();
            let reuse = (1..=n)
                .rev()
                .find(|&j| stored.contains(&prefix_key(&r.config, j)))
                .unwrap_or(0);
            for j in 1..=n {
                stored.insert(prefix_key(&r.config, j));
            }
            let total = steps_through(&r.config, n - 1);
            let skip = if reuse == 0 {
                0
            } else {
                steps_through(&r.config, reuse - 1)
            };
            (reuse, total - skip)
        })
        .collect()
}

/// One row of runs.csv.
#[derive(Clone, Debug, Serialize)]
pub struct RunRow {
    /// Model preset.
    pub preset: String,
    /// Candidate (pretraining corpus for base).
    pub mix: String,
    /// Candidate weight.
    #[serde(serialize_with = "fifteen_digits")]
    pub weight: f64,
    /// Start step.
    pub start_step: u64,
    /// Start as a fraction of total steps.
    #[serde(serialize_with = "fifteen_digits")]
    pub start_frac: f64,
    /// base, midtrain or cpt.
    pub kind: RunKind,
    /// Target.
    pub target: String,
    /// Seed.
    pub seed: u64,
    /// Target validation loss after SFT.
    #[serde(serialize_with = "fifteen_digits")]
    pub target_loss: f64,
    /// General validation loss after SFT (forgetting).
    #[serde(serialize_with = "fifteen_digits")]
    pub general_loss: f64,
    /// Tokens delivered per source, `name:tokens;...`.
    pub tokens: String,
    /// PA of the midtraining mixture for the target.
    #[serde(serialize_with = "fifteen_digits")]
    pub pa: f64,
    /// Relative improvement over the base run of the same seed and target.
    #[serde(serialize_with = "fifteen_digits")]
    pub ri: f64,
}

/// Floats in runs.csv carry fifteen significant digits (empty for NaN), as every mtkit CSV.
fn fifteen_digits<S: serde::Serializer>(x: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&mtkit::util::numfmt::num(*x))
}

/// The rows of runs.csv: each run's target and general losses after SFT, the proximity
/// advantage of its midtraining mixture for its target (the paper's metric over `dists`, the
/// unigram distributions of the plan's corpora), and its relative improvement over the base
/// run of the same seed and target, RI = (L_base − L) / L_base.
pub fn runs_table(
    plan: &Plan,
    runs: &[PlannedRun],
    summaries: &BTreeMap<String, Summary>,
    dists: &BTreeMap<String, mtkit::analysis::proximity::Dist>,
) -> Result<Vec<RunRow>> {
    use mtkit::analysis::proximity::{similarity, Metric, MetricOptions};
    let mo = MetricOptions::default();
    let general = &plan.plan.pretrain;
    let mut rows: Vec<RunRow> = Vec::new();
    for r in runs {
        let s = summaries
            .get(&r.name)
            .ok_or_else(|| anyhow!("run {} has no summary", r.name))?;
        let (p, t) = (&dists[general], &dists[&r.target]);
        let q = match r.kind {
            RunKind::Base => p.clone(),
            _ => p.blend(&dists[&r.mix], r.weight),
        };
        let pa = similarity(Metric::Paper, &q, t, &mo)? - similarity(Metric::Paper, p, t, &mo)?;
        let loss = |n: &str| {
            s.final_losses
                .get(n)
                .copied()
                .ok_or_else(|| anyhow!("run {} has no validation loss for `{n}`", r.name))
        };
        rows.push(RunRow {
            preset: plan.plan.preset.clone(),
            mix: r.mix.clone(),
            weight: r.weight,
            start_step: r.start,
            start_frac: r.start as f64 / plan.plan.total_steps as f64,
            kind: r.kind,
            target: r.target.clone(),
            seed: r.seed,
            target_loss: loss(&r.target)?,
            general_loss: loss(general)?,
            tokens: s
                .tokens_delivered
                .iter()
                .map(|(k, v)| format!("{k}:{v}"))
                .collect::<Vec<_>>()
                .join(";"),
            pa,
            ri: f64::NAN,
        });
    }
    let base: BTreeMap<(u64, String), f64> = rows
        .iter()
        .filter(|r| r.kind == RunKind::Base)
        .map(|r| ((r.seed, r.target.clone()), r.target_loss))
        .collect();
    for r in &mut rows {
        let b = base[&(r.seed, r.target.clone())];
        r.ri = (b - r.target_loss) / b;
    }
    Ok(rows)
}

/// Writes runs.csv (atomically): a header of the row's fields, then one row per run.
pub fn write_runs_csv(path: &Path, rows: &[RunRow]) -> Result<()> {
    let mut w = csv::Writer::from_writer(Vec::new());
    for r in rows {
        w.serialize(r)?;
    }
    mtkit::util::paths::write_atomic_bytes(path, &w.into_inner()?)
}

/// Tokenizes, into `data`, the plan's corpora that have no token files there yet (all
/// documents, the plan's validation documents held out); returns the names tokenized.
pub fn tokenize_missing(
    plan: &Plan,
    cards: &[mtkit::data::catalog::Card],
    tok: &mtkit::tokenize::Tokenizer,
    data: &Path,
    progress: &dyn mtkit::util::progress::Progress,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for card in cards {
        if !data.join(&card.name).join("meta.json").exists() {
            let spec = mtkit::data::corpus::SampleSpec {
                max_docs: None,
                ..Default::default()
            };
            mtkit::export::tokens::write(card, tok, &spec, plan.plan.val_docs, data, progress)?;
            done.push(card.name.clone());
        }
    }
    Ok(done)
}

/// The unigram distributions PA is computed from: each corpus profiled with the paper's
/// sampling (cached like any profile).
pub fn pa_distributions(
    cards: &[mtkit::data::catalog::Card],
    tok: &mtkit::tokenize::Tokenizer,
) -> Result<BTreeMap<String, mtkit::analysis::proximity::Dist>> {
    let opts = mtkit::profile::ProfileOptions::paper_unigrams();
    let mut dists = BTreeMap::new();
    for c in cards {
        let (p, _) =
            mtkit::profile::cached_or_build(c, tok, &opts, true, &mtkit::util::progress::Silent)?;
        dists.insert(c.name.clone(), mtkit::analysis::proximity::Dist::of(&p));
    }
    Ok(dists)
}

/// Trains (or skips) every run, reusing prefixes; returns the summaries by run name.
pub fn execute(
    runs: &[PlannedRun],
    out: &Path,
    compute: Compute,
    resume: bool,
    obs: &dyn Observer,
    log: &dyn Fn(&str),
) -> Result<BTreeMap<String, Summary>> {
    let store = out.join("prefixes");
    std::fs::create_dir_all(&store)?;
    let mut done = BTreeMap::new();
    for r in runs {
        let dir = out.join("runs").join(&r.name);
        let summary_path = dir.join("summary.json");
        if summary_path.exists() {
            let s: Summary = serde_json::from_str(&std::fs::read_to_string(&summary_path)?)?;
            log(&format!("{}: finished earlier, skipped", r.name));
            done.insert(r.name.clone(), s);
            continue;
        }
        let has_ckpt = dir
            .join("checkpoints")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        if has_ckpt && !resume {
            bail!(
                "{} holds an unfinished run: pass --resume to continue it",
                dir.display()
            );
        }
        let mut t = Trainer::new(
            r.config.clone(),
            &r.config.run.data,
            &dir,
            compute,
            has_ckpt,
        )?;
        let n = r.config.phases.len();
        if !has_ckpt {
            if let Some(j) = (1..=n).rev().find(|&j| {
                store
                    .join(format!("{}.safetensors", prefix_key(&r.config, j)))
                    .exists()
            }) {
                t.start_from(&store.join(format!("{}.safetensors", prefix_key(&r.config, j))))?;
                log(&format!(
                    "{}: starts from the stored checkpoint after `{}` (step {})",
                    r.name,
                    r.config.phases[j - 1].name,
                    steps_through(&r.config, j - 1)
                ));
            }
        }
        let before = t.state.global_step;
        let s = t
            .run(obs, None)?
            .ok_or_else(|| anyhow!("run {} stopped early", r.name))?;
        log(&format!("{}: trained {} steps", r.name, s.steps - before));
        for j in 0..n - 1 {
            let key = store.join(format!("{}.safetensors", prefix_key(&r.config, j + 1)));
            if let Some(ck) = t.checkpoint_at(steps_through(&r.config, j)) {
                if !key.exists() {
                    std::fs::rename(&ck, &key).or_else(|_| std::fs::copy(&ck, &key).map(|_| ()))?;
                }
            }
        }
        // The run's own checkpoints are not needed once it is summarised.
        let _ = std::fs::remove_dir_all(dir.join("checkpoints"));
        done.insert(r.name.clone(), s);
    }
    Ok(done)
}
