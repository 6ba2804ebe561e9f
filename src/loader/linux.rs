//! Linux direct boot: a bzImage or ELF vmlinux, an optional initrd and a command line, loaded
//! into guest memory for a 64-bit (long mode) entry.
//!
//! Guest layout (see `arch::x86_64::layout`): zero page at ZERO_PAGE_START, command line at
//! CMDLINE_START, MP table at MPTABLE_START, kernel at HIMEM_START (bzImage) or at its ELF
//! physical addresses (vmlinux), initrd page-aligned at the top of low memory. The VMM enters
//! at `LinuxEntry::entry` with RSI = `LinuxEntry::boot_params`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::mem::size_of;
use std::path::{Path, PathBuf};

use linux_loader::bootparam::{setup_header, LOADED_HIGH, XLF_KERNEL_64};
use linux_loader::elf::{
    Elf64_Ehdr, Elf64_Phdr, EI_CLASS, EI_DATA, ELFCLASS64, ELFDATA2LSB, EM_X86_64, PT_LOAD,
};
use linux_loader::loader::{BzImage, Elf, KernelLoader, KernelLoaderResult};
use vm_memory::{
    Address, ByteValued, Bytes, GuestAddress, GuestMemoryBackend, GuestMemoryMmap,
    GuestMemoryRegion, ReadVolatile,
};

use crate::arch::x86_64::boot_params::{
    build_boot_params, cmdline_limit, write_boot_params, write_cmdline, BootParamsError,
    ZeroPageConfig,
};
use crate::arch::x86_64::layout::{HIMEM_START, MMIO_GAP_START};
use crate::arch::x86_64::mptable::{setup_mptable, MptableError};

/// Least guest memory we boot Linux with.
pub const MIN_LINUX_MEM: u64 = 64 << 20;
/// Oldest boot protocol we accept (cmdline_size, relocatable kernels).
pub const MIN_BOOT_PROTOCOL: u16 = 0x0206;
/// Offset of the 64-bit entry point (startup_64) from the protected-mode kernel's load address.
pub const BZIMAGE_64BIT_ENTRY_OFFSET: u64 = 0x200;
/// Where a bzImage carries its setup header, and the "HdrS" magic.
const SETUP_HEADER_OFFSET: usize = 0x1f1;
const HDRS_OFFSET: usize = 0x202;
const HDRS_MAGIC: &[u8; 4] = b"HdrS";
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";
/// Highest initrd end for a kernel that does not say (ELF vmlinux): what x86_64 kernels set.
const DEFAULT_INITRD_ADDR_MAX: u64 = 0x7fff_ffff;
const PAGE_SIZE: u64 = 0x1000;

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxImage {
    pub kernel: PathBuf,
    pub initrd: Option<PathBuf>,
    pub cmdline: String,
}

/// Where to enter it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinuxEntry {
    /// 64-bit entry point (RIP; the vCPU is in long mode).
    pub entry: GuestAddress,
    /// The zero page (struct boot_params); the VMM puts it in RSI.
    pub boot_params: GuestAddress,
}

/// Errors loading a Linux guest. Each displays as one line.
#[derive(Debug, thiserror::Error)]
pub enum LinuxLoaderError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: not a Linux kernel (no ELF magic or bzImage header)", path.display())]
    NotAKernel { path: PathBuf },
    #[error("{}: truncated image: {detail}", path.display())]
    Truncated { path: PathBuf, detail: String },
    #[error("{}: boot protocol {}.{:02} is too old (need 2.06 or later)", path.display(), version >> 8, version & 0xff)]
    OldBootProtocol { path: PathBuf, version: u16 },
    #[error("{}: bzImage has no 64-bit entry point (xloadflags {xloadflags:#x} lacks XLF_KERNEL_64)", path.display())]
    No64BitEntry { path: PathBuf, xloadflags: u16 },
    #[error("{}: unsupported kernel: {detail}", path.display())]
    Unsupported { path: PathBuf, detail: String },
    #[error("{}: kernel needs guest memory up to {end:#x} but low memory ends at {limit:#x}", path.display())]
    KernelTooBig { path: PathBuf, end: u64, limit: u64 },
    #[error("{}: {source}", path.display())]
    Load {
        path: PathBuf,
        source: linux_loader::loader::Error,
    },
    #[error("initrd ({size} bytes) does not fit in guest memory below {limit:#x} (the kernel ends at {kernel_end:#x})")]
    InitrdTooLarge {
        size: u64,
        limit: u64,
        kernel_end: u64,
    },
    #[error("cannot read initrd {} into guest memory: {detail}", path.display())]
    InitrdRead { path: PathBuf, detail: String },
    #[error("guest memory too small for Linux: {have_mib} MiB below the MMIO gap at address 0, need at least {} MiB", MIN_LINUX_MEM >> 20)]
    MemoryTooSmall { have_mib: u64 },
    #[error(transparent)]
    BootParams(#[from] BootParamsError),
    #[error(transparent)]
    Mptable(#[from] MptableError),
}

type Result<T> = std::result::Result<T, LinuxLoaderError>;

/// The kind of kernel image, from its magic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KernelKind {
    BzImage,
    Elf,
}

