//! secondary_mmu against the real KVM of this host: a tiny real-mode guest
//! increments a word; MADV_DONTNEED on its page must produce a
//! `kvm_unmap_hva_range` for exactly that host range, and the guest must
//! then see a zeroed page. Skips without /dev/kvm or tracefs.

use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::{Kvm, VcpuExit};
use mmuvisor::guest_memory::GuestRegion;
use mmuvisor::secondary_mmu::{self, KvmStats, KvmTrace, TraceConfig};

const MEM: usize = 0x10000;
const CODE: u64 = 0x1000;
const DATA: u64 = 0x3000;

fn skip(reason: &str) {
    eprintln!("SKIP: {reason}");
}

#[test]
#[cfg_attr(not(mmuvisor_kvm), ignore = "needs a usable /dev/kvm")]
fn dontneed_produces_exact_unmap_event() {
    let kvm = match Kvm::new() {
        Ok(k) => k,
        Err(e) => return skip(&format!("no /dev/kvm: {e}")),
    };
    if !secondary_mmu::has_event(secondary_mmu::UNMAP_EVENT) {
        return skip("no tracefs with kvm:kvm_unmap_hva_range");
    }
    let vm = kvm.create_vm().expect("create_vm");
    // SAFETY: anonymous private mapping of MEM bytes, checked below.
    let hva = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            MEM,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    assert_ne!(hva, libc::MAP_FAILED);
    let hva = hva as u64;
    // inc word [0x3000]; hlt; jmp short back to the start.
    let code = [0xffu8, 0x06, 0x00, 0x30, 0xf4, 0xeb, 0xf9];
    // SAFETY: CODE + code.len() is inside the mapping.
    unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), (hva + CODE) as *mut u8, code.len()) };
    let region = kvm_userspace_memory_region {
        slot: 0,
        guest_phys_addr: 0,
        memory_size: MEM as u64,
        userspace_addr: hva,
        flags: 0,
    };
    // SAFETY: the mapping outlives the VM (never unmapped in this test).
    unsafe { vm.set_user_memory_region(region) }.expect("memslot");
    let mut vcpu = vm.create_vcpu(0).expect("vcpu");
    let mut sregs = vcpu.get_sregs().expect("sregs");
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs).expect("set_sregs");
    let mut regs = vcpu.get_regs().expect("regs");
    regs.rip = CODE;
    regs.rflags = 2;
    vcpu.set_regs(&regs).expect("set_regs");

    let trace = KvmTrace::start(&TraceConfig {
        this_process_only: true,
        regions: vec![GuestRegion {
            slot: 0,
            gpa: 0,
            hva,
            size: MEM as u64,
        }],
        buffer_kb: 1024,
    });
    let mut trace = match trace {
        Ok(t) => t,
        Err(e) => return skip(&format!("no private tracefs instance: {e}")),
    };
    let dir = trace.dir().to_path_buf();
    let counter = (hva + DATA) as *const u16;
    for _ in 0..3 {
        match vcpu.run().expect("KVM_RUN") {
            VcpuExit::Hlt => {}
            other => panic!("unexpected exit {other:?}"),
        }
    }
    // SAFETY: reading inside the mapping (no device holds it in this test).
    assert_eq!(unsafe { std::ptr::read_volatile(counter) }, 3);

    let before = mmuvisor::clock::now_ns();
    assert_eq!(
        // SAFETY: page-aligned range inside the mapping.
        unsafe { libc::madvise((hva + DATA) as *mut _, 4096, libc::MADV_DONTNEED) },
        0
    );
    let after = mmuvisor::clock::now_ns();
    trace.poll().expect("poll");
    let hits = trace.unmaps_in(before, after, hva + DATA, hva + DATA + 4096);
    assert!(
        hits.iter()
            .any(|e| e.unmap_covers(hva + DATA, hva + DATA + 4096)),
        "no unmap event for the page; recorded: {:?}",
        trace.events()
    );
    for e in &hits {
        let secondary_mmu::KvmEventKind::UnmapHvaRange { start, end } = e.kind else {
            unreachable!()
        };
        assert_eq!(
            (start, end),
            (hva + DATA, hva + DATA + 4096),
            "unmap wider than the page"
        );
        let r = GuestRegion {
            slot: 0,
            gpa: 0,
            hva,
            size: MEM as u64,
        };
        assert_eq!(r.gfns_of(start, end), Some(3..4));
    }
    match vcpu.run().expect("KVM_RUN") {
        VcpuExit::Hlt => {}
        other => panic!("unexpected exit {other:?}"),
    }
    assert_eq!(
        // SAFETY: as above.
        unsafe { std::ptr::read_volatile(counter) },
        1,
        "guest did not see a zeroed page"
    );

    match KvmStats::open(&vm) {
        Ok(stats) => {
            let snap = stats.read().expect("stats read");
            assert!(!snap.values.is_empty());
            eprintln!(
                "kvm stats: {} values, remote_tlb_flush={:?} pages_4k={:?}",
                snap.values.len(),
                snap.get("remote_tlb_flush"),
                snap.get("pages_4k")
            );
        }
        Err(e) => eprintln!("note: no KVM binary stats here: {e}"),
    }
    drop(trace);
    assert!(
        !dir.exists(),
        "tracefs instance {} left behind",
        dir.display()
    );
}
