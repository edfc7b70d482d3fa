//! Run configs: a run is data, a TOML file with a `[run]` table and a list of `[[phases]]`.
//!
//! ```toml
//! [run]
//! name = "tiny-demo"
//! preset = "tiny"                        # model preset (see `mtkit model info`)
//! seed = 1234                            # init and data-sampling seed
//! data = "../out/tokens"                 # `mtkit tokenize` output, relative to this file
//! validation = ["demo-docstring", "demo-web"]   # val splits evaluated (target, forgetting)
//! eval_every = 20                        # steps between evaluations (and at each phase end)
//! eval_tokens = 16384                    # tokens (or SFT examples × length) per evaluation
//! checkpoint_every = 20                  # steps between checkpoints (and at each phase end)
//! keep_checkpoints = 2                   # keep the last 2 and those at phase ends (0: all)
//!
//! [[phases]]
//! name = "pretrain"
//! kind = "pretrain"                      # pretrain | midtrain | cpt | sft
//! steps = 40                             # or `epochs` (sft)
//! batch_size = 8                         # sequences per micro-batch
//! grad_accum = 1                         # micro-batches per optimizer step
//! seq_len = 64
//! mixture = { demo-web = 1.0 }           # token weights, summing to 1
//! schedule = { lr = 3e-3, min_lr = 3e-4, warmup = 6, total_steps = 60 }
//! optimizer = { weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0 }
//!
//! [[phases]]
//! name = "midtrain"
//! kind = "midtrain"
//! steps = 20
//! mixture = { demo-web = 0.8, demo-code = 0.2 }
//! schedule = "continue"                  # same LR schedule and optimizer state
//!
//! [[phases]]
//! name = "sft"
//! kind = "sft"
//! epochs = 1
//! source = "demo-docstring"
//! seq_len = 128
//! schedule = { lr = 1e-3, min_lr = 0.0, warmup = 3, total_steps = 0 }  # 0: the phase's steps
//! ```
//!
//! Fields a phase leaves out (batch_size, grad_accum, seq_len, optimizer) are taken from the
//! phase before it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The whole run.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Run-wide settings.
    pub run: RunSection,
    /// Phases, in order.
    pub phases: Vec<PhaseConfig>,
}

/// `[run]`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// Run name.
    pub name: String,
    /// Model preset; may be left out when `init` gives the shape (when both are given, they
    /// must agree).
    #[serde(default)]
    pub preset: String,
    /// A Hugging Face GPT-NeoX folder to start from (`mtkit model export` writes one; so does
    /// transformers' `save_pretrained`), relative to the config file: its weights replace the
    /// random initialisation, and its optimizer state is taken when mtkit exported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<PathBuf>,
    /// Seed of initialisation and data sampling.
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Folder of tokenized corpora (`mtkit tokenize -o DIR`), relative to the config file.
    pub data: PathBuf,
    /// Validation splits to evaluate.
    #[serde(default)]
    pub validation: Vec<String>,
    /// Steps between evaluations.
    #[serde(default = "default_every")]
    pub eval_every: u64,
    /// Tokens per evaluation of each validation set.
    #[serde(default = "default_eval_tokens")]
    pub eval_tokens: u64,
    /// Steps between checkpoints.
    #[serde(default = "default_every")]
    pub checkpoint_every: u64,
    /// Checkpoints kept besides those at phase ends: the last `keep_checkpoints` (0 keeps
    /// all). Two, so that a resume can fall back to the one before when the latest is damaged.
    #[serde(default = "default_keep_checkpoints")]
    pub keep_checkpoints: u64,
}

fn default_keep_checkpoints() -> u64 {
    2
}

fn default_seed() -> u64 {
    1234
}
fn default_every() -> u64 {
    50
}
fn default_eval_tokens() -> u64 {
    16384
}

