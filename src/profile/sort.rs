//! Sorting and merging sorted (key, count) lists in place: the radix sort of a counter's
//! evicted keys and the merges that keep each order's list sorted without a second copy.

use super::*;

/// Merges sorted (key, count) entries, given from the largest key down by `next_down` (keys
/// distinct, at most `most`), into the sorted list `a`, adding the counts of equal keys.
#[inline]
pub(super) fn merge_down_in_place(
    a: &mut Vec<(u64, u64)>,
    most: usize,
    mut next_down: impl FnMut() -> Option<(u64, u64)>,
) {
    let old = a.len();
    a.reserve(most);
    let p = a.as_mut_ptr();
    // SAFETY: slots below `old` are initialised, and `old + most` is within the capacity.
    // Invariant: `w - i` ≥ the entries still to come, so a slot is written (at `w - 1`) only
    // once the entry in it (at `i - 1` or above) has been read: no entry is lost. At the end
    // the slots `[0, i)` are the untouched low part of the list and `[w, old + most)` the
    // merged high part, all initialised; the latter is moved down to `i` and the length set.
    unsafe {
        let (mut i, mut w) = (old, old + most);
        while let Some((k, c)) = next_down() {
            while i > 0 && (*p.add(i - 1)).0 > k {
                i -= 1;
                w -= 1;
                p.add(w).write(p.add(i).read());
            }
            w -= 1;
            if i > 0 && (*p.add(i - 1)).0 == k {
                i -= 1;
                p.add(w).write((k, (*p.add(i)).1 + c));
            } else {
                debug_assert!(w >= i, "the write position passed the read position");
                p.add(w).write((k, c));
            }
        }
        let high = old + most - w;
        std::ptr::copy(p.add(w), p.add(i), high);
        a.set_len(i + high);
    }
}

/// Merges sorted `b` into sorted `a`, adding the counts of equal keys (keys distinct in each).
pub(super) fn merge_pairs_in_place(a: &mut Vec<(u64, u64)>, b: &[(u64, u64)]) {
    let mut j = b.len();
    merge_down_in_place(a, b.len(), || {
        j = j.checked_sub(1)?;
        Some(b[j])
    });
}

/// Merges sorted `keys` (repeats = counts) and sorted `pairs` (keys distinct) into the sorted
/// count list `a`, in place, in one pass over the list.
pub(super) fn merge_two_in_place(a: &mut Vec<(u64, u64)>, keys: &[u64], pairs: &[(u64, u64)]) {
    let (mut j, mut p) = (keys.len(), pairs.len());
    merge_down_in_place(a, keys.len() + pairs.len(), || {
        // The largest key left of either side, counts added where both have it.
        let from_keys = j.checked_sub(1).map(|i| keys[i]);
        let from_pairs = p.checked_sub(1).map(|i| pairs[i]);
        let k = match (from_keys, from_pairs) {
            (None, None) => return None,
            (Some(k), None) => k,
            (None, Some((k, _))) => k,
            (Some(k), Some((q, _))) => k.max(q),
        };
        let mut count = 0u64;
        while j > 0 && keys[j - 1] == k {
            j -= 1;
            count += 1;
        }
        if p > 0 && pairs[p - 1].0 == k {
            p -= 1;
            count += pairs[p].1;
        }
        Some((k, count))
    });
}

/// Sorts keys whose set bits all lie below `key_bits` (LSD radix sort, 16-bit digits: one
/// token id each with Pythia's vocabulary; digits that every key shares are skipped). 16-bit
/// digits beat 11- and 8-bit ones here (fewer passes over memory). `scratch` is reused.
pub(super) fn radix_sort(keys: &mut Vec<u64>, scratch: &mut Vec<u64>, key_bits: u32) {
    radix_sort_by(keys, scratch, key_bits, |&k| k);
}

/// [`radix_sort`] of anything by a key; stable (equal keys keep their order).
pub(super) fn radix_sort_by<T: Copy + Default>(
    items: &mut Vec<T>,
    scratch: &mut Vec<T>,
    key_bits: u32,
    key: impl Fn(&T) -> u64,
) {
    const DIGIT: u32 = 16;
    const RADIX: usize = 1 << DIGIT;
    let n = items.len();
    if n < 1 << 14 || n > u32::MAX as usize {
        items.sort_by_key(key);
        return;
    }
    let passes = key_bits.div_ceil(DIGIT).max(1) as usize;
    let mut hist = vec![0u32; passes * RADIX];
    for item in items.iter() {
        let k = key(item);
        for p in 0..passes {
            hist[p * RADIX + ((k >> (p as u32 * DIGIT)) as usize & (RADIX - 1))] += 1;
        }
    }
    // Zeroed only where it grows: every pass writes each of the first n slots before any
    // is read, and the slots past n are never read.
    if scratch.len() < n {
        scratch.resize(n, T::default());
    }
    let mut offset = vec![0u32; RADIX];
    let mut in_scratch = false;
    for p in 0..passes {
        let h = &hist[p * RADIX..(p + 1) * RADIX];
        if h.iter().any(|&c| c as usize == n) {
            continue; // every key has this digit
        }
        let mut sum = 0u32;
        for (o, &c) in offset.iter_mut().zip(h) {
            *o = sum;
            sum += c;
        }
        let (src, dst) = if in_scratch {
            (&scratch[..n], &mut items[..])
        } else {
            (&items[..], &mut scratch[..n])
        };
        let shift = p as u32 * DIGIT;
        for item in src {
            let d = (key(item) >> shift) as usize & (RADIX - 1);
            dst[offset[d] as usize] = *item;
            offset[d] += 1;
        }
        in_scratch = !in_scratch;
    }
    if in_scratch {
        std::mem::swap(items, scratch);
        items.truncate(n);
    }
}

/// Calls `f` with the entries of sorted (key, count) lists (keys distinct in each) in key
/// order, the counts of equal keys added: a k-way merge, two-way (the two workers of a
/// 2-core machine) without the general loop's scans.
pub(super) fn merge_sorted_lists(
    lists: &[&[(u64, u64)]],
    mut f: impl FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    let mut lists: Vec<&[(u64, u64)]> = lists.iter().copied().filter(|l| !l.is_empty()).collect();
    match lists.as_mut_slice() {
        [] => {}
        [one] => {
            for &(k, c) in one.iter() {
                f(k, c)?;
            }
        }
        [a, b] => {
            let (mut a, mut b) = (*a, *b);
            while let (Some(&(ka, ca)), Some(&(kb, cb))) = (a.first(), b.first()) {
                if ka < kb {
                    f(ka, ca)?;
                    a = &a[1..];
                } else if kb < ka {
                    f(kb, cb)?;
                    b = &b[1..];
                } else {
                    f(ka, ca + cb)?;
                    a = &a[1..];
                    b = &b[1..];
                }
            }
            for &(k, c) in a.iter().chain(b.iter()) {
                f(k, c)?;
            }
        }
        many => {
            while let Some(key) = many.iter().filter_map(|l| l.first()).map(|e| e.0).min() {
                let mut count = 0;
                for l in many.iter_mut() {
                    if let Some(&(k, c)) = l.first() {
                        if k == key {
                            count += c;
                            *l = &l[1..];
                        }
                    }
                }
                f(key, count)?;
            }
        }
    }
    Ok(())
}
