//! Port I/O dispatch: a sorted list of port ranges, each owned by a device.

use std::sync::{Arc, Mutex};

/// What a device asks the VMM to do after an access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IoAction {
    /// End the VM with this exit code (debug-exit port).
    DebugExit(u8),
    /// The guest asked for a CPU reset.
    Reset,
    /// The guest powered off (ACPI S5).
    PowerOff,
}

/// A device on the port I/O bus.
pub trait PortDevice: Send {
    /// Fills `data` for a read at `offset` from the device's base port.
    fn read(&mut self, offset: u16, data: &mut [u8]);
    /// Handles a write at `offset` from the device's base port.
    fn write(&mut self, offset: u16, data: &[u8]) -> Option<IoAction>;
}

/// Errors building the bus.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("port range {base:#x}+{len} overlaps another device")]
    Overlap { base: u16, len: u16 },
    #[error("empty port range at {0:#x}")]
    Empty(u16),
}

struct Entry {
    base: u16,
    len: u16,
    dev: Arc<Mutex<dyn PortDevice>>,
}

/// The port I/O bus.
#[derive(Default)]
pub struct PortBus {
    entries: Vec<Entry>,
}

impl std::fmt::Debug for PortBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges: Vec<_> = self.entries.iter().map(|e| (e.base, e.len)).collect();
        f.debug_struct("PortBus").field("ranges", &ranges).finish()
    }
}

impl PortBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a device at [base, base+len).
    pub fn insert(
        &mut self,
        base: u16,
        len: u16,
        dev: Arc<Mutex<dyn PortDevice>>,
    ) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::Empty(base));
        }
        let end = u32::from(base) + u32::from(len);
        if self.entries.iter().any(|e| {
            u32::from(base) < u32::from(e.base) + u32::from(e.len) && u32::from(e.base) < end
        }) {
            return Err(BusError::Overlap { base, len });
        }
        self.entries.push(Entry { base, len, dev });
        self.entries.sort_by_key(|e| e.base);
        Ok(())
    }

    fn find(&self, port: u16) -> Option<&Entry> {
        self.entries
            .iter()
            .find(|e| port >= e.base && u32::from(port) < u32::from(e.base) + u32::from(e.len))
    }

    /// Dispatches a read; false when no device owns the port.
    pub fn read(&self, port: u16, data: &mut [u8]) -> bool {
        match self.find(port) {
            Some(e) => {
                // A poisoned lock only means another vCPU thread panicked;
                // the device state is still usable.
                let mut d = e.dev.lock().unwrap_or_else(|p| p.into_inner());
                d.read(port - e.base, data);
                true
            }
            None => false,
        }
    }

    /// Dispatches a write; None when no device owns the port.
    pub fn write(&self, port: u16, data: &[u8]) -> Option<Option<IoAction>> {
        self.find(port).map(|e| {
            let mut d = e.dev.lock().unwrap_or_else(|p| p.into_inner());
            d.write(port - e.base, data)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder {
        last: Option<(u16, Vec<u8>)>,
    }

    impl PortDevice for Recorder {
        fn read(&mut self, offset: u16, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u16, data: &[u8]) -> Option<IoAction> {
            self.last = Some((offset, data.to_vec()));
            (offset == 7).then_some(IoAction::Reset)
        }
    }

    #[test]
    fn dispatches_by_range() {
        let mut bus = PortBus::new();
        let rec = Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x3f8, 8, rec.clone()).unwrap();
        let mut b = [0u8; 1];
        assert!(bus.read(0x3fa, &mut b));
        assert_eq!(b[0], 2);
        assert!(!bus.read(0x3f7, &mut b));
        assert!(!bus.read(0x400, &mut b));
        assert_eq!(bus.write(0x3f9, &[5]), Some(None));
        assert_eq!(rec.lock().unwrap().last, Some((1, vec![5])));
        assert_eq!(bus.write(0x3ff, &[0]), Some(Some(IoAction::Reset)));
        assert_eq!(bus.write(0x2f8, &[0]), None);
    }

    #[test]
    fn rejects_overlap() {
        let mut bus = PortBus::new();
        bus.insert(0x60, 1, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        assert!(bus
            .insert(0x5f, 2, Arc::new(Mutex::new(Recorder::default())))
            .is_err());
        assert!(bus
            .insert(0x61, 0, Arc::new(Mutex::new(Recorder::default())))
            .is_err());
        assert!(bus
            .insert(0xffff, 1, Arc::new(Mutex::new(Recorder::default())))
            .is_ok());
    }
}
