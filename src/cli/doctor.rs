//! `mtkit doctor`: what this installation uses, and whether it works.

use anyhow::Result;

pub fn run() -> Result<()> {
    println!("mtkit {}", mtkit::VERSION);
    println!("cache: {}", mtkit::paths::cache_dir().display());
    match mtkit::tokenize::Tokenizer::load(None) {
        Ok(t) => println!(
            "tokenizer: {} ({} ids, sha256 {})",
            t.path.display(),
            t.vocab_size,
            &t.sha256[..16]
        ),
        Err(e) => println!("tokenizer: MISSING: {e:#}"),
    }
    torch()
}

#[cfg(feature = "torch")]
fn torch() -> Result<()> {
    let lt = mtkit::torch_env::check()?;
    let dir = lt
        .lib_dir
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    println!(
        "libtorch: {} from {dir}",
        lt.version.as_deref().unwrap_or("unknown version")
    );
    let t = tch::Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
    let s = t.sum(tch::Kind::Float).double_value(&[]);
    println!(
        "libtorch check: sum([1, 2, 3]) = {s}; CUDA available: {}",
        tch::Cuda::is_available()
    );
    Ok(())
}

#[cfg(not(feature = "torch"))]
fn torch() -> Result<()> {
    println!("libtorch: not built in (built with --no-default-features)");
    Ok(())
}
