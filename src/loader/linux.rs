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

use crate::arch::x86_64::acpi::{write_acpi_tables, AcpiError};
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
    #[error(transparent)]
    Acpi(#[from] AcpiError),
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

/// Loads `image` into `mem` for `vcpus` vCPUs: kernel, command line, initrd, zero page, MP
/// table and ACPI tables.
pub fn load_linux(mem: &GuestMemoryMmap, image: &LinuxImage, vcpus: u8) -> Result<LinuxEntry> {
    let low_end = low_memory_end(mem)?;
    // Cheap checks first, so bad input fails before big files are read.
    setup_mptable(mem, vcpus)?;
    let acpi_rsdp = write_acpi_tables(mem, vcpus)?;

    let (mut kernel_file, kernel_len) = open(&image.kernel)?;
    let kernel = load_kernel(mem, &mut kernel_file, kernel_len, &image.kernel, low_end)?;

    write_cmdline(
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
            initrd,
            acpi_rsdp: Some(acpi_rsdp),
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
    if ehdr.e_ident[EI_CLASS] != ELFCLASS64
        || ehdr.e_ident[EI_DATA] != ELFDATA2LSB
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::boot_params::E820_RAM;
    use crate::arch::x86_64::layout::{
        CMDLINE_START, MMIO_GAP_END, MPTABLE_START, ZERO_PAGE_START,
    };
    use crate::arch::x86_64::mptable::MpFloatingPointer;
    use linux_loader::bootparam::boot_params;
    use std::collections::BTreeSet;
    use std::io::{Cursor, Write};
    use vmm_sys_util::tempfile::TempFile;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// Guest memory laid out as the VMM does for Linux.
    fn mem(size: u64) -> GuestMemoryMmap {
        let low = size.min(MMIO_GAP_START);
        let mut r = vec![(GuestAddress(0), low as usize)];
        if size > low {
            r.push((GuestAddress(MMIO_GAP_END), (size - low) as usize));
        }
        GuestMemoryMmap::from_ranges(&r).unwrap()
    }

    fn good_header() -> setup_header {
        setup_header {
            setup_sects: 3,
            boot_flag: 0xaa55,
            header: 0x5372_6448,
            version: 0x020f,
            loadflags: LOADED_HIGH,
            code32_start: 0x100000,
            initrd_addr_max: 0x7fff_ffff,
            kernel_alignment: 0x20_0000,
            relocatable_kernel: 1,
            xloadflags: 0x1 | 0x2,
            cmdline_size: 2047,
            pref_address: 0x100_0000,
            init_size: 0x80_0000,
            ..Default::default()
        }
    }

    /// A bzImage: setup sectors with `hdr` at 0x1f1, then a `payload`-byte protected-mode
    /// "kernel" filled with a pattern.
    fn bzimage(mut hdr: setup_header, payload: usize) -> Vec<u8> {
        let setup = (usize::from(hdr.setup_sects) + 1) * 512;
        hdr.syssize = payload.div_ceil(16) as u32;
        let mut img = vec![0u8; setup + payload];
        img[SETUP_HEADER_OFFSET..SETUP_HEADER_OFFSET + size_of::<setup_header>()]
            .copy_from_slice(hdr.as_slice());
        for (i, b) in img[setup..].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        img
    }

    const ELF_ENTRY: u64 = 0x100_0000;

    /// A vmlinux-like ELF: one PT_LOAD of `filesz` bytes (plus bss) at ELF_ENTRY.
    fn elf(filesz: u64) -> Vec<u8> {
        let mut eh = Elf64_Ehdr::default();
        eh.e_ident[..4].copy_from_slice(ELF_MAGIC);
        eh.e_ident[EI_CLASS] = ELFCLASS64;
        eh.e_ident[EI_DATA] = ELFDATA2LSB;
        eh.e_ident[6] = 1;
        eh.e_type = 2;
        eh.e_machine = EM_X86_64;
        eh.e_version = 1;
        eh.e_entry = ELF_ENTRY;
        eh.e_phoff = size_of::<Elf64_Ehdr>() as u64;
        eh.e_ehsize = size_of::<Elf64_Ehdr>() as u16;
        eh.e_phentsize = size_of::<Elf64_Phdr>() as u16;
        eh.e_phnum = 1;
        let ph = Elf64_Phdr {
            p_type: PT_LOAD,
            p_flags: 5,
            p_offset: 0x1000,
            p_vaddr: 0xffff_ffff_8100_0000,
            p_paddr: ELF_ENTRY,
            p_filesz: filesz,
            p_memsz: filesz + 0x10000,
            p_align: 0x1000,
        };
        let mut img = vec![0u8; 0x1000 + filesz as usize];
        img[..64].copy_from_slice(eh.as_slice());
        img[64..64 + 56].copy_from_slice(ph.as_slice());
        for (i, b) in img[0x1000..].iter_mut().enumerate() {
            *b = (i % 253) as u8;
        }
        img
    }

    fn file(bytes: &[u8]) -> TempFile {
        let t = TempFile::new().unwrap();
        t.as_file().write_all(bytes).unwrap();
        t
    }

    fn image(kernel: &TempFile, initrd: Option<&TempFile>, cmdline: &str) -> LinuxImage {
        LinuxImage {
            kernel: kernel.as_path().to_path_buf(),
            initrd: initrd.map(|t| t.as_path().to_path_buf()),
            cmdline: cmdline.to_string(),
        }
    }

    fn zero_page(mem: &GuestMemoryMmap) -> boot_params {
        mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap()
    }

    fn one_line(e: &LinuxLoaderError) -> String {
        let s = e.to_string();
        assert!(!s.contains('\n'), "multi-line error: {s}");
        s
    }

    #[test]
    fn bzimage_full_load() {
        let mem = mem(128 * MIB);
        let k = file(&bzimage(good_header(), 0x4000));
        let initrd_bytes: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
        let i = file(&initrd_bytes);
        let e = load_linux(&mem, &image(&k, Some(&i), " console=ttyS0 acpi=off "), 2).unwrap();
        assert_eq!(e.entry, GuestAddress(HIMEM_START + 0x200));
        assert_eq!(e.boot_params, GuestAddress(ZERO_PAGE_START));

        // Kernel payload at HIMEM_START.
        let mut kbuf = [0u8; 512];
        mem.read_slice(&mut kbuf, GuestAddress(HIMEM_START))
            .unwrap();
        assert!(kbuf.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8));

        // Command line.
        let mut cbuf = [0xffu8; 24];
        mem.read_slice(&mut cbuf, GuestAddress(CMDLINE_START))
            .unwrap();
        assert_eq!(&cbuf[..22], b"console=ttyS0 acpi=off");
        assert_eq!(cbuf[22], 0);

        // Zero page.
        let zp = zero_page(&mem);
        let h = zp.hdr;
        assert_eq!({ h.boot_flag }, 0xaa55);
        assert_eq!({ h.header }, 0x5372_6448);
        assert_eq!(h.type_of_loader, 0xff);
        assert_eq!({ h.version }, 0x020f);
        assert_eq!(h.setup_sects, 3);
        assert_ne!(h.loadflags & LOADED_HIGH, 0);
        assert_ne!(h.loadflags & 0x80, 0, "CAN_USE_HEAP");
        assert_eq!({ h.heap_end_ptr }, 0xfe00);
        assert_eq!({ h.code32_start }, HIMEM_START as u32);
        assert_eq!({ h.cmd_line_ptr }, CMDLINE_START as u32);
        assert_eq!({ h.cmdline_size }, 2047);
        assert_eq!({ h.ramdisk_size }, 10_000);

        // Initrd: page-aligned, at the top of RAM, intact.
        let rd = u64::from(h.ramdisk_image);
        assert_eq!(rd % PAGE_SIZE, 0);
        assert_eq!(rd, (128 * MIB - 10_000) & !(PAGE_SIZE - 1));
        assert!(rd >= 0x100_0000 + 0x80_0000, "initrd overlaps the kernel");
        let mut rbuf = vec![0u8; 10_000];
        mem.read_slice(&mut rbuf, GuestAddress(rd)).unwrap();
        assert_eq!(rbuf, initrd_bytes);

        // e820 and MP table.
        assert_eq!(zp.e820_entries, 3);
        let last = zp.e820_table[2];
        assert_eq!(
            ({ last.addr }, { last.size }, { last.r#type }),
            (HIMEM_START, 128 * MIB - HIMEM_START, E820_RAM)
        );
        let fp: MpFloatingPointer = mem.read_obj(GuestAddress(MPTABLE_START)).unwrap();
        assert_eq!(&fp.signature, b"_MP_");
    }

    #[test]
    fn initrd_respects_initrd_addr_max() {
        let mem = mem(2 * GIB);
        let mut hdr = good_header();
        hdr.initrd_addr_max = 0x37ff_ffff;
        let k = file(&bzimage(hdr, 0x1000));
        let i = file(&[1u8; 5000]);
        load_linux(&mem, &image(&k, Some(&i), ""), 1).unwrap();
        let h = zero_page(&mem).hdr;
        let rd = u64::from(h.ramdisk_image);
        assert_eq!(rd, (0x3800_0000 - 5000) & !(PAGE_SIZE - 1));
        assert!(rd + 5000 <= 0x3800_0000);
    }

    #[test]
    fn initrd_below_mmio_gap() {
        // 5 GiB: low memory is [0, 3 GiB), the rest at 4 GiB.
        let mem = mem(5 * GIB);
        let mut hdr = good_header();
        hdr.initrd_addr_max = 0xffff_ffff;
        let k = file(&bzimage(hdr, 0x1000));
        let i = file(&[2u8; 0x3000]);
        load_linux(&mem, &image(&k, Some(&i), ""), 4).unwrap();
        let zp = zero_page(&mem);
        assert_eq!(u64::from(zp.hdr.ramdisk_image), MMIO_GAP_START - 0x3000);
        assert_eq!(zp.e820_entries, 4);
        let hi = zp.e820_table[3];
        assert_eq!(({ hi.addr }, { hi.size }), (MMIO_GAP_END, 2 * GIB));
    }

    #[test]
    fn initrd_too_large() {
        // 64 MiB; the kernel's decompression buffer ends at 16 MiB + 8 MiB.
        let mem = mem(64 * MIB);
        let k = file(&bzimage(good_header(), 0x1000));
        let i = TempFile::new().unwrap();
        i.as_file().set_len(41 * MIB).unwrap();
        let err = load_linux(&mem, &image(&k, Some(&i), ""), 1).unwrap_err();
        let msg = one_line(&err);
        let want = format!(
            "initrd ({} bytes) does not fit in guest memory below 0x4000000",
            41 * MIB
        );
        assert!(msg.contains(&want), "{msg}");
        // Exactly what fits between the kernel and the top does.
        i.as_file().set_len(40 * MIB).unwrap();
        load_linux(&mem, &image(&k, Some(&i), ""), 1).unwrap();
        assert_eq!(u64::from(zero_page(&mem).hdr.ramdisk_image), 24 * MIB);
        // Larger than all of memory.
        i.as_file().set_len(65 * MIB).unwrap();
        assert!(matches!(
            load_linux(&mem, &image(&k, Some(&i), ""), 1),
            Err(LinuxLoaderError::InitrdTooLarge { .. })
        ));
    }

    #[test]
    fn empty_initrd_is_none() {
        let mem = mem(64 * MIB);
        let k = file(&bzimage(good_header(), 0x1000));
        let i = file(&[]);
        load_linux(&mem, &image(&k, Some(&i), ""), 1).unwrap();
        let h = zero_page(&mem).hdr;
        assert_eq!(({ h.ramdisk_image }, { h.ramdisk_size }), (0, 0));
    }

    #[test]
    fn elf_load() {
        let mem = mem(64 * MIB);
        let k = file(&elf(0x3000));
        let i = file(&[3u8; 100]);
        let e = load_linux(&mem, &image(&k, Some(&i), "quiet"), 1).unwrap();
        assert_eq!(e.entry, GuestAddress(ELF_ENTRY));
        let mut buf = [0u8; 256];
        mem.read_slice(&mut buf, GuestAddress(ELF_ENTRY)).unwrap();
        assert!(buf.iter().enumerate().all(|(i, b)| *b == (i % 253) as u8));
        let zp = zero_page(&mem);
        assert_eq!({ zp.hdr.header }, 0x5372_6448);
        assert_eq!({ zp.hdr.cmd_line_ptr }, CMDLINE_START as u32);
        assert_eq!({ zp.hdr.ramdisk_size }, 100);
        assert_eq!(
            u64::from(zp.hdr.ramdisk_image),
            (64 * MIB - 100) & !(PAGE_SIZE - 1)
        );
        assert_eq!(zp.e820_entries, 3);
    }

    #[test]
    fn missing_files() {
        let mem = mem(64 * MIB);
        let img = LinuxImage {
            kernel: "/nonexistent/bzImage".into(),
            initrd: None,
            cmdline: String::new(),
        };
        let msg = one_line(&load_linux(&mem, &img, 1).unwrap_err());
        assert!(msg.contains("/nonexistent/bzImage"), "{msg}");
        assert!(msg.contains("No such file"), "{msg}");

        let k = file(&bzimage(good_header(), 0x1000));
        let mut img = image(&k, None, "");
        img.initrd = Some("/nonexistent/initrd".into());
        let msg = one_line(&load_linux(&mem, &img, 1).unwrap_err());
        assert!(msg.contains("/nonexistent/initrd"), "{msg}");

        img.initrd = None;
        img.kernel = "/".into();
        let msg = one_line(&load_linux(&mem, &img, 1).unwrap_err());
        assert!(msg.contains("Is a directory"), "{msg}");
    }

    #[test]
    fn not_a_kernel() {
        let mem = mem(64 * MIB);
        for bytes in [&b""[..], b"hello", &[0u8; 4096][..]] {
            let k = file(bytes);
            let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
            assert!(
                one_line(&err).contains("not a Linux kernel (no ELF magic or bzImage header)"),
                "{err}"
            );
        }
    }

    #[test]
    fn truncated_bzimage() {
        let mem = mem(64 * MIB);
        let full = bzimage(good_header(), 0x1000);
        for cut in [0x210, 0x26b, 0x400, 0x800, full.len() - 1] {
            let k = file(&full[..cut]);
            let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
            assert!(
                matches!(err, LinuxLoaderError::Truncated { .. }),
                "cut {cut:#x}: {err}"
            );
            one_line(&err);
        }
        // setup_sects larger than the file.
        let mut img = bzimage(good_header(), 0x1000);
        img[SETUP_HEADER_OFFSET] = 200;
        let k = file(&img);
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(one_line(&err).contains("setup_sects (200)"), "{err}");
    }

    #[test]
    fn bzimage_header_checks() {
        let mem = mem(64 * MIB);
        let mut hdr = good_header();
        hdr.xloadflags = 0x2;
        let k = file(&bzimage(hdr, 0x1000));
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(matches!(err, LinuxLoaderError::No64BitEntry { .. }));
        assert!(one_line(&err).contains("no 64-bit entry point"));

        let mut hdr = good_header();
        hdr.version = 0x0204;
        let k = file(&bzimage(hdr, 0x1000));
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(
            one_line(&err).contains("boot protocol 2.04 is too old"),
            "{err}"
        );

        let mut hdr = good_header();
        hdr.loadflags = 0;
        let k = file(&bzimage(hdr, 0x1000));
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(one_line(&err).contains("zImage"), "{err}");

        // A kernel whose decompression buffer does not fit.
        let mut hdr = good_header();
        hdr.init_size = 0x400_0000;
        let k = file(&bzimage(hdr, 0x1000));
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(
            one_line(&err).contains("kernel needs guest memory up to 0x5000000"),
            "{err}"
        );
    }

    #[test]
    fn elf_checks() {
        let mem = mem(64 * MIB);
        let full = elf(0x3000);
        let k = file(&full);
        assert!(load_linux(&mem, &image(&k, None, ""), 1).is_ok());
        // Segment beyond the end of the file.
        let k = file(&full[..full.len() - 1]);
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(matches!(err, LinuxLoaderError::Truncated { .. }), "{err}");
        // Program headers beyond the end of the file.
        let k = file(&full[..100]);
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(matches!(err, LinuxLoaderError::Truncated { .. }), "{err}");
        // 32-bit ELF.
        let mut img = full.clone();
        img[EI_CLASS] = 1;
        let k = file(&img);
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(one_line(&err).contains("not a little-endian 64-bit x86 ELF"));
        // Entry outside the segments.
        let mut img = full.clone();
        img[24..32].copy_from_slice(&0x200_0000u64.to_le_bytes());
        let k = file(&img);
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(one_line(&err).contains("entry point 0x2000000"), "{err}");
        // Segment past the end of memory: p_paddr (phdr at 64, field at +24) and e_entry
        // near the top of 64 MiB.
        let mut img = full.clone();
        img[64 + 24..64 + 32].copy_from_slice(&(64 * MIB - 0x1000).to_le_bytes());
        img[24..32].copy_from_slice(&(64 * MIB - 0x1000).to_le_bytes());
        let k = file(&img);
        let err = load_linux(&mem, &image(&k, None, ""), 1).unwrap_err();
        assert!(
            matches!(err, LinuxLoaderError::KernelTooBig { .. }),
            "{err}"
        );
    }

    #[test]
    fn cmdline_too_long() {
        let mem = mem(64 * MIB);
        let mut hdr = good_header();
        hdr.cmdline_size = 255;
        let k = file(&bzimage(hdr, 0x1000));
        load_linux(&mem, &image(&k, None, &"x".repeat(255)), 1).unwrap();
        let err = load_linux(&mem, &image(&k, None, &"x".repeat(256)), 1).unwrap_err();
        assert!(
            one_line(&err).contains("too long: 256 bytes, the limit is 255"),
            "{err}"
        );
    }

    #[test]
    fn memory_too_small() {
        let k = file(&bzimage(good_header(), 0x1000));
        let err = load_linux(&mem(32 * MIB), &image(&k, None, ""), 1).unwrap_err();
        assert!(
            one_line(&err).contains("32 MiB below the MMIO gap at address 0, need at least 64 MiB"),
            "{err}"
        );
        // No region at 0 at all.
        let m = GuestMemoryMmap::from_ranges(&[(GuestAddress(GIB), (64 * MIB) as usize)]).unwrap();
        assert!(matches!(
            load_linux(&m, &image(&k, None, ""), 1),
            Err(LinuxLoaderError::MemoryTooSmall { have_mib: 0 })
        ));
    }

    #[test]
    fn bad_vcpu_counts() {
        let mem = mem(64 * MIB);
        let k = file(&bzimage(good_header(), 0x1000));
        assert!(matches!(
            load_linux(&mem, &image(&k, None, ""), 0),
            Err(LinuxLoaderError::Mptable(MptableError::NoVcpus))
        ));
        assert!(matches!(
            load_linux(&mem, &image(&k, None, ""), 255),
            Err(LinuxLoaderError::Mptable(MptableError::TooManyVcpus(255)))
        ));
    }

    /// xorshift64: deterministic pseudo-random bytes for the fuzz tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    /// Loads `bytes` as a kernel; returns the outcome's kind (error variant name or "Ok").
    fn fuzz_one(mem: &GuestMemoryMmap, bytes: &[u8]) -> String {
        let path = Path::new("fuzz");
        let len = bytes.len() as u64;
        let mut c = Cursor::new(bytes);
        match load_kernel(mem, &mut c, len, path, 64 * MIB) {
            Ok(k) => {
                if let Some(h) = k.setup_header {
                    assert_ne!(h.xloadflags & XLF_KERNEL_64, 0);
                    assert!(h.version >= MIN_BOOT_PROTOCOL);
                }
                assert!(k.end <= 64 * MIB);
                // Whatever was accepted also takes an initrd or fails cleanly.
                let mut r: &[u8] = &[0u8; 4096];
                let _ = load_initrd(mem, &mut r, 4096, path, &k, 64 * MIB);
                "Ok".into()
            }
            Err(e) => {
                one_line(&e);
                let dbg = format!("{e:?}");
                dbg.split([' ', '{', '(']).next().unwrap_or("").to_string()
            }
        }
    }

    fn assert_kinds(seen: &BTreeSet<String>, want: &[&str]) {
        for w in want {
            assert!(seen.contains(*w), "fuzzing never produced {w}: {seen:?}");
        }
    }

    #[test]
    fn fuzz_bzimage_headers() {
        let mem = mem(64 * MIB);
        let base = bzimage(good_header(), 0x2000);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut seen = BTreeSet::new();
        for _ in 0..3000 {
            let mut img = base.clone();
            // Garble a few bytes of the setup header area, then maybe truncate.
            for _ in 0..1 + rng.below(8) {
                let off = SETUP_HEADER_OFFSET + rng.below(0x80);
                img[off] = rng.next() as u8;
            }
            if rng.below(3) == 0 {
                img.truncate(rng.below(img.len() + 1));
            }
            // Keep the magic most of the time so the checks behind it are exercised.
            if img.len() >= 0x206 && rng.below(4) != 0 {
                img[HDRS_OFFSET..HDRS_OFFSET + 4].copy_from_slice(HDRS_MAGIC);
            }
            seen.insert(fuzz_one(&mem, &img));
        }
        // Random whole headers.
        for _ in 0..1000 {
            let mut img: Vec<u8> = (0..0x1000).map(|_| rng.next() as u8).collect();
            img[HDRS_OFFSET..HDRS_OFFSET + 4].copy_from_slice(HDRS_MAGIC);
            img[0x211] |= LOADED_HIGH;
            img[0x236] |= 1;
            img[0x207] = 2;
            seen.insert(fuzz_one(&mem, &img));
        }
        assert_kinds(
            &seen,
            &[
                "Ok",
                "Truncated",
                "NotAKernel",
                "OldBootProtocol",
                "No64BitEntry",
                "KernelTooBig",
            ],
        );
    }

    #[test]
    fn fuzz_elf_headers() {
        let mem = mem(64 * MIB);
        let base = elf(0x2000);
        let mut rng = Rng(0x1234_5678_9abc_def1);
        let mut seen = BTreeSet::new();
        for _ in 0..3000 {
            let mut img = base.clone();
            for _ in 0..1 + rng.below(6) {
                let off = 4 + rng.below(64 + 56 - 4);
                img[off] = rng.next() as u8;
            }
            if rng.below(3) == 0 {
                img.truncate(rng.below(img.len() + 1));
            }
            seen.insert(fuzz_one(&mem, &img));
        }
        // Every prefix of a valid image.
        for cut in (0..base.len()).step_by(7) {
            seen.insert(fuzz_one(&mem, &base[..cut]));
        }
        assert_kinds(
            &seen,
            &[
                "Ok",
                "Truncated",
                "NotAKernel",
                "Unsupported",
                "KernelTooBig",
            ],
        );
    }
}
