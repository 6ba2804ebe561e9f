//! Initial general purpose, special and FPU registers of a vCPU.

use kvm_bindings::{kvm_fpu, kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;

use super::gdt::{boot_gdt, segment_from_entry, CODE_INDEX, DATA_INDEX, TSS_INDEX};
use super::layout::{
    BOOT_GDT_START, BOOT_IDT_START, PAYLOAD_STACK_SIZE, PAYLOAD_STACK_TOP, PML4_START,
};

/// Errors setting vCPU registers.
#[derive(Debug, thiserror::Error)]
pub enum RegsError {
    #[error("KVM_GET_SREGS failed: {0}")]
    GetSregs(kvm_ioctls::Error),
    #[error("KVM_SET_SREGS failed: {0}")]
    SetSregs(kvm_ioctls::Error),
    #[error("KVM_SET_REGS failed: {0}")]
    SetRegs(kvm_ioctls::Error),
    #[error("KVM_SET_FPU failed: {0}")]
    SetFpu(kvm_ioctls::Error),
}

/// CR0 bits.
pub const X86_CR0_PE: u64 = 0x1;
pub const X86_CR0_MP: u64 = 0x2;
pub const X86_CR0_ET: u64 = 0x10;
pub const X86_CR0_NE: u64 = 0x20;
pub const X86_CR0_PG: u64 = 0x8000_0000;
/// CR4 bits.
pub const X86_CR4_PAE: u64 = 0x20;
pub const X86_CR4_OSFXSR: u64 = 0x200;
pub const X86_CR4_OSXMMEXCPT: u64 = 0x400;
/// EFER bits.
pub const EFER_LME: u64 = 0x100;
pub const EFER_LMA: u64 = 0x400;

/// Linux boot stack pointer (below the zero page).
pub const LINUX_BOOT_STACK: u64 = 0x8ff0;

/// Entry registers of a bare payload (see the payload ABI in docs/design.md).
pub fn payload_regs(entry: u64, vcpu: u64, nr_vcpus: u64, args: [u64; 4]) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: PAYLOAD_STACK_TOP - vcpu * PAYLOAD_STACK_SIZE,
        rbp: PAYLOAD_STACK_TOP - vcpu * PAYLOAD_STACK_SIZE,
        rdi: vcpu,
        rsi: nr_vcpus,
        rdx: args[0],
        rcx: args[1],
        r8: args[2],
        r9: args[3],
        rflags: 0x2,
        ..Default::default()
    }
}

/// Entry registers of the 64-bit Linux boot protocol.
pub fn linux_regs(entry: u64, boot_params: u64) -> kvm_regs {
    kvm_regs {
        rip: entry,
        rsp: LINUX_BOOT_STACK,
        rbp: LINUX_BOOT_STACK,
        rsi: boot_params,
        rflags: 0x2,
        ..Default::default()
    }
}

/// Long mode special registers on top of the vCPU's reset state.
pub fn long_mode_sregs(mut sregs: kvm_sregs) -> kvm_sregs {
    let gdt = boot_gdt();
    let code = segment_from_entry(gdt[CODE_INDEX as usize], CODE_INDEX);
    let data = segment_from_entry(gdt[DATA_INDEX as usize], DATA_INDEX);
    let tss = segment_from_entry(gdt[TSS_INDEX as usize], TSS_INDEX);
    sregs.gdt.base = BOOT_GDT_START;
    sregs.gdt.limit = (std::mem::size_of_val(&gdt) - 1) as u16;
    sregs.idt.base = BOOT_IDT_START;
    sregs.idt.limit = 7;
    sregs.cs = code;
    sregs.ds = data;
    sregs.es = data;
    sregs.fs = data;
    sregs.gs = data;
    sregs.ss = data;
    sregs.tr = tss;
    sregs.cr0 = X86_CR0_PE | X86_CR0_MP | X86_CR0_ET | X86_CR0_NE | X86_CR0_PG;
    sregs.cr3 = PML4_START;
    sregs.cr4 = X86_CR4_PAE | X86_CR4_OSFXSR | X86_CR4_OSXMMEXCPT;
    sregs.efer = EFER_LME | EFER_LMA;
    sregs
}

/// FPU state: default control word and MXCSR.
pub fn boot_fpu() -> kvm_fpu {
    kvm_fpu {
        fcw: 0x37f,
        mxcsr: 0x1f80,
        ..Default::default()
    }
}

/// Puts a vCPU in 64-bit mode with the given general purpose registers.
pub fn setup_long_mode(vcpu: &VcpuFd, regs: &kvm_regs) -> Result<(), RegsError> {
    let sregs = vcpu.get_sregs().map_err(RegsError::GetSregs)?;
    vcpu.set_sregs(&long_mode_sregs(sregs))
        .map_err(RegsError::SetSregs)?;
    vcpu.set_fpu(&boot_fpu()).map_err(RegsError::SetFpu)?;
    vcpu.set_regs(regs).map_err(RegsError::SetRegs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_entry_registers() {
        let r = payload_regs(0x100040, 3, 4, [10, 11, 12, 13]);
        assert_eq!(r.rip, 0x100040);
        assert_eq!(r.rsp, 0x200000 - 3 * 0x4000);
        assert_eq!(
            (r.rdi, r.rsi, r.rdx, r.rcx, r.r8, r.r9),
            (3, 4, 10, 11, 12, 13)
        );
        assert_eq!(r.rflags, 2);
    }

    #[test]
    fn linux_entry_registers() {
        let r = linux_regs(0x1000200, 0x7000);
        assert_eq!((r.rip, r.rsi, r.rflags), (0x1000200, 0x7000, 2));
    }

    #[test]
    fn long_mode_special_registers() {
        let s = long_mode_sregs(kvm_sregs::default());
        assert_eq!(s.cr3, 0x9000);
        assert_eq!(s.cr4, 0x620);
        assert_eq!(s.cr0 & (X86_CR0_PE | X86_CR0_PG), X86_CR0_PE | X86_CR0_PG);
        assert_eq!(s.cr0 & 0x4, 0, "CR0.EM must be clear for SSE");
        assert_eq!(s.efer, EFER_LME | EFER_LMA);
        assert_eq!(
            (s.cs.selector, s.cs.l, s.ds.selector, s.tr.selector),
            (8, 1, 0x10, 0x18)
        );
        assert_eq!(
            (s.gdt.base, s.gdt.limit, s.idt.base, s.idt.limit),
            (0x500, 31, 0x520, 7)
        );
    }
}
