//! The simulated device (a `/dev/mmuvisor` context) as exclusive drills use
//! it. The notifier client implements [`ExclusiveDevice`]; drills never read
//! an exclusive page through the host mapping, only through the device.

/// What QUERY says about one page for this context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The device never held it.
    Never,
    /// The device holds it now.
    Now,
    /// An invalidation took it away.
    Revoked,
    /// The device let it go (RELEASE).
    Released,
}

pub use crate::notifier_client::NotifierEvent;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// EOPNOTSUPP: no DEVICE_PRIVATE, or memory that cannot be exclusive.
    #[error(
        "make-exclusive is not supported here (EOPNOTSUPP): kernel without CONFIG_DEVICE_PRIVATE?"
    )]
    Unsupported,
    /// EBUSY: the page was busy (e.g. a CPU fault held its folio lock);
    /// the device may try again.
    #[error("the page was busy (EBUSY)")]
    Busy,
    /// ENOLINK: the device held the page and lost it to an invalidation.
    #[error("the device's access was revoked (ENOLINK)")]
    Revoked,
    #[error("{0}")]
    Io(String),
}

/// One device context attached to the VMM's guest RAM.
pub trait ExclusiveDevice {
    /// make_device_exclusive() on the page at `hva`. Ok(false): the device
    /// already held the page (nothing was converted).
    fn make_exclusive(&mut self, hva: u64) -> Result<bool, DeviceError>;
    /// Reads the u64 at `hva` through the device's own mapping.
    fn read(&mut self, hva: u64) -> Result<u64, DeviceError>;
    /// Adds `delta` to the u64 at `hva` through the device's mapping; returns the old value.
    fn add(&mut self, hva: u64, delta: u64) -> Result<u64, DeviceError>;
    /// QUERY for the page at `hva`.
    fn query(&mut self, hva: u64) -> Result<Held, DeviceError>;
    /// RELEASE the page at `hva` (no-op if not held).
    fn release(&mut self, hva: u64) -> Result<(), DeviceError>;
    /// Invalidations received since the last call.
    fn take_events(&mut self) -> Result<Vec<NotifierEvent>, DeviceError>;
}

use crate::notifier_client::DEVICE_PATH as DEVICE_NODE;

/// Why exclusive drills cannot run here, if they cannot.
pub fn unavailable() -> Option<String> {
    if !std::path::Path::new(DEVICE_NODE).exists() {
        return Some(format!(
            "no {DEVICE_NODE}: the mmuvisor helper module is not loaded"
        ));
    }
    None
}
