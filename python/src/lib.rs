//! `mtkit._mtkit`: the Python package's native module, a thin layer over the `mtkit` library.
//!
//! The rule: no logic of its own. Each function converts Python arguments into the library's
//! types, runs the library with the GIL released, and hands back what the library produced
//! (tables as Arrow IPC stream bytes, which `polars.read_ipc_stream` reads without a second
//! build of polars; metadata as JSON). The pure-Python layer (`python/mtkit/`) shapes
//! arguments and results; every number comes from here.
//!
//! While the library works, the calling thread waits with the GIL released and wakes every
//! 50 ms to check for Ctrl-C (only the main thread may run Python's signal handlers) and to
//! hand progress to the caller's callback. A Python iterable of records is pulled in batches
//! by the library's reader thread, which takes the GIL only for each batch.
//!
//! Its files: `released.rs` (errors, progress, the GIL released, Ctrl-C), `inputs.rs`
//! (arguments as the library's types), `records.rs` (Python records in batches), `api.rs`
//! (the functions); this file is the module's table.

mod api;
mod inputs;
mod records;
mod released;

use pyo3::prelude::*;

use api::*;
use inputs::{NativeProfile, Settings};
use released::MtkitError;

// The same allocator as the command line (the tokenizer's small vectors; see BENCHMARKS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[pymodule]
fn _mtkit(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", mtkit::VERSION)?;
    m.add("MtkitError", m.py().get_type::<MtkitError>())?;
    m.add_class::<NativeProfile>()?;
    m.add_class::<Settings>()?;
    m.add_function(wrap_pyfunction!(profile_corpus, m)?)?;
    m.add_function(wrap_pyfunction!(profile_records, m)?)?;
    m.add_function(wrap_pyfunction!(merge_profiles, m)?)?;
    m.add_function(wrap_pyfunction!(memory_budget, m)?)?;
    m.add_function(wrap_pyfunction!(load_profile, m)?)?;
    m.add_function(wrap_pyfunction!(proximity, m)?)?;
    m.add_function(wrap_pyfunction!(similarity_matrix, m)?)?;
    m.add_function(wrap_pyfunction!(suggest_mix, m)?)?;
    m.add_function(wrap_pyfunction!(export, m)?)?;
    m.add_function(wrap_pyfunction!(regress, m)?)?;
    m.add_function(wrap_pyfunction!(overlap, m)?)?;
    m.add_function(wrap_pyfunction!(contaminated_shares, m)?)?;
    m.add_function(wrap_pyfunction!(tokenize, m)?)?;
    m.add_function(wrap_pyfunction!(score, m)?)?;
    m.add_function(wrap_pyfunction!(select, m)?)?;
    m.add_function(wrap_pyfunction!(template_fields, m)?)?;
    m.add_function(wrap_pyfunction!(metric_names, m)?)?;
    m.add_function(wrap_pyfunction!(default_tokenizer_path, m)?)?;
    Ok(())
}
