//! KVM's binary statistics of one VM (`KVM_GET_STATS_FD`): `pages_4k`,
//! `pages_2m`, `remote_tlb_flush`, ...

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::FileExt;

use kvm_bindings::{kvm_stats_desc, kvm_stats_header};
use vmm_sys_util::ioctl::ioctl;
use vmm_sys_util::ioctl_io_nr;

use super::{Error, Result};

ioctl_io_nr!(KVM_GET_STATS_FD, kvm_bindings::KVMIO, 0xce);

/// One statistic's descriptor.
#[derive(Debug, Clone)]
pub struct StatDesc {
    pub name: String,
    pub flags: u32,
    pub exponent: i16,
    pub size: u16,
    pub offset: u32,
}

/// KVM's binary statistics of one VM (`KVM_GET_STATS_FD`).
pub struct KvmStats {
    file: File,
    descs: Vec<StatDesc>,
    data_offset: u64,
}

/// Values read at one moment: name → data items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub values: BTreeMap<String, Vec<u64>>,
}

impl StatsSnapshot {
    /// First data item of `name`.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.values.get(name).and_then(|v| v.first().copied())
    }
}

fn read_exact_at(f: &File, buf: &mut [u8], off: u64) -> Result<()> {
    f.read_exact_at(buf, off)
        .map_err(|e| Error::Stats(format!("read at {off}: {e}")))
}

impl KvmStats {
    /// Opens the stats fd of a VM.
    pub fn open(vm: &kvm_ioctls::VmFd) -> Result<Self> {
        // SAFETY: KVM_GET_STATS_FD takes no argument and returns a new fd.
        let fd = unsafe { ioctl(vm, KVM_GET_STATS_FD()) };
        if fd < 0 {
            return Err(Error::StatsFd(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a fresh file descriptor that nobody else owns.
        let file = unsafe { File::from_raw_fd(fd) };
        Self::from_file(file)
    }

    /// Parses header and descriptors from a stats file.
    pub fn from_file(file: File) -> Result<Self> {
        let mut hb = [0u8; std::mem::size_of::<kvm_stats_header>()];
        read_exact_at(&file, &mut hb, 0)?;
        let u32_at = |b: &[u8], o: usize| u32::from_ne_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]);
        let name_size = u32_at(&hb, 4) as usize;
        let num_desc = u32_at(&hb, 8) as usize;
        let desc_offset = u32_at(&hb, 16) as u64;
        let data_offset = u32_at(&hb, 20) as u64;
        if num_desc > 4096 || name_size > 4096 {
            return Err(Error::Stats(format!(
                "implausible header: {num_desc} descriptors, names of {name_size} bytes"
            )));
        }
        let stride = std::mem::size_of::<kvm_stats_desc>() + name_size;
        let mut db = vec![0u8; stride * num_desc];
        read_exact_at(&file, &mut db, desc_offset)?;
        let descs = db
            .chunks_exact(stride)
            .map(|d| {
                let name_bytes = &d[16..];
                let end = name_bytes
                    .iter()
                    .position(|&c| c == 0)
                    .unwrap_or(name_bytes.len());
                StatDesc {
                    name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
                    flags: u32_at(d, 0),
                    exponent: i16::from_ne_bytes([d[4], d[5]]),
                    size: u16::from_ne_bytes([d[6], d[7]]),
                    offset: u32_at(d, 8),
                }
            })
            .collect();
        Ok(KvmStats {
            file,
            descs,
            data_offset,
        })
    }

    pub fn descriptors(&self) -> &[StatDesc] {
        &self.descs
    }

    /// Reads all values now.
    pub fn read(&self) -> Result<StatsSnapshot> {
        let mut snap = StatsSnapshot::default();
        for d in &self.descs {
            let mut b = vec![0u8; d.size as usize * 8];
            read_exact_at(&self.file, &mut b, self.data_offset + d.offset as u64)?;
            let v = b
                .chunks_exact(8)
                .map(|c| u64::from_ne_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            snap.values.insert(d.name.clone(), v);
        }
        Ok(snap)
    }
}

impl AsRawFd for KvmStats {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.file.as_raw_fd()
    }
}
