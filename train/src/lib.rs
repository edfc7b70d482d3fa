//! mtkit's LibTorch trainer: Pythia-style models trained through a list of phases (pretrain →
//! midtrain or cpt → sft) from token files, with checkpoints that resume exactly, and the
//! verification grids built on it. Short enough to read in one sitting: `run_config` (the run
//! as data, from the mtkit library), `model/` (the decoder and its chunked loss head; `files`:
//! a model from a checkpoint, a run folder or an HF folder), `trainer/` (the loop and its step;
//! `batches`: the data it reads; `checkpoint`: writing, pruning and resuming), `optim` (fused
//! AdamW on the device), `throughput` (step time, model FLOPs, MFU), `shim` (the LibTorch calls
//! tch does not generate), `verify/` (plans of runs that share prefixes; `slurm`: a grid as
//! Slurm jobs), `hf` (Hugging Face GPT-NeoX folders in and out).
//!
//! A package of its own so that the `mtkit` binary, which runs the data commands, never loads
//! LibTorch; `mtkit train|verify|model` hand over to the `mtkit-train` binary built from here.

pub use mtkit::export::run_config;
pub mod hf;
pub mod model;
pub mod optim;
pub mod shim;
pub mod throughput;
pub mod torch_env;
pub mod trainer;
pub mod verify;
