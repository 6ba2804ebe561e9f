//! `mmuvisor run --payload`: output, exit codes and crash reports, on /dev/kvm.

use crate::require_kvm_payload;
use crate::run_util::{run_payload, stderr, stdout};

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn hello_on_each_vcpu_then_done() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--vcpus", "3", "--arg", "0"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
    // vCPUs write COM1 concurrently, so lines may interleave: count bytes.
    let out = stdout(&o);
    assert_eq!(out.len(), 3 * "hello from payload\n".len(), "{out:?}");
    assert_eq!(out.matches('\n').count(), 3);
    let o = run_payload(elf, &["--arg", "0"]);
    assert_eq!(stdout(&o), "hello from payload\n");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn debug_exit_code() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--arg", "1", "--arg", "42"]);
    assert_eq!(o.status.code(), Some(42), "stderr: {}", stderr(&o));
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn triple_fault_is_reported() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--arg", "2"]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(
        e.contains("triple fault") && e.contains("vCPU 0") && e.contains("RIP 0x"),
        "{e}"
    );
    assert_eq!(e.lines().count(), 1, "{e}");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn unhandled_port_write_is_reported() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--arg", "3"]);
    assert_eq!(o.status.code(), Some(3));
    let e = stderr(&o);
    assert!(e.contains("port write 0x80 size 2 value 0x1234"), "{e}");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn unhandled_port_read_is_reported() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--arg", "8"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(
        stderr(&o).contains("port read 0x81 size 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn assert_ends_with_message() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--vcpus", "2", "--arg", "4"]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("line 42: counter mismatch"), "{e}");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn timeout_stops_a_spinning_guest() {
    let elf = require_kvm_payload!();
    let t = std::time::Instant::now();
    let o = crate::run_util::mmuvisor(&[
        "run",
        "--payload",
        elf.to_str().unwrap(),
        "--vcpus",
        "2",
        "--arg",
        "5",
        "--timeout",
        "0.5",
    ]);
    assert_eq!(o.status.code(), Some(mmuvisor::exit_code::TIMEOUT));
    assert!(
        t.elapsed().as_secs_f64() < 5.0,
        "stop took {:?}",
        t.elapsed()
    );
    assert!(stderr(&o).contains("timeout"));
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn timeout_stops_a_halted_guest() {
    // HLT with interrupts off blocks the vCPU inside KVM (in-kernel irqchip).
    let elf = require_kvm_payload!();
    let o = crate::run_util::mmuvisor(&[
        "run",
        "--payload",
        elf.to_str().unwrap(),
        "--arg",
        "10",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(
        o.status.code(),
        Some(mmuvisor::exit_code::TIMEOUT),
        "{}",
        stderr(&o)
    );
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn bench_setup_prints_figures() {
    let _ = require_kvm_payload!();
    let o = crate::run_util::mmuvisor(&["bench", "setup", "--setups", "2", "--round-trips", "20"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("SYNC round trip") && out.contains("raw KVM_RUN"),
        "{out}"
    );
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn i8042_reset_ends_vm() {
    let elf = require_kvm_payload!();
    let o = run_payload(elf, &["--arg", "6"]);
    assert_eq!(o.status.code(), Some(0), "stderr: {}", stderr(&o));
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn thp_and_memory_options() {
    let elf = require_kvm_payload!();
    for thp in ["on", "off"] {
        let o = run_payload(elf, &["--arg", "7", "--mem", "32M", "--thp", thp]);
        assert_eq!(o.status.code(), Some(0), "thp {thp}: {}", stderr(&o));
    }
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn closed_or_null_stdin_is_fine() {
    let elf = require_kvm_payload!();
    let cmd = format!(
        "exec 0<&- ; exec {} run --payload {} --arg 0 --timeout 10",
        env!("CARGO_BIN_EXE_mmuvisor"),
        elf.display()
    );
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "closed stdin: {}", stderr(&o));
    assert_eq!(stdout(&o), "hello from payload\n");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn piped_stdin_reaches_the_guest() {
    use std::io::Write;
    let elf = require_kvm_payload!();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .args([
            "run",
            "--payload",
            elf.to_str().unwrap(),
            "--arg",
            "9",
            "--timeout",
            "10",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"A").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(65), "stderr: {}", stderr(&o));
}
