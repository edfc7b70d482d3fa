//! `mtkit-train`: the commands of mtkit that link LibTorch (`train`, `verify`, `model`, and
//! doctor's LibTorch check). Users run them as `mtkit train ...`, which hands over to this
//! binary; it can also be run directly.

use clap::Parser;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

fn main() {
    let args = cli::Cli::parse();
    // A libtorch other than the one tch was built for fails in obscure ways (wrong-shape
    // panics, segfaults): say so at start-up and refuse to run.
    if let Err(e) = mtkit_train::torch_env::check() {
        eprintln!("mtkit: error: {e:#}");
        std::process::exit(1);
    }
    // Large CPU tensors (the logits) are allocated every step; on 4 KiB pages that costs
    // millions of page faults. LibTorch's switch for 2 MiB transparent huge pages cut them 16×
    // and a tiny run's wall time by 20% (same losses). Set before any tensor is allocated.
    if std::env::var_os("THP_MEM_ALLOC_ENABLE").is_none() {
        std::env::set_var("THP_MEM_ALLOC_ENABLE", "1");
    }
    // LibTorch takes each step's large tensors (the logits and their gradients: hundreds of
    // MB) from malloc, which maps every one afresh and unmaps it when freed, so the kernel
    // zeroes them again each step: a fifth of training time in perf. Served from the heap and
    // never trimmed, they are reused instead: 2× the tokens/s of `tiny` on CPU, same losses
    // (BENCHMARKS.md). The memory stays with the process until it exits.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes thresholds; called before any large allocation.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
    mtkit::cli_support::main_with(|| cli::run(args))
}
