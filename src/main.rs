//! The `mtkit` command line: parses arguments and hands off to `cli`.

use clap::Parser;

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
    if let Err(e) = cli::run(args) {
        eprintln!("mtkit: error: {e:#}");
        std::process::exit(1);
    }
}
