//! Reading a corpus for tokenizing: one reader thread renders documents and hands them out in
//! numbered batches, while the calling thread's consumer (with rayon's workers) tokenizes them.
//! Reading and tokenizing overlap; the channel between them is bounded, so memory stays at a
//! few batches. `profile` consumes the batches in any order (counts are sums), `tokenize` in
//! reading order (token files are written in it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Mutex;

use anyhow::{anyhow, bail, Result};
use rayon::prelude::*;

use crate::data::catalog::Card;
use crate::data::corpus::{read_documents_with, Document, ReadSummary, SampleSpec};
use crate::data::template::Template;
use crate::tokenize::{Encoder, Tokenizer};
use crate::util::progress::Progress;

/// Documents in reading order, numbered from 0.
pub struct Batch {
    pub seq: u64,
    pub docs: Vec<Document>,
}

/// When a batch is handed on: at `docs` documents or `bytes` bytes of text, whichever first.
/// Small batches keep workers that take whole batches finishing together.
#[derive(Clone, Copy, Debug)]
pub struct Batching {
    pub docs: usize,
    pub bytes: u64,
}

/// Reads `card` as `sample` says (rendering the `extra` templates too) on a reader thread and
/// runs `consume` on this thread with the batches as they come. `consume` may stop early by
/// setting the flag it is given (the reader then ends) and returning an error.
///
/// Returns what the read saw and `consume`'s value. An error of `consume` comes first: the
/// reader's own then is only that it was stopped.
pub fn read_in_batches<T>(
    card: &Card,
    sample: &SampleSpec,
    extra: &[Template],
    batching: Batching,
    consume: impl FnOnce(Receiver<Batch>, &AtomicBool) -> Result<T>,
) -> Result<(ReadSummary, T)> {
    read_batches_of(
        &|on_doc| read_documents_with(card, sample, extra, on_doc),
        batching,
        consume,
    )
}

/// A reader of documents: hands each to its callback in reading order.
pub type DocReader<'a> =
    dyn Fn(&mut dyn FnMut(Document) -> Result<()>) -> Result<ReadSummary> + Sync + 'a;

/// [`read_in_batches`] of any reader of documents (in-memory records, say).
pub fn read_batches_of<T>(
    read: &DocReader<'_>,
    batching: Batching,
    consume: impl FnOnce(Receiver<Batch>, &AtomicBool) -> Result<T>,
) -> Result<(ReadSummary, T)> {
    let threads = rayon::current_num_threads();
    let stop = AtomicBool::new(false);
    let (tx, rx) = sync_channel::<Batch>(2 * threads + 2);
    std::thread::scope(|s| {
        let stop = &stop;
        let reader = s.spawn(move || {
            let mut docs = Vec::with_capacity(batching.docs);
            let mut bytes = 0u64;
            let mut seq = 0u64;
            let r = read(&mut |d| {
                if stop.load(Ordering::Relaxed) {
                    bail!("reading stopped");
                }
                bytes += d.text.len() as u64;
                docs.push(d);
                if docs.len() >= batching.docs || bytes >= batching.bytes {
                    bytes = 0;
                    let batch = Batch {
                        seq,
                        docs: std::mem::take(&mut docs),
                    };
                    tx.send(batch).map_err(|_| anyhow!("reading stopped"))?;
                    seq += 1;
                }
                Ok(())
            });
            if r.is_ok() && !docs.is_empty() {
                let _ = tx.send(Batch { seq, docs });
            }
            r
        });
        let consumed = consume(rx, stop);
        if consumed.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        let read = reader
            .join()
            .map_err(|_| anyhow!("the corpus reader panicked"))?;
        let value = consumed?;
        Ok((read?, value))
    })
}

/// What [`scan_tokens`] gave: each worker's state, and the documents read.
pub struct Scanned<S> {
    /// One state per worker (and one for the calling thread), in no meaningful order.
    pub states: Vec<S>,
    /// Documents read.
    pub documents: u64,
}

