//! `mtkit train CONFIG` and `mtkit model info PRESET`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use mtkit::train::config::RunConfig;
use mtkit_train::model::{ModelSpec, PRESETS};
use mtkit_train::trainer::{device, Observer, Trainer};

use mtkit::cli_support::output::table;

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
    /// cpu, cuda, or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "auto")]
    device: String,
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

#[derive(Subcommand, Debug)]
pub enum ModelCommand {
    /// Parameter counts of a preset (total and non-embedding).
    Info {
        /// Preset name, or `all`.
        preset: String,
        /// Vocabulary size before padding to a multiple of 128.
        #[arg(long, default_value_t = 50_280)]
        vocab: usize,
    },
}

struct Bar {
    pb: Option<ProgressBar>,
    start: Instant,
}

impl Observer for Bar {
    fn step(&self, global: u64, total: u64, phase: &str, loss: f64, lr: f64, tps: f64) {
        if let Some(pb) = &self.pb {
            pb.set_length(total);
            pb.set_position(global);
            pb.set_message(format!("{phase} loss {loss:.4} lr {lr:.2e} {tps:.0} tok/s"));
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
    let (cfg, data) = RunConfig::load(&a.config)?;
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(&cfg.run.name));
    let dev = device(&a.device)?;
    let mut t = Trainer::new(cfg.clone(), &data, &out, dev, a.resume)?;
    mtkit::paths::write_atomic_bytes(
        &out.join("config.toml"),
        toml::to_string_pretty(&cfg)?.as_bytes(),
    )?;
    let pb = (!a.quiet).then(|| {
        let pb = ProgressBar::new(t.total_steps());
        pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        pb.set_style(
            ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} (ETA {eta})")
                .expect("template")
                .progress_chars("=> "),
        );
        pb
    });
    let (params, non_emb) = t.model.spec.param_counts();
    eprintln!(
        "run `{}`: {} ({params} parameters, {non_emb} non-embedding) on {dev:?}, {} steps",
        cfg.run.name,
        t.model.spec.preset,
        t.total_steps()
    );
    let bar = Bar {
        pb,
        start: Instant::now(),
    };
    let summary = t.run(&bar, a.stop_after)?;
    if let Some(pb) = &bar.pb {
        pb.finish_and_clear();
    }
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
            println!(
                "run folder: {} (metrics.csv, summary.json, checkpoints/)",
                out.display()
            );
        }
    }
    Ok(())
}

pub fn model(cmd: ModelCommand) -> Result<()> {
    let ModelCommand::Info { preset, vocab } = cmd;
    let names: Vec<&str> = if preset == "all" {
        PRESETS.iter().map(|p| p.0).collect()
    } else {
        vec![preset.as_str()]
    };
    let mut rows = Vec::new();
    for n in names {
        let s = ModelSpec::preset(n, vocab)?;
        let (total, non_emb) = s.param_counts();
        rows.push(vec![
            n.to_string(),
            s.layers.to_string(),
            s.d_model.to_string(),
            s.heads.to_string(),
            s.vocab.to_string(),
            total.to_string(),
            non_emb.to_string(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "preset",
                "layers",
                "d_model",
                "heads",
                "vocab",
                "parameters",
                "non-embedding"
            ],
            &rows
        )
    );
    Ok(())
}
