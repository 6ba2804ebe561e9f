//! The built-in payload guests on /dev/kvm: through the CLI (output and exit
//! status) and through the VMM API (the interp payload driven step by step).
//! They also run inside the lab (tests/integration/lab.rs).

use crate::run_util::kvm_skip_reason;
use mmuvisor::payloads;
use mmuvisor::vcpu::GuestEventKind;
use mmuvisor::vmm::{GuestImage, Vm, VmConfig};
use mmuvisor_abi::interp;
use std::process::{Command, Output};
use std::time::Duration;

fn run(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmuvisor"))
        .arg("run")
        .args(args)
        .args(["--timeout", "60"])
        .output()
        .expect("cannot start mmuvisor")
}

macro_rules! require_kvm {
    () => {
        if let Some(why) = kvm_skip_reason() {
            println!("SKIP: {why}");
            return;
        }
    };
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn hello_prints_and_exits_zero() {
    require_kvm!();
    let out = run(&["--payload", "hello", "--vcpus", "1"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Hello from mmuvisor payload, vCPU 0 of 1")
    );
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn exit_code_is_the_process_status() {
    require_kvm!();
    for code in [0, 7, 200] {
        let out = run(&["--payload", "exit-code", "--arg", &code.to_string()]);
        assert_eq!(out.status.code(), Some(code));
    }
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn crashes_are_reported_not_hung() {
    require_kvm!();
    let out = run(&["--payload", "triple-fault"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("triple fault"));
    let out = run(&["--payload", "bad-port"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("port write 0x1234"));
}

fn payload_vm(name: &str, vcpus: usize, args: [u64; 4]) -> Vm {
    let elf = payloads::builtin(name).expect("built-in payload").to_vec();
    let mut config = VmConfig::payload(elf, vcpus);
    config.image = GuestImage::Payload {
        elf: config_elf(&config),
        args,
    };
    Vm::new(&config).expect("VM setup")
}

fn config_elf(config: &VmConfig) -> Vec<u8> {
    match &config.image {
        GuestImage::Payload { elf, .. } => elf.clone(),
        GuestImage::Linux(_) => unreachable!(),
    }
}

/// Runs a VM to its end, collecting SYNCs as (vcpu, stage, v0, v1), replying 0.
fn syncs_until_end(vm: &mut Vm) -> (Vec<(usize, u64, u64, u64)>, i32) {
    let mut running = vm.start().expect("start");
    let mut syncs = Vec::new();
    while let Ok(ev) = running.next_event(Duration::from_secs(60)) {
        match ev.kind {
            GuestEventKind::Sync { stage, v0, v1 } => {
                syncs.push((ev.vcpu, stage, v0, v1));
                running.reply(ev.vcpu, 0).expect("reply");
            }
            GuestEventKind::Assert { message, .. } => panic!("guest assert: {message}"),
            _ => {}
        }
        if running.outcome().is_some() {
            break;
        }
    }
    let outcome = running.wait().expect("wait");
    (syncs, outcome.code)
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn smp_vcpus_meet_and_count() {
    require_kvm!();
    let mut vm = payload_vm("smp", 3, [200, 0, 0, 0]);
    let (syncs, code) = syncs_until_end(&mut vm);
    assert_eq!(code, 0);
    let mut arrived: Vec<u64> = syncs.iter().filter(|s| s.1 == 1).map(|s| s.2).collect();
    arrived.sort();
    assert_eq!(arrived, vec![0, 1, 2], "every vCPU reports its index");
    assert!(
        syncs.iter().any(|s| s.1 == 2 && s.2 == 600),
        "vCPU 0 reports 3 x 200: {syncs:?}"
    );
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn mem_pattern_reads_back_what_it_wrote() {
    require_kvm!();
    let mut vm = payload_vm("mem-pattern", 1, [16, 42, 0, 0]);
    let (syncs, code) = syncs_until_end(&mut vm);
    assert_eq!(code, 0);
    let (_, stage, sum, bad) = syncs[0];
    assert_eq!((stage, bad), (1, 0));
    assert_ne!(sum, 0);
    // The first data page is present in the host page tables now.
    let entry = vm.memory().pagemap(0x200000).expect("pagemap");
    assert!(entry.present(), "written guest page not present in pagemap");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn interp_runs_host_commands() {
    require_kvm!();
    let mut vm = payload_vm("interp", 1, [64, 0, 0, 0]);
    let mut running = vm.start().expect("start");
    let mut step = |cmd: u64| -> u64 {
        let ev = running.next_event(Duration::from_secs(30)).expect("event");
        let GuestEventKind::Sync { v0, .. } = ev.kind else {
            panic!("expected SYNC, got {:?}", ev.kind)
        };
        running.reply(ev.vcpu, cmd).expect("reply");
        v0
    };
    use interp::{encode, Op};
    // Each SYNC carries the result of the command sent before it.
    assert_eq!(
        step(encode(Op::Write, 3, 10)),
        0,
        "first SYNC has no result"
    );
    assert_eq!(
        step(encode(Op::IncLoop, 3, 5)),
        0,
        "WRITE returns the old value"
    );
    assert_eq!(
        step(encode(Op::AtomicAdd, 3, 100)),
        15,
        "INC_LOOP returns the last value"
    );
    assert_eq!(
        step(encode(Op::Read, 3, 0)),
        15,
        "ATOMIC_ADD returns the old value"
    );
    assert_eq!(step(encode(Op::FillRange, 4, 3)), 115, "READ sees both");
    assert_eq!(step(encode(Op::CheckRange, 4, 3)), 0);
    assert_eq!(
        step(encode(Op::Read, 64, 0)),
        0,
        "CHECK_RANGE finds no mismatch"
    );
    let ev = running.next_event(Duration::from_secs(30)).expect("event");
    match ev.kind {
        GuestEventKind::Assert { message, .. } => assert!(message.contains("outside"), "{message}"),
        other => panic!("out-of-range page must assert, got {other:?}"),
    }
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn interp_rejects_an_unknown_op_before_its_page() {
    require_kvm!();
    let mut vm = payload_vm("interp", 1, [4, 0, 0, 0]);
    let mut running = vm.start().expect("start");
    let ev = running.next_event(Duration::from_secs(30)).expect("event");
    assert!(
        matches!(ev.kind, GuestEventKind::Sync { .. }),
        "{:?}",
        ev.kind
    );
    // Op 15 with a page far outside the 4 data pages: the op is named.
    running
        .reply(ev.vcpu, (15 << 56) | (1000 << 32))
        .expect("reply");
    let ev = running.next_event(Duration::from_secs(30)).expect("event");
    match ev.kind {
        GuestEventKind::Assert { message, .. } => {
            assert!(message.contains("unknown op 15"), "{message}")
        }
        other => panic!("an unknown op must assert, got {other:?}"),
    }
}
