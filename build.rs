//! Builds the bare payload guests (guest/, a no_std crate with its own
//! linker script) with a nested cargo, for src/payloads.rs to embed.

use std::path::PathBuf;
use std::process::Command;

/// The payloads src/payloads.rs embeds (binary names in guest/src/bin/).
const PAYLOADS: &[&str] = &[
    "hello",
    "exit-code",
    "smp",
    "mem-pattern",
    "interp",
    "triple-fault",
    "bad-port",
];

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("cargo:rerun-if-changed=guest/src");
    println!("cargo:rerun-if-changed=guest/Cargo.toml");
    println!("cargo:rerun-if-changed=guest/build.rs");
    println!("cargo:rerun-if-changed=guest/payload.ld");
    println!("cargo:rerun-if-changed=guest/Cargo.lock");
    let target_dir = out.join("guest-target");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--quiet", "--manifest-path"])
        .arg(manifest.join("guest/Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir);
    for var in [
        "RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CARGO_ENCODED_RUSTFLAGS", "-Crelocation-model=static");
    let status = cmd.status().expect("cannot run cargo for guest/");
    assert!(
        status.success(),
        "building the payload guests in guest/ failed (see above)"
    );
    for name in PAYLOADS {
        let from = target_dir.join("release").join(name);
        let to = out.join(format!("payload-{name}.elf"));
        std::fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("payload {name} missing at {}: {e}", from.display()));
    }
}
