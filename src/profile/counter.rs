//! `Counter`: exact unigram and n-gram counts of one worker (n-grams packed into 64-bit keys,
//! a small direct-mapped table per order whose evictions are radix-sorted and merged into
//! sorted lists; the lower orders summed from the top order's prefixes), or hashed buckets.

use super::*;

/// Bits needed per token id for a vocabulary.
pub fn id_bits(vocab_size: usize) -> u32 {
    (usize::BITS - (vocab_size.max(2) - 1).leading_zeros()).max(1)
}

/// Packs an n-gram's ids into a 64-bit key, first id in the highest bits.
pub fn pack(ids: &[u32], bits: u32) -> u64 {
    ids.iter().fold(0u64, |k, &id| (k << bits) | id as u64)
}

/// Unpacks a key made by [`pack`].
pub fn unpack(key: u64, n: usize, bits: u32) -> Vec<u32> {
    let mask = (1u64 << bits) - 1;
    (0..n)
        .rev()
        .map(|i| ((key >> (bits * i as u32)) & mask) as u32)
        .collect()
}

pub(super) fn bucket_of(ids: &[u32], buckets: u64) -> u64 {
    let h = ids
        .iter()
        .fold(0x6d74_6b69_7400_0000u64, |h, &id| mix64(h ^ id as u64));
    h % buckets
}

/// Token and n-gram counts of a stream of documents: what `mtkit profile` counts with, one per
/// worker thread, merged at the end. Usable alone on token ids from elsewhere.
///
/// Exact n-grams are counted by sorting, not hashing: keys are appended to a buffer, which is
/// radix-sorted and merged, in place, into a sorted (key, count) list when it holds half as
/// many keys as the list (at least 2^20). Appends are sequential and merges stream where a
/// hash table takes a cache miss per n-gram; memory is about the same (the list, 16 bytes per
/// distinct n-gram, and the buffer). In front of the buffer, a small direct-mapped table of
/// (key, count) that stays in cache adds up the n-grams that come again soon (on the
/// registry's text, 70% of 2-grams, 52% of 3-grams and 41% of 4-grams with 2^14 slots); what
/// it evicts goes to the buffer, as a key when seen once and as a (key, count) pair when more.
/// The buffer's sorts and merges, which were most of the time, shrink by as much.
/// BENCHMARKS.md has the figures.
pub struct Counter {
    pub(super) unigram: Vec<u64>,
    pub(super) ngrams: Vec<NgramCounts>,
    pub(super) pending: Vec<Vec<u64>>,
    /// Evicted (key, count ≥ 2) pairs, per order, merged with `pending`.
    pub(super) pending_pairs: Vec<Vec<(u64, u64)>>,
    /// The direct-mapped (key, count) tables in front of the buffers ([`COMBINE_BITS`]);
    /// a count of 0 is an empty slot.
    pub(super) combine: Vec<Vec<(u64, u64)>>,
    pub(super) scratch: Vec<u64>,
    pub(super) pair_scratch: Vec<(u64, u64)>,
    pub(super) tokens: u64,
    pub(super) bits: u32,
    /// Keys buffered per order before the first merge into the sorted list.
    pub(super) flush_keys: usize,
    /// Bytes of address space each sorted list takes when first used (0: lists grow by
    /// doubling), its key buffer and the scratch a quarter of it: pages are touched only as
    /// a list grows into them, and a list never outgrows it under a memory budget of that
    /// size, so it is never copied to a larger one. The copies and the kernel zeroing the
    /// pages of each new list were the slowest part of the merges.
    pub(super) reserve_bytes: u64,
}

/// The counts of a lower order n from the top order's sorted (key, count) list and order n's
/// tail counts, in key order. Every n-gram of a document that is not one of its tails begins
/// exactly one top-order n-gram (the one at its position), so its count is the sum of those
/// n-grams' counts, and the n-gram is their key's top bits (`key >> shift`). The top list's
/// keys sorted, those sums come out sorted, grouped, by walking it once; the tails (a few per
/// document) are merged in.
#[derive(Clone)]
pub(super) struct LowerCounts<'a> {
    pub(super) top: &'a [(u64, u64)],
    pub(super) tails: &'a [(u64, u64)],
    pub(super) shift: u32,
    /// The next prefix's sum, taken from `top` and not yet given.
    pub(super) group: Option<(u64, u64)>,
}

impl<'a> LowerCounts<'a> {
    pub(super) fn new(
        top: &'a [(u64, u64)],
        tails: &'a [(u64, u64)],
        shift: u32,
    ) -> LowerCounts<'a> {
        LowerCounts {
            top,
            tails,
            shift,
            group: None,
        }
    }
}

