//! The built-in LibTorch trainer (feature `torch`): Pythia-style models trained through a list
//! of phases (pretrain → midtrain or cpt → sft) from token shards, with checkpoints that resume
//! exactly. Short enough to read in one sitting: `config` (the run as data), `model` (the
//! decoder), `trainer` (batches, AdamW, evaluation, checkpoints).

pub mod config;
pub mod model;
pub mod trainer;
pub mod verify;
