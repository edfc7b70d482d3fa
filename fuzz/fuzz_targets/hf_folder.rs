#![no_main]
// See mtkit::fuzz::fuzz_hf_folder for what is read and which invariants are checked.
libfuzzer_sys::fuzz_target!(
    init: mtkit::fuzz::abort_on_panics_outside_polars(),
    |data: &[u8]| mtkit::fuzz::fuzz_hf_folder(data)
);
