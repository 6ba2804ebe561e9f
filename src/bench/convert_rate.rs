//! `mmuvisor bench convert`: the rate at which /dev/mmuvisor makes pages
//! device-exclusive, against test_hmm's HMM_DMIRROR_EXCLUSIVE
//! (/dev/hmm_dmirror0, lib/test_hmm_uapi.h) on the same kind of range in the
//! same run. Both convert populated, anonymous private 4 KiB pages; each
//! timed call converts `npages` fresh pages. Runs in the lab.

use std::fs::{File, OpenOptions};
use std::io;
use std::time::{Duration, Instant};

use crate::host_mapping::HostMapping;
use crate::notifier_client::{Error as ClientError, NotifierClient};

pub const HMM_DMIRROR_PATH: &str = "/dev/hmm_dmirror0";
const PAGE: usize = 4096;

/// lib/test_hmm_uapi.h `struct hmm_dmirror_cmd`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy)]
struct HmmDmirrorCmd {
    addr: u64,
    ptr: u64,
    npages: u64,
    cpages: u64,
    faults: u64,
}
const _: () = assert!(std::mem::size_of::<HmmDmirrorCmd>() == 40);
vmm_sys_util::ioctl_iowr_nr!(HMM_DMIRROR_EXCLUSIVE, b'H' as u32, 0x05, HmmDmirrorCmd);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("mmap of {0} bytes failed: {1}")]
    Mmap(usize, io::Error),
    #[error("{0}")]
    Client(#[from] ClientError),
    #[error("cannot open {HMM_DMIRROR_PATH}: {0} (insmod test_hmm.ko)")]
    HmmOpen(io::Error),
    #[error("HMM_DMIRROR_EXCLUSIVE: {0}")]
    HmmExclusive(io::Error),
    #[error("converted {got} of {want} pages")]
    Short { got: u64, want: u64 },
}

/// Private memory in 4 KiB pages.
fn small(len: usize) -> Result<HostMapping, Error> {
    HostMapping::small_pages(len).map_err(|e| Error::Mmap(len, e))
}

/// Converts `reps` batches of `npages` pages with /dev/mmuvisor.
fn time_mmuvisor(npages: usize, reps: usize) -> Result<Duration, Error> {
    let region = small(npages * reps * PAGE)?;
    region.populate();
    let dev = NotifierClient::open()?;
    dev.attach(region.addr(), region.len() as u64)?;
    let mut total = Duration::ZERO;
    for r in 0..reps {
        let addr = region.addr() + (r * npages * PAGE) as u64;
        let t = Instant::now();
        let got = dev.make_exclusive(addr, npages as u64)?;
        total += t.elapsed();
        if got != npages as u64 {
            return Err(Error::Short {
                got,
                want: npages as u64,
            });
        }
    }
    dev.detach()?;
    Ok(total)
}

/// Converts `reps` batches of `npages` pages with test_hmm.
fn time_hmm(npages: usize, reps: usize) -> Result<Duration, Error> {
    let region = small(npages * reps * PAGE)?;
    region.populate();
    // test_hmm copies the converted pages' data back into this buffer.
    let bounce = small(npages * PAGE)?;
    let file: File = OpenOptions::new()
        .read(true)
        .write(true)
        .open(HMM_DMIRROR_PATH)
        .map_err(Error::HmmOpen)?;
    let mut total = Duration::ZERO;
    for r in 0..reps {
        let mut cmd = HmmDmirrorCmd {
            addr: region.addr() + (r * npages * PAGE) as u64,
            ptr: bounce.addr(),
            npages: npages as u64,
            ..Default::default()
        };
        let t = Instant::now();
        // SAFETY: the command is a valid hmm_dmirror_cmd whose ptr names a
        // writable buffer of npages pages.
        let ret = unsafe {
            vmm_sys_util::ioctl::ioctl_with_mut_ref(&file, HMM_DMIRROR_EXCLUSIVE(), &mut cmd)
        };
        total += t.elapsed();
        if ret < 0 {
            return Err(Error::HmmExclusive(io::Error::last_os_error()));
        }
    }
    Ok(total)
}

/// One line of the result.
#[derive(Debug, Clone, Copy)]
pub struct ConvertRate {
    pub npages: usize,
    pub reps: usize,
    /// Pages per second.
    pub mmuvisor: f64,
    pub test_hmm: f64,
}

impl ConvertRate {
    pub fn ratio(&self) -> f64 {
        if self.test_hmm > 0.0 {
            self.mmuvisor / self.test_hmm
        } else {
            0.0
        }
    }
}

fn rate(pages: usize, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 {
        pages as f64 / s
    } else {
        0.0
    }
}

/// Measures both converters for one batch size, alternating `rounds` times
/// (only one device file is open at a time: each one's notifier would
/// otherwise also see the other's conversions).
pub fn measure(npages: usize, pages_per_round: usize, rounds: usize) -> Result<ConvertRate, Error> {
    let reps = (pages_per_round / npages.max(1)).max(3);
    let (mut a, mut b) = (Duration::ZERO, Duration::ZERO);
    for round in 0..rounds.max(1) {
        if round % 2 == 0 {
            a += time_mmuvisor(npages, reps)?;
            b += time_hmm(npages, reps)?;
        } else {
            b += time_hmm(npages, reps)?;
            a += time_mmuvisor(npages, reps)?;
        }
    }
    let pages = npages * reps * rounds.max(1);
    Ok(ConvertRate {
        npages,
        reps,
        mmuvisor: rate(pages, a),
        test_hmm: rate(pages, b),
    })
}
