//! `raw_encode` with the system (glibc) allocator: see raw_encode.rs.

#[path = "raw/encode.rs"]
mod encode;

fn main() {
    encode::main()
}