/// What [`scan_tokens`] reads: which documents, each cut to how many tokens.
#[derive(Clone, Copy)]
pub struct TokenScan<'a> {
    pub tok: &'a Tokenizer,
    pub sample: &'a SampleSpec,
    pub max_tokens_per_doc: Option<usize>,
    pub progress: &'a dyn Progress,
}

/// Reads `card` (the progress line names it and `stage`), tokenizes each document on rayon's
/// workers and runs `visit(state, document, ids)` with the worker's own state, made by
/// `fresh`. Documents reach the workers in no fixed order: what `visit` gathers must not
/// depend on it (sums of integers, rows sorted afterwards). The first encoding error (by
/// reading order) stops the scan and is returned.
pub fn scan_tokens<S: Send>(
    card: &Card,
    stage: &str,
    how: TokenScan<'_>,
    fresh: &(dyn Fn() -> S + Sync),
    visit: &(dyn Fn(&mut S, &Document, &[u32]) + Sync),
) -> Result<Scanned<S>> {
    scan_tokens_of(card, stage, how, &|_| true, fresh, visit)
}

/// [`scan_tokens`] of the documents `keep` says yes to: the others are read (and counted in
/// [`Scanned::documents`]) but neither tokenized nor visited, which is most of a scan's
/// cost when few are wanted (select's read-back of its picks).
pub fn scan_tokens_of<S: Send>(
    card: &Card,
    stage: &str,
    how: TokenScan<'_>,
    keep: &(dyn Fn(&Document) -> bool + Sync),
    fresh: &(dyn Fn() -> S + Sync),
    visit: &(dyn Fn(&mut S, &Document, &[u32]) + Sync),
) -> Result<Scanned<S>> {
    let threads = rayon::current_num_threads();
    let locals: Vec<Mutex<(S, Encoder)>> = (0..threads + 1)
        .map(|_| Mutex::new((fresh(), how.tok.encoder())))
        .collect();
    let failure: Mutex<Option<(u64, anyhow::Error)>> = Mutex::new(None);
    // The bar's total: the card's record count where it is known without reading.
    let expected = card
        .resolve()
        .ok()
        .and_then(|r| crate::data::corpus::expected_documents(&r, how.sample));
    how.progress.start(
        &format!("{}: {stage}", card.name),
        expected.or(how.sample.max_docs),
    );
    let batching = Batching {
        docs: 128,
        bytes: 256 << 10,
    };
    let (summary, ()) =
        read_in_batches(card, how.sample, &[], batching, |rx, stop: &AtomicBool| {
            rx.into_iter().par_bridge().for_each(|Batch { seq, docs }| {
                if stop.load(Ordering::Relaxed) {
                    return; // drain so the reader can finish
                }
                let slot = rayon::current_thread_index().map(|i| i + 1).unwrap_or(0);
                let mut local = locals[slot].lock().expect("worker lock");
                let (state, encoder) = &mut *local;
                let (mut bytes, mut tokens) = (0u64, 0u64);
                let mut ids = Vec::new();
                for d in &docs {
                    bytes += d.text.len() as u64;
                    if !keep(d) {
                        continue;
                    }
                    ids.clear();
                    if let Err(e) = encoder.encode_into(&d.text, how.max_tokens_per_doc, &mut ids) {
                        stop.store(true, Ordering::Relaxed);
                        let mut f = failure.lock().expect("failure lock");
                        if f.as_ref().map(|(s, _)| seq < *s).unwrap_or(true) {
                            *f = Some((seq, e));
                        }
                        return;
                    }
                    visit(state, d, &ids);
                    tokens += ids.len() as u64;
                }
                drop(local);
                how.progress.advance(docs.len() as u64, bytes, tokens);
            });
            match failure.into_inner().expect("failure lock") {
                Some((_, e)) => Err(e),
                None => Ok(()),
            }
        })?;
    how.progress.finish();
    crate::util::progress::check_interrupt()?;
    Ok(Scanned {
        states: locals
            .into_iter()
            .map(|l| l.into_inner().expect("worker lock").0)
            .collect(),
        documents: summary.documents,
    })
}
