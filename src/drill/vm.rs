//! Adapters from the drill framework to the real VMM (src/vmm.rs) and the
//! notifier client (src/notifier_client.rs).

use crate::drill::device::{DeviceError, ExclusiveDevice, Held, NotifierEvent};
use crate::drill::guest::InterpGuest;
use crate::drill::guest::{GuestError, SyncReport};
use crate::drill::session::GuestSpec;
use crate::drill::session::{DrillError, DrillResult, Session};
use crate::guest_memory::GuestRegion;
use crate::guest_memory::Thp;
use crate::notifier_client::{self as nc, Access, AccessOp, Hold, NotifierClient};
use crate::vmm::{GuestEventKind, RunningVm, SerialSink, Vm, VmConfig, VmmError, MIN_PAYLOAD_MEM};
use std::time::Duration;

/// The `interp` payload running on the VMM.
pub struct VmmGuest {
    // Field order: the running VM (vCPU threads) ends before the Vm.
    running: Option<RunningVm>,
    vm: Vm,
    nr_vcpus: usize,
    stopped: Option<String>,
}

/// Starts the `interp` payload on the VMM.
pub fn start_interp(spec: &GuestSpec) -> DrillResult<Box<dyn InterpGuest>> {
    // MMUVISOR_INTERP_ELF: run the drills on another build of the payload.
    let elf = match std::env::var_os("MMUVISOR_INTERP_ELF") {
        Some(p) => std::fs::read(&p).map_err(|e| {
            DrillError::Host(format!(
                "MMUVISOR_INTERP_ELF {}: {e}",
                std::path::Path::new(&p).display()
            ))
        })?,
        None => crate::payloads::builtin("interp")
            .ok_or_else(|| DrillError::Skip("this build has no interp payload".into()))?
            .to_vec(),
    };
    let mut cfg = VmConfig::payload(elf, spec.vcpus);
    cfg.mem_size = spec.mem_bytes.max(MIN_PAYLOAD_MEM);
    cfg.thp = if spec.thp { Thp::On } else { Thp::Off };
    cfg.serial = SerialSink::Events;
    let mut vm = Vm::new(&cfg).map_err(|e| DrillError::Host(format!("VM: {e}")))?;
    let running = vm
        .start()
        .map_err(|e| DrillError::Host(format!("VM start: {e}")))?;
    Ok(Box::new(VmmGuest {
        running: Some(running),
        vm,
        nr_vcpus: spec.vcpus,
        stopped: None,
    }))
}

fn vmm(e: impl std::fmt::Display) -> GuestError {
    GuestError::Vmm(e.to_string())
}

