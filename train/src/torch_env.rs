//! Which libtorch this process loaded, and whether it is the one tch was built for.
//!
//! tch 0.24 is built against libtorch 2.11; a different libtorch gives no clean error (a wrong
//! shape panic one way, a segfault the other), so mtkit checks before using it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The libtorch version tch 0.24 is built for.
pub const EXPECTED: &str = "2.11";

/// Where libtorch was loaded from and its version, when it can be read.
#[derive(Clone, Debug)]
pub struct Libtorch {
    /// Folder of the loaded `libtorch_cpu.so`.
    pub lib_dir: Option<PathBuf>,
    /// Its version, from `build-version` (mtkit's setup) or `version.py` (a Python torch).
    pub version: Option<String>,
    /// The folder the binary was linked against (its rpath).
    pub linked_dir: Option<&'static str>,
}

fn loaded_lib_dir() -> Option<PathBuf> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.ends_with("/libtorch_cpu.so"))
        .and_then(|p| Path::new(p).parent().map(Path::to_path_buf))
}

fn read_version(lib: &Path) -> Option<String> {
    let root = lib.parent()?;
    if let Ok(v) = std::fs::read_to_string(root.join("build-version")) {
        return Some(v.trim().to_string());
    }
    let py = std::fs::read_to_string(root.join("version.py")).ok()?;
    py.lines()
        .find_map(|l| l.strip_prefix("__version__ = "))
        .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
}

/// Finds the loaded libtorch.
pub fn detect() -> Libtorch {
    let lib_dir = loaded_lib_dir();
    let version = lib_dir.as_deref().and_then(read_version);
    Libtorch {
        lib_dir,
        version,
        linked_dir: option_env!("MTKIT_LIBTORCH_LIB"),
    }
}

/// Fails with a clear message unless the loaded libtorch is version 2.11.
pub fn check() -> Result<Libtorch> {
    let lt = detect();
    match (&lt.lib_dir, &lt.version) {
        (None, _) => bail!("libtorch is not loaded (no libtorch_cpu.so in this process); rebuild with `make build`"),
        (Some(dir), Some(v)) if !(v == EXPECTED || v.starts_with(&format!("{EXPECTED}.")) || v.starts_with(&format!("{EXPECTED}+"))) => bail!(
            "libtorch {v} was loaded from {}, but mtkit's tch 0.24 needs libtorch {EXPECTED}.x; point LD_LIBRARY_PATH at a torch {EXPECTED} lib folder or rerun `make setup`",
            dir.display()
        ),
        _ => Ok(lt),
    }
}
