//! An installed mmuvisor (copied out of the checkout, as `cargo install`
//! does) runs the lab exactly as the checkout's: the helper module's
//! sources, scripts and patches come from the binary itself, and the
//! mmuvisor inside the lab is that very binary.

use crate::lab::lab_enabled;
use std::path::PathBuf;
use std::process::Command;

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_copied_binary_in_an_empty_folder_loads_the_module() {
    if !lab_enabled() {
        return;
    }
    let base = std::env::temp_dir().join(format!("mmuvisor-installed-{}", std::process::id()));
    let (bin, cwd) = (base.join("bin"), base.join("empty"));
    std::fs::create_dir_all(&bin).expect("temp bin folder");
    std::fs::create_dir_all(&cwd).expect("temp empty folder");
    let exe: PathBuf = bin.join("mmuvisor");
    std::fs::copy(env!("CARGO_BIN_EXE_mmuvisor"), &exe).expect("copy the binary");
    // In the lab the host's / is at /host: the lab's mmuvisor must be the
    // copy that started it, and the module must be loaded.
    let script = format!(
        "test -c /dev/mmuvisor || {{ echo 'no /dev/mmuvisor in the lab'; exit 98; }}; \
         cmp /lab/bin/mmuvisor /host{} || exit 97; \
         test \"$(command -v mmuvisor)\" = /lab/bin/mmuvisor || exit 96; \
         mmuvisor drill exclusive-basic --format ktap",
        exe.display()
    );
    let out = Command::new(&exe)
        .args(["lab", "run", "--timeout", "900", "--", "sh", "-c", &script])
        .current_dir(&cwd)
        .env_remove("MMUVISOR_KMOD_DIR")
        .output()
        .expect("cannot start the copied mmuvisor");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    let left: Vec<_> = std::fs::read_dir(&cwd).expect("cwd").flatten().collect();
    let _ = std::fs::remove_dir_all(&base);
    assert_eq!(
        out.status.code(),
        Some(0),
        "the copied binary's lab run failed"
    );
    assert!(
        text.contains("ok 1 exclusive-basic"),
        "exclusive-basic did not pass"
    );
    assert!(!text.contains("# SKIP"), "exclusive-basic was skipped");
    assert!(
        left.is_empty(),
        "the lab run wrote into the empty folder: {left:?}"
    );
}
