//! Adapters from the drill framework to the real VMM (src/vmm.rs) and the
//! notifier client (src/notifier_client.rs).

use crate::drill::device::ExclusiveDevice;
use crate::drill::guest::InterpGuest;
use crate::drill::runner::GuestSpec;
use crate::drill::session::{DrillError, DrillResult, Session};

/// Starts the `interp` payload on the VMM.
pub fn start_interp(_spec: &GuestSpec) -> DrillResult<Box<dyn InterpGuest>> {
    Err(DrillError::Skip(
        "this build has no VMM yet (vmm branch not merged)".into(),
    ))
}

/// Opens a /dev/mmuvisor context attached to the guest's RAM.
pub fn open_device(_s: &Session) -> DrillResult<Box<dyn ExclusiveDevice>> {
    Err(DrillError::Skip(
        "this build has no notifier client yet (kmod branch not merged)".into(),
    ))
}
