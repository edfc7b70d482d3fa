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
