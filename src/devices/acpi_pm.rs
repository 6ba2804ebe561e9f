//! The ACPI PM1a register blocks of the FADT (arch::x86_64::acpi): the
//! event block (status, enable) and the control register. Writing
//! SLP_TYP = S5 with SLP_EN to the control register powers the VM off;
//! the other sleep states are not offered (the DSDT names only `\_S5_`)
//! and are ignored. The control register reads with SCI_EN set (the VM is
//! always in ACPI mode); status reads 0 (no events: the SCI never fires);
//! enable keeps what was written.

use super::bus::{IoAction, PortDevice};
use crate::arch::x86_64::acpi::{
    PM1_CNT_LEN, PM1_CNT_OFFSET, PM1_CNT_SCI_EN, PM1_CNT_SLP_EN, PM1_CNT_SLP_TYP_MASK,
    PM1_CNT_SLP_TYP_SHIFT, PM1_EVT_LEN, S5_SLEEP_TYPE,
};

/// Ports from ACPI_PM_PORT: the event block, then the control block.
pub const ACPI_PM_LEN: u16 = PM1_EVT_LEN as u16 + PM1_CNT_LEN as u16;
/// The enable register's offset in the event block (second half).
const PM1_EN_OFFSET: u16 = PM1_EVT_LEN as u16 / 2;

/// PM1 status (always 0), enable and control registers.
#[derive(Debug, Default)]
pub struct AcpiPm {
    enable: u16,
    control: u16,
}

impl AcpiPm {
    /// The byte at `offset` of the block as the guest reads it.
    fn byte(&self, offset: u16) -> u8 {
        let (reg, base) = match offset {
            o if o >= PM1_CNT_OFFSET => (self.control | PM1_CNT_SCI_EN, PM1_CNT_OFFSET),
            o if o >= PM1_EN_OFFSET => (self.enable, PM1_EN_OFFSET),
            _ => (0, 0),
        };
        reg.to_le_bytes()[usize::from(offset - base).min(1)]
    }
}

/// `reg` with its byte `index` (0 or 1) replaced by `b`.
fn set_byte(reg: u16, index: u16, b: u8) -> u16 {
    let mut bytes = reg.to_le_bytes();
    bytes[usize::from(index).min(1)] = b;
    u16::from_le_bytes(bytes)
}

impl PortDevice for AcpiPm {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let at = offset.saturating_add(i as u16);
            *b = if at < ACPI_PM_LEN {
                self.byte(at)
            } else {
                0xff
            };
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Option<IoAction> {
        let mut control_written = false;
        for (i, &b) in data.iter().enumerate() {
            let at = offset.saturating_add(i as u16);
            if (PM1_CNT_OFFSET..ACPI_PM_LEN).contains(&at) {
                self.control = set_byte(self.control, at - PM1_CNT_OFFSET, b);
                control_written = true;
            } else if (PM1_EN_OFFSET..PM1_CNT_OFFSET).contains(&at) {
                self.enable = set_byte(self.enable, at - PM1_EN_OFFSET, b);
            }
            // Status: write-1-to-clear of bits that are never set.
        }
        let sleep_type = (self.control & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
        let power_off = control_written
            && self.control & PM1_CNT_SLP_EN != 0
            && sleep_type == u16::from(S5_SLEEP_TYPE);
        // SLP_EN is write-only: it reads back as 0.
        self.control &= !PM1_CNT_SLP_EN;
        power_off.then_some(IoAction::PowerOff)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s5_with_sleep_enable_powers_off() {
        let mut d = AcpiPm::default();
        // Linux's sequence (acpi_hw_legacy_sleep): clear status, write
        // SLP_TYP alone, then SLP_TYP | SLP_EN, SCI_EN kept.
        assert_eq!(d.write(0, &[0xff, 0xff]), None);
        assert_eq!(d.write(4, &0x1401u16.to_le_bytes()), None);
        assert_eq!(
            d.write(4, &0x3401u16.to_le_bytes()),
            Some(IoAction::PowerOff)
        );
        // The high byte alone carries SLP_TYP and SLP_EN.
        let mut d = AcpiPm::default();
        assert_eq!(d.write(5, &[0x34]), Some(IoAction::PowerOff));
        // One 32-bit write across the enable and control registers.
        let mut d = AcpiPm::default();
        assert_eq!(d.write(2, &[0, 0, 0x01, 0x34]), Some(IoAction::PowerOff));
    }

    #[test]
    fn other_writes_do_nothing() {
        let mut d = AcpiPm::default();
        for (off, data) in [
            (4u16, &[0x01u8, 0x14][..]), // SLP_TYP 5 without SLP_EN
            (4, &[0x01, 0x2c]),          // S3 (SLP_TYP 3) with SLP_EN
            (4, &[0x01, 0x20]),          // SLP_TYP 0 with SLP_EN
            (0, &[0x34, 0x34]),          // status register
            (2, &[0x00, 0x34]),          // enable register
            (4, &[]),
        ] {
            assert_eq!(d.write(off, data), None, "{off} {data:?}");
        }
    }

    #[test]
    fn reads() {
        let mut d = AcpiPm::default();
        let mut b = [0u8; 6];
        d.read(0, &mut b);
        // Status 0, enable 0, control SCI_EN.
        assert_eq!(b, [0, 0, 0, 0, 1, 0]);
        d.write(2, &[0x20, 0x01]);
        d.write(4, &[0x01, 0x14]);
        let mut w = [0u8; 2];
        d.read(2, &mut w);
        assert_eq!(w, [0x20, 0x01]);
        d.read(4, &mut w);
        assert_eq!(u16::from_le_bytes(w), 0x1401);
        // Past the block: all ones.
        let mut x = [0u8; 2];
        d.read(5, &mut x);
        assert_eq!(x, [0x14, 0xff]);
    }
}
