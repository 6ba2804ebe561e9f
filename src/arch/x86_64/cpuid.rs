//! Per-vCPU fixups of the CPUID that KVM supports: APIC IDs, topology,
//! hypervisor bit, no TSC-deadline timer.

use kvm_bindings::{kvm_cpuid_entry2, CpuId};

/// Leaf 1 ECX: running under a hypervisor.
pub const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX: the local APIC timer has TSC-deadline mode. Hidden: nested
/// in the lab (QEMU TCG, SVM) a Linux guest's TSC-deadline timer never
/// fired (no local timer interrupts, `sleep 1` hung, power-off and reboot
/// waited for the RCU stall detector); without it Linux calibrates the
/// APIC timer against the PIT and runs it one-shot, which works there.
pub const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 EDX: the logical processor count in EBX is valid.
pub const LEAF1_EDX_HTT: u32 = 1 << 28;
/// Extended topology level types (leaf 0xB / 0x1F, ECX bits 15..8).
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// Smallest shift such that `1 << shift >= n`.
fn shift_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

/// Fixes one CPUID entry for vCPU `apic_id` of `nr_vcpus` (one socket, one
/// thread per core, APIC ID = vCPU index).
pub fn fixup_entry(e: &mut kvm_cpuid_entry2, apic_id: u32, nr_vcpus: u32) {
    match e.function {
        0x1 => {
            e.ebx = (e.ebx & 0x0000_ffff) | (apic_id << 24) | ((nr_vcpus & 0xff) << 16);
            e.ecx |= LEAF1_ECX_HYPERVISOR;
            e.ecx &= !LEAF1_ECX_TSC_DEADLINE;
            if nr_vcpus > 1 {
                e.edx |= LEAF1_EDX_HTT;
            } else {
                e.edx &= !LEAF1_EDX_HTT;
            }
        }
        0x4 => {
            // Cores per package - 1 in bits 31..26.
            e.eax = (e.eax & 0x03ff_ffff) | ((nr_vcpus.saturating_sub(1) & 0x3f) << 26);
        }
        0xb | 0x1f => {
            e.edx = apic_id;
            match e.index {
                0 => {
                    e.eax = 0;
                    e.ebx = 1;
                    e.ecx = (LEVEL_SMT << 8) | e.index;
                }
                1 => {
                    e.eax = shift_for(nr_vcpus);
                    e.ebx = nr_vcpus;
                    e.ecx = (LEVEL_CORE << 8) | e.index;
                }
                _ => {
                    e.eax = 0;
                    e.ebx = 0;
                    e.ecx = e.index;
                }
            }
        }
        _ => {}
    }
}

/// Fixes the whole CPUID of one vCPU.
pub fn fixup(cpuid: &mut CpuId, apic_id: u32, nr_vcpus: u32) {
    for e in cpuid.as_mut_slice() {
        fixup_entry(e, apic_id, nr_vcpus);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            ebx: 0x0000_0800,
            ..Default::default()
        }
    }

    #[test]
    fn leaf1_apic_id_and_hypervisor() {
        let mut e = entry(1, 0);
        fixup_entry(&mut e, 5, 8);
        assert_eq!(e.ebx >> 24, 5);
        assert_eq!((e.ebx >> 16) & 0xff, 8);
        assert_eq!(e.ebx & 0xffff, 0x800, "brand/clflush bits kept");
        assert_ne!(e.ecx & LEAF1_ECX_HYPERVISOR, 0);
        assert_ne!(e.edx & LEAF1_EDX_HTT, 0);
        let mut one = entry(1, 0);
        one.edx = LEAF1_EDX_HTT;
        fixup_entry(&mut one, 0, 1);
        assert_eq!(one.edx & LEAF1_EDX_HTT, 0);
        let mut tsc = entry(1, 0);
        tsc.ecx = LEAF1_ECX_TSC_DEADLINE | 1;
        fixup_entry(&mut tsc, 0, 1);
        assert_eq!(tsc.ecx & LEAF1_ECX_TSC_DEADLINE, 0, "TSC deadline hidden");
        assert_eq!(tsc.ecx & 1, 1, "other bits kept");
    }

    #[test]
    fn leaf_b_topology() {
        let mut smt = entry(0xb, 0);
        fixup_entry(&mut smt, 3, 6);
        assert_eq!((smt.eax, smt.ebx, smt.ecx, smt.edx), (0, 1, 0x100, 3));
        let mut core = entry(0xb, 1);
        fixup_entry(&mut core, 3, 6);
        assert_eq!((core.eax, core.ebx, core.ecx, core.edx), (3, 6, 0x201, 3));
        let mut end = entry(0xb, 2);
        fixup_entry(&mut end, 3, 6);
        assert_eq!((end.eax, end.ebx, end.ecx, end.edx), (0, 0, 2, 3));
        assert_eq!(shift_for(1), 0);
        assert_eq!(shift_for(2), 1);
        assert_eq!(shift_for(32), 5);
        assert_eq!(shift_for(33), 6);
    }
}