impl Iterator for LowerCounts<'_> {
    type Item = (u64, u64);

    fn next(&mut self) -> Option<(u64, u64)> {
        if self.group.is_none() {
            if let Some(&(k, c)) = self.top.first() {
                let prefix = k >> self.shift;
                let mut sum = c;
                let mut i = 1;
                while let Some(&(k, c)) = self.top.get(i) {
                    if k >> self.shift != prefix {
                        break;
                    }
                    sum += c;
                    i += 1;
                }
                self.top = &self.top[i..];
                self.group = Some((prefix, sum));
            }
        }
        match (self.group, self.tails.first()) {
            (None, None) => None,
            (Some(g), None) => {
                self.group = None;
                Some(g)
            }
            (None, Some(&t)) => {
                self.tails = &self.tails[1..];
                Some(t)
            }
            (Some((p, s)), Some(&(q, c))) => {
                if p < q {
                    self.group = None;
                    Some((p, s))
                } else if q < p {
                    self.tails = &self.tails[1..];
                    Some((q, c))
                } else {
                    self.group = None;
                    self.tails = &self.tails[1..];
                    Some((p, s + c))
                }
            }
        }
    }
}

/// What a [`Counter`] counted.
#[derive(Clone, Debug, PartialEq)]
pub struct Counts {
    /// Unigram counts indexed by token id.
    pub unigram: Vec<u64>,
    /// Orders 2..=N: `ngrams[n - 2]`.
    pub ngrams: Vec<NgramCounts>,
    /// Tokens counted.
    pub tokens: u64,
}

pub(super) const MIN_FLUSH_KEYS: usize = 1 << 20;

/// Slots of each exact order's combining table: 2^14 (256 KiB: the three tables of a 4-gram
/// profile stay in L2 beside the tokenizer's).
pub(super) const COMBINE_BITS: u32 = 14;

/// The combining table's slot of a key (Fibonacci hashing: the top bits of key × 2^64/φ).
#[inline]
pub(super) fn combine_slot(key: u64) -> usize {
    (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - COMBINE_BITS)) as usize
}

impl Counter {
    /// An empty counter for ids below `vocab_size`, orders up to `ngram`, counted as `mode`
    /// says (see [`ProfileOptions::validate`] for the limits of exact mode).
    ///
    /// Panics where the tables cannot be allocated; [`Counter::try_new`] returns an error.
    pub fn new(vocab_size: usize, ngram: usize, mode: NgramMode) -> Counter {
        Counter::try_new(vocab_size, ngram, mode).expect("counter tables")
    }

    /// [`Counter::new`], with an error instead of an abort where the system refuses the
    /// tables (hashed buckets are sized by a flag: see [`check_counter_memory`]).
    pub fn try_new(vocab_size: usize, ngram: usize, mode: NgramMode) -> Result<Counter> {
        let ngrams: Vec<NgramCounts> = (2..=ngram)
            .map(|_| -> Result<NgramCounts> {
                Ok(match mode {
                    NgramMode::Exact => NgramCounts::Exact(Vec::new()),
                    NgramMode::Hashed { buckets } => NgramCounts::Hashed(
                        crate::util::memory::zeroed_vec(buckets as usize, &buckets_what(buckets))?,
                    ),
                })
            })
            .collect::<Result<_>>()?;
        Ok(Counter {
            unigram: crate::util::memory::zeroed_vec(vocab_size, "the unigram table")?,
            pending: ngrams.iter().map(|_| Vec::new()).collect(),
            pending_pairs: ngrams.iter().map(|_| Vec::new()).collect(),
            combine: ngrams.iter().map(|_| Vec::new()).collect(),
            ngrams,
            scratch: Vec::new(),
            pair_scratch: Vec::new(),
            tokens: 0,
            bits: id_bits(vocab_size),
            flush_keys: MIN_FLUSH_KEYS,
            reserve_bytes: 0,
        })
    }

