//! A Linux guest under `mmuvisor run` that powers off ends the VM with
//! status 0 (ACPI S5 through the PM1a control register), and one that
//! reboots still ends it through the i8042 reset. Nested in the lab (set
//! MMUVISOR_LAB_TESTS=1): the guest is Debian's stock kernel, its
//! initramfs the lab's busybox test-guest image with our own /init
//! appended (a second cpio archive overrides the first's /init).
//!
//! Slow by nature: in the nested guest a timed wait on the way to
//! power-off or reboot can take tens of seconds to be woken (the guest's
//! timer interrupts are unreliable under the lab's TCG, with `acpi=off` as
//! well), hence the generous timeouts. Before ACPI, `poweroff -f` never
//! ended the VM: `mmuvisor run` exited 124 at the timeout.

use super::lab::{lab_enabled, lab_run};
use mmuvisor::lab::cpio::CpioWriter;

/// The guest's /init: a busybox script whose last word is `poweroff -f`.
const POWEROFF_INIT: &str = "#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
echo \"poweroff-guest: up, $(nproc) CPUs\"
poweroff -f
echo \"poweroff-guest: poweroff returned $?\"
";

#[test]
#[cfg_attr(
    not(mmuvisor_lab_tests),
    ignore = "needs the lab: MMUVISOR_LAB_TESTS=1 (scripts/test.sh sets it)"
)]
fn lab_linux_guest_poweroff_ends_the_vm_with_0_and_reboot_still_works() {
    if !lab_enabled() {
        return;
    }
    // In the current folder: the lab shares it at the same path.
    let dir = std::env::current_dir()
        .expect("cwd")
        .join("target")
        .join(format!("lab-poweroff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("test folder");
    let mut w = CpioWriter::new();
    w.file("/init", 0o755, POWEROFF_INIT.as_bytes());
    std::fs::write(dir.join("init.cpio"), w.finish()).expect("init.cpio");
    let d = dir.display();
    let script = format!(
        "cat $MMUVISOR_GUEST_INITRD {d}/init.cpio > {d}/poweroff.cpio || exit 99
mmuvisor -v run --kernel $MMUVISOR_GUEST_KERNEL --initrd {d}/poweroff.cpio --vcpus 2 --mem 256M --timeout 240
po=$?; echo poweroff-rc=$po
mmuvisor -v run --kernel $MMUVISOR_GUEST_KERNEL --initrd $MMUVISOR_GUEST_INITRD --vcpus 1 --mem 256M --timeout 240 --cmdline '-- reboot -f; exit 9'
rb=$?; echo reboot-rc=$rb
[ $po = 0 ] && [ $rb = 0 ]"
    );
    let out = lab_run(&[], &["sh", "-c", &script]);
    let _ = std::fs::remove_dir_all(&dir);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("poweroff-guest: up, 2 CPUs"),
        "the guest did not reach its init with 2 CPUs (ACPI MADT)"
    );
    assert!(
        !text.contains("poweroff returned"),
        "poweroff -f returned in the guest"
    );
    assert!(
        text.contains("reboot: Power down"),
        "the guest kernel did not power down"
    );
    assert!(
        text.contains("mmuvisor: info: guest powered off"),
        "the VMM did not see the power-off"
    );
    assert!(
        text.contains("poweroff-rc=0"),
        "mmuvisor run did not exit 0 after the guest's poweroff -f"
    );
    assert!(
        text.contains("mmuvisor: info: guest reset") && text.contains("reboot-rc=0"),
        "reboot -f no longer ends the VM with 0"
    );
    assert_eq!(out.status.code(), Some(0));
}
