//! Data commands start at once: the `mtkit` binary does not link LibTorch (the training
//! commands hand over to `mtkit-train`, which does).

mod common;
use common::*;

#[test]
fn the_mtkit_binary_does_not_link_libtorch() {
    let bytes = std::fs::read(mtkit_binary()).unwrap();
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    // A linked shared library is named in the binary's dynamic string table.
    assert!(!has(b"libtorch_cpu.so"), "mtkit links libtorch_cpu.so");
    assert!(!has(b"libtorch.so"), "mtkit links libtorch.so");
    assert!(!has(b"libc10.so"), "mtkit links libc10.so");
}

#[test]
fn training_commands_are_handed_to_mtkit_train() {
    let sb = Sandbox::new();
    // `model info` runs in mtkit-train; its output is the preset table.
    let out = sb.ok(&["model", "info", "tiny"]);
    assert!(out.contains("tiny"), "{out}");
    // Help of a handed-over command is mtkit-train's, under mtkit's name.
    let out = sb.ok(&["train", "--help"]);
    assert!(out.contains("Usage: mtkit train"), "{out}");
}
