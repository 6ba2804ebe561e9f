//! x86_64 boot state: memory layout, descriptor tables, paging, registers,
//! MSRs, CPUID and local APIC setup.

pub mod cpuid;
pub mod gdt;
pub mod interrupts;
pub mod layout;
pub mod msrs;
pub mod paging;
pub mod regs;