/// A kernel written to guest memory.
#[derive(Debug, Clone, Copy)]
struct LoadedKernel {
    entry: GuestAddress,
    /// Everything the kernel may use before it reads the e820 map ends here (for a bzImage,
    /// the in-place decompression buffer).
    end: u64,
    setup_header: Option<setup_header>,
}

/// Loads `image` into `mem` for `vcpus` vCPUs: kernel, command line, initrd, zero page and
/// MP table.
pub fn load_linux(mem: &GuestMemoryMmap, image: &LinuxImage, vcpus: u8) -> Result<LinuxEntry> {
    let low_end = low_memory_end(mem)?;
    // Cheap checks first, so bad input fails before big files are read.
    setup_mptable(mem, vcpus)?;

    let (mut kernel_file, kernel_len) = open(&image.kernel)?;
    let kernel = load_kernel(mem, &mut kernel_file, kernel_len, &image.kernel, low_end)?;

    let cmdline_len = write_cmdline(
        mem,
        &image.cmdline,
        cmdline_limit(kernel.setup_header.as_ref()),
    )?;

    let initrd = match &image.initrd {
        Some(path) => {
            let (mut file, size) = open(path)?;
            load_initrd(mem, &mut file, size, path, &kernel, low_end)?
        }
        None => None,
    };

    let params = build_boot_params(
        mem,
        &ZeroPageConfig {
            setup_header: kernel.setup_header,
            cmdline_len,
            initrd,
        },
    )?;
    let boot_params = write_boot_params(mem, &params)?;
    Ok(LinuxEntry {
        entry: kernel.entry,
        boot_params,
    })
}

fn open(path: &Path) -> Result<(File, u64)> {
    let file = File::open(path).map_err(|source| LinuxLoaderError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| LinuxLoaderError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return Err(LinuxLoaderError::Read {
            path: path.to_path_buf(),
            source: io::Error::from_raw_os_error(libc::EISDIR),
        });
    }
    Ok((file, meta.len()))
}

/// End of the guest memory region at address 0 (the only one the boot structures, kernel and
/// initrd use), checked against MIN_LINUX_MEM.
fn low_memory_end(mem: &GuestMemoryMmap) -> Result<u64> {
    let end = mem
        .iter()
        .find(|r| r.start_addr().raw_value() == 0)
        .map(|r| r.len())
        .unwrap_or(0);
    if end < MIN_LINUX_MEM {
        return Err(LinuxLoaderError::MemoryTooSmall {
            have_mib: end >> 20,
        });
    }
    Ok(end)
}

