//! `mtkit doctor`'s LibTorch check and the libtorch version check of `mtkit-train`.

// The integration-test helpers of the mtkit package, shared.
#[path = "../../tests/common/mod.rs"]
mod common;
use common::*;

#[test]
fn doctor_reports_libtorch_2_11_and_runs_a_tensor_op() {
    let sb = Sandbox::new();
    let out = sb.ok(&["doctor"]);
    assert!(out.contains("libtorch: 2.11.0 from "), "{out}");
    assert!(out.contains("sum([1, 2, 3]) = 6"), "{out}");
}

/// A libtorch of another version, found first through LD_LIBRARY_PATH, is named and refused.
#[test]
fn a_mismatched_libtorch_is_refused_with_a_clear_message() {
    let real = real_cache().join("libtorch-2.11.0/lib");
    if !real.exists() {
        eprintln!("SKIP: no libtorch at {} (run `make setup`)", real.display());
        return;
    }
    // Hard links (same file system as the cache) keep the loaded path inside the fake folder.
    let fake = tempfile::tempdir_in(real_cache()).unwrap();
    std::fs::create_dir(fake.path().join("lib")).unwrap();
    for f in std::fs::read_dir(&real).unwrap() {
        let f = f.unwrap().path();
        std::fs::hard_link(&f, fake.path().join("lib").join(f.file_name().unwrap())).unwrap();
    }
    std::fs::write(fake.path().join("build-version"), "2.10.0\n").unwrap();
    let sb = Sandbox::new();
    let o = sb
        .cmd(&["doctor"])
        .env("LD_LIBRARY_PATH", fake.path().join("lib"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{err}");
    assert!(
        err.contains("libtorch 2.10.0 was loaded from") && err.contains("needs libtorch 2.11"),
        "{err}"
    );
    // Data commands do not load LibTorch at all, so another one on the path is no concern.
    let o = sb
        .cmd(&["data", "list"])
        .env("LD_LIBRARY_PATH", fake.path().join("lib"))
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(!String::from_utf8_lossy(&o.stderr).contains("libtorch"));
}
