//! Adapters from the drill framework to the real VMM (src/vmm.rs) and the
//! notifier client (src/notifier_client.rs).

use crate::drill::device::{DeviceError, ExclusiveDevice, Held, NotifierEvent};
use crate::drill::guest::InterpGuest;
use crate::drill::runner::GuestSpec;
use crate::drill::session::{DrillError, DrillResult, Session};
use crate::notifier_client::{self as nc, Access, AccessOp, Hold, NotifierClient};

/// Starts the `interp` payload on the VMM.
pub fn start_interp(_spec: &GuestSpec) -> DrillResult<Box<dyn InterpGuest>> {
    Err(DrillError::Skip(
        "this build has no VMM yet (vmm branch not merged)".into(),
    ))
}

/// A /dev/mmuvisor context attached to the guest's RAM.
pub struct ModuleDevice {
    client: NotifierClient,
}

fn io(e: nc::Error) -> DeviceError {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        DeviceError::Unsupported
    } else {
        DeviceError::Io(e.to_string())
    }
}

/// Opens a /dev/mmuvisor context attached to all of the guest's RAM.
pub fn open_device(s: &Session) -> DrillResult<Box<dyn ExclusiveDevice>> {
    let client = NotifierClient::open().map_err(|e| DrillError::Skip(e.to_string()))?;
    if !client.version().exclusive {
        return Err(DrillError::Skip(
            "the helper module reports no MAKE_EXCLUSIVE (kernel without CONFIG_DEVICE_PRIVATE)"
                .into(),
        ));
    }
    for r in s.guest().regions() {
        client
            .attach(r.hva, r.len)
            .map_err(|e| DrillError::Host(e.to_string()))?;
    }
    Ok(Box::new(ModuleDevice { client }))
}

impl ExclusiveDevice for ModuleDevice {
    fn make_exclusive(&mut self, hva: u64) -> Result<(), DeviceError> {
        self.client.make_exclusive(hva, 1).map(|_| ()).map_err(io)
    }
    fn read(&mut self, hva: u64) -> Result<u64, DeviceError> {
        match self.client.device_access(hva, AccessOp::Read).map_err(io)? {
            Access::Done(v) => Ok(v),
            Access::Revoked => Err(DeviceError::Revoked),
            Access::NotHeld => Err(DeviceError::Io(
                "the device does not hold the page (ENOENT)".into(),
            )),
        }
    }
    fn add(&mut self, hva: u64, delta: u64) -> Result<u64, DeviceError> {
        match self
            .client
            .device_access(hva, AccessOp::Add(delta))
            .map_err(io)?
        {
            Access::Done(v) => Ok(v),
            Access::Revoked => Err(DeviceError::Revoked),
            Access::NotHeld => Err(DeviceError::Io(
                "the device does not hold the page (ENOENT)".into(),
            )),
        }
    }
    fn query(&mut self, hva: u64) -> Result<Held, DeviceError> {
        let st = self.client.query(hva, 1).map_err(io)?;
        Ok(match st.first().map(|p| p.hold) {
            Some(Hold::Held) => Held::Held,
            Some(Hold::Revoked) => Held::Revoked,
            Some(Hold::Released) => Held::Released,
            _ => Held::Never,
        })
    }
    fn release(&mut self, hva: u64) -> Result<(), DeviceError> {
        self.client.release(hva, 1).map(|_| ()).map_err(io)
    }
    fn take_events(&mut self) -> Result<Vec<NotifierEvent>, DeviceError> {
        Ok(self
            .client
            .read_events()
            .map_err(io)?
            .into_iter()
            .map(|e| NotifierEvent {
                time_ns: e.time_ns,
                start: e.start,
                end: e.end,
                event: match e.kind {
                    nc::NotifierEventKind::Unmap => 0,
                    nc::NotifierEventKind::Clear => 1,
                    nc::NotifierEventKind::ProtectionVma => 2,
                    nc::NotifierEventKind::ProtectionPage => 3,
                    nc::NotifierEventKind::SoftDirty => 4,
                    nc::NotifierEventKind::Release => 5,
                    nc::NotifierEventKind::Migrate => 6,
                    nc::NotifierEventKind::Exclusive => 7,
                    nc::NotifierEventKind::Other(v) => v,
                },
                owner_is_self: e.owner_is_self,
                revoked: e.revoked,
            })
            .collect())
    }
}

impl Drop for ModuleDevice {
    fn drop(&mut self) {
        let _ = self.client.detach();
    }
}
