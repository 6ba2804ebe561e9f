//! `--tree DIR`: the lab kernel built from a developer's own source tree,
//! out of tree (the tree is never written), rebuilt incrementally after a
//! change. The bad-tree checks run everywhere; the build itself (minutes)
//! only where MMUVISOR_LAB_TREE names a tree to build (opt-in, not in CI).

use crate::lab::lab_enabled;
use std::path::Path;
use std::process::{Command, Output};

fn lab_kernel_tree(tree: &Path, cache: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mmuvisor"));
    cmd.args(["lab", "kernel", "--tree"]).arg(tree);
    if let Some(c) = cache {
        cmd.arg("--cache").arg(c);
    }
    cmd.output().expect("cannot start mmuvisor")
}

/// A fake tree: a top-level Makefile of that version, arch/x86, mm/ and
/// (or not) make_device_exclusive in include/linux/rmap.h.
fn fake_tree(dir: &Path, version: u32, patchlevel: u32, exclusive: bool) {
    for d in ["arch/x86", "mm", "include/linux"] {
        std::fs::create_dir_all(dir.join(d)).expect("fake tree");
    }
    let makefile =
        format!("VERSION = {version}\nPATCHLEVEL = {patchlevel}\nSUBLEVEL = 0\nEXTRAVERSION =\n");
    std::fs::write(dir.join("Makefile"), makefile).expect("fake Makefile");
    let rmap = if exclusive {
        "int make_device_exclusive_range(void);\n"
    } else {
        "\n"
    };
    std::fs::write(dir.join("include/linux/rmap.h"), rmap).expect("fake rmap.h");
}

fn one_line_error(out: &Output, expect: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(expect), "{err}");
}

#[test]
fn lab_tree_rejects_what_it_cannot_build_with_one_line() {
    let base = std::env::temp_dir().join(format!("mmuvisor-trees-{}", std::process::id()));
    let cache = base.join("cache");
    let _ = std::fs::create_dir_all(&cache);
    one_line_error(
        &lab_kernel_tree(&base.join("nothing"), Some(&cache)),
        "no such folder",
    );
    one_line_error(
        &lab_kernel_tree(&cache, Some(&cache)),
        "is not a Linux source tree",
    );
    let old = base.join("old");
    fake_tree(&old, 5, 15, true);
    one_line_error(
        &lab_kernel_tree(&old, Some(&cache)),
        "Linux 5.15.0: the lab supports 6.1 and newer",
    );
    let none = base.join("none");
    fake_tree(&none, 6, 6, false);
    one_line_error(
        &lab_kernel_tree(&none, Some(&cache)),
        "has no make_device_exclusive()",
    );
    let built = base.join("built");
    fake_tree(&built, 6, 12, true);
    std::fs::write(built.join(".config"), "").expect(".config");
    one_line_error(
        &lab_kernel_tree(&built, Some(&cache)),
        "has an in-tree build",
    );
    let _ = std::fs::remove_dir_all(&base);
}

/// A plain tree's listing (path, size, mtime of every file): unchanged
/// means nothing was written there.
fn listing(tree: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg("find . -type f -printf '%P %s %T@\\n' | LC_ALL=C sort | sha256sum")
        .current_dir(tree)
        .output()
        .expect("find");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[cfg_attr(
    not(all(mmuvisor_lab_tests, mmuvisor_lab_tree)),
    ignore = "needs the lab and a kernel tree: MMUVISOR_LAB_TESTS=1 MMUVISOR_LAB_TREE=DIR"
)]
fn lab_tree_builds_out_of_tree_and_runs_the_drills() {
    let Some(tree) = std::env::var_os("MMUVISOR_LAB_TREE") else {
        println!("SKIP: set MMUVISOR_LAB_TREE=DIR (a Linux source tree, 6.1 or newer) to build it");
        return;
    };
    if !lab_enabled() {
        return;
    }
    let tree = Path::new(&tree);
    let before = listing(tree);
    let first = lab_kernel_tree(tree, None);
    eprintln!("{}", String::from_utf8_lossy(&first.stderr));
    assert_eq!(first.status.code(), Some(0), "the tree did not build");
    // The same sources again: the cached build, nothing rebuilt.
    let again = lab_kernel_tree(tree, None);
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("cached:"),
        "a second build of the same tree: {err}"
    );
    assert_eq!(first.stdout, again.stdout, "another kernel folder");
    assert_eq!(listing(tree), before, "the build wrote into the tree");
    let out = Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "run", "--timeout", "900", "--tree"])
        .arg(tree)
        .args([
            "--",
            "sh",
            "-c",
            "test -c /dev/mmuvisor || exit 98; mmuvisor drill exclusive-basic --format ktap",
        ])
        .output()
        .expect("cannot start mmuvisor");
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert_eq!(
        out.status.code(),
        Some(0),
        "drill on the tree's kernel failed"
    );
    assert!(text.contains("ok 1 exclusive-basic") && !text.contains("# SKIP"));
}
