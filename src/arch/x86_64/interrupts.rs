//! Local APIC LVT setup: LINT0 as ExtINT (the PIC), LINT1 as NMI.

use kvm_bindings::kvm_lapic_state;
use kvm_ioctls::VcpuFd;

/// Errors configuring the local APIC.
#[derive(Debug, thiserror::Error)]
pub enum InterruptError {
    #[error("KVM_GET_LAPIC failed: {0}")]
    Get(kvm_ioctls::Error),
    #[error("KVM_SET_LAPIC failed: {0}")]
    Set(kvm_ioctls::Error),
}

/// LVT LINT0 and LINT1 register offsets.
pub const APIC_LVT0: usize = 0x350;
pub const APIC_LVT1: usize = 0x360;
/// Delivery modes.
pub const APIC_MODE_NMI: u32 = 0x4;
pub const APIC_MODE_EXTINT: u32 = 0x7;

fn get_reg(state: &kvm_lapic_state, off: usize) -> u32 {
    let b = &state.regs[off..off + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

fn set_reg(state: &mut kvm_lapic_state, off: usize, v: u32) {
    for (i, b) in v.to_le_bytes().iter().enumerate() {
        state.regs[off + i] = *b as _;
    }
}

/// Replaces the delivery mode (bits 8..10) of an LVT entry.
pub fn with_delivery_mode(reg: u32, mode: u32) -> u32 {
    (reg & !0x700) | (mode << 8)
}

/// Sets LINT0 to ExtINT and LINT1 to NMI in an APIC state.
pub fn set_lint(state: &mut kvm_lapic_state) {
    let l0 = get_reg(state, APIC_LVT0);
    set_reg(state, APIC_LVT0, with_delivery_mode(l0, APIC_MODE_EXTINT));
    let l1 = get_reg(state, APIC_LVT1);
    set_reg(state, APIC_LVT1, with_delivery_mode(l1, APIC_MODE_NMI));
}

/// Configures a vCPU's local APIC LINT pins.
pub fn setup_lint(vcpu: &VcpuFd) -> Result<(), InterruptError> {
    let mut state = vcpu.get_lapic().map_err(InterruptError::Get)?;
    set_lint(&mut state);
    vcpu.set_lapic(&state).map_err(InterruptError::Set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lint_modes() {
        let mut s = kvm_lapic_state::default();
        set_reg(&mut s, APIC_LVT0, 0x0001_0000);
        set_lint(&mut s);
        assert_eq!(get_reg(&s, APIC_LVT0), 0x0001_0700);
        assert_eq!(get_reg(&s, APIC_LVT1), 0x400);
    }
}