    /// Counts one document's ids (n-grams never cross documents).
    pub fn add(&mut self, ids: &[u32]) {
        self.tokens += ids.len() as u64;
        for &id in ids {
            self.unigram[id as usize] += 1;
        }
        let bits = self.bits;
        let top = self.ngrams.len() + 1;
        let derive = self.derives_lower();
        for o in 0..self.ngrams.len() {
            let n = o + 2;
            if ids.len() < n {
                continue;
            }
            match &mut self.ngrams[o] {
                NgramCounts::Exact(sorted) if derive && n < top => {
                    // Only the document's tails: its n-grams that start too late to begin a
                    // top-order n-gram (the last top − n of them, or all in a shorter one).
                    let buf = &mut self.pending[o];
                    let from = (ids.len() + 1).saturating_sub(top);
                    for p in from..=ids.len() - n {
                        buf.push(pack(&ids[p..p + n], bits));
                    }
                    if buf.len() >= self.flush_keys.max(sorted.len() / 2) {
                        self.flush(o, false);
                    }
                }
                NgramCounts::Exact(sorted) => {
                    let buf = &mut self.pending[o];
                    if buf.capacity() == 0 {
                        // Virtual until touched; saves the copies of doubling.
                        let want = self.flush_keys + ids.len();
                        let room = want + (self.reserve_bytes / 32) as usize;
                        if buf.try_reserve_exact(room).is_err() {
                            buf.reserve(want);
                        }
                    }
                    // Rolling key: shift in one id, mask to n ids.
                    let mask = if n as u32 * bits >= 64 {
                        u64::MAX
                    } else {
                        (1u64 << (n as u32 * bits)) - 1
                    };
                    let combine = &mut self.combine[o];
                    if combine.is_empty() {
                        combine.resize(1 << COMBINE_BITS, (0, 0));
                    }
                    let pairs = &mut self.pending_pairs[o];
                    let mut key = pack(&ids[..n - 1], bits);
                    for &id in &ids[n - 1..] {
                        key = ((key << bits) | id as u64) & mask;
                        let slot = &mut combine[combine_slot(key)];
                        // An empty slot holds (0, 0): key 0 counts on from 0 as well.
                        if slot.0 == key {
                            slot.1 += 1;
                        } else {
                            match slot.1 {
                                0 => {}
                                1 => buf.push(slot.0),
                                c => pairs.push((slot.0, c)),
                            }
                            *slot = (key, 1);
                        }
                    }
                    if buf.len() + pairs.len() >= self.flush_keys.max(sorted.len() / 2) {
                        self.flush(o, false);
                    }
                }
                NgramCounts::Hashed(b) => {
                    let nb = b.len() as u64;
                    for w in ids.windows(n) {
                        b[bucket_of(w, nb) as usize] += 1;
                    }
                }
            }
        }
    }

    /// Merges order `o`'s buffered keys and pairs into its sorted list, and first the
    /// combining table's counts too when `drain` (when the counts must be whole).
    pub(super) fn flush(&mut self, o: usize, drain: bool) {
        let NgramCounts::Exact(sorted) = &mut self.ngrams[o] else {
            return;
        };
        let buf = &mut self.pending[o];
        let pairs = &mut self.pending_pairs[o];
        if drain {
            for slot in self.combine[o].iter_mut() {
                match slot.1 {
                    0 => {}
                    1 => buf.push(slot.0),
                    c => pairs.push((slot.0, c)),
                }
                *slot = (0, 0);
            }
        }
        if buf.is_empty() && pairs.is_empty() {
            return;
        }
        if self.reserve_bytes > 0 {
            if sorted.capacity() == 0 {
                let _ = sorted.try_reserve_exact((self.reserve_bytes / 16) as usize);
            }
            if self.scratch.capacity() == 0 {
                let room = self.flush_keys + (self.reserve_bytes / 32) as usize;
                let _ = self.scratch.try_reserve_exact(room.max(buf.len()));
            }
        }
        let key_bits = ((o as u32 + 2) * self.bits).min(64);
        radix_sort(buf, &mut self.scratch, key_bits);
        radix_sort_by(pairs, &mut self.pair_scratch, key_bits, |p| p.0);
        // Equal keys of the pairs added (the sort is stable, so they are adjacent).
        pairs.dedup_by(|next, kept| {
            let same = next.0 == kept.0;
            if same {
                kept.1 += next.1;
            }
            same
        });
        merge_two_in_place(sorted, buf, pairs);
        buf.clear();
        pairs.clear();
    }

    /// Bytes this counter's tables need, plus what the next merge of buffered keys may add
    /// (only one order merges at a time): what a memory budget bounds. Lists count by length
    /// and buffers by the keys they take before their next merge, not by capacity: a list's
    /// address space is reserved ahead, and a page of it is memory only once touched. After
    /// a spill the lists are emptied but kept, and grow again into the pages they had, so
    /// the memory held is the most this ever said, and stays within the budget.
    pub(super) fn peak_bytes(&self) -> u64 {
        let mut held = (self.unigram.capacity() * 8
            + self.scratch.len() * 8
            + self.pair_scratch.len() * 16) as u64;
        let mut next = 0u64;
        for (o, (t, buf)) in self.ngrams.iter().zip(&self.pending).enumerate() {
            if let NgramCounts::Exact(v) = t {
                let add = self.flush_keys.max(v.len() / 2);
                let pairs = self.pending_pairs[o].len();
                let combine = self.combine[o].len();
                held += (v.len() * 16 + buf.len().max(add) * 8 + (pairs + combine) * 16) as u64;
                let grow = match v.len() + add > v.capacity() {
                    true => v.len() + add,
                    false => add,
                };
                next = next.max(16 * grow as u64);
            }
        }
        held + next
    }

