// Embed libtorch's folder as an rpath so `mtkit-train` runs without LD_LIBRARY_PATH, and keep
// libtorch.so in NEEDED (the linker would drop it: nothing references it directly, yet on a
// CUDA machine it is what pulls in libtorch_cuda.so).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
        println!("cargo:rustc-env=MTKIT_LIBTORCH_LIB={lib}");
    }
}
