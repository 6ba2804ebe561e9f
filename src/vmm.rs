//! VM and vCPU lifecycle: `Vm::new` builds a VM (memory, irqchip, PIT,
//! devices, image, vCPUs); `Vm::start` runs one thread per vCPU and returns a
//! `RunningVm` that yields guest events, replies to SYNC ucalls, and reports
//! the outcome (see docs/design.md, "The VMM API used by drills").

use std::io::Write;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kvm_bindings::{
    kvm_mp_state, kvm_pit_config, KVM_MAX_CPUID_ENTRIES, KVM_MP_STATE_RUNNABLE,
    KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Cap, Kvm, VcpuFd, VmFd};

use crate::arch::x86_64::layout::{ACPI_PM_PORT, DEBUG_EXIT_PORT, PAYLOAD_MAX_VCPUS};
use crate::arch::x86_64::mptable::MAX_MPTABLE_VCPUS;
use crate::arch::x86_64::{cpuid, gdt, interrupts, msrs, paging, regs};
use crate::clock::now_ns;
use crate::devices::acpi_pm::{AcpiPm, ACPI_PM_LEN};
use crate::devices::cmos::{Cmos, CMOS_BASE, CMOS_LEN};
use crate::devices::exit_port::ExitPort;
use crate::devices::i8042::{I8042, I8042_BASE, I8042_LEN};
use crate::devices::serial::{SerialDevice, SerialOut, COM1_BASE, COM1_GSI, COM1_LEN};
use crate::devices::PortBus;
use crate::guest_memory::{GuestMemory, Thp};
use crate::loader::linux::{load_linux, LinuxImage};
use crate::loader::payload;
use crate::vcpu::{register_kick_handler, Vcpu, VcpuMsg, VcpuShared};
pub use crate::vcpu::{GuestEvent, GuestEventKind, GuestMode};

mod running;
use running::{spawn_stdin, stdin_is_input};
pub use running::{Outcome, OutcomeReason, RunningVm};

/// KVM's TSS and identity-map pages, just below the BIOS area at the top of 4 GiB.
pub const KVM_TSS_ADDRESS: usize = 0xfffb_d000;
pub const KVM_IDENTITY_MAP_ADDRESS: u64 = 0xfffb_c000;
/// Smallest RAM sizes accepted.
pub const MIN_PAYLOAD_MEM: u64 = 16 << 20;
pub use crate::loader::linux::MIN_LINUX_MEM;
/// Largest RAM size accepted.
pub const MAX_MEM: u64 = 1 << 40;
/// Default Linux command line (the user's is appended). ACPI is on (a
/// FADT with only the PM1a blocks, for power-off); reboot stays on the
/// i8042. `pci=off`: this VMM has no PCI bus, and without it Linux's early
/// AGP aperture search reads the config space of all 256 buses through
/// port exits, twice (~1.2 s each in a nested lab boot).
pub const DEFAULT_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off";

