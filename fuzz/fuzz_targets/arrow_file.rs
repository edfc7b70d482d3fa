#![no_main]
// See mtkit::fuzz::fuzz_arrow_file: an Arrow IPC stream file (a `datasets` cache file) read
// as a corpus, lenient and strict.
libfuzzer_sys::fuzz_target!(
    init: mtkit::fuzz::abort_on_panics_outside_polars(),
    |data: &[u8]| mtkit::fuzz::fuzz_arrow_file(data)
);
