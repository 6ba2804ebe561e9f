//! The Linux zero page (`struct boot_params`), its e820 memory map, and the kernel command line.
//!
//! The structures and the writer come from linux-loader; this file decides what goes in them.

use linux_loader::bootparam::{
    boot_e820_entry, boot_params, setup_header, CAN_USE_HEAP, E820_MAX_ENTRIES_ZEROPAGE,
};
use linux_loader::cmdline::{Cmdline, Error as CmdlineError};
use linux_loader::configurator::linux::LinuxBootConfigurator;
use linux_loader::configurator::{BootConfigurator, BootParams};
use vm_memory::{Address, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use super::layout::{CMDLINE_MAX_SIZE, CMDLINE_START, EBDA_START, HIMEM_START, ZERO_PAGE_START};

/// e820 type of usable RAM.
pub const E820_RAM: u32 = 1;
/// e820 type of reserved memory.
pub const E820_RESERVED: u32 = 2;

/// `boot_flag` value: the 0xAA55 boot sector signature.
pub const KERNEL_BOOT_FLAG_MAGIC: u16 = 0xaa55;
/// `header` value: "HdrS".
pub const KERNEL_HDR_MAGIC: u32 = 0x5372_6448;
/// `type_of_loader` for a boot loader without an assigned id.
pub const KERNEL_LOADER_OTHER: u8 = 0xff;
/// `heap_end_ptr`: end of the setup heap, relative to the real-mode code (the usual 0xfe00).
pub const KERNEL_HEAP_END: u16 = 0xfe00;
/// `vid_mode` "normal".
pub const VGA_MODE_NORMAL: u16 = 0xffff;
/// `kernel_alignment` we announce for an ELF vmlinux (which has no setup header).
pub const ELF_KERNEL_ALIGNMENT: u32 = 0x0100_0000;

/// Errors building the zero page and command line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BootParamsError {
    #[error("kernel command line is too long: {len} bytes, the limit is {limit}")]
    CmdlineTooLong { len: usize, limit: usize },
    #[error("invalid kernel command line: {0}")]
    CmdlineInvalid(CmdlineError),
    #[error("cannot write the kernel command line at {0:#x}: guest memory too small")]
    CmdlineWrite(u64),
    #[error("guest memory has {0} e820 entries, the zero page holds at most {E820_MAX_ENTRIES_ZEROPAGE}")]
    TooManyE820Entries(usize),
    #[error("cannot write the zero page at {ZERO_PAGE_START:#x}: {0}")]
    ZeroPage(String),
}

/// The e820 map for `mem`: RAM below the EBDA, the EBDA/VGA/BIOS hole [EBDA_START,
/// HIMEM_START) reserved, and RAM for every other byte of every region (so a region above
/// 4 GiB is plain RAM).
pub fn e820_map(mem: &GuestMemoryMmap) -> Result<Vec<boot_e820_entry>, BootParamsError> {
    let mut map = Vec::new();
    for region in mem.iter() {
        let start = region.start_addr().raw_value();
        let end = start.saturating_add(region.len());
        let pieces = [
            (0, EBDA_START, E820_RAM),
            (EBDA_START, HIMEM_START, E820_RESERVED),
            (HIMEM_START, u64::MAX, E820_RAM),
        ];
        for (lo, hi, kind) in pieces {
            let s = start.max(lo);
            let e = end.min(hi);
            if s < e {
                map.push(boot_e820_entry {
                    addr: s,
                    size: e - s,
                    r#type: kind,
                });
            }
        }
    }
    if map.len() > E820_MAX_ENTRIES_ZEROPAGE {
        return Err(BootParamsError::TooManyE820Entries(map.len()));
    }
    Ok(map)
}

/// The longest command line (without its NUL) a kernel accepts: its `cmdline_size` (boot
/// protocol 2.06+) when it has a setup header, bounded by what we reserve at CMDLINE_START.
pub fn cmdline_limit(hdr: Option<&setup_header>) -> usize {
    let ours = CMDLINE_MAX_SIZE - 1;
    match hdr {
        Some(h) => ours.min(h.cmdline_size as usize),
        None => ours,
    }
}

