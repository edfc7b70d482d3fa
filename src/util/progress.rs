//! Progress reporting: the library calls a [`Progress`]; the CLI draws it.

/// Receives progress from long-running library work. Implementations must be cheap to call.
pub trait Progress: Sync {
    /// A new stage begins; `total` documents when known.
    fn start(&self, _label: &str, _total: Option<u64>) {}
    /// `docs` more documents of `bytes` bytes gave `tokens` tokens.
    fn advance(&self, _docs: u64, _bytes: u64, _tokens: u64) {}
    /// The stage is done.
    fn finish(&self) {}
    /// A stage counted in other units than documents (bootstrap replicates, say); `advance`
    /// then counts them in its first argument.
    fn start_counting(&self, label: &str, total: u64, _unit: &str) {
        self.start(label, Some(total));
    }
    /// Something the user should know that is not an error (another process replaced an
    /// output while this one worked, say). The command line prints it; silent by default.
    fn warn(&self, _message: &str) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

/// Whether every bad record skipped is named on stderr as it is found (`-v`), rather than
/// the first few kept for the summary. Process-wide, as a command's `-v` is.
static LIST_SKIPPED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Names every skipped record on stderr as it is found (on), or keeps the first few for the
/// summary (off, the default).
pub fn list_every_skipped(on: bool) {
    LIST_SKIPPED.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Whether [`list_every_skipped`] is on.
pub fn listing_every_skipped() -> bool {
    LIST_SKIPPED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Set by a host that wants long work to stop (the Python binding, on Ctrl-C): readers check
/// it between records and fail with [`Interrupted`]. Process-wide, as a signal is.
static INTERRUPT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The error of work stopped by [`interrupt`].
#[derive(Debug)]
pub struct Interrupted;

impl std::fmt::Display for Interrupted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("interrupted")
    }
}

impl std::error::Error for Interrupted {}

/// Asks running work to stop at its next check.
pub fn interrupt() {
    INTERRUPT.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Clears a request to stop (before new work starts).
pub fn clear_interrupt() {
    INTERRUPT.store(false, std::sync::atomic::Ordering::Relaxed);
}

/// Fails with [`Interrupted`] when [`interrupt`] was called; a relaxed load, cheap per record.
pub fn check_interrupt() -> anyhow::Result<()> {
    if INTERRUPT.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(Interrupted.into());
    }
    Ok(())
}

/// The signal that asked work to stop (0: none, or a host's request such as Python's Ctrl-C).
static SIGNAL: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// The signal behind the last [`interrupt`] from an [`InterruptGuard`] (`SIGINT`, `SIGTERM`),
/// for the exit status (128 + the signal, as a shell reports a process it killed).
pub fn interrupting_signal() -> Option<i32> {
    match SIGNAL.load(std::sync::atomic::Ordering::Relaxed) {
        0 => None,
        s => Some(s),
    }
}

/// While alive, Ctrl-C (SIGINT) and SIGTERM (`timeout`, `scancel`, a Slurm time limit,
/// `docker stop`) ask running work to stop ([`interrupt`]) instead of killing the process, so
/// that temporary files and folders are removed on the way out; a second signal of the same
/// kind kills as usual. Dropped, the default actions are back. Install it only around work
/// that checks [`check_interrupt`] (every corpus reader does, per record), or the first
/// signal would go unheeded until the work ends.
pub struct InterruptGuard(());

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, std::sync::atomic::Ordering::Relaxed);
    interrupt();
    // SAFETY: resetting a disposition is async-signal-safe.
    unsafe {
        libc::signal(sig, libc::SIG_DFL);
    }
}

impl InterruptGuard {
    /// Installs the handler for SIGINT and SIGTERM.
    pub fn install() -> InterruptGuard {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: the handler only stores to atomics and resets the disposition.
            unsafe {
                libc::signal(
                    sig,
                    on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
                );
            }
        }
        InterruptGuard(())
    }
}

impl Drop for InterruptGuard {
    fn drop(&mut self) {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: as above.
            unsafe {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
    }
}
