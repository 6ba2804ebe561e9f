//! x86_64 boot state: memory layout, descriptor tables, paging, registers,
//! MSRs, CPUID, local APIC setup, zero page, MP table and ACPI tables.

pub mod acpi;
pub mod boot_params;
pub mod cpuid;
pub mod gdt;
pub mod interrupts;
pub mod layout;
pub mod mptable;
pub mod msrs;
pub mod paging;
pub mod regs;
