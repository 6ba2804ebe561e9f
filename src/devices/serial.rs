//! COM1: a vm-superio 16550 whose interrupt is an irqfd on GSI 4, and a
//! stdin subscriber for event-manager that feeds host input to the guest.

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, EventSet, Events, MutEventSubscriber};
use vm_superio::serial::NoEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use super::bus::{IoAction, PortDevice};

/// COM1 ports and interrupt line.
pub const COM1_BASE: u16 = 0x3f8;
pub const COM1_LEN: u16 = 8;
pub const COM1_GSI: u32 = 4;

/// Errors creating the serial port.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("cannot create the serial interrupt eventfd: {0}")]
    EventFd(std::io::Error),
}

/// The serial interrupt: an eventfd registered as an irqfd.
#[derive(Debug)]
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;

    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// Where guest serial output goes.
pub type SerialOut = Box<dyn Write + Send>;

/// COM1.
pub struct SerialDevice {
    serial: Serial<IrqTrigger, NoEvents, SerialOut>,
}

impl SerialDevice {
    /// A 16550 writing to `out`; returns the device and a clone of its
    /// interrupt eventfd (to register with `register_irqfd`).
    pub fn new(out: SerialOut) -> Result<(Self, EventFd), SerialError> {
        let evt = EventFd::new(libc::EFD_NONBLOCK).map_err(SerialError::EventFd)?;
        let irq = evt.try_clone().map_err(SerialError::EventFd)?;
        Ok((
            SerialDevice {
                serial: Serial::new(IrqTrigger(evt), out),
            },
            irq,
        ))
    }

    /// Queues host input for the guest; returns how many bytes fit.
    pub fn enqueue(&mut self, input: &[u8]) -> usize {
        let room = self.serial.fifo_capacity().min(input.len());
        if room == 0 {
            return 0;
        }
        self.serial.enqueue_raw_bytes(&input[..room]).unwrap_or(0)
    }

    /// Room left in the receive FIFO.
    pub fn fifo_capacity(&self) -> usize {
        self.serial.fifo_capacity()
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) {
        let _ = self.serial.writer_mut().flush();
    }
}

impl PortDevice for SerialDevice {
    fn read(&mut self, offset: u16, data: &mut [u8]) {
        match (u8::try_from(offset), data.first_mut()) {
            (Ok(off), Some(b)) if off < COM1_LEN as u8 => *b = self.serial.read(off),
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, offset: u16, data: &[u8]) -> Option<IoAction> {
        if let (Ok(off), Some(&b)) = (u8::try_from(offset), data.first()) {
            if let Err(e) = self.serial.write(off, b) {
                log::debug!("serial write: {e}");
            }
        }
        None
    }
}

/// Feeds host stdin (or any readable fd) to the serial port.
pub struct SerialInput<F: AsRawFd + std::io::Read + Send> {
    serial: Arc<Mutex<SerialDevice>>,
    input: F,
}

impl<F: AsRawFd + std::io::Read + Send> SerialInput<F> {
    /// A subscriber reading `input` into `serial`.
    pub fn new(serial: Arc<Mutex<SerialDevice>>, input: F) -> Self {
        SerialInput { serial, input }
    }
}

impl<F: AsRawFd + std::io::Read + Send> MutEventSubscriber for SerialInput<F> {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let mut buf = [0u8; 64];
        let mut done = events
            .event_set()
            .intersects(EventSet::HANG_UP | EventSet::ERROR)
            && !events.event_set().contains(EventSet::IN);
        if events.event_set().contains(EventSet::IN) {
            let room = {
                let s = self.serial.lock().unwrap_or_else(|p| p.into_inner());
                s.fifo_capacity().min(buf.len())
            };
            if room > 0 {
                match self.input.read(&mut buf[..room]) {
                    Ok(0) => done = true,
                    Ok(n) => {
                        let mut s = self.serial.lock().unwrap_or_else(|p| p.into_inner());
                        s.enqueue(&buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => done = true,
                }
            }
        }
        if done {
            let _ = ops.remove(Events::empty(&self.input));
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.input, EventSet::IN)) {
            log::debug!("serial input not attached: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmits_and_receives() {
        let out = Shared::default();
        let (mut dev, irq) = SerialDevice::new(Box::new(out.clone())).unwrap();
        dev.write(0, b"h");
        dev.write(0, b"i");
        assert_eq!(&*out.0.lock().unwrap(), b"hi");
        let mut lsr = [0u8];
        dev.read(5, &mut lsr);
        assert_ne!(lsr[0] & 0x20, 0, "THR empty");
        // Enable the received-data interrupt, then queue input.
        dev.write(1, &[1]);
        assert_eq!(dev.enqueue(b"xy"), 2);
        assert_eq!(irq.read().unwrap(), 1);
        let mut b = [0u8];
        dev.read(0, &mut b);
        assert_eq!(b[0], b'x');
    }
}