/// Validates `cmdline` against `limit` bytes (NUL excluded) and writes it, NUL-terminated, at
/// CMDLINE_START. Returns its length without the NUL.
pub fn write_cmdline(
    mem: &GuestMemoryMmap,
    cmdline: &str,
    limit: usize,
) -> Result<usize, BootParamsError> {
    let trimmed = cmdline.trim();
    if trimmed.len() > limit {
        return Err(BootParamsError::CmdlineTooLong {
            len: trimmed.len(),
            limit,
        });
    }
    let cl = Cmdline::try_from(trimmed, limit + 1).map_err(|e| match e {
        CmdlineError::InvalidCapacity | CmdlineError::TooLarge => BootParamsError::CmdlineTooLong {
            len: trimmed.len(),
            limit,
        },
        e => BootParamsError::CmdlineInvalid(e),
    })?;
    let bytes = cl
        .as_cstring()
        .map_err(BootParamsError::CmdlineInvalid)?
        .into_bytes();
    if bytes.len() > limit {
        return Err(BootParamsError::CmdlineTooLong {
            len: bytes.len(),
            limit,
        });
    }
    linux_loader::loader::load_cmdline(mem, GuestAddress(CMDLINE_START), &cl)
        .map_err(|_| BootParamsError::CmdlineWrite(CMDLINE_START))?;
    Ok(bytes.len())
}

/// What the zero page describes besides memory.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZeroPageConfig {
    /// The bzImage's setup header as loaded (None for an ELF vmlinux).
    pub setup_header: Option<setup_header>,
    /// Initrd guest address and size.
    pub initrd: Option<(GuestAddress, u32)>,
    /// The ACPI RSDP (`acpi_rsdp_addr`, boot protocol 2.14; older kernels
    /// scan the BIOS area, where it is too).
    pub acpi_rsdp: Option<GuestAddress>,
}

/// Builds the zero page: the kernel's own setup header (or a minimal one for an ELF vmlinux)
/// with the loader fields filled in, plus the e820 map of `mem`.
pub fn build_boot_params(
    mem: &GuestMemoryMmap,
    cfg: &ZeroPageConfig,
) -> Result<boot_params, BootParamsError> {
    let mut params = boot_params::default();
    match cfg.setup_header {
        Some(hdr) => params.hdr = hdr,
        None => {
            params.hdr.kernel_alignment = ELF_KERNEL_ALIGNMENT;
            params.hdr.cmdline_size = cmdline_limit(None) as u32;
        }
    }
    params.hdr.boot_flag = KERNEL_BOOT_FLAG_MAGIC;
    params.hdr.header = KERNEL_HDR_MAGIC;
    params.hdr.type_of_loader = KERNEL_LOADER_OTHER;
    params.hdr.vid_mode = VGA_MODE_NORMAL;
    params.hdr.loadflags |= CAN_USE_HEAP;
    params.hdr.heap_end_ptr = KERNEL_HEAP_END;
    // CMDLINE_START is below 4 GiB: ext_cmd_line_ptr stays 0.
    params.hdr.cmd_line_ptr = CMDLINE_START as u32;
    if let Some((addr, size)) = cfg.initrd {
        // The loader places the initrd below the 32-bit MMIO gap.
        params.hdr.ramdisk_image = addr.raw_value() as u32;
        params.hdr.ramdisk_size = size;
    }
    if let Some(rsdp) = cfg.acpi_rsdp {
        params.acpi_rsdp_addr = rsdp.raw_value();
    }
    let map = e820_map(mem)?;
    for (slot, entry) in params.e820_table.iter_mut().zip(map.iter()) {
        *slot = *entry;
    }
    // e820_map() returns at most E820_MAX_ENTRIES_ZEROPAGE (128) entries.
    params.e820_entries = map.len() as u8;
    Ok(params)
}

