//! mtkit's LibTorch trainer: Pythia-style models trained through a list of phases (pretrain →
//! midtrain or cpt → sft) from token shards, with checkpoints that resume exactly, and the
//! verification grids built on it. Short enough to read in one sitting: `config` (the run as
//! data, from the mtkit library), `model` (the decoder), `trainer` (batches, AdamW, evaluation,
//! checkpoints), `verify` (plans of runs that share prefixes).
//!
//! A package of its own so that the `mtkit` binary, which runs the data commands, never loads
//! LibTorch; `mtkit train|verify|model` hand over to the `mtkit-train` binary built from here.

pub use mtkit::train::config;
pub mod model;
pub mod torch_env;
pub mod trainer;
pub mod verify;