/// What a phase trains on and how.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PhaseKind {
    /// General data.
    Pretrain,
    /// A new mixture at step t on the same schedule and optimizer state.
    Midtrain,
    /// Continued pretraining: specialized data only.
    Cpt,
    /// Fine-tuning on a target's examples, prompt tokens masked.
    Sft,
}

/// An LR schedule: linear warmup, then cosine to a floor.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Peak learning rate.
    pub lr: f64,
    /// Floor the cosine decays to.
    #[serde(default)]
    pub min_lr: f64,
    /// Warmup steps.
    #[serde(default)]
    pub warmup: u64,
    /// Steps the schedule spans (it may run past this phase: a later `continue` phase goes on
    /// along it); 0 means this phase's steps.
    #[serde(default)]
    pub total_steps: u64,
}

impl Schedule {
    /// The learning rate at step `s` of the schedule.
    pub fn lr_at(&self, s: u64, phase_steps: u64) -> f64 {
        let total = if self.total_steps == 0 {
            phase_steps
        } else {
            self.total_steps
        };
        if s < self.warmup {
            return self.lr * (s + 1) as f64 / self.warmup as f64;
        }
        if s >= total {
            return self.min_lr;
        }
        let span = (total - self.warmup).max(1) as f64;
        let t = (s - self.warmup) as f64 / span;
        self.min_lr + 0.5 * (self.lr - self.min_lr) * (1.0 + (std::f64::consts::PI * t).cos())
    }
}

/// A phase's schedule: a new one, or the previous phase's continued.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum ScheduleSpec {
    /// `"continue"`.
    Continue(String),
    /// A fresh schedule (and fresh optimizer state).
    New(Schedule),
}

/// AdamW settings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Optimizer {
    /// Decoupled weight decay, applied to weight matrices only.
    #[serde(default = "wd")]
    pub weight_decay: f64,
    /// β1.
    #[serde(default = "b1")]
    pub beta1: f64,
    /// β2.
    #[serde(default = "b2")]
    pub beta2: f64,
    /// ε.
    #[serde(default = "eps")]
    pub eps: f64,
    /// Gradient clipping by global norm (0: off).
    #[serde(default = "clip")]
    pub grad_clip: f64,
}

fn wd() -> f64 {
    0.1
}
fn b1() -> f64 {
    0.9
}
fn b2() -> f64 {
    0.95
}
fn eps() -> f64 {
    1e-8
}
fn clip() -> f64 {
    1.0
}

impl Default for Optimizer {
    fn default() -> Self {
        Optimizer {
            weight_decay: wd(),
            beta1: b1(),
            beta2: b2(),
            eps: eps(),
            grad_clip: clip(),
        }
    }
}

/// One `[[phases]]` entry as written.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PhaseConfig {
    /// Phase name (metrics and checkpoints use it).
    pub name: String,
    /// Phase kind.
    pub kind: PhaseKind,
    /// Optimizer steps.
    #[serde(default)]
    pub steps: Option<u64>,
    /// SFT: passes over the examples (instead of steps).
    #[serde(default)]
    pub epochs: Option<f64>,
    /// Sequences per micro-batch.
    #[serde(default)]
    pub batch_size: Option<u64>,
    /// Micro-batches per optimizer step.
    #[serde(default)]
    pub grad_accum: Option<u64>,
    /// Sequence length.
    #[serde(default)]
    pub seq_len: Option<u64>,
    /// Token weights per source (pretrain, midtrain, cpt).
    #[serde(default)]
    pub mixture: BTreeMap<String, f64>,
    /// SFT source.
    #[serde(default)]
    pub source: Option<String>,
    /// LR schedule.
    pub schedule: ScheduleSpec,
    /// AdamW settings.
    #[serde(default)]
    pub optimizer: Option<Optimizer>,
}

