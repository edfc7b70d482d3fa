//! `mtkit doctor`: what this installation uses, and whether it works.

use std::ffi::OsString;

use anyhow::{bail, Result};

/// Reports the cache, the tokenizer and its encoder, then has `mtkit-train` check LibTorch.
pub fn run(trainer_args: Vec<OsString>) -> Result<()> {
    println!("mtkit {}", mtkit::VERSION);
    println!("cache: {}", mtkit::util::paths::cache_dir().display());
    match mtkit::tokenize::Tokenizer::load(None) {
        Ok(t) => println!(
            "tokenizer: {} ({} ids, sha256 {})\n{}",
            t.path.display(),
            t.vocab_size,
            &t.sha256[..16],
            t.describe_engine()
        ),
        Err(e) => println!("tokenizer: MISSING: {e:#}"),
    }
    let bin = match super::exec_trainer::trainer_binary() {
        Ok(b) => b,
        Err(e) => {
            println!("mtkit-train: MISSING: {e:#}");
            bail!("mtkit-train is missing: training commands cannot run");
        }
    };
    println!("mtkit-train: {}", bin.display());
    use std::io::Write;
    std::io::stdout().flush()?;
    let status = std::process::Command::new(&bin)
        .args(trainer_args)
        .status()?;
    if !status.success() {
        bail!("mtkit-train's LibTorch check failed (above)");
    }
    Ok(())
}
