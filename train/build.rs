// Embed libtorch's folder as an rpath so `mtkit-train` runs without LD_LIBRARY_PATH, keep
// libtorch.so in NEEDED (the linker would drop it: nothing references it directly, yet on a
// CUDA machine it is what pulls in libtorch_cuda.so), and compile the C++ shim
// (shim/mtkit_shim.cpp: fused AdamW, foreach ops, autocast dtype, SDPA order) against the same
// libtorch headers and C++ ABI as torch-sys's own wrapper.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=shim/mtkit_shim.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch,--as-needed");
    println!("cargo:rustc-env=MTKIT_LIBTORCH_LIB={lib}");
    let root = std::path::Path::new(&lib)
        .parent()
        .expect("libtorch's lib folder has a parent");
    let include = root.join("include");
    // torch-sys's default, which the PyPI torch 2.11 wheels match.
    let abi = std::env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("shim/mtkit_shim.cpp")
        .compile("mtkit_shim");
    println!("cargo:rustc-link-lib=dylib=torch_cpu");
    println!("cargo:rustc-link-lib=dylib=c10");
}