impl InterpGuest for VmmGuest {
    fn nr_vcpus(&self) -> usize {
        self.nr_vcpus
    }
    fn mem_size(&self) -> u64 {
        self.vm.memory().size()
    }
    fn regions(&self) -> Vec<GuestRegion> {
        self.vm.memory().regions().to_vec()
    }
    fn vm_fd(&self) -> Option<&kvm_ioctls::VmFd> {
        Some(self.vm.vm_fd())
    }
    fn reply(&mut self, vcpu: usize, cmd: u64) -> Result<(), GuestError> {
        if let Some(s) = &self.stopped {
            return Err(GuestError::Stopped(s.clone()));
        }
        let running = self
            .running
            .as_ref()
            .ok_or_else(|| GuestError::Stopped("the VM has ended".into()))?;
        running.reply(vcpu, cmd).map_err(vmm)
    }
    fn next_sync(&mut self, timeout_ms: u64) -> Result<SyncReport, GuestError> {
        loop {
            if let Some(s) = &self.stopped {
                return Err(GuestError::Stopped(s.clone()));
            }
            let running = self
                .running
                .as_mut()
                .ok_or_else(|| GuestError::Stopped("the VM has ended".into()))?;
            let ev = match running.next_event(Duration::from_millis(timeout_ms)) {
                Ok(ev) => ev,
                Err(VmmError::Timeout) => return Err(GuestError::Timeout(usize::MAX, timeout_ms)),
                Err(VmmError::Ended) => {
                    self.stopped = Some("the VM has ended".into());
                    continue;
                }
                Err(e) => return Err(vmm(e)),
            };
            match ev.kind {
                GuestEventKind::Sync { stage, v0, .. } => {
                    return Ok(SyncReport {
                        vcpu: ev.vcpu,
                        stage,
                        result: v0,
                        time_ns: ev.time_ns,
                    })
                }
                GuestEventKind::Serial(b) => {
                    log::debug!("guest serial: {}", String::from_utf8_lossy(&b).trim_end())
                }
                GuestEventKind::Done { .. } => {}
                GuestEventKind::Assert { message, line } => {
                    self.stopped =
                        Some(format!("vCPU {} ASSERT at line {line}: {message}", ev.vcpu))
                }
                GuestEventKind::Crash(r) => {
                    self.stopped = Some(format!("vCPU {} crashed: {r}", ev.vcpu))
                }
                GuestEventKind::DebugExit(c) => self.stopped = Some(format!("debug exit {c}")),
                GuestEventKind::Reset => self.stopped = Some("guest reset".into()),
                GuestEventKind::PowerOff => self.stopped = Some("guest powered off".into()),
            }
        }
    }
    fn finish(&mut self) -> Result<(), GuestError> {
        let Some(mut running) = self.running.take() else {
            return Ok(());
        };
        if self.stopped.is_some() {
            running.stop();
        } else {
            for vcpu in 0..self.nr_vcpus {
                // EXIT; a vCPU that is not waiting ignores it (wait() answers later SYNCs with 0 = EXIT).
                let _ = running.reply(vcpu, 0);
            }
        }
        let out = running.wait().map_err(vmm)?;
        log::debug!("drill guest ended: {out}");
        Ok(())
    }
    fn set_dirty_logging(&mut self, on: bool) -> Result<(), GuestError> {
        self.vm.set_dirty_logging(on).map_err(vmm)
    }
    fn dirty_gpas(&mut self) -> Result<Vec<u64>, GuestError> {
        self.vm.dirty_pages().map_err(vmm)
    }
    fn recreate_memslots(&mut self) -> Result<(), GuestError> {
        self.delete_memslots()?;
        self.add_memslots()
    }
    fn add_memslots(&mut self) -> Result<(), GuestError> {
        self.vm.memory().register(self.vm.vm_fd()).map_err(vmm)
    }
    fn delete_memslots(&mut self) -> Result<(), GuestError> {
        for r in self.vm.memory().regions() {
            self.vm.delete_memslot(r.slot).map_err(vmm)?;
        }
        Ok(())
    }
}

impl Drop for VmmGuest {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// A /dev/mmuvisor context attached to the guest's RAM.
pub struct ModuleDevice {
    client: NotifierClient,
}

fn io(e: nc::Error) -> DeviceError {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        DeviceError::Unsupported
    } else if e.errno() == Some(libc::EBUSY) {
        DeviceError::Busy
    } else {
        DeviceError::Io(e.to_string())
    }
}

/// Opens a /dev/mmuvisor context attached to all of the guest's RAM.
pub fn open_device(s: &Session) -> DrillResult<Box<dyn ExclusiveDevice>> {
    // Only a missing device node means "no module here"; any other failure
    // to open it (permissions, ABI mismatch) is an error, never a skip.
    let client = NotifierClient::open().map_err(|e| match &e {
        nc::Error::Open { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            DrillError::Skip(e.to_string())
        }
        _ => DrillError::Host(e.to_string()),
    })?;
    if !client.version().exclusive {
        return Err(DrillError::Skip(
            "the helper module reports no MAKE_EXCLUSIVE (kernel without CONFIG_DEVICE_PRIVATE)"
                .into(),
        ));
    }
    for r in s.guest().regions() {
        client
            .attach(r.hva, r.size)
            .map_err(|e| DrillError::Host(e.to_string()))?;
    }
    Ok(Box::new(ModuleDevice { client }))
}

impl ExclusiveDevice for ModuleDevice {
    fn make_exclusive(&mut self, hva: u64) -> Result<bool, DeviceError> {
        self.client
            .make_exclusive(hva, 1)
            .map(|n| n > 0)
            .map_err(io)
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
            Some(Hold::Held) => Held::Now,
            Some(Hold::Revoked) => Held::Revoked,
            Some(Hold::Released) => Held::Released,
            _ => Held::Never,
        })
    }
    fn release(&mut self, hva: u64) -> Result<(), DeviceError> {
        self.client.release(hva, 1).map(|_| ()).map_err(io)
    }
    fn take_events(&mut self) -> Result<Vec<NotifierEvent>, DeviceError> {
        let events = self.client.read_events().map_err(io)?;
        // A verdict built on an incomplete stream could pass wrongly: lost
        // records end the drill with an error instead.
        if let Some(lost) = events.iter().find(|e| e.is_overflow()) {
            return Err(DeviceError::Io(format!(
                "the module's event ring overflowed: {} notifier records lost",
                lost.count
            )));
        }
        Ok(events)
    }
}

impl Drop for ModuleDevice {
    fn drop(&mut self) {
        let _ = self.client.detach();
    }
}