/// Writes `params` at ZERO_PAGE_START through linux-loader's Linux boot configurator.
pub fn write_boot_params(
    mem: &GuestMemoryMmap,
    params: &boot_params,
) -> Result<GuestAddress, BootParamsError> {
    let addr = GuestAddress(ZERO_PAGE_START);
    LinuxBootConfigurator::write_bootparams::<GuestMemoryMmap>(
        &BootParams::new::<boot_params>(params, addr),
        mem,
    )
    .map_err(|e| BootParamsError::ZeroPage(e.to_string()))?;
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arch::x86_64::layout::{MMIO_GAP_END, MMIO_GAP_START};
    use vm_memory::Bytes;

    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;

    /// The layout the VMM uses for Linux: [0, min(mem, 3 GiB)) and the rest at 4 GiB.
    fn linux_ranges(size: u64) -> Vec<(GuestAddress, usize)> {
        let low = size.min(MMIO_GAP_START);
        let mut r = vec![(GuestAddress(0), low as usize)];
        if size > low {
            r.push((GuestAddress(MMIO_GAP_END), (size - low) as usize));
        }
        r
    }

    fn e(addr: u64, size: u64, t: u32) -> (u64, u64, u32) {
        (addr, size, t)
    }

    fn map_of(size: u64) -> Vec<(u64, u64, u32)> {
        // Mappings are lazily backed: a few GiB of address space costs nothing.
        let mem = GuestMemoryMmap::from_ranges(&linux_ranges(size)).unwrap();
        e820_map(&mem)
            .unwrap()
            .iter()
            .map(|x| (x.addr, x.size, x.r#type))
            .collect()
    }

    #[test]
    fn e820_small() {
        assert_eq!(
            map_of(64 * MIB),
            vec![
                e(0, EBDA_START, E820_RAM),
                e(EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
                e(HIMEM_START, 64 * MIB - HIMEM_START, E820_RAM),
            ]
        );
    }

    #[test]
    fn e820_2g() {
        let m = map_of(2 * GIB);
        assert_eq!(m.len(), 3);
        assert_eq!(m[2], e(HIMEM_START, 2 * GIB - HIMEM_START, E820_RAM));
    }

    #[test]
    fn e820_exactly_3g() {
        let m = map_of(3 * GIB);
        assert_eq!(m.len(), 3);
        assert_eq!(m[2], e(HIMEM_START, 3 * GIB - HIMEM_START, E820_RAM));
    }

    #[test]
    fn e820_above_mmio_gap() {
        let m = map_of(5 * GIB);
        assert_eq!(
            m,
            vec![
                e(0, EBDA_START, E820_RAM),
                e(EBDA_START, HIMEM_START - EBDA_START, E820_RESERVED),
                e(HIMEM_START, MMIO_GAP_START - HIMEM_START, E820_RAM),
                e(MMIO_GAP_END, 2 * GIB, E820_RAM),
            ]
        );
        // Nothing of the MMIO gap is RAM.
        assert!(m
            .iter()
            .all(|x| x.0 + x.1 <= MMIO_GAP_START || x.0 >= MMIO_GAP_END));
    }

    #[test]
    fn e820_tiny_region() {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0xa0000)]).unwrap();
        let m: Vec<_> = e820_map(&mem)
            .unwrap()
            .iter()
            .map(|x| (x.addr, x.size, x.r#type))
            .collect();
        assert_eq!(
            m,
            vec![
                e(0, EBDA_START, E820_RAM),
                e(EBDA_START, 0xa0000 - EBDA_START, E820_RESERVED)
            ]
        );
    }

    fn mem64() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), (64 * MIB) as usize)]).unwrap()
    }

    fn read_cstr(mem: &GuestMemoryMmap, addr: u64, max: usize) -> Vec<u8> {
        let mut buf = vec![0u8; max];
        mem.read_slice(&mut buf, GuestAddress(addr)).unwrap();
        let n = buf.iter().position(|b| *b == 0).expect("NUL terminator");
        buf.truncate(n);
        buf
    }

    #[test]
    fn cmdline_written_nul_terminated() {
        let mem = mem64();
        // Dirty the area first: the NUL must come from the writer.
        mem.write_slice(&[0xaa; 64], GuestAddress(CMDLINE_START))
            .unwrap();
        let n = write_cmdline(&mem, "console=ttyS0 panic=-1", 100).unwrap();
        assert_eq!(n, 22);
        assert_eq!(
            read_cstr(&mem, CMDLINE_START, 64),
            b"console=ttyS0 panic=-1".to_vec()
        );
        let b: u8 = mem.read_obj(GuestAddress(CMDLINE_START + 22)).unwrap();
        assert_eq!(b, 0);
    }

    #[test]
    fn cmdline_empty_and_init_args() {
        let mem = mem64();
        assert_eq!(write_cmdline(&mem, "", 10).unwrap(), 0);
        let b: u8 = mem.read_obj(GuestAddress(CMDLINE_START)).unwrap();
        assert_eq!(b, 0);
        assert_eq!(write_cmdline(&mem, "quiet -- -x", 100).unwrap(), 11);
        assert_eq!(read_cstr(&mem, CMDLINE_START, 64), b"quiet -- -x".to_vec());
    }

    #[test]
    fn cmdline_limits() {
        let mem = mem64();
        // Exactly the limit fits.
        assert_eq!(write_cmdline(&mem, &"a".repeat(16), 16).unwrap(), 16);
        let err = write_cmdline(&mem, &"a".repeat(17), 16).unwrap_err();
        assert_eq!(err, BootParamsError::CmdlineTooLong { len: 17, limit: 16 });
        assert!(err.to_string().contains("limit is 16"));
        let mut hdr = setup_header {
            cmdline_size: 2047,
            ..Default::default()
        };
        assert_eq!(cmdline_limit(Some(&hdr)), 2047);
        hdr.cmdline_size = u32::MAX;
        assert_eq!(cmdline_limit(Some(&hdr)), CMDLINE_MAX_SIZE - 1);
        assert_eq!(cmdline_limit(None), CMDLINE_MAX_SIZE - 1);
        // The largest command line fits below the next thing in the layout.
        let big = "b".repeat(CMDLINE_MAX_SIZE - 1);
        assert_eq!(
            write_cmdline(&mem, &big, cmdline_limit(None)).unwrap(),
            CMDLINE_MAX_SIZE - 1
        );
    }

    #[test]
    fn cmdline_invalid() {
        let mem = mem64();
        assert!(matches!(
            write_cmdline(&mem, "a\0b", 100),
            Err(BootParamsError::CmdlineInvalid(_))
        ));
        // A leading "--" is a plain boot argument (the separator is " -- ").
        assert_eq!(write_cmdline(&mem, "-- init", 100).unwrap(), 7);
        let small = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x20004)]).unwrap();
        assert_eq!(
            write_cmdline(&small, "console=ttyS0", 100),
            Err(BootParamsError::CmdlineWrite(CMDLINE_START))
        );
    }

    #[test]
    fn zero_page_from_setup_header() {
        let mem = mem64();
        let hdr = setup_header {
            setup_sects: 27,
            version: 0x020f,
            loadflags: 0x01,
            code32_start: 0x100000,
            cmdline_size: 2047,
            kernel_alignment: 0x200000,
            xloadflags: 0x7f,
            init_size: 0x123000,
            ..Default::default()
        };
        let cfg = ZeroPageConfig {
            setup_header: Some(hdr),
            initrd: Some((GuestAddress(0x3f00000), 0x12345)),
            acpi_rsdp: Some(GuestAddress(0xe0000)),
        };
        let params = build_boot_params(&mem, &cfg).unwrap();
        let at = write_boot_params(&mem, &params).unwrap();
        assert_eq!(at, GuestAddress(ZERO_PAGE_START));
        let back: boot_params = mem.read_obj(at).unwrap();
        let h = back.hdr;
        assert_eq!({ back.acpi_rsdp_addr }, 0xe0000);
        assert_eq!({ h.boot_flag }, 0xaa55);
        assert_eq!({ h.header }, 0x5372_6448);
        assert_eq!(h.type_of_loader, 0xff);
        assert_eq!(h.setup_sects, 27);
        assert_eq!({ h.version }, 0x020f);
        assert_eq!(h.loadflags, 0x01 | CAN_USE_HEAP);
        assert_eq!({ h.heap_end_ptr }, 0xfe00);
        assert_eq!({ h.cmd_line_ptr }, CMDLINE_START as u32);
        assert_eq!({ h.cmdline_size }, 2047);
        assert_eq!({ h.ramdisk_image }, 0x3f00000);
        assert_eq!({ h.ramdisk_size }, 0x12345);
        assert_eq!({ h.kernel_alignment }, 0x200000);
        assert_eq!({ h.xloadflags }, 0x7f);
        assert_eq!({ h.init_size }, 0x123000);
        assert_eq!({ back.ext_cmd_line_ptr }, 0);
        assert_eq!({ back.ext_ramdisk_image }, 0);
        assert_eq!(back.e820_entries, 3);
        let last = back.e820_table[2];
        assert_eq!(
            ({ last.addr }, { last.size }, { last.r#type }),
            (HIMEM_START, 64 * MIB - HIMEM_START, E820_RAM)
        );
        // Raw offsets from the boot protocol document.
        let mut raw = [0u8; 0x1000];
        mem.read_slice(&mut raw, at).unwrap();
        assert_eq!(&raw[0x202..0x206], b"HdrS");
        assert_eq!(raw[0x210], 0xff);
        assert_eq!(&raw[0x228..0x22c], &(CMDLINE_START as u32).to_le_bytes());
        assert_eq!(&raw[0x218..0x21c], &0x3f00000u32.to_le_bytes());
        assert_eq!(raw[0x1e8], 3);
        assert_eq!(&raw[0x2d0..0x2d8], &0u64.to_le_bytes());
        assert_eq!(&raw[0x2e0..0x2e4], &E820_RAM.to_le_bytes());
    }

    #[test]
    fn zero_page_for_elf() {
        let mem = GuestMemoryMmap::from_ranges(&linux_ranges(4 * GIB)).unwrap();
        let params = build_boot_params(&mem, &ZeroPageConfig::default()).unwrap();
        write_boot_params(&mem, &params).unwrap();
        let back: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
        assert_eq!({ back.hdr.boot_flag }, 0xaa55);
        assert_eq!({ back.hdr.header }, KERNEL_HDR_MAGIC);
        assert_eq!({ back.hdr.kernel_alignment }, ELF_KERNEL_ALIGNMENT);
        assert_eq!({ back.hdr.ramdisk_image }, 0);
        assert_eq!({ back.hdr.ramdisk_size }, 0);
        assert_eq!(back.e820_entries, 4);
        let hi = back.e820_table[3];
        assert_eq!(({ hi.addr }, { hi.size }), (MMIO_GAP_END, GIB));
    }

    #[test]
    fn zero_page_past_memory() {
        let small = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x7800)]).unwrap();
        let params = boot_params::default();
        assert!(matches!(
            write_boot_params(&small, &params),
            Err(BootParamsError::ZeroPage(_))
        ));
    }
}
