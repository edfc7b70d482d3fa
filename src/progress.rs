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
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}

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