    /// Writes the exact n-gram counts so far to `runs`, one run per order, and empties the
    /// tables (the unigram counts stay; the tables keep their memory for what comes next).
    pub(super) fn spill(&mut self, runs: &spill::Runs) -> Result<()> {
        for o in 0..self.ngrams.len() {
            self.flush(o, true);
        }
        for o in 0..self.ngrams.len() {
            match (self.lower_counts(o), &self.ngrams[o]) {
                (Some(lower), NgramCounts::Exact(top)) => runs.write(o, lower, top.len())?,
                (None, NgramCounts::Exact(v)) => runs.write(o, v.iter().copied(), v.len())?,
                (_, NgramCounts::Hashed(_)) => {}
            }
        }
        for t in &mut self.ngrams {
            if let NgramCounts::Exact(v) = t {
                v.clear();
            }
        }
        runs.note_spill();
        Ok(())
    }

    /// Whether orders below the top are derived from it (exact mode, 3 orders or more): the
    /// tables of lower orders hold only the documents' tails, see [`LowerCounts`].
    pub(super) fn derives_lower(&self) -> bool {
        self.ngrams.len() >= 2 && matches!(self.ngrams[0], NgramCounts::Exact(_))
    }

    /// The whole counts of table `o` when it is a derived lower order (its tails with the top
    /// order's prefix sums; buffered keys not in them); `None` for the top order, or when
    /// nothing is derived.
    pub(super) fn lower_counts(&self, o: usize) -> Option<LowerCounts<'_>> {
        let top_o = self.ngrams.len().checked_sub(1)?;
        if !self.derives_lower() || o >= top_o {
            return None;
        }
        let (NgramCounts::Exact(tails), NgramCounts::Exact(top)) =
            (&self.ngrams[o], &self.ngrams[top_o])
        else {
            unreachable!("derived orders are exact");
        };
        Some(LowerCounts::new(top, tails, (top_o - o) as u32 * self.bits))
    }

    /// Distinct n-grams held in exact mode so far (0 in hashed mode): the top order's, and
    /// the lower orders' document tails when they are derived (see [`LowerCounts`]).
    pub fn distinct_ngrams(&self) -> usize {
        self.ngrams
            .iter()
            .map(|t| match t {
                NgramCounts::Exact(v) => v.len(),
                NgramCounts::Hashed(_) => 0,
            })
            .sum()
    }

    /// Adds another counter's counts (same vocabulary, orders and mode).
    pub fn merge(&mut self, mut other: Counter) {
        // Table to table as counted (its lower orders' tails, not the orders derived from its
        // top order: that is added to this top order and derived from it at the end).
        for o in 0..self.ngrams.len() {
            self.flush(o, true);
            other.flush(o, true);
        }
        for (a, b) in self.unigram.iter_mut().zip(&other.unigram) {
            *a += b;
        }
        for (a, b) in self.ngrams.iter_mut().zip(&other.ngrams) {
            a.add(b);
        }
        self.tokens += other.tokens;
    }

    /// The counts (buffered n-grams merged in).
    pub fn finish(mut self) -> Counts {
        for o in 0..self.ngrams.len() {
            self.flush(o, true);
        }
        for o in 0..self.ngrams.len() {
            let Some(lower) = self.lower_counts(o) else {
                continue;
            };
            // Counted first, so that the list takes no more memory than it needs.
            let mut counts = Vec::with_capacity(lower.clone().count());
            counts.extend(lower);
            self.ngrams[o] = NgramCounts::Exact(counts);
        }
        Counts {
            unigram: self.unigram,
            ngrams: self.ngrams,
            tokens: self.tokens,
        }
    }
}

/// A document's unigram counts as sorted (id, count) pairs.
pub fn sparse_counts(ids: &[u32]) -> Vec<(u32, u32)> {
    let mut v = ids.to_vec();
    v.sort_unstable();
    let mut out: Vec<(u32, u32)> = Vec::new();
    for id in v {
        match out.last_mut() {
            Some((last, c)) if *last == id => *c += 1,
            _ => out.push((id, 1)),
        }
    }
    out
}
