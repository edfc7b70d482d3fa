//! The `mtkit-train` command line (shown to users as `mtkit train|verify|model`).

use anyhow::{bail, Result};
use clap::{Args, Parser, Subcommand};

use mtkit::cli_support::args::GlobalArgs;

mod doctor;
mod model;
mod train;
mod verify;

/// mtkit's LibTorch commands: training runs, verification grids, model presets.
#[derive(Parser, Debug)]
#[command(
    name = "mtkit",
    bin_name = "mtkit",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    global: GlobalArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    Train(train::TrainArgs),
    Verify(Box<verify::VerifyArgs>),
    /// Model presets, Hugging Face export, greedy generation.
    #[command(subcommand)]
    Model(model::ModelCommand),
    /// The LibTorch part of `mtkit doctor`: which libtorch is loaded, and a tensor operation.
    Doctor,
}

/// Where and in what arithmetic `train` and `verify` compute.
#[derive(Args, Debug, Clone)]
pub struct ComputeArgs {
    /// cpu, cuda, or auto (CUDA when libtorch sees a GPU).
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// auto (bf16 autocast on CUDA, fp32 on the CPU), bf16 or fp32. bf16: matmuls and
    /// attention in bf16; LayerNorm, softmax, the loss, weights, gradients and AdamW in fp32.
    #[arg(long, default_value = "auto", value_name = "PRECISION")]
    pub precision: String,
    /// The device's peak dense TFLOP/s in that precision, to state MFU in summary.json and
    /// the closing line (e.g. 790, as measured on an H200 for bf16; 989 is its datasheet's).
    #[arg(long, env = "MTKIT_PEAK_TFLOPS", value_name = "TFLOPS")]
    pub peak_tflops: Option<f64>,
}

impl ComputeArgs {
    /// These options as arguments for a job that computes the same way.
    pub fn to_args(&self) -> Vec<String> {
        let mut v = vec![
            "--device".to_string(),
            self.device.clone(),
            "--precision".to_string(),
            self.precision.clone(),
        ];
        if let Some(p) = self.peak_tflops {
            v.extend(["--peak-tflops".to_string(), p.to_string()]);
        }
        v
    }

    /// The device, precision and peak the flags name.
    pub fn resolve(&self) -> Result<mtkit_train::trainer::Compute> {
        let device = mtkit_train::trainer::device(&self.device)?;
        let precision = mtkit_train::trainer::Precision::parse(&self.precision, device)?;
        if let Some(p) = self.peak_tflops {
            if !(p.is_finite() && p > 0.0) {
                bail!("--peak-tflops must be a positive number of TFLOP/s, not {p}");
            }
        }
        Ok(mtkit_train::trainer::Compute {
            device,
            precision,
            peak_tflops: self.peak_tflops,
        })
    }
}

/// Dispatches a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    cli.global.apply()?;
    if let Some(n) = cli.global.threads {
        tch::set_num_threads(n as i32);
        tch::set_num_interop_threads(n as i32);
    }
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Model(c) => model::run(c),
        Command::Verify(a) => verify::run(*a, &cli.global),
        Command::Doctor => doctor::run(),
    }
}
