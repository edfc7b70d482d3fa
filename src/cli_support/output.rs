//! Output helpers: numbers with fixed significant digits, aligned tables.

pub use crate::util::numfmt::{num, sig};

/// Renders rows as a left/right aligned text table (numbers right-aligned).
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let cols = header.len();
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate().take(cols) {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let numeric = |s: &str| !s.is_empty() && s.parse::<f64>().is_ok();
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if numeric(c) {
                    format!("{:>w$}", c, w = w[i])
                } else {
                    format!("{:<w$}", c, w = w[i])
                }
            })
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    line(
        w.iter()
            .map(|n| "-".repeat(*n))
            .collect::<Vec<_>>()
            .iter()
            .map(|s| s.as_str())
            .collect(),
        &mut out,
    );
    for r in rows {
        line(r.iter().map(|s| s.as_str()).collect(), &mut out);
    }
    out
}

/// What a command prints on stderr for a corpus whose bad records were skipped: by kind,
/// `NAME: 3 bad records skipped (2 malformed_json, 1 missing_field); --strict fails on the
/// first instead`, then the first few (`examples`) each on a line with its file and line (or
/// record) and field; None when none were. The same words in `profile` and `tokenize`.
pub fn skipped_note(
    corpus: &str,
    skipped: &std::collections::BTreeMap<String, u64>,
    examples: &[String],
) -> Option<String> {
    let total: u64 = skipped.values().sum();
    if total == 0 {
        return None;
    }
    let mut note = format!(
        "{corpus}: {total} bad record{} skipped ({}); --strict fails on the first instead",
        if total == 1 { "" } else { "s" },
        crate::data::corpus::skipped_kinds(skipped)
    );
    if crate::util::progress::listing_every_skipped() {
        note.push_str(" (each named above, with its file and line)");
    } else if !examples.is_empty() {
        let which = if examples.len() as u64 == total {
            String::new()
        } else {
            format!(" (the first {} of {total})", examples.len())
        };
        note.push_str(&format!("\n  skipped{which}:"));
        for e in examples {
            note.push_str(&format!("\n    {e}"));
        }
    }
    Some(note)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn significant_digits() {
        assert_eq!(sig(0.5, 10), "0.5000000000");
        assert_eq!(sig(-0.0123456789012, 10), "-0.01234567890");
        assert_eq!(sig(123.0, 4), "123.0");
        assert_eq!(sig(1.5e-30, 3), "1.50e-30");
        assert_eq!(sig(f64::NAN, 3), "");
    }
}
