//! Debug-exit port: `out 0xf4, al` ends the VM with exit code AL.

use super::bus::{IoAction, PortDevice};

/// The debug-exit device.
#[derive(Debug, Default)]
pub struct ExitPort;

impl PortDevice for ExitPort {
    fn read(&mut self, _offset: u16, data: &mut [u8]) {
        data.fill(0xff);
    }

    fn write(&mut self, _offset: u16, data: &[u8]) -> Option<IoAction> {
        data.first().map(|&code| IoAction::DebugExit(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_code_is_low_byte() {
        let mut p = ExitPort;
        assert_eq!(p.write(0, &[42]), Some(IoAction::DebugExit(42)));
        assert_eq!(p.write(0, &[7, 1, 0, 0]), Some(IoAction::DebugExit(7)));
        assert_eq!(p.write(0, &[]), None);
    }
}
