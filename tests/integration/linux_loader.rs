//! Loads a real Linux kernel with `load_linux` and checks what landed in guest memory.
//! Needs a kernel: `MMUVISOR_TEST_KERNEL=/path/to/bzImage-or-vmlinux`, or else
//! a lab kernel built under ~/.cache/mmuvisor/kernels/ (the lab tests, which
//! run first, build one); skipped with a note when there is neither.

use std::io::Write;
use std::path::PathBuf;

use linux_loader::bootparam::boot_params;
use mmuvisor::arch::x86_64::layout::{CMDLINE_START, HIMEM_START, MMIO_GAP_END, ZERO_PAGE_START};
use mmuvisor::loader::linux::{load_linux, LinuxImage};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm_sys_util::tempfile::TempFile;

fn test_kernel() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MMUVISOR_TEST_KERNEL") {
        return Some(p.into());
    }
    let home = std::env::var_os("HOME")?;
    let dir = PathBuf::from(home).join(".cache/mmuvisor/kernels");
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join("bzImage"))
        .find(|p| p.is_file())
}

#[test]
fn real_kernel_loads() {
    let Some(kernel) = test_kernel() else {
        eprintln!("SKIP: no kernel (set MMUVISOR_TEST_KERNEL or build a lab kernel)");
        return;
    };
    let bytes = std::fs::read(&kernel).unwrap();
    let initrd = TempFile::new().unwrap();
    initrd.as_file().write_all(&[0x5a; 123_457]).unwrap();
    // 5 GiB: low RAM [0, 3 GiB) and [4 GiB, 6 GiB), as the VMM lays it out.
    let mem = GuestMemoryMmap::<()>::from_ranges(&[
        (GuestAddress(0), 3 << 30),
        (GuestAddress(MMIO_GAP_END), 2 << 30),
    ])
    .unwrap();
    let image = LinuxImage {
        kernel: kernel.clone(),
        initrd: Some(initrd.as_path().to_path_buf()),
        cmdline: "console=ttyS0 acpi=off panic=-1".into(),
    };
    let entry = load_linux(&mem, &image, 4).unwrap();
    let zp: boot_params = mem.read_obj(GuestAddress(ZERO_PAGE_START)).unwrap();
    let hdr = zp.hdr;
    let is_elf = bytes.starts_with(b"\x7fELF");
    if is_elf {
        eprintln!("ELF vmlinux, entry {:#x}", entry.entry.0);
    } else {
        assert_eq!(entry.entry, GuestAddress(HIMEM_START + 0x200));
        let setup = (usize::from(hdr.setup_sects.max(4)) + 1) * 512;
        let mut loaded = vec![0u8; 4096];
        mem.read_slice(&mut loaded, GuestAddress(HIMEM_START))
            .unwrap();
        assert_eq!(&loaded[..], &bytes[setup..setup + 4096]);
        // The header is the kernel's own, apart from the loader fields.
        assert_eq!(&bytes[0x206..0x208], &{ hdr.version }.to_le_bytes());
        assert_eq!(&bytes[0x236..0x238], &{ hdr.xloadflags }.to_le_bytes());
        eprintln!(
            "bzImage protocol {:#x}, xloadflags {:#x}, init_size {:#x}, pref_address {:#x}, kernel_alignment {:#x}, initrd_addr_max {:#x}, cmdline_size {}",
            { hdr.version },
            { hdr.xloadflags },
            { hdr.init_size },
            { hdr.pref_address },
            { hdr.kernel_alignment },
            { hdr.initrd_addr_max },
            { hdr.cmdline_size }
        );
    }
    assert_eq!(hdr.type_of_loader, 0xff);
    assert_eq!({ hdr.cmd_line_ptr }, CMDLINE_START as u32);
    assert_eq!({ hdr.ramdisk_size }, 123_457);
    assert_eq!({ hdr.ramdisk_image } % 4096, 0);
    assert_eq!(zp.e820_entries, 4);
    eprintln!("entry {:#x}, initrd at {:#x}", entry.entry.0, {
        hdr.ramdisk_image
    });
}