/// A phase with every inherited field filled in and checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Phase {
    /// Name.
    pub name: String,
    /// Kind.
    pub kind: PhaseKind,
    /// Optimizer steps.
    pub steps: u64,
    /// Sequences per micro-batch.
    pub batch_size: u64,
    /// Micro-batches per step.
    pub grad_accum: u64,
    /// Sequence length.
    pub seq_len: u64,
    /// Sources and weights (for SFT: the one source, weight 1).
    pub mixture: Vec<(String, f64)>,
    /// The schedule this phase follows, and whether it continues the previous phase's.
    pub schedule: Schedule,
    /// Whether the schedule and optimizer state carry on from the previous phase.
    pub continues: bool,
    /// AdamW.
    pub optimizer: Optimizer,
}

impl Phase {
    /// Tokens per optimizer step: sequences per micro-batch × seq_len × micro-batches (SFT
    /// padding included).
    pub fn tokens_per_step(&self) -> u64 {
        self.batch_size * self.seq_len * self.grad_accum
    }
}

impl RunConfig {
    /// Reads and checks a config; `data` is resolved against the file's folder.
    pub fn load(path: &Path) -> Result<(RunConfig, PathBuf)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read run config {}", path.display()))?;
        let cfg: RunConfig = toml::from_str(&text).map_err(|e| {
            anyhow!(
                "run config {} is not valid: {}",
                path.display(),
                e.to_string().trim_end()
            )
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let data = if cfg.run.data.is_absolute() {
            cfg.run.data.clone()
        } else {
            base.join(&cfg.run.data)
        };
        let mut cfg = cfg;
        if let Some(init) = &cfg.run.init {
            cfg.run.init = Some(base.join(init));
        }
        Ok((cfg, data))
    }

    /// The phases with inherited fields filled in; `sft_examples(source, seq_len)` gives the
    /// number of training examples of an SFT source that phase trains on at that sequence
    /// length (for `epochs`).
    pub fn resolve(&self, sft_examples: &dyn Fn(&str, u64) -> Result<u64>) -> Result<Vec<Phase>> {
        if self.phases.is_empty() {
            bail!("run config has no [[phases]]");
        }
        let mut out: Vec<Phase> = Vec::new();
        for (i, p) in self.phases.iter().enumerate() {
            let prev = out.last();
            let ctx = |m: String| anyhow!("phase {} (`{}`): {m}", i + 1, p.name);
            let batch_size = p
                .batch_size
                .or(prev.map(|x| x.batch_size))
                .ok_or_else(|| ctx("needs batch_size".into()))?;
            let grad_accum = p.grad_accum.or(prev.map(|x| x.grad_accum)).unwrap_or(1);
            let seq_len = p
                .seq_len
                .or(prev.map(|x| x.seq_len))
                .ok_or_else(|| ctx("needs seq_len".into()))?;
            let optimizer = p
                .optimizer
                .clone()
                .or(prev.map(|x| x.optimizer.clone()))
                .unwrap_or_default();
            if batch_size == 0 || grad_accum == 0 || seq_len < 2 {
                return Err(ctx(
                    "batch_size and grad_accum must be positive, seq_len at least 2".into(),
                ));
            }
            let mixture: Vec<(String, f64)> = match p.kind {
                PhaseKind::Sft => {
                    if !p.mixture.is_empty() {
                        return Err(ctx("an sft phase names one `source`, not a mixture".into()));
                    }
                    vec![(
                        p.source
                            .clone()
                            .ok_or_else(|| ctx("an sft phase needs `source`".into()))?,
                        1.0,
                    )]
                }
                _ => {
                    if p.source.is_some() {
                        return Err(ctx("`source` is for sft phases; give a `mixture`".into()));
                    }
                    if p.mixture.is_empty() {
                        return Err(ctx("needs a `mixture` of sources and token weights".into()));
                    }
                    if let Some((n, w)) =
                        p.mixture.iter().find(|(_, w)| !w.is_finite() || **w <= 0.0)
                    {
                        return Err(ctx(format!(
                            "weight of `{n}` is {w}; weights must be positive"
                        )));
                    }
                    let sum: f64 = p.mixture.values().sum();
                    if (sum - 1.0).abs() > 1e-6 {
                        return Err(ctx(format!("mixture weights sum to {sum}, not 1")));
                    }
                    if p.kind == PhaseKind::Cpt && p.mixture.len() != 1 {
                        return Err(ctx(
                            "a cpt phase trains on specialized data only: one source with weight 1"
                                .into(),
                        ));
                    }
                    p.mixture.iter().map(|(k, v)| (k.clone(), *v)).collect()
                }
            };
            let steps = match (p.steps, p.epochs) {
                (Some(s), None) => s,
                (None, Some(e)) if p.kind == PhaseKind::Sft => {
                    let n =
                        sft_examples(&mixture[0].0, seq_len).map_err(|e| ctx(format!("{e:#}")))?;
                    ((e * n as f64) / (batch_size * grad_accum) as f64).ceil() as u64
                }
                (None, Some(_)) => {
                    return Err(ctx("`epochs` is for sft phases; give `steps`".into()))
                }
                (Some(_), Some(_)) => return Err(ctx("give `steps` or `epochs`, not both".into())),
                (None, None) => return Err(ctx("needs `steps` (or `epochs` for sft)".into())),
            };
            if steps == 0 {
                return Err(ctx("has 0 steps".into()));
            }
            let (schedule, continues) = match &p.schedule {
                ScheduleSpec::New(s) => (s.clone(), false),
                ScheduleSpec::Continue(w) if w == "continue" => {
                    let prev = prev.ok_or_else(|| {
                        ctx("the first phase cannot `continue` a schedule".into())
                    })?;
                    if p.kind == PhaseKind::Sft {
                        return Err(ctx(
                            "sft starts a fresh schedule; `continue` is for midtrain and cpt"
                                .into(),
                        ));
                    }
                    (prev.schedule.clone(), true)
                }
                ScheduleSpec::Continue(w) => {
                    return Err(ctx(format!(
                        "schedule must be a table or \"continue\", not {w:?}"
                    )))
                }
            };
            // `!(x > 0.0)` is also true for NaN; infinities are refused by name.
            let finite = |what: &str, x: f64| -> std::result::Result<(), String> {
                if x.is_finite() {
                    Ok(())
                } else {
                    Err(format!("{what} is {x}; it must be a finite number"))
                }
            };
            for (what, x) in [
                ("schedule lr", schedule.lr),
                ("schedule min_lr", schedule.min_lr),
                ("optimizer weight_decay", optimizer.weight_decay),
                ("optimizer beta1", optimizer.beta1),
                ("optimizer beta2", optimizer.beta2),
                ("optimizer eps", optimizer.eps),
                ("optimizer grad_clip", optimizer.grad_clip),
            ] {
                finite(what, x).map_err(&ctx)?;
            }
            // All finite by now, so plain comparisons refuse what they should.
            if schedule.lr <= 0.0 || schedule.min_lr < 0.0 {
                return Err(ctx("schedule needs lr > 0 and min_lr ≥ 0".into()));
            }
            let o = &optimizer;
            if o.weight_decay < 0.0
                || !(0.0..1.0).contains(&o.beta1)
                || !(0.0..1.0).contains(&o.beta2)
                || o.eps <= 0.0
                || o.grad_clip < 0.0
            {
                return Err(ctx(
                    "optimizer needs weight_decay ≥ 0, 0 ≤ beta1, beta2 < 1, eps > 0 and grad_clip ≥ 0 (0: off)".into(),
                ));
            }
            out.push(Phase {
                name: p.name.clone(),
                kind: p.kind,
                steps,
                batch_size,
                grad_accum,
                seq_len,
                mixture,
                schedule,
                continues,
                optimizer,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_by_hand() {
        let s = Schedule {
            lr: 1.0,
            min_lr: 0.0,
            warmup: 2,
            total_steps: 6,
        };
        assert_eq!(s.lr_at(0, 0), 0.5);
        assert_eq!(s.lr_at(1, 0), 1.0);
        assert_eq!(s.lr_at(2, 0), 1.0); // cos(0)
        assert!((s.lr_at(4, 0) - 0.5).abs() < 1e-12); // halfway: cos(π/2)
        assert_eq!(s.lr_at(6, 0), 0.0);
    }

    fn cfg(phases: &str) -> RunConfig {
        toml::from_str(&format!(
            "[run]\nname = \"x\"\npreset = \"tiny\"\ndata = \"d\"\n{phases}"
        ))
        .unwrap()
    }

    /// NaN and infinite floats are refused like negative ones (issue 13, bug 7).
    #[test]
    fn non_finite_and_out_of_range_floats_are_refused() {
        let phase = |extra: &str| {
            cfg(&format!("[[phases]]\nname = \"pre\"\nkind = \"pretrain\"\nsteps = 4\nbatch_size = 2\nseq_len = 8\nmixture = {{ a = 1.0 }}\n{extra}\n"))
        };
        for (extra, needle) in [
            ("schedule = { lr = nan }", "schedule lr is NaN"),
            ("schedule = { lr = inf }", "schedule lr is inf"),
            (
                "schedule = { lr = 1e-3, min_lr = -inf }",
                "schedule min_lr is -inf",
            ),
            (
                "schedule = { lr = 1e-3 }\noptimizer = { eps = nan }",
                "optimizer eps is NaN",
            ),
            (
                "schedule = { lr = 1e-3 }\noptimizer = { beta1 = 1.0 }",
                "0 ≤ beta1, beta2 < 1",
            ),
            (
                "schedule = { lr = 1e-3 }\noptimizer = { grad_clip = -1.0 }",
                "grad_clip ≥ 0",
            ),
        ] {
            let e = phase(extra)
                .resolve(&|_, _| Ok(10))
                .unwrap_err()
                .to_string();
            assert!(
                e.contains(needle) && e.contains("phase 1 (`pre`)"),
                "{extra}: {e}"
            );
        }
        assert!(phase("schedule = { lr = 1e-3 }")
            .resolve(&|_, _| Ok(10))
            .is_ok());
    }

    #[test]
    fn phases_inherit_and_check() {
        let c = cfg("[[phases]]\nname = \"pre\"\nkind = \"pretrain\"\nsteps = 4\nbatch_size = 2\nseq_len = 8\nmixture = { a = 1.0 }\nschedule = { lr = 1e-3 }\n\
                     [[phases]]\nname = \"mid\"\nkind = \"midtrain\"\nsteps = 2\nmixture = { a = 0.7, b = 0.3 }\nschedule = \"continue\"\n");
        let p = c.resolve(&|_, _| Ok(10)).unwrap();
        assert_eq!(p[1].batch_size, 2);
        assert!(p[1].continues);
        let bad = cfg("[[phases]]\nname = \"pre\"\nkind = \"pretrain\"\nsteps = 4\nbatch_size = 2\nseq_len = 8\nmixture = { a = 0.5, b = 0.4 }\nschedule = { lr = 1e-3 }\n");
        assert!(bad
            .resolve(&|_, _| Ok(10))
            .unwrap_err()
            .to_string()
            .contains("sum to 0.9"));
        let bad = cfg("[[phases]]\nname = \"pre\"\nkind = \"pretrain\"\nsteps = 4\nbatch_size = 2\nseq_len = 8\nmixture = { a = 1.0 }\nschedule = \"continue\"\n");
        assert!(bad
            .resolve(&|_, _| Ok(10))
            .unwrap_err()
            .to_string()
            .contains("first phase cannot"));
        let sft = cfg("[[phases]]\nname = \"sft\"\nkind = \"sft\"\nepochs = 2\nbatch_size = 3\nseq_len = 8\nsource = \"t\"\nschedule = { lr = 1e-3 }\n");
        assert_eq!(
            sft.resolve(&|_, _| Ok(10)).unwrap()[0].steps,
            7,
            "ceil(2·10/3)"
        );
    }
}
