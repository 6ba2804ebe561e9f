//! The library API drills use (Vm, RunningVm, GuestEvent), on /dev/kvm.

use std::time::Duration;

use mmuvisor::guest_memory::Thp;
use mmuvisor::vmm::{GuestEventKind, GuestImage, OutcomeReason, Vm, VmConfig, VmmError};

use crate::require_kvm_payload;

fn config(elf: &std::path::Path, vcpus: usize, arg0: u64) -> VmConfig {
    let mut c = VmConfig::payload(std::fs::read(elf).unwrap(), vcpus);
    c.mem_size = 32 << 20;
    if let GuestImage::Payload { args, .. } = &mut c.image {
        args[0] = arg0;
    }
    c
}

const T: Duration = Duration::from_secs(10);

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn sync_reply_reaches_rax() {
    let elf = require_kvm_payload!();
    let mut vm = Vm::new(&config(elf, 2, 0)).unwrap();
    let mut running = vm.start().unwrap();
    let mut serial = Vec::new();
    let mut done = Vec::new();
    let mut last_time = 0;
    loop {
        let ev = match running.next_event(T) {
            Ok(ev) => ev,
            Err(VmmError::Ended) => break,
            Err(e) => panic!("{e}"),
        };
        assert!(ev.time_ns >= last_time, "timestamps go forward");
        last_time = ev.time_ns;
        match ev.kind {
            GuestEventKind::Sync { stage, v0, .. } => {
                assert_eq!(stage, 7);
                assert_eq!(v0, ev.vcpu as u64, "SYNC v0 carries the vCPU index");
                running.reply(ev.vcpu, 1000 + ev.vcpu as u64).unwrap();
            }
            GuestEventKind::Serial(b) => serial.extend(b),
            GuestEventKind::Done { value } => done.push((ev.vcpu, value)),
            other => panic!("unexpected {other:?}"),
        }
    }
    done.sort();
    assert_eq!(done, vec![(0, 1000), (1, 1001)]);
    // Both vCPUs write COM1 concurrently: count bytes, not lines.
    assert_eq!(serial.len(), 2 * "hello from payload\n".len(), "{serial:?}");
    assert!(running.exit_counts().iter().all(|&n| n > 0));
    let out = running.wait().unwrap();
    assert_eq!((out.code, out.reason), (0, OutcomeReason::AllDone));
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn guest_write_seen_in_pagemap_and_dirty_log() {
    let elf = require_kvm_payload!();
    let mut vm = Vm::new(&config(elf, 1, 7)).unwrap();
    let page = 0x200000;
    assert!(
        !vm.memory().pagemap(page).unwrap().present(),
        "not touched before the guest runs"
    );
    vm.set_dirty_logging(true).unwrap();
    let mut running = vm.start().unwrap();
    let ev = running.next_event(T).unwrap();
    let GuestEventKind::Sync { stage: 1, v0, v1 } = ev.kind else {
        panic!("expected SYNC 1, got {ev:?}");
    };
    assert_eq!((v0, v1), (page, 0x1000));
    let pm = vm.memory().pagemap(page).unwrap();
    assert!(
        pm.present() && !pm.swapped(),
        "guest write made the host page present: {pm:?}"
    );
    let hva = vm.memory().gpa_to_hva(page).unwrap();
    assert_eq!(vm.memory().hva_to_gpa(hva), Some(page));
    let dirty = vm.dirty_pages().unwrap();
    assert!(dirty.contains(&page), "dirty log has the page: {dirty:x?}");
    // Change the counter behind the guest's back: the guest reads it back.
    // SAFETY: hva is inside guest RAM owned by `vm`.
    unsafe { std::ptr::write_volatile(hva as *mut u64, 0xabcd) };
    running.reply(0, 0).unwrap();
    let ev = running.next_event(T).unwrap();
    assert_eq!(ev.kind, GuestEventKind::Done { value: 0xabcd });
    assert_eq!(running.wait().unwrap().code, 0);
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn stop_ends_a_spinning_guest() {
    let elf = require_kvm_payload!();
    let mut vm = Vm::new(&config(elf, 2, 5)).unwrap();
    let mut running = vm.start().unwrap();
    assert!(matches!(
        running.next_event(Duration::from_millis(200)),
        Err(VmmError::Timeout)
    ));
    let t = std::time::Instant::now();
    running.stop();
    let out = running.wait().unwrap();
    assert_eq!(
        (out.code, out.reason),
        (mmuvisor::exit_code::TIMEOUT, OutcomeReason::Stopped)
    );
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        t.elapsed()
    );
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn crash_event_and_outcome() {
    let elf = require_kvm_payload!();
    let mut vm = Vm::new(&config(elf, 1, 2)).unwrap();
    let mut running = vm.start().unwrap();
    let ev = running.next_event(T).unwrap();
    assert!(
        matches!(ev.kind, GuestEventKind::Crash(ref r) if r.contains("triple fault")),
        "{ev:?}"
    );
    assert_eq!(running.wait().unwrap().code, 3);
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn memory_above_3g_moves_to_4g() {
    let elf = require_kvm_payload!();
    let mut c = config(elf, 1, 0);
    c.mem_size = 4 << 30;
    let vm = Vm::new(&c).unwrap();
    let r = vm.memory().regions();
    assert_eq!(r.len(), 2);
    assert_eq!(
        (r[0].gpa, r[0].size, r[1].gpa, r[1].size),
        (0, 3 << 30, 4 << 30, 1 << 30)
    );
    assert!(vm.memory().gpa_to_hva(0xd000_0000).is_none());
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn thp_backs_guest_written_memory_when_asked() {
    let elf = require_kvm_payload!();
    let thp =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    for (mode, want_huge) in [(Thp::Off, false), (Thp::On, true)] {
        if want_huge && (thp.contains("[never]") || thp.is_empty()) {
            eprintln!("SKIP thp on: THP disabled on this host");
            continue;
        }
        let mut c = config(elf, 1, 7);
        c.thp = mode;
        let mut vm = Vm::new(&c).unwrap();
        let mut running = vm.start().unwrap();
        let ev = running.next_event(T).unwrap();
        assert!(
            matches!(ev.kind, GuestEventKind::Sync { stage: 1, .. }),
            "{ev:?}"
        );
        let huge = vm.memory().anon_huge_bytes(0x200000).unwrap();
        assert_eq!(huge >= 2 << 20, want_huge, "{mode:?}: AnonHugePages {huge}");
        running.reply(0, 0).unwrap();
        assert_eq!(running.wait().unwrap().code, 0);
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn dropping_a_vm_closes_every_fd_it_opened() {
    let elf = require_kvm_payload!();
    // Other tests may run in parallel threads and open fds: take the least
    // count seen around the VMs, and allow no growth per VM.
    let before = open_fds();
    for _ in 0..8 {
        let vm = Vm::new(&config(elf, 2, 0)).unwrap();
        drop(vm);
    }
    let after = open_fds();
    assert!(
        after < before + 8,
        "{} fds left open after 8 VMs",
        after.saturating_sub(before)
    );
}
