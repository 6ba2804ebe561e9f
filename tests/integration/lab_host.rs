//! The no-lab path (`mmuvisor host check`, `mmuvisor host setup`), tried by
//! treating the lab as a developer's machine: the lab boots without the
//! helper module; inside, `host check` must name what is missing, `host
//! setup` builds the module against the lab kernel's build tree (with the
//! host's compiler, in a chroot of the host's root) and loads it, and the
//! drills then run.

use std::process::Command;

use crate::lab::{lab_enabled, lab_run};

fn lab_kernel_dir() -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args(["lab", "kernel"])
        .output()
        .expect("mmuvisor lab kernel");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_host_path_checks_builds_loads_and_runs_the_drills() {
    if !lab_enabled() {
        return;
    }
    let kdir = format!("{}/src", lab_kernel_dir());
    let script = format!(
        "for m in 'tmpfs tmpfs /host/tmp' 'devtmpfs devtmpfs /host/dev' 'proc proc /host/proc' 'sysfs sysfs /host/sys'; do\n\
           set -- $m; grep -q \" $3 \" /proc/mounts || mount -t $1 $2 $3; done\n\
         mmuvisor host check; echo \"check-before rc=$?\"\n\
         cp \"$(command -v mmuvisor)\" /host/tmp/mmuvisor || exit 89\n\
         MMUVISOR_CACHE=/tmp/mmv chroot /host /tmp/mmuvisor host setup --kdir {kdir} || exit 90\n\
         mmuvisor host check || exit 91\n\
         mmuvisor drill --format ktap all\n"
    );
    let out = lab_run(&["--no-kmod"], &["sh", "-c", &script]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("missing  module") && text.contains("check-before rc=1"),
        "host check did not name the missing module:\n{text}"
    );
    assert!(
        text.contains("[lab] building the helper module") || text.contains("# helper module:"),
        "{text}"
    );
    let results = mmuvisor::drill::report::ktap::parse(&text);
    assert!(results.len() >= 15, "{text}");
    assert!(
        results.iter().all(|r| r.result.word() == "ok"),
        "drills after host setup:\n{text}"
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
}
