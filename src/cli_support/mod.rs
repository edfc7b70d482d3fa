//! What the two command-line programs (`mtkit` and `mtkit-train`) share: options parsed the
//! same way everywhere, number formatting and tables, progress bars. The library's work
//! functions never call these; they report through [`crate::util::progress::Progress`].

pub mod args;
pub mod bar;
pub mod output;

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
            // Work stopped by a signal may fail with the error of whatever part noticed first
            // (a merge thread's "stopped", say): the signal is what the user needs to know.
            if e.chain()
                .any(|c| c.is::<crate::util::progress::Interrupted>())
                || crate::util::progress::interrupting_signal().is_some()
            {
                // Ctrl-C or SIGTERM, where the work stopped itself to clean up: the shell's
                // convention, 128 + the signal.
                let sig = crate::util::progress::interrupting_signal().unwrap_or(libc::SIGINT);
                let name = if sig == libc::SIGTERM {
                    "terminated (SIGTERM)"
                } else {
                    "interrupted"
                };
                eprintln!("mtkit: {name}; temporary files removed");
                std::process::exit(128 + sig);
            }
            eprintln!("mtkit: error: {e:#}");
            std::process::exit(1);
        }
    }
}
