//! What the two command-line programs (`mtkit` and `mtkit-train`) share: options parsed the
//! same way everywhere, number formatting and tables, progress bars. The library's work
//! functions never call these; they report through [`crate::progress::Progress`].

pub mod args;
pub mod output;
pub mod progress;

/// Runs a command line's work and exits: status 0 on success, 1 with `mtkit: error: …` on an
/// error. Output into a pipe whose reader has gone (`mtkit data show c4 | head -1`) ends the
/// process quietly with status 0, as with other Unix tools: the reader had what it wanted.
pub fn main_with(work: impl FnOnce() -> anyhow::Result<()>) -> ! {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // `println!` panics with "failed printing to stdout: Broken pipe" when the reader
        // of a pipe has exited.
        let msg = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.contains("Broken pipe") {
            std::process::exit(0);
        }
        default(info);
    }));
    match work() {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            let broken_pipe = e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                std::process::exit(0);
            }
            if e.chain().any(|c| c.is::<crate::progress::Interrupted>()) {
                // Ctrl-C, where the work stopped itself to clean up: the shell's convention.
                eprintln!("mtkit: interrupted");
                std::process::exit(130);
            }
            eprintln!("mtkit: error: {e:#}");
            std::process::exit(1);
        }
    }
}
