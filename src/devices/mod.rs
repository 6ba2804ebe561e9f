//! Port I/O devices: COM1 16550, i8042, CMOS RTC, debug-exit port, ACPI
//! PM1 registers (power-off), and ucall decoding.

pub mod acpi_pm;
pub mod bus;
pub mod cmos;
pub mod exit_port;
pub mod i8042;
pub mod serial;
pub mod ucall;

pub use bus::PortBus;
