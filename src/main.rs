//! The `mtkit` command line: parses arguments and hands off to `cli`.

use clap::Parser;

// The tokenizer allocates a few small vectors per word; glibc's malloc spends a quarter of
// profiling time on them (and on frees from other threads). See BENCHMARKS.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cli;

fn main() {
    let args = cli::Cli::parse();
    mtkit::cli_support::main_with(|| cli::run(args))
}