/// Reads up to `buf.len()` bytes from the start of `f`; returns how many it got.
fn read_head<F: Read + Seek>(f: &mut F, buf: &mut [u8], path: &Path) -> Result<usize> {
    let err = |source| LinuxLoaderError::Read {
        path: path.to_path_buf(),
        source,
    };
    f.seek(SeekFrom::Start(0)).map_err(err)?;
    let mut got = 0;
    while got < buf.len() {
        match f.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(got)
}

fn detect(head: &[u8]) -> Option<KernelKind> {
    if head.starts_with(ELF_MAGIC) {
        Some(KernelKind::Elf)
    } else if head.get(HDRS_OFFSET..HDRS_OFFSET + 4) == Some(HDRS_MAGIC) {
        Some(KernelKind::BzImage)
    } else {
        None
    }
}

fn align_up(v: u64, align: u64) -> Option<u64> {
    if align <= 1 || !align.is_power_of_two() {
        return Some(v);
    }
    v.checked_add(align - 1).map(|x| x & !(align - 1))
}

/// Checks a bzImage's setup header against the file; returns the header and where the
/// kernel's decompression buffer ends when loaded at HIMEM_START.
fn check_bzimage(head: &[u8], file_len: u64, path: &Path) -> Result<(setup_header, u64)> {
    let truncated = |detail: String| LinuxLoaderError::Truncated {
        path: path.to_path_buf(),
        detail,
    };
    let hdr_end = SETUP_HEADER_OFFSET + size_of::<setup_header>();
    let hdr = head
        .get(SETUP_HEADER_OFFSET..hdr_end)
        .and_then(setup_header::from_slice)
        .copied()
        .ok_or_else(|| truncated(format!("{file_len} bytes, shorter than a setup header")))?;
    if hdr.version < MIN_BOOT_PROTOCOL {
        return Err(LinuxLoaderError::OldBootProtocol {
            path: path.to_path_buf(),
            version: hdr.version,
        });
    }
    if hdr.loadflags & LOADED_HIGH == 0 {
        return Err(LinuxLoaderError::Unsupported {
            path: path.to_path_buf(),
            detail: "a zImage (loaded low), not a bzImage".into(),
        });
    }
    if hdr.xloadflags & XLF_KERNEL_64 == 0 {
        return Err(LinuxLoaderError::No64BitEntry {
            path: path.to_path_buf(),
            xloadflags: hdr.xloadflags,
        });
    }
    let setup_sects = if hdr.setup_sects == 0 {
        4
    } else {
        u64::from(hdr.setup_sects)
    };
    let setup_size = (setup_sects + 1) * 512;
    let payload_size = u64::from(hdr.syssize) * 16;
    let need = setup_size + payload_size;
    if file_len < need || file_len <= setup_size {
        return Err(truncated(format!(
            "{file_len} bytes, but setup_sects ({setup_sects}) and syssize ({}) say {need}",
            { hdr.syssize }
        )));
    }
    // The 64-bit decompressor runs in place at the load address rounded up to
    // kernel_alignment, or at pref_address if that is higher, and needs init_size bytes there.
    let loaded_end = HIMEM_START + (file_len - setup_size);
    let base = align_up(HIMEM_START, u64::from(hdr.kernel_alignment))
        .unwrap_or(HIMEM_START)
        .max(hdr.pref_address);
    let end = base
        .checked_add(u64::from(hdr.init_size))
        .ok_or_else(|| LinuxLoaderError::Unsupported {
            path: path.to_path_buf(),
            detail: format!("pref_address {:#x} out of range", { hdr.pref_address }),
        })?
        .max(loaded_end);
    Ok((hdr, end))
}

/// Checks an ELF vmlinux's headers against the file and low memory; returns where its highest
/// segment ends.
fn check_elf<F: Read + Seek>(
    f: &mut F,
    head: &[u8],
    file_len: u64,
    path: &Path,
    low_end: u64,
) -> Result<u64> {
    let p = || path.to_path_buf();
    let truncated = |detail: String| LinuxLoaderError::Truncated { path: p(), detail };
    let unsupported = |detail: String| LinuxLoaderError::Unsupported { path: p(), detail };
    let ehdr = head
        .get(..size_of::<Elf64_Ehdr>())
        .and_then(Elf64_Ehdr::from_slice)
        .copied()
        .ok_or_else(|| truncated(format!("{file_len} bytes, shorter than an ELF header")))?;
    if ehdr.e_ident[EI_CLASS as usize] != ELFCLASS64
        || ehdr.e_ident[EI_DATA as usize] != ELFDATA2LSB
        || ehdr.e_machine != EM_X86_64
    {
        return Err(unsupported("not a little-endian 64-bit x86 ELF".into()));
    }
    if usize::from(ehdr.e_phentsize) != size_of::<Elf64_Phdr>() || ehdr.e_phnum == 0 {
        return Err(unsupported(format!(
            "bad program header table (e_phentsize {}, e_phnum {})",
            ehdr.e_phentsize, ehdr.e_phnum
        )));
    }
    let ph_len = u64::from(ehdr.e_phnum) * size_of::<Elf64_Phdr>() as u64;
    if (ehdr.e_phoff as usize) < size_of::<Elf64_Ehdr>()
        || ehdr
            .e_phoff
            .checked_add(ph_len)
            .is_none_or(|e| e > file_len)
    {
        return Err(truncated(format!(
            "program headers at {:#x} beyond the file's {file_len} bytes",
            ehdr.e_phoff
        )));
    }
    let mut table = vec![0u8; ph_len as usize];
    f.seek(SeekFrom::Start(ehdr.e_phoff))
        .and_then(|_| f.read_exact(&mut table))
        .map_err(|source| LinuxLoaderError::Read { path: p(), source })?;

    let mut end = 0u64;
    let mut entry_ok = false;
    for chunk in table.chunks_exact(size_of::<Elf64_Phdr>()) {
        let Some(ph) = Elf64_Phdr::from_slice(chunk).copied() else {
            continue;
        };
        if ph.p_type != PT_LOAD || ph.p_filesz == 0 {
            continue;
        }
        if ph
            .p_offset
            .checked_add(ph.p_filesz)
            .is_none_or(|e| e > file_len)
        {
            return Err(truncated(format!(
                "segment at file offset {:#x} ({:#x} bytes) beyond the file's {file_len} bytes",
                ph.p_offset, ph.p_filesz
            )));
        }
        let seg_end = ph
            .p_paddr
            .checked_add(ph.p_memsz.max(ph.p_filesz))
            .ok_or_else(|| unsupported(format!("segment address {:#x} overflows", ph.p_paddr)))?;
        if ph.p_paddr < HIMEM_START {
            return Err(unsupported(format!(
                "segment at {:#x} below {HIMEM_START:#x}",
                ph.p_paddr
            )));
        }
        if seg_end > low_end {
            return Err(LinuxLoaderError::KernelTooBig {
                path: p(),
                end: seg_end,
                limit: low_end,
            });
        }
        if (ph.p_paddr..seg_end).contains(&ehdr.e_entry) {
            entry_ok = true;
        }
        end = end.max(seg_end);
    }
    if end == 0 {
        return Err(unsupported("no loadable segment".into()));
    }
    if !entry_ok {
        return Err(unsupported(format!(
            "entry point {:#x} outside the loaded segments",
            ehdr.e_entry
        )));
    }
    Ok(end)
}

/// Validates the kernel image in `f` and writes it to guest memory.
fn load_kernel<F: Read + Seek + ReadVolatile>(
    mem: &GuestMemoryMmap,
    f: &mut F,
    file_len: u64,
    path: &Path,
    low_end: u64,
) -> Result<LoadedKernel> {
    let mut head = [0u8; 0x400];
    let got = read_head(f, &mut head, path)?;
    let head = &head[..got];
    let load_err = |source| LinuxLoaderError::Load {
        path: path.to_path_buf(),
        source,
    };
    match detect(head) {
        None => Err(LinuxLoaderError::NotAKernel {
            path: path.to_path_buf(),
        }),
        Some(KernelKind::BzImage) => {
            let (_, end) = check_bzimage(head, file_len, path)?;
            if end > low_end {
                return Err(LinuxLoaderError::KernelTooBig {
                    path: path.to_path_buf(),
                    end,
                    limit: low_end,
                });
            }
            let res: KernelLoaderResult =
                BzImage::load(mem, Some(GuestAddress(HIMEM_START)), f, None).map_err(load_err)?;
            Ok(LoadedKernel {
                entry: res.kernel_load.unchecked_add(BZIMAGE_64BIT_ENTRY_OFFSET),
                end: end.max(res.kernel_end),
                setup_header: res.setup_header,
            })
        }
        Some(KernelKind::Elf) => {
            let end = check_elf(f, head, file_len, path, low_end)?;
            let res = Elf::load(mem, None, f, Some(GuestAddress(HIMEM_START))).map_err(load_err)?;
            Ok(LoadedKernel {
                entry: res.kernel_load,
                end: end.max(res.kernel_end),
                setup_header: None,
            })
        }
    }
}

/// Places the initrd page-aligned at the top of low memory (below the kernel's initrd_addr_max
/// and the MMIO gap), above the kernel, and reads it there. Returns its address and size, or
/// None for an empty file.
fn load_initrd<F: ReadVolatile>(
    mem: &GuestMemoryMmap,
    f: &mut F,
    size: u64,
    path: &Path,
    kernel: &LoadedKernel,
    low_end: u64,
) -> Result<Option<(GuestAddress, u32)>> {
    if size == 0 {
        return Ok(None);
    }
    let addr_max = kernel
        .setup_header
        .map_or(DEFAULT_INITRD_ADDR_MAX, |h| u64::from(h.initrd_addr_max));
    let limit = low_end.min(MMIO_GAP_START).min(addr_max.saturating_add(1));
    let kernel_end = align_up(kernel.end, PAGE_SIZE).unwrap_or(u64::MAX);
    let too_large = LinuxLoaderError::InitrdTooLarge {
        size,
        limit,
        kernel_end,
    };
    let start = match limit.checked_sub(size) {
        Some(s) => s & !(PAGE_SIZE - 1),
        None => return Err(too_large),
    };
    if start < kernel_end {
        return Err(too_large);
    }
    // start + size <= limit < 4 GiB.
    let size32 = size as u32;
    mem.read_exact_volatile_from(GuestAddress(start), f, size as usize)
        .map_err(|e| LinuxLoaderError::InitrdRead {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    Ok(Some((GuestAddress(start), size32)))
}
