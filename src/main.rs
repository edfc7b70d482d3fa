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
    if let Err(e) = cli::run(args) {
        eprintln!("mtkit: error: {e:#}");
        std::process::exit(1);
    }
}
