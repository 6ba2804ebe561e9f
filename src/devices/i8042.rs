//! i8042 controller (vm-superio): command 0xfe on port 0x64 resets the CPU,
//! which ends the VM. There is no keyboard behind it: the status register
//! always shows a full output buffer (and an empty input buffer), so Linux's
//! i8042 driver flushes 16 bytes and reports "No controller found" at once
//! instead of timing out for seconds on commands that vm-superio does not
//! answer, while its reboot path (which waits for the input buffer) still
//! reaches the reset command.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use vm_superio::{I8042Device, Trigger};

use super::bus::{IoAction, PortDevice};

/// Status register bit: output buffer full.
const STATUS_OBF: u8 = 0x01;
/// Status register bit: input buffer full.
const STATUS_IBF: u8 = 0x02;

/// Base port; the device spans 0x60..=0x64 (data at 0, command/status at 4).
pub const I8042_BASE: u16 = 0x60;
pub const I8042_LEN: u16 = 5;

/// Records that the guest asked for a reset.
#[derive(Debug, Clone, Default)]
pub struct ResetFlag(Arc<AtomicBool>);

impl Trigger for ResetFlag {
    type E = std::convert::Infallible;

    fn trigger(&self) -> Result<(), Self::E> {
        self.0.store(true, Ordering::SeqCst);
        Ok(())
    }
}

/// The i8042 on the port bus.
pub struct I8042 {
    dev: I8042Device<ResetFlag>,
    reset: ResetFlag,
}

impl Default for I8042 {
    fn default() -> Self {
        let reset = ResetFlag::default();
        I8042 {
            dev: I8042Device::new(reset.clone()),
            reset,
        }
    }
}

impl PortDevice for I8042 {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        match (offset, data.first_mut()) {
            (4, Some(b)) => *b = (self.dev.read(4) | STATUS_OBF) & !STATUS_IBF,
            (0, Some(b)) => *b = self.dev.read(0),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Option<IoAction> {
        if let (0 | 4, Some(&b)) = (offset, data.first()) {
            // Infallible trigger: the result carries no error.
            let _ = self.dev.write(offset as u8, b);
        }
        self.reset
            .0
            .swap(false, Ordering::SeqCst)
            .then_some(IoAction::Reset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_command_ends_vm() {
        let mut d = I8042::default();
        assert_eq!(d.write(4, &[0x20]), None);
        assert_eq!(d.write(4, &[0xfe]), Some(IoAction::Reset));
        let mut b = [0u8];
        d.read(4, &mut b);
        assert_eq!(b[0] & (STATUS_OBF | STATUS_IBF), STATUS_OBF);
    }
}
