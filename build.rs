//! Builds the bare payload guests (guest/, a no_std crate with its own
//! linker script) with a nested cargo, and writes the table of their ELF
//! images (`payloads.rs` in OUT_DIR) that src/payloads.rs includes.

use std::path::PathBuf;
use std::process::Command;

use mmuvisor_abi::payloads::NAMES;

/// cfgs that mark tests ignored (not passed) where what they need is
/// missing: `mmuvisor_kvm` when /dev/kvm opens read-write here,
/// `mmuvisor_lab_tests` when MMUVISOR_LAB_TESTS=1 outside the lab,
/// `mmuvisor_module` when the helper module is loaded here.
fn test_cfgs() {
    println!("cargo:rustc-check-cfg=cfg(mmuvisor_kvm)");
    println!("cargo:rustc-check-cfg=cfg(mmuvisor_lab_tests)");
    println!("cargo:rustc-check-cfg=cfg(mmuvisor_lab_tree)");
    println!("cargo:rustc-check-cfg=cfg(mmuvisor_module)");
    if std::path::Path::new("/dev/mmuvisor").exists() {
        println!("cargo:rustc-cfg=mmuvisor_module");
    }
    println!("cargo:rerun-if-env-changed=MMUVISOR_LAB_TREE");
    if std::env::var_os("MMUVISOR_LAB_TREE").is_some() {
        println!("cargo:rustc-cfg=mmuvisor_lab_tree");
    }
    println!("cargo:rerun-if-env-changed=MMUVISOR_LAB_TESTS");
    println!("cargo:rerun-if-env-changed=MMUVISOR_LAB");
    let kvm = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if kvm {
        println!("cargo:rustc-cfg=mmuvisor_kvm");
    }
    let lab = std::env::var("MMUVISOR_LAB_TESTS").as_deref() == Ok("1")
        && std::env::var_os("MMUVISOR_LAB").is_none();
    if lab {
        println!("cargo:rustc-cfg=mmuvisor_lab_tests");
    }
}

fn main() {
    test_cfgs();
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let manifest =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    println!("cargo:rerun-if-changed=guest/src");
    println!("cargo:rerun-if-changed=guest/Cargo.toml");
    println!("cargo:rerun-if-changed=guest/build.rs");
    println!("cargo:rerun-if-changed=guest/payload.ld");
    println!("cargo:rerun-if-changed=guest/Cargo.lock");
    println!("cargo:rerun-if-changed=abi/src");
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
    let mut table = String::from("&[\n");
    for name in NAMES {
        let from = target_dir.join("release").join(name);
        let to = out.join(format!("payload-{name}.elf"));
        std::fs::copy(&from, &to)
            .unwrap_or_else(|e| panic!("payload {name} missing at {}: {e}", from.display()));
        table.push_str(&format!(
            "    ({name:?}, include_bytes!({:?}) as &[u8]),\n",
            to.display().to_string()
        ));
    }
    table.push_str("]\n");
    std::fs::write(out.join("payloads.rs"), table).expect("cannot write the payload table");
}
