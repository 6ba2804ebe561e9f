//! Link payloads as static, non-PIE ELF images at the guest address the
//! VMM expects (payload.ld), without any C runtime.
fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
    println!("cargo:rerun-if-changed=payload.ld");
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,--gc-sections",
        &format!("-Wl,-T,{dir}/payload.ld"),
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
