//! `mtkit-train doctor`: the libtorch this binary loaded, and one tensor operation on it.

use anyhow::Result;

pub fn run() -> Result<()> {
    let lt = mtkit_train::torch_env::check()?;
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
