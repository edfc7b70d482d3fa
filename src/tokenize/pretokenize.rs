//! The GPT-2 split pattern as a hand-written scanner.
//!
//! HF tokenizers' ByteLevel pre-tokenizer cuts text with the Oniguruma regex
//! `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
//! (leftmost-first alternation, every character covered by some alternative). [`split`] yields
//! the same pieces without a regex engine: one pass over the text, a class per character.
//!
//! The classes (`\p{L}`, `\p{N}`, `\s`) are not taken from a Unicode table of our own, whose
//! version could differ from the regex engine's: each non-ASCII character is classified once
//! by the very regex engine HF uses (its `SysRegex`) and remembered in a process-wide table.
//! A test checks every code point of the ASCII shortcut against that engine, and the
//! identity tests compare whole pre-tokenizations on every Unicode plane.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::LazyLock;

use tokenizers::utils::SysRegex;

/// A character's class in the GPT-2 pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Class {
    /// `\p{L}`
    Letter = 1,
    /// `\p{N}`
    Number = 2,
    /// `\s`
    Space = 3,
    /// Anything else (`[^\s\p{L}\p{N}]`): punctuation, symbols, marks, controls.
    Other = 4,
}

impl Class {
    fn from_u8(v: u8) -> Class {
        match v {
            1 => Class::Letter,
            2 => Class::Number,
            3 => Class::Space,
            _ => Class::Other,
        }
    }
}

const fn ascii_class(b: u8) -> Class {
    match b {
        b'a'..=b'z' | b'A'..=b'Z' => Class::Letter,
        b'0'..=b'9' => Class::Number,
        b'\t' | b'\n' | 0x0b | 0x0c | b'\r' | b' ' => Class::Space,
        _ => Class::Other,
    }
}

static ASCII: [Class; 128] = {
    let mut t = [Class::Other; 128];
    let mut i = 0;
    while i < 128 {
        t[i] = ascii_class(i as u8);
        i += 1;
    }
    t
};

/// Classes of non-ASCII characters, filled in as they are met (0: not yet known).
static SEEN: [AtomicU8; 0x110000] = [const { AtomicU8::new(0) }; 0x110000];

struct Probes {
    letter: SysRegex,
    number: SysRegex,
    space: SysRegex,
}

static PROBES: LazyLock<Probes> = LazyLock::new(|| Probes {
    letter: SysRegex::new(r"\A\p{L}\z").expect("valid regex"),
    number: SysRegex::new(r"\A\p{N}\z").expect("valid regex"),
    space: SysRegex::new(r"\A\s\z").expect("valid regex"),
});

/// The class of `c` as HF's regex engine sees it (asks the engine itself, once per character).
pub fn engine_class(c: char) -> Class {
    let mut buf = [0u8; 4];
    let s = c.encode_utf8(&mut buf);
    let p = &*PROBES;
    if p.letter.find_iter(s).next().is_some() {
        Class::Letter
    } else if p.number.find_iter(s).next().is_some() {
        Class::Number
    } else if p.space.find_iter(s).next().is_some() {
        Class::Space
    } else {
        Class::Other
    }
}

/// The class of `c` in the GPT-2 pattern.
#[inline]
pub fn class(c: char) -> Class {
    let u = c as usize;
    if u < 128 {
        return ASCII[u];
    }
    match SEEN[u].load(Ordering::Relaxed) {
        0 => {
            let k = engine_class(c);
            SEEN[u].store(k as u8, Ordering::Relaxed);
            k
        }
        v => Class::from_u8(v),
    }
}

/// The ASCII shortcut's class of a byte below 128 (for the test against the engine).
pub fn ascii_shortcut(b: u8) -> Class {
    ASCII[b as usize & 127]
}

#[inline]
fn char_at(s: &str, i: usize) -> (char, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        (b as char, 1)
    } else {
        let c = s[i..].chars().next().expect("i is a char boundary");
        (c, c.len_utf8())
    }
}

#[inline]
fn class_at(s: &str, i: usize) -> (Class, usize) {
    let b = s.as_bytes()[i];
    if b < 0x80 {
        (ASCII[b as usize], 1)
    } else {
        let (c, w) = char_at(s, i);
        (class(c), w)
    }
}

/// The end of the piece that starts at byte `i` (a char boundary before the end).
#[inline]
pub fn piece_end(s: &str, i: usize) -> usize {
    let b = s.as_bytes();
    let n = b.len();
    // 's 't 're 've 'm 'll 'd (case-sensitive, ASCII apostrophe only).
    if b[i] == b'\'' && i + 1 < n {
        match b[i + 1] {
            b's' | b't' | b'm' | b'd' => return i + 2,
            b'r' | b'v' if b.get(i + 2) == Some(&b'e') => return i + 3,
            b'l' if b.get(i + 2) == Some(&b'l') => return i + 3,
            _ => {}
        }
    }
    let (first, w) = class_at(s, i);
    // ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: one optional U+0020, then a run of a class.
    let (run_from, run_class) = if b[i] == b' ' && i + 1 < n {
        match class_at(s, i + 1).0 {
            Class::Space => (i, Class::Space),
            k => (i + 1, k),
        }
    } else {
        (i, first)
    };
    if run_class != Class::Space {
        let mut j = run_from;
        while j < n {
            let (k, w) = class_at(s, j);
            if k != run_class {
                break;
            }
            j += w;
        }
        return j;
    }
    // `\s+(?!\S)|\s+`: a whitespace run, less its last character when a non-space follows
    // and the run is longer than one character.
    let mut j = i + w;
    let mut last = i;
    while j < n {
        let (k, w) = class_at(s, j);
        if k != Class::Space {
            break;
        }
        last = j;
        j += w;
    }
    if j == n || last == i {
        j
    } else {
        last
    }
}

/// Calls `emit` with each piece of `s` in order, as HF's ByteLevel pre-tokenizer (with
/// `use_regex`) cuts it. The pieces cover `s` exactly.
#[inline]
pub fn split(s: &str, mut emit: impl FnMut(&str)) {
    let mut i = 0;
    while i < s.len() {
        let end = piece_end(s, i);
        emit(&s[i..end]);
        i = end;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pieces(s: &str) -> Vec<String> {
        let mut v = Vec::new();
        split(s, |p| v.push(p.to_string()));
        v
    }

    #[test]
    fn ascii_shortcut_equals_the_engine() {
        for b in 0u8..128 {
            assert_eq!(ascii_shortcut(b), engine_class(b as char), "byte {b:#x}");
        }
    }

    #[test]
    fn hand_derived_pieces() {
        // Derived by reading the pattern, alternative by alternative.
        assert_eq!(pieces("Hello world"), ["Hello", " world"]);
        assert_eq!(pieces("I'm"), ["I", "'m"]);
        assert_eq!(pieces("they'll 'S"), ["they", "'ll", " '", "S"]);
        assert_eq!(pieces("a   b"), ["a", "  ", " b"]);
        assert_eq!(pieces("a\n\nb"), ["a", "\n", "\n", "b"]);
        assert_eq!(pieces("x  "), ["x", "  "]);
        assert_eq!(pieces(" 123abc"), [" 123", "abc"]);
        assert_eq!(pieces("!!'s"), ["!!'", "s"]);
        assert_eq!(pieces("\t x"), ["\t", " x"]);
        assert!(pieces("").is_empty());
    }
}
