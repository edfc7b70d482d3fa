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
    if tch::Cuda::is_available() {
        let device = tch::Device::Cuda(0);
        let order = mtkit_train::trainer::configure_attention(device)?;
        let names: Vec<&str> = order.iter().map(|b| b.name()).collect();
        // What SDPA picks for pythia-160m's attention in bf16 at 2,048 tokens.
        let q = tch::Tensor::zeros([1, 12, 2048, 64], (tch::Kind::BFloat16, device));
        let choice = tch::Tensor::internal_fused_sdp_choice::<tch::Tensor>(
            &q, &q, &q, None, 0.0, true, None, false,
        );
        println!(
            "CUDA: {} device(s), compute capability {}; SDPA order {}; bf16 [1, 12, 2048, 64] causal picks {}",
            tch::Cuda::device_count(),
            mtkit_train::shim::cuda_capability(0)
                .map(|c| format!("{}.{}", c / 10, c % 10))
                .unwrap_or_else(|| "unknown".into()),
            names.join(" > "),
            mtkit_train::shim::SdpBackend::from_code(choice).map_or("?", |b| b.name())
        );
    }
    Ok(())
}
