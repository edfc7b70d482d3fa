//! Where work runs besides this process: Slurm job arrays for `profile --slurm` and
//! `overlap --slurm` (one [`slurm::ShardArray`], merged by the command's `merge`) and the
//! trainer's verification runs ([`slurm`]).

pub mod slurm;
