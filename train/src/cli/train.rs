//! `mtkit train CONFIG`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use mtkit::export::run_config::RunConfig;
use mtkit_train::trainer::{Observer, Summary, Trainer};

use super::ComputeArgs;

/// Train a Pythia-style model through the phases of a run config (pretrain → midtrain or
/// cpt → sft), writing a run folder: config.toml (a copy), metrics.csv, checkpoints/,
/// summary.json. The config format is documented in the README.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Run config (TOML).
    config: PathBuf,
    /// Run folder [default: runs/NAME].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(flatten)]
    compute: ComputeArgs,
    /// Start from a Hugging Face GPT-NeoX folder (`mtkit model export`, transformers'
    /// save_pretrained, `mtkit model pull`) instead of random weights; the same as `init` in
    /// the config's [run].
    #[arg(long, value_name = "DIR")]
    init: Option<PathBuf>,
    /// Continue from the latest checkpoint in the run folder.
    #[arg(long)]
    resume: bool,
    /// Stop (with a checkpoint) once this many steps are done in all; `--resume` goes on.
    #[arg(long, value_name = "STEPS")]
    stop_after: Option<u64>,
    /// No progress bar.
    #[arg(long, short)]
    quiet: bool,
}

struct Bar {
    pb: Option<ProgressBar>,
    start: Instant,
}

impl Bar {
    /// A step bar on stderr (none with --quiet); evaluations print above it.
    fn new(quiet: bool, total_steps: u64) -> Bar {
        let pb = (!quiet).then(|| {
            let pb = ProgressBar::new(total_steps);
            pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
            pb.set_style(
                ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} (ETA {eta})")
                    .expect("template")
                    .progress_chars("=> "),
            );
            pb
        });
        Bar {
            pb,
            start: Instant::now(),
        }
    }
}

impl Observer for Bar {
    fn step(&self, global: u64, total: u64, _phase: &str) {
        if let Some(pb) = &self.pb {
            pb.set_length(total);
            pb.set_position(global);
        }
    }
    fn progress(&self, _global: u64, phase: &str, loss: f64, lr: f64, tps: f64) {
        if let Some(pb) = &self.pb {
            pb.set_message(format!("{phase} loss {loss:.4} lr {lr:.2e} {tps:.0} tok/s"));
        }
    }
    fn warn(&self, message: &str) {
        match &self.pb {
            Some(pb) => pb.println(format!("warning: {message}")),
            None => eprintln!("warning: {message}"),
        }
    }
    fn eval(&self, global: u64, losses: &[(String, f64)]) {
        let parts: Vec<String> = losses.iter().map(|(n, l)| format!("{n} {l:.4}")).collect();
        let line = format!(
            "step {global}: val {} ({:.0}s)",
            parts.join(", "),
            self.start.elapsed().as_secs_f64()
        );
        match &self.pb {
            Some(pb) => pb.println(line),
            None => eprintln!("{line}"),
        }
    }
}

pub fn run(a: TrainArgs) -> Result<()> {
    let (mut cfg, data) = RunConfig::load(&a.config)?;
    if let Some(dir) = &a.init {
        cfg.run.init = Some(dir.clone());
    }
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.run.name));
    let compute = a.compute.resolve()?;
    let mut t = Trainer::new(cfg.clone(), &data, &out, compute, a.resume)?;
    mtkit::util::paths::write_atomic_bytes(
        &out.join("config.toml"),
        toml::to_string_pretty(&cfg)?.as_bytes(),
    )?;
    let (params, non_emb) = t.model.spec.param_counts();
    eprintln!(
        "run `{}`: {} ({params} parameters, {non_emb} non-embedding) on {:?} in {}, {} steps",
        cfg.run.name,
        t.model.spec.preset,
        compute.device,
        compute.precision.name(),
        t.total_steps()
    );
    let bar = Bar::new(a.quiet, t.total_steps());
    let summary = t.run(&bar, a.stop_after)?;
    if let Some(pb) = &bar.pb {
        pb.finish_and_clear();
    }
    print_outcome(summary.as_ref(), &t, &out);
    Ok(())
}

/// The run's end: stopped with a checkpoint, or done with its final validation losses.
fn print_outcome(summary: Option<&Summary>, t: &Trainer, out: &Path) {
    match summary {
        None => println!(
            "stopped after step {} with a checkpoint in {}; continue with --resume",
            t.state.global_step,
            out.join("checkpoints").display()
        ),
        Some(s) => {
            let losses: Vec<String> = s
                .final_losses
                .iter()
                .map(|(k, v)| format!("{k} {v:.4}"))
                .collect();
            println!(
                "done: {} steps, {} tokens in {:.1}s; final validation loss: {}",
                s.steps,
                s.tokens,
                s.wall_time_s,
                losses.join(", ")
            );
            for p in s.throughput.iter() {
                if let (Some(secs), Some(tps)) = (p.step_time_s, p.tokens_per_s) {
                    let mfu = p
                        .mfu
                        .map(|m| format!(", MFU {:.1}%", 100.0 * m))
                        .unwrap_or_default();
                    println!(
                        "phase `{}`: {:.1} ms/step (median of {} steps after warm-up), {tps:.0} tokens/s, {:.1} model TFLOP/s{mfu}",
                        p.phase,
                        secs * 1e3,
                        p.steps_timed,
                        p.model_tflops.unwrap_or(f64::NAN),
                    );
                }
            }
            if s.skipped_steps > 0 {
                println!(
                    "{} steps were skipped (non-finite loss or gradients)",
                    s.skipped_steps
                );
            }
            println!(
                "run folder: {} (metrics.csv, summary.json, checkpoints/)",
                out.display()
            );
        }
    }
}
