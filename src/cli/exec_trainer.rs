//! `mtkit train|verify|model`: handed to the `mtkit-train` binary, which links LibTorch.
//!
//! Keeping LibTorch out of this binary saves every data command its load (0.35–0.5 s).

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

/// The arguments of a command that `mtkit-train` runs, passed on as they are.
#[derive(Args, Debug)]
pub struct Passthrough {
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<OsString>,
}

/// The `mtkit-train` binary: beside this one (as `make build` leaves it), else on PATH.
pub fn trainer_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let beside = exe.with_file_name("mtkit-train");
    if beside.is_file() {
        return Ok(beside);
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("mtkit-train");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!(
        "this command runs in mtkit-train (the LibTorch half of mtkit), which is neither beside {} nor on PATH: build it with `make build` (cargo build --release --workspace)",
        exe.display()
    )
}

/// Replaces this process with `mtkit-train ARGS` (same stdin, stdout, stderr, exit status).
pub fn exec(args: Vec<OsString>) -> Result<()> {
    let bin = trainer_binary()?;
    let err = std::process::Command::new(&bin).args(args).exec();
    bail!("cannot run {}: {err}", bin.display())
}
