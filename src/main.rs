//! The `mtkit` command line: parses arguments and hands off to `cli`.

use clap::Parser;

// The tokenizer allocates a few small vectors per word; glibc's malloc spends a quarter of
// profiling time on them (and on frees from other threads). See BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

fn main() {
    let args = cli::Cli::parse();
    // A libtorch other than the one tch was built for fails in obscure ways (wrong-shape
    // panics, segfaults): say so at start-up. Commands that use libtorch refuse to run.
    #[cfg(feature = "torch")]
    if let Err(e) = mtkit::torch_env::check() {
        if args.uses_torch() {
            eprintln!("mtkit: error: {e:#}");
            std::process::exit(1);
        }
        eprintln!("mtkit: warning: {e:#}");
    }
    // Large CPU tensors (the logits) are allocated every step; on 4 KiB pages that costs
    // millions of page faults. LibTorch's switch for 2 MiB transparent huge pages cut them 16×
    // and a tiny run's wall time by 20% (same losses). Set before any tensor is allocated.
    #[cfg(feature = "torch")]
    if args.uses_torch() && std::env::var_os("THP_MEM_ALLOC_ENABLE").is_none() {
        std::env::set_var("THP_MEM_ALLOC_ENABLE", "1");
    }
    // LibTorch takes each step's large tensors (the logits and their gradients: hundreds of
    // MB) from malloc, which maps every one afresh and unmaps it when freed, so the kernel
    // zeroes them again each step: a fifth of training time in perf. Served from the heap and
    // never trimmed, they are reused instead: 2× the tokens/s of `tiny` on CPU, same losses
    // (BENCHMARKS.md). The memory stays with the process until it exits.
    #[cfg(all(feature = "torch", target_os = "linux", target_env = "gnu"))]
    if args.uses_torch() {
        // SAFETY: mallopt only changes thresholds; called before any large allocation.
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
        }
    }
    if let Err(e) = cli::run(args) {
        eprintln!("mtkit: error: {e:#}");
        std::process::exit(1);
    }
}
