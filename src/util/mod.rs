//! Leaves that any stage may use and that import nothing of mtkit's outside `util/`: a
//! seeded random number generator, writing files so that nothing is half-written, digests,
//! number formatting, memory limits and the one size grammar, progress callbacks with the
//! interrupt guard, and polars made safe on a user's file.

pub mod digest;
pub mod memory;
pub mod numfmt;
pub mod paths;
pub mod polars_io;
pub mod progress;
pub mod rng;