/// Errors of the VMM. Each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum VmmError {
    #[error("cannot open /dev/kvm: {0}")]
    Kvm(kvm_ioctls::Error),
    #[error("--vcpus must be at least 1")]
    NoVcpus,
    #[error("--vcpus {0} is above the limit of {1} ({2})")]
    TooManyVcpus(usize, usize, &'static str),
    #[error("--mem {got} bytes is below the minimum of {min} MiB for this guest")]
    MemTooSmall { got: u64, min: u64 },
    #[error("--mem {0} bytes is above the maximum of 1 TiB")]
    MemTooBig(u64),
    #[error("KVM setup failed: {0}: {1}")]
    Setup(&'static str, kvm_ioctls::Error),
    #[error("{0}")]
    Memory(#[from] crate::guest_memory::GuestMemoryError),
    #[error("{0}")]
    Payload(#[from] payload::PayloadError),
    #[error("{0}")]
    Linux(#[from] crate::loader::linux::LinuxLoaderError),
    #[error("{0}")]
    Gdt(#[from] gdt::GdtError),
    #[error("{0}")]
    Paging(#[from] paging::PagingError),
    #[error("vCPU {0}: {1}")]
    Regs(usize, regs::RegsError),
    #[error("vCPU {0}: {1}")]
    Msrs(usize, msrs::MsrError),
    #[error("vCPU {0}: {1}")]
    Lapic(usize, interrupts::InterruptError),
    #[error("device setup failed: {0}")]
    Device(String),
    #[error("cannot install the vCPU kick signal handler: {0}")]
    Signal(std::io::Error),
    #[error("cannot start vCPU thread: {0}")]
    Thread(std::io::Error),
    #[error("the VM was already started")]
    AlreadyStarted,
    #[error("no guest event within the timeout")]
    Timeout,
    #[error("the VM has ended: no more events")]
    Ended,
    #[error("vCPU {0} is not waiting for a reply")]
    NoSuchVcpu(usize),
    #[error("vCPU {vcpus:?} did not leave KVM_RUN within {secs} s of the stop (the host kernel did not deliver the kick)")]
    Stuck { vcpus: Vec<usize>, secs: u64 },
}

type Result<T> = std::result::Result<T, VmmError>;

/// What to boot.
#[derive(Debug, Clone)]
pub enum GuestImage {
    /// A bare payload ELF (bytes) and up to four arguments.
    Payload { elf: Vec<u8>, args: [u64; 4] },
    /// A Linux kernel (the default command line is prepended by `Vm::new`).
    Linux(LinuxImage),
}

/// Where guest serial output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SerialSink {
    /// Host stdout.
    #[default]
    Stdout,
    /// `GuestEventKind::Serial` events (line-buffered).
    Events,
    /// Nowhere.
    Discard,
}

/// Everything `Vm::new` needs.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub mem_size: u64,
    pub vcpus: usize,
    pub thp: Thp,
    pub image: GuestImage,
    pub serial: SerialSink,
    /// Feed host stdin to COM1 (only when stdin is a terminal).
    pub stdin: bool,
}

impl VmConfig {
    /// A payload VM with 64 MiB, serial output as events, no stdin.
    pub fn payload(elf: Vec<u8>, vcpus: usize) -> Self {
        VmConfig {
            mem_size: 64 << 20,
            vcpus,
            thp: Thp::Default,
            image: GuestImage::Payload { elf, args: [0; 4] },
            serial: SerialSink::Events,
            stdin: false,
        }
    }
}

/// Sends serial output as events, a line (or 256 bytes) at a time.
struct EventWriter {
    tx: Sender<VcpuMsg>,
    buf: Vec<u8>,
}

impl EventWriter {
    fn send(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let ev = GuestEvent {
            vcpu: crate::vcpu::current_vcpu(),
            time_ns: now_ns(),
            kind: GuestEventKind::Serial(std::mem::take(&mut self.buf)),
        };
        let _ = self.tx.send(VcpuMsg::Event(ev));
    }
}

impl Write for EventWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= 256 || b.contains(&b'\n') {
            self.send();
        }
        Ok(b.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        // The 16550 flushes after every byte; only end-of-line and size send.
        Ok(())
    }
}

impl Drop for EventWriter {
    fn drop(&mut self) {
        self.send();
    }
}

/// A built VM, not yet running.
pub struct Vm {
    _kvm: Kvm,
    vm_fd: VmFd,
    memory: Arc<GuestMemory>,
    vcpu_fds: Vec<VcpuFd>,
    nr_vcpus: usize,
    mode: GuestMode,
    bus: Arc<PortBus>,
    serial: Arc<Mutex<SerialDevice>>,
    /// COM1's interrupt: registered with KVM_IRQFD for the VM's lifetime,
    /// closed with the VM.
    _com1_irq: vmm_sys_util::eventfd::EventFd,
    tx: Sender<VcpuMsg>,
    rx: Option<Receiver<VcpuMsg>>,
    stdin: bool,
    setup_times: Vec<(&'static str, Duration)>,
}

impl std::fmt::Debug for Vm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vm")
            .field("vcpus", &self.vcpu_fds.len())
            .field("mode", &self.mode)
            .field("memory", &self.memory.regions())
            .finish()
    }
}

/// The largest vCPU count KVM allows.
fn kvm_max_vcpus(kvm: &Kvm) -> usize {
    let n = kvm.check_extension_int(Cap::MaxVcpus);
    if n > 0 {
        n as usize
    } else {
        kvm.get_max_vcpus()
    }
}

/// Checks the configuration before touching KVM (beyond asking its limits).
pub fn validate(config: &VmConfig, kvm_max: usize) -> Result<()> {
    if config.vcpus == 0 {
        return Err(VmmError::NoVcpus);
    }
    if config.vcpus > kvm_max {
        return Err(VmmError::TooManyVcpus(
            config.vcpus,
            kvm_max,
            "KVM_CAP_MAX_VCPUS",
        ));
    }
    let min = match config.image {
        GuestImage::Payload { .. } => {
            if config.vcpus as u64 > PAYLOAD_MAX_VCPUS {
                return Err(VmmError::TooManyVcpus(
                    config.vcpus,
                    PAYLOAD_MAX_VCPUS as usize,
                    "payload stacks",
                ));
            }
            MIN_PAYLOAD_MEM
        }
        GuestImage::Linux(_) => {
            if config.vcpus > MAX_MPTABLE_VCPUS {
                return Err(VmmError::TooManyVcpus(
                    config.vcpus,
                    MAX_MPTABLE_VCPUS,
                    "MP table",
                ));
            }
            MIN_LINUX_MEM
        }
    };
    if config.mem_size < min {
        return Err(VmmError::MemTooSmall {
            got: config.mem_size,
            min: min >> 20,
        });
    }
    if config.mem_size > MAX_MEM {
        return Err(VmmError::MemTooBig(config.mem_size));
    }
    Ok(())
}

impl Vm {
    /// Builds the VM: memory, irqchip, PIT, devices, image, vCPUs.
    pub fn new(config: &VmConfig) -> Result<Vm> {
        let mut times = Vec::new();
        let mut t = Instant::now();
        let mut phase = |name: &'static str, times: &mut Vec<(&'static str, Duration)>| {
            times.push((name, t.elapsed()));
            t = Instant::now();
        };
        let kvm = Kvm::new().map_err(VmmError::Kvm)?;
        validate(config, kvm_max_vcpus(&kvm))?;
        register_kick_handler().map_err(VmmError::Signal)?;
        let vm_fd = kvm
            .create_vm()
            .map_err(|e| VmmError::Setup("KVM_CREATE_VM", e))?;
        vm_fd
            .set_tss_address(KVM_TSS_ADDRESS)
            .map_err(|e| VmmError::Setup("KVM_SET_TSS_ADDR", e))?;
        vm_fd
            .set_identity_map_address(KVM_IDENTITY_MAP_ADDRESS)
            .map_err(|e| VmmError::Setup("KVM_SET_IDENTITY_MAP_ADDR", e))?;
        vm_fd
            .create_irq_chip()
            .map_err(|e| VmmError::Setup("KVM_CREATE_IRQCHIP", e))?;
        vm_fd
            .create_pit2(kvm_pit_config {
                flags: KVM_PIT_SPEAKER_DUMMY,
                ..Default::default()
            })
            .map_err(|e| VmmError::Setup("KVM_CREATE_PIT2", e))?;
        phase("kvm", &mut times);

        let memory = Arc::new(GuestMemory::new(config.mem_size, config.thp)?);
        memory.register(&vm_fd)?;
        phase("memory", &mut times);

        let mode = match config.image {
            GuestImage::Payload { .. } => GuestMode::Payload,
            GuestImage::Linux(_) => GuestMode::Linux,
        };
        let nr = config.vcpus;
        let mut entry_regs: Vec<Option<kvm_bindings::kvm_regs>> = vec![None; nr];
        match &config.image {
            GuestImage::Payload { elf, args } => {
                let entry = payload::load(memory.mmap(), elf)?;
                for (i, r) in entry_regs.iter_mut().enumerate() {
                    *r = Some(regs::payload_regs(entry, i as u64, nr as u64, *args));
                }
            }
            GuestImage::Linux(image) => {
                let mut image = image.clone();
                image.cmdline = if image.cmdline.is_empty() {
                    DEFAULT_CMDLINE.to_string()
                } else {
                    format!("{DEFAULT_CMDLINE} {}", image.cmdline)
                };
                let entry = load_linux(memory.mmap(), &image, nr as u8)?;
                entry_regs[0] = Some(regs::linux_regs(entry.entry.0, entry.boot_params.0));
            }
        }
        gdt::write_tables(memory.mmap())?;
        paging::write_identity_map(memory.mmap())?;
        phase("image", &mut times);

        let (tx, rx) = channel();
        let out: SerialOut = match config.serial {
            SerialSink::Stdout => Box::new(std::io::stdout()),
            SerialSink::Events => Box::new(EventWriter {
                tx: tx.clone(),
                buf: Vec::new(),
            }),
            SerialSink::Discard => Box::new(std::io::sink()),
        };
        let (serial, irq) = SerialDevice::new(out).map_err(|e| VmmError::Device(e.to_string()))?;
        vm_fd
            .register_irqfd(&irq, COM1_GSI)
            .map_err(|e| VmmError::Setup("KVM_IRQFD (COM1)", e))?;
        let serial = Arc::new(Mutex::new(serial));
        let mut bus = PortBus::new();
        let dev_err = |e: crate::devices::bus::BusError| VmmError::Device(e.to_string());
        bus.insert(COM1_BASE, COM1_LEN, serial.clone())
            .map_err(dev_err)?;
        bus.insert(
            I8042_BASE,
            I8042_LEN,
            Arc::new(Mutex::new(I8042::default())),
        )
        .map_err(dev_err)?;
        bus.insert(CMOS_BASE, CMOS_LEN, Arc::new(Mutex::new(Cmos::default())))
            .map_err(dev_err)?;
        bus.insert(DEBUG_EXIT_PORT, 1, Arc::new(Mutex::new(ExitPort)))
            .map_err(dev_err)?;
        if mode == GuestMode::Linux {
            bus.insert(
                ACPI_PM_PORT,
                ACPI_PM_LEN,
                Arc::new(Mutex::new(AcpiPm::default())),
            )
            .map_err(dev_err)?;
        }
        phase("devices", &mut times);

        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| VmmError::Setup("KVM_GET_SUPPORTED_CPUID", e))?;
        let mut vcpu_fds = Vec::with_capacity(nr);
        for (i, entry) in entry_regs.iter().enumerate() {
            let fd = vm_fd
                .create_vcpu(i as u64)
                .map_err(|e| VmmError::Setup("KVM_CREATE_VCPU", e))?;
            cpuid::fixup(&mut cpuid, i as u32, nr as u32);
            fd.set_cpuid2(&cpuid)
                .map_err(|e| VmmError::Setup("KVM_SET_CPUID2", e))?;
            msrs::setup_msrs(&fd).map_err(|e| VmmError::Msrs(i, e))?;
            interrupts::setup_lint(&fd).map_err(|e| VmmError::Lapic(i, e))?;
            if let Some(r) = entry {
                regs::setup_long_mode(&fd, r).map_err(|e| VmmError::Regs(i, e))?;
                if i > 0 {
                    fd.set_mp_state(kvm_mp_state {
                        mp_state: KVM_MP_STATE_RUNNABLE,
                    })
                    .map_err(|e| VmmError::Setup("KVM_SET_MP_STATE", e))?;
                }
            }
            vcpu_fds.push(fd);
        }
        phase("vcpus", &mut times);

        Ok(Vm {
            _kvm: kvm,
            vm_fd,
            memory,
            vcpu_fds,
            nr_vcpus: nr,
            mode,
            bus: Arc::new(bus),
            serial,
            _com1_irq: irq,
            tx,
            rx: Some(rx),
            stdin: config.stdin,
            setup_times: times,
        })
    }

    /// Guest RAM.
    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    /// Guest RAM, shared.
    pub fn memory_arc(&self) -> Arc<GuestMemory> {
        self.memory.clone()
    }

    /// The KVM VM fd (stats, dirty log, memslots).
    pub fn vm_fd(&self) -> &VmFd {
        &self.vm_fd
    }

    /// Number of vCPUs.
    pub fn nr_vcpus(&self) -> usize {
        self.nr_vcpus
    }

    /// Payload or Linux.
    pub fn mode(&self) -> GuestMode {
        self.mode
    }

    /// How long each phase of `Vm::new` took.
    pub fn setup_times(&self) -> &[(&'static str, Duration)] {
        &self.setup_times
    }

    /// Turns KVM dirty page logging on or off for all memslots.
    pub fn set_dirty_logging(&self, on: bool) -> Result<()> {
        Ok(self.memory.set_dirty_logging(&self.vm_fd, on)?)
    }

    /// GPAs logged dirty since the last call (clears the log).
    pub fn dirty_pages(&self) -> Result<Vec<u64>> {
        Ok(self.memory.dirty_pages(&self.vm_fd)?)
    }

    /// Deletes a memslot.
    pub fn delete_memslot(&self, slot: u32) -> Result<()> {
        Ok(self.memory.delete_memslot(&self.vm_fd, slot)?)
    }

    /// Starts one thread per vCPU. The Vm stays usable (memory, vm_fd) while it runs.
    pub fn start(&mut self) -> Result<RunningVm> {
        let rx = self.rx.take().ok_or(VmmError::AlreadyStarted)?;
        let shared = Arc::new(VcpuShared::default());
        let mut handles = Vec::new();
        let mut replies = Vec::new();
        let mut exits = Vec::new();
        let fds: Vec<VcpuFd> = self.vcpu_fds.drain(..).collect();
        let nr = fds.len();
        for (index, fd) in fds.into_iter().enumerate() {
            let (reply_tx, reply_rx) = channel();
            let counter = Arc::new(AtomicU64::new(0));
            let vcpu = Vcpu {
                index,
                fd,
                mode: self.mode,
                bus: self.bus.clone(),
                mem: self.memory.clone(),
                shared: shared.clone(),
                tx: self.tx.clone(),
                replies: reply_rx,
                exits: counter.clone(),
            };
            let h = std::thread::Builder::new()
                .name(format!("vcpu{index}"))
                .spawn(move || vcpu.run());
            match h {
                Ok(h) => handles.push(h),
                Err(e) => {
                    shared.request_stop();
                    for h in handles {
                        let _ = h.join();
                    }
                    return Err(VmmError::Thread(e));
                }
            }
            replies.push(reply_tx);
            exits.push(counter);
        }
        let stdin_thread = if self.stdin && stdin_is_input() {
            spawn_stdin(self.serial.clone(), shared.clone())
        } else {
            None
        };
        Ok(RunningVm {
            rx,
            replies,
            handles,
            shared,
            exited: vec![false; nr],
            done: vec![false; nr],
            outcome: None,
            exits,
            serial: self.serial.clone(),
            stdin_thread,
        })
    }
}
