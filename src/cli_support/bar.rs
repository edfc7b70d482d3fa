//! Progress bars for the library's [`Progress`] callbacks.

use crate::util::progress::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// A progress bar on stderr: documents, documents/s, MB/s, tokens.
pub struct Bar {
    bar: Mutex<Option<ProgressBar>>,
    /// Set by `start_counting`: a plain count of these units, no bytes or tokens.
    unit: Mutex<Option<String>>,
    quiet: bool,
    bytes: AtomicU64,
    tokens: AtomicU64,
    started: Mutex<Instant>,
}

impl Bar {
    pub fn new(quiet: bool) -> Bar {
        Bar {
            bar: Mutex::new(None),
            unit: Mutex::new(None),
            quiet,
            bytes: AtomicU64::new(0),
            tokens: AtomicU64::new(0),
            started: Mutex::new(Instant::now()),
        }
    }
}

impl Progress for Bar {
    fn start(&self, label: &str, total: Option<u64>) {
        if self.quiet {
            return;
        }
        *self.unit.lock().unwrap() = None;
        let pb = match total {
            Some(n) => ProgressBar::new(n),
            None => ProgressBar::new_spinner(),
        };
        pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let tmpl = if total.is_some() {
            "{prefix:>16} [{bar:30}] {pos}/{len} docs {msg} ({eta})"
        } else {
            "{prefix:>16} {spinner} {pos} docs {msg}"
        };
        pb.set_style(
            ProgressStyle::with_template(tmpl)
                .expect("template")
                .progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        self.bytes.store(0, Ordering::Relaxed);
        self.tokens.store(0, Ordering::Relaxed);
        *self.started.lock().unwrap() = Instant::now();
        *self.bar.lock().unwrap() = Some(pb);
    }

    fn advance(&self, docs: u64, bytes: u64, tokens: u64) {
        let b = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
        let t = self.tokens.fetch_add(tokens, Ordering::Relaxed) + tokens;
        if let Some(pb) = self.bar.lock().unwrap().as_ref() {
            pb.inc(docs);
            if self.unit.lock().unwrap().is_some() {
                return;
            }
            let secs = self
                .started
                .lock()
                .unwrap()
                .elapsed()
                .as_secs_f64()
                .max(1e-9);
            pb.set_message(format!(
                "{:.0} docs/s, {:.1} MB/s, {} tokens",
                pb.position() as f64 / secs,
                b as f64 / 1e6 / secs,
                t
            ));
        }
    }

    fn finish(&self) {
        if let Some(pb) = self.bar.lock().unwrap().take() {
            pb.finish_and_clear();
        }
    }

    fn start_counting(&self, label: &str, total: u64, unit: &str) {
        if self.quiet {
            return;
        }
        let pb = ProgressBar::new(total);
        pb.set_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        let counted = match unit {
            "bytes" => "{bytes}/{total_bytes}".to_string(),
            _ => format!("{{pos}}/{{len}} {unit}"),
        };
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix:>16}} [{{bar:30}}] {counted} ({{eta}})"
            ))
            .expect("template")
            .progress_chars("=> "),
        );
        pb.set_prefix(label.to_string());
        *self.unit.lock().unwrap() = Some(unit.to_string());
        *self.bar.lock().unwrap() = Some(pb);
    }

    fn warn(&self, message: &str) {
        // Printed even with -q: a warning is not progress.
        match self.bar.lock().unwrap().as_ref() {
            Some(pb) => pb.suspend(|| eprintln!("mtkit: warning: {message}")),
            None => eprintln!("mtkit: warning: {message}"),
        }
    }
}
