//! What the two command-line programs (`mtkit` and `mtkit-train`) share: options parsed the
//! same way everywhere, number formatting and tables, progress bars. The library's work
//! functions never call these; they report through [`crate::progress::Progress`].

pub mod args;
pub mod output;
pub mod progress;
