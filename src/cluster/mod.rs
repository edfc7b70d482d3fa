//! Where work runs besides this process: Slurm job arrays for `profile --slurm` and the
//! trainer's verification runs ([`slurm`]).

pub mod slurm;
